// Many sessions on every shard spend one account at once (PROTOCOL.md 4,
// DESIGN.md "Credit leases"). Each repetition takes a fresh account with a
// small balance B; sessions spread over all shards (checked against the
// gateway's per-shard session gauge) pipeline messages of random price
// (1..5 recipients at 1 unit) until the gateway refuses them for credit (452
// at RCPT or 554 5.7.1 at the end of DATA). Then, every time:
//   0 <= B - (sum of acknowledged prices) < the smallest price refused,
// the 235 line reports exactly what is left, and after the run the journals
// hold exactly the acknowledged messages. The run bounds its own time.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <regex>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

constexpr unsigned kShards = 3;
constexpr int kRepetitions = 50;
constexpr int kSessionsWanted = 6;
constexpr int kSessionsMax = 40;  // opened until every shard has one
constexpr auto kDeadline = std::chrono::seconds(110);

std::string recipient(int i) { return "+39333" + std::to_string(1000000 + i); }

struct outcome {
  std::int64_t acked = 0;  // sum of prices acknowledged with 250
  std::int64_t smallest_refused = std::numeric_limits<std::int64_t>::max();
  bool refused = false;
  std::string failure;  // a reply the test did not expect
};

std::string batch(int recipients, int base) {
  std::string b = "MAIL FROM:<ACME>\r\n";
  for (int i = 0; i < recipients; ++i) b += "RCPT TO:<" + recipient(base + i) + ">\r\n";
  return b + "DATA\r\n";
}

// One session spending until refused. The next transaction's MAIL, RCPTs and
// DATA ride in the same write as the previous message's text and terminator.
void spend(raw_client& c, unsigned seed, outcome& out) {
  std::mt19937 rng(seed);
  int recipients = 1 + static_cast<int>(rng() % 5);
  c.send(batch(recipients, 0));
  for (int round = 0; round < 10000; ++round) {
    // Replies to MAIL, each RCPT, DATA.
    std::string mail = c.reply();
    if (mail.rfind("250 ", 0) != 0) {
      out.failure = "MAIL: " + mail;
      return;
    }
    int accepted = 0;
    for (int i = 0; i < recipients; ++i) {
      std::string r = c.reply();
      if (r.rfind("250 ", 0) == 0) {
        ++accepted;
      } else if (r.rfind("452 4.2.2 Insufficient credit", 0) == 0) {
        out.refused = true;
        out.smallest_refused = std::min<std::int64_t>(out.smallest_refused, 1);
      } else {
        out.failure = "RCPT: " + r;
        return;
      }
    }
    std::string data = c.reply();
    if (accepted == 0) {
      if (data.rfind("503 ", 0) != 0) out.failure = "DATA without recipients: " + data;
      return;
    }
    if (data.rfind("354 ", 0) != 0) {
      out.failure = "DATA: " + data;
      return;
    }
    const int next = 1 + static_cast<int>(rng() % 5);
    // Once refused, no next transaction: the session ends after this one.
    std::string text = "nonce " + std::to_string(seed) + "-" + std::to_string(round) + "\r\n.\r\n";
    if (!out.refused) text += batch(next, round * 10);
    c.send(text);
    std::string end = c.reply();
    if (end.rfind("250 2.0.0 Message accepted", 0) == 0) {
      out.acked += accepted;
    } else {
      std::smatch m;
      static const std::regex refused("^554 5\\.7\\.1 Insufficient credit: need (\\d+), available (\\d+)\r\n$");
      if (!std::regex_match(end, m, refused)) {
        out.failure = "end of DATA: " + end;
        return;
      }
      out.refused = true;
      std::int64_t need = std::stoll(m[1]), available = std::stoll(m[2]);
      if (need != accepted || available >= need)
        out.failure = "inconsistent refusal: " + end + " for " + std::to_string(accepted) + " recipients";
      out.smallest_refused = std::min(out.smallest_refused, need);
      return;  // the pipelined next transaction is dropped with the connection
    }
    if (out.refused) return;
    recipients = next;
  }
  out.failure = "never refused";
}

TEST(credit_concurrency, sessions_on_every_shard_never_overspend_one_account) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  std::mt19937 rng(20240601);
  std::vector<account_spec> accounts;
  std::vector<std::int64_t> balances;
  for (int i = 0; i < kRepetitions; ++i) {
    balances.push_back(10 + static_cast<std::int64_t>(rng() % 40));
    accounts.push_back({"spender" + std::to_string(i), "pw-" + std::to_string(i), balances.back(), {}});
  }
  gateway gw(accounts, "", kShards);
  ASSERT_TRUE(gw.start()) << gw.last_log();

  std::vector<std::int64_t> acked_total(kRepetitions, 0);
  int repetitions_done = 0;
  for (int rep = 0; rep < kRepetitions && std::chrono::steady_clock::now() < deadline; ++rep) {
    SCOPED_TRACE("repetition " + std::to_string(rep));
    const std::string& user = accounts[rep].username;
    const std::string& pass = accounts[rep].password;
    const std::int64_t balance = balances[rep];

    // Open sessions until every shard has at least one of them.
    std::vector<std::unique_ptr<raw_client>> sessions;
    auto every_shard_busy = [&] {
      auto m = gw.metrics();
      for (unsigned s = 0; s < kShards; ++s)
        if (m["postino_sessions_active{shard=\"" + std::to_string(s) + "\"}"] < 1) return false;
      return true;
    };
    while (static_cast<int>(sessions.size()) < kSessionsMax &&
           (static_cast<int>(sessions.size()) < kSessionsWanted || !every_shard_busy())) {
      sessions.push_back(std::make_unique<raw_client>(gw.smtp_port()));
      std::string line = login_ok(*sessions.back(), user, pass);
      ASSERT_FALSE(line.empty()) << gw.last_log();
      ASSERT_EQ(credit_in(line), balance) << line;
    }
    ASSERT_TRUE(every_shard_busy()) << sessions.size() << " sessions, some shard has none";

    std::vector<outcome> outcomes(sessions.size());
    std::vector<std::thread> threads;
    std::atomic<bool> go{false};
    for (std::size_t i = 0; i < sessions.size(); ++i)
      threads.emplace_back([&, i] {
        while (!go.load()) std::this_thread::yield();
        spend(*sessions[i], static_cast<unsigned>(rep * 1000 + i), outcomes[i]);
      });
    go = true;
    for (auto& t : threads) t.join();

    std::int64_t acked = 0, smallest = std::numeric_limits<std::int64_t>::max();
    for (const auto& o : outcomes) {
      ASSERT_TRUE(o.failure.empty()) << o.failure;
      ASSERT_TRUE(o.refused);
      acked += o.acked;
      smallest = std::min(smallest, o.smallest_refused);
    }
    acked_total[rep] = acked;
    EXPECT_GE(balance - acked, 0) << "overspent: B " << balance << ", acked " << acked;
    EXPECT_LT(balance - acked, smallest) << "refused " << smallest << " while " << balance - acked << " was left";
    sessions.clear();

    // The 235 line reports what is left, at once.
    raw_client check(gw.smtp_port());
    std::string line = login_ok(check, user, pass);
    EXPECT_EQ(credit_in(line), balance - acked) << line;
    ++repetitions_done;
  }
  EXPECT_EQ(repetitions_done, kRepetitions) << "ran out of time";
  // Refusals came after recalls: the leases were really spread and pulled back.
  auto m = gw.metrics();
  EXPECT_GT(m["postino_credit_lease_recalls_total"], 0) << "no lease was ever recalled";
  std::printf("lease requests %.0f, recalls %.0f\n", m["postino_credit_lease_requests_total"],
              m["postino_credit_lease_recalls_total"]);
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();

  // The journals hold exactly what was acknowledged, per account.
  std::map<account_id, std::int64_t> journaled;
  for (const auto& r : messages_in(read_journals(gw.data_dir()))) journaled[r.tx.account] += r.tx.price;
  std::int64_t journal_sum = 0, acked_sum = 0;
  for (const auto& [id, sum] : journaled) journal_sum += sum;
  for (auto a : acked_total) acked_sum += a;
  EXPECT_EQ(journal_sum, acked_sum);
  // Accounts are numbered in creation order, so each repetition's account can
  // be matched by its sorted position.
  std::vector<std::int64_t> per_account;
  for (const auto& [id, sum] : journaled) per_account.push_back(sum);
  std::vector<std::int64_t> expected;
  for (auto a : acked_total)
    if (a > 0) expected.push_back(a);
  EXPECT_EQ(per_account, expected);
}

}  // namespace
}  // namespace postino::test
