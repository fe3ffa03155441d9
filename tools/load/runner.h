// How a postino-load run is spread and gathered: worker processes (forked
// when one process cannot hold the sessions), threads in each, and a monitor
// that publishes live counters. A worker process sends its progress and its
// final results to the parent as JSON lines over a pipe; the parent merges
// them. The runner owns the pipes and the child processes it forks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "results.h"
#include "settings.h"

namespace postino::load {

struct live_snapshot {
  std::uint64_t acked = 0;
  std::uint64_t errors = 0;
  std::uint64_t ready = 0;
  std::uint64_t probes = 0;
  std::uint64_t p99_ns = 0;  // the worst thread's p99 over the current second
};

// Set by the signal handlers: 1 after SIGINT (finish and report), 2 after
// SIGTERM (stop now).
extern std::atomic<int> stop_signal;
void install_signal_handlers();

// Runs the whole load (processes x threads); on_tick is called in the
// calling process about four times a second with the sums so far. log_fd is
// the --log file (O_APPEND) or -1.
run_results run_load(const settings& s, int processes, std::int64_t deadline_ns, int log_fd,
                     const std::function<void(const live_snapshot&)>& on_tick);

}  // namespace postino::load
