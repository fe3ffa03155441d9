// postino-load's final words: the table printed on stdout and the --json
// document (rate, CPU seconds, latency percentiles, reply codes, the exact
// settings). Pure formatting over a finished run; returns strings the caller
// writes.
#pragma once

#include <cstdint>
#include <string>

#include "results.h"
#include "server_memory.h"
#include "settings.h"

namespace postino::load {

struct run_report {
  const settings* cfg = nullptr;
  int processes = 1;
  run_results r;
  double wall_s = 0;
  double cpu_user_s = 0;
  double cpu_sys_s = 0;
  // --idle with --server-pid: the server's VmRSS before connecting and while
  // the most sessions were held.
  bool have_rss = false;
  std::int64_t rss_before_kb = 0;
  std::int64_t rss_after_kb = 0;
  std::uint64_t rss_sessions = 0;
  memory_map maps_before, maps_after;  // per mapping, at the same two moments

  double cpu_s() const { return cpu_user_s + cpu_sys_s; }
  // Messages per second between the first message's start and the last
  // acknowledgement.
  double rate() const {
    if (r.acked == 0 || r.last_ack_ns <= r.first_start_ns) return 0;
    return static_cast<double>(r.acked) * 1e9 / static_cast<double>(r.last_ack_ns - r.first_start_ns);
  }
  double rss_per_session_bytes() const {
    if (!have_rss || rss_sessions == 0) return 0;
    return static_cast<double>(rss_after_kb - rss_before_kb) * 1024.0 / static_cast<double>(rss_sessions);
  }
};

std::string format_table(const run_report& rep);
std::string format_json(const run_report& rep);

}  // namespace postino::load
