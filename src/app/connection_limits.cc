// The concurrent-connection limits across shards (connection_limits.h).
//
// Why stripes of mutexes, not the home-shard pattern of the AUTH limiter:
// the per-address check decides the very first reply (421 instead of the
// 220 greeting), and a connection's count must come down exactly once on
// every path (teardown, shutdown, a failed TLS handshake). Asking the
// address's home shard through the mailboxes would make the greeting wait a
// round trip and make the release a message that a stopping runtime may no
// longer deliver. Here admit and leave are one short critical section on one
// of 64 stripes chosen by the address: no lock is shared by all shards, two
// shards meet only when their clients' addresses land on the same stripe at
// the same instant, and the session releases what it was granted from its
// destructor, which every path runs once. A fixed table of atomics would
// need no lock but would let addresses that collide share (and exhaust) one
// count. An address's entry is erased when its count falls to 0, so the
// maps hold only addresses connected now. Owns its tables; no buffers.
#include "connection_limits.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace postino::app {
namespace {

bool parse_address(const std::string& text, network_block& out) {
  in6_addr v6{};
  in_addr v4{};
  out.bytes.fill(0);
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    std::memcpy(out.bytes.data(), &v4, 4);
    out.v4 = true;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) return false;
  std::memcpy(out.bytes.data(), &v6, 16);
  out.v4 = false;
  return true;
}

bool inside(const network_block& address, const network_block& net) {
  if (address.v4 != net.v4) return false;
  const unsigned whole = net.bits / 8, rest = net.bits % 8;
  if (std::memcmp(address.bytes.data(), net.bytes.data(), whole) != 0) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (address.bytes[whole] & mask) == (net.bytes[whole] & mask);
}

std::uint64_t first_bytes(const network_block& a, unsigned n) {
  std::uint64_t key = 0;
  for (unsigned i = 0; i < n; ++i) key = (key << 8) | a.bytes[i];
  return key;
}

}  // namespace

bool parse_network_block(std::string_view text, network_block& out) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash + 1 == text.size()) return false;
  unsigned bits = 0;
  const auto [p, ec] = std::from_chars(text.data() + slash + 1, text.data() + text.size(), bits);
  if (ec != std::errc{} || p != text.data() + text.size()) return false;
  if (!parse_address(std::string(text.substr(0, slash)), out)) return false;
  if (bits > (out.v4 ? 32u : 128u)) return false;
  out.bits = bits;
  return true;
}

connection_limits::connection_limits(std::uint32_t per_ip, std::uint32_t per_account,
                                     const std::vector<std::string>& exempt)
    : per_ip_(per_ip), per_account_(per_account) {
  for (const std::string& text : exempt) {
    network_block b;
    if (parse_network_block(text, b)) exempt_.push_back(b);
  }
}

// The table and key of a counted address; null when the address is exempt,
// unparsable ("unknown": the kernel could not say) or the limit is off.
connection_limits::table* connection_limits::peer_table(std::string_view ip, std::uint64_t& key) {
  if (per_ip_ == 0) return nullptr;
  network_block a;
  if (!parse_address(std::string(ip), a)) return nullptr;
  for (const network_block& net : exempt_)
    if (inside(a, net)) return nullptr;
  key = first_bytes(a, a.v4 ? 4 : 8);  // IPv6: the /64
  return a.v4 ? &peers_v4_ : &peers_v6_;
}

connection_limits::admission connection_limits::admit(table& t, std::uint64_t key, std::uint32_t limit) {
  stripe& s = stripe_of(t, key);
  std::lock_guard guard(s.lock);
  std::uint32_t& n = s.counts[key];
  if (n >= limit) return admission::refused;  // an entry at the limit is never 0: nothing to erase
  ++n;
  return admission::counted;
}

void connection_limits::leave(table& t, std::uint64_t key) {
  stripe& s = stripe_of(t, key);
  std::lock_guard guard(s.lock);
  auto it = s.counts.find(key);
  if (it == s.counts.end()) return;
  if (--it->second == 0) s.counts.erase(it);
}

smtp::connection_gate::admission connection_limits::admit_peer(std::string_view peer_ip) {
  std::uint64_t key = 0;
  table* t = peer_table(peer_ip, key);
  return t == nullptr ? admission::uncounted : admit(*t, key, per_ip_);
}

void connection_limits::leave_peer(std::string_view peer_ip) {
  std::uint64_t key = 0;
  if (table* t = peer_table(peer_ip, key)) leave(*t, key);
}

smtp::connection_gate::admission connection_limits::admit_account(account_id account) {
  return per_account_ == 0 ? admission::uncounted : admit(accounts_, account, per_account_);
}

void connection_limits::leave_account(account_id account) {
  if (per_account_ != 0) leave(accounts_, account);
}

}  // namespace postino::app
