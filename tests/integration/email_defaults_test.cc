// E-mail mode's clean-up defaults with the real clients that hit them
// (issue 13 items 2 and 3, PROTOCOL.md section 3): s-nail and Python's
// smtplib sending a mail whose text is its Subject and whose body is empty
// (refused before with 554 5.6.0 Empty message, now the Subject is the
// text), and a mail whose "-- " signature made it 2 segments instead of 1
// (now cut by default). Each test prints the client's dialogue or result, so
// a run against older binaries (POSTINO_TEST_BINARY_DIR) shows the reply of
// before. A missing client skips with the reason (fails under CI=true).
// Child processes are the harness's; buffers are the test's own strings.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "harness.h"

namespace postino::test {
namespace {

// max_segments 3: the signature's second segment was accepted and charged.
const account_spec kAccount{"mailer", "s3cret-pass", 1000, {"--max-segments", "3"}};

// Sends one mail with Python's smtplib (send_message of an EmailMessage,
// the way a script does) and prints one line: "ok" or the refusal.
constexpr const char* smtplib_script = R"py(
import smtplib, sys
from email.message import EmailMessage
port, user, password, subject, body = sys.argv[1:6]
msg = EmailMessage()
msg["From"] = "+393401234567@example.com"
msg["To"] = "+393331234567@sms.example.com"
msg["Subject"] = subject
msg.set_content(body)
try:
    with smtplib.SMTP("127.0.0.1", int(port), timeout=30) as s:
        s.login(user, password)
        s.send_message(msg)
    print("ok")
except smtplib.SMTPResponseException as e:
    print("refused:", e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPRecipientsRefused as e:
    print("refused:", e.recipients)
)py";

class email_defaults : public ::testing::Test {
 protected:
  void SetUp() override {
    gw_ = std::make_unique<gateway>(std::vector<account_spec>{kAccount});
    ASSERT_TRUE(gw_->start()) << gw_->last_log();
  }

  std::string port() const { return std::to_string(gw_->smtp_port()); }

  // smtplib's one line ("ok" or the refusal), or false when python3 is missing.
  bool smtplib_send(const std::string& subject, const std::string& body, std::string& line) {
    if (!have_program("python3")) return false;
    const command_result r = run_command(
        {"python3", "-c", smtplib_script, port(), kAccount.username, kAccount.password, subject, body}, "",
        std::chrono::seconds(60));
    line = r.out + r.err;
    std::cout << "smtplib: " << line;
    return true;
  }

  std::unique_ptr<gateway> gw_;
};

// s-nail 14.9.24 (Debian 12): the v15-compat form takes the credentials
// from the mta URL; -:/ loads no resource files, sendwait makes the exit
// code the SMTP outcome, and -vv prints the dialogue.
TEST_F(email_defaults, s_nail_subject_only_mail) {
  if (!have_program("s-nail")) SKIP_OR_FAIL("s-nail not installed (scripts/deps installs it)");
  temp_dir home;
  const command_result r = run_command(
      {"env", "HOME=" + home.path(), "LC_ALL=C.UTF-8", "s-nail", "-:/", "-vv", "-S", "v15-compat", "-S",
       "mta=smtp://" + kAccount.username + ":" + kAccount.password + "@127.0.0.1:" + port(), "-S", "smtp-auth=plain",
       "-S", "sendwait", "-S", "nosave", "-S", "DEAD=" + home.path() + "/dead.letter", "-S", "ttycharset=utf-8", "-r",
       "+393401234567@example.com", "-s", "Arrivo alle 10, a dopo", "+393331234567@sms.example.com"},
      "", std::chrono::seconds(60));
  std::cout << "s-nail exit " << r.exit_code << "\n" << r.err;
  ASSERT_EQ(r.exit_code, 0) << "before the fix: 554 5.6.0 Empty message\n" << r.err;
  const spool::record m = only_message(*gw_);
  EXPECT_EQ(m.tx.sms_text, "Arrivo alle 10, a dopo");
  EXPECT_EQ(m.tx.recipients, std::vector<std::string>{"+393331234567"});
  EXPECT_EQ(m.tx.price, 1);
}

TEST_F(email_defaults, smtplib_empty_body_with_a_subject) {
  std::string line;
  if (!smtplib_send("Caff\xC3\xA8 pronto", "", line)) SKIP_OR_FAIL("python3 not installed");
  ASSERT_EQ(line, "ok\n") << "before the fix: 554 5.6.0 Empty message";
  const spool::record m = only_message(*gw_);
  EXPECT_EQ(m.tx.sms_text, "Caff\xC3\xA8 pronto");
  EXPECT_EQ(m.tx.price, 1);
}

// The issue's test message: one segment without its signature, two with it.
TEST_F(email_defaults, smtplib_signature_is_cut) {
  const std::string text =
      "Gentile cliente, il suo ordine 48213 e' stato spedito oggi e arrivera' entro giovedi. "
      "Per informazioni risponda a questo messaggio. Grazie!";
  ASSERT_LE(text.size(), 160u);
  ASSERT_GT(text.size() + std::string("\n\n-- \nMario Rossi\nACME S.p.A.").size(), 160u);
  std::string line;
  if (!smtplib_send("Ordine 48213", text + "\n\n-- \nMario Rossi\nACME S.p.A.\n", line))
    SKIP_OR_FAIL("python3 not installed");
  ASSERT_EQ(line, "ok\n");
  const spool::record m = only_message(*gw_);
  std::cout << "stored: " << m.tx.segments << " segment(s), price " << m.tx.price << "\n";
  EXPECT_EQ(m.tx.sms_text, text);
  EXPECT_EQ(m.tx.segments, 1u) << "before the fix: 2 segments, the signature kept";
  EXPECT_EQ(m.tx.price, 1);
}

}  // namespace
}  // namespace postino::test
