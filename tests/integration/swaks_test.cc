// swaks, a real SMTP client, against the running gateway: AUTH LOGIN and
// AUTH PLAIN, with and without pipelining. Each case checks the exact reply
// lines swaks saw and, after the gateway stops, that the journals hold exactly
// the messages that were acknowledged.
#include <gtest/gtest.h>

#include <regex>

#include "harness.h"

namespace postino::test {
namespace {

const account_spec kAccount{"myuserid", "mypassword", 1000, {}};

class swaks_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("swaks")) GTEST_SKIP() << "swaks not installed";
    gw_ = std::make_unique<gateway>(std::vector<account_spec>{kAccount});
    ASSERT_TRUE(gw_->start()) << gw_->last_log();
  }

  command_result swaks(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"swaks", "--server", "127.0.0.1", "--port",
                                     std::to_string(gw_->smtp_port()), "--ehlo", "Client",
                                     "--timeout", "20"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv, "", std::chrono::seconds(60));
  }

  static std::vector<std::string> queue_ids(const std::string& transcript) {
    std::vector<std::string> ids;
    std::regex re("<-  250 2\\.0\\.0 Message accepted for delivery to: [^\\r\\n]* queued as ([0-9A-F]+)");
    for (std::sregex_iterator it(transcript.begin(), transcript.end(), re), end; it != end; ++it)
      ids.push_back((*it)[1]);
    return ids;
  }

  std::unique_ptr<gateway> gw_;
};

TEST_F(swaks_test, auth_login_sends_one_message) {
  auto r = swaks({"--auth", "LOGIN", "--auth-user", "myuserid", "--auth-password", "mypassword",
                  "-f", "00393401234567", "-t", "00393331234567",
                  "--data", "Test messaggio SMS via SMTP\\n"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("<-  220 postino.test ESMTP Service ready. Connection "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<-  250-postino.test Requested okay, completed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<-  250-AUTH LOGIN PLAIN"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<-  334 VXNlcm5hbWU6"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<-  334 UGFzc3dvcmQ6"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<-  235 2.7.0 Authentication successful. CREDIT: 1000 ID ACCOUNT: "),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<-  250 2.1.0 +393401234567 ...Sender Ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<-  250 2.1.5 +393331234567 ...Recipient Ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<-  354 Enter Text Message, end with <CRLF>.<CRLF>"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<-  221 2.0.0 SMSC SMTP Server closing connection."), std::string::npos) << r.out;
  auto ids = queue_ids(r.out);
  ASSERT_EQ(ids.size(), 1u) << r.out;

  ASSERT_EQ(gw_->stop(), 0) << gw_->last_log();
  EXPECT_EQ(journal_queue_ids(gw_->data_dir()), ids);
  auto messages = messages_in(read_journals(gw_->data_dir()));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].tx.originator, "+393401234567") << "the 00 form goes out as +";
  EXPECT_EQ(messages[0].tx.recipients, std::vector<std::string>{"+393331234567"});
  // swaks ends --data with blank lines of its own; the raw-text clean-up drops them later.
  EXPECT_EQ(messages[0].tx.body.rfind("Test messaggio SMS via SMTP\r\n", 0), 0u);
  EXPECT_EQ(messages[0].tx.body.find_first_not_of("\r\n", 28), std::string::npos) << messages[0].tx.body;
  EXPECT_EQ(messages[0].tx.price, 1);
}

TEST_F(swaks_test, auth_plain_pipelined_three_messages) {
  std::vector<std::string> all_ids;
  for (int i = 0; i < 3; ++i) {
    auto r = swaks({"--pipeline", "--auth", "PLAIN", "--auth-user", "myuserid", "--auth-password",
                    "mypassword", "-f", "ACME", "-t", "00393331234567,393471234567,+393331234567@smtp.example.com",
                    "--data", "pipelined " + std::to_string(i) + "\\n"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("<-  250 2.1.0 ACME ...Sender Ok"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("<-  250 2.1.5 +393471234567 ...Recipient Ok"), std::string::npos) << r.out;
    // The third address is a duplicate of the first once normalized: 250, counted once.
    auto ids = queue_ids(r.out);
    ASSERT_EQ(ids.size(), 1u) << r.out;
    EXPECT_NE(r.out.find("Message accepted for delivery to: +393331234567, +393471234567 queued as"),
              std::string::npos) << r.out;
    all_ids.push_back(ids[0]);
  }
  ASSERT_EQ(gw_->stop(), 0) << gw_->last_log();
  auto messages = messages_in(read_journals(gw_->data_dir()));
  ASSERT_EQ(messages.size(), 3u);
  std::int64_t debited = 0;
  for (const auto& m : messages) {
    EXPECT_EQ(m.tx.recipients.size(), 2u);
    debited += m.tx.price;
  }
  EXPECT_EQ(debited, 6);
  std::sort(all_ids.begin(), all_ids.end());
  EXPECT_EQ(std::unique(all_ids.begin(), all_ids.end()), all_ids.end()) << "queue ids must be unique";
  EXPECT_EQ(journal_queue_ids(gw_->data_dir()), all_ids);
}

TEST_F(swaks_test, wrong_password_is_refused) {
  auto r = swaks({"--auth", "LOGIN", "--auth-user", "myuserid", "--auth-password", "wrong",
                  "-f", "ACME", "-t", "00393331234567", "--data", "x\\n"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("<** 535 5.7.8 Authentication credentials invalid"), std::string::npos) << r.out;
  ASSERT_EQ(gw_->stop(), 0) << gw_->last_log();
  EXPECT_TRUE(messages_in(read_journals(gw_->data_dir())).empty());
}

}  // namespace
}  // namespace postino::test
