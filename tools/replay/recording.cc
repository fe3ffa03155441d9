// Reads a recorded session (see recording.h) into memory and cuts it into
// the reads the gateway would see. Runs before anything is counted; owns the
// returned recording's bytes.
#include "recording.h"

#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "postino/ascii.h"

namespace postino::replay {

namespace {

std::uint64_t number(std::string_view s, const std::string& path) {
  std::uint64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size())
    throw std::runtime_error(path + ": not a number in the header: '" + std::string(s) + "'");
  return v;
}

bool verb_is(std::string_view line, std::string_view verb) {
  if (line.size() < verb.size()) return false;
  for (std::size_t i = 0; i < verb.size(); ++i)
    if ((line[i] & ~0x20) != verb[i]) return false;
  return line.size() == verb.size() || line[verb.size()] == ' ' || line[verb.size()] == '\r' ||
         line[verb.size()] == '\n';
}

std::vector<piece> split_by_phase(std::string_view bytes, std::size_t read_limit) {
  std::vector<piece> out;
  bool in_text = false;
  for (std::size_t at = 0; at < bytes.size();) {
    const std::string_view rest = bytes.substr(at);
    if (in_text) {
      std::size_t end = rest.size();
      if (rest.starts_with(".\r\n")) end = 3;
      else if (const auto t = rest.find("\r\n.\r\n"); t != std::string_view::npos) end = t + 5;
      for (std::size_t done = 0; done < end; done += read_limit)
        out.push_back({rest.substr(done, std::min(read_limit, end - done)), phase::text});
      at += end;
      in_text = false;
      continue;
    }
    const std::size_t lf = rest.find('\n');
    const std::string_view line = rest.substr(0, lf == std::string_view::npos ? rest.size() : lf + 1);
    out.push_back({line, verb_is(line, "RCPT") ? phase::recipients : phase::envelope});
    // Only a bare DATA is followed by text (a refused "DATA x" is not).
    const std::string_view bare = line.substr(0, line.find_first_of("\r\n"));
    in_text = bare.size() == 4 && verb_is(bare, "DATA");
    at += line.size();
  }
  return out;
}

}  // namespace

recording load_recording(const std::string& path, std::size_t read_limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();

  recording rec;
  const auto slash = path.find_last_of('/');
  rec.name = path.substr(slash == std::string::npos ? 0 : slash + 1);
  if (const auto dot = rec.name.rfind('.'); dot != std::string::npos) rec.name.resize(dot);

  std::size_t pos = 0;
  bool by_lines = false;
  bool have_reads = false;
  std::vector<std::size_t> sizes;
  bool have_messages = false;
  while (pos < all.size() && all[pos] == '#') {
    std::size_t end = all.find('\n', pos);
    if (end == std::string::npos) throw std::runtime_error(path + ": header without client bytes");
    std::string_view line = trim_blanks(std::string_view(all).substr(pos + 1, end - pos - 1));
    pos = end + 1;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = trim_blanks(line.substr(0, colon));
    const std::string_view value = trim_blanks(line.substr(colon + 1));
    if (key == "replay") {
      rec.about = value;
    } else if (key == "messages") {
      rec.messages = number(value, path);
      have_messages = true;
    } else if (key == "reads") {
      have_reads = true;
      if (value == "lines") {
        by_lines = true;
        continue;
      }
      std::string_view rest = value;
      while (!rest.empty()) {
        const auto sp = rest.find(' ');
        sizes.push_back(number(rest.substr(0, sp), path));
        rest = sp == std::string_view::npos ? std::string_view() : trim_blanks(rest.substr(sp + 1));
      }
    }
  }
  if (!have_messages) throw std::runtime_error(path + ": no 'messages:' header");
  if (!have_reads) throw std::runtime_error(path + ": no 'reads:' header");
  rec.bytes = all.substr(pos);

  const std::string_view bytes = rec.bytes;
  if (by_lines) {
    for (std::size_t at = 0; at < bytes.size();) {
      std::size_t lf = bytes.find('\n', at);
      std::size_t end = lf == std::string_view::npos ? bytes.size() : lf + 1;
      sizes.push_back(end - at);
      at = end;
    }
  }
  std::size_t total = 0;
  for (std::size_t n : sizes) total += n;
  if (total != bytes.size())
    throw std::runtime_error(path + ": the reads add up to " + std::to_string(total) + " bytes, the session has " +
                             std::to_string(bytes.size()));
  std::size_t at = 0;
  for (std::size_t n : sizes) {
    for (std::size_t done = 0; done < n; done += read_limit)
      rec.reads.push_back(bytes.substr(at + done, std::min(read_limit, n - done)));
    at += n;
  }
  rec.pieces = split_by_phase(bytes, read_limit);
  return rec;
}

}  // namespace postino::replay
