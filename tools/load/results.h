// What one postino-load thread measured, and how results of threads and
// worker processes add up: counters, reply codes, latency histograms and the
// nonces of messages left in flight. A worker process writes its merged
// results to its parent as one JSON line (to_json) and the parent reads them
// back (from_json) and merges them; both directions are pure and tested. A
// run_results owns all of its data.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "histogram.h"
#include "json.h"

namespace postino::load {

struct run_results {
  std::uint64_t attempted = 0;      // envelopes started (MAIL sent)
  std::uint64_t acked = 0;          // 250 to the end of the text
  std::uint64_t failed = 0;         // a message refused anywhere on its way
  std::uint64_t inflight_lost = 0;  // text ended, connection lost before the reply
  std::uint64_t replies = 0;
  std::uint64_t errors = 0;  // replies with the wrong code for their command
  std::uint64_t connects = 0;
  std::uint64_t connect_errors = 0;
  std::uint64_t disconnects = 0;  // closed by the server while we expected more
  std::uint64_t timeouts = 0;     // no reply within --reply-timeout
  std::uint64_t probes = 0;
  std::uint64_t ready_peak = 0;  // sessions past EHLO/AUTH at once, at most
  std::uint64_t pipelining_sessions = 0;
  std::uint64_t backlog_unsent = 0;  // open loop: due but never sent by the end
  std::int64_t first_start_ns = 0;   // CLOCK_MONOTONIC; 0 means never
  std::int64_t last_ack_ns = 0;
  std::int64_t all_ready_ns = 0;  // when ready_peak was last reached
  std::map<int, std::uint64_t> codes;
  std::map<int, std::uint64_t> error_codes;
  std::map<std::string, std::uint64_t> connect_failures;  // errno text -> count
  histogram latency;
  histogram probe;
  std::vector<std::string> inflight;  // nonces whose text ended without a reply
  std::string fatal;

  void merge(const run_results& o) {
    attempted += o.attempted;
    acked += o.acked;
    failed += o.failed;
    inflight_lost += o.inflight_lost;
    replies += o.replies;
    errors += o.errors;
    connects += o.connects;
    connect_errors += o.connect_errors;
    disconnects += o.disconnects;
    timeouts += o.timeouts;
    probes += o.probes;
    ready_peak += o.ready_peak;
    pipelining_sessions += o.pipelining_sessions;
    backlog_unsent += o.backlog_unsent;
    first_start_ns = earliest(first_start_ns, o.first_start_ns);
    last_ack_ns = std::max(last_ack_ns, o.last_ack_ns);
    all_ready_ns = std::max(all_ready_ns, o.all_ready_ns);
    for (const auto& [k, v] : o.codes) codes[k] += v;
    for (const auto& [k, v] : o.error_codes) error_codes[k] += v;
    for (const auto& [k, v] : o.connect_failures) connect_failures[k] += v;
    latency.merge(o.latency);
    probe.merge(o.probe);
    inflight.insert(inflight.end(), o.inflight.begin(), o.inflight.end());
    if (fatal.empty()) fatal = o.fatal;
  }

  std::string to_json() const {
    std::string out = "{";
    auto num = [&out](std::string_view key, auto v) {
      out.append("\"").append(key).append("\":").append(std::to_string(v)).append(",");
    };
    num("attempted", attempted);
    num("acked", acked);
    num("failed", failed);
    num("inflight_lost", inflight_lost);
    num("replies", replies);
    num("errors", errors);
    num("connects", connects);
    num("connect_errors", connect_errors);
    num("disconnects", disconnects);
    num("timeouts", timeouts);
    num("probes", probes);
    num("ready_peak", ready_peak);
    num("pipelining_sessions", pipelining_sessions);
    num("backlog_unsent", backlog_unsent);
    num("first_start_ns", first_start_ns);
    num("last_ack_ns", last_ack_ns);
    num("all_ready_ns", all_ready_ns);
    auto code_map = [&out](std::string_view key, const std::map<int, std::uint64_t>& m) {
      out.append("\"").append(key).append("\":{");
      bool first = true;
      for (const auto& [k, v] : m) {
        if (!first) out.push_back(',');
        first = false;
        out.append("\"").append(std::to_string(k)).append("\":").append(std::to_string(v));
      }
      out.append("},");
    };
    code_map("codes", codes);
    code_map("error_codes", error_codes);
    out.append("\"connect_failures\":{");
    bool first = true;
    for (const auto& [k, v] : connect_failures) {
      if (!first) out.push_back(',');
      first = false;
      json_escape_to(out, k);
      out.append(":").append(std::to_string(v));
    }
    out.append("},");
    hist_json(out, "latency", latency);
    hist_json(out, "probe", probe);
    out.append("\"inflight\":[");
    first = true;
    for (const auto& n : inflight) {
      if (!first) out.push_back(',');
      first = false;
      json_escape_to(out, n);
    }
    out.append("],\"fatal\":");
    json_escape_to(out, fatal);
    out.append("}");
    return out;
  }

  static std::optional<run_results> from_json(std::string_view text) {
    const auto doc = json_reader::parse(text);
    if (!doc || doc->type != json_value::kind::object) return std::nullopt;
    const json_value& v = *doc;
    run_results r;
    r.attempted = v.u64("attempted");
    r.acked = v.u64("acked");
    r.failed = v.u64("failed");
    r.inflight_lost = v.u64("inflight_lost");
    r.replies = v.u64("replies");
    r.errors = v.u64("errors");
    r.connects = v.u64("connects");
    r.connect_errors = v.u64("connect_errors");
    r.disconnects = v.u64("disconnects");
    r.timeouts = v.u64("timeouts");
    r.probes = v.u64("probes");
    r.ready_peak = v.u64("ready_peak");
    r.pipelining_sessions = v.u64("pipelining_sessions");
    r.backlog_unsent = v.u64("backlog_unsent");
    r.first_start_ns = v.i64("first_start_ns");
    r.last_ack_ns = v.i64("last_ack_ns");
    r.all_ready_ns = v.i64("all_ready_ns");
    auto read_codes = [&v](std::string_view key, std::map<int, std::uint64_t>& m) {
      if (const auto* o = v.find(key))
        for (const auto& [k, n] : o->members) m[std::atoi(k.c_str())] += n.as_u64();
    };
    read_codes("codes", r.codes);
    read_codes("error_codes", r.error_codes);
    if (const auto* o = v.find("connect_failures"))
      for (const auto& [k, n] : o->members) r.connect_failures[k] += n.as_u64();
    if (!read_hist(v.find("latency"), r.latency) || !read_hist(v.find("probe"), r.probe)) return std::nullopt;
    if (const auto* a = v.find("inflight"))
      for (const auto& n : a->items) r.inflight.push_back(n.text);
    r.fatal = v.str("fatal");
    return r;
  }

 private:
  static std::int64_t earliest(std::int64_t a, std::int64_t b) {
    if (a == 0) return b;
    if (b == 0) return a;
    return std::min(a, b);
  }

  // Sparse: [[bucket index, count], ...] plus the exact extremes.
  static void hist_json(std::string& out, std::string_view key, const histogram& h) {
    out.append("\"").append(key).append("\":{\"min\":").append(std::to_string(h.min()));
    out.append(",\"max\":").append(std::to_string(h.max())).append(",\"buckets\":[");
    bool first = true;
    h.for_each_bucket([&](std::size_t i, std::uint64_t n) {
      if (!first) out.push_back(',');
      first = false;
      out.append("[").append(std::to_string(i)).append(",").append(std::to_string(n)).append("]");
    });
    out.append("]},");
  }

  static bool read_hist(const json_value* v, histogram& h) {
    if (v == nullptr) return true;
    if (const auto* b = v->find("buckets")) {
      for (const auto& pair : b->items) {
        if (pair.items.size() != 2) return false;
        const auto index = pair.items[0].as_u64(histogram::bucket_count);
        if (index >= histogram::bucket_count) return false;
        h.add_bucket(static_cast<std::size_t>(index), pair.items[1].as_u64());
      }
    }
    h.set_extremes(v->u64("min"), v->u64("max"));
    return true;
  }
};

}  // namespace postino::load
