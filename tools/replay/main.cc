// postino-replay: a deterministic, in-process replay of recorded SMTP
// sessions (tests/replay/*.txt) through smtp::session and its scanners, for
// the CI guard (scripts/guard). Each recording is fed in the reads it was
// recorded with, cut to the gateway's receive-buffer size, and the session's
// requests are resolved inline the way the gateway's owner resolves them,
// minus the I/O: authentication succeeds with a fixed account, credit is
// plentiful, and a commit moves the message out, as the gateway does, and
// is accepted with a fixed queue id (no journal: the guard measures the SMTP
// hot path). Every reply is checked: a 4xx/5xx reply or a message count that
// differs from the recording's header fails the run (exit 2), so a broken
// session cannot pass for a fast one.
//
// Per recording: one unmeasured warm-up replay (one-time initialisation such
// as libphonenumber's metadata is not the hot path), then four measured
// replays counting heap allocations, bytes allocated and bytes through
// memcpy/memmove (counters.cc): `all` (the recorded reads, everything
// counted), and one per phase (recording.h: envelope commands, RCPT lines,
// DATA text), fed a command line or a text at a time and counting only
// that phase. The phases keep a cheap part's regression visible next to an
// expensive one (RCPT validation is most of a message's cost). Under
// `valgrind --tool=callgrind` each measured replay is bracketed by
// CALLGRIND_ZERO_STATS / CALLGRIND_DUMP_STATS_AT("replay:<name>:<phase>"),
// with collection toggled off outside the phase, so each count is a dump of
// its own. The recordings are owned here; the session reads them through
// views.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <utility>
#include <stdexcept>
#include <string>
#include <vector>

#include "postino/io.h"
#include "postino/mime.h"
#include "postino/smtp.h"
#include "counters.h"
#include "recording.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define POSTINO_REPLAY_CALLGRIND 1
#else
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(name)
#define CALLGRIND_TOGGLE_COLLECT
#define POSTINO_REPLAY_CALLGRIND 0
#endif

namespace postino::replay {
namespace {

// What the owner's side of one replay saw.
struct outcome {
  std::uint64_t accepted = 0;
  std::uint64_t feeds = 0;
  std::uint64_t body_bytes = 0;  // bodies handed to the (absent) journal
  std::string bad_reply;         // the first 4xx/5xx line, if any
  bool closed = false;
};

// The fixed world the sessions live in.
struct world {
  smtp::session_config config;
  account_settings account;
  smtp::commit_result accepted;
};

world make_world() {
  world w;
  w.config.hostname = "postino.replay";
  w.account.id = 7;
  w.account.username = "bulk";
  w.account.max_segments = 255;  // the 10 KiB body is 67 segments
  w.accepted.result = smtp::commit_result::outcome::accepted;
  w.accepted.queue_id = "0100000000000001";
  return w;
}

// Looks at each reply line's first digit, in place.
void check_replies(const std::string& out, outcome& o) {
  if (!o.bad_reply.empty()) return;
  for (std::size_t at = 0; at < out.size();) {
    std::size_t end = out.find('\n', at);
    if (end == std::string::npos) end = out.size();
    if (out[at] == '4' || out[at] == '5') {
      o.bad_reply = out.substr(at, end - at);
      return;
    }
    at = end + 1;
  }
}

// One request, answered at once and favourably.
void resolve_one(smtp::session& s, const world& w, outcome& o) {
  switch (s.pending()) {
    case smtp::request_kind::authenticate: {
      smtp::auth_result r{smtp::auth_result::outcome::ok, w.account, 1000000000};
      s.resolve(r);
      break;
    }
    case smtp::request_kind::credit_check: s.resolve(smtp::credit_check_result{1000000000}); break;
    case smtp::request_kind::commit: {
      smtp::transaction for_journal = std::move(s.pending_commit());
      o.body_bytes += for_journal.body.size();
      smtp::commit_result accepted = w.accepted;
      accepted.recipients = &for_journal.recipients;
      s.resolve(accepted);
      break;
    }
    case smtp::request_kind::rate_check: s.resolve(smtp::rate_check_result{true}); break;
    case smtp::request_kind::content: {
      const auto& req = s.pending_content();
      s.resolve(mime::read_content(*req.body, *req.account, req.limits));
      break;
    }
    case smtp::request_kind::relay_lookup: s.resolve(smtp::relay_result{&w.account}); break;
    case smtp::request_kind::none: break;
  }
}

// What the session asks, until it asks nothing (the content step's answer
// leaves the commit pending).
void resolve(smtp::session& s, const world& w, outcome& o) {
  resolve_one(s, w, o);
  if (s.pending() != smtp::request_kind::none) resolve_one(s, w, o);
  // A request kind this owner does not know would stall the session forever.
  if (s.pending() != smtp::request_kind::none) throw std::runtime_error("a request postino-replay cannot resolve");
}

// Turns counting (and, under callgrind, instruction collection) on only
// while the session works on input of the phase being measured; `all`
// measures everything.
struct meter {
  bool all = true;
  phase measured = phase::envelope;

  bool counts(phase p) const { return all || p == measured; }
  void enter(phase p) const {
    if (counts(p)) resume_counting();
    else CALLGRIND_TOGGLE_COLLECT;
  }
  void leave(phase p) const {
    if (counts(p)) pause_counting();
    else CALLGRIND_TOGGLE_COLLECT;
  }
};

// Feeds one read or piece as the gateway does: feed, resolve what the
// session asks, feed the rest, then send (here: check and clear) the output.
void feed_input(smtp::session& s, std::string_view input, const world& w, outcome& o) {
  for (;;) {
    input.remove_prefix(s.feed(input));
    ++o.feeds;
    if (s.pending() == smtp::request_kind::none || s.closing()) {
      if (input.empty() || s.closing()) break;
      // The replies reached max_pending_output: the gateway sends them first.
      check_replies(s.output(), o);
      s.output().clear();
      continue;
    }
    resolve(s, w, o);
    if (input.empty()) break;
  }
  check_replies(s.output(), o);
  s.output().clear();
}

// One connection's life, from greeting to close. The session's setup,
// greeting and teardown count as envelope work.
template <typename Input, typename PhaseOf>
[[gnu::noinline]] outcome replay_once(const std::vector<Input>& inputs, PhaseOf phase_of, const world& w,
                                      const meter& m) {
  outcome o;
  std::optional<smtp::session> s;
  m.enter(phase::envelope);
  s.emplace(w.config, smtp::connection_info{1, "127.0.0.1"});
  s->start();
  check_replies(s->output(), o);
  s->output().clear();
  m.leave(phase::envelope);
  for (const Input& in : inputs) {
    if (s->closing()) break;
    const auto [bytes, what] = phase_of(in);
    m.enter(what);
    feed_input(*s, bytes, w, o);
    m.leave(what);
  }
  o.accepted = s->messages_accepted();
  o.closed = s->closing();
  m.enter(phase::envelope);
  s.reset();
  m.leave(phase::envelope);
  return o;
}

outcome replay_reads(const recording& rec, const world& w, const meter& m) {
  return replay_once(rec.reads, [](std::string_view r) { return std::pair{r, phase::envelope}; }, w, m);
}

outcome replay_pieces(const recording& rec, const world& w, const meter& m) {
  return replay_once(rec.pieces, [](const piece& p) { return std::pair{p.bytes, p.what}; }, w, m);
}

// One measured replay: counters from zero, a callgrind dump of its own.
struct measured_pass {
  outcome out;
  counts c;
};

template <typename Replay>
measured_pass measure_pass(const recording& rec, const std::string& label, const meter& m, Replay replay,
                           const world& w) {
  measured_pass r;
  reset_counts();
  CALLGRIND_ZERO_STATS;
  r.out = replay(rec, w, m);
  const std::string dump = "replay:" + rec.name + ":" + label;
  CALLGRIND_DUMP_STATS_AT(dump.c_str());
  r.c = current_counts();
  return r;
}

struct measured {
  const recording* rec = nullptr;
  measured_pass all;  // the recorded reads, everything counted
  measured_pass by_phase[3];  // the phase pieces, one phase counted each
};

measured measure(const recording& rec, const world& w) {
  replay_reads(rec, w, meter{});  // warm-up: one-time initialisation stays out of the counts
  measured m;
  m.rec = &rec;
  m.all = measure_pass(rec, "all", meter{}, replay_reads, w);
  for (phase p : all_phases)
    m.by_phase[static_cast<int>(p)] = measure_pass(rec, phase_name(p), meter{false, p}, replay_pieces, w);
  return m;
}

double per(std::uint64_t v, std::uint64_t messages) {
  return messages == 0 ? 0.0 : static_cast<double>(v) / static_cast<double>(messages);
}

// Per message to three decimals, the precision the JSON has always carried.
double per_3(std::uint64_t v, std::uint64_t messages) { return std::round(per(v, messages) * 1e3) / 1e3; }

nlohmann::ordered_json counts_json(const measured_pass& p, std::uint64_t n) {
  return {{"feeds", p.out.feeds},
          {"allocations", p.c.allocations},
          {"bytes_allocated", p.c.bytes_allocated},
          {"bytes_copied", p.c.bytes_copied},
          {"allocations_per_message", per_3(p.c.allocations, n)},
          {"bytes_allocated_per_message", per_3(p.c.bytes_allocated, n)},
          {"bytes_copied_per_message", per_3(p.c.bytes_copied, n)}};
}

std::string to_json(const std::vector<measured>& runs, std::size_t read_limit) {
  nlohmann::ordered_json recordings = nlohmann::ordered_json::array();
  for (const auto& m : runs) {
    const std::uint64_t n = m.all.out.accepted;
    nlohmann::ordered_json phases = {{"all", counts_json(m.all, n)}};
    for (phase p : all_phases) phases[phase_name(p)] = counts_json(m.by_phase[static_cast<int>(p)], n);
    recordings.push_back({{"name", m.rec->name},
                          {"messages", n},
                          {"reads", m.rec->reads.size()},
                          {"pieces", m.rec->pieces.size()},
                          {"body_bytes_per_message", per_3(m.all.out.body_bytes, n)},
                          {"phases", std::move(phases)}});
  }
  const nlohmann::ordered_json doc = {{"tool", "postino-replay"},
                                      {"read_limit", read_limit},
                                      {"callgrind_markers", POSTINO_REPLAY_CALLGRIND != 0},
                                      {"recordings", std::move(recordings)}};
  return doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string to_table(const std::vector<measured>& runs) {
  std::string out = fmt::format("{:<16}{:<12}{:>6}{:>13}{:>15}{:>15}\n", "recording", "phase", "msgs", "allocs/msg",
                                "alloc B/msg", "copied B/msg");
  for (const auto& m : runs) {
    const std::uint64_t n = m.all.out.accepted;
    auto row = [&](const char* label, const measured_pass& p) {
      out += fmt::format("{:<16}{:<12}{:>6}{:>13.2f}{:>15.1f}{:>15.1f}\n", m.rec->name, label, n,
                         per(p.c.allocations, n), per(p.c.bytes_allocated, n), per(p.c.bytes_copied, n));
    };
    row("all", m.all);
    for (phase p : all_phases) row(phase_name(p), m.by_phase[static_cast<int>(p)]);
  }
  return out;
}

std::vector<std::string> expand(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    if (std::filesystem::is_directory(in)) {
      std::vector<std::string> here;
      for (const auto& e : std::filesystem::directory_iterator(in))
        if (e.path().extension() == ".txt") here.push_back(e.path().string());
      std::sort(here.begin(), here.end());  // a fixed order: the dumps are numbered
      files.insert(files.end(), here.begin(), here.end());
    } else {
      files.push_back(in);
    }
  }
  return files;
}

int run(int argc, char** argv) {
  CLI::App app{"postino-replay: replays recorded SMTP sessions through smtp::session, in process, and counts "
               "allocations and copied bytes per message (instructions: run it under valgrind --tool=callgrind)"};
  std::vector<std::string> inputs;
  std::string json_path;
  std::size_t read_limit = io::server_options{}.buffer_size;
  app.add_option("recordings", inputs, "recordings (tests/replay/*.txt) or directories of them")->required();
  app.add_option("--json", json_path, "also write the counts as JSON to this file ('-': stdout)");
  app.add_option("--read-limit", read_limit, "largest read fed at once (the gateway's receive buffer)")
      ->check(CLI::Range(1, 1 << 24));
  CLI11_PARSE(app, argc, argv);

  const world w = make_world();
  std::vector<recording> recs;
  for (const auto& f : expand(inputs)) recs.push_back(load_recording(f, read_limit));
  if (recs.empty()) throw std::runtime_error("no recordings (*.txt) found");

  std::vector<measured> runs;
  for (const auto& r : recs) runs.push_back(measure(r, w));

  int status = 0;
  auto check = [&status](const recording& rec, const char* pass, const outcome& o) {
    if (!o.bad_reply.empty())
      status = 2, std::fprintf(stderr, "postino-replay: %s (%s): the session refused something: %s\n",
                               rec.name.c_str(), pass, o.bad_reply.c_str());
    if (o.accepted != rec.messages)
      status = 2, std::fprintf(stderr, "postino-replay: %s (%s): %llu message(s) accepted, the recording has %llu\n",
                               rec.name.c_str(), pass, static_cast<unsigned long long>(o.accepted),
                               static_cast<unsigned long long>(rec.messages));
  };
  for (const auto& m : runs) {
    check(*m.rec, "all", m.all.out);
    for (phase p : all_phases) check(*m.rec, phase_name(p), m.by_phase[static_cast<int>(p)].out);
  }
  const std::string json = to_json(runs, read_limit);
  if (json_path == "-") {
    std::fputs(json.c_str(), stdout);
  } else {
    std::fputs(to_table(runs).c_str(), stdout);
    if (!json_path.empty()) {
      std::FILE* f = std::fopen(json_path.c_str(), "w");
      if (f == nullptr) throw std::runtime_error(json_path + ": cannot write");
      std::fputs(json.c_str(), f);
      std::fclose(f);
    }
  }
  return status;
}

}  // namespace
}  // namespace postino::replay

int main(int argc, char** argv) {
  try {
    return postino::replay::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "postino-replay: %s\n", e.what());
    return 1;
  }
}
