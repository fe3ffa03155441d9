// The concurrent-connection limits of PROTOCOL.md 5 (per source address, an
// IPv6 client counted by its /64, and per account), shared by every shard:
// the smtp::connection_gate the SMTP sessions ask at connect and at AUTH.
// Counts live in a fixed set of stripes, each a mutex and a small hash map;
// see connection_limits.cc for why. Owns its tables; holds no buffers.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "postino/network.h"
#include "postino/smtp.h"

namespace postino::app {

class connection_limits final : public smtp::connection_gate {
 public:
  // 0 turns a limit off; `exempt` addresses are never counted per address.
  connection_limits(std::uint32_t per_ip, std::uint32_t per_account, const std::vector<std::string>& exempt);

  admission admit_peer(std::string_view peer_ip) override;
  void leave_peer(std::string_view peer_ip) override;
  admission admit_account(account_id account) override;
  void leave_account(account_id account) override;

 private:
  static constexpr std::size_t stripes = 64;
  struct stripe {
    std::mutex lock;
    std::unordered_map<std::uint64_t, std::uint32_t> counts;
  };
  using table = std::array<stripe, stripes>;
  // Exact keys (never a hash: two clients must not share a count): the IPv4
  // address, or an IPv6 address's first 64 bits, in its family's table; the
  // account id in the accounts' table. The stripe is a hash of the key.
  table* peer_table(std::string_view ip, std::uint64_t& key);
  static admission admit(table& t, std::uint64_t key, std::uint32_t limit);
  static void leave(table& t, std::uint64_t key);
  static stripe& stripe_of(table& t, std::uint64_t key) { return t[(key * 0x9E3779B97F4A7C15ull) >> 58]; }

  std::uint32_t per_ip_;
  std::uint32_t per_account_;
  std::vector<core::ip_network> exempt_;
  table peers_v4_;
  table peers_v6_;
  table accounts_;
};

}  // namespace postino::app
