// The server's memory as postino-load --server-pid sees it from /proc: VmRSS,
// and the resident kB of each mapping (/proc/PID/smaps), so that a report can
// tell what grew per session (the heap arenas) from what is fixed but only
// becomes resident under load (each shard's provided-buffer ring). Values are
// plain snapshots owned by the caller.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace postino::load {

struct mapping_rss {
  std::int64_t size_kb = 0;
  std::int64_t rss_kb = 0;
};

// Start address -> size and resident kB.
using memory_map = std::map<std::uint64_t, mapping_rss>;

struct mapping_growth {
  std::int64_t size_kb = 0;
  std::int64_t grew_kb = 0;
};

// -1 when /proc/PID/status cannot be read.
std::int64_t read_vm_rss_kb(int pid);
// Empty when /proc/PID/smaps cannot be read.
memory_map read_memory_map(int pid);
// The mappings whose resident size grew by more than `min_kb` from `before`
// to `after` (new mappings count from zero), largest growth first.
std::vector<mapping_growth> grown_mappings(const memory_map& before, const memory_map& after, std::int64_t min_kb);

}  // namespace postino::load
