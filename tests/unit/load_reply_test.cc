// postino-load's SMTP reply parser: single and multi-line replies, the same
// bytes cut at every possible point across reads, and the garbage that must
// stop a run (no code, mixed codes, endless lines).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../../tools/load/reply_parser.h"

namespace postino::load {
namespace {

struct seen {
  int code;
  std::string text;
  int lines;
};

std::vector<seen> parse_all(reply_parser& p, const std::vector<std::string>& pieces, feed_result* last = nullptr) {
  std::vector<seen> out;
  feed_result r = feed_result::ok;
  for (const auto& piece : pieces) {
    r = p.feed(piece, [&](const reply& rep) {
      out.push_back({rep.code, std::string(rep.text), rep.lines});
      return true;
    });
    if (r != feed_result::ok) break;
  }
  if (last) *last = r;
  return out;
}

const std::string ehlo_and_more =
    "220 host ESMTP Service ready\r\n"
    "250-host Requested okay, completed\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 10485760\r\n"
    "250 AUTH LOGIN PLAIN\r\n"
    "235 2.7.0 Authentication successful. CREDIT: 10 ID ACCOUNT: 7 STATUS: ACTIVE\r\n"
    "250 2.1.0 +393401234567 ...Sender Ok\r\n"
    "354 Enter Text Message, end with <CRLF>.<CRLF>\r\n"
    "250 2.0.0 Message accepted for delivery to: +393331234567 queued as 0A1B2C\r\n";

void expect_sequence(const std::vector<seen>& got) {
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[0].code, 220);
  EXPECT_EQ(got[0].text, "host ESMTP Service ready");
  EXPECT_EQ(got[1].code, 250);
  EXPECT_EQ(got[1].lines, 4);
  EXPECT_EQ(got[1].text, "host Requested okay, completed\nPIPELINING\nSIZE 10485760\nAUTH LOGIN PLAIN");
  EXPECT_EQ(got[2].code, 235);
  EXPECT_EQ(got[3].code, 250);
  EXPECT_EQ(got[4].code, 354);
  EXPECT_EQ(got[5].code, 250);
  EXPECT_EQ(got[5].lines, 1);
}

TEST(load_reply, whole_replies_in_one_read) {
  reply_parser p;
  const auto got = parse_all(p, {ehlo_and_more});
  expect_sequence(got);
  EXPECT_FALSE(p.mid_reply());
}

TEST(load_reply, the_same_bytes_split_at_every_point) {
  for (std::size_t cut = 1; cut < ehlo_and_more.size(); ++cut) {
    reply_parser p;
    const auto got = parse_all(p, {ehlo_and_more.substr(0, cut), ehlo_and_more.substr(cut)});
    expect_sequence(got);
    EXPECT_FALSE(p.mid_reply()) << "cut at " << cut;
  }
}

TEST(load_reply, one_byte_per_read) {
  reply_parser p;
  std::vector<std::string> pieces;
  for (char c : ehlo_and_more) pieces.emplace_back(1, c);
  expect_sequence(parse_all(p, pieces));
}

TEST(load_reply, mid_reply_while_a_multiline_reply_is_open) {
  reply_parser p;
  parse_all(p, {"250-host\r\n250-PIPE"});
  EXPECT_TRUE(p.mid_reply());
  const auto got = parse_all(p, {"LINING\r\n250 SIZE 1\r\n"});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].text, "host\nPIPELINING\nSIZE 1");
  EXPECT_FALSE(p.mid_reply());
}

TEST(load_reply, last_line_carries_the_queue_id) {
  reply_parser p;
  std::string last;
  p.feed("250-first\r\n250 2.0.0 Ok: queued as ABC\r\n", [&](const reply& r) {
    last = std::string(r.last_line());
    return true;
  });
  EXPECT_EQ(last, "2.0.0 Ok: queued as ABC");
}

TEST(load_reply, bare_code_and_bare_lf_are_replies) {
  reply_parser p;
  const auto got = parse_all(p, {"250\r\n221 bye\n"});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].code, 250);
  EXPECT_EQ(got[0].text, "");
  EXPECT_EQ(got[1].code, 221);
  EXPECT_EQ(got[1].text, "bye");
}

TEST(load_reply, stops_when_asked_and_keeps_the_rest_unread) {
  reply_parser p;
  int n = 0;
  const auto r = p.feed("250 a\r\n250 b\r\n", [&](const reply&) { return ++n < 1; });
  EXPECT_EQ(r, feed_result::stopped);
  EXPECT_EQ(n, 1);
}

TEST(load_reply, garbage_is_reported) {
  const char* bad[] = {
      "hello\r\n",                 // no code
      "25\r\n",                    // too short
      "650 no such class\r\n",     // first digit out of range
      "2x0 letters\r\n",           // not digits
      "250_underscore\r\n",        // neither space nor dash
      "250-one\r\n251 two\r\n",    // code changes inside a reply
      "\r\n",                      // empty line
  };
  for (const char* b : bad) {
    reply_parser p;
    feed_result r;
    parse_all(p, {b}, &r);
    EXPECT_EQ(r, feed_result::garbage) << b;
    EXPECT_FALSE(p.error().empty());
  }
}

TEST(load_reply, error_text_shows_the_line_safely) {
  reply_parser p;
  feed_result r;
  parse_all(p, {std::string("\x01garbage\r\n")}, &r);
  ASSERT_EQ(r, feed_result::garbage);
  EXPECT_NE(p.error().find("\\x01garbage"), std::string::npos) << p.error();
}

TEST(load_reply, an_endless_line_is_garbage) {
  reply_parser p;
  feed_result r = feed_result::ok;
  const std::string chunk(1000, 'x');
  r = p.feed("250 ", [](const reply&) { return true; });
  for (int i = 0; i < 10 && r == feed_result::ok; ++i) r = p.feed(chunk, [](const reply&) { return true; });
  EXPECT_EQ(r, feed_result::garbage);
}

TEST(load_reply, reset_drops_a_partial_reply) {
  reply_parser p;
  parse_all(p, {"250-a\r\n25"});
  p.reset();
  EXPECT_FALSE(p.mid_reply());
  const auto got = parse_all(p, {"221 bye\r\n"});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].code, 221);
}

}  // namespace
}  // namespace postino::load
