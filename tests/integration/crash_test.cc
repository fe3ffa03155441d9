// Crash and power-cut rounds (DESIGN.md "Durability and credit"). Sessions on
// every shard send messages whose text carries a unique nonce and log each
// nonce as in flight (terminator sent, no reply yet) and then as acknowledged
// (250). At a random moment the gateway gets SIGKILL. The journals are then
// read back (recovery runs as the gateway's own start-up would), and:
//   acked ⊆ journal ⊆ acked ∪ in-flight, by nonce, each nonce at most once;
//   after a restart every account's 235 CREDIT == initial credit − the prices
//   of its journaled messages, to the unit.
// Power-cut mode: the gateway logs each journal's last fdatasynced offset
// (POSTINO_FSYNC_LOG); after the kill the harness drops, zeroes or garbles
// every newest segment after that offset, as a power cut may, before the
// journals are read. That is what catches a 250 sent before its fsync.
// Rounds are few and short; the whole test bounds its own time.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

namespace fs = std::filesystem;

constexpr unsigned kShards = 2;
constexpr int kAccounts = 3;
constexpr int kSessionsPerAccount = 2;
constexpr std::int64_t kCredit = 1'000'000;
constexpr int kRounds = 8;
constexpr auto kDeadline = std::chrono::seconds(150);

struct client_log {
  std::mutex mutex;
  std::map<std::string, std::int64_t> acked;      // nonce -> price
  std::map<std::string, std::int64_t> in_flight;  // terminator sent, no reply
  std::string failure;
};

// Sends messages until the connection dies (the kill) or `stop` is set.
void sender(std::uint16_t port, const std::string& user, const std::string& pass, const std::string& tag,
            unsigned seed, std::atomic<bool>& stop, client_log& log) {
  raw_client c(port);
  if (login_ok(c, user, pass).empty()) return;  // the gateway may already be dying
  std::mt19937 rng(seed);
  for (int n = 0; !stop.load(); ++n) {
    const int recipients = 1 + static_cast<int>(rng() % 3);
    std::string batch = "MAIL FROM:<ACME>\r\n";
    for (int i = 0; i < recipients; ++i) batch += "RCPT TO:<+39333" + std::to_string(1000000 + i) + ">\r\n";
    c.send(batch + "DATA\r\n");
    bool ok = c.reply().rfind("250 ", 0) == 0;
    for (int i = 0; i < recipients; ++i) ok = c.reply().rfind("250 ", 0) == 0 && ok;
    std::string data = c.reply();
    if (!ok || data.rfind("354 ", 0) != 0) return;  // killed mid-dialogue
    const std::string nonce = tag + "-" + std::to_string(n);
    {
      std::lock_guard lock(log.mutex);
      log.in_flight[nonce] = recipients;
    }
    c.send("nonce " + nonce + " text\r\n.\r\n");
    std::string end = c.reply();
    std::lock_guard lock(log.mutex);
    if (end.empty()) return;  // killed: stays in flight
    log.in_flight.erase(nonce);
    if (end.rfind("250 2.0.0 Message accepted", 0) == 0) {
      log.acked[nonce] = recipients;
    } else if (end.rfind("451 4.3.0", 0) != 0 && log.failure.empty()) {
      log.failure = "end of DATA: " + end;
      return;
    }
  }
}

// Power cut: every journal's newest segment loses, keeps or garbles what
// came after its last durable offset.
void cut_power(const std::string& data_dir, const std::string& fsync_log, std::mt19937& rng) {
  std::map<std::string, std::uint64_t> durable;
  std::ifstream in(fsync_log);
  std::string path;
  std::uint64_t offset;
  while (in >> path >> offset) durable[path] = offset;
  ASSERT_FALSE(durable.empty()) << "no fsync log at " << fsync_log;
  for (const auto& dir : fs::directory_iterator(data_dir)) {
    if (!dir.is_directory() || dir.path().filename().string().rfind("journal-", 0) != 0) continue;
    std::string newest;
    for (const auto& f : fs::directory_iterator(dir.path()))
      if (f.path().filename().string().rfind("segment-", 0) == 0 && f.path().string() > newest)
        newest = f.path().string();
    ASSERT_FALSE(newest.empty());
    auto it = durable.find(newest);
    ASSERT_NE(it, durable.end()) << newest << " has no durable offset in the log";
    const std::uint64_t keep = it->second;
    int fd = ::open(newest.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    const auto size = static_cast<std::uint64_t>(lseek(fd, 0, SEEK_END));
    switch (rng() % 4) {
      case 0:  // the file ends at the durable offset
        ASSERT_EQ(ftruncate(fd, static_cast<off_t>(keep)), 0);
        break;
      case 1: {  // nothing after the durable offset reached the disk
        std::vector<char> zeros(size - keep, 0);
        ASSERT_EQ(pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(keep)),
                  static_cast<ssize_t>(zeros.size()));
        break;
      }
      case 2: {  // part of the unsynced write landed, then garbage
        std::vector<char> tail(std::min<std::uint64_t>(size - keep, 1 << 20));
        ASSERT_GE(pread(fd, tail.data(), tail.size(), static_cast<off_t>(keep)), 0);
        std::size_t landed = tail.size();  // the written bytes, then preallocated zeros
        while (landed > 0 && tail[landed - 1] == 0) --landed;
        std::size_t from = rng() % (landed + 1);
        std::size_t len = 1 + rng() % 512;
        std::vector<char> junk(len);
        for (auto& b : junk) b = static_cast<char>(rng());
        ASSERT_EQ(pwrite(fd, junk.data(), junk.size(), static_cast<off_t>(keep + from)),
                  static_cast<ssize_t>(junk.size()));
        break;
      }
      default:  // everything written reached the disk
        break;
    }
    ::close(fd);
  }
}

// Nonce -> (account, price) of every message in the journals.
std::map<std::string, std::pair<account_id, std::int64_t>> journaled(const std::string& data_dir,
                                                                      std::string& duplicate) {
  std::map<std::string, std::pair<account_id, std::int64_t>> out;
  static const std::regex nonce("nonce (\\S+) text");
  for (const auto& r : messages_in(read_journals(data_dir))) {
    std::smatch m;
    if (!std::regex_search(r.tx.body, m, nonce)) continue;
    if (!out.emplace(m[1], std::make_pair(r.tx.account, r.tx.price)).second) duplicate = m[1];
  }
  return out;
}

// Failpoints and the durable-offset log exist only in a POSTINO_TEST_HOOKS
// build (the CMake option; release builds have none).
#ifdef POSTINO_TEST_HOOKS
constexpr bool test_hooks_built = true;
#else
constexpr bool test_hooks_built = false;
#endif

void run_rounds(bool power_cut) {
  if (power_cut && !test_hooks_built) GTEST_SKIP() << "built without POSTINO_TEST_HOOKS";
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  std::vector<account_spec> accounts;
  for (int a = 0; a < kAccounts; ++a)
    accounts.push_back({"crash" + std::to_string(a), "pw-crash-" + std::to_string(a), kCredit, {}});
  // Checkpoints every second: recovery is checkpoint + replay, mid-test.
  gateway gw(accounts, "checkpoint_interval = 1\n", kShards);
  std::mt19937 rng(power_cut ? 77 : 42);
  client_log log;
  int rounds = 0;
  for (int round = 0; round < kRounds && std::chrono::steady_clock::now() < deadline; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string fsync_log = gw.data_dir() + "/fsync-" + std::to_string(round) + ".log";
    if (power_cut) setenv("POSTINO_FSYNC_LOG", fsync_log.c_str(), 1);
    const bool started = gw.start();
    unsetenv("POSTINO_FSYNC_LOG");  // this process's own journal reads must not log
    ASSERT_TRUE(started) << gw.last_log();

    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int a = 0; a < kAccounts; ++a)
      for (int s = 0; s < kSessionsPerAccount; ++s)
        threads.emplace_back(sender, gw.smtp_port(), accounts[a].username, accounts[a].password,
                             "r" + std::to_string(round) + "a" + std::to_string(a) + "s" + std::to_string(s),
                             static_cast<unsigned>(round * 100 + a * 10 + s), std::ref(stop), std::ref(log));
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 1700));
    gw.kill_hard();
    stop = true;
    for (auto& t : threads) t.join();
    ASSERT_TRUE(log.failure.empty()) << log.failure;
    if (power_cut) cut_power(gw.data_dir(), fsync_log, rng);

    std::string duplicate;
    auto in_journal = journaled(gw.data_dir(), duplicate);
    EXPECT_TRUE(duplicate.empty()) << "nonce journaled twice: " << duplicate;
    std::size_t lost = 0, stray = 0;
    for (const auto& [nonce, price] : log.acked)
      if (!in_journal.count(nonce)) {
        ++lost;
        ADD_FAILURE() << "acknowledged " << nonce << " is not in the journal";
      }
    for (const auto& [nonce, where] : in_journal)
      if (!log.acked.count(nonce) && !log.in_flight.count(nonce)) {
        ++stray;
        ADD_FAILURE() << nonce << " is journaled but was never sent to the end";
      }
    ASSERT_EQ(lost + stray, 0u);
    std::map<account_id, std::int64_t> charged;
    for (const auto& [nonce, where] : in_journal) {
      charged[where.first] += where.second;
      // The journal is the truth now: an in-flight message it holds is accepted.
      auto f = log.in_flight.find(nonce);
      if (f != log.in_flight.end()) {
        EXPECT_EQ(f->second, where.second);
        log.acked[nonce] = f->second;
        log.in_flight.erase(f);
      }
    }
    // The rest of the in-flight messages are gone for good and not charged.
    log.in_flight.clear();

    // Restart: every balance is the initial credit minus the journaled prices.
    ASSERT_TRUE(gw.start()) << gw.last_log();
    for (int a = 0; a < kAccounts; ++a) {
      raw_client c(gw.smtp_port());
      std::string line = login_ok(c, accounts[a].username, accounts[a].password);
      ASSERT_FALSE(line.empty()) << gw.last_log();
      std::smatch m;
      ASSERT_TRUE(std::regex_search(line, m, std::regex("ID ACCOUNT: (\\d+) "))) << line;
      const account_id id = std::stoull(m[1]);
      EXPECT_EQ(credit_in(line), kCredit - charged[id]) << line;
    }
    ASSERT_EQ(gw.stop(), 0) << gw.last_log();
    ++rounds;
  }
  EXPECT_EQ(rounds, kRounds) << "ran out of time";
  EXPECT_GT(log.acked.size(), 0u);
}

TEST(crash_test, kill_at_a_random_moment_loses_nothing_acknowledged) { run_rounds(false); }

TEST(crash_test, power_cut_after_the_last_fsync_loses_nothing_acknowledged) { run_rounds(true); }

}  // namespace
}  // namespace postino::test
