// See server_memory.h.
#include "server_memory.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <string>

namespace postino::load {

std::int64_t read_vm_rss_kb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10);
  return -1;
}

// smaps: a header line "start-end perms offset dev inode [path]" per
// mapping, then "Key:   value kB" lines.
memory_map read_memory_map(int pid) {
  memory_map out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
  std::string line;
  mapping_rss* current = nullptr;
  while (std::getline(in, line)) {
    if (line.rfind("Size:", 0) == 0 && current != nullptr) {
      current->size_kb = std::strtoll(line.c_str() + 5, nullptr, 10);
    } else if (line.rfind("Rss:", 0) == 0 && current != nullptr) {
      current->rss_kb = std::strtoll(line.c_str() + 4, nullptr, 10);
    } else if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
               line.find('-') != std::string::npos && line.find(':') > line.find(' ')) {
      current = &out[std::strtoull(line.c_str(), nullptr, 16)];
    }
  }
  return out;
}

std::vector<mapping_growth> grown_mappings(const memory_map& before, const memory_map& after, std::int64_t min_kb) {
  std::vector<mapping_growth> out;
  for (const auto& [start, now] : after) {
    const auto then = before.find(start);
    const std::int64_t grew = now.rss_kb - (then == before.end() ? 0 : then->second.rss_kb);
    if (grew > min_kb) out.push_back({now.size_kb, grew});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.grew_kb > b.grew_kb; });
  return out;
}

}  // namespace postino::load
