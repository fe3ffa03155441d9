// Edge cases of the SMTP scanners (src/smtp/scanner.*), the command table and
// argument parsers (src/smtp/command.*) and the strict base64 decoder: every
// input is fed at every fragment size, and DATA scanning is checked against
// a simple model of RFC 5321 on random inputs. Inputs are test-owned strings.
#include <gtest/gtest.h>

#include <random>

#include "../../src/smtp/base64.h"
#include "../../src/smtp/command.h"
#include "../../src/smtp/replies.h"
#include "../../src/smtp/scanner.h"

namespace postino::smtp {
namespace {

// ------------------------------------------------------------------ lines

struct scanned_line {
  line_scanner::kind what;
  std::string text;
  bool operator==(const scanned_line&) const = default;
};

std::vector<scanned_line> scan_lines(std::string_view input, std::size_t fragment,
                                     line_mode mode = line_mode::command) {
  line_scanner s;
  std::vector<scanned_line> out;
  for (std::size_t pos = 0; pos < input.size(); pos += fragment) {
    std::string_view chunk = input.substr(pos, fragment);
    while (!chunk.empty()) {
      auto r = s.next(chunk, mode);
      EXPECT_GT(r.consumed, 0u);
      EXPECT_LE(r.consumed, chunk.size());
      chunk.remove_prefix(r.consumed);
      if (r.what != line_scanner::kind::need_more) out.push_back({r.what, std::string(r.line)});
    }
  }
  return out;
}

void expect_lines_at_every_fragment(std::string_view input, const std::vector<scanned_line>& expected,
                                    line_mode mode = line_mode::command) {
  for (std::size_t f = 1; f <= input.size(); ++f) ASSERT_EQ(scan_lines(input, f, mode), expected) << "fragment " << f;
}

constexpr auto line = line_scanner::kind::line;
constexpr auto too_long = line_scanner::kind::too_long;

TEST(smtp_line_scanner, a_whole_line_is_parsed_in_place) {
  line_scanner s;
  const std::string input = "NOOP\r\nRSET\r\n";
  auto r = s.next(input, line_mode::command);
  ASSERT_EQ(r.what, line);
  EXPECT_EQ(r.line, "NOOP");
  EXPECT_EQ(r.consumed, 6u);
  // Zero copy: the view points into the caller's buffer.
  EXPECT_EQ(r.line.data(), input.data());
  EXPECT_EQ(s.carry_capacity() <= 15u, true) << "no carry buffer was needed";
}

TEST(smtp_line_scanner, crlf_split_across_reads) {
  expect_lines_at_every_fragment("NOOP\r\nMAIL FROM:<A>\r\n", {{line, "NOOP"}, {line, "MAIL FROM:<A>"}});
}

TEST(smtp_line_scanner, bare_lf_ends_a_command_line_and_bare_cr_does_not) {
  expect_lines_at_every_fragment("NOOP\nRSET\rQUIT\r\n", {{line, "NOOP"}, {line, "RSET\rQUIT"}});
}

TEST(smtp_line_scanner, empty_lines) { expect_lines_at_every_fragment("\r\n\n", {{line, ""}, {line, ""}}); }

TEST(smtp_line_scanner, command_limit_is_512_with_crlf) {
  const std::string ok = "NOOP " + std::string(505, 'x') + "\r\n";
  const std::string over = "NOOP " + std::string(506, 'x') + "\r\n";
  ASSERT_EQ(ok.size(), 512u);
  expect_lines_at_every_fragment(ok + over + "QUIT\r\n",
                                 {{line, ok.substr(0, 510)}, {too_long, ""}, {line, "QUIT"}});
}

TEST(smtp_line_scanner, bare_lf_line_counts_its_single_octet) {
  const std::string ok = "NOOP " + std::string(506, 'x') + "\n";  // 512 octets
  expect_lines_at_every_fragment(ok, {{line, ok.substr(0, 511)}});
}

TEST(smtp_line_scanner, mail_and_rcpt_get_1024_case_insensitively) {
  for (std::string verb : {"MAIL ", "rcpt ", "Mail "}) {
    const std::string ok = verb + std::string(1022 - verb.size(), 'y') + "\r\n";
    const std::string over = verb + std::string(1023 - verb.size(), 'y') + "\r\n";
    ASSERT_EQ(ok.size(), 1024u);
    expect_lines_at_every_fragment(ok + over, {{line, ok.substr(0, 1022)}, {too_long, ""}});
  }
}

TEST(smtp_line_scanner, verb_must_be_followed_by_a_space_to_get_a_larger_limit) {
  const std::string over = "MAILX" + std::string(600, 'y') + "\r\n";
  EXPECT_EQ(scan_lines(over, over.size()), (std::vector<scanned_line>{{too_long, ""}}));
}

TEST(smtp_line_scanner, auth_lines_and_responses_get_12288) {
  const std::string cmd_ok = "AUTH PLAIN " + std::string(12275, 'A') + "\r\n";
  const std::string cmd_over = "AUTH PLAIN " + std::string(12276, 'A') + "\r\n";
  ASSERT_EQ(cmd_ok.size(), 12288u);
  EXPECT_EQ(scan_lines(cmd_ok + cmd_over, 1000),
            (std::vector<scanned_line>{{line, cmd_ok.substr(0, 12286)}, {too_long, ""}}));
  const std::string resp_ok = std::string(12286, 'B') + "\r\n";
  const std::string resp_over = std::string(12287, 'B') + "\r\n";
  EXPECT_EQ(scan_lines(resp_ok + resp_over, 777, line_mode::auth_response),
            (std::vector<scanned_line>{{line, resp_ok.substr(0, 12286)}, {too_long, ""}}));
  // The same response in command mode is an ordinary over-long line.
  EXPECT_EQ(scan_lines(resp_ok, 777), (std::vector<scanned_line>{{too_long, ""}}));
}

TEST(smtp_line_scanner, an_over_long_line_is_discarded_up_to_its_lf_without_buffering) {
  line_scanner s;
  const std::string big(100000, 'z');
  for (std::size_t pos = 0; pos < big.size(); pos += 4096) {
    auto r = s.next(std::string_view(big).substr(pos, 4096), line_mode::command);
    EXPECT_EQ(r.what, line_scanner::kind::need_more);
  }
  EXPECT_LE(s.carry_capacity(), 2 * default_line_limit) << "the discarded line is not kept";
  auto r = s.next("zz\r\nNOOP\r\n", line_mode::command);
  EXPECT_EQ(r.what, too_long);
  EXPECT_EQ(r.consumed, 4u);
  r = s.next("NOOP\r\n", line_mode::command);
  EXPECT_EQ(r.what, line);
  EXPECT_EQ(r.line, "NOOP");
}

TEST(smtp_line_scanner, a_long_carried_line_gives_its_buffer_back) {
  line_scanner s;
  const std::string mail = "MAIL FROM:<A>" + std::string(1000, ' ') + "\r\n";
  for (char c : mail) {
    auto r = s.next(std::string_view(&c, 1), line_mode::command);
    if (r.what == line) {
      EXPECT_EQ(r.line.substr(0, 13), "MAIL FROM:<A>");
    }
  }
  s.next("NOOP\r\n", line_mode::command);  // the next call forgets the carried line
  EXPECT_LE(s.carry_capacity(), 2 * default_line_limit);
}

TEST(smtp_line_scanner, reset_drops_a_partial_line) {
  line_scanner s;
  EXPECT_EQ(s.next("MAIL FROM:<INJ", line_mode::command).what, line_scanner::kind::need_more);
  EXPECT_TRUE(s.has_partial_line());
  s.reset();
  EXPECT_FALSE(s.has_partial_line());
  auto r = s.next("ECTED>\r\n", line_mode::command);
  EXPECT_EQ(r.line, "ECTED>");
}

// ------------------------------------------------------------------ DATA

struct data_outcome {
  std::size_t consumed = 0;
  std::string body;
  bool done = false;
  bool bare = false;
  bool too_big = false;
  bool operator==(const data_outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const data_outcome& o) {
  return os << "{consumed " << o.consumed << ", body '" << o.body << "' (" << o.body.size() << "), done " << o.done
            << ", bare " << o.bare << ", too_big " << o.too_big << "}";
}

data_outcome scan_data(std::string_view input, std::size_t fragment, std::uint64_t max_size = 1 << 20,
                       bool reject_bare = false) {
  data_scanner s;
  s.start(max_size, reject_bare);
  data_outcome o;
  for (std::size_t pos = 0; pos < input.size() && !s.done(); pos += fragment) {
    const auto chunk = input.substr(pos, fragment);
    const std::size_t n = s.feed(chunk, o.body);
    o.consumed += n;
    if (!s.done()) {
      EXPECT_EQ(n, chunk.size()) << "the scanner stops only at the terminator";
    }
  }
  o.done = s.done();
  o.bare = s.bare_newline_seen();
  o.too_big = s.too_big();
  return o;
}

void expect_data_at_every_fragment(std::string_view input, const data_outcome& expected,
                                   std::uint64_t max_size = 1 << 20, bool reject_bare = false) {
  for (std::size_t f = 1; f <= input.size(); ++f)
    ASSERT_EQ(scan_data(input, f, max_size, reject_bare), expected) << "fragment " << f;
}

bool normalized(const std::string& body) {
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\r' && (i + 1 >= body.size() || body[i + 1] != '\n')) return false;
    if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r')) return false;
  }
  return true;
}

TEST(smtp_data_scanner, terminator_and_unstuffing) {
  const std::string in = "Hello\r\n..dot\r\n.x\r\n\r\n.\r\nMAIL FROM:<A>\r\n";
  expect_data_at_every_fragment(in, {23, "Hello\r\n.dot\r\nx\r\n\r\n", true, false, false});
}

TEST(smtp_data_scanner, an_immediate_terminator_is_an_empty_body) {
  expect_data_at_every_fragment(".\r\nQUIT\r\n", {3, "", true, false, false});
}

TEST(smtp_data_scanner, smuggling_sequences_never_end_data) {
  const std::vector<std::string> sequences = {"\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", std::string("\r\n.\0\r\n", 6),
                                              "\r\n.\r\r\n", "\r\n. \r\n", "\r\n.\r.\r\n"};
  for (const auto& seq : sequences) {
    const std::string in = "a" + seq + "MAIL FROM:<EVIL>\r\n.\r\n";
    for (std::size_t f = 1; f <= in.size(); ++f) {
      auto o = scan_data(in, f);
      ASSERT_TRUE(o.done);
      ASSERT_EQ(o.consumed, in.size()) << "only the final CRLF.CRLF ends DATA";
      ASSERT_NE(o.body.find("MAIL FROM:<EVIL>\r\n"), std::string::npos);
      ASSERT_TRUE(normalized(o.body)) << "every line break is stored as CRLF";
    }
  }
}

TEST(smtp_data_scanner, bare_line_breaks_are_normalized_and_reported) {
  expect_data_at_every_fragment("a\nb\rc\r\n.\r\n", {10, "a\r\nb\r\nc\r\n", true, true, false});
  expect_data_at_every_fragment("a\r\r\n.\r\n", {7, "a\r\n\r\n", true, true, false});
}

TEST(smtp_data_scanner, reject_policy_keeps_no_text_but_stays_in_sync) {
  expect_data_at_every_fragment("a\nb\r\n.\r\nNOOP\r\n", {8, "", true, true, false}, 1 << 20, true);
}

TEST(smtp_data_scanner, text_line_limit_is_1000_with_crlf_without_the_stuffed_dot) {
  const std::string ok(998, 'x');
  expect_data_at_every_fragment(ok + "\r\n." + ok + "\r\n.\r\n", {2004, ok + "\r\n" + ok + "\r\n", true, false, false});
  const std::string over(999, 'x');
  expect_data_at_every_fragment(over + "\r\nmore\r\n.\r\n", {1010, "", true, false, true});
  // A bare-LF line of 999 octets of text is also over: it is stored with CRLF.
  expect_data_at_every_fragment(over + "\n.\r\n.\r\n", {1006, "", true, true, true});
}

TEST(smtp_data_scanner, message_size_limit_counts_the_stored_text) {
  expect_data_at_every_fragment(std::string(8, 'a') + "\r\n.\r\n", {13, "aaaaaaaa\r\n", true, false, false}, 10);
  expect_data_at_every_fragment(std::string(9, 'a') + "\r\n.\r\n", {14, "", true, false, true}, 10);
}

// A model of RFC 5321 DATA with Postfix-style normalization, written the
// naive way: find the first CRLF.CRLF (the DATA command's CRLF counts), cut
// the text there, split it into lines at CRLF, LF or CR, unstuff each line.
data_outcome model(const std::string& input, std::uint64_t max_size) {
  data_outcome o;
  const std::string virtual_stream = "\r\n" + input;
  const std::size_t term = virtual_stream.find("\r\n.\r\n");
  if (term == std::string::npos) return o;
  o.done = true;
  o.consumed = term + 5 - 2;
  const std::string text = input.substr(0, term);  // includes the final CRLF
  std::vector<std::string> lines;
  std::string current;
  bool bare = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      lines.push_back(current);
      current.clear();
      ++i;
    } else if (text[i] == '\r' || text[i] == '\n') {
      bare = true;
      lines.push_back(current);
      current.clear();
    } else {
      current.push_back(text[i]);
    }
  }
  if (!current.empty()) lines.push_back(current);
  o.bare = bare;
  for (auto& l : lines) {
    if (!l.empty() && l[0] == '.') l.erase(0, 1);
    if (l.size() + 2 > text_line_limit) o.too_big = true;
    o.body += l + "\r\n";
  }
  if (o.body.size() > max_size) o.too_big = true;
  if (o.too_big) o.body.clear();
  return o;
}

TEST(smtp_data_scanner, random_inputs_match_the_model_at_every_fragment_size) {
  std::mt19937 rng(20240601);
  const std::string alphabet = std::string("..\r\r\n\nab \0", 11);
  for (int round = 0; round < 3000; ++round) {
    std::string in;
    const std::size_t len = rng() % 40;
    for (std::size_t i = 0; i < len; ++i) in.push_back(alphabet[rng() % alphabet.size()]);
    in += "\r\n.\r\n" + std::string("tail");
    const std::uint64_t max_size = round % 5 == 0 ? 8 : 1 << 20;
    const data_outcome expected = model(in, max_size);
    ASSERT_TRUE(expected.done);
    for (std::size_t f = 1; f <= in.size(); ++f) {
      auto got = scan_data(in, f, max_size);
      ASSERT_EQ(got, expected) << "input '" << in << "' fragment " << f;
    }
  }
}

// ------------------------------------------------------------------ commands

TEST(smtp_command_table, lookup_is_case_insensitive_and_knows_only_implemented_verbs) {
  ASSERT_NE(find_command("ehlo"), nullptr);
  EXPECT_EQ(find_command("Mail")->id, verb::mail);
  EXPECT_EQ(find_command("bdat")->id, verb::bdat);
  EXPECT_EQ(find_command("BURL"), nullptr);  // RFC 4468, not implemented
  EXPECT_EQ(find_command("MAILX"), nullptr);
  EXPECT_EQ(find_command(""), nullptr);
  EXPECT_EQ(find_command("DATA")->group, pipelining::text_follows);
  EXPECT_EQ(find_command("STARTTLS")->group, pipelining::discards_rest);
  EXPECT_FALSE(find_command("RCPT")->allowed_in(phase::greeted));  // needs AUTH
  EXPECT_TRUE(find_command("AUTH")->allowed_in(phase::greeted));
  EXPECT_TRUE(find_command("NOOP")->allowed_in(phase::connected));
  EXPECT_EQ(find_command("AUTH")->refusal(phase::connected).line(), "503 5.5.1 ERROR: send EHLO first");
  EXPECT_EQ(find_command("MAIL")->refusal(phase::connected).line(), "503 5.5.1 ERROR: send EHLO or HELO first");
}

TEST(smtp_command_table, split_command) {
  auto c = split_command("Mail From: +393401234567  ");
  EXPECT_EQ(c.verb, "Mail");
  EXPECT_EQ(c.args, "From: +393401234567");
  c = split_command("QUIT");
  EXPECT_EQ(c.verb, "QUIT");
  EXPECT_EQ(c.args, "");
  c = split_command("NOOP   x");
  EXPECT_EQ(c.args, "x");
}

TEST(smtp_command_table, parse_path_forms) {
  path_args p;
  ASSERT_TRUE(parse_path("From: +393401234567", "FROM:", p));
  EXPECT_EQ(p.path, "+393401234567");
  EXPECT_EQ(p.params, "");
  ASSERT_TRUE(parse_path("FROM:<+393401234567> SIZE=10 BODY=8BITMIME", "FROM:", p));
  EXPECT_EQ(p.path, "+393401234567");
  EXPECT_EQ(p.params, "SIZE=10 BODY=8BITMIME");
  ASSERT_TRUE(parse_path("FROM:<>", "FROM:", p));
  EXPECT_EQ(p.path, "");
  ASSERT_TRUE(parse_path("FROM:<\"A >B\"@x>", "FROM:", p));
  EXPECT_EQ(p.path, "\"A >B\"@x");
  ASSERT_TRUE(parse_path("FROM:\"ACME SHOP\" SIZE=1", "FROM:", p));
  EXPECT_EQ(p.path, "\"ACME SHOP\"");
  EXPECT_EQ(p.params, "SIZE=1");
  ASSERT_TRUE(parse_path("to:<+393331234567/TYPE=PLMN@mms.example.net>", "TO:", p));
  EXPECT_EQ(p.path, "+393331234567/TYPE=PLMN@mms.example.net");
  EXPECT_FALSE(parse_path("FROM:", "FROM:", p));
  EXPECT_FALSE(parse_path("FROM:<abc", "FROM:", p));
  EXPECT_FALSE(parse_path("FROM:<a>b", "FROM:", p));
  EXPECT_FALSE(parse_path("FROM:\"open", "FROM:", p));
  EXPECT_FALSE(parse_path("TO:<a>", "FROM:", p));
  EXPECT_FALSE(parse_path("FROM <a>", "FROM:", p));
}

// Issue 13 item 6: "Name <addr>" on swaks' or curl's command line reaches
// RCPT as `<Name <addr>>` (swaks) or `<Name <addr>` (curl 7.88); the path is
// the inner address. Only where the caller accepts display names (RCPT).
TEST(smtp_command_table, parse_path_display_name) {
  constexpr auto accepted = display_names::accepted;
  path_args p;
  ASSERT_TRUE(parse_path("TO:<Mario <00393331234567@host.example>>", "TO:", p, accepted));
  EXPECT_EQ(p.path, "00393331234567@host.example");
  EXPECT_EQ(p.params, "");
  ASSERT_TRUE(parse_path("TO:<Mario <00393331234567@host.example>", "TO:", p, accepted));
  EXPECT_EQ(p.path, "00393331234567@host.example");
  ASSERT_TRUE(parse_path("TO: <Mario Rossi <+393331234567>> NOTIFY=NEVER", "TO:", p, accepted));
  EXPECT_EQ(p.path, "+393331234567");
  EXPECT_EQ(p.params, "NOTIFY=NEVER");
  ASSERT_TRUE(parse_path("TO:<Mario <+393331234567> NOTIFY=NEVER", "TO:", p, accepted));
  EXPECT_EQ(p.path, "+393331234567");
  EXPECT_EQ(p.params, "NOTIFY=NEVER");
  // A quoted display name may hold '<' and '>'.
  ASSERT_TRUE(parse_path("TO:<\"Rossi <M> \" <+393331234567>>", "TO:", p, accepted));
  EXPECT_EQ(p.path, "+393331234567");
  ASSERT_TRUE(parse_path("TO:<<+393331234567>>", "TO:", p, accepted));
  EXPECT_EQ(p.path, "+393331234567");
  // A quoted local part with '<' is an address, not a display name.
  ASSERT_TRUE(parse_path("TO:<\"a<b\"@x>", "TO:", p, accepted));
  EXPECT_EQ(p.path, "\"a<b\"@x");
  // The plain forms are unchanged.
  ASSERT_TRUE(parse_path("TO:<+393331234567>", "TO:", p, accepted));
  EXPECT_EQ(p.path, "+393331234567");
  ASSERT_TRUE(parse_path("TO:+393331234567", "TO:", p, accepted));
  EXPECT_EQ(p.path, "+393331234567");
  EXPECT_FALSE(parse_path("TO:<Mario <+393331234567>>>", "TO:", p, accepted));
  EXPECT_FALSE(parse_path("TO:<Mario <+393331234567>>x", "TO:", p, accepted));
  EXPECT_FALSE(parse_path("TO:<Mario <+393331234567", "TO:", p, accepted));
  // Where display names are not accepted (the default), the path is as before.
  ASSERT_TRUE(parse_path("FROM:<Shop <+393401234567>", "FROM:", p));
  EXPECT_EQ(p.path, "Shop <+393401234567");
  EXPECT_FALSE(parse_path("FROM:<Shop <+393401234567>>", "FROM:", p));
}

TEST(smtp_command_table, esmtp_parameters) {
  std::string_view rest = "SIZE=100  BODY=8BITMIME SMTPUTF8";
  esmtp_param p;
  ASSERT_TRUE(next_param(rest, p));
  EXPECT_EQ(p.name, "SIZE");
  EXPECT_EQ(p.value, "100");
  ASSERT_TRUE(next_param(rest, p));
  EXPECT_EQ(p.name, "BODY");
  ASSERT_TRUE(next_param(rest, p));
  EXPECT_EQ(p.name, "SMTPUTF8");
  EXPECT_FALSE(p.has_value);
  EXPECT_FALSE(next_param(rest, p));
  std::uint64_t v = 0;
  EXPECT_TRUE(parse_decimal("10485760", v));
  EXPECT_EQ(v, 10485760u);
  EXPECT_FALSE(parse_decimal("", v));
  EXPECT_FALSE(parse_decimal("-1", v));
  EXPECT_FALSE(parse_decimal("12a", v));
  EXPECT_FALSE(parse_decimal("99999999999999999999", v));
}

TEST(smtp_command_table, a_repeated_parameter_is_named_as_written_the_second_time) {
  EXPECT_EQ(repeated_param(""), "");
  EXPECT_EQ(repeated_param("SIZE=10 BODY=8BITMIME"), "");
  EXPECT_EQ(repeated_param("SIZE=10 SIZE=10"), "SIZE");
  EXPECT_EQ(repeated_param("size=10  BODY=7BIT\tSize=20"), "Size");
  EXPECT_EQ(repeated_param("SIZE=1 SIZE"), "SIZE");
  EXPECT_EQ(repeated_param("FOO BAR=1 foo=2"), "foo");
  // The first repeat in the list, not the first name that repeats.
  EXPECT_EQ(repeated_param("A B B A"), "B");
  // A name that only starts another one is no repeat; nameless tokens are
  // left to the unknown-parameter check.
  EXPECT_EQ(repeated_param("SIZE=1 SIZES=2 =x =x"), "");
  EXPECT_EQ(repeated_param("SIZESIZE SIZE"), "");
}

TEST(smtp_command_table, command_line_limits_follow_the_table) {
  EXPECT_EQ(command_line_limit("NOOP xxxxx"), 512u);
  EXPECT_EQ(command_line_limit("MAIL FROM:"), 1024u);
  EXPECT_EQ(command_line_limit("rcpt TO:<"), 1024u);
  EXPECT_EQ(command_line_limit("AUTH PLAIN"), 12288u);
  EXPECT_EQ(command_line_limit("AUTHX"), 512u);
  EXPECT_EQ(command_line_limit("FOO BAR"), 512u);
}

// ------------------------------------------------------------------ replies

TEST(smtp_replies, accepted_line_lists_what_fits_under_512_octets) {
  std::vector<std::string> r;
  for (int i = 0; i < 1000; ++i) r.push_back("+39333" + std::to_string(1000000 + i));
  std::string out;
  replies::append_accepted(out, r, "0123456789ABCDEF");
  EXPECT_LT(out.size(), 512u);
  EXPECT_EQ(out.rfind("250 2.0.0 Message accepted for delivery to: +393331000000, +393331000001, ", 0), 0u);
  EXPECT_NE(out.find(" more queued as 0123456789ABCDEF\r\n"), std::string::npos);
  // One more recipient would not have fitted.
  const std::size_t listed = static_cast<std::size_t>(std::count(out.begin(), out.end(), '+'));
  EXPECT_NE(out.find(" and " + std::to_string(1000 - listed) + " more"), std::string::npos);
  const std::size_t k = 1000 - listed;
  const std::size_t with_next = out.size() + 15 - (std::to_string(k).size() - std::to_string(k - 1).size());
  EXPECT_GT(with_next, replies::accepted_line_limit);

  out.clear();
  replies::append_accepted(out, {"+393331234567"}, "X");
  EXPECT_EQ(out, "250 2.0.0 Message accepted for delivery to: +393331234567 queued as X\r\n");
}

// ------------------------------------------------------------------ base64

TEST(smtp_base64, strict_decoding) {
  std::string out;
  EXPECT_TRUE(decode_base64("bXl1c2VyaWQ=", out));
  EXPECT_EQ(out, "myuserid");
  EXPECT_TRUE(decode_base64("bXlwYXNzd29yZA==", out));
  EXPECT_EQ(out, "mypassword");
  EXPECT_TRUE(decode_base64("", out));
  EXPECT_EQ(out, "");
  EXPECT_TRUE(decode_base64("AG15dXNlcmlkAG15cGFzc3dvcmQ=", out));
  EXPECT_EQ(out, std::string("\0myuserid\0mypassword", 20));
  for (const char* bad : {"bXl1c2VyaWQ", "bXl1c2V*aWQ=", "bXl1=2VyaWQ=", "====", "bXl1c2VyaWQ==", "bXl1 2VyaWQ=",
                          "=", "bXlwYXNzd29yZA=\n", "A==="})
    EXPECT_FALSE(decode_base64(bad, out)) << bad;
}

TEST(smtp_base64, round_trip) {
  std::mt19937 rng(7);
  for (int n = 0; n < 300; ++n) {
    std::string raw;
    for (int i = 0; i < n; ++i) raw.push_back(static_cast<char>(rng()));
    std::string back;
    ASSERT_TRUE(decode_base64(encode_base64(raw), back));
    ASSERT_EQ(back, raw);
  }
}

}  // namespace
}  // namespace postino::smtp
