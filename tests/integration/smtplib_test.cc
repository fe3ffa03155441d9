// Python's smtplib and curl against the running gateway: a 1000-recipient
// transaction, sendmail() as scripts use it, a wrong password right after a
// cached success, and curl's smtp:// upload. The journals must hold exactly
// the acknowledged messages afterwards.
#include <gtest/gtest.h>

#include <regex>

#include "harness.h"

namespace postino::test {
namespace {

const account_spec kAccount{"bulk", "s3cret-pass", 5000, {}};

class client_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("python3")) GTEST_SKIP() << "python3 not installed";
    gw_ = std::make_unique<gateway>(std::vector<account_spec>{kAccount});
    ASSERT_TRUE(gw_->start()) << gw_->last_log();
  }

  command_result python(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"python3", source_path("tests/integration/smtp_client.py")};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, "", std::chrono::seconds(120));
  }

  std::string port() const { return std::to_string(gw_->smtp_port()); }
  std::unique_ptr<gateway> gw_;
};

TEST_F(client_test, one_thousand_recipients) {
  auto r = python({"bulk", port(), "bulk", "s3cret-pass", "1000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"auth\": [235, \"2.7.0 Authentication successful. CREDIT: 5000 ID ACCOUNT: "),
            std::string::npos) << r.out;
  // Every recipient accepted, in E.164 form.
  std::regex ok("\\[250, \"2\\.1\\.5 \\+39333[0-9]{7} \\.\\.\\.Recipient Ok\"\\]");
  auto n = std::distance(std::sregex_iterator(r.out.begin(), r.out.end(), ok), std::sregex_iterator());
  EXPECT_EQ(n, 1000) << r.out.substr(0, 2000);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("\"data\": \\[250, \"2\\.0\\.0 Message accepted for delivery to: "
                                                     "\\+393330000000, ([^\"]*) and ([0-9]+) more queued as ([0-9A-F]+)\"")))
      << r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0);
  auto line = "250 2.0.0 Message accepted for delivery to: +393330000000, " + m[1].str() + " and " + m[2].str() +
              " more queued as " + m[3].str();
  EXPECT_LT(line.size() + 2, 512u) << "the reply line stays under 512 octets";
  ASSERT_EQ(gw_->stop(), 0) << gw_->last_log();
  EXPECT_EQ(journal_queue_ids(gw_->data_dir()), std::vector<std::string>{m[3].str()});
  auto messages = messages_in(read_journals(gw_->data_dir()));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].tx.recipients.size(), 1000u);
  EXPECT_EQ(messages[0].tx.recipients[999], "+393330000999");
  EXPECT_EQ(messages[0].tx.price, 1000);
  EXPECT_EQ(messages[0].tx.originator, "ACME");
}

// smtplib's sendmail(), as scripts call it: one command at a time (smtplib
// never pipelines; pipelining is the goldens' and swaks_test's).
TEST_F(client_test, sendmail_to_one_thousand_recipients) {
  auto r = python({"sendmail", port(), "bulk", "s3cret-pass", "1000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"refused\": {}"), std::string::npos) << r.out;
  ASSERT_EQ(gw_->stop(), 0) << gw_->last_log();
  auto messages = messages_in(read_journals(gw_->data_dir()));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].tx.recipients.size(), 1000u);
  EXPECT_EQ(messages[0].tx.originator, "+393401234567");
}

TEST_F(client_test, wrong_password_after_cached_success_is_refused) {
  auto good = python({"login", port(), "bulk", "s3cret-pass"});
  EXPECT_NE(good.out.find("[235, "), std::string::npos) << good.out << good.err;
  auto bad = python({"login", port(), "bulk", "s3cret-pasS"});
  EXPECT_NE(bad.out.find("[535, \"5.7.8 Authentication credentials invalid\"]"), std::string::npos)
      << bad.out << bad.err;
  auto again = python({"login", port(), "bulk", "s3cret-pass"});
  EXPECT_NE(again.out.find("[235, "), std::string::npos) << again.out << again.err;
}

TEST_F(client_test, curl_smtp_upload) {
  if (!have_program("curl")) GTEST_SKIP() << "curl not installed";
  temp_dir dir;
  std::string body = dir.path() + "/body.txt";
  run_command({"/bin/sh", "-c", "printf 'Ciao da curl\\r\\n' > " + body});
  auto r = run_command({"curl", "-sS", "-v", "--max-time", "30", "smtp://127.0.0.1:" + port(), "--mail-from",
                        "+393401234567", "--mail-rcpt", "+393331234567", "--mail-rcpt",
                        "00393471234567@smtp.example.com", "--user", "bulk:s3cret-pass", "--upload-file", body});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("< 250 2.1.0 +393401234567 ...Sender Ok"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("< 250 2.0.0 Message accepted for delivery to: +393331234567, +393471234567 queued as "),
            std::string::npos) << r.err;
  ASSERT_EQ(gw_->stop(), 0) << gw_->last_log();
  auto messages = messages_in(read_journals(gw_->data_dir()));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].tx.body, "Ciao da curl\r\n");
  EXPECT_EQ(messages[0].tx.price, 2);
}

}  // namespace
}  // namespace postino::test
