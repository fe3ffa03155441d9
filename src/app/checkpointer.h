// The periodic checkpoint thread (DESIGN.md "Durability and credit"): every
// interval it asks each shard, through the shard's inbox, for what its
// journal made durable since the last time (credit::journal_delta, folded on
// the shard's own thread, so the shard never waits for SQLite), and writes
// all of it to postino.db in one transaction. A delta whose write fails is
// kept and merged into the next attempt; a shard that does not answer in
// time is asked again next round (its late answer is kept, never dropped).
// Off the acknowledgement path: nothing a session waits for runs here.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "postino/credit.h"
#include "postino/runtime.h"
#include "retention.h"

namespace postino::app {

class checkpointer {
 public:
  // `text_retention`: how long the message index keeps a message's text
  // ([index] text_retention_days); each pass clears at most
  // texts_per_sweep older ones, so a backlog drains without a long write.
  checkpointer(core::runtime& rt, std::unique_ptr<credit::checkpoint_store> store,
               std::chrono::milliseconds interval, std::chrono::milliseconds text_retention);
  static constexpr unsigned texts_per_sweep = 1000;
  ~checkpointer();
  checkpointer(const checkpointer&) = delete;
  checkpointer& operator=(const checkpointer&) = delete;

  // Journal retention after each periodic checkpoint (before start()).
  void use_retention(std::unique_ptr<journal_retention> r) { retention_ = std::move(r); }
  // Starts the periodic thread; without it only write_final writes.
  void start();
  // Stops the thread (after the checkpoint in progress, if any).
  void stop();
  // After stop() and once every shard has ended: folds the shards' last
  // deltas (final_deltas) with whatever is still unsaved and writes them,
  // so the checkpoint covers every journal to its end. False with `error`
  // when the write fails (start-up replays the journals then, as after a
  // crash).
  bool write_final(std::vector<credit::journal_delta> last, std::string& error);
  std::uint64_t written() const { return written_.load(std::memory_order_relaxed); }

 private:
  struct mailbox {
    std::mutex mutex;
    std::condition_variable arrived;
    std::vector<credit::journal_delta> deltas;  // answers not yet taken
  };
  void run();
  void once();
  void fill_parts();
  void sweep_texts();

  core::runtime& rt_;
  std::unique_ptr<credit::checkpoint_store> store_;
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds text_retention_;
  bool sweep_failing_ = false;
  std::shared_ptr<mailbox> mailbox_ = std::make_shared<mailbox>();
  std::vector<credit::journal_delta> unsaved_;  // per shard, in shard order
  std::vector<bool> asked_;                     // an answer is still due
  std::vector<std::uint64_t> saved_sequence_;   // per shard, as of the last write
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> written_{0};
  bool failing_ = false;
  std::unique_ptr<journal_retention> retention_;  // null: segments are kept
  std::uint64_t finals_written_ = 0;              // delivery_final rows folded, for retention
  std::thread thread_;
};

// An MMS's parts as the message index stores them ("<type> <bytes>" per
// line), read from its MIME body. Parses the body: call it off the
// acknowledgement path (the checkpoint thread, start-up).
std::string index_parts(std::string_view mime_body);

}  // namespace postino::app
