// Resolves session requests on a shard (see gateway.h). Everything runs on the
// shard's thread except the body of an AUTH job, which runs on a hash-pool
// worker with its own account_store and hands its result back through the
// shard's inbox. Buffers: the username and password are copied out of the
// session into the job (the session may be gone when it finishes); a commit's
// transaction is moved from the session into the journal, which keeps it
// until its group is durable. Cross-shard messages carry a connection pointer
// that stays valid because the connection lives until complete() is called.
#include "gateway.h"

#include <cstdio>
#include <unordered_map>

#include "postino/io.h"
#include "postino/smtp.h"
#include "postino/spool.h"

namespace postino::app {
namespace {

using outcome = smtp::auth_result::outcome;

struct verified {
  outcome result = outcome::temporary_failure;
  account_settings account;
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
struct commit_waiter final : spool::append_waiter {
  gateway_handler* handler = nullptr;
  io::connection* conn = nullptr;
  account_id account = 0;
  credit_units price = 0;
  std::string queue_id;
  bool in_append = true;  // on_durable may come before append_message returns
  bool done = false;
  bool ok = false;
  void on_durable(bool durable) override;
};

// An AUTH that succeeded and now needs the 235 line's credit from a remote home.
struct pending_auth_credit {
  io::connection* conn = nullptr;
  account_settings account;
};

class gateway_handler final : public core::request_handler {
 public:
  gateway_handler(core::shard& shard, std::shared_ptr<const gateway_services> services)
      : shard_(shard), services_(std::move(services)) {
    if (shard_.id() < services_->balances.size())
      for (const auto& [id, balance] : services_->balances[shard_.id()]) ledger_.set_balance(id, balance);
  }

  void handle(io::connection& c) override {
    switch (c.session().pending()) {
      case smtp::request_kind::authenticate: return authenticate(c);
      case smtp::request_kind::credit_check: return credit_check(c);
      case smtp::request_kind::commit: return commit(c);
      case smtp::request_kind::none: return c.complete();
    }
  }

  void commit_durable(commit_waiter* w);

 private:
  static gateway_handler& at(core::shard& s) { return static_cast<gateway_handler&>(s.handler()); }
  unsigned home_of(account_id id) const { return credit::home_shard(id, shard_.count()); }

  // --- AUTH -----------------------------------------------------------------
  void authenticate(io::connection& c) {
    const auto& req = c.session().pending_auth();
    credit::credential_cache::key key = credit::credential_cache::make_key(req.username, req.password);
    if (const account_settings* known = cache_.find(key)) {
      account_settings copy = *known;  // the cache may rehash under us
      return auth_ok(c, std::move(copy));
    }
    auto [it, fresh] = auth_waiters_.try_emplace(key);
    it->second.push_back(&c);
    if (!fresh) return;  // the same credentials are being verified already
    core::shard* shard = &shard_;
    auto services = services_;
    bool queued = services_->pool != nullptr &&
                  services_->pool->submit([shard, services, key, user = req.username, pass = req.password] {
                    auto result = std::make_shared<verified>(verify_credentials(services->database, user, pass));
                    shard->post_from_any_thread(
                        [shard, key, result] { at(*shard).auth_done(key, std::move(*result)); });
                  });
    if (!queued) auth_done(key, verified{outcome::temporary_failure, {}});
  }

  void auth_done(const credit::credential_cache::key& key, verified result) {
    auto node = auth_waiters_.extract(key);
    if (node.empty()) return;
    if (result.result == outcome::ok) cache_.insert(key, result.account);
    for (io::connection* c : node.mapped()) {
      if (c->gone()) {
        c->complete();
      } else if (result.result == outcome::ok) {
        auth_ok(*c, result.account);
      } else {
        smtp::auth_result r{result.result, {}, 0};
        c->session().resolve(r);
        c->complete();
      }
    }
  }

  void auth_ok(io::connection& c, account_settings account) {
    unsigned home = home_of(account.id);
    if (home == shard_.id()) {
      credit_units available = ledger_.available(account.id);
      smtp::auth_result r{outcome::ok, std::move(account), available};
      c.session().resolve(r);
      return c.complete();
    }
    auto* p = new pending_auth_credit{&c, std::move(account)};
    core::message m;
    m.run = &gateway_handler::available_at_home;
    m.target = p;
    m.a = p->account.id;
    m.b = encode_origin(kind_auth);
    shard_.post(home, m);
  }

  // --- credit check -----------------------------------------------------------
  void credit_check(io::connection& c) {
    account_id id = c.session().pending_credit_check().account;
    unsigned home = home_of(id);
    if (home == shard_.id()) {
      c.session().resolve(smtp::credit_check_result{ledger_.available(id)});
      return c.complete();
    }
    core::message m;
    m.run = &gateway_handler::available_at_home;
    m.target = &c;
    m.a = id;
    m.b = encode_origin(kind_check);
    shard_.post(home, m);
  }

  // Message b: origin shard in the low 32 bits, what to do with the answer above.
  enum : std::uint64_t { kind_check = 0, kind_auth = 1 };
  std::uint64_t encode_origin(std::uint64_t kind) const { return shard_.id() | (kind << 32); }

  static void available_at_home(core::shard& home, const core::message& m) {
    core::message reply;
    reply.run = &gateway_handler::available_answer;
    reply.target = m.target;
    reply.b = m.b;
    reply.c = at(home).ledger_.available(m.a);
    home.post(static_cast<unsigned>(m.b & 0xffffffffu), reply);
  }

  static void available_answer(core::shard&, const core::message& m) {
    if ((m.b >> 32) == kind_auth) {
      std::unique_ptr<pending_auth_credit> p(static_cast<pending_auth_credit*>(m.target));
      if (!p->conn->gone()) {
        smtp::auth_result r{outcome::ok, std::move(p->account), m.c};
        p->conn->session().resolve(r);
      }
      return p->conn->complete();
    }
    auto* c = static_cast<io::connection*>(m.target);
    if (!c->gone()) c->session().resolve(smtp::credit_check_result{m.c});
    c->complete();
  }

  // --- commit -----------------------------------------------------------------
  void commit(io::connection& c) {
    const smtp::transaction& tx = c.session().pending_commit();
    unsigned home = home_of(tx.account);
    if (home == shard_.id()) {
      if (!ledger_.try_debit(tx.account, tx.price)) {
        return refuse(c, tx.price, ledger_.available(tx.account));
      }
      return append(c);
    }
    core::message m;
    m.run = &gateway_handler::debit_at_home;
    m.target = &c;
    m.a = tx.account;
    m.b = shard_.id();
    m.c = tx.price;
    shard_.post(home, m);
  }

  static void debit_at_home(core::shard& home, const core::message& m) {
    auto& ledger = at(home).ledger_;
    core::message reply;
    reply.run = &gateway_handler::debit_answer;
    reply.target = m.target;
    reply.a = ledger.try_debit(m.a, m.c) ? 1 : 0;
    reply.c = ledger.available(m.a);
    home.post(static_cast<unsigned>(m.b), reply);
  }

  static void debit_answer(core::shard& here, const core::message& m) {
    auto* c = static_cast<io::connection*>(m.target);
    auto& self = at(here);
    if (c->gone()) {
      // Nobody will hear the 250: do not store a message the client never
      // saw accepted, and give the debit back.
      if (m.a == 1) {
        const smtp::transaction& tx = c->session().pending_commit();
        self.give_back(tx.account, tx.price);
      }
      return c->complete();
    }
    const smtp::transaction& tx = c->session().pending_commit();
    if (m.a != 1) return self.refuse(*c, tx.price, m.c);
    self.append(*c);
  }

  void refuse(io::connection& c, credit_units need, credit_units available) {
    smtp::commit_result r;
    r.result = smtp::commit_result::outcome::insufficient_credit;
    r.need = need;
    r.available = available;
    c.session().resolve(r);
    c.complete();
  }

  // The debit is made; now the record (message + debit) goes to this shard's journal.
  void append(io::connection& c) {
    smtp::transaction& tx = c.session().pending_commit();
    spool::journal* journal = shard_.journal();
    if (journal == nullptr) {
      give_back(tx.account, tx.price);
      smtp::commit_result r;
      r.result = smtp::commit_result::outcome::local_error;
      c.session().resolve(r);
      return c.complete();
    }
    auto* w = new commit_waiter;
    w->handler = this;
    w->conn = &c;
    w->account = tx.account;
    w->price = tx.price;
    // The session still needs the recipients for its 250 line; only the body
    // (the large part) may leave it, so the record gets copies of the rest.
    smtp::transaction record;
    record.account = tx.account;
    record.originator = tx.originator;
    record.originator_type = tx.originator_type;
    record.recipients = tx.recipients;
    record.body = std::move(tx.body);
    record.price = tx.price;
    record.segments = tx.segments;
    w->queue_id = journal->append_message(std::move(record), w);
    w->in_append = false;
    if (w->done) commit_durable(w);
  }

  void give_back(account_id account, credit_units amount) {
    if (amount == 0) return;
    unsigned home = home_of(account);
    if (home == shard_.id()) return ledger_.credit(account, amount);
    core::message m;
    m.run = [](core::shard& h, const core::message& msg) { at(h).ledger_.credit(msg.a, msg.c); };
    m.a = account;
    m.c = amount;
    shard_.post(home, m);
  }

  core::shard& shard_;
  std::shared_ptr<const gateway_services> services_;
  credit::ledger ledger_;
  credit::credential_cache cache_;
  std::unordered_map<credit::credential_cache::key, std::vector<io::connection*>> auth_waiters_;
};

void commit_waiter::on_durable(bool durable) {
  done = true;
  ok = durable;
  if (!in_append) handler->commit_durable(this);
}

void gateway_handler::commit_durable(commit_waiter* w) {
  std::unique_ptr<commit_waiter> owned(w);
  io::connection& c = *w->conn;
  smtp::commit_result r;
  if (w->ok) {
    core::shard_metrics::bump(shard_.metrics().messages_accepted);
    r.result = smtp::commit_result::outcome::accepted;
    r.queue_id = std::move(w->queue_id);
  } else {
    // Not durable, so not charged: the debit goes back and the client retries.
    give_back(w->account, w->price);
    r.result = smtp::commit_result::outcome::local_error;
  }
  if (!c.gone()) c.session().resolve(r);
  c.complete();
}

}  // namespace

core::runtime::handler_factory make_gateway_handlers(std::shared_ptr<const gateway_services> services) {
  return [services](core::shard& shard) -> std::unique_ptr<core::request_handler> {
    return std::make_unique<gateway_handler>(shard, services);
  };
}

}  // namespace postino::app
