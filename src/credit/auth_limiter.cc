// The per-address failed-AUTH limit (declared in postino/credit.h). Pure,
// single-threaded logic owned by one shard; it keeps a small bucket per
// address it has seen lately and forgets buckets that are full and idle, so
// a sweep of many addresses does not make it grow without bound. Holds no
// buffers beyond its own table.
#include <algorithm>

#include "postino/credit.h"

namespace postino::credit {
namespace {

constexpr double minute_ms = 60'000.0;
// Past this many addresses, full idle buckets are dropped (they hold nothing
// a fresh bucket would not).
constexpr std::size_t sweep_above = 65'536;

}  // namespace

auth_limiter::bucket& auth_limiter::refill(const std::string& address, std::uint64_t now_ms) {
  if (buckets_.size() >= sweep_above && buckets_.find(address) == buckets_.end()) forget_idle(now_ms);
  auto [it, fresh] = buckets_.try_emplace(address);
  bucket& b = it->second;
  if (fresh) {
    b.tokens = per_minute_;
  } else if (now_ms > b.refilled_ms) {
    const double earned = static_cast<double>(now_ms - b.refilled_ms) * per_minute_ / minute_ms;
    b.tokens = std::min<double>(per_minute_, b.tokens + earned);
  }
  b.refilled_ms = std::max(b.refilled_ms, now_ms);
  return b;
}

void auth_limiter::forget_idle(std::uint64_t now_ms) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    bucket& b = it->second;
    const double earned = static_cast<double>(now_ms - std::min(now_ms, b.refilled_ms)) * per_minute_ / minute_ms;
    const bool full = b.tokens + earned >= per_minute_;
    it = full && b.under_way == 0 ? buckets_.erase(it) : std::next(it);
  }
}

bool auth_limiter::try_begin(const std::string& address, std::uint64_t now_ms) {
  bucket& b = refill(address, now_ms);
  if (static_cast<double>(b.under_way) + 1 > b.tokens) return false;
  ++b.under_way;
  b.refusing = false;
  return true;
}

void auth_limiter::end(const std::string& address, bool failed, std::uint64_t now_ms) {
  bucket& b = refill(address, now_ms);
  if (b.under_way > 0) --b.under_way;
  if (failed) b.tokens = std::max(0.0, b.tokens - 1);
}

bool auth_limiter::first_refusal(const std::string& address) {
  auto it = buckets_.find(address);
  if (it == buckets_.end() || it->second.refusing) return false;
  it->second.refusing = true;
  return true;
}

unsigned auth_home_shard(std::string_view address, unsigned shards) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : address) h = (h ^ c) * 1099511628211ull;
  return shards == 0 ? 0 : static_cast<unsigned>(h % shards);
}

}  // namespace postino::credit
