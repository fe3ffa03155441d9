// Message tokens leased like credit (see rate_limit.h): the shard side takes
// a token per MAIL, the home side refills each account's bucket before it
// decides a request. Everything runs on the shard's thread.
#include "rate_limit.h"

#include <algorithm>

#include "smtp_endpoint.h"

namespace postino::app {

std::uint32_t rate_limiter::request_hint(account_id id) const {
  auto it = rate_seen_.find(id);
  return it == rate_seen_.end() ? 1 : it->second;
}

void rate_limiter::check(io::connection& c) {
  const auto& req = smtp_of(c).pending_rate_check();
  rate_seen_[req.account] = req.per_second;
  credit_units available = 0;
  if (channel_.try_take(req.account, credit::lease_wallet::use::debit, token_units, available)) {
    spend_token(req.account, true);
    smtp_of(c).resolve(smtp::rate_check_result{true});
    c.complete();
    return channel_.arm_tick();
  }
  channel_.wait(req.account, {&c, credit::lease_wallet::use::debit, token_units});
}

void rate_limiter::on_result(const credit::lease_wallet::result& r) {
  auto* c = static_cast<io::connection*>(r.token);
  const account_id id = smtp_of(*c).pending_rate_check().account;
  // A token taken for a client that left goes back into the lease.
  if (r.ok) spend_token(id, !c->gone());
  if (!c->gone()) smtp_of(*c).resolve(smtp::rate_check_result{r.ok});
  c->complete();
}

// A token is spent the moment it is taken: "settled durable" in the
// wallet's terms, so it is reported home at the end of the batch.
void rate_limiter::spend_token(account_id id, bool spent) { channel_.settle(id, token_units, spent); }

// Home side: tops the bucket up for the time since the last refill, before
// a request is decided. The cap counts leased and unreported tokens too,
// so the account can never hold more than one second's burst anywhere.
void rate_limiter::refill(account_id id, std::uint32_t per_second) {
  if (per_second == 0) per_second = 1;
  const std::uint64_t now = shard_.now_ms();
  const credit_units burst = static_cast<credit_units>(per_second) * token_units;
  credit::lease_authority& authority = channel_.authority();
  auto [it, fresh] = buckets_.try_emplace(id, bucket{per_second, now});
  if (fresh) return authority.set_balance(id, burst);
  bucket& b = it->second;
  const std::uint64_t elapsed = std::min<std::uint64_t>(now - b.refilled_ms, 1000);
  b.refilled_ms = now;
  b.per_second = per_second;  // a changed limit applies from now on
  const credit_units room = burst - authority.balance(id);
  const credit_units add = std::min(static_cast<credit_units>(elapsed) * per_second, room);
  if (add <= 0) return;
  credit::lease_authority::outbox unused;
  authority.credit(id, add, unused);
}

}  // namespace postino::app
