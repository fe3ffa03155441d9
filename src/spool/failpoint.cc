// Journal failpoints for test builds: counters shared by every journal in the
// process, armed from the environment (POSTINO_FAIL_FSYNC, POSTINO_FAIL_WRITE,
// read once) or from tests through spool::test_hooks, plus the durable-offset
// log (POSTINO_FSYNC_LOG). Shards call these from their own threads, so the
// counters sit behind a mutex; an unarmed failpoint costs one relaxed load.
// The log line is a local string written with one O_APPEND write.
#ifdef POSTINO_TEST_HOOKS

#include "failpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "postino/spool.h"

namespace postino::spool::failpoint {
namespace {

class counter {
 public:
  explicit counter(const char* env) {
    const char* value = std::getenv(env);
    if (value == nullptr || *value == '\0') return;
    char* end = nullptr;
    unsigned long count = std::strtoul(value, &end, 10);
    unsigned long after = 0;
    if (end != nullptr && *end == '@') after = std::strtoul(end + 1, nullptr, 10);
    arm(static_cast<unsigned>(count), static_cast<unsigned>(after));
  }

  void arm(unsigned count, unsigned after) {
    std::lock_guard lock(mutex_);
    fail_ = count;
    skip_ = after;
    armed_.store(count > 0, std::memory_order_relaxed);
  }

  bool take() {
    if (!armed_.load(std::memory_order_relaxed)) return false;
    std::lock_guard lock(mutex_);
    if (skip_ > 0) {
      --skip_;
      return false;
    }
    if (fail_ == 0) return false;
    if (--fail_ == 0) armed_.store(false, std::memory_order_relaxed);
    return true;
  }

 private:
  std::mutex mutex_;
  unsigned fail_ = 0;
  unsigned skip_ = 0;
  std::atomic<bool> armed_{false};
};

counter& sync_counter() {
  static counter c("POSTINO_FAIL_FSYNC");
  return c;
}

counter& write_counter() {
  static counter c("POSTINO_FAIL_WRITE");
  return c;
}

counter& seal_counter() {
  static counter c("POSTINO_FAIL_SEAL");
  return c;
}

int log_fd() {
  static const int fd = [] {
    const char* path = std::getenv("POSTINO_FSYNC_LOG");
    if (path == nullptr || *path == '\0') return -1;
    return ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }();
  return fd;
}

}  // namespace

bool take_write_failure() { return write_counter().take(); }
bool take_sync_failure() { return sync_counter().take(); }
bool take_seal_failure() { return seal_counter().take(); }

void log_durable(const std::string& segment_path, std::uint64_t offset) {
  int fd = log_fd();
  if (fd < 0) return;
  std::string line = segment_path + " " + std::to_string(offset) + "\n";
  // Best effort: a test that reads the log notices a missing line.
  [[maybe_unused]] ssize_t n = ::write(fd, line.data(), line.size());
}

}  // namespace postino::spool::failpoint

namespace postino::spool::test_hooks {

void fail_next_syncs(unsigned count, unsigned after) {
  failpoint::sync_counter().arm(count, after);
}

void fail_next_writes(unsigned count, unsigned after) {
  failpoint::write_counter().arm(count, after);
}

void fail_next_seals(unsigned count) { failpoint::seal_counter().arm(count, 0); }

}  // namespace postino::spool::test_hooks

#endif  // POSTINO_TEST_HOOKS
