// The command table as the wire contract (src/smtp/command.*): every verb has
// its row, the rows' phase masks and refusals follow PROTOCOL.md's precedence,
// the pipelining column follows RFC 2920, and the error limit counts by the
// typed reply's code (ten 503s leave a session open, the tenth counted error
// closes it). Also the typed replies (src/smtp/replies.*), the wording of the
// content step's refusal kinds, and the phase trace sink. Inputs, outputs and
// the traced lines are test-owned strings.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "postino/smtp.h"
#include "../../src/smtp/base64.h"
#include "../../src/smtp/command.h"
#include "../../src/smtp/replies.h"

namespace postino::smtp {
namespace {

// ------------------------------------------------------------------ rows

TEST(smtp_command_table, every_verb_has_one_row_in_verb_order) {
  const std::vector<std::string_view> protocol_verbs = {"EHLO", "HELO", "AUTH", "MAIL", "RCPT", "DATA", "RSET",
                                                        "NOOP", "QUIT", "VRFY", "EXPN", "TURN", "HELP", "STARTTLS",
                                                        "BDAT"};
  ASSERT_EQ(command_table().size(), protocol_verbs.size());
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < command_table().size(); ++i) {
    const command_spec& row = command_table()[i];
    EXPECT_EQ(static_cast<std::size_t>(row.id), i) << row.name;
    EXPECT_NE(row.handler, nullptr) << row.name;
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_EQ(find_command(row.name), &row);
  }
  for (std::string_view v : protocol_verbs) EXPECT_NE(find_command(v), nullptr) << v;
}

TEST(smtp_command_table, phase_masks_follow_the_protocol) {
  const phase_mask after_mail = in(phase::mail) | in(phase::rcpt);
  EXPECT_EQ(find_command("AUTH")->allowed, in(phase::greeted));
  EXPECT_EQ(find_command("MAIL")->allowed, in(phase::authenticated));
  EXPECT_EQ(find_command("RCPT")->allowed, after_mail);
  EXPECT_EQ(find_command("DATA")->allowed, in(phase::rcpt));
  EXPECT_EQ(find_command("BDAT")->allowed, in(phase::rcpt) | in(phase::chunks));
  for (std::string_view v : {"EHLO", "HELO", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "TURN", "HELP", "STARTTLS"})
    EXPECT_EQ(find_command(v)->allowed, any_command_phase) << v;
  // No row runs while SASL responses or message text are read.
  for (const command_spec& row : command_table())
    for (phase p : {phase::auth_username, phase::auth_password, phase::auth_plain, phase::data})
      EXPECT_FALSE(row.allowed_in(p)) << row.name;
}

// Which error wins (PROTOCOL.md 1): EHLO/HELO, then AUTH, then the order.
TEST(smtp_command_table, refusals_per_phase_are_the_protocol_texts) {
  const auto said = [](std::string_view verb, phase p) { return std::string(find_command(verb)->refusal(p).line()); };
  EXPECT_EQ(said("AUTH", phase::connected), "503 5.5.1 ERROR: send EHLO first");
  EXPECT_EQ(said("AUTH", phase::authenticated), "503 5.5.1 Already authenticated");
  EXPECT_EQ(said("AUTH", phase::mail), "503 5.5.1 AUTH not allowed during a mail transaction");
  EXPECT_EQ(said("AUTH", phase::rcpt), "503 5.5.1 AUTH not allowed during a mail transaction");
  for (std::string_view v : {"MAIL", "RCPT", "DATA"}) {
    EXPECT_EQ(said(v, phase::connected), "503 5.5.1 ERROR: send EHLO or HELO first") << v;
    EXPECT_EQ(said(v, phase::greeted), "530 5.7.0 Authentication required") << v;
  }
  EXPECT_EQ(said("MAIL", phase::mail), "503 5.5.1 Nested MAIL command");
  EXPECT_EQ(said("MAIL", phase::rcpt), "503 5.5.1 Nested MAIL command");
  EXPECT_EQ(said("RCPT", phase::authenticated), "503 5.5.1 ERROR: send MAIL first");
  EXPECT_EQ(said("DATA", phase::authenticated), "503 5.5.1 ERROR: need MAIL command");
  EXPECT_EQ(said("DATA", phase::mail), "503 5.5.1 ERROR: need RCPT command");
  // BDAT where DATA is refused says what DATA hears; between chunks
  // (RFC 3030) only BDAT, RSET and the anywhere verbs go on.
  for (phase p : {phase::connected, phase::greeted, phase::authenticated, phase::mail})
    EXPECT_EQ(said("BDAT", p), said("DATA", p));
  EXPECT_EQ(said("DATA", phase::chunks), "503 5.5.1 ERROR: DATA not allowed after BDAT");
  EXPECT_EQ(said("RCPT", phase::chunks), "503 5.5.1 ERROR: RCPT not allowed after BDAT");
  EXPECT_EQ(said("MAIL", phase::chunks), "503 5.5.1 Nested MAIL command");
  EXPECT_EQ(said("AUTH", phase::chunks), "503 5.5.1 AUTH not allowed during a mail transaction");
}

// RFC 2920 3.1: EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP end a group;
// STARTTLS too (RFC 3207), and its read-ahead is dropped.
TEST(smtp_command_table, pipelining_column) {
  for (std::string_view v : {"EHLO", "DATA", "VRFY", "EXPN", "TURN", "QUIT", "NOOP", "STARTTLS"})
    EXPECT_TRUE(ends_group(find_command(v)->group)) << v;
  // BDAT's chunk is read by the session whatever the answer, so the client
  // may pipeline on behind it (RFC 3030 4).
  for (std::string_view v : {"MAIL", "RCPT", "RSET", "BDAT"})
    EXPECT_EQ(find_command(v)->group, pipelining::continues) << v;
  EXPECT_EQ(find_command("DATA")->group, pipelining::text_follows);
  EXPECT_EQ(find_command("STARTTLS")->group, pipelining::discards_rest);
}

TEST(smtp_command_table, syntax_replies_and_line_limits) {
  EXPECT_EQ(find_command("EHLO")->syntax->line(), "501 5.5.4 Syntax: EHLO hostname");
  EXPECT_EQ(find_command("RSET")->syntax->line(), "501 5.5.4 Syntax: RSET");
  EXPECT_EQ(find_command("BDAT")->syntax->line(), "501 5.5.4 Syntax: BDAT <size> [LAST]");
  EXPECT_EQ(find_command("NOOP")->syntax, nullptr);  // NOOP and QUIT ignore arguments
  EXPECT_EQ(find_command("QUIT")->syntax, nullptr);
  for (const command_spec& row : command_table()) {
    if (row.syntax != nullptr) {
      EXPECT_EQ(row.syntax->code(), 501) << row.name;
    }
    EXPECT_TRUE(row.counts_errors) << row.name;
  }
  EXPECT_EQ(find_command("MAIL")->line_limit, 1024u);
  EXPECT_EQ(find_command("AUTH")->line_limit, 12288u);
  EXPECT_EQ(find_command("NOOP")->line_limit, 512u);
}

// ------------------------------------------------------------------ typed replies

TEST(smtp_replies, a_reply_knows_its_code_enhanced_code_and_text) {
  constexpr reply unknown{"500 5.5.2 Command unrecognized"};
  static_assert(unknown.code() == 500 && unknown.counts_as_error());
  EXPECT_EQ(unknown.enhanced(), "5.5.2");
  EXPECT_EQ(unknown.text(), "Command unrecognized");
  EXPECT_EQ(replies::start_data.code(), 354);
  EXPECT_EQ(replies::start_data.enhanced(), "");
  EXPECT_EQ(replies::start_data.text(), "Enter Text Message, end with <CRLF>.<CRLF>");
  EXPECT_EQ(replies::ask_plain.code(), 334);
  EXPECT_EQ(replies::ask_plain.text(), "");
  EXPECT_EQ(replies::ask_username.enhanced(), "");  // base64, not a status code
  EXPECT_EQ(replies::unsupported_parameter.text(), "Unsupported parameter ");
}

TEST(smtp_replies, the_error_limit_counts_500_501_502_504_and_555_only) {
  for (std::uint16_t code = 200; code < 600; ++code) {
    const bool counted = code == 500 || code == 501 || code == 502 || code == 504 || code == 555;
    EXPECT_EQ(counts_toward_error_limit(code), counted) << code;
  }
  EXPECT_FALSE(replies::nested_mail.counts_as_error());     // 503
  EXPECT_FALSE(replies::auth_required.counts_as_error());   // 530
  EXPECT_FALSE(replies::auth_invalid.counts_as_error());    // 535: its own limit
  EXPECT_FALSE(replies::too_many_recipients.counts_as_error());
  EXPECT_TRUE(replies::auth_cancelled.counts_as_error());   // 501 5.7.0
  EXPECT_TRUE(replies::line_too_long.counts_as_error());
}

std::string worded(mime::refusal_kind kind, std::uint64_t count = 0, std::uint64_t limit = 0) {
  std::string out;
  replies::append_content_refusal(out, {kind, count, limit});
  return out;
}

TEST(smtp_replies, the_content_steps_refusals_in_smtp_words) {
  using k = mime::refusal_kind;
  EXPECT_EQ(worded(k::too_many_parts, 1001, 1000), "554 5.6.0 Too many MIME parts (max 1000)\r\n");
  EXPECT_EQ(worded(k::too_deep, 21, 20), "554 5.6.0 MIME nesting too deep (max 20)\r\n");
  EXPECT_EQ(worded(k::mms_not_enabled), "554 5.6.1 MMS not enabled for this account\r\n");
  EXPECT_EQ(worded(k::mms_too_big, 2000000, 1048576), "552 5.3.4 Message too big\r\n");
  EXPECT_EQ(worded(k::empty), "554 5.6.0 Empty message\r\n");
  EXPECT_EQ(worded(k::too_many_segments, 3, 2), "554 5.3.4 Message too long for SMS (3 segments, max 2)\r\n");
  EXPECT_EQ(worded(k::not_run), "451 4.3.0 Local error in processing, try again\r\n");
}

TEST(smtp_replies, lines_with_values) {
  std::string out;
  replies::append_greeting(out, "mx.test", 42, "192.0.2.7");
  replies::append_ehlo(out, "mx.test", {2048, true, false});
  replies::append_auth_ok(out, -3, 9, account_status::suspended);
  replies::append_insufficient_credit(out, 12, 5);
  EXPECT_EQ(out,
            "220 mx.test ESMTP Service ready. Connection 42 with [192.0.2.7]\r\n"
            "250-mx.test Requested okay, completed\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
            "250-SIZE 2048\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 STARTTLS\r\n"
            "235 2.7.0 Authentication successful. CREDIT: -3 ID ACCOUNT: 9 STATUS: SUSPENDED\r\n"
            "554 5.7.1 Insufficient credit: need 12, available 5\r\n");
}

// ------------------------------------------------------------------ sessions

account_settings acme() {
  account_settings a;
  a.id = 11;
  a.username = "acme";
  return a;
}

// Feeds `input` whole, answering every request favourably; returns the replies.
std::string drive(session& s, std::string_view input) {
  std::string out;
  while (!s.closing()) {
    input.remove_prefix(s.feed(input));
    out += s.output();
    s.output().clear();
    switch (s.pending()) {
      case request_kind::none: break;
      case request_kind::authenticate: s.resolve(auth_result{auth_result::outcome::ok, acme(), 100}); continue;
      case request_kind::credit_check: s.resolve(credit_check_result{100}); continue;
      case request_kind::rate_check: s.resolve(rate_check_result{true}); continue;
      case request_kind::content: {
        const content_request& req = s.pending_content();
        s.resolve(mime::read_content(*req.body, *req.account, req.limits));
        continue;
      }
      case request_kind::commit: s.resolve(commit_result{commit_result::outcome::accepted, "Q1", 0, 0}); continue;
      case request_kind::relay_lookup: s.resolve(relay_result{nullptr}); continue;
    }
    if (input.empty()) break;
  }
  out += s.output();
  s.output().clear();
  return out;
}

std::size_t count_of(const std::string& out, std::string_view line) {
  std::size_t n = 0;
  for (std::size_t at = out.find(line); at != std::string::npos; at = out.find(line, at + 1)) ++n;
  return n;
}

TEST(smtp_session_error_limit, ten_503s_leave_the_session_open) {
  session_config cfg;
  const account_settings pre = acme();
  session s(cfg, {1, "::1"}, &pre);
  s.start();
  std::string in = "EHLO x\r\n";
  for (int i = 0; i < 12; ++i) in += "RCPT TO:<+393331234567>\r\n";  // 503: send MAIL first
  in += "NOOP\r\n";
  const std::string out = drive(s, in);
  EXPECT_EQ(count_of(out, "503 5.5.1 ERROR: send MAIL first\r\n"), 12u);
  EXPECT_FALSE(s.closing());
  EXPECT_TRUE(out.ends_with("250 2.0.0 OK\r\n")) << out;
}

TEST(smtp_session_error_limit, the_tenth_counted_error_closes) {
  session_config cfg;
  session s(cfg, {1, "::1"});
  s.start();
  std::string in;
  // 500, 501, 502 and 504, with 503s and a 530 in between that do not count.
  for (int i = 0; i < 3; ++i) in += "FOO\r\nMAIL FROM:<a>\r\nEHLO\r\nRCPT TO:<a>\r\n";  // 500 503 501 503
  in += "EHLO x\r\nMAIL FROM:<a>\r\nVRFY x\r\nAUTH CRAM-MD5\r\nHELP\r\n";      // 530 502 504 502
  in += "NOOP\r\nFOO\r\nNOOP\r\n";
  const std::string out = drive(s, in);
  EXPECT_TRUE(s.closing());
  EXPECT_EQ(count_of(out, "503 "), 6u);
  EXPECT_EQ(count_of(out, "530 "), 1u);
  // 3 x (500, 501) + 502 + 504 + 502 = 9 counted, then the 10th (500) and 421.
  EXPECT_TRUE(out.ends_with("250 2.0.0 OK\r\n500 5.5.2 Command unrecognized\r\n421 4.7.0 Too many errors\r\n")) << out;
}

// ------------------------------------------------------------------ trace

struct trace_log {
  std::vector<std::string> lines;
  static void write(void* context, std::uint64_t connection, std::string_view line) {
    auto* self = static_cast<trace_log*>(context);
    self->lines.push_back(std::to_string(connection) + ": " + std::string(line));
  }
};

TEST(smtp_session_trace, phase_changes_are_traced_with_their_cause) {
  trace_log log;
  session_config cfg;
  cfg.trace = {&trace_log::write, &log};
  session s(cfg, {7, "::1"});
  s.start();
  const std::string plain = encode_base64(std::string("\0acme\0pw", 8));
  drive(s, "NOOP\r\nEHLO x\r\nAUTH PLAIN\r\n" + plain +
               "\r\nMAIL FROM:<+393401234567>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nciao\r\n.\r\n"
               "MAIL FROM:<+393401234567>\r\nRSET\r\nQUIT\r\n");
  const std::vector<std::string> expected = {
      "7: phase connected -> greeted (EHLO)",
      "7: phase greeted -> auth-plain (AUTH)",
      "7: phase auth-plain -> greeted (AUTH response)",
      "7: phase greeted -> authenticated (AUTH)",
      "7: phase authenticated -> mail (MAIL)",
      "7: phase mail -> rcpt (RCPT)",
      "7: phase rcpt -> data (DATA)",
      "7: phase data -> authenticated (commit)",
      "7: phase authenticated -> mail (MAIL)",
      "7: phase mail -> authenticated (RSET)",
  };
  EXPECT_EQ(log.lines, expected);
}

TEST(smtp_session_trace, a_refused_message_and_starttls_are_traced) {
  trace_log log;
  session_config cfg;
  cfg.tls_available = true;
  cfg.trace = {&trace_log::write, &log};
  const account_settings pre = acme();
  session s(cfg, {3, "::1"}, &pre);
  s.start();
  drive(s, "EHLO x\r\nMAIL FROM:<+393401234567>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n\r\n.\r\nSTARTTLS\r\n");
  const std::vector<std::string> expected = {
      "3: phase connected -> authenticated (EHLO)",  // preauthenticated: AUTH was never needed
      "3: phase authenticated -> mail (MAIL)",
      "3: phase mail -> rcpt (RCPT)",
      "3: phase rcpt -> data (DATA)",
      "3: phase data -> authenticated (content refused)",  // an empty message
      "3: phase authenticated -> connected (STARTTLS)",
  };
  EXPECT_EQ(log.lines, expected);
}

TEST(smtp_session_trace, no_sink_by_default) {
  const session_config cfg;
  EXPECT_EQ(cfg.trace.write, nullptr);
  EXPECT_EQ(cfg.trace.context, nullptr);
}

}  // namespace
}  // namespace postino::smtp
