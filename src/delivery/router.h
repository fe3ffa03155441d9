// Which SMSC account takes a recipient (DESIGN.md "Delivery"): the routes of
// gateway_config ([[route]]: destination prefix -> SMSC accounts in failover
// order; the longest prefix wins; without routes every number goes to every
// SMSC in file order), whether an SMSC is up, and when a down SMSC's queue
// moves to the next SMSC of its routes (failover_after_s). One router per
// shard's engine; every shard routes, only an SMSC's owning shard marks it
// up or down. Pure but for the shared clocks it reads and the owner writes.
// Buffers: the router owns its route table (prefixes copied, SMSC names
// resolved to indexes in config.smscs); the per-SMSC "down since" clocks
// belong to delivery::shared_state and must outlive the router.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "postino/config.h"

namespace postino::delivery {

class router {
 public:
  // `down_since_ms`: one clock per SMSC of config.smscs, shared by every
  // shard: 0 while some bind of that SMSC is up, else the time (ms, the
  // shards' monotonic clock, never 0) it went down.
  router(const gateway_config& config, std::atomic<std::uint64_t>* down_since_ms);

  // The SMSC for an E.164 number: the first SMSC of its route that is up,
  // else the route's first (it will queue there). -1: routes are configured
  // and none covers the number.
  int choose(std::string_view e164) const;
  // Failover's choice for a segment queued for `from`: the first other SMSC
  // of the number's route that is up. -1: none is.
  int choose_instead_of(std::string_view e164, int from) const;

  bool up(int smsc) const;
  // The owning shard's view of its binds: one is bound now ...
  void mark_up(int smsc);
  // ... or none is since `since_ms` (any more, or yet: at start-up the
  // failover clock starts while the first binds connect).
  void mark_down(int smsc, std::uint64_t since_ms);

  // An SMSC's queue should move now: it has been down for failover_after_s
  // and some route lists it together with another SMSC that is up. The
  // value is how long it has been down (ms), for the log.
  std::optional<std::uint64_t> failover_due(int smsc, std::uint64_t now_ms) const;

 private:
  struct route {
    std::string prefix;       // digits; "" matches every number
    std::vector<int> smscs;   // indexes in config.smscs, failover order
  };
  const route* route_for(std::string_view e164) const;
  bool alternative_up(int smsc) const;

  std::vector<route> routes_;  // longest prefix first
  std::atomic<std::uint64_t>* down_since_ms_;
  std::uint64_t failover_after_ms_;
};

}  // namespace postino::delivery
