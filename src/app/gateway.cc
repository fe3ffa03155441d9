// Resolves session requests on a shard (see gateway.h). Everything runs on the
// shard's thread except the body of an AUTH job, which runs on a hash-pool
// worker with its own account_store and hands its result back through the
// shard's inbox. Credit: every shard debits from its own lease of an account
// (credit::lease_wallet, no lock, no atomic); the account's home shard holds
// the balance (credit::lease_authority) and grants, recalls and takes reports
// through the mailboxes, whose messages this file encodes. The per-account
// rate limit (MAIL) runs on the same lease code with a second authority and
// wallet: the home's "balance" is a token bucket it refills from the clock,
// shards spend tokens from leases, and a refusal comes only after a recall
// round (see src/credit/README.md, "Rate limit"). Buffers: the
// username and password are copied out of the session into the job (the
// session may be gone when it finishes); a commit's transaction is moved from
// the session into the journal, which keeps it until its group is durable.
// A waiting connection is a wallet waiter's token; it stays valid because the
// connection lives until complete() is called.
#include "gateway.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <unordered_map>

#include "postino/core.h"
#include "postino/io.h"
#include "postino/mime.h"
#include "postino/smtp.h"
#include "postino/spool.h"
#include "smtp_endpoint.h"

namespace postino::app {
namespace {

using outcome = smtp::auth_result::outcome;

struct verified {
  outcome result = outcome::temporary_failure;
  account_settings account;
  bool checked = true;   // false: no password check ran (skipped, refused, or it failed to run)
  bool skipped = false;  // every waiter had left when the worker came to it
};

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

class gateway_handler;
// Kept by the journal until the record's group is durable or failed.
// The message moved out of the session: the journal reads it until then,
// and once durable it goes, without its body, to delivery and the message index.
struct commit_waiter final : spool::append_waiter {
  gateway_handler* handler = nullptr;
  io::connection* conn = nullptr;
  std::shared_ptr<message> accepted;
  queue_id id;
  bool in_append = true;  // on_durable may come before append_message returns
  bool done = false;
  bool ok = false;
  void on_durable(bool durable) override;
};

// Kept by the journal until a top-up record is durable or failed.
struct top_up_waiter final : spool::append_waiter {
  gateway_handler* handler = nullptr;
  account_id account = 0;
  credit_units amount = 0;
  std::function<void(top_up_result)> done;
  void on_durable(bool durable) override;
};

// One password check in progress: the connections waiting for it (the same
// credentials), the source address its failure counts against, and the flag
// that tells the worker every waiter has left (then it runs no Argon2id).
struct auth_check {
  std::vector<io::connection*> waiters;
  std::string address;
  bool permitted = false;  // the address's home allowed it: it must hear the end
  std::shared_ptr<std::atomic<bool>> abandoned = std::make_shared<std::atomic<bool>>(false);
};

// Origin <-> the address's home shard: may a check start (`allowed`), and
// later how it ended. Heap-allocated, carried in a mailbox message's target.
struct auth_permit {
  credit::credential_cache::key key;
  std::string address;
  unsigned origin = 0;
  bool allowed = false;
  bool failed = false;  // the report: the credentials were wrong
};

// An AUTH that succeeded and now needs the 235 line's credit from the home.
struct pending_auth_credit {
  io::connection* conn = nullptr;
  account_settings account;
};

using lease_use = credit::lease_wallet::use;

// One per shard, a service of it: the request handler of its SMTP
// connections and the host of its delivery engine.
class gateway_handler final : public core::service, public io::request_handler, public delivery::host {
 public:
  gateway_handler(core::shard& shard, std::shared_ptr<const gateway_services> services, spool::journal* journal)
      : shard_(shard),
        journal_(journal),
        services_(std::move(services)),
        authority_(shard.count()),
        wallet_(shard.id()),
        rate_authority_(shard.count()),
        rate_wallet_(shard.id()),
        limiter_(services_->auth_failures_per_minute) {
    if (shard_.id() < services_->balances.size())
      for (const auto& [id, balance] : services_->balances[shard_.id()]) authority_.set_balance(id, balance);
    tick_.self = this;
    if (services_->delivery && services_->delivery->enabled())
      engine_ = std::make_unique<delivery::engine>(shard_, services_->delivery, *this);
  }
  ~gateway_handler() override {
    // The shard's timer wheel outlives its handler: leave it no dangling node.
    if (tick_.armed()) shard_.timers().cancel(tick_);
  }

  void handle(io::connection& c) override {
    switch (smtp_of(c).pending()) {
      case smtp::request_kind::authenticate: return authenticate(c);
      case smtp::request_kind::credit_check: return credit_check(c);
      case smtp::request_kind::commit: return commit(c);
      case smtp::request_kind::rate_check: return rate_check(c);
      case smtp::request_kind::content: return content(c);
      case smtp::request_kind::none: return c.complete();
    }
  }

  // A connection that closed (or whose client stopped sending, so that it
  // could not use a 235) while its password check is still queued leaves
  // it; once nobody waits for a check, its worker skips Argon2id.
  void abandoned(io::connection& c) override {
    if (smtp_of(c).pending() != smtp::request_kind::authenticate) return;
    const auto& req = smtp_of(c).pending_auth();
    auto it = auth_checks_.find(credit::credential_cache::make_key(req.username, req.password));
    if (it == auth_checks_.end()) return;  // past the check: the 235's credit is on its way
    auto& waiters = it->second.waiters;
    const auto at = std::find(waiters.begin(), waiters.end(), &c);
    if (at == waiters.end()) return;
    waiters.erase(at);
    if (waiters.empty()) it->second.abandoned->store(true, std::memory_order_relaxed);
    if (!c.gone()) smtp_of(c).resolve(smtp::auth_result{outcome::temporary_failure, {}, 0});
    c.complete();
  }

  void after_batch() override {
    // Durable debits go home before this batch's replies are sent, so a
    // client that saw its 250 finds the debit in any later 235 line.
    credit::lease_wallet::outbox out;
    wallet_.flush(out);
    dispatch(out);
    credit::lease_wallet::outbox rate_out;
    rate_wallet_.flush(rate_out);
    dispatch(rate_out, true);
    answer_balance_queries();
    arm_tick();
  }

  void commit_durable(commit_waiter* w);

  void begin_shutdown() override {
    if (engine_) engine_->stop();
  }
  bool drained() const override { return !engine_ || engine_->drained(); }

  // --- live operations (admin endpoint), on this shard's thread -------------
  credit::lease_authority::account_view view(account_id id) const { return authority_.view(id); }

  // A top-up is a journal record on the home shard; the credit exists only
  // once it is durable, and then it is unleased credit at once. One that
  // would take the balance past max_balance is refused before it is written
  // (top-ups are serialised here, on the home, so the check cannot race).
  void top_up(account_id id, credit_units amount, std::function<void(top_up_result)> done) {
    using outcome = top_up_result::outcome;
    const credit_units balance = authority_.balance(id);
    // Top-ups still being journaled count too, so two that each fit but
    // together would not are not both answered 200.
    credit_units& in_flight = top_ups_in_flight_[id];
    if (amount <= 0 || amount > max_balance - std::max<credit_units>(balance, 0) - in_flight) {
      if (in_flight == 0) top_ups_in_flight_.erase(id);
      return done({outcome::over_maximum, balance});
    }
    spool::journal* journal = journal_;
    if (journal == nullptr) return done({outcome::failed, balance});
    in_flight += amount;
    auto* w = new top_up_waiter;
    w->handler = this;
    w->account = id;
    w->amount = amount;
    w->done = std::move(done);
    journal->append_credit(spool::record_type::top_up, id, amount, w);
  }

  void top_up_durable(account_id id, credit_units amount, bool ok, std::function<void(top_up_result)>& done) {
    if ((top_ups_in_flight_[id] -= amount) <= 0) top_ups_in_flight_.erase(id);
    if (ok) {
      credit::lease_authority::outbox out;
      delta_.add_credit(id, authority_.credit(id, amount, out));
      dispatch(out);
    }
    done({ok ? top_up_result::outcome::durable : top_up_result::outcome::failed, authority_.balance(id)});
  }

  void forget_credentials(account_id id) { cache_.invalidate(id); }

  // The checkpoint thread's share of this shard: everything folded since the
  // last call, and the journal position it reaches.
  credit::journal_delta take_delta() {
    credit::journal_delta d = std::move(delta_);
    delta_ = credit::journal_delta{};
    d.shard = shard_.id();
    d.sequence = journal_ != nullptr ? journal_->durable_sequence() : 0;
    return d;
  }

 // The handler of `s` (every gateway shard has one).
  static gateway_handler& at(core::shard& s) { return *s.find<gateway_handler>(); }

 private:
  unsigned home_of(account_id id) const { return credit::home_shard(id, shard_.count()); }

  // --- AUTH -----------------------------------------------------------------
  // A cached success answers at once. Otherwise the source address's home
  // shard must allow a check (credit::auth_limiter) before a worker runs
  // Argon2id, and hears how it ended; the same credentials asked for again
  // meanwhile wait for the same check.
  void authenticate(io::connection& c) {
    const auto& req = smtp_of(c).pending_auth();
    credit::credential_cache::key key = credit::credential_cache::make_key(req.username, req.password);
    if (const account_settings* known = cache_.find(key)) {
      account_settings copy = *known;  // the cache may rehash under us
      return auth_ok(c, std::move(copy));
    }
    auto [it, fresh] = auth_checks_.try_emplace(key);
    it->second.waiters.push_back(&c);
    // The same credentials are being verified already: wait for that check
    // (wanted again, even if everyone before had left it).
    it->second.abandoned->store(false, std::memory_order_relaxed);
    if (!fresh) return;
    it->second.address = smtp_of(c).connection().peer_ip;
    auto* p = new auth_permit{key, it->second.address, shard_.id()};
    core::message m;
    m.run = &gateway_handler::permit_at_home;
    m.target = p;
    post(credit::auth_home_shard(p->address, shard_.count()), m);
  }

  static void permit_at_home(core::shard& home, const core::message& m) {
    auto* p = static_cast<auth_permit*>(m.target);
    auto& self = at(home);
    p->allowed = self.limiter_.try_begin(p->address, home.now_ms());
    if (!p->allowed && self.limiter_.first_refusal(p->address))
      std::fprintf(stderr,
                   "postino: auth: %s is over %u failed AUTH per minute; its AUTH gets 454 4.7.0 and no "
                   "password check until it recovers\n",
                   p->address.c_str(), self.services_->auth_failures_per_minute);
    core::message reply;
    reply.run = &gateway_handler::permit_answer;
    reply.target = p;
    self.post(p->origin, reply);
  }

  static void permit_answer(core::shard& here, const core::message& m) {
    std::unique_ptr<auth_permit> p(static_cast<auth_permit*>(m.target));
    auto& self = at(here);
    auto it = self.auth_checks_.find(p->key);
    if (it == self.auth_checks_.end()) {
      if (p->allowed) self.report_end(p->address, false);
      return;
    }
    it->second.permitted = p->allowed;
    if (!p->allowed || it->second.waiters.empty())
      return self.auth_done(p->key, verified{outcome::temporary_failure, {}, false});
    if (!self.start_check(p->key, it->second)) {
      self.note_busy();
      self.auth_done(p->key, verified{outcome::busy, {}, false});
    }
  }

  void report_end(const std::string& address, bool failed) {
    auto* p = new auth_permit{{}, address, shard_.id()};
    p->failed = failed;
    core::message m;
    m.run = &gateway_handler::end_at_home;
    m.target = p;
    post(credit::auth_home_shard(address, shard_.count()), m);
  }

  static void end_at_home(core::shard& home, const core::message& m) {
    std::unique_ptr<auth_permit> p(static_cast<auth_permit*>(m.target));
    at(home).limiter_.end(p->address, p->failed, home.now_ms());
  }

  bool start_check(const credit::credential_cache::key& key, const auth_check& check) {
    if (services_->pool == nullptr) return false;
    const auto& req = smtp_of(*check.waiters.front()).pending_auth();
    core::shard* shard = &shard_;
    auto services = services_;
    return services_->pool->submit(
        [shard, services, key, abandoned = check.abandoned, user = req.username, pass = req.password] {
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
          shard->post_from_any_thread([shard, key, result] { at(*shard).auth_done(key, std::move(*result)); });
        });
  }

  // Every check queue of the process is full: 454 4.3.0, said in the log
  // at most once a second (with how many were refused meanwhile).
  void note_busy() {
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
  void auth_done(const credit::credential_cache::key& key, verified result) {
    auto it = auth_checks_.find(key);
    if (it == auth_checks_.end()) return;
    // Skipped because everyone had left, but someone asked again since: run
    // it after all (the address's permit is still held for it).
    if (result.skipped && it->second.permitted && !it->second.waiters.empty()) {
      if (start_check(key, it->second)) return;
      note_busy();
      result = verified{outcome::busy, {}, false};
    }
    auto node = auth_checks_.extract(it);
    if (node.mapped().permitted)
      report_end(node.mapped().address, result.checked && result.result == outcome::invalid);
    if (result.result == outcome::ok) cache_.insert(key, result.account);
    for (io::connection* c : node.mapped().waiters) {
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

  // The 235 line's CREDIT is the home's balance: every reported debit is in
  // it, leases handed out are not. The query waits for the home's end of
  // batch, after its mailbox drain, so a debit reported before the client
  // could have seen its 250 is never missed.
  void auth_ok(io::connection& c, account_settings account) {
    auto* p = new pending_auth_credit{&c, std::move(account)};
    core::message m;
    m.run = &gateway_handler::balance_query_at_home;
    m.target = p;
    m.a = p->account.id;
    m.b = shard_.id();
    post(home_of(p->account.id), m);
  }

  struct balance_query {
    unsigned origin = 0;
    void* target = nullptr;
    account_id account = 0;
  };

  static void balance_query_at_home(core::shard& home, const core::message& m) {
    at(home).balance_queries_.push_back({static_cast<unsigned>(m.b), m.target, m.a});
  }

  void answer_balance_queries() {
    if (balance_queries_.empty()) return;
    std::vector<balance_query> queries;
    queries.swap(balance_queries_);
    for (const auto& q : queries) {
      core::message reply;
      reply.run = &gateway_handler::balance_answer;
      reply.target = q.target;
      reply.c = authority_.balance(q.account);
      post(q.origin, reply);
    }
  }

  static void balance_answer(core::shard&, const core::message& m) {
    std::unique_ptr<pending_auth_credit> p(static_cast<pending_auth_credit*>(m.target));
    if (!p->conn->gone()) {
      smtp::auth_result r{outcome::ok, std::move(p->account), m.c};
      smtp_of(*p->conn).resolve(r);
    }
    p->conn->complete();
  }

  // --- the content step -----------------------------------------------------
  // The session reads small raw texts itself; what it asks for here (an
  // e-mail for GMime, a big body) goes to the content pool, and the session
  // waits as it waits for the journal: one costly message never stalls the
  // sessions of its shard. The worker reads the body and account in the
  // session, which leaves them alone while the request is pending; the
  // connection outlives the request, gone or not.
  void content(io::connection& c) {
    const smtp::content_request& req = smtp_of(c).pending_content();
    if (services_->content_pool == nullptr) {
      smtp_of(c).resolve(mime::read_content(*req.body, *req.account, req.limits));
      return c.complete();
    }
    core::shard* shard = &shard_;
    io::connection* conn = &c;
    const bool queued = services_->content_pool->submit([shard, conn, req] {
      auto result = std::make_shared<mime::content_result>();
      try {
        *result = mime::read_content(*req.body, *req.account, req.limits);
      } catch (const std::exception& e) {
        // Always answer, or the session would wait for ever.
        std::fprintf(stderr, "postino: content worker: %s\n", e.what());
        *result = content_failed();
      }
      shard->post_from_any_thread([conn, result] {
        if (!conn->gone()) smtp_of(*conn).resolve(std::move(*result));
        conn->complete();
      });
    });
    if (queued) return;
    smtp_of(c).resolve(content_failed());  // the pool's queue is full
    c.complete();
  }

  // The content step could not run (its queue was full, or it failed): the
  // client may send the message again later (the session words it, a 451).
  static mime::content_result content_failed() {
    mime::content_result r;
    r.refusal.kind = mime::refusal_kind::not_run;
    return r;
  }

  // --- credit: the per-message path -----------------------------------------
  void credit_check(io::connection& c) {
    const auto& req = smtp_of(c).pending_credit_check();
    credit_units available = 0;
    if (wallet_.try_take(req.account, lease_use::check, req.amount, shard_.now_ms(), available)) {
      smtp_of(c).resolve(smtp::credit_check_result{available});
      return c.complete();
    }
    credit::lease_wallet::outbox out;
    wallet_.wait(req.account, {&c, lease_use::check, req.amount}, shard_.now_ms(), out);
    dispatch(out);
  }

  void commit(io::connection& c) {
    const smtp::transaction& tx = smtp_of(c).pending_commit();
    credit_units available = 0;
    if (wallet_.try_take(tx.account, lease_use::debit, tx.price, shard_.now_ms(), available)) return append(c);
    credit::lease_wallet::outbox out;
    wallet_.wait(tx.account, {&c, lease_use::debit, tx.price}, shard_.now_ms(), out);
    dispatch(out);
  }

  // Delivers what the wallet produced: results to their sessions, requests
  // and reports to the accounts' homes. Results may start new requests on
  // this shard (a resumed session pipelines on), which dispatch again.
  // `rate`: the outbox is the rate wallet's, and the messages carry a flag
  // that sends them to the rate authority and back to the rate wallet.
  void dispatch(credit::lease_wallet::outbox& out, bool rate = false) {
    if (!out.requests.empty() && !rate)
      core::shard_metrics::bump(shard_.metrics().credit_requests, static_cast<std::int64_t>(out.requests.size()));
    for (const auto& r : out.requests) {
      core::message m;
      m.run = &gateway_handler::request_at_home;
      m.a = r.account;
      m.b = r.shard | (static_cast<std::uint64_t>(r.what) << 32) | (rate ? 1ull << 40 : 0);
      m.c = r.need;
      m.d = r.want;
      if (rate) m.e = rate_of(r.account);
      post(home_of(r.account), m);
    }
    for (const auto& r : out.reports) {
      core::message m;
      m.run = &gateway_handler::report_at_home;
      m.a = r.account;
      m.b = (r.shard & 0xffffu) | (r.recall_answer ? 1ull << 16 : 0) | (rate ? 1ull << 17 : 0) | (r.messages << 32);
      m.c = r.spent;
      m.d = r.returned;
      m.e = r.need;
      post(home_of(r.account), m);
    }
    for (const auto& r : out.results) rate ? deliver_rate(r) : deliver(r);
  }

  void deliver(const credit::lease_wallet::result& r) {
    auto* c = static_cast<io::connection*>(r.token);
    if (r.kind == lease_use::check) {
      if (!c->gone()) smtp_of(*c).resolve(smtp::credit_check_result{r.available});
      return c->complete();
    }
    if (c->gone()) {
      // Nobody will hear the 250: do not store a message the client never
      // saw accepted, and give the debit back.
      if (r.ok) settle(smtp_of(*c).pending_commit().account, r.amount, false);
      return c->complete();
    }
    if (!r.ok) return refuse(*c, r.amount, r.available);
    append(*c);
  }

  void settle(account_id account, credit_units amount, bool durable) {
    credit::lease_wallet::outbox out;
    wallet_.settle(account, amount, durable, shard_.now_ms(), out);
    dispatch(out);
  }

  // Home side of the lease protocol.
  static void request_at_home(core::shard& home, const core::message& m) {
    credit::lease_request r;
    r.account = m.a;
    r.shard = static_cast<unsigned>(m.b & 0xffffffffu);
    r.what = static_cast<credit::lease_request::kind>(m.b >> 32 & 0xff);
    r.need = m.c;
    r.want = m.d;
    const bool rate = (m.b >> 40 & 1) != 0;
    auto& self = at(home);
    credit::lease_authority::outbox out;
    if (rate) self.refill(r.account, static_cast<std::uint32_t>(m.e));
    (rate ? self.rate_authority_ : self.authority_).on_request(r, out);
    self.dispatch(out, rate);
  }

  static void report_at_home(core::shard& home, const core::message& m) {
    credit::lease_report r;
    r.account = m.a;
    r.shard = static_cast<unsigned>(m.b & 0xffffu);
    r.recall_answer = (m.b >> 16 & 1) != 0;
    r.messages = m.b >> 32;
    r.spent = m.c;
    r.returned = m.d;
    r.need = m.e;
    const bool rate = (m.b >> 17 & 1) != 0;
    auto& self = at(home);
    credit::lease_authority::outbox out;
    (rate ? self.rate_authority_ : self.authority_).on_report(r, out);
    self.dispatch(out, rate);
  }

  void dispatch(credit::lease_authority::outbox& out, bool rate = false) {
    for (const auto& [to, a] : out.answers) {
      core::message m;
      m.run = &gateway_handler::answer_at_shard;
      m.a = a.account;
      m.b = (a.refused ? 1 : 0) | (rate ? 2 : 0);
      m.c = a.granted;
      m.d = a.unleased;
      post(to, m);
    }
    for (const auto& [to, account] : out.recalls) {
      core::message m;
      m.run = &gateway_handler::recall_at_shard;
      m.a = account;
      m.b = rate ? 1 : 0;
      post(to, m);
    }
  }

  static void answer_at_shard(core::shard& here, const core::message& m) {
    credit::lease_answer a;
    a.account = m.a;
    a.refused = (m.b & 1) != 0;
    a.granted = m.c;
    a.unleased = m.d;
    const bool rate = (m.b & 2) != 0;
    auto& self = at(here);
    credit::lease_wallet::outbox out;
    (rate ? self.rate_wallet_ : self.wallet_).on_answer(a, here.now_ms(), out);
    self.dispatch(out, rate);
  }

  static void recall_at_shard(core::shard& here, const core::message& m) {
    auto& self = at(here);
    const bool rate = m.b != 0;
    if (!rate) core::shard_metrics::bump(here.metrics().credit_recalls);
    credit::lease_wallet::outbox out;
    (rate ? self.rate_wallet_ : self.wallet_).on_recall(m.a, out);
    self.dispatch(out, rate);
    self.arm_tick();
  }

  // --- rate limit: message tokens, leased like credit -----------------------
  // One message is token_units; a bucket of R per second refills R units per
  // millisecond and holds at most R x token_units (a burst of one second).
  static constexpr credit_units token_units = 1000;

  struct bucket {
    std::uint32_t per_second = 0;
    std::uint64_t refilled_ms = 0;
  };

  std::uint32_t rate_of(account_id id) const {
    auto it = rate_seen_.find(id);
    return it == rate_seen_.end() ? 1 : it->second;
  }

  void rate_check(io::connection& c) {
    const auto& req = smtp_of(c).pending_rate_check();
    rate_seen_[req.account] = req.per_second;
    credit_units available = 0;
    if (rate_wallet_.try_take(req.account, lease_use::debit, token_units, shard_.now_ms(), available)) {
      spend_token(req.account, true);
      smtp_of(c).resolve(smtp::rate_check_result{true});
      c.complete();
      return arm_tick();
    }
    credit::lease_wallet::outbox out;
    rate_wallet_.wait(req.account, {&c, lease_use::debit, token_units}, shard_.now_ms(), out);
    dispatch(out, true);
  }

  void deliver_rate(const credit::lease_wallet::result& r) {
    auto* c = static_cast<io::connection*>(r.token);
    const account_id id = smtp_of(*c).pending_rate_check().account;
    // A token taken for a client that left goes back into the lease.
    if (r.ok) spend_token(id, !c->gone());
    if (!c->gone()) smtp_of(*c).resolve(smtp::rate_check_result{r.ok});
    c->complete();
  }

  // A token is spent the moment it is taken: "settled durable" in the
  // wallet's terms, so it is reported home at the end of the batch.
  void spend_token(account_id id, bool spent) {
    credit::lease_wallet::outbox out;
    rate_wallet_.settle(id, token_units, spent, shard_.now_ms(), out);
    dispatch(out, true);
  }

  // Home side: tops the bucket up for the time since the last refill, before
  // a request is decided. The cap counts leased and unreported tokens too,
  // so the account can never hold more than one second's burst anywhere.
  void refill(account_id id, std::uint32_t per_second) {
    if (per_second == 0) per_second = 1;
    const std::uint64_t now = shard_.now_ms();
    const credit_units burst = static_cast<credit_units>(per_second) * token_units;
    auto [it, fresh] = buckets_.try_emplace(id, bucket{per_second, now});
    if (fresh) return rate_authority_.set_balance(id, burst);
    bucket& b = it->second;
    const std::uint64_t elapsed = std::min<std::uint64_t>(now - b.refilled_ms, 1000);
    b.refilled_ms = now;
    b.per_second = per_second;  // a changed limit applies from now on
    const credit_units room = burst - rate_authority_.balance(id);
    const credit_units add = std::min(static_cast<credit_units>(elapsed) * per_second, room);
    if (add <= 0) return;
    credit::lease_authority::outbox unused;
    rate_authority_.credit(id, add, unused);
  }

  // Idle leases go home and spend rates age on a timer that runs only while
  // this shard holds something of some account.
  struct lease_tick final : core::timer_node {
    gateway_handler* self = nullptr;
    void on_timer() override {
      credit::lease_wallet::outbox out;
      self->wallet_.tick(self->shard_.now_ms(), out);
      self->dispatch(out);
      credit::lease_wallet::outbox rate_out;
      self->rate_wallet_.tick(self->shard_.now_ms(), rate_out);
      self->dispatch(rate_out, true);
      self->arm_tick();
    }
  };
  static constexpr std::uint64_t tick_ms = 200;

  void arm_tick() {
    if (tick_.armed() || (wallet_.idle() && rate_wallet_.idle())) return;
    shard_.timers().schedule(tick_, shard_.now_ms(), tick_ms);
  }

  void post(unsigned to, const core::message& m) { shard_.post(to, m); }

  // --- delivery::host ----------------------------------------------------------
  // The refund record is in this shard's journal (add_delivery_row folded it
  // into this shard's checkpoint delta); the credit itself is the home's to hand out again.
  void refund_durable(account_id id, credit_units amount) override {
    core::message m;
    m.run = &gateway_handler::refund_at_home;
    m.a = id;
    m.c = amount;
    post(home_of(id), m);
  }
  credit::journal_delta& delta() override { return delta_; }
  spool::journal* journal() override { return journal_; }

  // The refund's shard folded the whole amount into its checkpoint delta; a
  // refund cut by the maximum balance is corrected here, so the checkpoint
  // sums to the balance the home holds and no start-up repairs it.
  static void refund_at_home(core::shard& home, const core::message& m) {
    auto& self = at(home);
    credit::lease_authority::outbox out;
    const credit_units credited = self.authority_.credit(m.a, m.c, out);
    if (credited != m.c) self.delta_.balance[m.a] += credited - m.c;
    self.dispatch(out);
  }

  void refuse(io::connection& c, credit_units need, credit_units available) {
    smtp::commit_result r;
    r.result = smtp::commit_result::outcome::insufficient_credit;
    r.need = need;
    r.available = available;
    smtp_of(c).resolve(r);
    c.complete();
  }

  // The debit is made; now the record (message + debit) goes to this shard's journal.
  void append(io::connection& c) {
    smtp::transaction& tx = smtp_of(c).pending_commit();
    spool::journal* journal = journal_;
    if (journal == nullptr) {
      settle(tx.account, tx.price, false);
      smtp::commit_result r;
      r.result = smtp::commit_result::outcome::local_error;
      smtp_of(c).resolve(r);
      return c.complete();
    }
    auto* w = new commit_waiter;
    w->handler = this;
    w->conn = &c;
    w->accepted = std::make_shared<message>(std::move(tx));
    w->id = journal->append_message(w->accepted, w);
    w->in_append = false;
    if (w->done) commit_durable(w);
  }

  core::shard& shard_;
  spool::journal* journal_;  // this shard's; null: no durable commits (tests)
  std::shared_ptr<const gateway_services> services_;
  std::unique_ptr<delivery::engine> engine_;  // null without SMSCs
  credit::lease_authority authority_;  // the accounts whose home is this shard
  credit::lease_wallet wallet_;        // this shard's leases of every account
  credit::lease_authority rate_authority_;  // token buckets of the accounts whose home is this shard
  credit::lease_wallet rate_wallet_;        // this shard's token leases
  std::unordered_map<account_id, bucket> buckets_;           // home side, per limited account
  std::unordered_map<account_id, std::uint32_t> rate_seen_;  // the limit sessions last asked with
  lease_tick tick_;
  credit::journal_delta delta_;  // durable records since the last checkpoint
  std::vector<balance_query> balance_queries_;
  credit::credential_cache cache_;
  std::unordered_map<credit::credential_cache::key, auth_check> auth_checks_;
  std::unordered_map<account_id, credit_units> top_ups_in_flight_;  // home side: journaled, not yet durable
  credit::auth_limiter limiter_;  // the source addresses whose home is this shard
  std::uint64_t busy_refusals_ = 0;
  std::uint64_t busy_logged_ms_ = 0;
};

void top_up_waiter::on_durable(bool durable) {
  std::unique_ptr<top_up_waiter> owned(this);
  handler->top_up_durable(account, amount, durable, done);
}

void commit_waiter::on_durable(bool durable) {
  done = true;
  ok = durable;
  if (!in_append) handler->commit_durable(this);
}

void gateway_handler::commit_durable(commit_waiter* w) {
  std::unique_ptr<commit_waiter> owned(w);
  io::connection& c = *w->conn;
  smtp::commit_result r;
  // Durable: the debit is reported home at the end of this batch. Not
  // durable, so not charged: the debit goes back into the lease and the
  // client retries.
  settle(w->accepted->account, w->accepted->price, w->ok);
  if (w->ok) {
    core::shard_metrics::bump(shard_.metrics().messages_accepted);
    // The journal has written the body and reads the message no more.
    std::string().swap(w->accepted->body);
    const std::uint64_t now = core::unix_ms();
    if (engine_) {
      auto outbound = delivery::make_outbound(w->accepted, w->id, now, services_->delivery->config->delivery.validity_s);
      if (outbound) engine_->hand_off(std::move(outbound));
    }
    r.result = smtp::commit_result::outcome::accepted;
    const queue_id::text id = w->id.to_text();
    r.queue_id = id.view();
    r.recipients = &w->accepted->recipients;  // the 250 line lists them
    if (!c.gone()) smtp_of(c).resolve(r);
    delta_.add_message(w->id.format(), w->id.sequence, now, std::move(w->accepted));
  } else {
    r.result = smtp::commit_result::outcome::local_error;
    if (!c.gone()) smtp_of(c).resolve(r);
  }
  c.complete();
}

}  // namespace

credit::journal_delta take_journal_delta(core::shard& shard) {
  return gateway_handler::at(shard).take_delta();
}

credit::lease_authority::account_view account_view(core::shard& home, account_id id) {
  return gateway_handler::at(home).view(id);
}

void top_up(core::shard& home, account_id id, credit_units amount, std::function<void(top_up_result)> done) {
  gateway_handler::at(home).top_up(id, amount, std::move(done));
}

void forget_credentials(core::shard& shard, account_id id) {
  gateway_handler::at(shard).forget_credentials(id);
}

core::runtime::service_factory make_shard_services(std::shared_ptr<const gateway_services> services,
                                                   std::vector<spool::journal*> journals,
                                                   io::listener_set& listeners) {
  return [services, journals = std::move(journals), &listeners](core::shard& shard,
                                                                 std::vector<std::unique_ptr<core::service>>& out) {
    spool::journal* journal = shard.id() < journals.size() ? journals[shard.id()] : nullptr;
    if (journal != nullptr) out.push_back(spool::attach_to_shard(*journal, shard));
    auto handler = std::make_unique<gateway_handler>(shard, services, journal);
    gateway_handler& requests = *handler;
    out.push_back(std::move(handler));
    out.push_back(std::make_unique<io::server>(shard, listeners, requests));
  };
}

}  // namespace postino::app
