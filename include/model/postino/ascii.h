// ASCII text helpers for every part (model: the standard library and nothing
// else). SMTP verbs and parameters, header field names, MIME parameters,
// receipt keywords and E.164 digits are ASCII and compared without case;
// these never consult the locale, so a byte above 0x7F is only ever equal to
// itself. Views in, views out: nothing here allocates except join, to_lower
// and to_upper, which return a new string the caller owns.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace postino {

constexpr char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr char ascii_upper(char c) noexcept { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// True for one or more of 0-9 and nothing else.
constexpr bool all_digits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_digit(c)) return false;
  return true;
}

constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

constexpr bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Without the characters of `drop` at either end; by default ASCII white
// space (SP, HTAB, CR, LF).
constexpr std::string_view trim(std::string_view s, std::string_view drop = " \t\r\n") noexcept {
  const auto first = s.find_first_not_of(drop);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(drop) - first + 1);
}

// Without the blanks (SP, HTAB) and CRs at either end: a header line's or
// parameter's padding, where an LF would be structure, not padding.
constexpr std::string_view trim_blanks(std::string_view s) noexcept { return trim(s, " \t\r"); }

// The items with `separator` between them ("a,b,c" for ",").
inline std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out;
}

inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

inline std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_upper(c);
  return out;
}

}  // namespace postino
