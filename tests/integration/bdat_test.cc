// BDAT (CHUNKING, RFC 3030) over the real gateway: EHLO offers CHUNKING; a
// message in two chunks, sent in separate reads and in one, is stored with
// its octets exactly as sent and answered only once durable; a refused
// chunk's octets are read and dropped, RSET answers 250 and the next
// message goes through; postino-load --bdat's acknowledged messages are the
// ones the journals hold. Processes belong to the harness; buffers are the
// test's own strings.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "harness.h"

namespace postino::test {
namespace {

const account_spec kAccount{"bulk", "s3cret-pass", 1'000'000, {}};

std::string envelope(const std::string& rcpt) { return "MAIL FROM:<ACME>\r\nRCPT TO:<" + rcpt + ">\r\n"; }

// One MAIL and RCPT, then their two replies.
void open_transaction(raw_client& c, const std::string& rcpt) {
  c.send(envelope(rcpt));
  EXPECT_EQ(c.reply().rfind("250 2.1.0", 0), 0u);
  EXPECT_EQ(c.reply().rfind("250 2.1.5", 0), 0u);
}

TEST(bdat, chunks_are_stored_as_sent_and_a_refused_chunk_keeps_the_session_in_step) {
  gateway gw({kAccount});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  raw_client c(gw.smtp_port());
  ASSERT_NE(c.reply().find("220 "), std::string::npos);
  c.send("EHLO client\r\n");
  EXPECT_NE(c.reply().find("250-CHUNKING\r\n"), std::string::npos);
  c.send(auth_plain(kAccount.username, kAccount.password));
  ASSERT_EQ(c.reply().rfind("235 ", 0), 0u);

  // Two chunks in separate reads, the second holding a line that is a lone dot.
  open_transaction(c, "+393331234567");
  c.send("BDAT 6\r\nCiao, ");
  EXPECT_EQ(c.reply(), "250 2.0.0 6 octets received\r\n");
  c.send("BDAT 15 LAST\r\ncome stai?\r\n.\r\n");
  EXPECT_EQ(c.reply().rfind("250 2.0.0 Message accepted for delivery to: +393331234567 queued as ", 0), 0u);

  // A chunk over the size limit is refused, its octets dropped; the chunk
  // pipelined behind it hears "need MAIL"; RSET, then a whole message in one
  // write: envelope, chunk and QUIT.
  open_transaction(c, "+393331234567");
  const std::string big(10'485'761, 'x');
  c.send("BDAT " + std::to_string(big.size()) + "\r\n" + big + "BDAT 2 LAST\r\nok");
  EXPECT_EQ(c.reply(), "552 5.3.4 Message too big\r\n");
  EXPECT_EQ(c.reply(), "503 5.5.1 ERROR: need MAIL command\r\n");
  c.send("RSET\r\n");
  EXPECT_EQ(c.reply(), "250 2.0.0 OK\r\n");
  c.send(envelope("+393471234567") + "BDAT 6 LAST\r\nsecondQUIT\r\n");
  EXPECT_EQ(c.reply().rfind("250 2.1.0", 0), 0u);
  EXPECT_EQ(c.reply().rfind("250 2.1.5", 0), 0u);
  EXPECT_EQ(c.reply().rfind("250 2.0.0 Message accepted for delivery to: +393471234567 queued as ", 0), 0u);
  EXPECT_EQ(c.reply().rfind("221 ", 0), 0u);

  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  const auto messages = messages_in(read_journals(gw.data_dir()));
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].tx.body, "Ciao, come stai?\r\n.\r\n");
  EXPECT_EQ(messages[0].tx.recipients, std::vector<std::string>{"+393331234567"});
  EXPECT_EQ(messages[1].tx.body, "second");
  EXPECT_EQ(messages[1].tx.sms_text, "second");
}

nlohmann::json run_load(const gateway& gw, const std::string& dir) {
  const std::string json = dir + "/bdat.json";
  const command_result r = run_command(
      {binary_path("postino-load"), "--server", "127.0.0.1", "--port", std::to_string(gw.smtp_port()), "--auth",
       "plain", "--user", kAccount.username, "--password", kAccount.password, "--from", "ACME", "--threads", "1",
       "--sessions", "8", "--duration", "3", "--bdat", "--json", json, "--no-progress"},
      "", std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::cout << r.out;
  std::ifstream in(json);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str(), nullptr, false);
}

TEST(bdat, postino_load_bdat_counts_agree_with_the_journals) {
  gateway gw({kAccount});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  temp_dir dir;
  const auto r = run_load(gw, dir.path());
  ASSERT_TRUE(r.is_object());
  EXPECT_GT(r.value("messages", 0), 0);
  EXPECT_EQ(r.value("errors", -1), 0);
  const std::uint64_t accepted = r.value("messages", 0ull);
  const std::uint64_t in_flight = r.value("inflight", 0ull);
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  const auto messages = messages_in(read_journals(gw.data_dir()));
  EXPECT_GE(messages.size(), accepted);
  EXPECT_LE(messages.size(), accepted + in_flight) << "only messages the generator lost track of may be extra";
  ASSERT_FALSE(messages.empty());
  // The generator's text: its nonce first, one CRLF at the end, no terminator.
  const std::string& body = messages[0].tx.body;
  EXPECT_EQ(body.rfind("n=", 0), 0u) << body;
  EXPECT_EQ(body.substr(body.size() - 2), "\r\n");
  EXPECT_EQ(body.find("\r\n.\r\n"), std::string::npos) << body;
}

}  // namespace
}  // namespace postino::test
