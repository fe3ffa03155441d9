// Formats a finished postino-load run (see report.h): the table with fmt, the
// --json document with nlohmann-json; owns nothing.
#include "report.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <string_view>

namespace postino::load {

namespace {

// Mappings that grew less than this are not listed (heap arenas and the
// receive-buffer rings grow by megabytes under 10,000 sessions).
constexpr std::int64_t grown_mapping_min_kb = 1024;

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

// fmt's "{:.Nf}" as a number: the value the report printed with N decimals
// before nlohmann-json wrote it.
double fixed(double v, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::isfinite(v) ? std::round(v * scale) / scale : v;
}

nlohmann::ordered_json latency_json(const histogram& h) {
  return {{"count", h.count()},
          {"p50", fixed(ms_of(h.value_at_quantile(0.5)), 4)},
          {"p90", fixed(ms_of(h.value_at_quantile(0.9)), 4)},
          {"p99", fixed(ms_of(h.value_at_quantile(0.99)), 4)},
          {"p99_9", fixed(ms_of(h.value_at_quantile(0.999)), 4)},
          {"max", fixed(ms_of(h.max()), 4)},
          {"min", fixed(ms_of(h.min()), 4)}};
}

std::string codes_text(const std::map<int, std::uint64_t>& m) {
  if (m.empty()) return "none";
  std::string s;
  for (const auto& [code, n] : m) s += fmt::format("{}{}: {}", s.empty() ? "" : "  ", code, n);
  return s;
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
  if (s.tls != tls_mode::none) {
    out += fmt::format("{:<20}{} {} ({:.1f}/s; resumed {} of {} offered; failed {})\n", "tls handshakes",
                       tls_mode_name(s.tls), r.tls_handshakes, rep.wall_s > 0 ? r.tls_handshakes / rep.wall_s : 0.0,
                       r.tls_resumed, r.tls_offered, r.tls_failures);
    latency_lines(out, "tls handshake ms", r.tls_handshake);
  }
  if (s.mode == load_mode::idle) {
    out += fmt::format("{:<20}{} of {}\n", "sessions held", r.ready_peak, s.idle);
    out += fmt::format("{:<20}{}\n", "probes", r.probes);
    latency_lines(out, "probe latency ms", r.probe);
    if (rep.have_rss) {
      out += fmt::format("{:<20}{} kB -> {} kB over {} sessions: {:.0f} bytes/session\n", "server RSS",
                         rep.rss_before_kb, rep.rss_after_kb, rep.rss_sessions, rep.rss_per_session_bytes());
      std::string grown;
      for (const auto& g : grown_mappings(rep.maps_before, rep.maps_after, grown_mapping_min_kb))
        grown += fmt::format("{}{} kB of {}", grown.empty() ? "" : ", ", g.grew_kb, g.size_kb);
      if (!grown.empty()) out += fmt::format("{:<20}{}\n", "  grown mappings", grown);
    }
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
  nlohmann::ordered_json j = {
      {"tool", "postino-load"},
      {"mode", mode_name(rep.cfg->mode)},
      {"processes", rep.processes},
      {"messages", r.acked},
      {"attempted", r.attempted},
      {"failed", r.failed},
      {"inflight", r.inflight.size()},
      {"elapsed_s", fixed(rep.wall_s, 6)},
      {"rate", fixed(rep.rate(), 3)},
      {"cpu_seconds", fixed(rep.cpu_s(), 6)},
      {"cpu_user_seconds", fixed(rep.cpu_user_s, 6)},
      {"cpu_system_seconds", fixed(rep.cpu_sys_s, 6)},
      {"cpu_seconds_per_message", fixed(r.acked ? rep.cpu_s() / static_cast<double>(r.acked) : 0.0, 9)},
      {"errors", r.errors},
      {"error_codes", codes_object(r.error_codes)},
      {"reply_codes", codes_object(r.codes)},
      {"connects", r.connects},
      {"connect_errors", r.connect_errors},
      {"disconnects", r.disconnects},
      {"timeouts", r.timeouts},
      {"pipelining", r.pipelining_sessions > 0},
      {"backlog_unsent", r.backlog_unsent},
      {"latency_ms", latency_json(r.latency)},
      {"probe_latency_ms", latency_json(r.probe)},
      {"sessions_held", r.ready_peak},
      {"probes", r.probes},
  };
  if (rep.have_rss) {
    nlohmann::ordered_json grown = nlohmann::ordered_json::array();
    for (const auto& g : grown_mappings(rep.maps_before, rep.maps_after, grown_mapping_min_kb))
      grown.push_back({{"size_kb", g.size_kb}, {"grew_kb", g.grew_kb}});
    j["server_rss"] = {{"before_kb", rep.rss_before_kb},
                       {"after_kb", rep.rss_after_kb},
                       {"sessions", rep.rss_sessions},
                       {"bytes_per_session", fixed(rep.rss_per_session_bytes(), 1)},
                       {"grown_mappings", grown}};
  }
  if (rep.cfg->tls != tls_mode::none)
    j["tls"] = {{"mode", tls_mode_name(rep.cfg->tls)},
                {"handshakes", r.tls_handshakes},
                {"resumed", r.tls_resumed},
                {"offered", r.tls_offered},
                {"failures", r.tls_failures},
                {"handshakes_per_s", fixed(rep.wall_s > 0 ? r.tls_handshakes / rep.wall_s : 0.0, 1)},
                {"handshake_ms", latency_json(r.tls_handshake)}};
  j["fatal"] = r.fatal;
  j["settings"] = rep.cfg->to_json();
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace postino::load
