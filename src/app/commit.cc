// Debit -> journal -> durable -> 250 (see commit.h). Everything runs on the
// shard's thread; the journal tells the waiter when the record's group is
// durable or failed, possibly before append_message returns.
#include "commit.h"

#include <memory>
#include <string>

#include "postino/core.h"
#include "postino/smtp.h"
#include "smtp_endpoint.h"

namespace postino::app {

// Kept by the journal until the record's group is durable or failed.
struct committer::waiter final : spool::append_waiter {
  committer* owner = nullptr;
  io::connection* conn = nullptr;
  std::shared_ptr<message> accepted;
  queue_id id;
  bool in_append = true;  // on_durable may come before append_message returns
  bool done = false;
  bool ok = false;
  void on_durable(bool durable) override {
    done = true;
    ok = durable;
    if (!in_append) owner->durable(this);
  }
};

void committer::commit(io::connection& c) {
  const smtp::transaction& tx = smtp_of(c).pending_commit();
  if (credit_.debit(c, tx.account, tx.price)) append(c);
}

void committer::debit_done(io::connection& c, const credit::lease_wallet::result& r) {
  if (c.gone()) {
    // Nobody will hear the 250: do not store a message the client never
    // saw accepted, and give the debit back.
    if (r.ok) credit_.settle(smtp_of(c).pending_commit().account, r.amount, false);
    return c.complete();
  }
  if (!r.ok) return refuse(c, r.amount, r.available);
  append(c);
}

void committer::refuse(io::connection& c, credit_units need, credit_units available) {
  smtp::commit_result r;
  r.result = smtp::commit_result::outcome::insufficient_credit;
  r.need = need;
  r.available = available;
  smtp_of(c).resolve(r);
  c.complete();
}

// The debit is made; now the record (message + debit) goes to this shard's journal.
void committer::append(io::connection& c) {
  smtp::transaction& tx = smtp_of(c).pending_commit();
  if (journal_ == nullptr) {
    credit_.settle(tx.account, tx.price, false);
    smtp::commit_result r;
    r.result = smtp::commit_result::outcome::local_error;
    smtp_of(c).resolve(r);
    return c.complete();
  }
  auto* w = new waiter;
  w->owner = this;
  w->conn = &c;
  w->accepted = std::make_shared<message>(std::move(tx));
  w->id = journal_->append_message(w->accepted, w);
  w->in_append = false;
  if (w->done) durable(w);
}

void committer::durable(waiter* w) {
  std::unique_ptr<waiter> owned(w);
  io::connection& c = *w->conn;
  smtp::commit_result r;
  // Durable: the debit is reported home at the end of this batch. Not
  // durable, so not charged: the debit goes back into the lease and the
  // client retries.
  credit_.settle(w->accepted->account, w->accepted->price, w->ok);
  if (!w->ok) {
    r.result = smtp::commit_result::outcome::local_error;
    if (!c.gone()) smtp_of(c).resolve(r);
    return c.complete();
  }
  core::shard_metrics::bump(shard_.metrics().messages_accepted);
  // The journal has written the body and reads the message no more. An
  // MMS's body goes with the index row until the checkpoint thread has
  // listed its parts (a move, no parse here).
  std::string index_body;
  if (w->accepted->is_mms) index_body = std::move(w->accepted->body);
  std::string().swap(w->accepted->body);
  const std::uint64_t now = core::unix_ms();
  if (engine_ != nullptr) {
    auto outbound = delivery::make_outbound(w->accepted, w->id, now, services_.delivery->config->delivery.validity_s);
    if (outbound) engine_->hand_off(std::move(outbound));
  }
  r.result = smtp::commit_result::outcome::accepted;
  const queue_id::text id = w->id.to_text();
  r.queue_id = id.view();
  r.recipients = &w->accepted->recipients;  // the 250 line lists them
  if (!c.gone()) smtp_of(c).resolve(r);
  delta_.add_message(w->id.format(), w->id.sequence, now, std::move(w->accepted));
  delta_.accepted.back().mms_body = std::move(index_body);
  c.complete();
}

}  // namespace postino::app
