// postino-ctl against a running gateway: with the database lock held, credit
// add, account suspend and account resume go through the admin endpoint
// (named by --admin or found through -c's ports file; the bearer token read
// from the data dir, that of --database or -c's data_dir) and reach the live
// sessions; account show adds the live balance; other writes, and any write
// with no endpoint known, still refuse with exit 3. The test owns its gateway
// and clients; every wait is bounded by the harness's timeouts.
#include <gtest/gtest.h>

#include "harness.h"

namespace postino::test {
namespace {

constexpr auto ctl_timeout = std::chrono::seconds(30);

command_result ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {binary_path("postino-ctl")};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, "", ctl_timeout);
}

TEST(ctl_live, credit_suspend_resume_and_show_through_the_admin_endpoint) {
  gateway gw({{"op", "pw-op", 0, {}}}, "", 2);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  ASSERT_NE(gw.admin_port(), 0);
  const std::string db = gw.database();
  const std::string admin = "127.0.0.1:" + std::to_string(gw.admin_port());

  raw_client c(gw.smtp_port());
  ASSERT_EQ(login(c, "op", "pw-op").rfind("235 ", 0), 0u);
  c.send("MAIL FROM:<ACME>\r\n");
  EXPECT_EQ(c.reply().rfind("250 ", 0), 0u);
  c.send("RCPT TO:<+393331000001>\r\n");
  EXPECT_EQ(c.reply(), "452 4.2.2 Insufficient credit\r\n");

  // No endpoint known: today's refusal.
  auto refused = ctl({"--database", db, "credit", "add", "op", "5"});
  EXPECT_EQ(refused.exit_code, 3) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("holds"), std::string::npos) << refused.err;

  // The live top-up lets the same session go on.
  auto added = ctl({"--database", db, "--admin", admin, "credit", "add", "op", "5"});
  EXPECT_EQ(added.exit_code, 0) << added.out << added.err;
  EXPECT_NE(added.out.find("credit of op is now 5"), std::string::npos) << added.out;
  c.send("RCPT TO:<+393331000001>\r\n");
  EXPECT_EQ(c.reply().rfind("250 ", 0), 0u);
  c.send("DATA\r\n");
  EXPECT_EQ(c.reply().rfind("354 ", 0), 0u);
  c.send("hello\r\n.\r\n");
  EXPECT_EQ(c.reply().rfind("250 2.0.0 Message accepted", 0), 0u);

  // The endpoint found through the gateway's config (its ports file); an id works too.
  const std::string config = gw.data_dir() + "/postino.toml";
  auto shown = ctl({"-c", config, "account", "show", "op"});
  EXPECT_EQ(shown.exit_code, 0) << shown.out << shown.err;
  EXPECT_NE(shown.out.find("\nbalance: 4\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\nmessages since start: 1\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\nleased: "), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\nlease holders: "), std::string::npos) << shown.out;
  auto by_id = ctl({"-c", config, "credit", "add", "1", "2"});
  EXPECT_EQ(by_id.exit_code, 0) << by_id.out << by_id.err;
  EXPECT_NE(by_id.out.find("credit of op is now 6"), std::string::npos) << by_id.out;

  // Other writes still refuse, endpoint or not.
  auto password = ctl({"--database", db, "--admin", admin, "account", "password", "op", "--password", "x"});
  EXPECT_EQ(password.exit_code, 3) << password.out << password.err;
  // An unknown account is found missing locally; an unreachable endpoint fails.
  EXPECT_EQ(ctl({"--database", db, "--admin", admin, "credit", "add", "nobody", "1"}).exit_code, 2);
  EXPECT_EQ(ctl({"--database", db, "--admin", "127.0.0.1:1", "credit", "add", "op", "1"}).exit_code, 1);

  // Suspend reaches the next login on every shard.
  auto suspended = ctl({"--database", db, "--admin", admin, "account", "suspend", "op"});
  EXPECT_EQ(suspended.exit_code, 0) << suspended.out << suspended.err;
  expect_suspended_on_every_shard(gw, "op", "pw-op");
  auto resumed = ctl({"--database", db, "--admin", admin, "account", "resume", "op"});
  EXPECT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  {
    raw_client s(gw.smtp_port());
    std::string line = login(s, "op", "pw-op");
    EXPECT_NE(line.find("STATUS: ACTIVE"), std::string::npos) << line;
  }

  // Without the gateway, the direct path is back.
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  auto offline = ctl({"--database", db, "--admin", admin, "account", "suspend", "op"});
  EXPECT_EQ(offline.exit_code, 0) << offline.out << offline.err;
  auto offline_show = ctl({"--database", db, "account", "show", "op"});
  EXPECT_NE(offline_show.out.find("status: SUSPENDED"), std::string::npos) << offline_show.out;
  EXPECT_EQ(offline_show.out.find("\nbalance: "), std::string::npos) << offline_show.out;
}

}  // namespace
}  // namespace postino::test
