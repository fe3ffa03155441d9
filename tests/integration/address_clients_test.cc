// The address forms real clients produce (issue 13 items 5 and 6), against
// the running gateway: swaks and curl pass a command line's "Name <addr>"
// through into RCPT TO (swaks as `<Name <addr>>`, curl 7.88 as `<Name <addr>`),
// and a national number without default_country gets the 553 that says it
// needs its country code. Each case checks what the client sent (its
// verbose transcript), the reply, and what the journal holds after a stop.
// A missing client skips; every command is bounded by its own timeout.
#include <gtest/gtest.h>

#include <fstream>

#include "harness.h"

namespace postino::test {
namespace {

const account_spec kAccount{"myuserid", "mypassword", 1000, {"--default-originator", "ACME"}};

class address_clients_test : public ::testing::Test {
 protected:
  void start() {
    gw_ = std::make_unique<gateway>(std::vector<account_spec>{kAccount});
    ASSERT_TRUE(gw_->start()) << gw_->last_log();
  }

  command_result swaks(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"swaks", "--server", "127.0.0.1", "--port", std::to_string(gw_->smtp_port()),
                                     "--ehlo", "Client", "--timeout", "20", "--auth", "LOGIN", "--auth-user",
                                     "myuserid", "--auth-password", "mypassword"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv, "", std::chrono::seconds(60));
  }

  // The journal's messages once the gateway stopped cleanly.
  std::vector<spool::record> stop_and_read() {
    EXPECT_EQ(gw_->stop(), 0) << gw_->last_log();
    return messages_in(read_journals(gw_->data_dir()));
  }

  std::unique_ptr<gateway> gw_;
};

TEST_F(address_clients_test, swaks_display_name_in_to) {
  if (!have_program("swaks")) GTEST_SKIP() << "swaks not installed";
  start();
  auto r = swaks({"-f", "ACME", "--to", "Mario Rossi <00393331234567@host.example>", "--data", "Ciao\\n"});
  // What swaks sent: the display name inside the brackets.
  EXPECT_NE(r.out.find(" -> RCPT TO:<Mario Rossi <00393331234567@host.example>>"), std::string::npos) << r.out;
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("<-  250 2.1.5 +393331234567 ...Recipient Ok"), std::string::npos) << r.out;
  auto messages = stop_and_read();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].tx.recipients, std::vector<std::string>{"+393331234567"});
}

TEST_F(address_clients_test, curl_display_name_in_mail_rcpt) {
  if (!have_program("curl")) GTEST_SKIP() << "curl not installed";
  start();
  temp_dir dir;
  const std::string file = dir.path() + "/mail.txt";
  std::ofstream(file, std::ios::binary) << "Ciao\r\n";
  auto r = run_command({"curl", "-sS", "-v", "--max-time", "30",
                        "smtp://127.0.0.1:" + std::to_string(gw_->smtp_port()), "--user", "myuserid:mypassword",
                        "--mail-from", "ACME", "--mail-rcpt", "Mario Rossi <00393331234567@host.example>",
                        "--upload-file", file},
                       "", std::chrono::seconds(60));
  // What curl sent: the text up to its last '>', bracketed.
  EXPECT_NE(r.err.find("> RCPT TO:<Mario Rossi <00393331234567@host.example>"), std::string::npos) << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("< 250 2.1.5 +393331234567 ...Recipient Ok"), std::string::npos) << r.err;
  auto messages = stop_and_read();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].tx.recipients, std::vector<std::string>{"+393331234567"});
}

TEST_F(address_clients_test, swaks_national_number_needs_country_code) {
  if (!have_program("swaks")) GTEST_SKIP() << "swaks not installed";
  start();
  auto r = swaks({"-f", "ACME", "-t", "3331234567@host.example", "--data", "Ciao\\n"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("<** 553 5.1.3 Invalid recipient: the number needs its country code (+<country code>"
                       "<number>) or the account's default_country; read as international: invalid length "
                       "for country code 33"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(stop_and_read().empty());
}

}  // namespace
}  // namespace postino::test
