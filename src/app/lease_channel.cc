// The lease protocol's shard-to-shard legs (see lease_channel.h): each
// handler runs on the receiving shard, finds that shard's channel through
// its owner, and hands the typed payload to the authority or the wallet.
// Instantiated for the gateway's two owners at the end of this file.
#include "lease_channel.h"

#include "credit_leases.h"
#include "rate_limit.h"

namespace postino::app {

template <class Owner>
lease_channel<Owner>::lease_channel(core::shard& shard, Owner& owner)
    : shard_(shard), owner_(owner), authority_(shard.count()), wallet_(shard.id()) {
  tick_.self = this;
}

template <class Owner>
lease_channel<Owner>::~lease_channel() {
  // The shard's timer wheel outlives its gateway: leave it no dangling node.
  if (tick_.armed()) shard_.timers().cancel(tick_);
}

template <class Owner>
bool lease_channel<Owner>::try_take(account_id id, use kind, credit_units amount, credit_units& available) {
  return wallet_.try_take(id, kind, amount, shard_.now_ms(), available);
}

template <class Owner>
void lease_channel<Owner>::wait(account_id id, const credit::lease_wallet::waiter& w) {
  credit::lease_wallet::outbox out;
  wallet_.wait(id, w, shard_.now_ms(), out);
  send(out);
}

template <class Owner>
void lease_channel<Owner>::settle(account_id id, credit_units amount, bool durable) {
  credit::lease_wallet::outbox out;
  wallet_.settle(id, amount, durable, shard_.now_ms(), out);
  send(out);
}

template <class Owner>
void lease_channel<Owner>::flush() {
  credit::lease_wallet::outbox out;
  wallet_.flush(out);
  send(out);
}

template <class Owner>
void lease_channel<Owner>::arm_tick() {
  if (tick_.armed() || wallet_.idle()) return;
  shard_.timers().schedule(tick_, shard_.now_ms(), tick_ms);
}

template <class Owner>
void lease_channel<Owner>::tick::on_timer() {
  credit::lease_wallet::outbox out;
  self->wallet_.tick(self->shard_.now_ms(), out);
  self->send(out);
  self->arm_tick();
}

template <class Owner>
credit_units lease_channel<Owner>::credit(account_id id, credit_units amount) {
  credit::lease_authority::outbox out;
  const credit_units credited = authority_.credit(id, amount, out);
  send(out);
  return credited;
}

template <class Owner>
void lease_channel<Owner>::send(credit::lease_wallet::outbox& out) {
  if (Owner::counted && !out.requests.empty())
    core::shard_metrics::bump(shard_.metrics().credit_requests, static_cast<std::int64_t>(out.requests.size()));
  for (const auto& r : out.requests)
    shard_.post<&lease_channel::request_at_home>(home_of(r.account), {r, owner_.request_hint(r.account)});
  for (const auto& r : out.reports) shard_.post<&lease_channel::report_at_home>(home_of(r.account), r);
  for (const auto& r : out.results) owner_.on_result(r);
}

template <class Owner>
void lease_channel<Owner>::send(credit::lease_authority::outbox& out) {
  for (const auto& [to, a] : out.answers) shard_.post<&lease_channel::answer_at_shard>(to, a);
  for (const auto& [to, account] : out.recalls) shard_.post<&lease_channel::recall_at_shard>(to, {account});
}

template <class Owner>
void lease_channel<Owner>::request_at_home(core::shard& home, const lease_request_mail& m) {
  lease_channel& self = Owner::channel_at(home);
  self.owner_.before_request(m.request.account, m.per_second);
  credit::lease_authority::outbox out;
  self.authority_.on_request(m.request, out);
  self.send(out);
}

template <class Owner>
void lease_channel<Owner>::report_at_home(core::shard& home, const credit::lease_report& r) {
  lease_channel& self = Owner::channel_at(home);
  credit::lease_authority::outbox out;
  self.authority_.on_report(r, out);
  self.send(out);
}

template <class Owner>
void lease_channel<Owner>::answer_at_shard(core::shard& here, const credit::lease_answer& a) {
  lease_channel& self = Owner::channel_at(here);
  credit::lease_wallet::outbox out;
  self.wallet_.on_answer(a, here.now_ms(), out);
  self.send(out);
}

template <class Owner>
void lease_channel<Owner>::recall_at_shard(core::shard& here, const lease_recall_mail& m) {
  lease_channel& self = Owner::channel_at(here);
  if (Owner::counted) core::shard_metrics::bump(here.metrics().credit_recalls);
  credit::lease_wallet::outbox out;
  self.wallet_.on_recall(m.account, out);
  self.send(out);
  self.arm_tick();
}

template class lease_channel<credit_leases>;
template class lease_channel<rate_limiter>;

}  // namespace postino::app
