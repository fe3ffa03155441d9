// SMTP smuggling over a real connection: each of LF.LF, CR.CR, LF.CRLF,
// CRLF.LF and CRLF.NUL is followed by a hidden second transaction. None may
// end DATA, so the gateway acknowledges exactly one message per connection and
// the hidden MAIL/RCPT/DATA end up as text inside it, never executed.
#include <gtest/gtest.h>

#include "harness.h"

namespace postino::test {
namespace {

TEST(smuggling_test, hidden_transactions_are_never_executed) {
  gateway gw({{"smug", "pw-smug", 1000, {}}});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  const std::string hidden =
      "MAIL FROM:<EVIL>\r\nRCPT TO:<+393339999999>\r\nDATA\r\nsmuggled\r\n";
  const std::vector<std::pair<std::string, std::string>> variants = {
      {"LF.LF", "\n.\n"}, {"CR.CR", "\r.\r"}, {"LF.CRLF", "\n.\r\n"},
      {"CRLF.LF", "\r\n.\n"}, {"CRLF.NUL", std::string("\r\n.\0\r\n", 6)}};
  for (const auto& [name, terminator] : variants) {
    raw_client c(gw.smtp_port());
    ASSERT_TRUE(c.connected());
    ASSERT_EQ(c.reply().substr(0, 4), "220 ");
    c.send("EHLO smuggler\r\n");
    ASSERT_EQ(c.reply().substr(0, 4), "250-");
    c.send("AUTH PLAIN " + base64(std::string("\0smug\0pw-smug", 13)) + "\r\n");
    ASSERT_EQ(c.reply().substr(0, 4), "235 ") << name;
    c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n");
    EXPECT_EQ(c.reply().substr(0, 4), "250 ") << name;
    EXPECT_EQ(c.reply().substr(0, 4), "250 ") << name;
    EXPECT_EQ(c.reply(), "354 Enter Text Message, end with <CRLF>.<CRLF>\r\n") << name;
    c.send("first" + terminator + hidden + ".\r\n");
    std::string accepted = c.reply();
    EXPECT_EQ(accepted.rfind("250 2.0.0 Message accepted for delivery to: +393331234567 queued as ", 0), 0u)
        << name << ": " << accepted;
    c.send("QUIT\r\n");
    EXPECT_EQ(c.reply(), "221 2.0.0 SMSC SMTP Server closing connection.\r\n") << name;
  }
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  auto messages = messages_in(read_journals(gw.data_dir()));
  ASSERT_EQ(messages.size(), variants.size());
  for (const auto& m : messages) {
    EXPECT_EQ(m.tx.originator, "ACME");
    EXPECT_EQ(m.tx.recipients, std::vector<std::string>{"+393331234567"});
    EXPECT_NE(m.tx.body.find("MAIL FROM:<EVIL>"), std::string::npos) << "the hidden command stays text";
  }
}

}  // namespace
}  // namespace postino::test
