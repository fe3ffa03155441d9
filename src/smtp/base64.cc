// Strict base64 decoding for SASL responses. Hand-written instead of OpenSSL's
// EVP_DecodeBlock because that one skips whitespace and reports padding only
// through its length arithmetic, and here every malformed response must become
// `501 5.5.2 Cannot decode response`. Touches only the caller's views/strings.
#include "base64.h"

#include <array>
#include <cstdint>

namespace postino::smtp {
namespace {

constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (std::size_t i = 0; i < alphabet.size(); ++i)
    t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}

constexpr auto table = make_table();

}  // namespace

bool decode_base64(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() % 4 != 0) return false;
  std::size_t padding = 0;
  if (!in.empty() && in.back() == '=') padding = (in.size() >= 2 && in[in.size() - 2] == '=') ? 2 : 1;
  out.resize(in.size() / 4 * 3);
  char* w = out.data();
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    std::uint32_t group = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      const char c = in[i + j];
      std::int8_t v = table[static_cast<unsigned char>(c)];
      if (c == '=' && last && j >= 4 - padding) v = 0;
      if (v < 0) return false;
      group = (group << 6) | static_cast<std::uint32_t>(v);
    }
    *w++ = static_cast<char>((group >> 16) & 0xff);
    *w++ = static_cast<char>((group >> 8) & 0xff);
    *w++ = static_cast<char>(group & 0xff);
  }
  out.resize(out.size() - padding);
  return true;
}

std::string encode_base64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    std::uint32_t g = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8) |
                      std::uint8_t(in[i + 2]);
    out.push_back(alphabet[(g >> 18) & 63]);
    out.push_back(alphabet[(g >> 12) & 63]);
    out.push_back(alphabet[(g >> 6) & 63]);
    out.push_back(alphabet[g & 63]);
  }
  if (i < in.size()) {
    std::uint32_t g = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) g |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    out.push_back(alphabet[(g >> 18) & 63]);
    out.push_back(alphabet[(g >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? alphabet[(g >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

}  // namespace postino::smtp
