// Relay accounts (PROTOCOL.md 5a) end to end: an office mail server relays
// through an auth = "relay" listener without AUTH. swaks from 127.0.0.2 (the
// account's network) with a sender of its domain is accepted and charged to
// it; from 127.0.0.3, or with another domain, MAIL and RCPT get 554 5.7.1;
// postino-ctl shows the rule, refuses a bad one, and a rule written while
// the gateway runs is picked up by the poller (bounded wait, no timing
// asserted). Everything runs on loopback and stops with the test.
#include <gtest/gtest.h>

#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

const char* const relay_listeners = R"toml(
[[listener]]
address = "127.0.0.1"
port = 0

[[listener]]
address = "127.0.0.1"
port = 0
auth = "relay"
)toml";

class relay_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("swaks")) GTEST_SKIP() << "swaks not installed";
    const account_spec office{"office", "office-pw", 100,
                              {"--default-originator", "Office", "--relay-networks", "127.0.0.2/32,2001:db8::/48",
                               "--relay-domains", "example.com,Example.ORG"}};
    gw_ = std::make_unique<gateway>(std::vector<account_spec>{office}, relay_listeners);
    ASSERT_TRUE(gw_->start()) << gw_->last_log();
  }

  command_result swaks_from(const std::string& source, const std::string& sender) {
    return run_command({"swaks", "--server", "127.0.0.1", "--port", std::to_string(gw_->smtp_port(1)),
                        "--local-interface", source, "--ehlo", "mail.example.com", "--timeout", "20", "-f", sender,
                        "-t", "00393331234567", "--data", "Relayed by the office server\\n"},
                       "", std::chrono::seconds(60));
  }

  std::unique_ptr<gateway> gw_;
};

TEST_F(relay_test, an_allowed_network_and_domain_relays_without_auth) {
  auto r = swaks_from("127.0.0.2", "boss@example.com");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("AUTH"), std::string::npos) << "a relay listener offers no AUTH\n" << r.out;
  EXPECT_NE(r.out.find("<-  250 2.1.0 boss ...Sender Ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<-  250 2.0.0 Message accepted for delivery to: +393331234567 queued as "), std::string::npos)
      << r.out;
  // Domains compare without letter case.
  auto upper = swaks_from("127.0.0.2", "boss@EXAMPLE.org");
  EXPECT_EQ(upper.exit_code, 0) << upper.out << upper.err;
  ASSERT_EQ(gw_->stop(), 0) << gw_->last_log();
  // Both are the office account's messages.
  auto messages = messages_in(read_journals(gw_->data_dir()));
  ASSERT_EQ(messages.size(), 2u);
  auto show = gw_->ctl({"account", "show", "office"});
  ASSERT_EQ(show.exit_code, 0) << show.out << show.err;
  const std::string id_line = show.out.substr(0, show.out.find('\n'));  // "id: N"
  for (const auto& m : messages) {
    EXPECT_EQ("id: " + std::to_string(m.tx.account), id_line);
    EXPECT_EQ(m.tx.originator, "boss");
  }
}

TEST_F(relay_test, another_network_or_domain_is_refused) {
  auto r = swaks_from("127.0.0.3", "boss@example.com");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("<** 554 5.7.1 Relay access denied"), std::string::npos) << r.out << r.err;
  auto domain = swaks_from("127.0.0.2", "boss@example.net");
  EXPECT_NE(domain.exit_code, 0) << domain.out;
  EXPECT_NE(domain.out.find("<** 554 5.7.1 Relay access denied"), std::string::npos) << domain.out;

  // By hand: RCPT after the refused MAIL hears the same; AUTH is not offered.
  raw_client c(gw_->smtp_port(1), "127.0.0.3");
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.reply().substr(0, 4), "220 ");
  c.send("EHLO mail.example.com\r\n");
  EXPECT_EQ(c.reply().find("AUTH"), std::string::npos);
  c.send("AUTH PLAIN AG9mZmljZQBvZmZpY2UtcHc=\r\n");
  EXPECT_EQ(c.reply(), "502 5.5.1 Command not implemented\r\n");
  c.send("MAIL FROM:<boss@example.com>\r\n");
  EXPECT_EQ(c.reply(), "554 5.7.1 Relay access denied\r\n");
  c.send("RCPT TO:<+393331234567>\r\n");
  EXPECT_EQ(c.reply(), "554 5.7.1 Relay access denied\r\n");
  c.send("QUIT\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "221 ");
  // The auth-required listener is unchanged: no relaying there.
  raw_client plain(gw_->smtp_port(0), "127.0.0.2");
  ASSERT_TRUE(plain.connected());
  plain.reply();
  plain.send("EHLO mail.example.com\r\nMAIL FROM:<boss@example.com>\r\n");
  EXPECT_NE(plain.reply().find("AUTH"), std::string::npos);
  EXPECT_EQ(plain.reply(), "530 5.7.0 Authentication required\r\n");
}

TEST_F(relay_test, a_rule_written_while_running_is_picked_up) {
  if (!have_program("sqlite3")) GTEST_SKIP() << "sqlite3 not installed";
  // postino-ctl refuses to write while the gateway holds the lock; another
  // writer of the database (a future admin call, an operator's sqlite3) is
  // seen by the poller through PRAGMA data_version.
  auto w = run_command({"sqlite3", gw_->database(),
                        "UPDATE relays SET networks = networks || ',127.0.0.3/32' WHERE account_id = "
                        "(SELECT id FROM accounts WHERE username = 'office')"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  bool relayed = false;
  for (int attempt = 0; attempt < 40 && !relayed; ++attempt) {
    raw_client c(gw_->smtp_port(1), "127.0.0.3");
    c.reply();
    c.send("EHLO mail.example.com\r\n");
    c.reply();
    c.send("MAIL FROM:<boss@example.com>\r\n");
    relayed = c.reply() == "250 2.1.0 boss ...Sender Ok\r\n";
    if (!relayed) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_TRUE(relayed) << "the new network was not picked up within 10 s\n" << gw_->last_log();
}

TEST(relay_ctl_test, rules_are_shown_and_checked) {
  gateway gw({{"office", "office-pw", 10, {}}});
  auto set = gw.ctl({"account", "set", "office", "--relay-networks", "192.0.2.0/24,2001:DB8::/48", "--relay-domains",
                     "Example.com,example.org"});
  ASSERT_EQ(set.exit_code, 0) << set.out << set.err;
  auto show = gw.ctl({"account", "show", "office"});
  EXPECT_NE(show.out.find("relay networks: 192.0.2.0/24,2001:db8::/48\n"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("relay domains: example.com,example.org\n"), std::string::npos) << show.out;
  // Only the list given changes.
  ASSERT_EQ(gw.ctl({"account", "set", "office", "--relay-domains", "example.net"}).exit_code, 0);
  show = gw.ctl({"account", "show", "office"});
  EXPECT_NE(show.out.find("relay networks: 192.0.2.0/24,2001:db8::/48\n"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("relay domains: example.net\n"), std::string::npos) << show.out;
  auto host_bits = gw.ctl({"account", "set", "office", "--relay-networks", "192.0.2.1/24"});
  EXPECT_EQ(host_bits.exit_code, 1);
  EXPECT_NE(host_bits.err.find("has host bits set (did you mean 192.0.2.0/24?)"), std::string::npos) << host_bits.err;
  auto bad = gw.ctl({"account", "set", "office", "--relay-domains", "exa mple.com"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("'exa mple.com' is not a domain name"), std::string::npos) << bad.err;
  // Both lists emptied: no rule, nothing shown.
  ASSERT_EQ(gw.ctl({"account", "set", "office", "--relay-networks", "", "--relay-domains", ""}).exit_code, 0);
  show = gw.ctl({"account", "show", "office"});
  EXPECT_EQ(show.out.find("relay"), std::string::npos) << show.out;
}

}  // namespace
}  // namespace postino::test
