// The per-account rate limit (MAIL; src/credit/README.md, "Rate limit") on a
// shard. It runs on the lease code with its own lease_channel: the home's
// "balance" is a token bucket it refills from the clock, shards spend tokens
// from leases, and a refusal comes only after a recall round. Buffers: the
// channel, the buckets and the limits seen are this object's; a waiting
// connection is its waiter's token and outlives the result.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "lease_channel.h"
#include "postino/io.h"
#include "postino/runtime.h"

namespace postino::app {

class rate_limiter {
 public:
  explicit rate_limiter(core::shard& shard) : shard_(shard), channel_(shard, *this) {}

  // MAIL of a rate-limited account: may it send one more message now?
  void check(io::connection& c);
  // End of batch: spent tokens go home.
  void flush_reports() { channel_.flush(); }
  void arm_tick() { channel_.arm_tick(); }

  // This piece on shard `s` (its gateway's; defined in gateway.cc).
  static rate_limiter& at(core::shard& s);

  // --- lease_channel's owner ------------------------------------------------
  static lease_channel<rate_limiter>& channel_at(core::shard& s) { return at(s).channel_; }
  void on_result(const credit::lease_wallet::result& r);
  // The limit this shard's sessions last asked with: the home refills by it.
  std::uint32_t request_hint(account_id id) const;
  void before_request(account_id id, std::uint32_t per_second) { refill(id, per_second); }
  static constexpr bool counted = false;

 private:
  // One message is token_units; a bucket of R per second refills R units per
  // millisecond and holds at most R x token_units (a burst of one second).
  static constexpr credit_units token_units = 1000;

  struct bucket {
    std::uint32_t per_second = 0;
    std::uint64_t refilled_ms = 0;
  };

  void spend_token(account_id id, bool spent);
  void refill(account_id id, std::uint32_t per_second);

  core::shard& shard_;
  lease_channel<rate_limiter> channel_;
  std::unordered_map<account_id, bucket> buckets_;           // home side, per limited account
  std::unordered_map<account_id, std::uint32_t> rate_seen_;  // the limit sessions last asked with
};

}  // namespace postino::app
