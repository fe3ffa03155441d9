// Relay accounts on the shards (PROTOCOL.md 5a): relay_source holds the
// current credit::relay_directory (every relay rule with its account's
// settings), loaded from its own account_store connection at start-up and
// again when the database changed (polled off the shards, and on SIGHUP);
// relay_resolver answers a session's relay_lookup on its shard from the
// directory it last took, so a relay MAIL never touches SQLite there.
// Buffers: a directory is immutable and shared (shared_ptr) by the source
// and every shard holding it; a lookup's views are the session's.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "postino/credit.h"
#include "postino/io.h"

namespace postino::app {

class relay_source {
 public:
  explicit relay_source(std::string database) : database_(std::move(database)) {}
  ~relay_source() { stop(); }
  relay_source(const relay_source&) = delete;
  relay_source& operator=(const relay_source&) = delete;

  // Start-up (main thread): the first directory; false with `error`.
  bool load(std::string& error);
  // Reloads when the database changed since the last load (any thread but
  // the shards'; serialized). Keeps the current directory on an error.
  void refresh(bool forced = false);
  // A thread that calls refresh() every `every` until stop().
  void start_polling(std::chrono::milliseconds every);
  void stop();

  // The shards: a cheap check whether there is a newer directory, and the
  // directory itself (under a lock: called only after the check said so).
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  std::shared_ptr<const credit::relay_directory> current() const;

 private:
  bool reload(std::string& error);

  std::string database_;
  std::mutex refresh_mutex_;  // one load at a time; owns store_
  std::unique_ptr<credit::account_store> store_;
  std::int64_t data_version_ = -1;
  mutable std::mutex current_mutex_;
  std::shared_ptr<const credit::relay_directory> current_;
  std::atomic<std::uint64_t> generation_{0};
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread poller_;
};

// One per shard (the gateway's): answers relay_lookup requests at once.
class relay_resolver {
 public:
  explicit relay_resolver(std::shared_ptr<relay_source> source) : source_(std::move(source)) {}
  void lookup(io::connection& c);

 private:
  std::shared_ptr<relay_source> source_;  // null: no relay listener, every lookup fails
  std::shared_ptr<const credit::relay_directory> mine_;
  std::uint64_t generation_ = 0;
};

}  // namespace postino::app
