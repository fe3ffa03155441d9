// The gateway's answer to session requests, wired to the real components:
// AUTH through the per-shard credential cache and the Argon2id hash pool,
// credit checks and debits from this shard's lease of the account (refilled,
// recalled and reported through the account's home shard, see
// src/credit/README.md), commits made durable in this shard's journal, and
// the hooks the checkpoint thread and the admin endpoint use; and the
// services each shard runs. Also used by the io tests, which run a real
// runtime.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "postino/account.h"
#include "postino/credit.h"
#include "postino/delivery.h"
#include "postino/io.h"
#include "postino/runtime.h"
#include "postino/spool.h"

namespace postino::app {

// What each shard's journal made durable since its last checkpoint, handed
// over by the shard's handler as the shard ends (on its own thread, after
// the last record is durable), so the gateway's clean stop writes a final
// checkpoint that covers every journal: an offline postino-ctl then reads
// the balance the gateway would have reported.
class final_deltas {
 public:
  void put(credit::journal_delta d) {
    std::lock_guard lock(mutex_);
    deltas_.push_back(std::move(d));
  }
  std::vector<credit::journal_delta> take() {
    std::lock_guard lock(mutex_);
    return std::move(deltas_);
  }

 private:
  std::mutex mutex_;
  std::vector<credit::journal_delta> deltas_;
};

class relay_source;  // relays.h

struct gateway_services {
  credit::hash_pool* pool = nullptr;  // AUTH checks; shared by all shards, outlives their threads
  // The content step of bodies too costly for a shard's loop (e-mails, big
  // texts); null: every content step runs on the shard (tests).
  credit::hash_pool* content_pool = nullptr;
  std::uint32_t auth_failures_per_minute = 30;  // per source address, across shards
  std::string database;               // workers open their own account_store on it
  // Starting balances, indexed by home shard (credit::home_shard).
  std::vector<std::vector<std::pair<account_id, credit_units>>> balances;
  // SMPP delivery (issue 7); null or !enabled(): accepted messages stay queued.
  std::shared_ptr<delivery::shared_state> delivery;
  // Filled as the shards end (see final_deltas); null: nobody collects them.
  std::shared_ptr<final_deltas> last_deltas = std::make_shared<final_deltas>();
  // Relay accounts (relays.h); null: no relay listener.
  std::shared_ptr<relay_source> relays;
};

// What each shard runs, in order: its journal (when `journals` has one for
// it), the gateway's request handler (AUTH, credit, content, commits, the
// delivery engine), and the server of `listeners`' connections.
core::runtime::service_factory make_shard_services(std::shared_ptr<const gateway_services> services,
                                                   std::vector<spool::journal*> journals,
                                                   io::listener_set& listeners);

// On `shard`'s own thread: what its journal made durable since the last call
// (for the checkpoint), and the journal position that covers it.
credit::journal_delta take_journal_delta(core::shard& shard);

// On `shard`'s own thread: appends each payload as a `carried` record to
// its journal (retention's); `done(ok)` runs on that thread once every one
// is durable (ok) or once all have been told and one failed. Without a
// journal: done(false) at once.
void carry_records(core::shard& shard, std::vector<std::string> payloads, std::function<void(bool)> done);

// Live operations for the admin endpoint, each to be run on the named
// shard's own thread (post_from_any_thread). `home` is the account's home.
credit::lease_authority::account_view account_view(core::shard& home, account_id id);
// What became of a top-up, and the home's balance afterwards.
struct top_up_result {
  enum class outcome : std::uint8_t {
    durable,       // journaled; the credit is available
    failed,        // the journal could not store it: nothing changed
    over_maximum,  // balance + amount would pass max_balance: nothing journaled
  } result = outcome::failed;
  credit_units balance = 0;
};
// Journals a top-up on the home's journal; `done` runs there once the record
// is durable, failed, or was refused before it was written.
void top_up(core::shard& home, account_id id, credit_units amount, std::function<void(top_up_result)> done);
// Drops `id`'s cached credentials on `shard` (suspend, resume, password change).
void forget_credentials(core::shard& shard, account_id id);

}  // namespace postino::app
