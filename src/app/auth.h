// AUTH on a shard: the credential cache, the password checks (Argon2id on
// the hash pool, one check for every connection asking with the same
// credentials), and the per-address limit of failed AUTH, whose buckets live
// on each address's home shard (credit::auth_limiter) and are asked through
// typed mailbox messages. A success asks credit_leases for the 235 line's
// balance. Buffers: the username and password are copied out of the session
// into the pool job (the session may be gone when it finishes); a permit
// travelling between shards is heap-allocated and owned by whoever holds
// its message; waiting connections outlive their answer.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "credit_leases.h"
#include "gateway.h"
#include "postino/credit.h"
#include "postino/io.h"
#include "postino/runtime.h"
#include "postino/smtp.h"

namespace postino::app {

class authenticator {
 public:
  authenticator(core::shard& shard, std::shared_ptr<const gateway_services> services, credit_leases& credit)
      : shard_(shard), services_(std::move(services)), credit_(credit), limiter_(services_->auth_failures_per_minute) {}

  // A session's AUTH request.
  void authenticate(io::connection& c);
  // The connection left (or cannot use a 235) while its check is queued.
  void abandoned(io::connection& c);
  // Drops `id`'s cached credentials (suspend, resume, password change).
  void forget(account_id id) { cache_.invalidate(id); }

  // This piece on shard `s` (its gateway's; defined in gateway.cc).
  static authenticator& at(core::shard& s);

  // What a password check found (filled on a pool worker).
  struct verified {
    smtp::auth_result::outcome result = smtp::auth_result::outcome::temporary_failure;
    account_settings account;
    bool checked = true;   // false: no password check ran (skipped, refused, or it failed to run)
    bool skipped = false;  // every waiter had left when the worker came to it
  };

 private:
  using key = credit::credential_cache::key;
  // One password check in progress: the connections waiting for it (the same
  // credentials), the source address its failure counts against, and the flag
  // that tells the worker every waiter has left (then it runs no Argon2id).
  struct check {
    std::vector<io::connection*> waiters;
    std::string address;
    bool permitted = false;  // the address's home allowed it: it must hear the end
    std::shared_ptr<std::atomic<bool>> abandoned = std::make_shared<std::atomic<bool>>(false);
  };
  struct permit;
  struct permit_mail {
    permit* p = nullptr;  // owned by the message's receiver, or sent on
  };
  struct pending_credit;

  static void permit_at_home(core::shard& home, const permit_mail& m);
  static void permit_answer(core::shard& here, const permit_mail& m);
  static void end_at_home(core::shard& home, const permit_mail& m);
  void report_end(const std::string& address, bool failed);
  bool start_check(const key& k, const check& c);
  void note_busy();
  void auth_done(const key& k, verified result);
  void answer(const std::vector<io::connection*>& waiters, const verified& result);
  void auth_ok(io::connection& c, account_settings account);

  core::shard& shard_;
  std::shared_ptr<const gateway_services> services_;
  credit_leases& credit_;
  credit::credential_cache cache_;
  std::unordered_map<key, check> checks_;
  credit::auth_limiter limiter_;  // the source addresses whose home is this shard
  std::uint64_t busy_refusals_ = 0;
  std::uint64_t busy_logged_ms_ = 0;
};

}  // namespace postino::app
