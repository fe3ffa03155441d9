// Formats a finished postino-load run (see report.h) with fmt; owns nothing.
#include "report.h"

#include <fmt/format.h>

#include <string_view>

namespace postino::load {

namespace {

double ms_of(std::uint64_t ns) { return static_cast<double>(ns) / 1e6; }

void latency_lines(std::string& out, std::string_view label, const histogram& h) {
  if (h.count() == 0) {
    out += fmt::format("{:<20}(none)\n", label);
    return;
  }
  out += fmt::format("{:<20}p50 {:.3f}  p90 {:.3f}  p99 {:.3f}  p99.9 {:.3f}  max {:.3f}  ({} samples)\n", label,
                     ms_of(h.value_at_quantile(0.5)), ms_of(h.value_at_quantile(0.9)),
                     ms_of(h.value_at_quantile(0.99)), ms_of(h.value_at_quantile(0.999)), ms_of(h.max()), h.count());
}

void latency_json(std::string& out, std::string_view key, const histogram& h) {
  out += fmt::format(
      "\"{}\":{{\"count\":{},\"p50\":{:.4f},\"p90\":{:.4f},\"p99\":{:.4f},\"p99_9\":{:.4f},\"max\":{:.4f},"
      "\"min\":{:.4f}}}",
      key, h.count(), ms_of(h.value_at_quantile(0.5)), ms_of(h.value_at_quantile(0.9)),
      ms_of(h.value_at_quantile(0.99)), ms_of(h.value_at_quantile(0.999)), ms_of(h.max()), ms_of(h.min()));
}

std::string codes_text(const std::map<int, std::uint64_t>& m) {
  if (m.empty()) return "none";
  std::string s;
  for (const auto& [code, n] : m) s += fmt::format("{}{}: {}", s.empty() ? "" : "  ", code, n);
  return s;
}

std::string codes_json(const std::map<int, std::uint64_t>& m) {
  std::string s = "{";
  for (const auto& [code, n] : m) s += fmt::format("{}\"{}\":{}", s.size() > 1 ? "," : "", code, n);
  return s + "}";
}

}  // namespace

std::string format_table(const run_report& rep) {
  const settings& s = *rep.cfg;
  const run_results& r = rep.r;
  std::string out;
  out += fmt::format("postino-load: {} mode against {}, {} session(s), {} process(es) x {} thread(s), pipelining {}\n",
                     mode_name(s.mode), s.addr.text, s.total_sessions(), rep.processes, s.threads,
                     r.pipelining_sessions > 0 ? "on" : "off");
  if (s.mode != load_mode::idle) {
    out += fmt::format("{:<20}{}\n", "messages", r.acked);
    out += fmt::format("{:<20}{}\n", "attempted", r.attempted);
    out += fmt::format("{:<20}{:.1f}\n", "msgs/s", rep.rate());
    if (s.mode == load_mode::open) out += fmt::format("{:<20}{:.1f} (unsent at the end: {})\n", "target msgs/s", s.rate, r.backlog_unsent);
    out += fmt::format("{:<20}{}\n", "failed", r.failed);
    out += fmt::format("{:<20}{}\n", "in flight at end", r.inflight.size());
  }
  out += fmt::format("{:<20}{:.3f}\n", "elapsed s", rep.wall_s);
  if (s.mode == load_mode::open)
    out += "  (open loop: latency runs from the moment each message was due, not from when it was sent)\n";
  if (s.mode == load_mode::churn) out += "  (churn: latency runs from connect to the 250 after the text)\n";
  out += fmt::format("{:<20}{}\n", "errors", r.errors);
  out += fmt::format("{:<20}{}\n", "errors by code", codes_text(r.error_codes));
  out += fmt::format("{:<20}{}\n", "replies by code", codes_text(r.codes));
  out += fmt::format("{:<20}{} (failed {}, server closed {}, timed out {})\n", "connections", r.connects,
                     r.connect_errors, r.disconnects, r.timeouts);
  for (const auto& [why, n] : r.connect_failures) out += fmt::format("{:<20}{}: {}\n", "  connect failed", why, n);
  if (s.mode == load_mode::idle) {
    out += fmt::format("{:<20}{} of {}\n", "sessions held", r.ready_peak, s.idle);
    out += fmt::format("{:<20}{}\n", "probes", r.probes);
    latency_lines(out, "probe latency ms", r.probe);
    if (rep.have_rss)
      out += fmt::format("{:<20}{} kB -> {} kB over {} sessions: {:.0f} bytes/session\n", "server RSS",
                         rep.rss_before_kb, rep.rss_after_kb, rep.rss_sessions, rep.rss_per_session_bytes());
  } else {
    // What the latency spans differs by mode; say so next to the numbers.
    const char* label = s.mode == load_mode::open    ? "latency ms (due)"
                        : s.mode == load_mode::churn ? "latency ms (conn)"
                                                     : "latency ms";
    latency_lines(out, label, r.latency);
  }
  out += fmt::format("{:<20}{:.3f} (user {:.3f}, sys {:.3f})\n", "cpu s", rep.cpu_s(), rep.cpu_user_s, rep.cpu_sys_s);
  if (r.acked > 0)
    out += fmt::format("{:<20}{:.2f} us\n", "cpu per message", rep.cpu_s() * 1e6 / static_cast<double>(r.acked));
  if (!r.fatal.empty()) out += fmt::format("{:<20}{}\n", "STOPPED", r.fatal);
  return out;
}

std::string format_json(const run_report& rep) {
  const run_results& r = rep.r;
  std::string out = "{";
  out += fmt::format("\"tool\":\"postino-load\",\"mode\":\"{}\",\"processes\":{},", mode_name(rep.cfg->mode), rep.processes);
  out += fmt::format("\"messages\":{},\"attempted\":{},\"failed\":{},\"inflight\":{},", r.acked, r.attempted, r.failed,
                     r.inflight.size());
  out += fmt::format("\"elapsed_s\":{:.6f},\"rate\":{:.3f},", rep.wall_s, rep.rate());
  out += fmt::format("\"cpu_seconds\":{:.6f},\"cpu_user_seconds\":{:.6f},\"cpu_system_seconds\":{:.6f},", rep.cpu_s(),
                     rep.cpu_user_s, rep.cpu_sys_s);
  out += fmt::format("\"cpu_seconds_per_message\":{:.9f},",
                     r.acked ? rep.cpu_s() / static_cast<double>(r.acked) : 0.0);
  out += fmt::format("\"errors\":{},\"error_codes\":{},\"reply_codes\":{},", r.errors, codes_json(r.error_codes),
                     codes_json(r.codes));
  out += fmt::format("\"connects\":{},\"connect_errors\":{},\"disconnects\":{},\"timeouts\":{},", r.connects,
                     r.connect_errors, r.disconnects, r.timeouts);
  out += fmt::format("\"pipelining\":{},\"backlog_unsent\":{},", r.pipelining_sessions > 0 ? "true" : "false",
                     r.backlog_unsent);
  latency_json(out, "latency_ms", r.latency);
  out += ",";
  latency_json(out, "probe_latency_ms", r.probe);
  out += fmt::format(",\"sessions_held\":{},\"probes\":{}", r.ready_peak, r.probes);
  if (rep.have_rss)
    out += fmt::format(
        ",\"server_rss\":{{\"before_kb\":{},\"after_kb\":{},\"sessions\":{},\"bytes_per_session\":{:.1f}}}",
        rep.rss_before_kb, rep.rss_after_kb, rep.rss_sessions, rep.rss_per_session_bytes());
  out += ",\"fatal\":" + json_quote(r.fatal);
  out += ",\"settings\":" + rep.cfg->to_json();
  out += "}\n";
  return out;
}

}  // namespace postino::load
