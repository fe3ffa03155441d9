// Resolves session requests on a shard (see gateway.h): gateway_handler is
// the shard's service, the request handler of its SMTP connections and the
// host of its delivery engine, and routes each request to the piece that
// does it: AUTH (auth.h), credit (credit_leases.h), the rate limit
// (rate_limit.h), the content step (content.h), relay look-ups (relays.h)
// and the commit (commit.h).
// It owns the pieces, this shard's checkpoint delta and its delivery engine;
// a piece finds its peer on another shard through the at() functions at the
// end of this file. Buffers: the pieces' own (see their headers).
#include "gateway.h"

#include <memory>
#include <utility>

#include "auth.h"
#include "commit.h"
#include "content.h"
#include "credit_leases.h"
#include "postino/smtp.h"
#include "rate_limit.h"
#include "relays.h"
#include "smtp_endpoint.h"

namespace postino::app {
namespace {

// One per shard, a service of it.
class gateway_handler final : public core::service,
                              public io::request_handler,
                              public delivery::host,
                              public credit_leases::debit_listener {
 public:
  gateway_handler(core::shard& shard, std::shared_ptr<const gateway_services> services, spool::journal* journal)
      : shard_(shard),
        journal_(journal),
        services_(std::move(services)),
        credit_(shard, journal, delta_, *this, *services_),
        rate_(shard),
        auth_(shard, services_, credit_),
        relay_(services_->relays),
        commit_(shard, journal, delta_, credit_, *services_) {
    if (services_->delivery && services_->delivery->enabled())
      engine_ = std::make_unique<delivery::engine>(shard_, services_->delivery, *this);
    commit_.hand_off_to(engine_.get());
  }

  // Destroyed on the shard's thread once it has drained (every journal
  // record durable, the mailboxes emptied): what the checkpoint thread has
  // not taken yet goes to the gateway's final checkpoint.
  ~gateway_handler() override {
    engine_.reset();
    if (services_->last_deltas) services_->last_deltas->put(take_delta());
  }

  void handle(io::connection& c) override {
    switch (smtp_of(c).pending()) {
      case smtp::request_kind::authenticate: return auth_.authenticate(c);
      case smtp::request_kind::credit_check: return credit_.check(c);
      case smtp::request_kind::commit: return commit_.commit(c);
      case smtp::request_kind::rate_check: return rate_.check(c);
      case smtp::request_kind::content: return run_content_step(shard_, services_->content_pool, c);
      case smtp::request_kind::relay_lookup: return relay_.lookup(c);
      case smtp::request_kind::none: return c.complete();
    }
  }
  void abandoned(io::connection& c) override { auth_.abandoned(c); }

  void after_batch() override {
    credit_.flush_reports();
    rate_.flush_reports();
    credit_.answer_balance_queries();
    credit_.arm_tick();
    rate_.arm_tick();
  }
  void begin_shutdown() override {
    if (engine_) engine_->stop();
  }
  bool drained() const override { return !engine_ || engine_->drained(); }

  // --- credit_leases::debit_listener ------------------------------------------
  void debit_done(io::connection& c, const credit::lease_wallet::result& r) override { commit_.debit_done(c, r); }

  // --- delivery::host ----------------------------------------------------------
  void refund_durable(account_id id, credit_units amount) override { credit_.refund(id, amount); }
  credit::journal_delta& delta() override { return delta_; }
  spool::journal* journal() override { return journal_; }

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

  core::shard& shard_;
  spool::journal* journal_;  // this shard's; null: no durable commits (tests)
  std::shared_ptr<const gateway_services> services_;
  credit::journal_delta delta_;  // durable records since the last checkpoint
  credit_leases credit_;
  rate_limiter rate_;
  authenticator auth_;
  relay_resolver relay_;
  committer commit_;
  std::unique_ptr<delivery::engine> engine_;  // null without SMSCs; destroyed first
};

// One retention request's records: a waiter each, the last one told ends it.
class carry_job {
 public:
  carry_job(std::size_t count, std::function<void(bool)> done) : waiters_(count), left_(count), done_(std::move(done)) {
    for (auto& w : waiters_) w.job = this;
  }
  spool::append_waiter* waiter_of(std::size_t i) { return &waiters_[i]; }

 private:
  struct record_waiter final : spool::append_waiter {
    carry_job* job = nullptr;
    void on_durable(bool ok) override { job->told(ok); }
  };
  void told(bool ok) {
    ok_ = ok_ && ok;
    if (--left_ != 0) return;
    done_(ok_);
    delete this;
  }
  std::vector<record_waiter> waiters_;
  std::size_t left_;
  bool ok_ = true;
  std::function<void(bool)> done_;
};

}  // namespace

void carry_records(core::shard& shard, std::vector<std::string> payloads, std::function<void(bool)> done) {
  spool::journal* journal = gateway_handler::at(shard).journal_;
  if (journal == nullptr || payloads.empty()) return done(journal != nullptr);
  auto* job = new carry_job(payloads.size(), std::move(done));  // deletes itself when the last is told
  for (std::size_t i = 0; i < payloads.size(); ++i) journal->append_carried(std::move(payloads[i]), job->waiter_of(i));
  shard.metrics().journal_records_carried.fetch_add(payloads.size(), std::memory_order_relaxed);
}

credit_leases& credit_leases::at(core::shard& s) { return gateway_handler::at(s).credit_; }
rate_limiter& rate_limiter::at(core::shard& s) { return gateway_handler::at(s).rate_; }
authenticator& authenticator::at(core::shard& s) { return gateway_handler::at(s).auth_; }

credit::journal_delta take_journal_delta(core::shard& shard) {
  return gateway_handler::at(shard).take_delta();
}

credit::lease_authority::account_view account_view(core::shard& home, account_id id) {
  return gateway_handler::at(home).credit_.view(id);
}

void top_up(core::shard& home, account_id id, credit_units amount, std::function<void(top_up_result)> done) {
  gateway_handler::at(home).credit_.top_up(id, amount, std::move(done));
}

void forget_credentials(core::shard& shard, account_id id) {
  gateway_handler::at(shard).auth_.forget(id);
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
