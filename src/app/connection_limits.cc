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

#include <optional>

namespace postino::app {
namespace {

// The first `n` bytes of an address as one key.
std::uint64_t first_bytes(const core::ip_network& a, unsigned n) {
  std::uint64_t key = 0;
  for (unsigned i = 0; i < n; ++i) key = (key << 8) | a.bytes[i];
  return key;
}

}  // namespace

connection_limits::connection_limits(std::uint32_t per_ip, std::uint32_t per_account,
                                     const std::vector<std::string>& exempt)
    : per_ip_(per_ip), per_account_(per_account) {
  std::string why;  // the configuration reader has checked every entry
  for (const std::string& text : exempt)
    if (auto n = core::parse_network(text, why)) exempt_.push_back(*n);
}

// The table and key of a counted address; null when the address is exempt,
// unparsable ("unknown": the kernel could not say) or the limit is off.
connection_limits::table* connection_limits::peer_table(std::string_view ip, std::uint64_t& key) {
  if (per_ip_ == 0) return nullptr;
  const std::optional<core::ip_network> a = core::parse_address(ip);
  if (!a) return nullptr;
  for (const core::ip_network& net : exempt_)
    if (core::network_contains(net, *a)) return nullptr;
  key = first_bytes(*a, a->v4 ? 4 : 8);  // IPv6: the /64
  return a->v4 ? &peers_v4_ : &peers_v6_;
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
