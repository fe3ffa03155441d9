// The commit of an accepted message on a shard: the debit from the
// account's lease (credit_leases), the record to this shard's journal, and
// once it is durable the 250 line, the hand-off to delivery and the row of
// the message index (this shard's checkpoint delta). Buffers: the message is
// moved out of the session into a shared message the journal reads until
// its group is durable; then, without its body, delivery and the message
// index share it. A commit_waiter is owned by the journal until it is told.
#pragma once

#include "credit_leases.h"
#include "gateway.h"
#include "postino/credit.h"
#include "postino/delivery.h"
#include "postino/io.h"
#include "postino/runtime.h"
#include "postino/spool.h"

namespace postino::app {

class committer {
 public:
  committer(core::shard& shard, spool::journal* journal, credit::journal_delta& delta, credit_leases& credit,
            const gateway_services& services)
      : shard_(shard), journal_(journal), delta_(delta), credit_(credit), services_(services) {}
  // Where accepted messages go (null: they stay queued in the journal).
  void hand_off_to(delivery::engine* engine) { engine_ = engine; }

  // A session's commit request: debit, then journal.
  void commit(io::connection& c);
  // A debit that waited for the lease has its answer.
  void debit_done(io::connection& c, const credit::lease_wallet::result& r);

 private:
  struct waiter;
  void refuse(io::connection& c, credit_units need, credit_units available);
  void append(io::connection& c);
  void durable(waiter* w);

  core::shard& shard_;
  spool::journal* journal_;  // this shard's; null: no durable commits (tests)
  credit::journal_delta& delta_;
  credit_leases& credit_;
  const gateway_services& services_;
  delivery::engine* engine_ = nullptr;
};

}  // namespace postino::app
