// Credit checks, debits, top-ups, refunds and balance queries on a shard
// (see credit_leases.h). Everything runs on the shard's thread; the legs to
// an account's home are typed mailbox messages, and the lease protocol's own
// legs are lease_channel's.
#include "credit_leases.h"

#include <algorithm>
#include <memory>

#include "smtp_endpoint.h"

namespace postino::app {

// Kept by the journal until a top-up record is durable or failed.
struct credit_leases::top_up_waiter final : spool::append_waiter {
  credit_leases* owner = nullptr;
  account_id account = 0;
  credit_units amount = 0;
  std::function<void(top_up_result)> done;
  void on_durable(bool durable) override {
    std::unique_ptr<top_up_waiter> owned(this);
    owner->top_up_durable(account, amount, durable, done);
  }
};

credit_leases::credit_leases(core::shard& shard, spool::journal* journal, credit::journal_delta& delta,
                             debit_listener& debits, const gateway_services& services)
    : shard_(shard), journal_(journal), delta_(delta), debits_(debits), channel_(shard, *this) {
  if (shard_.id() < services.balances.size())
    for (const auto& [id, balance] : services.balances[shard_.id()]) channel_.authority().set_balance(id, balance);
}

void credit_leases::check(io::connection& c) {
  const auto& req = smtp_of(c).pending_credit_check();
  credit_units available = 0;
  if (channel_.try_take(req.account, lease_channel<credit_leases>::use::check, req.amount, available)) {
    smtp_of(c).resolve(smtp::credit_check_result{available});
    return c.complete();
  }
  channel_.wait(req.account, {&c, credit::lease_wallet::use::check, req.amount});
}

bool credit_leases::debit(io::connection& c, account_id account, credit_units amount) {
  credit_units available = 0;
  if (channel_.try_take(account, credit::lease_wallet::use::debit, amount, available)) return true;
  channel_.wait(account, {&c, credit::lease_wallet::use::debit, amount});
  return false;
}

void credit_leases::settle(account_id account, credit_units amount, bool durable) {
  channel_.settle(account, amount, durable);
}

void credit_leases::on_result(const credit::lease_wallet::result& r) {
  auto* c = static_cast<io::connection*>(r.token);
  if (r.kind == credit::lease_wallet::use::debit) return debits_.debit_done(*c, r);
  if (!c->gone()) smtp_of(*c).resolve(smtp::credit_check_result{r.available});
  c->complete();
}

// The 235 line's CREDIT is the home's balance: every reported debit is in
// it, leases handed out are not. The query waits for the home's end of
// batch, after its mailbox drain, so a debit reported before the client
// could have seen its 250 is never missed.
void credit_leases::query_balance(account_id account, balance_waiter* waiter) {
  shard_.post<&credit_leases::balance_query_at_home>(home_of(account), {waiter, account, shard_.id()});
}

void credit_leases::balance_query_at_home(core::shard& home, const balance_query_mail& m) {
  at(home).balance_queries_.push_back(m);
}

void credit_leases::answer_balance_queries() {
  if (balance_queries_.empty()) return;
  std::vector<balance_query_mail> queries;
  queries.swap(balance_queries_);
  for (const auto& q : queries)
    shard_.post<&credit_leases::balance_answer>(q.origin, {q.waiter, channel_.authority().balance(q.account)});
}

void credit_leases::balance_answer(core::shard&, const balance_answer_mail& m) { m.waiter->on_balance(m.balance); }

// The refund record is in this shard's journal (add_delivery_row folded it
// into this shard's checkpoint delta); the credit itself is the home's to
// hand out again.
void credit_leases::refund(account_id account, credit_units amount) {
  shard_.post<&credit_leases::refund_at_home>(home_of(account), {account, amount});
}

// The refund's shard folded the whole amount into its checkpoint delta; a
// refund cut by the maximum balance is corrected here, so the checkpoint
// sums to the balance the home holds and no start-up repairs it.
void credit_leases::refund_at_home(core::shard& home, const refund_mail& m) {
  credit_leases& self = at(home);
  const credit_units credited = self.channel_.credit(m.account, m.amount);
  if (credited != m.amount) self.delta_.add_credit(m.account, credited - m.amount);
}

// A top-up is a journal record on the home shard; the credit exists only
// once it is durable, and then it is unleased credit at once. One that
// would take the balance past max_balance is refused before it is written
// (top-ups are serialised here, on the home, so the check cannot race).
void credit_leases::top_up(account_id id, credit_units amount, std::function<void(top_up_result)> done) {
  using outcome = top_up_result::outcome;
  const credit_units balance = channel_.authority().balance(id);
  // Top-ups still being journaled count too, so two that each fit but
  // together would not are not both answered 200.
  credit_units& in_flight = top_ups_in_flight_[id];
  if (amount <= 0 || amount > max_balance - std::max<credit_units>(balance, 0) - in_flight) {
    if (in_flight == 0) top_ups_in_flight_.erase(id);
    return done({outcome::over_maximum, balance});
  }
  if (journal_ == nullptr) return done({outcome::failed, balance});
  in_flight += amount;
  auto* w = new top_up_waiter;
  w->owner = this;
  w->account = id;
  w->amount = amount;
  w->done = std::move(done);
  journal_->append_credit(spool::record_type::top_up, id, amount, w);
}

void credit_leases::top_up_durable(account_id id, credit_units amount, bool ok,
                                   std::function<void(top_up_result)>& done) {
  if ((top_ups_in_flight_[id] -= amount) <= 0) top_ups_in_flight_.erase(id);
  if (ok) delta_.add_credit(id, channel_.credit(id, amount));
  done({ok ? top_up_result::outcome::durable : top_up_result::outcome::failed, channel_.authority().balance(id)});
}

}  // namespace postino::app
