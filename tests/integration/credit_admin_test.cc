// The admin endpoint's live account operations against the running gateway:
// a top-up (journaled on the home shard, durable before it answers) lets a
// session that got 452 go on and survives a restart; account show reports
// the balance and the leases outstanding; suspend and resume reach the next
// login on every shard; bad requests are refused with a reason. Every call
// carries the gateway's admin token (gateway::admin).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "harness.h"

namespace postino::test {
namespace {

// A number field of a JSON answer, or -1.
std::int64_t field(const std::string& json, const std::string& name) {
  const auto j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object() || !j.contains(name) || !j[name].is_number_integer()) return -1;
  return j[name].get<std::int64_t>();
}

std::string text_field(const std::string& json, const std::string& name) {
  const auto j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object() || !j.contains(name) || !j[name].is_string()) return "";
  return j[name].get<std::string>();
}

TEST(credit_admin, top_up_show_suspend_and_resume_on_the_running_gateway) {
  gateway gw({{"op", "pw-op", 2, {}}, {"other", "pw-other", 50, {}}}, "", 2);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  ASSERT_NE(gw.admin_port(), 0);
  auto http = [&gw](const std::string& method, const std::string& target) { return gw.admin(method, target); };

  // Spend the 2 units, then RCPT is refused for credit.
  raw_client c(gw.smtp_port());
  ASSERT_EQ(login(c, "op", "pw-op").rfind("235 ", 0), 0u);
  c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331000001>\r\nRCPT TO:<+393331000002>\r\nDATA\r\nfirst\r\n.\r\n");
  for (int i = 0; i < 4; ++i) c.reply();
  EXPECT_EQ(c.reply().rfind("250 2.0.0 Message accepted", 0), 0u);
  c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331000003>\r\n");
  EXPECT_EQ(c.reply().rfind("250 ", 0), 0u);
  EXPECT_EQ(c.reply(), "452 4.2.2 Insufficient credit\r\n");

  http_reply shown = http("GET", "/accounts/op");
  EXPECT_EQ(shown.status, 200) << shown.body;
  EXPECT_EQ(field(shown.body, "balance"), 0) << shown.body;
  EXPECT_EQ(text_field(shown.body, "status"), "ACTIVE") << shown.body;

  // A top-up lets the same session go on.
  http_reply added = http("POST", "/accounts/op/credit?amount=5");
  EXPECT_EQ(added.status, 200) << added.body;
  EXPECT_EQ(field(added.body, "balance"), 5) << added.body;
  c.send("RCPT TO:<+393331000003>\r\nDATA\r\nsecond\r\n.\r\n");
  EXPECT_EQ(c.reply().rfind("250 ", 0), 0u);
  EXPECT_EQ(c.reply().rfind("354 ", 0), 0u);
  EXPECT_EQ(c.reply().rfind("250 2.0.0 Message accepted", 0), 0u);

  // Show by id, with the leases outstanding.
  const std::int64_t id = field(added.body, "id");
  shown = http("GET", "/accounts/" + std::to_string(id));
  EXPECT_EQ(shown.status, 200) << shown.body;
  EXPECT_EQ(field(shown.body, "balance"), 4) << shown.body;
  EXPECT_GE(field(shown.body, "leased"), 0) << shown.body;
  EXPECT_GE(field(shown.body, "lease_holders"), 0) << shown.body;
  EXPECT_EQ(field(shown.body, "messages_since_start"), 2) << shown.body;

  // Suspend reaches the next login (cached credentials are dropped).
  EXPECT_EQ(http("POST", "/accounts/op/suspend").status, 200);
  expect_suspended_on_every_shard(gw, "op", "pw-op");
  EXPECT_EQ(http("POST", "/accounts/op/resume").status, 200);
  {
    raw_client s(gw.smtp_port());
    std::string line = login(s, "op", "pw-op");
    EXPECT_NE(line.find("STATUS: ACTIVE"), std::string::npos) << line;
    EXPECT_NE(line.find("CREDIT: 4 "), std::string::npos) << line;
  }

  // Refusals.
  EXPECT_EQ(http("POST", "/accounts/op/credit?amount=0").status, 400);
  EXPECT_EQ(http("POST", "/accounts/op/credit?amount=-3").status, 400);
  EXPECT_EQ(http("POST", "/accounts/op/credit").status, 400);
  EXPECT_EQ(http("GET", "/accounts/nobody").status, 404);
  EXPECT_EQ(http("POST", "/accounts/op").status, 405);
  EXPECT_EQ(http("GET", "/accounts/op/credit?amount=1").status, 405);
  EXPECT_EQ(http("POST", "/accounts/op/explode").status, 404);

  // The top-up is in the journal: it survives a crash.
  gw.kill_hard();
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client after(gw.smtp_port());
  std::string line = login(after, "op", "pw-op");
  EXPECT_NE(line.find("CREDIT: 4 "), std::string::npos) << line;
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  std::int64_t topped = 0;
  for (const auto& r : read_journals(gw.data_dir()))
    if (r.type == spool::record_type::top_up) topped += r.amount;
  EXPECT_EQ(topped, 5);
}

}  // namespace
}  // namespace postino::test
