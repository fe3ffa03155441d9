// The checkpoint thread (see checkpointer.h). Deltas travel from the shards
// by value through a mutex-guarded mailbox shared with the closures posted to
// the shards (a shared_ptr, so a late answer never writes into freed memory);
// the thread owns the unsaved deltas and the SQLite connection.
#include "checkpointer.h"

#include <cstdio>
#include <utility>

#include "gateway.h"
#include "postino/mime.h"

namespace postino::app {

checkpointer::checkpointer(core::runtime& rt, std::unique_ptr<credit::checkpoint_store> store,
                           std::chrono::milliseconds interval, std::chrono::milliseconds text_retention)
    : rt_(rt), store_(std::move(store)), interval_(interval), text_retention_(text_retention) {
  unsaved_.resize(rt_.shard_count());
  for (unsigned i = 0; i < rt_.shard_count(); ++i) unsaved_[i].shard = i;
  asked_.assign(rt_.shard_count(), false);
  saved_sequence_.assign(rt_.shard_count(), 0);
}

checkpointer::~checkpointer() { stop(); }

void checkpointer::start() {
  thread_ = std::thread([this] { run(); });
}

void checkpointer::stop() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  mailbox_->arrived.notify_all();
  if (thread_.joinable()) thread_.join();
}

void checkpointer::run() {
  for (;;) {
    {
      std::unique_lock lock(stop_mutex_);
      if (stop_cv_.wait_for(lock, interval_, [this] { return stopping_; })) return;
    }
    once();
  }
}

void checkpointer::once() {
  const unsigned shards = rt_.shard_count();
  for (unsigned i = 0; i < shards; ++i) {
    if (asked_[i]) continue;  // the last question is still unanswered
    asked_[i] = true;
    core::shard* shard = &rt_.shard_at(i);
    std::shared_ptr<mailbox> box = mailbox_;
    shard->post_from_any_thread([shard, box] {
      credit::journal_delta d = take_journal_delta(*shard);
      {
        std::lock_guard lock(box->mutex);
        box->deltas.push_back(std::move(d));
      }
      box->arrived.notify_all();
    });
  }
  // Collect the answers; a shard busy for more than a few seconds is left
  // for the next round.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<credit::journal_delta> answers;
  {
    std::unique_lock lock(mailbox_->mutex);
    auto all_in = [&] {
      for (const auto& d : mailbox_->deltas) asked_[d.shard] = false;
      answers.insert(answers.end(), std::make_move_iterator(mailbox_->deltas.begin()),
                     std::make_move_iterator(mailbox_->deltas.end()));
      mailbox_->deltas.clear();
      for (bool a : asked_)
        if (a) return false;
      return true;
    };
    while (!all_in()) {
      if (mailbox_->arrived.wait_until(lock, deadline) == std::cv_status::timeout) {
        all_in();
        break;
      }
      std::lock_guard stop_lock(stop_mutex_);
      if (stopping_) break;
    }
  }
  for (auto& d : answers) unsaved_[d.shard].merge(std::move(d));
  // No journal moved: nothing to fold, so an idle gateway does not write
  // (and fsync) its database every interval.
  auto moved = [this](unsigned i) {
    const credit::journal_delta& d = unsaved_[i];
    return d.sequence != saved_sequence_[i] || !d.balance.empty() || !d.accepted.empty() ||
           !d.deliveries.empty() || !d.inbound_messages.empty();
  };
  bool any = false;
  for (unsigned i = 0; i < shards; ++i) any = any || moved(i);
  sweep_texts();
  // Retention acts on what the last written checkpoint covers.
  if (!any) {
    if (retention_) retention_->run(saved_sequence_, finals_written_, *store_);
    return;
  }
  fill_parts();
  std::string error;
  if (!store_->write(unsaved_, error)) {
    if (!failing_) std::fprintf(stderr, "postino: checkpoint: %s (kept for the next one)\n", error.c_str());
    failing_ = true;
    return;
  }
  if (failing_) std::fprintf(stderr, "postino: checkpoint: written again\n");
  failing_ = false;
  for (unsigned i = 0; i < shards; ++i) {
    for (const auto& row : unsaved_[i].deliveries) finals_written_ += is_final(row.state) ? 1 : 0;
    std::uint64_t sequence = unsaved_[i].sequence;
    saved_sequence_[i] = sequence;
    unsaved_[i] = credit::journal_delta{};
    unsaved_[i].shard = i;
    unsaved_[i].sequence = sequence;
  }
  written_.fetch_add(1, std::memory_order_relaxed);
  if (retention_) retention_->run(saved_sequence_, finals_written_, *store_);
}

void checkpointer::fill_parts() {
  for (auto& d : unsaved_)
    for (auto& m : d.accepted)
      if (!m.mms_body.empty()) {
        m.parts = index_parts(m.mms_body);
        std::string().swap(m.mms_body);
      }
}

void checkpointer::sweep_texts() {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  if (now <= text_retention_) return;
  unsigned cleared = 0;
  std::string error;
  const auto before = static_cast<std::uint64_t>((now - text_retention_).count());
  // With retention 0 a message is cleared at the first sweep after it was
  // written, which may be the pass that wrote it.
  if (!store_->clear_texts(text_retention_.count() == 0 ? before + 1 : before, texts_per_sweep, cleared, error)) {
    if (!sweep_failing_) std::fprintf(stderr, "postino: message index text sweep: %s (tried again)\n", error.c_str());
    sweep_failing_ = true;
    return;
  }
  sweep_failing_ = false;
}

std::string index_parts(std::string_view mime_body) {
  std::string out;
  for (const auto& p : mime::list_parts(mime_body))
    out += (out.empty() ? "" : "\n") + p.content_type + " " + std::to_string(p.bytes);
  return out;
}

bool checkpointer::write_final(std::vector<credit::journal_delta> last, std::string& error) {
  std::vector<credit::journal_delta> late;
  {
    std::lock_guard lock(mailbox_->mutex);
    late.swap(mailbox_->deltas);  // answers that came after the last round
  }
  for (auto& d : late)
    if (d.shard < unsaved_.size()) unsaved_[d.shard].merge(std::move(d));
  for (auto& d : last)
    if (d.shard < unsaved_.size()) unsaved_[d.shard].merge(std::move(d));
  fill_parts();
  if (!store_->write(unsaved_, error)) return false;
  written_.fetch_add(1, std::memory_order_relaxed);
  sweep_texts();
  return true;
}

}  // namespace postino::app
