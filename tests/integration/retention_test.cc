// Journal retention end to end (DESIGN.md "Retention"): the real gateway
// with small journal segments delivers to the test SMSC, which never sends
// a receipt for one prefix in six. Segments whose messages are all final go;
// the never-receipted messages are carried forward, so the journals keep a
// few segments, not the history. Then a SIGKILL and a restart: every
// acknowledged message is in the index and charged once, the carried ones
// still wait for their receipt (none is submitted again), and the delivered
// ones, whose records are gone from the journals, are not submitted again
// either. The simulator and the gateway are children killed by their
// destructors; every wait is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr std::int64_t credit = 1'000'000;
constexpr unsigned messages = 6000;
constexpr std::uint64_t segment_bytes = 64 * 1024;

std::string config(std::uint16_t smsc_port) {
  return "checkpoint_interval = 1\n[journal]\nsegment_bytes = " + std::to_string(segment_bytes) +
         "\n[[smsc]]\nname = \"sim\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(smsc_port) +
         "\nsystem_id = \"postino\"\nbinds = 2\nwindow = 50\nmax_submits_per_second = 0\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
         "[delivery]\nvalidity_s = 3600\nretry_min_ms = 100\nretry_max_ms = 1000\n";
}

template <class F>
bool wait_until(F done, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return done();
}

double metric(const gateway& gw, const std::string& name) {
  const auto m = gw.metrics();
  const auto it = m.find(name);
  return it == m.end() ? -1 : it->second;
}

// Segment files in every journal of the data directory.
std::size_t segments_on_disk(const std::string& data_dir) {
  std::size_t n = 0;
  for (const auto& dir : fs::directory_iterator(data_dir))
    if (dir.is_directory() && dir.path().filename().string().rfind("journal-", 0) == 0)
      for (const auto& f : fs::directory_iterator(dir.path()))
        n += f.path().filename().string().rfind("segment-", 0) == 0 ? 1 : 0;
  return n;
}

// The acknowledged queue ids of a postino-load run (its --log).
std::vector<std::string> acked_ids(const std::string& log) {
  std::vector<std::string> ids;
  std::ifstream in(log);
  std::string kind, id, rest;
  while (in >> kind) {
    if (kind == "ack" && in >> id >> rest) ids.push_back(id);
    else std::getline(in, rest);
  }
  return ids;
}

TEST(retention, final_segments_go_open_messages_are_carried_and_a_restart_resubmits_nothing) {
  std::string why;
  if (!smsc_simulator::available(why)) SKIP_OR_FAIL(why);
  smsc_simulator sim(R"({"default": {"receipt": "delivered"},
                         "rules": [{"prefix": "39366", "receipt": "none"}]})");
  ASSERT_TRUE(sim.start()) << sim.last_log();
  gateway gw({{"bulk", "pw-bulk", credit, {}}}, config(sim.smpp_port()), 2);
  ASSERT_TRUE(gw.start()) << gw.last_log();

  const std::string log = gw.data_dir() + "/load.log";
  std::vector<std::string> argv = {binary_path("postino-load"), "--server", "127.0.0.1", "--port",
                                   std::to_string(gw.smtp_port()), "--auth", "plain", "--user", "bulk",
                                   "--password", "pw-bulk", "--from", "ACME", "--sessions", "20", "--messages",
                                   std::to_string(messages), "--size", "100", "--number-length", "12", "--seed",
                                   "16", "--log", log, "--no-progress"};
  for (const char* p : {"+39331", "+39332", "+39333", "+39334", "+39335", "+39366"}) {
    argv.push_back("--to-prefix");
    argv.push_back(p);
  }
  const auto load = run_command(argv, "", 180s);
  ASSERT_EQ(load.exit_code, 0) << load.out << load.err;
  const std::vector<std::string> acked = acked_ids(log);
  ASSERT_EQ(acked.size(), messages);
  ASSERT_TRUE(wait_until([&] { return sim.stat("unique_submits") >= messages; }, 120s)) << sim.stats();

  // Retention catches up: segments deleted, the open messages carried.
  const bool settled = wait_until(
      [&] {
        return metric(gw, "postino_journal_records_carried_total") > 0 &&
               metric(gw, "postino_journal_segments_deleted_total") >= 2 * metric(gw, "postino_journal_segments");
      },
      90s);
  const double deleted = metric(gw, "postino_journal_segments_deleted_total");
  const double kept = metric(gw, "postino_journal_segments");
  const double carried = metric(gw, "postino_journal_records_carried_total");
  EXPECT_TRUE(settled) << "deleted " << deleted << ", on disk " << kept << ", carried " << carried;
  std::printf("[ retention ] %u messages: %.0f segments of %llu KiB deleted, %.0f on disk, %.0f records carried\n",
              messages, deleted, static_cast<unsigned long long>(segment_bytes / 1024), kept, carried);

  const double submits_before = sim.stat("submits_total");
  gw.kill_hard();
  const std::size_t log_at = gw.last_log().size();
  const auto restart = std::chrono::steady_clock::now();
  ASSERT_TRUE(gw.start()) << gw.last_log();
  const double restart_ms = ms_since(restart);
  const std::string started = gw.log_since(log_at);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(started, m, std::regex(R"((\d+) segment\(s\) to submit and (\d+) awaiting)")))
      << started;
  const std::int64_t to_submit = std::stoll(m[1]);
  const std::int64_t awaiting = std::stoll(m[2]);
  const std::int64_t unreceipted =
      query_number(gw.database(), "SELECT count(*) FROM checkpoint_message WHERE recipient_list LIKE '+39366%'");
  std::printf("[ retention ] restart took %.0f ms (%zu segment files): %lld to submit, %lld awaiting a receipt\n",
              restart_ms, segments_on_disk(gw.data_dir()), static_cast<long long>(to_submit),
              static_cast<long long>(awaiting));
  EXPECT_EQ(to_submit, 0) << started;
  EXPECT_EQ(awaiting, unreceipted) << started;
  EXPECT_GT(unreceipted, static_cast<std::int64_t>(messages / 12));

  // Nothing goes to the SMSC again; every acknowledged message is indexed
  // and charged once (1 credit each, nothing refunded).
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(sim.stat("submits_total"), submits_before) << sim.stats();
  EXPECT_EQ(query_number(gw.database(), "SELECT count(*) FROM checkpoint_message"), static_cast<std::int64_t>(messages));
  const auto balance = json_number(gw.admin("GET", "/accounts/bulk").body, "balance");
  EXPECT_EQ(balance, static_cast<double>(credit - static_cast<std::int64_t>(messages)));
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

}  // namespace
}  // namespace postino::test
