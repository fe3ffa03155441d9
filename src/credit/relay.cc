// Relay rules (PROTOCOL.md 5a): parsing and canonical forms of the CIDR
// networks and sender domains an account relays for, and relay_directory,
// the in-memory table a relay listener's MAIL is looked up in. Parsing works
// on the caller's views; a directory owns copies of everything it holds and
// is immutable once loaded, so shards share it through a shared_ptr.
#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "postino/ascii.h"
#include "postino/credit.h"

namespace postino::credit {
namespace {

// The 16 bytes of a textual address (IPv4 as its 4 first bytes), or false.
bool parse_address(std::string_view text, std::uint8_t (&bytes)[16], bool& v4) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  std::memset(bytes, 0, sizeof bytes);
  if (inet_pton(AF_INET, buffer, bytes) == 1) {
    v4 = true;
    return true;
  }
  if (inet_pton(AF_INET6, buffer, bytes) != 1) return false;
  // ::ffff:a.b.c.d, as a dual-stack listener shows an IPv4 client.
  static constexpr std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  v4 = std::memcmp(bytes, mapped, sizeof mapped) == 0;
  if (v4) {
    std::memmove(bytes, bytes + 12, 4);
    std::memset(bytes + 4, 0, 12);
  }
  return true;
}

bool prefix_matches(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) {
  const unsigned whole = bits / 8, rest = bits % 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  if (rest == 0) return true;
  const std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

// A DNS name: labels of letters, digits and '-', 1 to 63 octets, 253 in all.
bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i <= d.size(); ++i) {
    if (i == d.size() || d[i] == '.') {
      if (label == 0 || label > 63 || d[i - 1] == '-' || d[i - label] == '-') return false;
      label = 0;
      continue;
    }
    const char c = d[i];
    if (!is_digit(c) && (ascii_lower(c) < 'a' || ascii_lower(c) > 'z') && c != '-') return false;
    ++label;
  }
  return true;
}

}  // namespace

std::optional<ip_network> parse_network(std::string_view text, std::string& why) {
  ip_network n;
  const std::size_t slash = text.find('/');
  if (!parse_address(text.substr(0, slash), n.bytes, n.v4)) {
    why = "'" + std::string(text) + "' is not an IPv4 or IPv6 network (CIDR, e.g. 192.0.2.0/24 or 2001:db8::/48)";
    return std::nullopt;
  }
  const unsigned max_bits = n.v4 ? 32 : 128;
  unsigned bits = max_bits;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), bits);
    if (p.empty() || ec != std::errc{} || end != p.data() + p.size() || bits > max_bits) {
      why = "'" + std::string(text) + "': the prefix length must be 0 to " + std::to_string(max_bits);
      return std::nullopt;
    }
  }
  n.prefix = static_cast<std::uint8_t>(bits);
  // Host bits set (192.0.2.1/24) are most often a typo for another network.
  ip_network masked = n;
  for (unsigned i = bits; i < max_bits; ++i) masked.bytes[i / 8] &= static_cast<std::uint8_t>(~(0x80 >> (i % 8)));
  if (std::memcmp(masked.bytes, n.bytes, 16) != 0) {
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

bool network_contains(const ip_network& n, std::string_view ip) {
  std::uint8_t bytes[16];
  bool v4 = false;
  if (!parse_address(ip, bytes, v4) || v4 != n.v4) return false;
  return prefix_matches(bytes, n.bytes, n.prefix);
}

bool canonical_networks(const std::vector<std::string>& in, std::vector<std::string>& out, std::string& why) {
  out.clear();
  for (const std::string& item : in) {
    auto n = parse_network(item, why);
    if (!n) return false;
    out.push_back(network_text(*n));
  }
  return true;
}

bool canonical_domains(const std::vector<std::string>& in, std::vector<std::string>& out, std::string& why) {
  out.clear();
  for (const std::string& item : in) {
    if (!valid_domain(item)) {
      why = "'" + item + "' is not a domain name";
      return false;
    }
    out.push_back(to_lower(item));
  }
  return true;
}

std::shared_ptr<const relay_directory> relay_directory::load(account_store& store, std::string& error) {
  auto rules = store.list_relays();
  if (!store.last_error().empty()) {
    error = store.last_error();
    return nullptr;
  }
  auto d = std::make_shared<relay_directory>();
  for (relay_rule& rule : rules) {
    auto account = store.find_by_id(rule.account);
    if (!account) {
      if (!store.last_error().empty()) {
        error = store.last_error();
        return nullptr;
      }
      continue;  // removed meanwhile: its rule went with it
    }
    entry e;
    std::string why;
    for (const std::string& text : rule.networks)
      if (auto n = parse_network(text, why)) e.networks.push_back(*n);  // stored canonical: always parses
    e.domains = std::move(rule.domains);
    e.account = std::move(account->settings);
    d->entries_.push_back(std::move(e));
  }
  return d;
}

const account_settings* relay_directory::find(std::string_view ip, std::string_view domain) const {
  const entry* best = nullptr;
  int best_prefix = -1;
  for (const entry& e : entries_) {
    bool domain_ok = false;
    for (const std::string& d : e.domains) domain_ok = domain_ok || iequals(d, domain);
    if (!domain_ok) continue;
    for (const ip_network& n : e.networks)
      if (n.prefix > best_prefix && network_contains(n, ip)) {
        best = &e;
        best_prefix = n.prefix;
      }
  }
  return best != nullptr ? &best->account : nullptr;
}

}  // namespace postino::credit
