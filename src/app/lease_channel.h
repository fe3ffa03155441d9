// One lease protocol (src/credit/README.md) on one shard: the home side (a
// credit::lease_authority for the accounts whose home is this shard), the
// shard side (a credit::lease_wallet of this shard's leases of every
// account), the timer that sends idle leases home, and the typed mailbox
// messages that link the two across shards. The gateway runs two: credit
// (credit_leases.h) and message tokens for the rate limit (rate_limit.h);
// `Owner` is the piece that runs one and decides what its outcomes mean.
// Buffers: the authority, wallet and outboxes are this object's; a message
// carries its fields by value (core::message), and a waiter's token is the
// owner's handle (a connection), which outlives its result.
#pragma once

#include <cstdint>

#include "postino/credit.h"
#include "postino/runtime.h"

namespace postino::app {

// Shard -> home: a lease_request, and for the rate limit the limit the
// session asked with (the home refills the bucket from it before deciding).
struct lease_request_mail {
  credit::lease_request request;
  std::uint32_t per_second = 0;
};
// Home -> shard: take back this account's lease.
struct lease_recall_mail {
  account_id account = 0;
};
// lease_answer (home -> shard) and lease_report (shard -> home) travel as
// they are: named fields, trivially copyable.
static_assert(core::message::fits<lease_request_mail>);
static_assert(core::message::fits<credit::lease_answer>);
static_assert(core::message::fits<credit::lease_report>);
static_assert(core::message::fits<lease_recall_mail>);

// `Owner` provides:
//   static lease_channel& channel_at(core::shard&)   its channel on a shard
//   void on_result(const credit::lease_wallet::result&)  a waiter's answer
//   std::uint32_t request_hint(account_id) const     sent with each request
//   void before_request(account_id, std::uint32_t hint)  home side, first
//   static constexpr bool counted                    bump the credit metrics
template <class Owner>
class lease_channel {
 public:
  using use = credit::lease_wallet::use;

  lease_channel(core::shard& shard, Owner& owner);
  ~lease_channel();
  lease_channel(const lease_channel&) = delete;
  lease_channel& operator=(const lease_channel&) = delete;

  // --- shard side ---------------------------------------------------------
  // True: taken from the lease at once. False: call wait().
  bool try_take(account_id id, use kind, credit_units amount, credit_units& available);
  // Queues a waiter; its result comes to Owner::on_result later.
  void wait(account_id id, const credit::lease_wallet::waiter& w);
  // The journal's verdict on a debit taken earlier.
  void settle(account_id id, credit_units amount, bool durable);
  // End of batch: durable debits go home.
  void flush();
  // Runs the idle timer while the wallet holds anything.
  void arm_tick();

  // --- home side ----------------------------------------------------------
  credit::lease_authority& authority() { return authority_; }
  const credit::lease_authority& authority() const { return authority_; }
  // Durable credit (top-up, refund): unleased at once. Returns what the
  // balance gained (the maximum balance may cut it).
  credit_units credit(account_id id, credit_units amount);

 private:
  static void request_at_home(core::shard& home, const lease_request_mail& m);
  static void report_at_home(core::shard& home, const credit::lease_report& r);
  static void answer_at_shard(core::shard& here, const credit::lease_answer& a);
  static void recall_at_shard(core::shard& here, const lease_recall_mail& m);
  // Sends what the authority or the wallet produced; results go to the
  // owner (and may start new requests on this shard, which send again).
  void send(credit::lease_authority::outbox& out);
  void send(credit::lease_wallet::outbox& out);
  unsigned home_of(account_id id) const { return credit::home_shard(id, shard_.count()); }

  // Idle leases go home and spend rates age on a timer that runs only
  // while this shard holds something of some account.
  struct tick final : core::timer_node {
    lease_channel* self = nullptr;
    void on_timer() override;
  };
  static constexpr std::uint64_t tick_ms = 200;

  core::shard& shard_;
  Owner& owner_;
  credit::lease_authority authority_;
  credit::lease_wallet wallet_;
  tick tick_;
};

}  // namespace postino::app
