// A journal that cannot make a group durable never acknowledges it
// (PROTOCOL.md 4, DESIGN.md "Durability and credit"). With the test-build
// failpoints (POSTINO_FAIL_FSYNC / POSTINO_FAIL_WRITE, see postino/spool.h)
// one group's fdatasync or write fails: its messages get 451 4.3.0 and never
// 250, the failure is logged with the segment's path, the journal seals the
// segment and goes on accepting, and after a restart those messages are not
// in the journal and not charged. A real full disk (a small tmpfs mounted on
// the journal directory, when this process may mount) refuses with 451 the
// same way, logs the path, and charges nothing it refused.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

constexpr std::int64_t kCredit = 1'000'000;

// One pipelined transaction; returns the reply to the terminator ("" when
// something before it failed).
std::string send_message(raw_client& c, const std::string& nonce, int recipients) {
  std::string batch = "MAIL FROM:<ACME>\r\n";
  for (int i = 0; i < recipients; ++i) batch += "RCPT TO:<+39333" + std::to_string(1000000 + i) + ">\r\n";
  c.send(batch + "DATA\r\n");
  if (c.reply().rfind("250 ", 0) != 0) return "";
  for (int i = 0; i < recipients; ++i)
    if (c.reply().rfind("250 ", 0) != 0) return "";
  if (c.reply().rfind("354 ", 0) != 0) return "";
  c.send("nonce " + nonce + " text\r\n.\r\n");
  return c.reply(std::chrono::milliseconds(30000));
}

struct tally {
  std::mutex mutex;
  std::map<std::string, std::int64_t> accepted;  // nonce -> price
  std::set<std::string> refused;                 // 451 4.3.0
  std::string failure;
  void record(const std::string& nonce, std::int64_t price, const std::string& end) {
    std::lock_guard lock(mutex);
    if (end.rfind("250 2.0.0 Message accepted", 0) == 0)
      accepted[nonce] = price;
    else if (end == "451 4.3.0 Local error in processing, try again\r\n")
      refused.insert(nonce);
    else if (failure.empty())
      failure = nonce + ": " + end;
  }
};

std::map<std::string, std::int64_t> journaled_nonces(const std::string& data_dir, bool& sealed) {
  std::map<std::string, std::int64_t> out;
  static const std::regex nonce("nonce (\\S+) text");
  sealed = false;
  for (const auto& r : read_journals(data_dir)) {
    if (r.type == spool::record_type::seal) sealed = true;
    if (r.type != spool::record_type::message) continue;
    std::smatch m;
    if (std::regex_search(r.tx.body, m, nonce)) out[m[1]] += r.tx.price;
  }
  return out;
}

// Sessions on both shards send messages while the failpoint named by `env`
// fails one group after `after` good ones.
void failing_group(const char* env, const std::string& errno_text) {
  gateway gw({{"f", "pw-f", kCredit, {}}}, "", 2);
  setenv(env, "1@5", 1);
  const bool started = gw.start();
  unsetenv(env);
  ASSERT_TRUE(started) << gw.last_log();

  tally t;
  std::vector<std::thread> threads;
  for (int s = 0; s < 4; ++s)
    threads.emplace_back([&, s] {
      raw_client c(gw.smtp_port());
      if (login_ok(c, "f", "pw-f").empty()) {
        std::lock_guard lock(t.mutex);
        t.failure = "login failed";
        return;
      }
      for (int n = 0; n < 8; ++n) {
        const int recipients = 1 + (s + n) % 3;
        const std::string nonce = "s" + std::to_string(s) + "-" + std::to_string(n);
        t.record(nonce, recipients, send_message(c, nonce, recipients));
      }
    });
  for (auto& th : threads) th.join();
  ASSERT_TRUE(t.failure.empty()) << t.failure << "\n" << gw.last_log();
  EXPECT_FALSE(t.refused.empty()) << "no group failed";
  EXPECT_EQ(t.accepted.size() + t.refused.size(), 32u);
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  const std::string log = gw.last_log();
  EXPECT_TRUE(std::regex_search(log, std::regex("journal \\S+/journal-\\d/segment-[0-9a-f]{16}\\.log: offset \\d+: " +
                                                errno_text)))
      << log;

  bool sealed = false;
  auto journaled = journaled_nonces(gw.data_dir(), sealed);
  EXPECT_TRUE(sealed) << "the failed segment was not sealed";
  for (const auto& nonce : t.refused) EXPECT_EQ(journaled.count(nonce), 0u) << nonce << " got 451 but is journaled";
  std::int64_t charged = 0;
  for (const auto& [nonce, price] : t.accepted) {
    EXPECT_EQ(journaled.count(nonce), 1u) << nonce << " got 250 but is not journaled";
    charged += price;
  }
  EXPECT_EQ(journaled.size(), t.accepted.size());

  // Restarted, the balance charges exactly the acknowledged messages, and
  // the gateway accepts again.
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client c(gw.smtp_port());
  std::string line = login_ok(c, "f", "pw-f");
  EXPECT_EQ(credit_in(line), kCredit - charged) << line;
  EXPECT_EQ(send_message(c, "after", 1).rfind("250 2.0.0 Message accepted", 0), 0u);
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
}

// Failpoints and the durable-offset log exist only in a POSTINO_TEST_HOOKS
// build (the CMake option; release builds have none).
#ifdef POSTINO_TEST_HOOKS
constexpr bool test_hooks_built = true;
#else
constexpr bool test_hooks_built = false;
#endif

TEST(fsync_failure, failed_fdatasync_answers_451_and_charges_nothing) {
  if (!test_hooks_built) GTEST_SKIP() << "built without POSTINO_TEST_HOOKS";
  failing_group("POSTINO_FAIL_FSYNC", "fdatasync: Input/output error");
}

TEST(fsync_failure, failed_write_answers_451_and_charges_nothing) {
  if (!test_hooks_built) GTEST_SKIP() << "built without POSTINO_TEST_HOOKS";
  failing_group("POSTINO_FAIL_WRITE", "write: Input/output error");
}

// A tmpfs on the journal directory, unmounted (lazily) when it goes.
class small_disk {
 public:
  small_disk(const std::string& path, const std::string& size) : path_(path) {
    mkdir(path.c_str(), 0755);
    mounted_ = mount("tmpfs", path.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
  }
  ~small_disk() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

TEST(fsync_failure, full_disk_answers_451_logs_the_path_and_charges_nothing) {
  // 1 MiB segments on a 2.5 MiB disk: the second rotation cannot
  // preallocate its segment. Messages of 1000 recipients fill a segment fast.
  gateway gw({{"d", "pw-d", kCredit, {}}}, "[journal]\nsegment_bytes = 1048576\n", 1);
  small_disk disk(gw.data_dir() + "/journal-0", "2560k");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (needs CAP_SYS_ADMIN)";
  ASSERT_TRUE(gw.start()) << gw.last_log();

  tally t;
  raw_client c(gw.smtp_port());
  ASSERT_FALSE(login_ok(c, "d", "pw-d").empty()) << gw.last_log();
  for (int n = 0; n < 400 && t.refused.size() < 3; ++n) {
    const std::string nonce = "full-" + std::to_string(n);
    t.record(nonce, 1000, send_message(c, nonce, 1000));
    ASSERT_TRUE(t.failure.empty()) << t.failure << "\n" << gw.last_log();
  }
  ASSERT_EQ(t.refused.size(), 3u) << "the disk never filled";
  EXPECT_GT(t.accepted.size(), 100u);
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  const std::string log = gw.last_log();
  EXPECT_TRUE(std::regex_search(
      log, std::regex("journal \\S+/journal-0: cannot start a new segment: \\S+/journal-0/segment-[0-9a-f]{16}\\.log: "
                      "fallocate: No space left on device")))
      << log;

  bool sealed = false;
  auto journaled = journaled_nonces(gw.data_dir(), sealed);
  for (const auto& nonce : t.refused) EXPECT_EQ(journaled.count(nonce), 0u) << nonce;
  std::int64_t charged = 0;
  for (const auto& [nonce, price] : t.accepted) {
    EXPECT_EQ(journaled.count(nonce), 1u) << nonce;
    charged += price;
  }
  EXPECT_EQ(journaled.size(), t.accepted.size());
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client again(gw.smtp_port());
  std::string line = login_ok(again, "d", "pw-d");
  EXPECT_EQ(credit_in(line), kCredit - charged) << line;
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
}

}  // namespace
}  // namespace postino::test
