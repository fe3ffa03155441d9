// postino-load's entry point: reads the command line, refuses targets off
// loopback, raises the open-file limit, decides how many worker processes the
// sessions need, runs the load with a live progress line on a terminal, and
// prints the final table (and --json, --log). Owns the --log descriptor and
// the display state; everything else lives in the runner and the workers.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "report.h"
#include "runner.h"
#include "server_memory.h"
#include "settings.h"
#include "worker.h"

namespace {

using namespace postino::load;

constexpr std::uint64_t fds_kept_back = 64;  // per ring, for the process's own descriptors

double cpu_seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

int fail(const std::string& why) {
  std::fprintf(stderr, "postino-load: %s\n", why.c_str());
  return 1;
}

bool valid_prefix(const std::string& p, int number_length) {
  int digits = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '+' && i == 0) continue;
    if (p[i] < '0' || p[i] > '9') return false;
    ++digits;
  }
  return digits > 0 && digits < number_length;
}

struct cli_choices {
  std::string auth = "none", alphabet_name = "gsm", tls = "none", tls_resume = "on";
  std::vector<std::string> prefixes;
  bool no_progress = false;
};

void add_options(CLI::App& app, settings& s, cli_choices& c) {
  app.add_option("--server", s.server, "server address: 127.0.0.1, 127.0.0.1:2525, [::1]:2525 (loopback only)");
  app.add_option("--port", s.port, "server port when --server has none")->check(CLI::Range(1, 65535));
  app.add_option("--threads", s.threads, "threads (one io_uring ring each) per process")->check(CLI::Range(1, 256));
  app.add_option("--processes", s.processes, "worker processes; 0 = as many as the sessions need")->check(CLI::Range(0, 1024));
  app.add_option("--source-addrs", s.source_addrs, "spread connections over 127.0.0.1..127.0.0.N; 0 = one per 20,000 sessions")
      ->check(CLI::Range(0, 65534));
  app.add_option("--sessions", s.sessions, "concurrent sessions (closed loop), or the session pool for --rate")
      ->check(CLI::Range(1, 10'000'000));
  app.add_option("--rate", s.rate, "open loop: messages per second in all, latency measured from when each was due")
      ->check(CLI::PositiveNumber);
  app.add_flag("--churn", s.churn, "connect, EHLO, AUTH, one message, QUIT, again");
  app.add_option("--idle", s.idle, "hold N sessions after EHLO/AUTH and probe them with NOOP")->check(CLI::Range(1, 10'000'000));
  app.add_option("--duration", s.duration, "stop after this many seconds")->check(CLI::PositiveNumber);
  app.add_option("--messages", s.messages, "stop after this many messages");
  app.add_option("--ehlo", s.ehlo, "the name given in EHLO");
  app.add_option("--auth", c.auth, "none, login or plain")->check(CLI::IsMember({"none", "login", "plain"}));
  app.add_option("--user", s.user, "AUTH user");
  app.add_option("--password", s.password, "AUTH password");
  app.add_option("--from", s.msg.from, "MAIL FROM address");
  app.add_option("--to-prefix", c.prefixes, "recipient prefix, random digits appended (repeatable; default +39333)");
  app.add_option("--rcpts", s.msg.rcpts, "recipients per message")->check(CLI::Range(1, 100000));
  app.add_option("--number-length", s.msg.number_length, "digits in a whole recipient number, without '+'")
      ->check(CLI::Range(4, 20));
  app.add_option("--size", s.msg.size, "characters of text per message (the nonce included)")->check(CLI::Range(0, 1'000'000));
  app.add_option("--alphabet", c.alphabet_name, "gsm or ucs2 (Cyrillic, Greek, emoji)")->check(CLI::IsMember({"gsm", "ucs2"}));
  app.add_option("--log", s.log_path, "write 'ack <queue-id> <nonce>' per acknowledged message, then 'inflight <nonce>'");
  app.add_option("--json", s.json_path, "write the results as JSON to this file");
  app.add_option("--server-pid", s.server_pid, "read the server's VmRSS before and while holding sessions")->check(CLI::PositiveNumber);
  app.add_option("--probe-interval", s.probe_interval, "--idle: seconds between NOOPs on one session")->check(CLI::PositiveNumber);
  app.add_flag("--no-pipelining", s.no_pipelining, "never pipeline, even when the server offers it");
  app.add_flag("--bdat", s.bdat, "send each text as one BDAT <size> LAST chunk (CHUNKING, RFC 3030), not DATA");
  app.add_option("--drain-timeout", s.drain_timeout, "seconds to wait for replies after the end")->check(CLI::NonNegativeNumber);
  app.add_option("--reply-timeout", s.reply_timeout, "seconds without a reply before a session is dropped")->check(CLI::PositiveNumber);
  app.add_option("--max-connecting", s.max_connecting, "handshakes in progress per thread")->check(CLI::Range(1, 1'000'000));
  app.add_option("--seed", s.seed, "seed for recipients and texts");
  app.add_flag("--no-progress", c.no_progress, "no live progress line, even on a terminal");
  app.add_option("--tls", c.tls, "none, implicit (TLS from the first byte) or starttls")
      ->check(CLI::IsMember({"none", "implicit", "starttls"}));
  app.add_option("--tls-resume", c.tls_resume, "on: each connection offers its thread's last session ticket")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--tls-ca", s.tls_ca, "verify the server's certificate against this CA (PEM) file");
  app.add_flag("--tls-insecure", s.tls_insecure, "no certificate verification (load runs only)");
}

// The choices that need more than a range check; "" or what is wrong.
std::string apply_choices(settings& s, const cli_choices& c) {
  s.progress = !c.no_progress;
  s.tls = c.tls == "implicit" ? tls_mode::implicit : c.tls == "starttls" ? tls_mode::starttls : tls_mode::none;
  s.tls_resume = c.tls_resume == "on";
  if (s.tls != tls_mode::none && s.tls_ca.empty() == !s.tls_insecure)
    return "--tls needs exactly one of --tls-ca FILE and --tls-insecure";
  s.auth = c.auth == "login" ? auth_mode::login : c.auth == "plain" ? auth_mode::plain : auth_mode::none;
  s.msg.text_alphabet = c.alphabet_name == "ucs2" ? alphabet::ucs2 : alphabet::gsm;
  std::vector<std::string> prefixes = c.prefixes;
  if (prefixes.empty()) prefixes.push_back("+39333");
  for (const auto& p : prefixes)
    if (!valid_prefix(p, s.msg.number_length))
      return fmt::format("--to-prefix {}: digits with an optional leading '+', fewer than --number-length {}", p,
                         s.msg.number_length);
  s.msg.to_prefixes = prefixes;
  if (s.auth != auth_mode::none && (s.user.empty() || s.password.empty()))
    return "--auth login and plain need --user and --password";

  const auto parsed = parse_target(s.server, s.port);
  if (const auto* err = std::get_if<std::string>(&parsed)) return *err;
  s.addr = std::get<target>(parsed);

  const int modes = (s.idle > 0) + s.churn + (s.rate > 0);
  if (modes > 1) return "--idle, --churn and --rate are different modes; choose one";
  s.mode = s.idle > 0 ? load_mode::idle : s.churn ? load_mode::churn : s.rate > 0 ? load_mode::open : load_mode::closed;
  if (s.duration == 0 && (s.messages == 0 || s.mode == load_mode::idle)) {
    s.duration = 10;
    std::fprintf(stderr, "postino-load: no --duration%s given, running for 10 s\n",
                 s.mode == load_mode::idle ? "" : " or --messages");
  }
  return "";
}

// Sockets live in the rings' registered-file tables, each capped by the
// open-file limit, so one process holds threads x (limit - reserve); also
// the source addresses and the --server-pid check. "" or what is wrong.
std::string size_processes(settings& s) {
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) return std::string("setrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
  const std::uint64_t limit = nofile.rlim_cur == RLIM_INFINITY ? 1'000'000 : nofile.rlim_cur;
  const std::uint64_t per_ring = limit > 2 * fds_kept_back ? limit - fds_kept_back : limit / 2;
  const auto total = static_cast<std::uint64_t>(s.total_sessions());
  const std::uint64_t per_process = per_ring * static_cast<std::uint64_t>(s.threads);
  if (s.processes == 0) s.processes = static_cast<int>(std::max<std::uint64_t>(1, (total + per_process - 1) / per_process));
  const std::uint64_t per_thread =
      (total + static_cast<std::uint64_t>(s.processes) * s.threads - 1) / (static_cast<std::uint64_t>(s.processes) * s.threads);
  if (per_thread > per_ring)
    return fmt::format("{} sessions over {} process(es) x {} thread(s) is {} per ring, above the {} the open-file limit allows",
                       total, s.processes, s.threads, per_thread, per_ring);
  if (s.source_addrs == 0) s.source_addrs = static_cast<int>(std::max<std::uint64_t>(1, (total + 19'999) / 20'000));
  if (s.addr.family == AF_INET6 && s.source_addrs > 1) {
    std::fprintf(stderr, "postino-load: ::1 is a single source address; --source-addrs ignored\n");
    s.source_addrs = 1;
  }
  if (s.server_pid != 0 && read_vm_rss_kb(s.server_pid) < 0)
    return fmt::format("--server-pid {}: cannot read /proc/{}/status", s.server_pid, s.server_pid);
  return "";
}

// The live progress line on a terminal, and the server's RSS once a second
// while it holds the most sessions so far.
struct progress {
  const settings& s;
  run_report& rep;
  bool show = false;
  std::int64_t start = 0, last_show = 0, last_rss = 0;
  std::uint64_t last_acked = 0, last_probes = 0;
  bool shown = false;

  void operator()(const live_snapshot& snap) {
    const std::int64_t now = monotonic_ns();
    if (rep.have_rss && now - last_rss >= 1'000'000'000 && snap.ready >= rep.rss_sessions && snap.ready > 0) {
      const auto kb = read_vm_rss_kb(s.server_pid);
      if (kb >= 0) {
        rep.rss_after_kb = kb;
        rep.rss_sessions = snap.ready;
        rep.maps_after = read_memory_map(s.server_pid);
      }
      last_rss = now;
    }
    if (!show || now - last_show < 1'000'000'000) return;
    const double dt = static_cast<double>(now - last_show) / 1e9;
    std::string line;
    if (s.mode == load_mode::idle)
      line = fmt::format("{:7.1f}s  sessions {}  probes/s {:.0f}  errors {}  p99 {:.3f} ms", (now - start) / 1e9,
                         snap.ready, static_cast<double>(snap.probes - last_probes) / dt, snap.errors, snap.p99_ns / 1e6);
    else
      line = fmt::format("{:7.1f}s  msgs/s {:.0f}  acked {}  errors {}  p99 {:.3f} ms  sessions {}", (now - start) / 1e9,
                         static_cast<double>(snap.acked - last_acked) / dt, snap.acked, snap.errors, snap.p99_ns / 1e6,
                         snap.ready);
    std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
    std::fflush(stderr);
    shown = true;
    last_show = now;
    last_acked = snap.acked;
    last_probes = snap.probes;
  }
};

// The --log file's last lines (messages still in flight) and its close.
void finish_log(int log_fd, const settings& s, const run_report& rep) {
  if (log_fd < 0) return;
  std::string tail;
  for (const auto& n : rep.r.inflight) tail += "inflight " + n + "\n";
  if (!tail.empty() && ::write(log_fd, tail.data(), tail.size()) != static_cast<ssize_t>(tail.size()))
    std::fprintf(stderr, "postino-load: writing --log %s: %s\n", s.log_path.c_str(), std::strerror(errno));
  ::close(log_fd);
}

// The table on stdout, --json, and the exit code.
int write_results(const settings& s, const run_report& rep) {
  std::fputs(format_table(rep).c_str(), stdout);
  std::fflush(stdout);
  if (!s.json_path.empty()) {
    std::ofstream out(s.json_path, std::ios::trunc);
    out << format_json(rep);
    if (!out) std::fprintf(stderr, "postino-load: cannot write --json %s\n", s.json_path.c_str());
  }
  if (!rep.r.fatal.empty()) {
    std::fprintf(stderr, "postino-load: stopped: %s\n", rep.r.fatal.c_str());
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  cli_choices c;
  CLI::App app{"postino-load: an io_uring SMTP load generator for loopback servers (postino, smtp-sink, Haraka)"};
  add_options(app, s, c);
  CLI11_PARSE(app, argc, argv);
  if (std::string error = apply_choices(s, c); !error.empty()) return fail(error);
  if (std::string error = size_processes(s); !error.empty()) return fail(error);

  int log_fd = -1;
  if (!s.log_path.empty()) {
    log_fd = ::open(s.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return fail(fmt::format("--log {}: {}", s.log_path, std::strerror(errno)));
  }

  install_signal_handlers();
  run_report rep;
  rep.cfg = &s;
  rep.processes = s.processes;
  if (s.server_pid != 0) {
    rep.have_rss = true;
    rep.rss_before_kb = read_vm_rss_kb(s.server_pid);
    rep.rss_after_kb = rep.rss_before_kb;
    rep.maps_before = read_memory_map(s.server_pid);
  }

  progress tick{s, rep};
  tick.show = s.progress && isatty(STDERR_FILENO);
  tick.start = tick.last_show = tick.last_rss = monotonic_ns();
  const std::int64_t deadline = s.duration > 0 ? tick.start + static_cast<std::int64_t>(s.duration * 1e9) : 0;
  rep.r = run_load(s, s.processes, deadline, log_fd, [&tick](const live_snapshot& snap) { tick(snap); });
  rep.wall_s = static_cast<double>(monotonic_ns() - tick.start) / 1e9;
  if (tick.shown) std::fprintf(stderr, "\n");

  rusage self{}, children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  rep.cpu_user_s = cpu_seconds(self.ru_utime) + cpu_seconds(children.ru_utime);
  rep.cpu_sys_s = cpu_seconds(self.ru_stime) + cpu_seconds(children.ru_stime);
  finish_log(log_fd, s, rep);
  return write_results(s, rep);
}
