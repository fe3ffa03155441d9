// Routing by destination prefix, the choice of SMSC and failover order
// (router.h). Buffers: the route table is the router's own; the down-since
// clocks are shared_state's, read relaxed (a stale read only delays a choice
// by one tick: the owning shard is the only writer).
#include "router.h"

#include <algorithm>
#include <unordered_map>

#include "segment.h"

namespace postino::delivery {

router::router(const gateway_config& config, std::atomic<std::uint64_t>* down_since_ms)
    : down_since_ms_(down_since_ms), failover_after_ms_(config.delivery.failover_after_s * 1000ull) {
  std::unordered_map<std::string, int> index;
  for (std::size_t i = 0; i < config.smscs.size(); ++i) index[config.smscs[i].name] = static_cast<int>(i);
  for (const auto& r : config.routes) {
    route out{r.prefix, {}};
    // The configuration loader has checked that every name exists.
    for (const auto& name : r.smscs) out.smscs.push_back(index.at(name));
    routes_.push_back(std::move(out));
  }
  if (routes_.empty()) {
    route all{"", {}};
    for (std::size_t i = 0; i < config.smscs.size(); ++i) all.smscs.push_back(static_cast<int>(i));
    routes_.push_back(std::move(all));
  }
  // Stable: among equal prefixes the file's order decides.
  std::stable_sort(routes_.begin(), routes_.end(),
                   [](const route& a, const route& b) { return a.prefix.size() > b.prefix.size(); });
}

const router::route* router::route_for(std::string_view e164) const {
  const std::string_view digits = e164_digits(e164);
  for (const auto& r : routes_)
    if (digits.substr(0, r.prefix.size()) == r.prefix) return &r;
  return nullptr;
}

int router::choose(std::string_view e164) const {
  const route* r = route_for(e164);
  if (r == nullptr) return -1;
  for (int i : r->smscs)
    if (up(i)) return i;
  return r->smscs.front();
}

int router::choose_instead_of(std::string_view e164, int from) const {
  const route* r = route_for(e164);
  if (r == nullptr) return -1;
  for (int i : r->smscs)
    if (i != from && up(i)) return i;
  return -1;
}

bool router::up(int smsc) const { return down_since_ms_[smsc].load(std::memory_order_relaxed) == 0; }

void router::mark_up(int smsc) { down_since_ms_[smsc].store(0, std::memory_order_relaxed); }

void router::mark_down(int smsc, std::uint64_t since_ms) {
  // 0 means up, so a clock that reads 0 is stored as 1.
  down_since_ms_[smsc].store(std::max<std::uint64_t>(1, since_ms), std::memory_order_relaxed);
}

bool router::alternative_up(int smsc) const {
  for (const auto& r : routes_)
    if (std::find(r.smscs.begin(), r.smscs.end(), smsc) != r.smscs.end())
      for (int other : r.smscs)
        if (other != smsc && up(other)) return true;
  return false;
}

std::optional<std::uint64_t> router::failover_due(int smsc, std::uint64_t now_ms) const {
  const std::uint64_t since = down_since_ms_[smsc].load(std::memory_order_relaxed);
  if (since == 0 || now_ms - since < failover_after_ms_) return std::nullopt;
  // Without an SMSC to move to, the queue is not walked every tick.
  if (!alternative_up(smsc)) return std::nullopt;
  return now_ms - since;
}

}  // namespace postino::delivery
