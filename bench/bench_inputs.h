// Inputs shared by the micro-benchmarks (bench/*_bench.cc) and shaped like
// real traffic: GSM-alphabet message text in CRLF lines of at most 78
// characters, some lines dot-stuffed, as postino-load and mail clients send
// it. Every function returns a new string the caller owns; nothing here is
// on a measured path.
#pragma once

#include <cstddef>
#include <string>

namespace postino::bench {

// `chars` characters of printable GSM text, deterministic.
inline std::string gsm_text(std::size_t chars) {
  static const char words[] =
      "Promo: 20% di sconto su tutto il negozio fino a domenica, ti aspettiamo in via Roma 12! ";
  std::string s;
  s.reserve(chars);
  while (s.size() < chars) s.push_back(words[s.size() % (sizeof words - 1)]);
  return s;
}

// DATA text as a client sends it: `total` bytes in all, the CRLF.CRLF
// terminator included, lines of up to 78 characters, every 16th line starting
// with a stuffed dot (". ..." sent as ".. ..."). total must be at least 8.
inline std::string data_text(std::size_t total) {
  const std::string words = gsm_text(78 + 16);
  std::size_t remaining = total - 5;  // "\r\n.\r\n" closes the last line
  std::string s;
  s.reserve(total);
  for (std::size_t line = 0;; ++line) {
    const std::size_t len = remaining > 80 ? 78 : remaining;
    const std::size_t at = s.size();
    s.append(words, line % 16, len);
    if (line % 16 == 15 && len >= 2) s[at] = s[at + 1] = '.';
    if (remaining <= 80) break;
    s += "\r\n";
    remaining -= 80;
  }
  s += "\r\n.\r\n";
  return s;
}

}  // namespace postino::bench
