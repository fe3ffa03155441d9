// libFuzzer target: the TOML configuration loader (src/core/config.cc,
// parse_config_text: toml++ and the gateway's own checks) on any text. What
// the loader promises (include/core/postino/config.h, DESIGN.md): a refused
// file gets an error "<file>:<line>: ..." naming a line of the text (toml++'s
// syntax errors add the column), and nothing escapes as an exception; a file
// that loads holds what the checks allow (listeners, unique address and
// port, routes that name configured SMSCs, back-off maxima not below their
// minima, SMSC shards below the shard count). No writer of a configuration
// exists, so there is no load-write-load round trip to check.
// Buffers: the input is libFuzzer's; the text and configs are this file's.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "postino/config.h"

namespace {

using namespace postino;

constexpr std::string_view source = "fuzz.toml";

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "config invariant: %s\n%s\n", what, detail.c_str());
  std::abort();
}

// "<source>:<line>:" with a line of the text (1 .. lines + 1: toml++ may
// point just past the last line break at the end of the text).
void check_error_names_a_line(const std::string& error, const std::string& text) {
  if (error.empty()) fail("a refusal without an error", text);
  if (!std::string_view(error).starts_with(std::string(source) + ":")) fail("an error that names no file", error);
  const char* begin = error.data() + source.size() + 1;
  const char* end = error.data() + error.size();
  std::size_t line = 0;
  const auto [next, ec] = std::from_chars(begin, end, line);
  if (ec != std::errc() || next == end || *next != ':') fail("an error that names no line", error);
  std::size_t lines = 1;
  for (char c : text) lines += c == '\n';
  if (line < 1 || line > lines) fail("an error that names a line the text does not have", error);
}

void check_loaded(const gateway_config& c) {
  if (c.listeners.empty()) fail("a config without a listener", "");
  std::set<std::pair<std::string, std::uint16_t>> seen;
  for (const auto& l : c.listeners)
    if (l.port != 0 && !seen.emplace(l.address, l.port).second) fail("a listener address and port twice", l.address);
  for (const auto& r : c.routes) {
    if (r.smscs.empty()) fail("a route without SMSCs", r.prefix);
    for (const auto& name : r.smscs) {
      bool found = false;
      for (const auto& s : c.smscs) found = found || s.name == name;
      if (!found) fail("a route names an SMSC not configured", name);
    }
  }
  for (const auto& s : c.smscs) {
    if (s.name.empty() || s.system_id.empty()) fail("an SMSC without a name or system_id", s.name);
    if (s.reconnect_max_ms < s.reconnect_min_ms) fail("an SMSC's reconnect maximum below its minimum", s.name);
    if (c.shards != 0 && s.shard >= static_cast<int>(c.shards)) fail("an SMSC shard past the shard count", s.name);
  }
  if (c.delivery.retry_max_ms < c.delivery.retry_min_ms) fail("the retry maximum below the minimum", "");
  if (c.database.empty() || c.data_dir.empty()) fail("no data directory or database", "");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto c = parse_config_text(text, std::string(source), error);
  if (!c) {
    check_error_names_a_line(error, text);
  } else {
    check_loaded(*c);
  }
  return 0;
}
