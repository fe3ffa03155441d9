// What one postino-load thread measured, and how results of threads and
// worker processes add up: counters, reply codes, latency histograms and the
// nonces of messages left in flight. A worker process writes its merged
// results to its parent as one JSON line (to_json) and the parent reads them
// back (from_json) and merges them; both directions are pure and tested, and
// nlohmann-json writes and reads the text. A run_results owns all of its data.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "histogram.h"

namespace postino::load {

// Reply code -> count as a JSON object (JSON keys are strings).
inline nlohmann::ordered_json codes_object(const std::map<int, std::uint64_t>& m) {
  nlohmann::ordered_json o = nlohmann::ordered_json::object();
  for (const auto& [code, n] : m) o[std::to_string(code)] = n;
  return o;
}

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
  std::uint64_t tls_handshakes = 0;  // completed, full or resumed
  std::uint64_t tls_resumed = 0;     // completed by resuming a session ticket
  std::uint64_t tls_offered = 0;     // handshakes that offered a session to resume
  std::uint64_t tls_failures = 0;    // handshakes or records that failed
  std::int64_t first_start_ns = 0;   // CLOCK_MONOTONIC; 0 means never
  std::int64_t last_ack_ns = 0;
  std::int64_t all_ready_ns = 0;  // when ready_peak was last reached
  std::map<int, std::uint64_t> codes;
  std::map<int, std::uint64_t> error_codes;
  std::map<std::string, std::uint64_t> connect_failures;  // errno text -> count
  histogram latency;
  histogram probe;
  histogram tls_handshake;  // TLS start (ClientHello) to the handshake's end
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
    tls_handshakes += o.tls_handshakes;
    tls_resumed += o.tls_resumed;
    tls_offered += o.tls_offered;
    tls_failures += o.tls_failures;
    first_start_ns = earliest(first_start_ns, o.first_start_ns);
    last_ack_ns = std::max(last_ack_ns, o.last_ack_ns);
    all_ready_ns = std::max(all_ready_ns, o.all_ready_ns);
    for (const auto& [k, v] : o.codes) codes[k] += v;
    for (const auto& [k, v] : o.error_codes) error_codes[k] += v;
    for (const auto& [k, v] : o.connect_failures) connect_failures[k] += v;
    latency.merge(o.latency);
    probe.merge(o.probe);
    tls_handshake.merge(o.tls_handshake);
    inflight.insert(inflight.end(), o.inflight.begin(), o.inflight.end());
    if (fatal.empty()) fatal = o.fatal;
  }

  // One line of JSON (no newline in it), for the pipe to the parent.
  std::string to_json() const {
    nlohmann::ordered_json j;
    for (const auto& [key, field] : counters) j[key] = this->*field;
    for (const auto& [key, field] : clocks) j[key] = this->*field;
    j["codes"] = codes_object(codes);
    j["error_codes"] = codes_object(error_codes);
    j["connect_failures"] = nlohmann::ordered_json::object();
    for (const auto& [why, n] : connect_failures) j["connect_failures"][why] = n;
    j["latency"] = hist_json(latency);
    j["probe"] = hist_json(probe);
    j["tls_handshake"] = hist_json(tls_handshake);
    j["inflight"] = inflight;
    j["fatal"] = fatal;
    // A fatal message may quote a server's reply: bytes that are not UTF-8
    // become U+FFFD rather than stopping the report.
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }

  // The results of to_json, or nullopt when the text is not such an object.
  // Fields of the wrong type read as zero or empty; nothing throws.
  static std::optional<run_results> from_json(std::string_view text) {
    const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object()) return std::nullopt;
    run_results r;
    for (const auto& [key, field] : counters) r.*field = unsigned_at(doc, key);
    for (const auto& [key, field] : clocks) r.*field = signed_at(doc, key);
    read_codes(doc, "codes", r.codes);
    read_codes(doc, "error_codes", r.error_codes);
    if (const auto* o = member(doc, "connect_failures"); o && o->is_object())
      for (const auto& [why, n] : o->items()) r.connect_failures[why] += as_unsigned(n);
    if (!read_hist(member(doc, "latency"), r.latency) || !read_hist(member(doc, "probe"), r.probe) ||
        !read_hist(member(doc, "tls_handshake"), r.tls_handshake))
      return std::nullopt;
    if (const auto* a = member(doc, "inflight"); a && a->is_array())
      for (const auto& n : *a) r.inflight.push_back(n.is_string() ? n.get<std::string>() : std::string());
    if (const auto* f = member(doc, "fatal"); f && f->is_string()) r.fatal = f->get<std::string>();
    return r;
  }

 private:
  static std::int64_t earliest(std::int64_t a, std::int64_t b) {
    if (a == 0) return b;
    if (b == 0) return a;
    return std::min(a, b);
  }

  // The plain counters and the clocks, in the order the JSON line has them.
  struct counter_field {
    const char* key;
    std::uint64_t run_results::*field;
  };
  struct clock_field {
    const char* key;
    std::int64_t run_results::*field;
  };
  static constexpr counter_field counters[] = {
      {"attempted", &run_results::attempted},
      {"acked", &run_results::acked},
      {"failed", &run_results::failed},
      {"inflight_lost", &run_results::inflight_lost},
      {"replies", &run_results::replies},
      {"errors", &run_results::errors},
      {"connects", &run_results::connects},
      {"connect_errors", &run_results::connect_errors},
      {"disconnects", &run_results::disconnects},
      {"timeouts", &run_results::timeouts},
      {"probes", &run_results::probes},
      {"ready_peak", &run_results::ready_peak},
      {"pipelining_sessions", &run_results::pipelining_sessions},
      {"backlog_unsent", &run_results::backlog_unsent},
      {"tls_handshakes", &run_results::tls_handshakes},
      {"tls_resumed", &run_results::tls_resumed},
      {"tls_offered", &run_results::tls_offered},
      {"tls_failures", &run_results::tls_failures},
  };
  static constexpr clock_field clocks[] = {
      {"first_start_ns", &run_results::first_start_ns},
      {"last_ack_ns", &run_results::last_ack_ns},
      {"all_ready_ns", &run_results::all_ready_ns},
  };

  // Sparse: [[bucket index, count], ...] plus the exact extremes.
  static nlohmann::ordered_json hist_json(const histogram& h) {
    nlohmann::ordered_json buckets = nlohmann::ordered_json::array();
    h.for_each_bucket([&](std::size_t i, std::uint64_t n) { buckets.push_back({i, n}); });
    return {{"min", h.min()}, {"max", h.max()}, {"buckets", std::move(buckets)}};
  }

  static const nlohmann::json* member(const nlohmann::json& o, const char* key) {
    const auto it = o.find(key);
    return it == o.end() ? nullptr : &*it;
  }
  static std::uint64_t as_unsigned(const nlohmann::json& v, std::uint64_t fallback = 0) {
    return v.is_number_unsigned() ? v.get<std::uint64_t>() : fallback;
  }
  static std::uint64_t unsigned_at(const nlohmann::json& o, const char* key) {
    const auto* v = member(o, key);
    return v ? as_unsigned(*v) : 0;
  }
  static std::int64_t signed_at(const nlohmann::json& o, const char* key) {
    const auto* v = member(o, key);
    return v && v->is_number_integer() ? v->get<std::int64_t>() : 0;
  }

  static void read_codes(const nlohmann::json& doc, const char* key, std::map<int, std::uint64_t>& m) {
    const auto* o = member(doc, key);
    if (o == nullptr || !o->is_object()) return;
    for (const auto& [code, n] : o->items()) {
      int number = 0;
      std::from_chars(code.data(), code.data() + code.size(), number);
      m[number] += as_unsigned(n);
    }
  }

  static bool read_hist(const nlohmann::json* v, histogram& h) {
    if (v == nullptr) return true;
    if (!v->is_object()) return false;
    if (const auto* b = member(*v, "buckets"); b && b->is_array()) {
      for (const auto& pair : *b) {
        if (!pair.is_array() || pair.size() != 2) return false;
        const auto index = as_unsigned(pair[0], histogram::bucket_count);
        if (index >= histogram::bucket_count) return false;
        h.add_bucket(static_cast<std::size_t>(index), as_unsigned(pair[1]));
      }
    }
    h.set_extremes(unsigned_at(*v, "min"), unsigned_at(*v, "max"));
    return true;
  }
};

}  // namespace postino::load
