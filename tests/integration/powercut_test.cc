// Power cuts that can catch a missing fsync (issue 18). The gateway's data
// directory (config, postino.db with its -wal and -shm, admin token, every
// journal) is on postino-powercut-fs (tests/powercut/README.md), a FUSE
// passthrough that remembers what was not fsynced. Each round: pipelined
// BDAT load on every account, SIGKILL, then the filesystem drops every
// unsynced write, rename, unlink and new directory entry and tears the
// unsynced tail of each file at a random byte (what a power cut after the
// kill leaves: a plain SIGKILL keeps the page cache and could never show a
// missing fdatasync or directory fsync), then the gateway restarts and:
//   - every `250 ... queued as <id>` the clients saw is in the journals,
//     under that queue id, with its price;
//   - nothing is there that a client was told 451 or never sent to the end;
//     a message whose reply the kill swallowed may be there, and is then
//     accepted and charged (DESIGN.md "Durability and credit");
//   - every account's 235 CREDIT is its start minus the prices of exactly
//     those messages, to the unit;
//   - after the last round and a clean stop, a sample of them is in the
//     message index (postino-ctl message show) with its price.
// Messages are checked in the journals read back without changing them
// (spool::read_journal) while the restarted gateway idles: nothing is final
// without an SMSC, so no retention step may delete their segments.
// A build without the journal's linked fdatasync, or without the directory
// fsync at segment creation, fails in its first rounds (tests/powercut/README.md).
// The first test checks the filesystem itself: what it keeps and drops.
// Bounded: 20 rounds within kDeadline (about 40 s alone on 2 cores); the rig
// kills the gateway and unmounts even when an assertion fails. Needs root and /dev/fuse: it skips (named in
// tests/skip-allowlist.txt) when the machine cannot mount FUSE.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using clock_type = std::chrono::steady_clock;

constexpr long kFuseMagic = 0x65735546;  // statfs f_type of a FUSE mount

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One postino-powercut-fs mount of `backing` at `mountpoint`, its copies of
// durable data in `store`, its log in `log`. The daemon dies with this
// thread (PR_SET_PDEATHSIG) and libfuse's auto_unmount removes the mount if
// it dies, so even a crashed test leaves no mount behind.
class powercut_mount {
 public:
  powercut_mount(std::string backing, std::string store, std::string mountpoint, std::string log)
      : mountpoint_(std::move(mountpoint)), log_(std::move(log)) {
    const std::string program = std::string(POSTINO_BINARY_DIR) + "/postino-powercut-fs";
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      setpgid(0, 0);
      execl(program.c_str(), program.c_str(), backing.c_str(), store.c_str(), mountpoint_.c_str(), "-o",
            "auto_unmount", static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~powercut_mount() { unmount(); }

  // Waits for the mount; false when the daemon exited first (its log says why).
  bool wait_mounted() {
    const auto deadline = clock_type::now() + seconds(15);
    while (clock_type::now() < deadline) {
      struct statfs st {};
      if (::statfs(mountpoint_.c_str(), &st) == 0 && st.f_type == kFuseMagic) return true;
      int status = 0;
      if (pid_ <= 0 || waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }

  // The power cut: returns the filesystem's report ("" when it failed).
  std::string drop(std::uint64_t seed) {
    const std::string control = mountpoint_ + "/.powercut";
    int fd = ::open(control.c_str(), O_RDWR);
    if (fd < 0) return "";
    const std::string command = "drop " + std::to_string(seed) + "\n";
    const bool ok = ::write(fd, command.data(), command.size()) == static_cast<ssize_t>(command.size());
    ::close(fd);
    return ok ? read_file(control) : "";
  }

  // The number after `key` in a report.
  static std::uint64_t field(const std::string& report, const std::string& key) {
    std::smatch m;
    if (!std::regex_search(report, m, std::regex("(^|\n)" + key + " (\\d+)"))) return 0;
    return std::stoull(m[2]);
  }

  std::string log() const { return read_file(log_); }

  void unmount() {
    if (pid_ <= 0) return;
    if (::umount2(mountpoint_.c_str(), 0) != 0) ::umount2(mountpoint_.c_str(), MNT_DETACH);
    bool exited = false;
    for (int i = 0; i < 500 && !exited; ++i) {
      int status = 0;
      exited = waitpid(pid_, &status, WNOHANG) == pid_;
      if (!exited) std::this_thread::sleep_for(milliseconds(10));
    }
    if (!exited) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }

 private:
  std::string mountpoint_;
  std::string log_;
  pid_t pid_ = -1;
};

// Why this machine cannot run the test, or "" when it can.
std::string cannot_mount_reason() {
  if (geteuid() != 0) return "FUSE mounts need root here (the tests run as root)";
  if (::access("/dev/fuse", R_OK | W_OK) != 0) return "no usable /dev/fuse (a container without it)";
  return "";
}

bool mount_refused(const std::string& log) {
  return log.find("Operation not permitted") != std::string::npos ||
         log.find("Permission denied") != std::string::npos || log.find("No such device") != std::string::npos;
}

#define REQUIRE_FUSE()                                                                                \
  do {                                                                                                \
    if (!fs::exists(std::string(POSTINO_BINARY_DIR) + "/postino-powercut-fs")) {                       \
      SKIP_OR_FAIL("postino-powercut-fs was not built (libfuse3-dev missing at configure time)");      \
    }                                                                                                 \
    if (std::string why = cannot_mount_reason(); !why.empty()) {                                      \
      GTEST_SKIP() << why;                                                                            \
    }                                                                                                 \
  } while (0)

#define MOUNT_OR_SKIP(m)                                                                    \
  do {                                                                                      \
    if (!(m).wait_mounted()) {                                                              \
      const std::string log = (m).log();                                                    \
      if (mount_refused(log)) {                                                             \
        GTEST_SKIP() << "this machine refuses FUSE mounts: " << log;                        \
      }                                                                                     \
      FAIL() << "postino-powercut-fs did not mount: " << log;                               \
    }                                                                                       \
  } while (0)

// --- the filesystem on its own ----------------------------------------------

void write_file(const std::string& path, const std::string& data, bool sync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  if (sync) {
    ASSERT_EQ(::fsync(fd), 0);
  }
  ::close(fd);
}

void sync_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::fsync(fd), 0);
  ::close(fd);
}

// `now` is `update` written over `old` up to some byte k, the size never
// below old's: a torn, unsynced overwrite.
bool torn_overwrite(const std::string& now, const std::string& old, const std::string& update) {
  for (std::size_t k = 0; k <= update.size(); ++k) {
    std::string mix = update.substr(0, k) + (k < old.size() ? old.substr(k) : "");
    if (mix == now) return true;
  }
  return false;
}

TEST(powercut_fs, drops_what_was_not_fsynced_and_keeps_what_was) {
  REQUIRE_FUSE();
  temp_dir root, mnt;
  fs::create_directories(root.path() + "/backing/old");
  write_file(root.path() + "/backing/before", "imported", false);
  powercut_mount m(root.path() + "/backing", root.path() + "/store", mnt.path(), root.path() + "/fs.log");
  MOUNT_OR_SKIP(m);
  const std::string d = mnt.path();
  write_file(d + "/synced", "kept", true);
  fs::create_directories(d + "/sub");
  int fd = ::open((d + "/seg").c_str(), O_RDWR | O_CREAT, 0644);  // a preallocated segment
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fallocate(fd, 0, 0, 1 << 20), 0);
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_NO_FATAL_FAILURE(sync_dir(d));  // what exists now has its entry for good
  write_file(d + "/after-dir-sync", "lost", true);  // data synced, its entry not
  write_file(d + "/before", "overwritten", false);  // data not synced
  fs::rename(d + "/synced", d + "/renamed");        // rename not synced
  fs::remove(d + "/old");                           // rmdir not synced
  write_file(d + "/sub/new", "x", true);            // its directory never fsynced
  ASSERT_EQ(::pwrite(fd, std::string(1000, 'R').data(), 1000, 0), 1000);
  ASSERT_EQ(::fdatasync(fd), 0);
  ASSERT_EQ(::pwrite(fd, std::string(5000, 'T').data(), 5000, 1000), 5000);
  // mmap reads work (recovery maps segments), and see the unsynced bytes.
  void* map = mmap(nullptr, 1 << 20, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  EXPECT_EQ(static_cast<const char*>(map)[3000], 'T');
  munmap(map, 1 << 20);
  ::close(fd);

  const std::string report = m.drop(7);
  ASSERT_FALSE(report.empty()) << m.log();
  EXPECT_EQ(read_file(d + "/synced"), "kept");
  EXPECT_FALSE(fs::exists(d + "/renamed"));
  EXPECT_FALSE(fs::exists(d + "/after-dir-sync"));
  EXPECT_TRUE(fs::is_directory(d + "/old"));
  EXPECT_TRUE(fs::is_directory(d + "/sub"));
  EXPECT_FALSE(fs::exists(d + "/sub/new"));
  EXPECT_TRUE(torn_overwrite(read_file(d + "/before"), "imported", "overwritten")) << read_file(d + "/before");
  const std::string seg = read_file(d + "/seg");
  ASSERT_EQ(seg.size(), 1u << 20);
  EXPECT_EQ(seg.substr(0, 1000), std::string(1000, 'R'));
  const std::size_t torn = seg.find_first_not_of('T', 1000) - 1000;
  EXPECT_LE(torn, 5000u);
  EXPECT_EQ(seg.find_first_not_of('\0', 1000 + torn), std::string::npos) << "bytes after the torn tail";
  EXPECT_EQ(powercut_mount::field(report, "unsynced_bytes"), 5000u + 11u) << report;
  std::printf("powercut_fs: kept %zu of the segment's 5000 unsynced bytes; report:\n%s", torn, report.c_str());
  // After the drop everything there is durable: a second drop changes nothing.
  const std::string again = m.drop(8);
  EXPECT_EQ(powercut_mount::field(again, "unsynced_bytes"), 0u) << again;
  EXPECT_EQ(powercut_mount::field(again, "reverted_entries"), 0u) << again;
  EXPECT_EQ(read_file(d + "/seg"), seg);
}

// --- the gateway on it --------------------------------------------------------

constexpr unsigned kShards = 2;
constexpr int kAccounts = 2;
constexpr int kConnectionsPerAccount = 2;
constexpr std::size_t kWindow = 8;  // transactions in flight per connection
constexpr std::int64_t kCredit = 10'000'000;
constexpr int kRounds = 20;
constexpr auto kDeadline = seconds(150);

enum class fate { in_flight, acked, refused };

struct sent_message {
  int account = 0;  // index into the accounts
  std::int64_t price = 0;
  fate state = fate::in_flight;
  std::string queue_id;  // from the 250
};

struct ledger {
  std::mutex mutex;
  std::map<std::string, sent_message> sent;  // by nonce
  std::size_t acked_now = 0;                 // this round
  std::string failure;
};

// MAIL, RCPT... and BDAT LAST with the whole body: a transaction the client
// need not wait for, so kWindow of them are in flight on one connection.
std::string transaction(const std::string& nonce, int recipients) {
  std::string body = "nonce " + nonce + " text";
  body.resize(120, '.');
  std::string t = "MAIL FROM:<ACME>\r\n";
  for (int i = 0; i < recipients; ++i) t += "RCPT TO:<+39333" + std::to_string(1000000 + i) + ">\r\n";
  return t + "BDAT " + std::to_string(body.size()) + " LAST\r\n" + body;
}

// The replies of one transaction; false when the connection died (the kill).
bool settle(raw_client& c, const std::string& nonce, int recipients, ledger& log) {
  std::string last;
  for (int i = 0; i < recipients + 2; ++i) {
    last = c.reply(milliseconds(20000));
    if (last.empty()) return false;
  }
  std::lock_guard lock(log.mutex);
  sent_message& m = log.sent[nonce];
  static const std::regex queued("^250 2\\.0\\.0 Message accepted for delivery to: .* queued as ([0-9A-Fa-f]+)\r\n$");
  std::smatch id;
  if (std::regex_match(last, id, queued)) {
    m.state = fate::acked;
    m.queue_id = id[1];
    ++log.acked_now;
  } else if (last.rfind("451 4.3.0", 0) == 0) {
    m.state = fate::refused;
  } else if (log.failure.empty()) {
    log.failure = nonce + ": " + last;
  }
  return true;
}

// One connection: logs in, keeps kWindow transactions in flight until the
// gateway dies or `stop`.
void sender(std::uint16_t port, const account_spec& a, int account, const std::string& tag,
            std::atomic<bool>& stop, ledger& log) {
  raw_client c(port);
  if (login_ok(c, a.username, a.password).empty()) return;
  std::deque<std::pair<std::string, int>> pending;
  for (int n = 0;;) {
    while (!stop.load() && pending.size() < kWindow) {
      const std::string nonce = tag + "-" + std::to_string(n++);
      const int recipients = 1 + n % 3;
      {
        std::lock_guard lock(log.mutex);
        log.sent[nonce] = {account, recipients, fate::in_flight, ""};
      }
      c.send(transaction(nonce, recipients));
      pending.emplace_back(nonce, recipients);
    }
    if (pending.empty() || !settle(c, pending.front().first, pending.front().second, log)) return;
    pending.pop_front();
  }
}

struct journaled_message {
  std::string queue_id;
  account_id account = 0;
  std::int64_t price = 0;
};

// The nonce of a body this test sent ("nonce <nonce> text..."), or "".
std::string nonce_of(const std::string& body) {
  constexpr std::string_view prefix = "nonce ";
  if (body.compare(0, prefix.size(), prefix) != 0) return "";
  const auto end = body.find(' ', prefix.size());
  return end == std::string::npos ? "" : body.substr(prefix.size(), end - prefix.size());
}

// Nonce -> message, read without changing anything (spool::read_journal),
// while the restarted gateway idles. A `carried` record (retention moving an
// open message out of a segment it deletes) stands for its original, under
// the original's queue id. `problem` names a duplicate or a read error.
std::map<std::string, journaled_message> journaled(const std::string& data_dir, std::string& problem) {
  std::map<std::string, journaled_message> out;
  for (unsigned shard = 0; shard < kShards; ++shard) {
    std::string error;
    const bool ok = spool::read_journal(data_dir + "/journal-" + std::to_string(shard), [&](spool::record& r) {
      const bool carried = r.type == spool::record_type::carried;
      if (r.type != spool::record_type::message && !carried) return;
      std::string nonce = nonce_of(r.tx.body);
      if (nonce.empty()) return;
      const queue_id id = carried ? queue_id{r.origin.node, r.origin.shard, r.origin.sequence}
                                  : queue_id{0, static_cast<std::uint8_t>(shard), r.sequence};
      auto [it, fresh] = out.emplace(nonce, journaled_message{id.format(), r.tx.account, r.tx.price});
      if (!fresh && it->second.queue_id != id.format())
        problem = nonce + " twice: " + it->second.queue_id + " and " + id.format();
    }, error);
    if (!ok) problem = error;
  }
  return out;
}

// A gateway whose data directory is a powercut_mount. The gateway's
// constructor made the config and the database there; they move to the
// backing directory and the mount takes the data directory's place, so the
// gateway, postino-ctl and this test all see it at the same path. The log
// stays outside. Destruction: the gateway dies before the unmount.
class powercut_rig {
 public:
  powercut_rig(const std::vector<account_spec>& accounts, const std::string& extra_toml)
      : gw(accounts, extra_toml, kShards) {
    gw.log_to(root_.path() + "/postino.log");
    const std::string backing = root_.path() + "/backing";
    fs::create_directories(backing);
    for (const auto& e : fs::directory_iterator(gw.data_dir())) fs::rename(e.path(), backing + "/" + e.path().filename().string());
    mount_ = std::make_unique<powercut_mount>(backing, root_.path() + "/store", gw.data_dir(),
                                              root_.path() + "/fs.log");
  }
  ~powercut_rig() {
    gw.kill_hard();
    mount_.reset();
  }
  powercut_mount& mount() { return *mount_; }

 private:
  temp_dir root_;  // backing, store, logs; outlives the mount

 public:
  gateway gw;

 private:
  std::unique_ptr<powercut_mount> mount_;
};

struct round_result {
  std::size_t acked = 0, in_flight = 0, in_flight_kept = 0;
  std::string report;  // the filesystem's, of the cut
  double load_ms = 0, drop_ms = 0, start_ms = 0, check_ms = 0;
};

// The id the 235 line names for each account, in `accounts` order.
std::vector<account_id> account_ids(const gateway& gw, const std::vector<account_spec>& accounts) {
  std::vector<account_id> ids;
  for (const auto& a : accounts) {
    raw_client c(gw.smtp_port());
    std::smatch m;
    const std::string line = login_ok(c, a.username, a.password);
    ids.push_back(std::regex_search(line, m, std::regex("ID ACCOUNT: (\\d+) ")) ? std::stoull(m[1]) : 0);
  }
  return ids;
}

// The nonces' prefix for one connection of one round: "r<round>a<account>c<connection>".
std::string tag_of(int round, int account, int connection) {
  std::string tag = "r";
  tag += std::to_string(round);
  tag += 'a';
  tag += std::to_string(account);
  tag += 'c';
  tag += std::to_string(connection);
  return tag;
}

// Load until SIGKILL, a moment after the first acknowledgements.
void load_then_kill(gateway& gw, const std::vector<account_spec>& accounts, int round, std::mt19937& rng,
                    ledger& log) {
  log.acked_now = 0;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int a = 0; a < kAccounts; ++a)
    for (int s = 0; s < kConnectionsPerAccount; ++s)
      threads.emplace_back(sender, gw.smtp_port(), std::cref(accounts[a]), a, tag_of(round, a, s), std::ref(stop),
                           std::ref(log));
  const auto give_up = clock_type::now() + seconds(10);
  while (clock_type::now() < give_up) {
    {
      std::lock_guard lock(log.mutex);
      if (log.acked_now > 0) break;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  // Up to 1.2 s: with checkpoint_interval = 1, some rounds also checkpoint
  // under load before the cut.
  std::this_thread::sleep_for(milliseconds(20 + rng() % 1180));
  gw.kill_hard();
  stop = true;
  for (auto& t : threads) t.join();
}

// Counts of what went wrong, with the first few cases spelled out.
struct findings {
  std::size_t count = 0;
  std::string examples;
  void add(const std::string& what) {
    if (count++ < 5) examples += "\n  " + what;
  }
};

// The journal directories' files and sizes, for a failure message.
std::string journal_listing(const std::string& data_dir) {
  std::string out;
  for (unsigned shard = 0; shard < kShards; ++shard) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(data_dir + "/journal-" + std::to_string(shard), ec))
      out += "\n  " + e.path().string() + " (" + std::to_string(e.file_size(ec)) + " bytes)";
  }
  return out;
}

// Compares the journals after the restart with what the clients saw, and
// settles the in-flight messages: there = accepted (charged), gone = never.
void check_journals(const gateway& gw, const std::vector<account_id>& ids, ledger& log, round_result& r) {
  std::string problem;
  const auto in_journal = journaled(gw.data_dir(), problem);
  ASSERT_TRUE(problem.empty()) << problem;
  std::lock_guard lock(log.mutex);
  findings lost, stray, wrong;
  for (const auto& [nonce, j] : in_journal) {
    auto it = log.sent.find(nonce);
    if (it == log.sent.end() || it->second.state == fate::refused)
      stray.add(nonce + " (" + j.queue_id + ") was " +
                (it == log.sent.end() ? "never sent to the end, or gone at an earlier cut" : "refused with 451"));
  }
  for (auto it = log.sent.begin(); it != log.sent.end();) {
    sent_message& m = it->second;
    auto j = in_journal.find(it->first);
    if (m.state == fate::acked && j == in_journal.end()) lost.add(it->first + " (queued as " + m.queue_id + ")");
    if (j != in_journal.end() && ((m.state == fate::acked && j->second.queue_id != m.queue_id) ||
                                  j->second.price != m.price || j->second.account != ids[m.account]))
      wrong.add(it->first + ": journaled as " + j->second.queue_id + " price " + std::to_string(j->second.price) +
                " account " + std::to_string(j->second.account) + ", the client's " + m.queue_id + " price " +
                std::to_string(m.price) + " account " + std::to_string(ids[m.account]));
    if (m.state == fate::in_flight) {
      ++r.in_flight;
      if (j != in_journal.end()) {
        ++r.in_flight_kept;
        m.state = fate::acked;  // stored and charged: RFC 1047's duplicate window
        m.queue_id = j->second.queue_id;
      }
    }
    // Refused, or lost before its reply: gone for good (a later round that
    // finds it again reports it as stray).
    it = m.state == fate::acked ? std::next(it) : log.sent.erase(it);
  }
  ASSERT_EQ(lost.count + stray.count + wrong.count, 0u)
      << lost.count << " acknowledged message(s) not in the journals:" << lost.examples << "\n"
      << stray.count << " journaled message(s) never accepted:" << stray.examples << "\n"
      << wrong.count << " with another id, price or account:" << wrong.examples << "\n"
      << "the filesystem's drop:\n" << r.report << "journal files after the restart:" << journal_listing(gw.data_dir());
}

// Every account's CREDIT: the start minus the prices of its accepted messages.
void check_credit(const gateway& gw, const std::vector<account_spec>& accounts, ledger& log) {
  std::vector<std::int64_t> expected(accounts.size(), kCredit);
  {
    std::lock_guard lock(log.mutex);
    for (const auto& [nonce, m] : log.sent) expected[m.account] -= m.price;
  }
  for (std::size_t a = 0; a < accounts.size(); ++a) {
    raw_client c(gw.smtp_port());
    const std::string line = login_ok(c, accounts[a].username, accounts[a].password);
    ASSERT_FALSE(line.empty()) << gw.last_log();
    EXPECT_EQ(credit_in(line), expected[a]) << accounts[a].username << ": " << line;
  }
}

// After the last clean stop the message index (postino.db, through every
// cut) knows accepted messages too: `postino-ctl message show` of a sample.
void check_message_index(const gateway& gw, ledger& log, std::mt19937& rng) {
  std::vector<std::pair<std::string, std::int64_t>> accepted;
  {
    std::lock_guard lock(log.mutex);
    for (const auto& [nonce, m] : log.sent) accepted.emplace_back(m.queue_id, m.price);
  }
  ASSERT_FALSE(accepted.empty());
  for (int i = 0; i < 8; ++i) {
    const auto& [id, price] = accepted[rng() % accepted.size()];
    const command_result r = gw.ctl({"message", "show", id});
    EXPECT_EQ(r.exit_code, 0) << id << ": " << r.out << r.err;
    EXPECT_NE(r.out.find("price: " + std::to_string(price) + "\n"), std::string::npos) << r.out;
  }
}

// One round: load, kill, cut, restart, check; its figures in `r`.
void power_cut_round(powercut_rig& rig, const std::vector<account_spec>& accounts,
                     const std::vector<account_id>& ids, int round, std::mt19937& rng, ledger& log,
                     round_result& r) {
  gateway& gw = rig.gw;
  auto t = clock_type::now();
  ASSERT_NO_FATAL_FAILURE(load_then_kill(gw, accounts, round, rng, log));
  ASSERT_TRUE(log.failure.empty()) << log.failure;
  r.acked = log.acked_now;
  r.load_ms = ms_since(t);
  t = clock_type::now();
  r.report = rig.mount().drop(1000 + static_cast<std::uint64_t>(round));
  ASSERT_FALSE(r.report.empty()) << rig.mount().log();
  r.drop_ms = ms_since(t);
  t = clock_type::now();
  ASSERT_TRUE(gw.start()) << gw.last_log() << rig.mount().log();
  r.start_ms = ms_since(t);
  t = clock_type::now();
  ASSERT_NO_FATAL_FAILURE(check_journals(gw, ids, log, r));
  ASSERT_NO_FATAL_FAILURE(check_credit(gw, accounts, log));
  r.check_ms = ms_since(t);
}

void print_round(int round, const round_result& r) {
  auto field = [&r](const char* key) {
    return static_cast<unsigned long long>(powercut_mount::field(r.report, key));
  };
  std::printf("round %2d: %5zu acknowledged, %2zu in flight at the kill (%zu stored); the cut dropped %llu unsynced "
              "bytes in %llu files (kept %llu as torn tails) and %llu entries; load %.0f ms, cut %.0f ms, restart "
              "%.0f ms, checks %.0f ms\n",
              round, r.acked, r.in_flight, r.in_flight_kept, field("unsynced_bytes"), field("dirty_files"),
              field("torn_kept_bytes"), field("reverted_entries"), r.load_ms, r.drop_ms, r.start_ms, r.check_ms);
}

TEST(powercut, acknowledged_messages_and_debits_survive_losing_every_unsynced_write) {
  REQUIRE_FUSE();
  const auto started = clock_type::now();
  std::vector<account_spec> accounts;
  for (int a = 0; a < kAccounts; ++a)
    accounts.push_back({"cut" + std::to_string(a), "pw-cut-" + std::to_string(a), kCredit, {}});
  // Checkpoints every second (recovery = checkpoint + replay) and 1 MiB
  // segments, so rounds also cut across segment creation.
  powercut_rig rig(accounts, "checkpoint_interval = 1\n[journal]\nsegment_bytes = 1048576\n");
  MOUNT_OR_SKIP(rig.mount());
  gateway& gw = rig.gw;
  ASSERT_TRUE(gw.start()) << gw.last_log();
  const std::vector<account_id> ids = account_ids(gw, accounts);
  ledger log;
  std::mt19937 rng(18);
  std::uint64_t unsynced = 0, torn = 0, reverted = 0;
  std::size_t acked = 0;
  int rounds = 0;
  for (int round = 0; round < kRounds && clock_type::now() - started < kDeadline; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    round_result r;
    ASSERT_NO_FATAL_FAILURE(power_cut_round(rig, accounts, ids, round, rng, log, r));
    print_round(round, r);
    unsynced += powercut_mount::field(r.report, "unsynced_bytes");
    torn += powercut_mount::field(r.report, "torn_kept_bytes");
    reverted += powercut_mount::field(r.report, "reverted_entries");
    acked += r.acked;
    ++rounds;
  }
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
  ASSERT_NO_FATAL_FAILURE(check_message_index(gw, log, rng));
  EXPECT_EQ(rounds, kRounds) << "ran out of time";
  EXPECT_GT(acked, 0u);
  EXPECT_GT(unsynced, 0u) << "the filesystem never had anything to drop";
  std::printf("powercut: %d rounds, %zu acknowledged, %llu unsynced bytes dropped (%llu kept torn), %llu entries "
              "reverted, %.1f s\n",
              rounds, acked, static_cast<unsigned long long>(unsynced), static_cast<unsigned long long>(torn),
              static_cast<unsigned long long>(reverted), ms_since(started) / 1000);
}

}  // namespace
}  // namespace postino::test
