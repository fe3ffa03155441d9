// libFuzzer target, differential: the DATA scanner (src/smtp/scanner.h, the
// hot path's memchr-driven state machine) against a reference written for
// this test, one line at a time straight from RFC 5321 4.1.1.4 and 4.5.2 and
// the scanner's documented rules: a line ends at CRLF, at a bare LF, or at a
// bare CR (the byte after it starts the next line); a line's leading dot is
// dropped; the data ends at a line that was only a dot, ended by CRLF, after
// a line ended by CRLF (or at the start); line breaks are written as CRLF;
// more than 998 octets in a line, or a body over the maximum, makes the
// message too big; a bare line break under the reject policy (or too big)
// empties the body (and, refused anyway, it is not sized further). Both must agree, for every input and every cut of it
// into reads, on where the data ends, the body, and the two flags.
// Input: byte 0 = number of cuts (0-7) and the reject policy (bit 3), byte 1
// = the maximum body size in units of 16 octets, then the cuts, then data.
// Buffers: the input is libFuzzer's; everything else is this file's.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "../../src/smtp/scanner.h"

namespace {

struct outcome {
  bool done = false;
  std::size_t consumed = 0;
  std::string body;
  bool bare = false;
  bool too_big = false;
};

enum class line_end { crlf, bare, none };

// One line from `at`: its text (without the break) and how it ended. A CR
// that is the input's last byte may still become CRLF: the line is then
// unfinished (`none`) and the CR not taken.
line_end next_line(std::string_view in, std::size_t& at, std::string& text) {
  text.clear();
  while (at < in.size()) {
    const char c = in[at];
    if (c == '\n') return ++at, line_end::bare;
    if (c == '\r') {
      if (at + 1 == in.size()) return line_end::none;
      if (in[at + 1] == '\n') return at += 2, line_end::crlf;
      return ++at, line_end::bare;
    }
    text += c;
    ++at;
  }
  return line_end::none;
}

outcome reference(std::string_view in, std::size_t max_size, bool reject_bare) {
  outcome o;
  std::size_t at = 0;
  bool after_crlf = true;
  bool long_line = false;
  std::string text;
  while (at < in.size()) {
    const bool dotted = in[at] == '.';
    if (dotted) ++at;
    const line_end end = next_line(in, at, text);
    if (text.size() + 2 > postino::smtp::text_line_limit) long_line = true;
    if (dotted && text.empty() && end == line_end::crlf && after_crlf) {
      o.done = true;
      break;
    }
    o.body += text;
    if (end == line_end::none) break;
    o.body += "\r\n";
    o.bare = o.bare || end == line_end::bare;
    after_crlf = end == line_end::crlf;
  }
  o.consumed = o.done ? at : in.size();
  o.too_big = long_line || o.body.size() > max_size;
  if (o.too_big || (reject_bare && o.bare)) o.body.clear();
  return o;
}

outcome scanner(std::string_view in, const std::vector<std::size_t>& cuts, std::size_t max_size, bool reject_bare) {
  postino::smtp::data_scanner s;
  s.start(max_size, reject_bare);
  outcome o;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= cuts.size() && !s.done(); ++i) {
    const std::size_t end = i < cuts.size() ? cuts[i] : in.size();
    o.consumed += s.feed(in.substr(start, end - start), o.body);
    start = end;
  }
  o.done = s.done();
  o.bare = s.bare_newline_seen();
  o.too_big = s.too_big();
  return o;
}

[[noreturn]] void differ(const char* what, const outcome& a, const outcome& b) {
  std::fprintf(stderr, "data_scanner differs from the reference: %s\nscanner done=%d consumed=%zu bare=%d big=%d "
               "body=%zu\nreference done=%d consumed=%zu bare=%d big=%d body=%zu\n",
               what, a.done, a.consumed, a.bare, a.too_big, a.body.size(), b.done, b.consumed, b.bare, b.too_big,
               b.body.size());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const bool reject = (data[0] & 8) != 0;
  const std::size_t max_size = std::size_t{data[1]} * 16 + 16;
  const std::size_t ncuts = std::min<std::size_t>(data[0] & 7, size - 2);
  const std::string_view in(reinterpret_cast<const char*>(data) + 2 + ncuts, size - 2 - ncuts);
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < ncuts; ++i) cuts.push_back(in.size() * data[2 + i] / 256);
  std::sort(cuts.begin(), cuts.end());

  const outcome want = reference(in, max_size, reject);
  const outcome got = scanner(in, cuts, max_size, reject);
  if (got.done != want.done) differ("end of data", got, want);
  if (got.done && got.consumed != want.consumed) differ("bytes consumed", got, want);
  // Under the reject policy a bare line break refuses the message: the
  // scanner stops keeping (and sizing) the body there, so only the line
  // limit can still make it too big; the refusal is the bare newline's.
  if (!(reject && got.bare) && got.too_big != want.too_big) differ("too big", got, want);
  if (got.bare != want.bare) differ("bare newline", got, want);
  if (!got.too_big && !(reject && got.bare) && got.body != want.body) differ("body", got, want);
  return 0;
}
