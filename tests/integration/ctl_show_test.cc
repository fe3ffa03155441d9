// postino-ctl account show / list and message show against the real
// gateway (issue 13 items 8 and 10): the credit they print is the spendable
// credit the 235 line reports, live through the admin endpoint, from the
// final checkpoint after a clean stop, and from the checkpoint plus the
// journal's uncovered records after a crash; message show prints what was
// sent (originator, text or an MMS's parts, segments, price per recipient
// when prefix prices differ), and the index's text retention clears the
// text while the states stay. The test owns its gateways and clients;
// every wait is bounded (the harness's timeouts, the polls' deadlines).
#include <gtest/gtest.h>

#include <regex>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

constexpr auto poll_limit = std::chrono::seconds(20);

// Sends one message; returns its queue id, "" when it was not accepted.
std::string send_one(raw_client& c, const std::string& from, const std::vector<std::string>& to,
                     const std::string& body) {
  std::string batch = "MAIL FROM:<" + from + ">\r\n";
  for (const auto& r : to) batch += "RCPT TO:<" + r + ">\r\n";
  c.send(batch + "DATA\r\n" + body + "\r\n.\r\n");
  for (std::size_t i = 0; i < to.size() + 2; ++i) c.reply();
  const std::string last = c.reply();
  std::smatch m;
  if (!std::regex_search(last, m, std::regex("queued as ([0-9A-F]{16})"))) {
    ADD_FAILURE() << "not accepted: " << last;
    return "";
  }
  return m[1].str();
}

std::int64_t credit_of_new_session(const gateway& gw, const std::string& user, const std::string& password) {
  raw_client c(gw.smtp_port());
  return credit_in(login_ok(c, user, password));
}

// The value of the "credit: " line of account show ("" without one).
std::string credit_line(const std::string& out) {
  std::smatch m;
  return std::regex_search(out, m, std::regex("\ncredit: ([^\n]*)\n")) ? m[1].str() : "";
}

// message show, again until `wanted` appears (the index is written every
// checkpoint interval) or the poll limit passes.
command_result show_until(const gateway& gw, const std::string& id, const std::string& wanted) {
  const auto until = std::chrono::steady_clock::now() + poll_limit;
  command_result r = gw.ctl({"message", "show", id});
  while ((r.exit_code != 0 || r.out.find(wanted) == std::string::npos) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    r = gw.ctl({"message", "show", id});
  }
  return r;
}

// The CREDIT column of `account list` for `user`.
std::string listed_credit(const std::string& out, const std::string& user) {
  std::smatch m;
  return std::regex_search(out, m, std::regex("\\n *\\d+  " + user + " +ACTIVE +(\\d+)")) ? m[1].str() : "";
}

// No periodic checkpoint runs during the test (the interval is an hour):
// only the clean stop's final checkpoint can make the offline figure right.
TEST(ctl_show, account_credit_is_the_spendable_credit_live_after_a_clean_stop_and_after_a_crash) {
  gateway gw({{"ck", "pw-ck", 10000, {}}}, "checkpoint_interval = 3600\n", 2);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  std::int64_t spent = 0;
  {
    raw_client c(gw.smtp_port());
    ASSERT_FALSE(login_ok(c, "ck", "pw-ck").empty());
    for (int n = 0; n < 6; ++n) {
      std::vector<std::string> to;
      for (int i = 0; i <= n % 3; ++i) to.push_back("+39333100000" + std::to_string(i));
      if (!send_one(c, "ACME", to, "message " + std::to_string(n)).empty()) spent += static_cast<std::int64_t>(to.size());
    }
  }
  ASSERT_EQ(spent, 12);
  const std::int64_t live = credit_of_new_session(gw, "ck", "pw-ck");
  EXPECT_EQ(live, 10000 - spent);

  const std::string config = gw.data_dir() + "/postino.toml";
  auto shown = gw.ctl({"-c", config, "account", "show", "ck"});
  EXPECT_EQ(shown.exit_code, 0) << shown.out << shown.err;
  std::printf("account show (running):\n%s", shown.out.c_str());
  EXPECT_EQ(credit_line(shown.out), std::to_string(live) + " (live)") << shown.out;
  auto listed = gw.ctl({"-c", config, "account", "list"});
  EXPECT_EQ(listed_credit(listed.out, "ck"), std::to_string(live)) << listed.out;
  // Without the endpoint the running gateway's journal is read instead.
  auto unlive = gw.ctl({"account", "show", "ck"});
  EXPECT_EQ(credit_line(unlive.out), std::to_string(live) + " (checkpoint + 6 journal record(s) past it)")
      << unlive.out << unlive.err;

  // A clean stop leaves the checkpoint covering every journal.
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  auto offline = gw.ctl({"account", "show", "ck"});
  EXPECT_EQ(offline.exit_code, 0) << offline.out << offline.err;
  std::printf("account show (after a clean stop):\n%s", offline.out.c_str());
  EXPECT_EQ(credit_line(offline.out), std::to_string(live)) << offline.out;
  auto offline_list = gw.ctl({"account", "list"});
  EXPECT_EQ(listed_credit(offline_list.out, "ck"), std::to_string(live)) << offline_list.out;

  // A crash: the figure adds the journal's uncovered records, and says so.
  ASSERT_TRUE(gw.start()) << gw.last_log();
  EXPECT_EQ(credit_of_new_session(gw, "ck", "pw-ck"), live);
  {
    raw_client c(gw.smtp_port());
    ASSERT_FALSE(login_ok(c, "ck", "pw-ck").empty());
    EXPECT_FALSE(send_one(c, "ACME", {"+393331000000", "+393331000001"}, "after the checkpoint").empty());
  }
  gw.kill_hard();
  auto crashed = gw.ctl({"account", "show", "ck"});
  std::printf("account show (after a crash):\n%s", crashed.out.c_str());
  EXPECT_EQ(credit_line(crashed.out), std::to_string(live - 2) + " (checkpoint + 1 journal record(s) past it)")
      << crashed.out;
  ASSERT_TRUE(gw.start()) << gw.last_log();
  EXPECT_EQ(credit_of_new_session(gw, "ck", "pw-ck"), live - 2);
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
}

constexpr const char* kMmsBody =
    "From: <+393401234567@mms.example.net>\r\n"
    "To: <+393331234567@mms.example.net>\r\n"
    "Subject: auguri\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Auguri da Roma!\r\n"
    "--b1\r\n"
    "Content-Type: image/jpeg\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8U\r\n"
    "--b1--";

TEST(ctl_show, message_show_prints_what_was_sent) {
  gateway gw({{"ms", "pw-ms", 1000, {"--mms-enabled", "yes", "--mms-price", "5"}}}, "", 2);
  auto priced = gw.ctl({"price", "set", "--account", "ms", "+44", "3"});
  ASSERT_EQ(priced.exit_code, 0) << priced.out << priced.err;
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client c(gw.smtp_port());
  ASSERT_FALSE(login_ok(c, "ms", "pw-ms").empty());
  const std::string sms = send_one(c, "ACME", {"+393331234567", "+447911123456"}, "Ciao, il caff\xC3\xA8 costa 2\r\nciao");
  const std::string mms = send_one(c, "+393401234567", {"+393331234567"}, kMmsBody);
  ASSERT_FALSE(sms.empty());
  ASSERT_FALSE(mms.empty());

  auto shown = show_until(gw, sms, "originator: ");
  std::printf("message show (SMS):\n%s", shown.out.c_str());
  EXPECT_NE(shown.out.find("\noriginator: ACME\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\ntext: Ciao, il caff\xC3\xA8 costa 2\\nciao\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\nencoding: GSM 03.38\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\nsegments: 1\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\nprice: 4\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\nprice per recipient: +393331234567 1, +447911123456 3\n"), std::string::npos)
      << shown.out;
  EXPECT_NE(shown.out.find("recipient 0 +393331234567 queued"), std::string::npos) << shown.out;

  auto shown_mms = show_until(gw, mms, "parts: ");
  std::printf("message show (MMS):\n%s", shown_mms.out.c_str());
  EXPECT_NE(shown_mms.out.find("\noriginator: +393401234567\n"), std::string::npos) << shown_mms.out;
  EXPECT_NE(shown_mms.out.find("\ntext: Auguri da Roma!\n"), std::string::npos) << shown_mms.out;
  EXPECT_NE(shown_mms.out.find("\nparts: 2\n  part 0 text/plain 15 bytes\n  part 1 image/jpeg 51 bytes\n"),
            std::string::npos)
      << shown_mms.out;
  EXPECT_NE(shown_mms.out.find("\nprice: 5\n"), std::string::npos) << shown_mms.out;
  EXPECT_EQ(shown_mms.out.find("price per recipient"), std::string::npos) << shown_mms.out;
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
}

TEST(ctl_show, text_retention_clears_the_text_and_keeps_the_states) {
  gateway gw({{"rt", "pw-rt", 1000, {}}}, "[index]\ntext_retention_days = 0\n", 2);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client c(gw.smtp_port());
  ASSERT_FALSE(login_ok(c, "rt", "pw-rt").empty());
  const std::string id = send_one(c, "ACME", {"+393331234567"}, "a secret");
  ASSERT_FALSE(id.empty());
  auto shown = show_until(gw, id, "text: (cleared");
  std::printf("message show (text retention 0):\n%s", shown.out.c_str());
  EXPECT_NE(shown.out.find("\ntext: (cleared"), std::string::npos) << shown.out;
  EXPECT_EQ(shown.out.find("a secret"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\noriginator: ACME\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\nstate: queued\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("recipient 0 +393331234567 queued"), std::string::npos) << shown.out;
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
}

TEST(ctl_show, a_bad_retention_names_the_file_line_and_key) {
  gateway gw({}, "[index]\ntext_retention_days = -1\n", 1);
  EXPECT_FALSE(gw.start());
  EXPECT_NE(gw.last_log().find("postino.toml:"), std::string::npos) << gw.last_log();
  EXPECT_NE(gw.last_log().find("index.text_retention_days"), std::string::npos) << gw.last_log();
}

}  // namespace
}  // namespace postino::test
