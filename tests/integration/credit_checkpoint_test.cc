// The periodic checkpoint (DESIGN.md "Durability and credit"): balances,
// message states and each shard's journal position go to postino.db in one
// transaction, and start-up is the checkpoint plus a replay of what each
// journal holds after its position. Shown here against the real binary: the
// checkpoint catches up with acknowledged messages, a kill -9 between
// checkpoints loses nothing and counts nothing twice, start-up really reads
// the checkpoint (a hand-edited delta shows in the 235 line), and a journal
// that ends before its checkpoint position stops start-up with its name.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <regex>
#include <thread>

#include "harness.h"
#include "postino/credit.h"

namespace postino::test {
namespace {

constexpr std::int64_t kCredit = 10000;

// Sends `count` messages of 1..3 recipients; returns the sum of acknowledged prices.
std::int64_t send_messages(std::uint16_t port, int count, int salt) {
  raw_client c(port);
  if (login_ok(c, "ck", "pw-ck").empty()) return -1;
  std::int64_t acked = 0;
  for (int n = 0; n < count; ++n) {
    const int recipients = 1 + (n + salt) % 3;
    std::string batch = "MAIL FROM:<ACME>\r\n";
    for (int i = 0; i < recipients; ++i) batch += "RCPT TO:<+39333" + std::to_string(1000000 + i) + ">\r\n";
    c.send(batch + "DATA\r\nmessage " + std::to_string(salt) + "-" + std::to_string(n) + "\r\n.\r\n");
    for (int i = 0; i < recipients + 2; ++i) c.reply();
    if (c.reply().rfind("250 2.0.0 Message accepted", 0) == 0) acked += recipients;
  }
  return acked;
}

credit::checkpoint_store::loaded read_checkpoint(const std::string& db) {
  std::string error;
  credit::checkpoint_store::loaded out;
  auto store = credit::checkpoint_store::open(db, error);
  EXPECT_TRUE(store) << error;
  if (store) {
    EXPECT_TRUE(store->load(out, error)) << error;
  }
  return out;
}

void exec_sql(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* msg = nullptr;
  EXPECT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &msg), SQLITE_OK) << (msg ? msg : "");
  sqlite3_free(msg);
  sqlite3_close(h);
}

TEST(credit_checkpoint, checkpoint_plus_replay_is_the_exact_balance) {
  gateway gw({{"ck", "pw-ck", kCredit, {}}}, "checkpoint_interval = 1\n", 2);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  // Two sessions, so both shards are likely to journal something.
  std::int64_t first = send_messages(gw.smtp_port(), 12, 0) + send_messages(gw.smtp_port(), 12, 1);
  ASSERT_GT(first, 0);

  // The checkpoint catches up within a few intervals.
  credit::checkpoint_store::loaded ck;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::int64_t folded = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    ck = read_checkpoint(gw.database());
    folded = 0;
    for (const auto& [id, delta] : ck.balance) folded -= delta;
    if (folded == first && ck.messages_to_deliver == 24) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(folded, first) << "the checkpoint never covered the acknowledged messages";
  EXPECT_EQ(ck.messages_to_deliver, 24u) << "one row per accepted message, none final before delivery exists";
  EXPECT_FALSE(ck.sequence.empty());

  // More messages, then a crash, perhaps before the next checkpoint.
  std::int64_t second = send_messages(gw.smtp_port(), 7, 2);
  ASSERT_GT(second, 0);
  gw.kill_hard();
  ASSERT_TRUE(gw.start()) << gw.last_log();
  {
    raw_client c(gw.smtp_port());
    std::string line = login_ok(c, "ck", "pw-ck");
    EXPECT_EQ(credit_in(line), kCredit - first - second) << line;
  }
  // Checkpointed and replayed messages add up: nothing counted twice.
  std::smatch m;
  const std::string log = gw.last_log();
  std::string last_recovery;
  const std::regex recovered("recovered: (\\d+) message\\(s\\) in the checkpoint and (\\d+) replayed");
  for (std::sregex_iterator it(log.begin(), log.end(), recovered), end; it != end; ++it) last_recovery = (*it)[0];
  ASSERT_TRUE(std::regex_search(last_recovery, m, std::regex("(\\d+) message\\(s\\) in the checkpoint and (\\d+)")))
      << log;
  EXPECT_EQ(std::stoull(m[1]) + std::stoull(m[2]), 31u) << last_recovery;
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();

  // Start-up reads the checkpoint: an edited delta shows in the balance.
  exec_sql(gw.database(), "UPDATE checkpoint_balance SET journal_delta = journal_delta - 7");
  ASSERT_TRUE(gw.start()) << gw.last_log();
  {
    raw_client c(gw.smtp_port());
    std::string line = login_ok(c, "ck", "pw-ck");
    EXPECT_EQ(credit_in(line), kCredit - first - second - 7) << line;
  }
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();

  // A checkpoint position past a journal's end stops start-up, named.
  exec_sql(gw.database(), "UPDATE checkpoint_journal SET sequence = sequence + 1000000 WHERE shard = 0");
  EXPECT_FALSE(gw.start());
  EXPECT_TRUE(std::regex_search(gw.last_log(), std::regex("journal-0: ends at sequence \\d+ but the checkpoint covers it")))
      << gw.last_log();
}

}  // namespace
}  // namespace postino::test
