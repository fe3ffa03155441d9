// The gateway process as an operator sees it: a bad config names its line and
// key, the demo account is printed on first start, idle and DATA timeouts,
// the auth = "none" loopback listener, and SIGTERM's orderly shutdown (idle
// sessions get 421 4.3.2, a transaction in DATA finishes first, exit 0).
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

// Greeting, EHLO and AUTH; leaves the session authenticated.
void assert_login(raw_client& c, const std::string& user, const std::string& pass) {
  ASSERT_EQ(c.reply().substr(0, 4), "220 ");
  c.send("EHLO test\r\n");
  ASSERT_EQ(c.reply().substr(0, 4), "250-");
  c.send(auth_plain(user, pass));
  ASSERT_EQ(c.reply().substr(0, 4), "235 ");
}

TEST(gateway_test, bad_config_names_file_line_and_key) {
  temp_dir dir;
  std::string path = dir.path() + "/bad.toml";
  std::ofstream(path) << "hostname = \"x\"\ndata_dir = \"" << dir.path() << "\"\nshardz = 3\n";
  auto r = run_command({binary_path("postino"), "--config", path}, "", std::chrono::seconds(30));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bad.toml:3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("shardz"), std::string::npos) << r.err;
}

TEST(gateway_test, demo_account_is_created_and_printed) {
  temp_dir dir;
  std::string path = dir.path() + "/demo.toml";
  std::ofstream(path) << "data_dir = \"" << dir.path() << "\"\nports_file = \"" << dir.path()
                      << "/ports\"\n[[listener]]\naddress = \"127.0.0.1\"\nport = 0\n";
  std::string log = dir.path() + "/log";
  // Start, wait for the ports file, stop.
  auto r = run_command({"/bin/sh", "-c",
                        binary_path("postino") + " --config " + path + " > " + log + " 2>&1 & pid=$!; " +
                            "for i in $(seq 300); do [ -f " + dir.path() + "/ports ] && break; sleep 0.1; done; " +
                            "kill -TERM $pid; wait $pid"},
                       "", std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(text, m, std::regex("demo account: user demo, password (\\S+), credit (\\d+)")))
      << text;
}

TEST(gateway_test, idle_and_data_timeouts) {
  gateway gw({{"t", "pw-t", 100, {}}}, "idle_timeout = 1\ndata_timeout = 1\n");
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client idle(gw.smtp_port());
  ASSERT_EQ(idle.reply().substr(0, 4), "220 ");
  EXPECT_EQ(idle.until_close(std::chrono::seconds(10)), "421 4.4.2 postino.test Timeout, closing connection\r\n");

  raw_client in_data(gw.smtp_port());
  assert_login(in_data, "t", "pw-t");
  in_data.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\npartial text\r\n");
  EXPECT_EQ(in_data.reply().substr(0, 4), "250 ");
  EXPECT_EQ(in_data.reply().substr(0, 4), "250 ");
  EXPECT_EQ(in_data.reply().substr(0, 4), "354 ");
  EXPECT_EQ(in_data.until_close(std::chrono::seconds(10)),
            "421 4.4.2 postino.test Timeout, closing connection\r\n");
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  EXPECT_TRUE(messages_in(read_journals(gw.data_dir())).empty());
}

TEST(gateway_test, auth_none_listener_on_loopback) {
  gateway gw({{"relay", "pw-relay", 100, {}}},
             "[[listener]]\naddress = \"127.0.0.1\"\nport = 0\nauth = \"none\"\naccount = \"relay\"\n");
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client c(gw.smtp_port());
  ASSERT_EQ(c.reply().substr(0, 4), "220 ");
  c.send("EHLO relay\r\n");
  std::string ehlo = c.reply();
  EXPECT_EQ(ehlo.find("AUTH"), std::string::npos) << ehlo;
  c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nrelayed\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(c.reply(), "250 2.1.0 ACME ...Sender Ok\r\n");
  EXPECT_EQ(c.reply(), "250 2.1.5 +393331234567 ...Recipient Ok\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "354 ");
  EXPECT_EQ(c.reply().rfind("250 2.0.0 Message accepted for delivery to: +393331234567 queued as ", 0), 0u);
  EXPECT_EQ(c.reply(), "221 2.0.0 SMSC SMTP Server closing connection.\r\n");
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  EXPECT_EQ(messages_in(read_journals(gw.data_dir())).size(), 1u);
}

TEST(gateway_test, auth_none_refused_on_a_public_address) {
  temp_dir dir;
  std::string path = dir.path() + "/open.toml";
  std::ofstream(path) << "data_dir = \"" << dir.path() << "\"\n[[listener]]\naddress = \"0.0.0.0\"\n"
                      << "port = 0\nauth = \"none\"\naccount = \"relay\"\n";
  auto r = run_command({binary_path("postino"), "--config", path}, "", std::chrono::seconds(30));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("open.toml:"), std::string::npos) << r.err;
}

TEST(gateway_test, sigterm_lets_data_finish_and_closes_idle_sessions) {
  gateway gw({{"s", "pw-s", 100, {}}});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client idle(gw.smtp_port());
  assert_login(idle, "s", "pw-s");
  raw_client busy(gw.smtp_port());
  assert_login(busy, "s", "pw-s");
  busy.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nhalf of the text\r\n");
  EXPECT_EQ(busy.reply().substr(0, 4), "250 ");
  EXPECT_EQ(busy.reply().substr(0, 4), "250 ");
  EXPECT_EQ(busy.reply().substr(0, 4), "354 ");

  std::thread stopper([&] { EXPECT_EQ(gw.stop(), 0) << gw.last_log(); });
  EXPECT_EQ(idle.until_close(std::chrono::seconds(10)), "421 4.3.2 Service shutting down\r\n");
  busy.send("and the rest\r\n.\r\n");
  std::string accepted = busy.reply();
  EXPECT_EQ(accepted.rfind("250 2.0.0 Message accepted for delivery to: +393331234567 queued as ", 0), 0u)
      << accepted;
  EXPECT_EQ(busy.until_close(std::chrono::seconds(10)), "421 4.3.2 Service shutting down\r\n");
  stopper.join();
  auto messages = messages_in(read_journals(gw.data_dir()));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].tx.body, "half of the text\r\nand the rest\r\n");
}

}  // namespace
}  // namespace postino::test
