// Delivery to an SMSC end to end (issue 7, PROTOCOL.md section 6): the real
// gateway binds to the test SMSC (tests/smsc/simulator.js on the npm `smpp`
// package), messages go in over SMTP with postino-load, and the simulator
// and the gateway's own counters and message index are compared:
//   - 10,000 messages (single, concatenated and UCS-2) with the simulator
//     throttling, failing some prefixes permanently or temporarily, sending
//     some receipts before their submit_sm_resp, printing some receipt ids in
//     the other base, and dropping the connection once mid-window: every
//     segment reaches it, duplicates only among PDUs unanswered at the drop
//     (the gateway counts those), every receipt matched, refunds exact;
//   - a SIGKILL while 1,000 messages are on their way: after the restart all
//     of them reach the simulator and end delivered in the message index;
//   - `postino-ctl message show` and `inbound list` on a small case.
// The simulator and the gateway are children killed by their destructors;
// every wait is bounded.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr std::int64_t kCredit = 1'000'000;

std::string smsc_toml(std::uint16_t port, unsigned binds, unsigned window, unsigned rate,
                      const std::string& delivery = "") {
  std::ostringstream t;
  t << "checkpoint_interval = 1\n"
    << "[[smsc]]\nname = \"sim\"\nhost = \"127.0.0.1\"\nport = " << port
    << "\nsystem_id = \"postino\"\npassword = \"secret\"\nbinds = " << binds << "\nwindow = " << window
    << "\nmax_submits_per_second = " << rate << "\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
    << "[delivery]\nvalidity_s = 3600\nretry_min_ms = 100\nretry_max_ms = 1000\n"
    << delivery;
  return t.str();
}

struct load_run {
  int exit_code = -1;
  std::string output;
  std::vector<std::string> acked;  // queue ids
};

load_run send_with_load(std::uint16_t port, const std::string& user, const std::string& pass,
                        const std::vector<std::string>& prefixes, unsigned messages, unsigned size,
                        const std::string& alphabet, unsigned seed, const std::string& dir) {
  const std::string log = dir + "/load-" + std::to_string(seed) + ".log";
  std::vector<std::string> argv = {binary_path("postino-load"), "--server", "127.0.0.1", "--port",
                                   std::to_string(port), "--auth", "plain", "--user", user, "--password", pass,
                                   "--from", "ACME", "--sessions", "20", "--messages", std::to_string(messages),
                                   "--size", std::to_string(size), "--alphabet", alphabet, "--number-length",
                                   "12", "--seed", std::to_string(seed), "--log", log, "--no-progress"};
  for (const auto& p : prefixes) {
    argv.push_back("--to-prefix");
    argv.push_back(p);
  }
  load_run out;
  auto r = run_command(argv, "", 180s);
  out.exit_code = r.exit_code;
  out.output = r.out + r.err;
  std::ifstream in(log);
  std::string kind, id, nonce;
  while (in >> kind) {
    if (kind == "ack" && in >> id >> nonce) out.acked.push_back(id);
    else std::getline(in, nonce);
  }
  return out;
}

// Polls `done` until it holds or `limit` passes.
template <class F>
bool wait_for(F done, std::chrono::seconds limit) {
  const auto deadline = clock_type::now() + limit;
  while (clock_type::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return done();
}

double metric(const gateway& gw, const std::string& name) {
  auto m = gw.metrics();
  auto it = m.find(name);
  return it == m.end() ? -1 : it->second;
}

std::int64_t balance_of(const gateway& gw, const std::string& user) {
  return static_cast<std::int64_t>(json_number(gw.admin("GET", "/accounts/" + user).body, "balance"));
}

// One column of one row of a query on the gateway's database ("" or -1
// when there is none).
std::string query_text(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string value;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0) != nullptr)
      value = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return value;
}



class delivery_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!smsc_simulator::available(why)) GTEST_SKIP() << why;
  }
};

TEST_F(delivery_test, ten_thousand_messages_with_throttling_and_a_disconnect) {
  smsc_simulator sim(R"({
    "default": {"submit": "accept", "receipt": "delivered"},
    "rules": [
      {"prefix": "39320", "submit": "permanent", "status": 11},
      {"prefix": "39380", "receipt": "undeliverable"},
      {"prefix": "39390", "receipt_before_resp": true},
      {"prefix": "39391", "id_format": "decimal", "receipt_id_format": "other"},
      {"prefix": "39393", "submit": "temporary", "times": 1}
    ],
    "max_submits_per_second": 1500,
    "disconnect_after_submits": 6000
  })");
  ASSERT_TRUE(sim.start()) << sim.last_log();
  // 39391 goes through a second SMSC account whose receipts print in hex
  // the decimal ids of its submit_sm_resp (an SMSC is consistent about that;
  // the simulator's one id counter makes the two accounts' ids overlap).
  const std::string second = "[[smsc]]\nname = \"sim-dec\"\nhost = \"127.0.0.1\"\nport = " +
                             std::to_string(sim.smpp_port()) +
                             "\nsystem_id = \"postino2\"\nwindow = 20\nmax_submits_per_second = 0\n"
                             "receipt_ids = \"hex\"\nreconnect_min_ms = 100\n"
                             "[[route]]\nprefix = \"39391\"\nsmscs = [\"sim-dec\"]\n"
                             "[[route]]\nprefix = \"\"\nsmscs = [\"sim\"]\n";
  gateway gw({{"bulk", "pw-bulk", kCredit, {"--max-segments", "3"}}},
             smsc_toml(sim.smpp_port(), 2, 20, 0) + second, 2);
  ASSERT_TRUE(gw.start()) << gw.last_log();

  const std::vector<std::string> prefixes = {"+39333", "+39334", "+39320", "+39380",
                                             "+39390", "+39391", "+39393"};
  struct part {
    unsigned messages, size;
    const char* alphabet;
    unsigned segments;
  };
  const part parts[] = {{6000, 100, "gsm", 1}, {2000, 300, "gsm", 2}, {2000, 100, "ucs2", 2}};
  std::uint64_t segments = 0;
  std::uint64_t accepted = 0;
  const auto started = clock_type::now();
  unsigned seed = 1;
  for (const part& p : parts) {
    load_run run = send_with_load(gw.smtp_port(), "bulk", "pw-bulk", prefixes, p.messages, p.size, p.alphabet,
                                  seed++, gw.data_dir());
    ASSERT_EQ(run.exit_code, 0) << run.output;
    ASSERT_EQ(run.acked.size(), p.messages) << run.output;
    accepted += run.acked.size();
    segments += run.acked.size() * p.segments;
  }
  const double accept_s = std::chrono::duration<double>(clock_type::now() - started).count();

  // Every segment ends: delivered, undeliverable or rejected.
  const bool finished = wait_for([&] { return metric(gw, "postino_delivery_final_total") >= segments; }, 120s);
  const double total_s = std::chrono::duration<double>(clock_type::now() - started).count();
  const std::string stats = sim.stats();
  ASSERT_TRUE(finished) << "finals " << metric(gw, "postino_delivery_final_total") << " of " << segments << "\n"
                        << stats << "\n" << gw.last_log() << gw.admin("GET", "/metrics").body
                        << "\nnot final: "
                        << query_text(gw.database(), "SELECT group_concat(queue_id || '/' || recipient_index || '/' || "
                                                       "segment || '/' || state || '/' || smsc_message_id, ' ') FROM "
                                                       "checkpoint_delivery WHERE state = 'submitted'");
  EXPECT_EQ(metric(gw, "postino_delivery_final_total"), segments);

  // Every recipient's every segment reached the simulator.
  EXPECT_EQ(json_number(stats, "unique_submits"), segments) << stats;
  // Duplicates only among the PDUs unanswered when the connection dropped,
  // and the gateway counted at least as many as it sent again.
  const double duplicates = json_number(stats, "duplicates");
  const double unanswered = json_number(stats, "unanswered_at_disconnect");
  const double resubmitted = metric(gw, "postino_smpp_resubmitted_total");
  EXPECT_GE(json_number(stats, "disconnects_forced"), 1) << stats;
  EXPECT_LE(duplicates, unanswered) << stats;
  EXPECT_LE(duplicates, resubmitted) << stats;
  EXPECT_GT(metric(gw, "postino_smpp_throttled_total"), 0);

  // Every receipt matched: one per segment not rejected at submit.
  const double rejected = metric(gw, "postino_smpp_permanent_errors_total");
  EXPECT_EQ(metric(gw, "postino_smpp_receipts_matched_total"), segments - rejected);
  EXPECT_EQ(metric(gw, "postino_smpp_receipts_unmatched_total"), 0);
  EXPECT_GT(metric(gw, "postino_smpp_receipts_early_total"), 0);

  // Refunds: exactly the rejected and undeliverable segments, once each.
  // (The message index is written every checkpoint, once a second here.)
  wait_for([&] {
    return query_number(gw.database(), "SELECT count(*) FROM checkpoint_delivery WHERE state IN "
                                       "('delivered', 'rejected', 'undeliverable')") ==
           static_cast<std::int64_t>(segments);
  }, 30s);
  const std::int64_t failed_rows = query_number(
      gw.database(), "SELECT count(*) FROM checkpoint_delivery WHERE state IN ('rejected', 'undeliverable')");
  EXPECT_GT(failed_rows, 0);
  EXPECT_EQ(metric(gw, "postino_delivery_refunded_units_total"), failed_rows);
  EXPECT_EQ(balance_of(gw, "bulk"), kCredit - static_cast<std::int64_t>(segments) + failed_rows);

  std::printf("[ delivery ] %llu messages (%llu segments) accepted in %.1f s (%.0f msgs/s); all final after "
              "%.1f s (%.0f submit_sm/s); throttled %.0f, resubmitted %.0f, simulator duplicates %.0f, "
              "unanswered at its disconnect %.0f, refunded %lld\n",
              static_cast<unsigned long long>(accepted), static_cast<unsigned long long>(segments), accept_s,
              accepted / accept_s, total_s, json_number(stats, "submits_total") / total_s,
              metric(gw, "postino_smpp_throttled_total"), resubmitted, duplicates, unanswered,
              static_cast<long long>(failed_rows));
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

TEST_F(delivery_test, a_killed_gateway_delivers_everything_after_restart) {
  smsc_simulator sim(R"({"default": {"submit": "accept", "receipt": "delivered", "receipt_delay_ms": 200}})");
  ASSERT_TRUE(sim.start()) << sim.last_log();
  // One bind at 250 submits/s: the messages are still on their way when the kill comes.
  gateway gw({{"bulk", "pw-bulk", kCredit, {}}}, smsc_toml(sim.smpp_port(), 1, 10, 250), 2);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  load_run run = send_with_load(gw.smtp_port(), "bulk", "pw-bulk", {"+39333"}, 1000, 60, "gsm", 7, gw.data_dir());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  ASSERT_EQ(run.acked.size(), 1000u);
  ASSERT_TRUE(wait_for([&] { return sim.stat("submits_total") >= 200; }, 60s)) << sim.stats();
  const double before_kill = sim.stat("submits_total");
  gw.kill_hard();
  ASSERT_LT(before_kill, 1000) << "all were delivered before the kill: the test proves nothing";

  ASSERT_TRUE(gw.start()) << gw.last_log();
  ASSERT_TRUE(wait_for([&] { return sim.stat("unique_submits") >= 1000; }, 120s)) << sim.stats() << gw.last_log();
  // Every acknowledged message ends delivered in the message index.
  const bool indexed = wait_for(
      [&] {
        return query_number(gw.database(), "SELECT count(*) FROM checkpoint_delivery WHERE state = 'delivered'") ==
               1000;
      },
      120s);
  EXPECT_TRUE(indexed) << query_number(gw.database(), "SELECT count(*) FROM checkpoint_delivery WHERE state = "
                                                      "'delivered'")
                       << "\n" << sim.stats();
  EXPECT_EQ(sim.stat("unique_submits"), 1000) << sim.stats();
  for (const std::string& id : {run.acked.front(), run.acked.back()}) {
    auto shown = gw.ctl({"message", "show", id});
    EXPECT_EQ(shown.exit_code, 0) << shown.out << shown.err;
    EXPECT_NE(shown.out.find("state: delivered"), std::string::npos) << shown.out;
  }
  std::printf("[ delivery ] killed after %.0f of 1000 submits; after the restart all 1000 reached the SMSC "
              "(%.0f submits in all, %.0f duplicates)\n",
              before_kill, sim.stat("submits_total"), sim.stat("duplicates"));
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

TEST_F(delivery_test, message_show_and_inbound_list) {
  smsc_simulator sim(R"({"default": {"receipt": "delivered"},
                         "rules": [{"prefix": "39380", "receipt": "undeliverable"}]})");
  ASSERT_TRUE(sim.start()) << sim.last_log();
  gateway gw({{"op", "pw-op", 100, {}}}, smsc_toml(sim.smpp_port(), 1, 10, 0), 2);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client c(gw.smtp_port());
  ASSERT_TRUE(c.connected());
  ASSERT_EQ(login(c, "op", "pw-op").rfind("235 ", 0), 0u);
  c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nRCPT TO:<+393801234567>\r\nDATA\r\n");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.reply().rfind("250 ", 0), 0u);
  EXPECT_EQ(c.reply().rfind("354 ", 0), 0u);
  c.send("hello from the delivery test\r\n.\r\n");
  const std::string queued = c.reply();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(queued, m, std::regex("queued as ([0-9A-F]{16})"))) << queued;
  const std::string id = m[1];

  command_result shown;
  ASSERT_TRUE(wait_for(
      [&] {
        shown = gw.ctl({"message", "show", id});
        return shown.out.find("state: undeliverable") != std::string::npos;
      },
      60s))
      << shown.out << shown.err << sim.stats() << "\n" << gw.last_log() << "\n" << gw.admin("GET", "/metrics").body;
  EXPECT_NE(shown.out.find("recipient 0 +393331234567 delivered"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("recipient 1 +393801234567 undeliverable refunded 1"), std::string::npos) << shown.out;
  EXPECT_EQ(balance_of(gw, "op"), 100 - 2 + 1);

  // A handset's reply is stored and listed.
  sim.post("/inbound", R"({"from": "393331234567", "to": "ACME", "text": "STOP please"})");
  command_result listed;
  EXPECT_TRUE(wait_for(
      [&] {
        listed = gw.ctl({"inbound", "list"});
        return listed.out.find("from 393331234567 to ACME: STOP please") != std::string::npos;
      },
      60s))
      << listed.out << listed.err;
  // And the next one too: each live row is keyed by its own record.
  sim.post("/inbound", R"({"from": "393331234567", "to": "ACME", "text": "and again"})");
  EXPECT_TRUE(wait_for(
      [&] {
        listed = gw.ctl({"inbound", "list"});
        return listed.out.find("from 393331234567 to ACME: and again") != std::string::npos;
      },
      30s))
      << listed.out << listed.err;
  EXPECT_NE(listed.out.find("STOP please"), std::string::npos) << listed.out;
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
  EXPECT_EQ(sim.stat("unbinds"), 1) << sim.stats();
}

// An SMSC nobody answers: a port that was free a moment ago.
std::uint16_t closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

TEST_F(delivery_test, a_down_smsc_fails_over_and_a_full_queue_refuses_mail) {
  smsc_simulator sim(R"({"default": {"receipt": "delivered"}})");
  ASSERT_TRUE(sim.start()) << sim.last_log();
  // "down" never answers; 39333 fails over from it to "sim". UK numbers
  // have only "down": their segments stay queued, and past queue_limit MAIL
  // gets 452 4.3.1.
  std::ostringstream t;
  t << "checkpoint_interval = 1\n"
    << "[[smsc]]\nname = \"down\"\nport = " << closed_port() << "\nsystem_id = \"x\"\n"
    << "[[smsc]]\nname = \"sim\"\nport = " << sim.smpp_port() << "\nsystem_id = \"postino\"\n"
    << "[[route]]\nprefix = \"39333\"\nsmscs = [\"down\", \"sim\"]\n"
    << "[[route]]\nprefix = \"\"\nsmscs = [\"down\"]\n"
    << "[delivery]\nfailover_after_s = 1\nqueue_limit = 3\n";
  gateway gw({{"op", "pw-op", 100, {}}}, t.str(), 1);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client c(gw.smtp_port());
  ASSERT_EQ(login(c, "op", "pw-op").rfind("235 ", 0), 0u);
  for (int i = 0; i < 2; ++i) {
    c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+39333123456" + std::to_string(i) + ">\r\nDATA\r\nfailover " +
           std::to_string(i) + "\r\n.\r\n");
    for (int k = 0; k < 4; ++k) c.reply();
  }
  EXPECT_TRUE(wait_for([&] { return sim.stat("unique_submits") >= 2; }, 60s)) << sim.stats() << gw.last_log();
  // (Routed at once to the SMSC that is up, or moved there by failover.)

  for (int i = 0; i < 3; ++i) {
    c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+44791112345" + std::to_string(i) + ">\r\nDATA\r\nstuck " +
           std::to_string(i) + "\r\n.\r\n");
    EXPECT_EQ(c.reply().rfind("250 ", 0), 0u);
    for (int k = 0; k < 3; ++k) c.reply();
  }
  EXPECT_TRUE(wait_for([&] { return metric(gw, "postino_delivery_backlog") >= 3; }, 10s));
  c.send("MAIL FROM:<ACME>\r\n");
  EXPECT_EQ(c.reply(), "452 4.3.1 Insufficient system storage\r\n") << gw.last_log();
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

}  // namespace
}  // namespace postino::test
