// Credit on a shard: the per-message checks and debits of SMTP sessions from
// this shard's lease of an account, and, for the accounts whose home is this
// shard, the balance itself: top-ups, refunds, and the balance the 235 line
// shows. Runs a lease_channel (lease_channel.h) for the leases. Buffers: the
// channel, the top-ups in flight and the queued balance queries are this
// object's; a waiting connection is its lease waiter's token and outlives
// the result; a balance_waiter belongs to its asker until on_balance runs.
#pragma once

#include <functional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gateway.h"
#include "lease_channel.h"
#include "postino/credit.h"
#include "postino/io.h"
#include "postino/runtime.h"
#include "postino/spool.h"

namespace postino::app {

class credit_leases {
 public:
  // Told how a debit that had to wait for the lease ended.
  class debit_listener {
   public:
    virtual void debit_done(io::connection& c, const credit::lease_wallet::result& r) = 0;

   protected:
    ~debit_listener() = default;
  };
  // Waits for an account's balance from its home; the asker keeps it alive
  // (and on_balance may delete it).
  class balance_waiter {
   public:
    virtual void on_balance(credit_units balance) = 0;

   protected:
    ~balance_waiter() = default;
  };

  // `journal`: this shard's (top-ups); `delta`: this shard's checkpoint delta.
  credit_leases(core::shard& shard, spool::journal* journal, credit::journal_delta& delta, debit_listener& debits,
                const gateway_services& services);

  // --- this shard's sessions ------------------------------------------------
  // RCPT: is the amount available? Answers the session now or later.
  void check(io::connection& c);
  // End of DATA: takes `amount` now (true) or queues the connection (false:
  // debit_listener hears the result).
  bool debit(io::connection& c, account_id account, credit_units amount);
  // The journal's verdict on a debit: durable debits are reported home at
  // the end of the batch, failed ones go back into the lease.
  void settle(account_id account, credit_units amount, bool durable);
  // The 235 line's CREDIT, asked of the account's home.
  void query_balance(account_id account, balance_waiter* waiter);
  // A refund is durable on this shard's journal: the credit is the home's.
  void refund(account_id account, credit_units amount);
  // End of batch: durable debits go home before this batch's replies are
  // sent, so a client that saw its 250 finds the debit in any later 235 line.
  void flush_reports() { channel_.flush(); }
  // End of batch, home side: the balance queries that arrived meanwhile.
  void answer_balance_queries();
  void arm_tick() { channel_.arm_tick(); }

  // --- home side (admin endpoint, on this shard's thread) -------------------
  credit::lease_authority::account_view view(account_id id) const { return channel_.authority().view(id); }
  void top_up(account_id id, credit_units amount, std::function<void(top_up_result)> done);

  // This piece on shard `s` (its gateway's; defined in gateway.cc).
  static credit_leases& at(core::shard& s);

  // --- lease_channel's owner ------------------------------------------------
  static lease_channel<credit_leases>& channel_at(core::shard& s) { return at(s).channel_; }
  void on_result(const credit::lease_wallet::result& r);
  std::uint32_t request_hint(account_id) const { return 0; }
  void before_request(account_id, std::uint32_t) {}
  static constexpr bool counted = true;  // credit_requests / credit_recalls metrics

 private:
  struct top_up_waiter;
  struct balance_query_mail {
    balance_waiter* waiter = nullptr;
    account_id account = 0;
    unsigned origin = 0;
  };
  struct balance_answer_mail {
    balance_waiter* waiter = nullptr;
    credit_units balance = 0;
  };
  struct refund_mail {
    account_id account = 0;
    credit_units amount = 0;
  };
  static void balance_query_at_home(core::shard& home, const balance_query_mail& m);
  static void balance_answer(core::shard& here, const balance_answer_mail& m);
  static void refund_at_home(core::shard& home, const refund_mail& m);
  void top_up_durable(account_id id, credit_units amount, bool ok, std::function<void(top_up_result)>& done);
  unsigned home_of(account_id id) const { return credit::home_shard(id, shard_.count()); }

  core::shard& shard_;
  spool::journal* journal_;  // null: no durable top-ups (tests)
  credit::journal_delta& delta_;
  debit_listener& debits_;
  lease_channel<credit_leases> channel_;
  std::vector<balance_query_mail> balance_queries_;  // home side, answered after the batch
  std::unordered_map<account_id, credit_units> top_ups_in_flight_;  // home side: journaled, not yet durable
};

}  // namespace postino::app
