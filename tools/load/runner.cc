// Spreads a postino-load run over worker processes and threads and gathers
// it back (see runner.h). Processes are forked before any thread exists, so
// each child starts single-threaded. A child reports on its pipe with lines:
// "progress <acked> <errors> <ready> <probes> <p99_ns>", "fatal <text>" and at
// the end "result <json>". The parent owns the read ends and reaps the
// children; each child owns its write end.
#include "runner.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "worker.h"

namespace postino::load {

std::atomic<int> stop_signal{0};

namespace {

void on_signal(int sig) {
  const int level = sig == SIGINT ? 1 : 2;
  int cur = stop_signal.load();
  while (cur < level && !stop_signal.compare_exchange_weak(cur, level)) {
  }
}

using emit_fn = std::function<void(const live_snapshot&, const std::string& fatal)>;

// One process's share: its threads and the monitor that sums their counters.
run_results run_process(const settings& s, int p, int nprocs, std::int64_t deadline_ns, int log_fd,
                        const emit_fn& emit) {
  const std::uint64_t total = static_cast<std::uint64_t>(s.total_sessions());
  const auto np = static_cast<std::uint64_t>(nprocs);
  const std::uint64_t proc_sessions = share_of(total, np, static_cast<std::uint64_t>(p));
  const std::uint64_t proc_base = share_base(total, np, static_cast<std::uint64_t>(p));
  const std::uint64_t nthreads = std::max<std::uint64_t>(1, std::min<std::uint64_t>(s.threads, proc_sessions));

  process_shared shared;
  shared.cfg = &s;
  shared.deadline_ns = deadline_ns;
  shared.log_fd = log_fd;
  if (s.mode != load_mode::idle && s.messages != 0) {
    shared.budget = share_of(s.messages, np, static_cast<std::uint64_t>(p));
    if (shared.budget == 0) return {};  // fewer messages than processes
  }

  std::vector<thread_progress> progress(nthreads);
  std::vector<run_results> results(nthreads);
  std::vector<std::thread> threads;

  // Signals belong to the monitor; the workers never see them.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  for (std::uint64_t t = 0; t < nthreads; ++t) {
    thread_share share;
    share.thread_id = static_cast<std::uint64_t>(p) * static_cast<std::uint64_t>(s.threads) + t;
    share.session_base = proc_base + share_base(proc_sessions, nthreads, t);
    share.sessions = static_cast<std::uint32_t>(share_of(proc_sessions, nthreads, t));
    share.rate = s.rate / static_cast<double>(np) / static_cast<double>(nthreads);
    threads.emplace_back([&shared, share, &progress, &results, t] {
      results[t] = run_worker(shared, share, progress[t]);
    });
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);

  bool fatal_sent = false;
  for (;;) {
    {
      std::unique_lock lock(shared.done_mu);
      shared.done_cv.wait_for(lock, std::chrono::milliseconds(250),
                              [&] { return shared.done_threads == threads.size(); });
    }
    const int sig = stop_signal.load();
    if (sig >= 1) shared.stop.store(true);
    if (sig >= 2) shared.abort.store(true);
    live_snapshot snap;
    bool all_done = true;
    for (auto& pr : progress) {
      snap.acked += pr.acked.load(std::memory_order_relaxed);
      snap.errors += pr.errors.load(std::memory_order_relaxed);
      snap.ready += pr.ready.load(std::memory_order_relaxed);
      snap.probes += pr.probes.load(std::memory_order_relaxed);
      snap.p99_ns = std::max(snap.p99_ns, pr.p99_ns.load(std::memory_order_relaxed));
      all_done = all_done && pr.done.load();
    }
    std::string fatal;
    if (!fatal_sent && shared.abort.load()) {
      std::lock_guard lock(shared.fatal_mu);
      if (!shared.fatal.empty()) {
        fatal = shared.fatal;
        fatal_sent = true;
      }
    }
    emit(snap, fatal);
    if (all_done) break;
  }
  for (auto& t : threads) t.join();
  run_results merged;
  for (const auto& r : results) merged.merge(r);
  std::lock_guard lock(shared.fatal_mu);
  if (merged.fatal.empty()) merged.fatal = shared.fatal;
  return merged;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

struct child {
  pid_t pid = -1;
  int fd = -1;
  std::string buffer;
  live_snapshot last;
  bool have_result = false;
  run_results result;
};

[[noreturn]] void child_main(const settings& s, int p, int nprocs, std::int64_t deadline_ns, int log_fd, int out_fd) {
  const run_results r = run_process(s, p, nprocs, deadline_ns, log_fd, [out_fd](const live_snapshot& snap, const std::string& fatal) {
    std::string line = "progress " + std::to_string(snap.acked) + " " + std::to_string(snap.errors) + " " +
                       std::to_string(snap.ready) + " " + std::to_string(snap.probes) + " " +
                       std::to_string(snap.p99_ns) + "\n";
    if (!fatal.empty()) {
      std::string flat = fatal;
      std::replace(flat.begin(), flat.end(), '\n', ' ');
      line += "fatal " + flat + "\n";
    }
    write_all(out_fd, line);
  });
  const bool ok = write_all(out_fd, "result " + r.to_json() + "\n");
  _exit(ok ? 0 : 3);
}

void take_line(child& c, std::string_view line, std::vector<child>& all) {
  if (line.starts_with("progress ")) {
    std::istringstream in{std::string(line.substr(9))};
    live_snapshot s;
    in >> s.acked >> s.errors >> s.ready >> s.probes >> s.p99_ns;
    if (in) c.last = s;
  } else if (line.starts_with("fatal ")) {
    // One process hit a desync: the others stop too.
    for (auto& other : all)
      if (&other != &c && other.pid > 0) kill(other.pid, SIGTERM);
  } else if (line.starts_with("result ")) {
    if (auto r = run_results::from_json(line.substr(7))) {
      c.result = std::move(*r);
      c.have_result = true;
    }
  }
}

}  // namespace

void install_signal_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

namespace {

// Forks the worker processes, each writing its progress and results to a
// pipe; "" or why it could not (the children already forked are stopped).
std::string fork_children(const settings& s, std::vector<child>& children, std::int64_t deadline_ns, int log_fd) {
  const int processes = static_cast<int>(children.size());
  const auto stop_forked = [&children] {
    for (auto& c : children)
      if (c.pid > 0) kill(c.pid, SIGTERM);
  };
  for (int p = 0; p < processes; ++p) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      stop_forked();
      return std::string("pipe2: ") + std::strerror(errno);
    }
    const pid_t pid = fork();
    if (pid == 0) {
      ::close(fds[0]);
      for (auto& c : children)
        if (c.fd >= 0) ::close(c.fd);
      child_main(s, p, processes, deadline_ns, log_fd, fds[1]);
    }
    ::close(fds[1]);
    if (pid < 0) {
      ::close(fds[0]);
      stop_forked();
      return std::string("fork: ") + std::strerror(errno);
    }
    children[static_cast<std::size_t>(p)].pid = pid;
    children[static_cast<std::size_t>(p)].fd = fds[0];
  }
  return "";
}

// Reads what one child wrote; closes its pipe at its end.
void read_child(child& c, std::vector<child>& children) {
  char buf[65536];
  const ssize_t got = ::read(c.fd, buf, sizeof buf);
  if (got <= 0) {
    if (got < 0 && errno == EINTR) return;
    ::close(c.fd);
    c.fd = -1;
    return;
  }
  c.buffer.append(buf, static_cast<std::size_t>(got));
  std::size_t start = 0;
  for (std::size_t nl; (nl = c.buffer.find('\n', start)) != std::string::npos; start = nl + 1)
    take_line(c, std::string_view(c.buffer).substr(start, nl - start), children);
  c.buffer.erase(0, start);
}

live_snapshot sum_of(const std::vector<child>& children) {
  live_snapshot sum;
  for (const auto& c : children) {
    sum.acked += c.last.acked;
    sum.errors += c.last.errors;
    sum.ready += c.last.ready;
    sum.probes += c.last.probes;
    sum.p99_ns = std::max(sum.p99_ns, c.last.p99_ns);
  }
  return sum;
}

// Until every child's pipe closes: their lines, the signals forwarded to
// them, and the summed progress for on_tick.
void follow_children(std::vector<child>& children, const std::function<void(const live_snapshot&)>& on_tick) {
  int forwarded = 0;
  for (;;) {
    std::vector<pollfd> pfds;
    std::vector<child*> owners;
    for (auto& c : children)
      if (c.fd >= 0) {
        pfds.push_back({c.fd, POLLIN, 0});
        owners.push_back(&c);
      }
    if (pfds.empty()) break;
    const int n = poll(pfds.data(), pfds.size(), 250);
    if (n < 0 && errno != EINTR) break;
    for (std::size_t i = 0; n > 0 && i < pfds.size(); ++i)
      if (pfds[i].revents != 0) read_child(*owners[i], children);
    const int sig = stop_signal.load();
    if (sig > forwarded) {
      forwarded = sig;
      for (auto& c : children)
        if (c.pid > 0) kill(c.pid, sig >= 2 ? SIGTERM : SIGINT);
    }
    on_tick(sum_of(children));
  }
}

run_results reap_children(std::vector<child>& children) {
  run_results merged;
  for (std::size_t p = 0; p < children.size(); ++p) {
    child& c = children[p];
    int status = 0;
    while (waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (c.have_result) {
      merged.merge(c.result);
    } else if (merged.fatal.empty()) {
      merged.fatal = "worker process " + std::to_string(p) + " ended without results (" +
                     (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                          : "exit " + std::to_string(WEXITSTATUS(status))) +
                     ")";
    }
  }
  return merged;
}

}  // namespace

run_results run_load(const settings& s, int processes, std::int64_t deadline_ns, int log_fd,
                     const std::function<void(const live_snapshot&)>& on_tick) {
  if (processes <= 1)
    return run_process(s, 0, 1, deadline_ns, log_fd,
                       [&on_tick](const live_snapshot& snap, const std::string&) { on_tick(snap); });
  std::vector<child> children(static_cast<std::size_t>(processes));
  if (std::string error = fork_children(s, children, deadline_ns, log_fd); !error.empty()) {
    run_results r;
    r.fatal = std::move(error);
    return r;
  }
  follow_children(children, on_tick);
  return reap_children(children);
}

}  // namespace postino::load
