// UTF-8 as the fuzz targets check it, written for them from RFC 3629 and
// Unicode's table 3-7 (well-formed byte sequences), independently of the
// product's decoder (src/sms/utf8.h), so that a target comparing against it
// tests that decoder rather than repeating it. Header-only; reads the
// caller's bytes, returns owned code point vectors and strings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postino::fuzz {

// The length of the well-formed sequence at s[i], or 0 when the bytes there
// start none (table 3-7, row by row).
inline std::size_t well_formed_at(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(s[i + k])); };
  const std::size_t left = s.size() - i;
  const auto in = [](unsigned v, unsigned lo, unsigned hi) { return v >= lo && v <= hi; };
  const unsigned b0 = b(0);
  if (b0 <= 0x7F) return 1;
  if (in(b0, 0xC2, 0xDF)) return left >= 2 && in(b(1), 0x80, 0xBF) ? 2 : 0;
  if (left < 3) return 0;
  if (b0 == 0xE0) return in(b(1), 0xA0, 0xBF) && in(b(2), 0x80, 0xBF) ? 3 : 0;
  if (in(b0, 0xE1, 0xEC) || b0 == 0xEE || b0 == 0xEF) return in(b(1), 0x80, 0xBF) && in(b(2), 0x80, 0xBF) ? 3 : 0;
  if (b0 == 0xED) return in(b(1), 0x80, 0x9F) && in(b(2), 0x80, 0xBF) ? 3 : 0;
  if (left < 4) return 0;
  const bool tail = in(b(2), 0x80, 0xBF) && in(b(3), 0x80, 0xBF);
  if (b0 == 0xF0) return in(b(1), 0x90, 0xBF) && tail ? 4 : 0;
  if (in(b0, 0xF1, 0xF3)) return in(b(1), 0x80, 0xBF) && tail ? 4 : 0;
  if (b0 == 0xF4) return in(b(1), 0x80, 0x8F) && tail ? 4 : 0;
  return 0;
}

inline bool well_formed(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = well_formed_at(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// The code points of `s`, each byte that starts no well-formed sequence
// read as U+FFFD (one per byte: the product's documented rule).
inline std::vector<char32_t> code_points(std::string_view s) {
  std::vector<char32_t> out;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = well_formed_at(s, i);
    if (n == 0) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    const auto b0 = static_cast<unsigned char>(s[i]);
    char32_t cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += n;
  }
  return out;
}

inline std::string to_utf8(const std::vector<char32_t>& cps) {
  std::string out;
  for (const char32_t cp : cps) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return out;
}

}  // namespace postino::fuzz
