// The per-account rate limit against the binary (PROTOCOL.md 5): an account
// limited to 5 messages per second gets `451 4.7.1` at MAIL once its tokens
// (a one-second burst plus the refill) are spent, never more accepted than
// the rate allows for the time taken, and MAIL is accepted again after a
// pause; an account without a limit is never refused. postino-ctl has no flag
// for the limit yet, so the test sets the column with python3's sqlite3
// module on the database before the gateway starts. Owns only its sockets.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

struct tally {
  int accepted = 0;
  int refused = 0;
  int other = 0;
};

// Sends `n` pipelined MAIL+RSET pairs and sorts the MAIL replies.
tally mails(raw_client& c, int n) {
  std::string batch;
  for (int i = 0; i < n; ++i) batch += "MAIL FROM:<ACME>\r\nRSET\r\n";
  c.send(batch);
  tally t;
  for (int i = 0; i < n; ++i) {
    const std::string mail = c.reply(std::chrono::seconds(10));
    if (mail.rfind("250 2.1.0 ", 0) == 0) ++t.accepted;
    else if (mail == "451 4.7.1 Rate limit exceeded, try again later\r\n") ++t.refused;
    else ++t.other;
    if (c.reply(std::chrono::seconds(10)) != "250 2.0.0 OK\r\n") ++t.other;
  }
  return t;
}

TEST(rate_limit, mail_is_refused_over_the_rate_and_accepted_after_a_pause) {
  gateway gw({{"limited", "pw-limited", 1000, {"--default-originator", "ACME"}},
              {"free", "pw-free", 1000, {"--default-originator", "ACME"}}},
             "", 2);
  const std::string set_limit =
      "import sqlite3, sys\n"
      "db = sqlite3.connect(sys.argv[1])\n"
      "db.execute(\"UPDATE accounts SET max_messages_per_second = 5 WHERE username = 'limited'\")\n"
      "db.commit()\n";
  command_result set = run_command({"python3", "-c", set_limit, gw.database()});
  ASSERT_EQ(set.exit_code, 0) << set.out << set.err;
  ASSERT_TRUE(gw.start()) << gw.last_log();

  raw_client c(gw.smtp_port());
  ASSERT_FALSE(login_ok(c, "limited", "pw-limited").empty());
  const auto begin = std::chrono::steady_clock::now();
  const tally t = mails(c, 20);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  std::printf("limited account: %d accepted, %d refused in %.3f s\n", t.accepted, t.refused, seconds);
  EXPECT_EQ(t.other, 0);
  EXPECT_GE(t.refused, 1);
  EXPECT_GE(t.accepted, 1);
  // A one-second burst of 5 plus 5 per second since: no more than that.
  EXPECT_LE(t.accepted, 5 + static_cast<int>(5 * seconds) + 1) << "in " << seconds << " s";

  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  c.send("MAIL FROM:<ACME>\r\n");
  EXPECT_EQ(c.reply().rfind("250 2.1.0 ", 0), 0u);
  c.send("QUIT\r\n");
  EXPECT_EQ(c.reply().rfind("221 ", 0), 0u);

  // The limit is the account's: another one on the same gateway is not held.
  raw_client f(gw.smtp_port());
  ASSERT_FALSE(login_ok(f, "free", "pw-free").empty());
  const tally u = mails(f, 20);
  EXPECT_EQ(u.accepted, 20);
  EXPECT_EQ(u.refused, 0);
  EXPECT_EQ(u.other, 0);

  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

}  // namespace
}  // namespace postino::test
