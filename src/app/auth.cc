// AUTH on a shard (see auth.h). Everything runs on the shard's thread except
// the body of a check, which runs on a hash-pool worker with its own
// account_store and hands its result back through the shard's inbox.
#include "auth.h"

#include <algorithm>
#include <cstdio>
#include <exception>

#include "smtp_endpoint.h"

namespace postino::app {
namespace {

using outcome = smtp::auth_result::outcome;
using verified = authenticator::verified;

// Runs on a hash-pool worker. Each worker keeps its own store connection.
verified verify_credentials(const std::string& database, const std::string& username,
                            const std::string& password) {
  struct worker_store {
    std::string path;
    std::unique_ptr<credit::account_store> store;
  };
  thread_local worker_store tls;
  if (!tls.store || tls.path != database) {
    std::string error;
    tls.store = credit::account_store::open(database, error);
    tls.path = database;
    if (!tls.store) {
      std::fprintf(stderr, "postino: auth worker: cannot open %s: %s\n", database.c_str(), error.c_str());
      return {};
    }
  }
  auto account = tls.store->find_by_username(username);
  if (!account) {
    if (!tls.store->last_error().empty()) {
      std::fprintf(stderr, "postino: auth worker: %s\n", tls.store->last_error().c_str());
      tls.store.reset();  // reopen next time
      return {};
    }
    // An unknown user costs the same Argon2id run as a wrong password, so
    // response times do not tell which usernames exist.
    static const std::string decoy = credit::hash_password("postino-decoy-password");
    credit::verify_password(decoy, password);
    return {outcome::invalid, {}};
  }
  if (!credit::verify_password(account->password_hash, password)) return {outcome::invalid, {}};
  return {outcome::ok, std::move(account->settings)};
}

}  // namespace

// Origin <-> the address's home shard: may a check start (`allowed`), and
// later how it ended.
struct authenticator::permit {
  key k;
  std::string address;
  unsigned origin = 0;
  bool allowed = false;
  bool failed = false;  // the report: the credentials were wrong
};

// An AUTH that succeeded and now needs the 235 line's credit from the home.
struct authenticator::pending_credit final : credit_leases::balance_waiter {
  io::connection* conn = nullptr;
  account_settings account;
  pending_credit(io::connection* c, account_settings a) : conn(c), account(std::move(a)) {}
  void on_balance(credit_units balance) override {
    std::unique_ptr<pending_credit> owned(this);
    if (!conn->gone()) {
      smtp::auth_result r{outcome::ok, std::move(account), balance};
      smtp_of(*conn).resolve(r);
    }
    conn->complete();
  }
};

// A cached success answers at once. Otherwise the source address's home
// shard must allow a check (credit::auth_limiter) before a worker runs
// Argon2id, and hears how it ended; the same credentials asked for again
// meanwhile wait for the same check.
void authenticator::authenticate(io::connection& c) {
  const auto& req = smtp_of(c).pending_auth();
  key k = credit::credential_cache::make_key(req.username, req.password);
  if (const account_settings* known = cache_.find(k)) {
    account_settings copy = *known;  // the cache may rehash under us
    return auth_ok(c, std::move(copy));
  }
  auto [it, fresh] = checks_.try_emplace(k);
  it->second.waiters.push_back(&c);
  // The same credentials are being verified already: wait for that check
  // (wanted again, even if everyone before had left it).
  it->second.abandoned->store(false, std::memory_order_relaxed);
  if (!fresh) return;
  it->second.address = smtp_of(c).connection().peer_ip;
  auto* p = new permit{k, it->second.address, shard_.id()};
  shard_.post<&authenticator::permit_at_home>(credit::auth_home_shard(p->address, shard_.count()), {p});
}

// A connection that closed (or whose client stopped sending, so that it
// could not use a 235) while its password check is still queued leaves
// it; once nobody waits for a check, its worker skips Argon2id.
void authenticator::abandoned(io::connection& c) {
  if (smtp_of(c).pending() != smtp::request_kind::authenticate) return;
  const auto& req = smtp_of(c).pending_auth();
  auto it = checks_.find(credit::credential_cache::make_key(req.username, req.password));
  if (it == checks_.end()) return;  // past the check: the 235's credit is on its way
  auto& waiters = it->second.waiters;
  const auto at = std::find(waiters.begin(), waiters.end(), &c);
  if (at == waiters.end()) return;
  waiters.erase(at);
  if (waiters.empty()) it->second.abandoned->store(true, std::memory_order_relaxed);
  if (!c.gone()) smtp_of(c).resolve(smtp::auth_result{outcome::temporary_failure, {}, 0});
  c.complete();
}

void authenticator::permit_at_home(core::shard& home, const permit_mail& m) {
  permit* p = m.p;
  authenticator& self = at(home);
  p->allowed = self.limiter_.try_begin(p->address, home.now_ms());
  if (!p->allowed && self.limiter_.first_refusal(p->address))
    std::fprintf(stderr,
                 "postino: auth: %s is over %u failed AUTH per minute; its AUTH gets 454 4.7.0 and no "
                 "password check until it recovers\n",
                 p->address.c_str(), self.services_->auth_failures_per_minute);
  self.shard_.post<&authenticator::permit_answer>(p->origin, {p});
}

void authenticator::permit_answer(core::shard& here, const permit_mail& m) {
  std::unique_ptr<permit> p(m.p);
  authenticator& self = at(here);
  auto it = self.checks_.find(p->k);
  if (it == self.checks_.end()) {
    if (p->allowed) self.report_end(p->address, false);
    return;
  }
  it->second.permitted = p->allowed;
  if (!p->allowed || it->second.waiters.empty())
    return self.auth_done(p->k, verified{outcome::temporary_failure, {}, false});
  if (!self.start_check(p->k, it->second)) {
    self.note_busy();
    self.auth_done(p->k, verified{outcome::busy, {}, false});
  }
}

void authenticator::report_end(const std::string& address, bool failed) {
  auto* p = new permit{{}, address, shard_.id()};
  p->failed = failed;
  shard_.post<&authenticator::end_at_home>(credit::auth_home_shard(address, shard_.count()), {p});
}

void authenticator::end_at_home(core::shard& home, const permit_mail& m) {
  std::unique_ptr<permit> p(m.p);
  at(home).limiter_.end(p->address, p->failed, home.now_ms());
}

bool authenticator::start_check(const key& k, const check& c) {
  if (services_->pool == nullptr) return false;
  const auto& req = smtp_of(*c.waiters.front()).pending_auth();
  core::shard* shard = &shard_;
  auto services = services_;
  return services_->pool->submit(
      [shard, services, k, abandoned = c.abandoned, user = req.username, pass = req.password] {
        auto result = std::make_shared<verified>();
        result->checked = false;
        if (abandoned->load(std::memory_order_relaxed)) {
          result->skipped = true;
        } else {
          try {
            *result = verify_credentials(services->database, user, pass);
          } catch (const std::exception& e) {
            // Always answer: a check that never came back would hold its
            // waiters and the address's permit for ever.
            std::fprintf(stderr, "postino: auth worker: %s\n", e.what());
          }
        }
        shard->post_from_any_thread([shard, k, result] { at(*shard).auth_done(k, std::move(*result)); });
      });
}

// Every check queue of the process is full: 454 4.3.0, said in the log
// at most once a second (with how many were refused meanwhile).
void authenticator::note_busy() {
  ++busy_refusals_;
  if (shard_.now_ms() < busy_logged_ms_ + 1000) return;
  std::fprintf(stderr,
               "postino: auth: the password check queue is full (auth_queue); %llu AUTH answered "
               "454 4.3.0 Authentication service busy\n",
               static_cast<unsigned long long>(busy_refusals_));
  busy_refusals_ = 0;
  busy_logged_ms_ = shard_.now_ms();
}

// The check is over (or never ran): the address's home hears how it ended
// when it had allowed it, and every connection still waiting is answered.
void authenticator::auth_done(const key& k, verified result) {
  auto it = checks_.find(k);
  if (it == checks_.end()) return;
  // Skipped because everyone had left, but someone asked again since: run
  // it after all (the address's permit is still held for it).
  if (result.skipped && it->second.permitted && !it->second.waiters.empty()) {
    if (start_check(k, it->second)) return;
    note_busy();
    result = verified{outcome::busy, {}, false};
  }
  auto node = checks_.extract(it);
  if (node.mapped().permitted)
    report_end(node.mapped().address, result.checked && result.result == outcome::invalid);
  if (result.result == outcome::ok) cache_.insert(k, result.account);
  answer(node.mapped().waiters, result);
}

void authenticator::answer(const std::vector<io::connection*>& waiters, const verified& result) {
  for (io::connection* c : waiters) {
    if (c->gone()) {
      c->complete();
    } else if (result.result == outcome::ok) {
      auth_ok(*c, result.account);
    } else {
      smtp::auth_result r{result.result, {}, 0};
      smtp_of(*c).resolve(r);
      c->complete();
    }
  }
}

void authenticator::auth_ok(io::connection& c, account_settings account) {
  auto* p = new pending_credit(&c, std::move(account));
  credit_.query_balance(p->account.id, p);
}

}  // namespace postino::app
