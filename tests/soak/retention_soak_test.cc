// Soak (label `soak`, run by scripts/soak, never in CI): journal retention
// under a long run. postino-load pushes POSTINO_SOAK_MESSAGES (default
// 20,000,000) messages at POSTINO_SOAK_RATE per second (default 1,000, a
// rate the test SMSC keeps up with) through the real gateway to the test
// SMSC, which never sends a receipt for one prefix in six. Halfway through,
// the gateway is SIGKILLed under load and restarted. Checked: every
// acknowledged message is in the message index and charged once (the
// balance is the credit less one per indexed message), none is submitted
// twice, and the journals' disk stays within a few segments per shard plus
// what the open messages' carried records fill. Reported: the backlog at
// the kill, the restart time, the largest journal disk seen. Every process
// is a child killed by its destructor; every wait is bounded.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../integration/harness.h"

namespace postino::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

const std::uint64_t total_messages = env_number("POSTINO_SOAK_MESSAGES", 20'000'000);
const std::uint64_t rate = env_number("POSTINO_SOAK_RATE", 1'000);
const std::uint64_t segment_bytes = env_number("POSTINO_SOAK_SEGMENT_BYTES", 16u << 20);
constexpr unsigned shards = 2;
constexpr std::int64_t credit = 1'000'000'000'000;

std::string config(std::uint16_t smsc_port) {
  return "checkpoint_interval = 1\n[journal]\nsegment_bytes = " + std::to_string(segment_bytes) +
         "\n[[smsc]]\nname = \"sim\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(smsc_port) +
         "\nsystem_id = \"postino\"\nbinds = 4\nwindow = 200\nmax_submits_per_second = 0\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
         "[delivery]\nvalidity_s = 604800\nretry_min_ms = 100\nretry_max_ms = 1000\n";
}

std::uint64_t journal_bytes(const std::string& data_dir) {
  std::uint64_t bytes = 0;
  std::error_code ec;
  for (const auto& f : fs::recursive_directory_iterator(data_dir, ec))
    if (f.path().filename().string().rfind("segment-", 0) == 0) bytes += fs::file_size(f.path(), ec);
  return bytes;
}

// postino-load's acknowledged queue ids (its --log), appended to `ids`.
void read_acks(const std::string& log, std::vector<std::string>& ids) {
  std::ifstream in(log);
  std::string kind, id, rest;
  while (in >> kind) {
    if (kind == "ack" && in >> id >> rest) ids.push_back(id);
    else std::getline(in, rest);
  }
}

std::vector<std::string> load_argv(const gateway& gw, std::uint64_t messages, unsigned seed, const std::string& log) {
  std::vector<std::string> argv = {binary_path("postino-load"), "--server", "127.0.0.1", "--port",
                                   std::to_string(gw.smtp_port()), "--auth", "plain", "--user", "bulk",
                                   "--password", "pw-bulk", "--from", "ACME", "--sessions", "200", "--rate",
                                   std::to_string(rate), "--messages", std::to_string(messages), "--size", "80",
                                   "--number-length", "12", "--seed", std::to_string(seed), "--log", log,
                                   "--no-progress", "--reply-timeout", "30"};
  for (const char* p : {"+39331", "+39332", "+39333", "+39334", "+39335", "+39366"}) {
    argv.push_back("--to-prefix");
    argv.push_back(p);
  }
  return argv;
}

// How many of `ids` the message index lacks (one prepared look-up each).
std::size_t missing_from_index(const std::string& db_path, const std::vector<std::string>& ids) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return ids.size();
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT 1 FROM checkpoint_message WHERE queue_id = ?1", -1, &st, nullptr);
  std::size_t missing = 0;
  for (const auto& id : ids) {
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    missing += sqlite3_step(st) == SQLITE_ROW ? 0 : 1;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return missing;
}

// Samples the journals' disk use every second while it lives.
class disk_watch {
 public:
  explicit disk_watch(std::string dir)
      : dir_(std::move(dir)), thread_([this] {
          while (!stop_) {
            peak_ = std::max(peak_.load(), journal_bytes(dir_));
            std::this_thread::sleep_for(1s);
          }
        }) {}
  ~disk_watch() {
    stop_ = true;
    thread_.join();
  }
  std::uint64_t peak() const { return peak_; }

 private:
  std::string dir_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> peak_{0};
  std::thread thread_;
};

TEST(retention_soak, journals_stay_small_and_a_kill_loses_nothing) {
  std::string why;
  if (!smsc_simulator::available(why)) SKIP_OR_FAIL(why);
  smsc_simulator sim(R"({"default": {"receipt": "delivered"}, "keep_submits": false,
                         "rules": [{"prefix": "39366", "receipt": "none"}]})");
  ASSERT_TRUE(sim.start()) << sim.last_log();
  gateway gw({{"bulk", "pw-bulk", credit, {}}}, config(sim.smpp_port()), shards);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  disk_watch disk(gw.data_dir());
  const auto seconds = std::chrono::seconds(3 * total_messages / rate + 600);
  std::vector<std::string> acked;

  const std::string first = gw.data_dir() + "/load-1.log";
  auto run = run_command(load_argv(gw, total_messages / 2, 1, first), "", seconds);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  read_acks(first, acked);

  // The second half, killed a quarter of the way in.
  const std::string second = gw.data_dir() + "/load-2.log";
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::seconds(total_messages / 8 / rate + 1));
    const auto backlog = gw.metrics()["postino_delivery_backlog"];
    std::printf("[ soak ] SIGKILL with %zu acknowledged before this half, delivery backlog %.0f\n", acked.size(),
                backlog);
    gw.kill_hard();
  });
  run_command(load_argv(gw, total_messages / 2, 2, second), "", seconds);
  killer.join();
  read_acks(second, acked);
  const auto restart = std::chrono::steady_clock::now();
  ASSERT_TRUE(gw.start()) << gw.last_log();
  std::printf("[ soak ] restart: %.0f ms with %.1f MiB of journal\n", ms_since(restart),
              static_cast<double>(journal_bytes(gw.data_dir())) / (1 << 20));
  const std::uint64_t left = total_messages - acked.size();
  const std::string third = gw.data_dir() + "/load-3.log";
  run = run_command(load_argv(gw, left, 3, third), "", seconds);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  read_acks(third, acked);

  // Delivery drains, retention catches up.
  const auto deadline = std::chrono::steady_clock::now() + 600s;
  while (std::chrono::steady_clock::now() < deadline && gw.metrics()["postino_delivery_backlog"] > 0)
    std::this_thread::sleep_for(1s);
  std::this_thread::sleep_for(30s);
  const std::uint64_t open =
      static_cast<std::uint64_t>(query_number(gw.database(), "SELECT count(*) FROM checkpoint_message WHERE state "
                                                             "IN ('queued', 'submitted')"));
  const std::uint64_t now_bytes = journal_bytes(gw.data_dir());
  std::printf("[ soak ] %zu acknowledged; %llu still open; journals now %.1f MiB, at most %.1f MiB; "
              "SMSC saw %.0f submits, %.0f duplicates\n",
              acked.size(), static_cast<unsigned long long>(open), static_cast<double>(now_bytes) / (1 << 20),
              static_cast<double>(disk.peak()) / (1 << 20), sim.stat("submits_total"), sim.stat("duplicates"));

  const std::int64_t indexed = query_number(gw.database(), "SELECT count(*) FROM checkpoint_message");
  EXPECT_EQ(missing_from_index(gw.database(), acked), 0u);
  // Messages whose 250 the kill cut off may be there too, charged.
  EXPECT_GE(indexed, static_cast<std::int64_t>(acked.size()));
  const auto balance = json_number(gw.admin("GET", "/accounts/bulk").body, "balance");
  EXPECT_EQ(balance, static_cast<double>(credit - indexed));
  // Only segments submitted without a durable submit_sm_resp at the kill
  // may go out twice: at most a window per bind.
  EXPECT_LE(sim.stat("duplicates"), 4 * 200) << "delivered messages went out again";
  // A few segments per shard plus the open messages' carried records
  // (about 300 bytes each), twice over for the half-open segments.
  const std::uint64_t allowed = (4 * shards) * segment_bytes + 2 * open * 400;
  EXPECT_LE(now_bytes, allowed);
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

}  // namespace
}  // namespace postino::test
