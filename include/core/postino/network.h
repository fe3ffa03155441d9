// IP addresses and CIDR networks, for every part that matches a client
// address against a list: the connection-limit exemptions (app), relay
// rules (credit) and their validation in the configuration (core). Plain
// values; parsing reads the caller's views and keeps nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postino::core {

// An address or a network: IPv4 in the first 4 bytes; `prefix` in bits.
struct ip_network {
  std::uint8_t bytes[16] = {};
  std::uint8_t prefix = 0;
  bool v4 = false;
};

// A textual address as a /32 or /128; an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d, a dual-stack listener's IPv4 client) counts as IPv4.
std::optional<ip_network> parse_address(std::string_view text);
// "192.0.2.0/24", "2001:db8::/48"; a bare address is a /32 or /128. Host
// bits must be zero (192.0.2.1/24 is most often a typo): `why` says so, and
// names the network meant.
std::optional<ip_network> parse_network(std::string_view text, std::string& why);
std::string network_text(const ip_network& n);
bool network_contains(const ip_network& n, const ip_network& address);
// `ip` is textual; false when it is no address.
bool network_contains(const ip_network& n, std::string_view ip);

}  // namespace postino::core
