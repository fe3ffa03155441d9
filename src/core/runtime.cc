// The runtime: the shard threads (pinned), the mailbox matrix, and the
// stop/join sequence. Owns the shards (whose rings it closes only after
// every thread has joined, so a late MSG_RING from a peer never hits a
// closed ring). Touches no data buffers.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>

#include "postino/runtime.h"

namespace postino::core {
namespace {

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
  return cpus;
}

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort
}

}  // namespace

runtime::runtime(runtime_options options, service_factory factory)
    : options_(std::move(options)), factory_(std::move(factory)) {
  if (options_.shards == 0) options_.shards = std::thread::hardware_concurrency();
  if (options_.shards == 0) options_.shards = 1;
  const unsigned n = options_.shards;
  metrics_ = std::make_unique<shard_metrics[]>(n);
  queues_.reserve(std::size_t(n) * n);
  for (std::size_t i = 0; i < std::size_t(n) * n; ++i) queues_.push_back(std::make_unique<spsc_queue<message>>());
  shards_.reserve(n);
  for (unsigned i = 0; i < n; ++i) shards_.push_back(std::make_unique<shard>(*this, i));
}

runtime::~runtime() {
  if (!threads_.empty() && !joined_) {
    stop();
    join();
  }
  shards_.clear();  // closes the rings, now that no thread can message them
}

bool runtime::start(std::string& error) {
  std::mutex m;
  std::condition_variable cv;
  unsigned reported = 0;
  std::string first_error;
  const std::vector<int> cpus = allowed_cpus();
  for (unsigned i = 0; i < shards_.size(); ++i) {
    int cpu = options_.pin_threads && !cpus.empty() ? cpus[i % cpus.size()] : -1;
    threads_.emplace_back([this, i, cpu, &m, &cv, &reported, &first_error] {
      if (cpu >= 0) pin_to(cpu);
      std::string name = "postino-s" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.c_str());
      shards_[i]->run([&](bool ok, const std::string& err) {
        std::lock_guard<std::mutex> lock(m);
        if (!ok && first_error.empty()) first_error = "shard " + std::to_string(i) + ": " + err;
        ++reported;
        cv.notify_all();
      });
    });
  }
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, [&] { return reported == shards_.size(); });
  if (!first_error.empty()) {
    error = first_error;
    lock.unlock();
    stop();
    join();
    return false;
  }
  return true;
}

void runtime::stop() {
  if (stop_requested_.exchange(true)) return;
  for (auto& s : shards_) {
    shard* target = s.get();
    target->post_from_any_thread([target] { target->begin_shutdown(); });
  }
}

void runtime::join() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  joined_ = true;
}

void runtime::shard_drained() { drained_.fetch_add(1, std::memory_order_acq_rel); }

}  // namespace postino::core
