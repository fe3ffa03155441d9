// Credit leases (declared in postino/credit.h): the home shard's
// lease_authority and every shard's lease_wallet. Pure single-threaded logic;
// messages leave through the caller's outbox and arrive through on_*(), and
// the protocol relies only on each (sender, receiver) pair being FIFO, which
// the shard mailboxes are. Holds no buffers beyond its own tables.
//
// Invariants, per account (checked, a broken one aborts with a message):
//   home:   0 <= leased <= balance <= max_balance, leased == sum of granted[shard];
//   shard:  granted[shard] == lease + in_flight + unreported spent + what is
//           in transit between the two, so the sum of every debit can never
//           exceed the balance.
// Why refusals are account-wide: the home refuses only after a recall round
// (every shard holding a grant, the asker included, hands back its unspent
// lease, and no grant is made while the round runs), and after a round it
// grants exactly what each queued request needs, so no slice that a later
// refusal could have used is left sitting idle anywhere. A shard answering a
// recall restates the need of its own queued request, because the lease that
// need was computed against has just gone home. Debits in flight (taken, not
// yet durable) are spent as far as a refusal is concerned.
// Arithmetic: balances, leases and grants stay within 0..max_balance, so
// sums of them cannot overflow; amounts that arrive from elsewhere (a top-up,
// a refund, a waiter's price, a shard's report) are added with overflow
// checks: saturating where the value is outside input (a price that
// saturated, a refund past the maximum is cut to it), aborting where only a
// bug of ours could overflow.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "postino/credit.h"

namespace postino::credit {
namespace {

[[noreturn]] void broken(const char* what, account_id id) {
  std::fprintf(stderr, "postino: credit lease invariant broken for account %llu: %s\n",
               static_cast<unsigned long long>(id), what);
  std::abort();
}

credit_units saturating_add(credit_units a, credit_units b) {
  credit_units r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? std::numeric_limits<credit_units>::max() : std::numeric_limits<credit_units>::min();
  return r;
}

// a + b where only a bug of ours could overflow (both are leases or debits
// already bounded by a balance).
credit_units checked_add(credit_units a, credit_units b, const char* what, account_id id) {
  credit_units r;
  if (__builtin_add_overflow(a, b, &r)) broken(what, id);
  return r;
}

}  // namespace

// ---------------------------------------------------------------- authority

lease_authority::account_state& lease_authority::state(account_id id) {
  account_state& a = accounts_[id];
  if (a.granted.empty()) a.granted.assign(shards_, 0);
  return a;
}

// Start-up cuts every balance to 0..max_balance before it gets here, so a
// value outside is our bug, not the data's.
void lease_authority::set_balance(account_id id, credit_units balance) {
  if (balance < 0 || balance > max_balance) broken("balance set outside 0..max_balance", id);
  account_state& a = state(id);
  a.balance = balance;
  if (a.balance < a.leased) broken("balance set below the credit leased out", id);
}

credit_units lease_authority::credit(account_id id, credit_units amount, outbox&) {
  account_state& a = state(id);
  const credit_units before = a.balance;
  // Top-ups past the maximum are refused before they are journaled; a
  // refund that would pass it (a balance topped up to the maximum while
  // the message waited for its receipt) is cut to it.
  a.balance = std::min(saturating_add(a.balance, amount), max_balance);
  // A negative amount (an operator's correction) may not take back what is
  // leased: it is clamped so leased credit stays covered.
  if (a.balance < a.leased) a.balance = a.leased;
  return a.balance - before;
}

credit_units lease_authority::balance(account_id id) const {
  auto it = accounts_.find(id);
  return it == accounts_.end() ? 0 : it->second.balance;
}

credit_units lease_authority::unleased(account_id id) const {
  auto it = accounts_.find(id);
  return it == accounts_.end() ? 0 : it->second.balance - it->second.leased;
}

lease_authority::account_view lease_authority::view(account_id id) const {
  account_view v;
  auto it = accounts_.find(id);
  if (it == accounts_.end()) return v;
  const account_state& a = it->second;
  v.balance = a.balance;
  v.leased = a.leased;
  v.messages = a.messages;
  v.recalling = a.recalls_pending > 0;
  for (credit_units g : a.granted) v.lease_holders += g > 0 ? 1 : 0;
  return v;
}

void lease_authority::on_request(const lease_request& r, outbox& out) {
  account_state& a = state(r.account);
  if (r.shard >= shards_) broken("request from a shard that does not exist", r.account);
  if (a.recalls_pending > 0) {
    a.queued.push_back(r);
    return;
  }
  decide(a, r, false, out);
}

void lease_authority::decide(account_state& a, const lease_request& r, bool after_recall,
                             outbox& out) {
  const credit_units free = a.balance - a.leased;
  const credit_units need = std::max<credit_units>(r.need, 0);
  if (need <= free) {
    if (r.what == lease_request::kind::check) return answer(a, r, 0, false, out);
    credit_units grant = need;
    if (!after_recall) {
      // Beyond the need, what the asker's spend rate wants, but never more
      // than a fair share of what is left, so other shards still find some.
      // want comes from another shard: compared, not subtracted blindly.
      credit_units share = (free - need) / static_cast<credit_units>(shards_);
      const credit_units extra = r.want > need ? r.want - need : 0;  // need >= 0: cannot overflow
      grant += std::min(extra, share);
    }
    return answer(a, r, grant, false, out);
  }
  if (!after_recall) {
    // The asker too: a refusal made while its own unspent lease sat idle
    // would not be account-wide for the next request decided after it.
    for (unsigned s = 0; s < shards_; ++s) {
      if (a.granted[s] <= 0) continue;
      out.recalls.emplace_back(s, r.account);
      ++a.recalls_pending;
    }
    if (a.recalls_pending > 0) {
      a.queued.push_back(r);
      return;
    }
  }
  answer(a, r, 0, true, out);
}

void lease_authority::answer(account_state& a, const lease_request& r, credit_units granted,
                             bool refused, outbox& out) {
  if (granted > 0) {
    a.granted[r.shard] = checked_add(a.granted[r.shard], granted, "a grant overflowed", r.account);
    a.leased = checked_add(a.leased, granted, "the leased total overflowed", r.account);
  }
  if (a.leased > a.balance) broken("granted more than the balance", r.account);
  lease_answer ans;
  ans.account = r.account;
  ans.refused = refused;
  ans.granted = granted;
  ans.unleased = a.balance - a.leased;
  out.answers.emplace_back(r.shard, ans);
}

void lease_authority::on_report(const lease_report& r, outbox& out) {
  account_state& a = state(r.account);
  if (r.shard >= shards_) broken("report from a shard that does not exist", r.account);
  credit_units back = 0;
  if (r.spent < 0 || r.returned < 0 || __builtin_add_overflow(r.spent, r.returned, &back) ||
      back > a.granted[r.shard])
    broken("a shard reported more than it was granted", r.account);
  a.granted[r.shard] -= back;
  a.leased -= back;
  a.balance -= r.spent;
  a.messages += r.messages;
  if (!r.recall_answer) return;
  if (a.recalls_pending == 0) broken("a recall answer nobody asked for", r.account);
  if (r.need > 0)
    for (auto& q : a.queued)
      if (q.shard == r.shard) q.need = r.need;
  if (--a.recalls_pending > 0) return;
  std::vector<lease_request> queued;
  queued.swap(a.queued);
  for (const auto& q : queued) decide(a, q, true, out);
}

// ------------------------------------------------------------------- wallet

bool lease_wallet::try_take(account_id id, use kind, credit_units amount, std::uint64_t now_ms,
                            credit_units& available) {
  auto it = accounts_.find(id);
  if (it == accounts_.end()) {
    available = 0;
    return amount <= 0;
  }
  account_state& a = it->second;
  // Waiters keep their order: a small debit does not overtake a big one.
  if (has_waiters(a) || a.lease < amount) return false;
  available = a.lease;
  if (kind == use::debit) take(a, std::max<credit_units>(amount, 0), now_ms);
  return true;
}

void lease_wallet::take(account_state& a, credit_units amount, std::uint64_t now_ms) {
  a.lease -= amount;  // amount <= lease: the callers checked
  a.in_flight += amount;
  a.last_take_ms = now_ms;
  // Only a rate estimate: saturating is right for it.
  a.taken_since_request = saturating_add(a.taken_since_request, amount);
}

void lease_wallet::wait(account_id id, const waiter& w, std::uint64_t now_ms, outbox& out) {
  account_state& a = accounts_[id];
  if (a.last_take_ms == 0) a.last_take_ms = now_ms;
  a.waiting.push_back(w);
  serve(id, a, now_ms, out);
}

void lease_wallet::serve(account_id id, account_state& a, std::uint64_t now_ms, outbox& out) {
  while (has_waiters(a)) {
    const waiter w = a.waiting[a.head];
    const credit_units amount = std::max<credit_units>(w.amount, 0);
    if (a.lease < amount) break;
    result r{w.token, w.kind, true, w.amount, a.lease};
    if (w.kind == use::debit) take(a, amount, now_ms);
    ++a.head;
    out.results.push_back(r);
  }
  if (!has_waiters(a)) {
    a.waiting.clear();
    a.head = 0;
  }
  if (has_waiters(a) && !a.requesting) request(id, a, now_ms, out);
}

void lease_wallet::request(account_id id, account_state& a, std::uint64_t now_ms, outbox& out) {
  const waiter& head = a.waiting[a.head];
  lease_request r;
  r.account = id;
  r.shard = shard_;
  r.need = std::max<credit_units>(head.amount, 0) - a.lease;
  if (head.kind == use::check) {
    r.what = lease_request::kind::check;
    r.want = r.need;
  } else {
    r.what = lease_request::kind::grant;
    // The recent spend rate: what was taken since the last request over the
    // time it took, smoothed. A grant that ran out within the horizon makes
    // the next one larger; one that lasted long makes it smaller.
    if (a.last_request_ms != 0) {
      const double elapsed_ms = static_cast<double>(std::max<std::uint64_t>(now_ms - a.last_request_ms, 1));
      const double instant = static_cast<double>(a.taken_since_request) * 1000.0 / elapsed_ms;
      a.rate = a.rate == 0 ? instant : (a.rate + instant) / 2;
    }
    a.last_request_ms = now_ms;
    a.taken_since_request = 0;
    credit_units queued = 0;
    for (std::size_t i = a.head + 1; i < a.waiting.size(); ++i)
      if (a.waiting[i].kind == use::debit) queued = saturating_add(queued, std::max<credit_units>(a.waiting[i].amount, 0));
    const double ahead = a.rate * static_cast<double>(tuning_.horizon_ms) / 1000.0;
    const credit_units by_rate =
        !(ahead < static_cast<double>(max_balance)) ? max_balance : static_cast<credit_units>(ahead);
    r.want = saturating_add(saturating_add(r.need, queued), by_rate);
  }
  a.requesting = true;
  a.asked_for = head.token;
  out.requests.push_back(r);
}

void lease_wallet::on_answer(const lease_answer& ans, std::uint64_t now_ms, outbox& out) {
  account_state& a = accounts_[ans.account];
  if (!a.requesting) broken("an answer to no request", ans.account);
  a.requesting = false;
  if (ans.granted < 0) broken("a negative grant", ans.account);
  a.lease = checked_add(a.lease, ans.granted, "a grant overflowed the lease", ans.account);
  if (has_waiters(a) && a.waiting[a.head].token == a.asked_for && a.waiting[a.head].kind == use::check &&
      !ans.refused) {
    // A check answered by the home: the account has the credit, nothing is taken.
    const waiter w = a.waiting[a.head++];
    const credit_units available = saturating_add(ans.unleased, a.lease);
    out.results.push_back({w.token, w.kind, available >= w.amount, w.amount, available});
  }
  a.asked_for = nullptr;
  if (ans.refused) {
    // The home recalled every other lease and still could not cover the head:
    // whoever needs more than the account's whole available credit is
    // refused now; the rest are served or asked for again, in order.
    while (has_waiters(a)) {
      const waiter w = a.waiting[a.head];
      const credit_units amount = std::max<credit_units>(w.amount, 0);
      const credit_units available = saturating_add(ans.unleased, a.lease);
      if (a.lease >= amount) {
        out.results.push_back({w.token, w.kind, true, w.amount, a.lease});
        if (w.kind == use::debit) take(a, amount, now_ms);
      } else if (amount > available) {
        out.results.push_back({w.token, w.kind, false, w.amount, available});
      } else {
        break;
      }
      ++a.head;
    }
  }
  serve(ans.account, a, now_ms, out);
}

void lease_wallet::on_recall(account_id id, outbox& out) {
  account_state& a = accounts_[id];
  lease_report r = take_report(id, a, /*with_lease=*/true);
  r.recall_answer = true;
  // The outstanding request (if any) was computed against the lease that
  // just went home: restate what the head needs now.
  if (a.requesting && has_waiters(a)) r.need = std::max<credit_units>(a.waiting[a.head].amount, 0);
  out.reports.push_back(r);
}

void lease_wallet::settle(account_id id, credit_units amount, bool durable, std::uint64_t now_ms,
                          outbox& out) {
  account_state& a = accounts_[id];
  amount = std::max<credit_units>(amount, 0);
  if (amount > a.in_flight) broken("settled more than was in flight", id);
  a.in_flight -= amount;
  if (durable) {
    a.spent = checked_add(a.spent, amount, "unreported debits overflowed", id);
    ++a.messages;
    mark_dirty(id, a);
    return;
  }
  // Not durable, so not charged: the credit is the lease's again.
  a.lease += amount;
  serve(id, a, now_ms, out);
}

void lease_wallet::mark_dirty(account_id id, account_state& a) {
  if (a.dirty) return;
  a.dirty = true;
  dirty_.push_back(id);
}

lease_report lease_wallet::take_report(account_id id, account_state& a, bool with_lease) {
  lease_report r;
  r.account = id;
  r.shard = shard_;
  r.spent = a.spent;
  r.messages = a.messages;
  a.spent = 0;
  a.messages = 0;
  if (with_lease) {
    r.returned = a.lease;
    a.lease = 0;
  }
  return r;
}

void lease_wallet::flush(outbox& out) {
  for (account_id id : dirty_) {
    auto it = accounts_.find(id);
    if (it == accounts_.end()) continue;
    account_state& a = it->second;
    a.dirty = false;
    if (a.spent == 0 && a.messages == 0) continue;
    out.reports.push_back(take_report(id, a, /*with_lease=*/false));
  }
  dirty_.clear();
}

void lease_wallet::tick(std::uint64_t now_ms, outbox& out) {
  std::vector<account_id> forget;
  for (auto& [id, a] : accounts_) {
    const bool quiet = now_ms - a.last_take_ms >= tuning_.idle_ms;
    if (!quiet || has_waiters(a) || a.requesting) continue;
    a.rate = 0;
    if (a.lease > 0 || a.spent > 0 || a.messages > 0)
      out.reports.push_back(take_report(id, a, /*with_lease=*/true));
    if (a.in_flight == 0 && !a.dirty) forget.push_back(id);
  }
  for (account_id id : forget) accounts_.erase(id);
}

credit_units lease_wallet::lease(account_id id) const {
  auto it = accounts_.find(id);
  return it == accounts_.end() ? 0 : it->second.lease;
}

credit_units lease_wallet::in_flight(account_id id) const {
  auto it = accounts_.find(id);
  return it == accounts_.end() ? 0 : it->second.in_flight;
}

}  // namespace postino::credit
