// Real clients whose SIZE= is smaller than the text the gateway stores
// (issue 13 item 1, PROTOCOL.md 1: SIZE is the client's estimate, RFC 1870):
// curl --upload-file of an LF text file and Python's smtplib and aiosmtplib
// sendmail() of msg.as_bytes() declare the octets of the LF text, and the
// stored text has CRLF line ends. Each must be accepted and stored; each test
// also checks that the client really declared less than what was stored, so
// that it keeps testing the case. A missing client skips with the reason
// (fails under CI=true). Child processes are the harness's; buffers are the
// test's own strings.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <regex>

#include "harness.h"

namespace postino::test {
namespace {

const account_spec kAccount{"bulk", "s3cret-pass", 1000, {}};

class real_clients_size : public ::testing::Test {
 protected:
  void SetUp() override {
    gw_ = std::make_unique<gateway>(std::vector<account_spec>{kAccount});
    ASSERT_TRUE(gw_->start()) << gw_->last_log();
  }

  std::string port() const { return std::to_string(gw_->smtp_port()); }

  // Runs tests/integration/size_clients.py for `client` with the first
  // Python that has it (the PATH's, then Debian's, where python3-* packages
  // install). False, with the reason in `skipped`, when none has it.
  bool python_client(const std::string& client, command_result& r, std::string& skipped) {
    skipped = "python3 not installed";
    for (const std::string python : {"python3", "/usr/bin/python3"}) {
      if (!have_program(python)) continue;
      r = run_command({python, source_path("tests/integration/size_clients.py"), client, port(), kAccount.username,
                       kAccount.password},
                      "", std::chrono::seconds(60));
      if (r.exit_code != 77) return true;
      skipped = r.err;  // the script says what is missing
    }
    return false;
  }

  void expect_python_client_stored(const std::string& client) {
    command_result r;
    std::string skipped;
    if (!python_client(client, r, skipped)) SKIP_OR_FAIL(skipped);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    std::cout << client << ": " << r.out;
    const auto out = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_TRUE(out.is_object()) << r.out;
    ASSERT_FALSE(out.contains("error")) << "before the fix: 552 5.3.4 Message too big\n" << r.out;
    EXPECT_EQ(out.value("refused", nlohmann::json::object()), nlohmann::json::object()) << r.out;
    const spool::record m = only_message(*gw_);
    EXPECT_EQ(m.tx.sms_text, "Ciao da " + client + ",\nseconda riga del messaggio.");
    EXPECT_EQ(m.tx.recipients, std::vector<std::string>{"+393331234567"});
    EXPECT_EQ(m.tx.price, 1);
    EXPECT_GT(m.tx.body.size(), out.value("declared", std::size_t{0}))
        << "the client declared the LF text's size, less than the stored CRLF text";
  }

  std::unique_ptr<gateway> gw_;
};

TEST_F(real_clients_size, curl_upload_of_an_lf_file) {
  if (!have_program("curl")) SKIP_OR_FAIL("curl not installed (scripts/deps installs it)");
  temp_dir dir;
  const std::string file = dir.path() + "/sms.txt";
  const std::string text = "Ciao da curl,\nseconda riga.\n";  // an ordinary text file
  std::ofstream(file, std::ios::binary) << text;
  const command_result r =
      run_command({"curl", "-sS", "-v", "--max-time", "30", "smtp://127.0.0.1:" + port(), "--mail-from",
                   "+393401234567", "--mail-rcpt", "+393331234567", "--user",
                   kAccount.username + ":" + kAccount.password, "--upload-file", file});
  // curl declares the file's octets: "> MAIL FROM:<+393401234567> SIZE=28".
  std::smatch declared;
  ASSERT_TRUE(std::regex_search(r.err, declared, std::regex("> MAIL FROM:<\\+393401234567> SIZE=([0-9]+)")))
      << r.err;
  EXPECT_EQ(declared[1].str(), std::to_string(text.size()));
  ASSERT_EQ(r.exit_code, 0) << "before the fix: 552 5.3.4 Message too big\n" << r.err;
  EXPECT_NE(r.err.find("< 250 2.0.0 Message accepted for delivery to: +393331234567 queued as "), std::string::npos)
      << r.err;
  const spool::record m = only_message(*gw_);
  EXPECT_EQ(m.tx.sms_text, "Ciao da curl,\nseconda riga.");
  EXPECT_EQ(m.tx.price, 1);
  EXPECT_GT(m.tx.body.size(), text.size()) << "stored with CRLF line ends";
}

TEST_F(real_clients_size, smtplib_sendmail_of_as_bytes) { expect_python_client_stored("smtplib"); }

TEST_F(real_clients_size, aiosmtplib_sendmail_of_as_bytes) { expect_python_client_stored("aiosmtplib"); }

}  // namespace
}  // namespace postino::test
