// One postino-load thread: its own io_uring ring, its own registered-file
// table and provided-buffer ring, and its share of the sessions, which it
// connects (spread over source addresses), drives through client_session and
// measures. Threads of one process share only process_shared (the message
// budget, the stop flags, the log descriptor) and publish live counters
// through thread_progress for the monitor. A worker owns its ring, its
// receive buffers (lent to the kernel through the buffer ring) and every
// session's output buffers, which the kernel reads while a send is in flight.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "results.h"
#include "settings.h"

namespace postino::load {

struct process_shared {
  const settings* cfg = nullptr;
  std::int64_t deadline_ns = 0;  // CLOCK_MONOTONIC; 0: none
  std::uint64_t budget = 0;      // messages for this process; 0: unlimited
  std::atomic<std::uint64_t> claimed{0};
  std::atomic<bool> stop{false};   // no new messages; finish and quit
  std::atomic<bool> abort{false};  // stop now
  int log_fd = -1;
  std::mutex fatal_mu;
  std::string fatal;
  // Threads that have finished, so the monitor wakes at once for the last.
  std::mutex done_mu;
  std::condition_variable done_cv;
  unsigned done_threads = 0;

  void thread_done() {
    {
      std::lock_guard lock(done_mu);
      ++done_threads;
    }
    done_cv.notify_all();
  }

  void set_fatal(std::string message) {
    {
      std::lock_guard lock(fatal_mu);
      if (fatal.empty()) fatal = std::move(message);
    }
    abort.store(true);
  }
};

struct thread_progress {
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> ready{0};
  std::atomic<std::uint64_t> probes{0};
  std::atomic<std::uint64_t> p99_ns{0};  // over the current second so far
  std::atomic<bool> done{false};
};

struct thread_share {
  std::uint64_t thread_id = 0;     // the <thread> of nonces: unique over processes
  std::uint64_t session_base = 0;  // global index of the first session
  std::uint32_t sessions = 0;
  double rate = 0;  // open loop: this thread's messages per second
};

std::int64_t monotonic_ns();

// Runs one thread's share to the end and returns what it measured. Errors
// that stop the run are reported through shared.set_fatal.
run_results run_worker(process_shared& shared, const thread_share& share, thread_progress& progress);

}  // namespace postino::load
