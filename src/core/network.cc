// IP addresses and CIDR networks (include/core/postino/network.h), on
// inet_pton/inet_ntop. Nothing is kept: every function works on its
// arguments.
#include "postino/network.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace postino::core {
namespace {

bool prefix_matches(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) {
  const unsigned whole = bits / 8, rest = bits % 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

std::optional<ip_network> parse_address(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  ip_network a;
  if (inet_pton(AF_INET, buffer, a.bytes) == 1) {
    a.v4 = true;
    a.prefix = 32;
    return a;
  }
  if (inet_pton(AF_INET6, buffer, a.bytes) != 1) return std::nullopt;
  static constexpr std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  a.v4 = std::memcmp(a.bytes, mapped, sizeof mapped) == 0;
  if (a.v4) {
    std::memmove(a.bytes, a.bytes + 12, 4);
    std::memset(a.bytes + 4, 0, 12);
  }
  a.prefix = a.v4 ? 32 : 128;
  return a;
}

std::optional<ip_network> parse_network(std::string_view text, std::string& why) {
  const std::size_t slash = text.find('/');
  std::optional<ip_network> n = parse_address(text.substr(0, slash));
  if (!n) {
    why = "'" + std::string(text) + "' is not an IPv4 or IPv6 network (CIDR, e.g. 192.0.2.0/24 or 2001:db8::/48)";
    return std::nullopt;
  }
  const unsigned max_bits = n->v4 ? 32 : 128;
  unsigned bits = max_bits;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), bits);
    if (p.empty() || ec != std::errc{} || end != p.data() + p.size() || bits > max_bits) {
      why = "'" + std::string(text) + "': the prefix length must be 0 to " + std::to_string(max_bits);
      return std::nullopt;
    }
  }
  n->prefix = static_cast<std::uint8_t>(bits);
  ip_network masked = *n;
  for (unsigned i = bits; i < max_bits; ++i) masked.bytes[i / 8] &= static_cast<std::uint8_t>(~(0x80 >> (i % 8)));
  if (std::memcmp(masked.bytes, n->bytes, 16) != 0) {
    why = "'" + std::string(text) + "' has host bits set (did you mean " + network_text(masked) + "?)";
    return std::nullopt;
  }
  return n;
}

std::string network_text(const ip_network& n) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(n.v4 ? AF_INET : AF_INET6, n.bytes, buffer, sizeof buffer);
  return std::string(buffer) + "/" + std::to_string(n.prefix);
}

bool network_contains(const ip_network& n, const ip_network& address) {
  return address.v4 == n.v4 && prefix_matches(address.bytes, n.bytes, n.prefix);
}

bool network_contains(const ip_network& n, std::string_view ip) {
  const std::optional<ip_network> a = parse_address(ip);
  return a && network_contains(n, *a);
}

}  // namespace postino::core
