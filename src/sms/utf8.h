// Strict UTF-8 decoding shared by the raw-text clean-up (text.cc) and the
// GSM/UCS-2 encoder (gsm.cc). Internal to src/sms. It only reads the caller's
// bytes; nothing is allocated. "Strict" is RFC 3629: no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing above U+10FFFF. Both callers must
// agree on what an invalid byte means, so there is exactly one decoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace postino::sms::detail {

inline constexpr char32_t replacement_char = 0xFFFD;

struct decoded {
  char32_t cp;
  std::uint32_t len;  // 0: the bytes at the position are not a valid sequence
};

// Decodes the sequence starting at s[i] (i < s.size()).
inline decoded decode_utf8(std::string_view s, std::size_t i) noexcept {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = at(i);
  if (b0 < 0x80) return {b0, 1};
  const std::size_t left = s.size() - i;
  const auto cont = [&](std::size_t k) { return (at(k) & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (left < 2 || !cont(i + 1)) return {replacement_char, 0};
    return {static_cast<char32_t>(((b0 & 0x1F) << 6) | (at(i + 1) & 0x3F)), 2};
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (left < 3) return {replacement_char, 0};
    const unsigned char b1 = at(i + 1);
    // E0 needs A0..BF (else overlong); ED needs 80..9F (else a surrogate).
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
    if (b1 < lo || b1 > hi || !cont(i + 2)) return {replacement_char, 0};
    return {static_cast<char32_t>(((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (at(i + 2) & 0x3F)), 3};
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (left < 4) return {replacement_char, 0};
    const unsigned char b1 = at(i + 1);
    // F0 needs 90..BF (else overlong); F4 needs 80..8F (else above U+10FFFF).
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
    if (b1 < lo || b1 > hi || !cont(i + 2) || !cont(i + 3)) return {replacement_char, 0};
    return {static_cast<char32_t>(((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((at(i + 2) & 0x3F) << 6) |
                                  (at(i + 3) & 0x3F)),
            4};
  }
  return {replacement_char, 0};  // 80..C1 (continuation or overlong lead), F5..FF
}

// Lenient walk for text that should already be valid: a bad byte reads as
// U+FFFD and the walk moves on by one byte.
inline decoded next_code_point(std::string_view s, std::size_t i) noexcept {
  decoded d = decode_utf8(s, i);
  if (d.len == 0) d.len = 1;
  return d;
}

inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace postino::sms::detail
