// Raw-mode text clean-up (PROTOCOL.md section 3, "Raw mode"): turns the DATA
// body the session stored into the UTF-8 text of the SMS. It reads the
// caller's body view and returns an owned string; nothing else is kept.
//
// Decisions the protocol leaves open, made here:
// - The charset is decided for the body as a whole: strictly valid UTF-8, or
//   else Windows-1252 (Outlook's euro sign is 0x80), never a per-line mix.
// - Windows-1252 leaves 0x81 0x8D 0x8F 0x90 0x9D undefined. They become
//   U+FFFD, a visible mark that the input was not text, rather than the C1
//   controls the WHATWG decoder yields, which a handset would show as nothing.
// - A leading UTF-8 byte order mark (Notepad writes one) is dropped: it is
//   invisible and would force the whole message into UCS-2.
// - Blank means empty or spaces and tabs only. Trailing blank lines go;
//   leading and interior ones stay, as do trailing spaces on the last line
//   that has text (the sender typed them; the body is the text).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "postino/sms.h"
#include "utf8.h"

namespace postino::sms {
namespace {

// Windows-1252 0x80..0x9F; 0xA0..0xFF are U+00A0..U+00FF as in Latin-1.
constexpr char16_t cp1252_high[32] = {
    0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,  // 80..87
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,  // 88..8F
    0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,  // 90..97
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178,  // 98..9F
};

constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Drops trailing line breaks, then the last line while it is blank, until the
// last line has text or nothing is left.
void trim_trailing_blank_lines(std::string& s) {
  for (;;) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    const std::size_t nl = s.rfind('\n');
    const std::size_t start = nl == std::string::npos ? 0 : nl + 1;
    bool blank = true;
    for (std::size_t i = start; i < s.size() && blank; ++i) blank = is_blank(s[i]);
    if (!blank) return;
    s.resize(start);
    if (s.empty()) return;
  }
}

}  // namespace

bool is_valid_utf8(std::string_view bytes) noexcept {
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  while (i < n) {
    // Most bodies are ASCII: skip eight bytes at a time while no high bit is set.
    while (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, bytes.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const detail::decoded d = detail::decode_utf8(bytes, i);
    if (d.len == 0) return false;
    i += d.len;
  }
  return true;
}

std::string windows1252_to_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 4);
  for (const char ch : bytes) {
    const auto b = static_cast<unsigned char>(ch);
    if (b < 0x80) {
      out.push_back(ch);
    } else {
      detail::append_utf8(out, b < 0xA0 ? char32_t{cp1252_high[b - 0x80]} : char32_t{b});
    }
  }
  return out;
}

std::string tidy_text_lines(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  // Copies the runs between CRs whole; only a CR needs rewriting.
  std::size_t i = 0;
  while (i < utf8.size()) {
    const std::size_t cr = utf8.find('\r', i);
    if (cr == std::string_view::npos) {
      out.append(utf8.substr(i));
      break;
    }
    out.append(utf8.substr(i, cr - i));
    out.push_back('\n');
    i = cr + 1;
    if (i < utf8.size() && utf8[i] == '\n') ++i;
  }
  trim_trailing_blank_lines(out);
  return out;
}

text_result clean_raw_text(std::string_view body) {
  text_result r;
  if (is_valid_utf8(body)) {
    if (body.starts_with(utf8_bom)) body.remove_prefix(utf8_bom.size());
    r.utf8 = tidy_text_lines(body);
  } else {
    r.was_windows1252 = true;
    r.utf8 = tidy_text_lines(windows1252_to_utf8(body));
  }
  r.empty = r.utf8.empty();
  return r;
}

}  // namespace postino::sms
