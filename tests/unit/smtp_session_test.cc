// The session's contract with its owner (include/smtp/postino/smtp.h) beyond what
// the golden transcripts show: feed() stopping at requests, timers, shutdown
// and timeout with requests in flight, the body handed over at commit, many
// pipelined transactions in one buffer, and the memory a parked session keeps.
// A global operator new counts heap bytes and allocations for the memory and
// copy checks. Inputs are test-owned strings.
#include <gtest/gtest.h>

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "postino/mime.h"
#include "postino/smtp.h"
#include "../../src/smtp/base64.h"

namespace {
std::atomic<long long> g_live_bytes{0};
std::atomic<long long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  g_live_bytes += static_cast<long long>(malloc_usable_size(p));
  ++g_allocations;
  return p;
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  g_live_bytes -= static_cast<long long>(malloc_usable_size(p));
  std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }

namespace postino::smtp {
namespace {

const std::string plain_login = "AUTH PLAIN " + encode_base64(std::string("\0acme\0pw", 8)) + "\r\n";

account_settings acme() {
  account_settings a;
  a.id = 11;
  a.username = "acme";
  return a;
}

// A big DATA body that is still one SMS: an e-mail whose short text comes
// with an attachment of `lines` lines of 98 `fill` characters.
const std::string big_mail_head =
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n"
    "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment\r\n\r\n";
const std::string big_mail_tail = "--b--\r\n";

// Resolves requests the way a well-behaved owner does: password "pw", plenty
// of credit, every commit accepted with a counting queue id.
struct owner {
  credit_units credit = 1000000;
  unsigned commits = 0;
  std::vector<transaction> committed;

  void resolve(session& s) {
    switch (s.pending()) {
      case request_kind::authenticate: {
        auth_result r{};
        r.result = s.pending_auth().password == "pw" ? auth_result::outcome::ok : auth_result::outcome::invalid;
        r.account = acme();
        r.available = credit;
        s.resolve(r);
        break;
      }
      case request_kind::credit_check: s.resolve(credit_check_result{credit}); break;
      case request_kind::rate_check: s.resolve(rate_check_result{true}); break;
      case request_kind::commit: {
        // The owner moves the whole message out, as the gateway does, and
        // lends the session its recipients for the 250 line.
        committed.push_back(std::move(s.pending_commit()));
        commit_result r{};
        r.result = commit_result::outcome::accepted;
        const std::string id = "Q" + std::to_string(++commits);
        r.queue_id = id;
        r.recipients = &committed.back().recipients;
        s.resolve(r);
        break;
      }
      case request_kind::content: {
        const auto& req = s.pending_content();
        s.resolve(mime::read_content(*req.body, *req.account, req.limits));
        break;
      }
      case request_kind::relay_lookup: {
        static const account_settings relayed = acme();
        s.resolve(relay_result{s.pending_relay().client_ip == "192.0.2.1" ? &relayed : nullptr});
        break;
      }
      case request_kind::none: break;
    }
  }

  // Feeds `input` in fragments of `fragment` bytes; returns all output.
  std::string drive(session& s, std::string_view input, std::size_t fragment = SIZE_MAX) {
    std::string out;
    for (std::size_t pos = 0; pos < input.size() && !s.closing(); pos += fragment) {
      std::string_view chunk = input.substr(pos, fragment);
      while (!s.closing()) {
        const std::size_t n = s.feed(chunk);
        chunk.remove_prefix(n);
        out += s.output();
        s.output().clear();
        // A feed also stops when its replies reach max_pending_output.
        if (s.pending() == request_kind::none && (chunk.empty() || n == 0)) break;
        resolve(s);
        out += s.output();
        s.output().clear();
      }
    }
    return out;
  }
};

session_config config() {
  session_config c;
  c.hostname = "mx.test";
  return c;
}

std::size_t count_of(std::string_view out, std::string_view line) {
  std::size_t n = 0;
  for (std::size_t at = out.find(line); at != std::string_view::npos; at = out.find(line, at + line.size())) ++n;
  return n;
}

std::string take(session& s) {
  std::string out = std::move(s.output());
  s.output().clear();
  return out;
}

TEST(smtp_session, feed_stops_at_a_request_and_takes_nothing_while_it_is_pending) {
  const auto cfg = config();
  session s(cfg, {5, "203.0.113.9"});
  s.start();
  EXPECT_EQ(take(s), "220 mx.test ESMTP Service ready. Connection 5 with [203.0.113.9]\r\n");
  const std::string ehlo = "EHLO x\r\n";
  const std::string input = ehlo + plain_login + "NOOP\r\n";
  EXPECT_EQ(s.feed(input), ehlo.size() + plain_login.size());
  EXPECT_EQ(s.pending(), request_kind::authenticate);
  EXPECT_EQ(s.pending_auth().username, "acme");
  EXPECT_EQ(s.pending_auth().password, "pw");
  EXPECT_EQ(s.feed("NOOP\r\n"), 0u);
  EXPECT_FALSE(s.authenticated());
  take(s);
  auth_result r{auth_result::outcome::ok, acme(), 42};
  s.resolve(r);
  EXPECT_EQ(take(s), "235 2.7.0 Authentication successful. CREDIT: 42 ID ACCOUNT: 11 STATUS: ACTIVE\r\n");
  EXPECT_TRUE(s.authenticated());
  EXPECT_TRUE(s.pending_auth().password.empty()) << "the password is not kept after the check";
  EXPECT_EQ(s.feed("NOOP\r\n"), 6u);
  EXPECT_EQ(take(s), "250 2.0.0 OK\r\n");
}

TEST(smtp_session, a_resolve_without_its_request_is_ignored) {
  const auto cfg = config();
  session s(cfg, {1, "::1"});
  s.start();
  take(s);
  s.resolve(commit_result{commit_result::outcome::accepted, "X", 0, 0});
  s.resolve(credit_check_result{5});
  s.resolve(auth_result{auth_result::outcome::ok, acme(), 1});
  EXPECT_EQ(take(s), "");
  EXPECT_FALSE(s.authenticated());
  EXPECT_EQ(s.messages_accepted(), 0u);
}

TEST(smtp_session, login_exchange_request_and_timers) {
  const auto cfg = config();
  session s(cfg, {1, "::1"});
  owner o;
  s.start();
  o.drive(s, "EHLO x\r\nAUTH LOGIN\r\n" + encode_base64("acme") + "\r\n");
  EXPECT_EQ(s.pending(), request_kind::none);
  s.feed(encode_base64("pw") + "\r\n");
  ASSERT_EQ(s.pending(), request_kind::authenticate);
  EXPECT_EQ(s.pending_auth().username, "acme");
  EXPECT_EQ(s.pending_auth().password, "pw");
  o.resolve(s);
  take(s);
  EXPECT_EQ(s.current_timer(), timer_kind::command);
  o.drive(s, "MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nhalf");
  EXPECT_EQ(s.current_timer(), timer_kind::data);
  o.drive(s, " and half\r\n.\r\n");
  EXPECT_EQ(s.current_timer(), timer_kind::command);
  EXPECT_EQ(s.messages_accepted(), 1u);
  ASSERT_EQ(o.committed.size(), 1u);
  EXPECT_EQ(o.committed[0].body, "half and half\r\n");
  EXPECT_EQ(o.committed[0].account, 11u);
  EXPECT_EQ(o.committed[0].originator, "ACME");
  EXPECT_EQ(o.committed[0].originator_type, originator_kind::alphanumeric);
  EXPECT_EQ(o.committed[0].price, 1);
  EXPECT_EQ(o.committed[0].segments, 1u);
}

TEST(smtp_session, feed_stops_right_after_the_terminator_for_the_commit) {
  const auto cfg = config();
  const auto pre = acme();
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  o.drive(s, "EHLO x\r\nMAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n");
  take(s);
  const std::string text = "hello\r\n.\r\n";
  EXPECT_EQ(s.feed(text + "QUIT\r\n"), text.size());
  ASSERT_EQ(s.pending(), request_kind::commit);
  EXPECT_EQ(s.pending_commit().body, "hello\r\n");
  EXPECT_EQ(s.pending_commit().recipients, std::vector<std::string>{"+393331234567"});
}

TEST(smtp_session, shutdown_waits_for_a_pending_commit) {
  const auto cfg = config();
  const auto pre = acme();
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  o.drive(s, "EHLO x\r\nMAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n");
  take(s);
  s.feed("text\r\n.\r\n");
  ASSERT_EQ(s.pending(), request_kind::commit);
  s.on_shutdown();
  EXPECT_FALSE(s.closing());
  EXPECT_EQ(take(s), "");
  s.resolve(commit_result{commit_result::outcome::accepted, "QID", 0, 0});
  EXPECT_EQ(take(s),
            "250 2.0.0 Message accepted for delivery to: +393331234567 queued as QID\r\n"
            "421 4.3.2 Service shutting down\r\n");
  EXPECT_TRUE(s.closing());
  EXPECT_EQ(s.feed("NOOP\r\n"), 0u);
}

TEST(smtp_session, shutdown_with_a_credit_check_in_flight_closes_at_once) {
  const auto cfg = config();
  const auto pre = acme();
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  o.drive(s, "EHLO x\r\nMAIL FROM:<ACME>\r\n");
  take(s);
  s.feed("RCPT TO:<+393331234567>\r\n");
  ASSERT_EQ(s.pending(), request_kind::credit_check);
  EXPECT_EQ(s.pending_credit_check().account, 11u);
  EXPECT_EQ(s.pending_credit_check().amount, 1);
  s.on_shutdown();
  EXPECT_TRUE(s.closing());
  EXPECT_EQ(take(s), "421 4.3.2 Service shutting down\r\n");
  s.resolve(credit_check_result{100});  // the answer arrives late: harmless, silent
  EXPECT_EQ(take(s), "");
  EXPECT_EQ(s.pending(), request_kind::none);
}

TEST(smtp_session, timeout_closes_and_nothing_more_is_read) {
  const auto cfg = config();
  session s(cfg, {1, "::1"});
  s.start();
  take(s);
  s.on_timeout();
  EXPECT_EQ(take(s), "421 4.4.2 mx.test Timeout, closing connection\r\n");
  EXPECT_TRUE(s.closing());
  EXPECT_EQ(s.feed("NOOP\r\n"), 0u);
  s.on_timeout();
  s.on_shutdown();
  EXPECT_EQ(take(s), "") << "a closing session says nothing more";
}

TEST(smtp_session, quit_consumes_only_its_own_line) {
  const auto cfg = config();
  session s(cfg, {1, "::1"});
  s.start();
  take(s);
  EXPECT_EQ(s.feed("QUIT\r\nNOOP\r\n"), 6u);
  EXPECT_TRUE(s.closing());
  EXPECT_EQ(take(s), "221 2.0.0 SMSC SMTP Server closing connection.\r\n");
}

TEST(smtp_session, refused_data_is_a_sync_error_only_with_bytes_behind_it) {
  const auto cfg = config();
  const auto pre = acme();
  {
    session s(cfg, {1, "::1"}, &pre);
    s.start();
    owner o;
    o.drive(s, "EHLO x\r\nMAIL FROM:<ACME>\r\n");
    take(s);
    EXPECT_EQ(o.drive(s, "DATA\r\n"), "503 5.5.1 ERROR: need RCPT command\r\n");
    EXPECT_FALSE(s.closing());
    EXPECT_EQ(o.drive(s, "DATA\r\ntext\r\n"),
              "503 5.5.1 ERROR: need RCPT command\r\n554 5.5.0 SMTP synchronization error\r\n");
    EXPECT_TRUE(s.closing());
  }
  {
    // An accepted DATA with its text behind it is pipelining, not an error.
    session s(cfg, {1, "::1"}, &pre);
    s.start();
    owner o;
    const std::string out =
        o.drive(s, "EHLO x\r\nMAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\ntext\r\n.\r\n");
    EXPECT_NE(out.find("queued as Q1\r\n"), std::string::npos) << out;
    EXPECT_FALSE(s.closing());
  }
}

TEST(smtp_session, starttls_discards_the_read_ahead) {
  auto cfg = config();
  cfg.tls_available = true;
  session s(cfg, {1, "::1"});
  s.start();
  take(s);
  EXPECT_EQ(s.feed("EHLO x\r\n"), 8u);
  EXPECT_NE(take(s).find("250-STARTTLS\r\n"), std::string::npos);
  const std::string input = "STARTTLS\r\nMAIL FROM:<INJECTED>\r\nRCPT";
  EXPECT_EQ(s.feed(input), input.size());
  EXPECT_EQ(take(s), "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(s.feed(" TO:<+39>\r\nNOOP\r\n"), 17u);
  EXPECT_EQ(take(s), "500 5.5.2 Command unrecognized\r\n250 2.0.0 OK\r\n")
      << "the partial RCPT line before the handshake is gone too";
}

TEST(smtp_session, preauthenticated_session) {
  const auto cfg = config();
  const auto pre = acme();
  session s(cfg, {1, "::1"}, &pre);
  EXPECT_TRUE(s.authenticated());
}

TEST(smtp_session, the_1001st_distinct_recipient_is_too_many) {
  const auto cfg = config();
  const auto pre = acme();
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  std::string input = "EHLO x\r\nMAIL FROM:<ACME>\r\n";
  for (int i = 0; i < 1001; ++i) input += "RCPT TO:<+39333" + std::to_string(1000000 + i) + ">\r\n";
  input += "RCPT TO:<+393331000000>\r\nDATA\r\nx\r\n.\r\n";
  const std::string out = o.drive(s, input);
  EXPECT_NE(out.find("452 4.5.3 Too many recipients\r\n"), std::string::npos);
  EXPECT_NE(out.find("250 2.1.5 +393331000000 ...Recipient Ok\r\n"), std::string::npos);
  ASSERT_EQ(o.committed.size(), 1u);
  EXPECT_EQ(o.committed[0].recipients.size(), 1000u);
  EXPECT_EQ(o.committed[0].price, 1000);
  EXPECT_EQ(o.committed[0].recipients[999], "+393331000999");
}

// Duplicates are found through the key set as it grows past many
// resizes, numbers of different lengths never collide, and the next
// transaction starts with an empty set.
TEST(smtp_session, duplicates_are_found_among_thousands_and_forgotten_after_the_message) {
  const auto cfg = config();
  auto pre = acme();
  pre.max_recipients = 5000;
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  std::string input = "EHLO x\r\nMAIL FROM:<ACME>\r\n";
  for (int i = 0; i < 3000; ++i) {
    input += "RCPT TO:<+39333" + std::to_string(1000000 + i) + ">\r\n";
    if (i % 7 == 0) input += "RCPT TO:<+39333" + std::to_string(1000000 + i / 2) + ">\r\n";  // seen already
  }
  input += "RCPT TO:<+3933310000000>\r\n";  // one digit longer than +393331000000: distinct
  input += "DATA\r\nx\r\n.\r\nMAIL FROM:<ACME>\r\nRCPT TO:<+393331000000>\r\nDATA\r\ny\r\n.\r\n";
  o.drive(s, input);
  ASSERT_EQ(o.committed.size(), 2u);
  EXPECT_EQ(o.committed[0].recipients.size(), 3001u);
  EXPECT_EQ(o.committed[0].price, 3001);
  EXPECT_EQ(o.committed[0].recipients.back(), "+3933310000000");
  EXPECT_EQ(o.committed[1].recipients, (std::vector<std::string>{"+393331000000"}));
}

// Many transactions pipelined into one buffer: the replies are the same
// sequence whatever the read boundaries.
TEST(smtp_session, many_transactions_in_one_buffer) {
  const auto cfg = config();
  std::string input = "EHLO x\r\n" + plain_login;
  std::string expected_tail;
  for (int i = 0; i < 50; ++i) {
    const std::string rcpt = "+39347" + std::to_string(1000000 + i);
    input += "MAIL FROM:<ACME>\r\nRCPT TO:<" + rcpt + ">\r\nRCPT TO:<" + rcpt + ">\r\nDATA\r\nmessage " +
             std::to_string(i) + "\r\n..\r\n.\r\n";
    expected_tail += "250 2.1.0 ACME ...Sender Ok\r\n";
    expected_tail += "250 2.1.5 " + rcpt + " ...Recipient Ok\r\n";
    expected_tail += "250 2.1.5 " + rcpt + " ...Recipient Ok\r\n";
    expected_tail += "354 Enter Text Message, end with <CRLF>.<CRLF>\r\n";
    expected_tail += "250 2.0.0 Message accepted for delivery to: " + rcpt + " queued as Q" + std::to_string(i + 1) + "\r\n";
  }
  input += "QUIT\r\n";
  expected_tail += "221 2.0.0 SMSC SMTP Server closing connection.\r\n";
  for (std::size_t fragment : {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{1500}, input.size()}) {
    session s(cfg, {1, "::1"});
    owner o;
    s.start();
    const std::string out = take(s) + o.drive(s, input, fragment);
    ASSERT_TRUE(out.size() >= expected_tail.size()) << out;
    EXPECT_EQ(out.substr(out.size() - expected_tail.size()), expected_tail) << "fragment " << fragment;
    ASSERT_EQ(o.committed.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(o.committed[i].body, "message " + std::to_string(i) + "\r\n.\r\n");
    EXPECT_EQ(s.messages_accepted(), 50u);
    EXPECT_TRUE(s.closing());
  }
}

// A parked session (DESIGN.md): well under 4 KiB including the pimpl, even
// after a transaction with 1000 recipients and a 200 KB body.
TEST(smtp_session, an_idle_session_is_small_after_a_big_transaction) {
  const auto cfg = config();
  std::string big = "EHLO x\r\n" + plain_login + "MAIL FROM:<ACME>\r\n";
  for (int i = 0; i < 1000; ++i) big += "RCPT TO:<+39333" + std::to_string(1000000 + i) + ">\r\n";
  big += "DATA\r\n" + big_mail_head;
  for (int i = 0; i < 2000; ++i) big += std::string(98, 'x') + "\r\n";
  big += big_mail_tail + ".\r\n";
  const std::string mail_line = "MAIL FROM:<ACME>" + std::string(900, ' ');

  // The first run warms up what is process-wide (libphonenumber's metadata,
  // function-local statics); the second is measured.
  for (int run = 0; run < 2; ++run) {
    const long long before = g_live_bytes.load();
    auto s = std::make_unique<session>(cfg, connection_info{1, "192.0.2.1"});
    s->start();
    owner o;
    o.drive(*s, big, 4096);
    o.committed.clear();
    o.committed.shrink_to_fit();
    // A long MAIL line split across reads went through the carry buffer.
    o.drive(*s, "RSET\r\n" + mail_line, 100);
    o.drive(*s, "\r\nRSET\r\n", 100);
    std::string().swap(s->output());  // the owner sent everything and parks the session
    const long long idle = g_live_bytes.load() - before;
    EXPECT_EQ(s->messages_accepted(), 1u);
    s.reset();
    if (run == 0) continue;
    EXPECT_LT(idle, 4096) << "bytes held by an idle session";
    EXPECT_EQ(g_live_bytes.load(), before) << "everything is released with the session";
    ::testing::Test::RecordProperty("idle_bytes", std::to_string(idle));
  }
}

TEST(smtp_session, an_idle_authenticated_session_is_small) {
  const auto cfg = config();
  const long long before = g_live_bytes.load();
  auto s = std::make_unique<session>(cfg, connection_info{123456, "2001:db8::1"});
  s->start();
  owner o;
  o.drive(*s, "EHLO client.example.com\r\n" + plain_login);
  std::string().swap(s->output());
  ::testing::Test::RecordProperty("idle_bytes", std::to_string(g_live_bytes.load() - before));
  EXPECT_LT(g_live_bytes.load() - before, 2048);
}

// Command lines are parsed in place: a pipeline of NOOP/RSET lines in one
// view allocates nothing once the output has room.
TEST(smtp_session, command_lines_are_parsed_without_allocation) {
  const auto cfg = config();
  session s(cfg, {1, "::1"});
  s.start();
  s.output().reserve(2048);
  std::string input;
  for (int i = 0; i < 100; ++i) input += i % 2 == 0 ? "NOOP\r\n" : "RSET\r\n";
  const long long before = g_allocations.load();
  EXPECT_EQ(s.feed(input), input.size());
  EXPECT_EQ(g_allocations.load() - before, 0);
}

// Replies are static data or written straight into the output (replies.h):
// once a transaction's own buffers have grown, a whole envelope (EHLO's
// multi-line reply, MAIL's and RCPT's lines with their addresses, RSET)
// allocates nothing.
TEST(smtp_session, an_envelope_allocates_nothing_once_warm) {
  const auto cfg = config();
  const auto pre = acme();
  session s(cfg, {1, "::1"}, &pre);
  s.start();
  s.output().reserve(2048);
  const std::string_view envelope =
      "EHLO client.example\r\nMAIL FROM:<+393401234567>\r\nRCPT TO:<+393331234567>\r\nRSET\r\n";
  long long allocations = 0;
  for (int round = 0; round < 20; ++round) {
    const long long before = g_allocations.load();
    std::size_t n = s.feed(envelope);
    ASSERT_EQ(s.pending(), request_kind::credit_check) << take(s);
    s.resolve(credit_check_result{1000});
    n += s.feed(envelope.substr(n));
    ASSERT_EQ(n, envelope.size());
    if (round > 0) allocations += g_allocations.load() - before;
    ASSERT_NE(s.output().find("250 2.1.5 +393331234567 ...Recipient Ok\r\n250 2.0.0 OK\r\n"), std::string::npos);
    s.output().clear();
  }
  EXPECT_EQ(allocations, 0);
}

// The body is copied once, straight from the input views: appending a 1 MB
// message costs only the body string's own geometric growth.
TEST(smtp_session, data_text_is_appended_without_per_line_allocations) {
  const auto cfg = config();
  const auto pre = acme();
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  o.drive(s, "EHLO x\r\nMAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n");
  take(s);
  std::string text = big_mail_head;
  for (int i = 0; i < 10000; ++i) text += std::string(98, 'y') + "\r\n";
  text += big_mail_tail;
  const long long before = g_allocations.load();
  for (std::size_t pos = 0; pos < text.size(); pos += 65536) {
    ASSERT_EQ(s.feed(std::string_view(text).substr(pos, 65536)), std::min<std::size_t>(65536, text.size() - pos));
  }
  EXPECT_LT(g_allocations.load() - before, 40);
  s.feed(".\r\n");
  ASSERT_EQ(s.pending(), request_kind::content) << take(s);  // an e-mail: the owner reads it off the loop
  o.resolve(s);
  ASSERT_EQ(s.pending(), request_kind::commit) << take(s);
  EXPECT_EQ(s.pending_commit().body, text);
  EXPECT_EQ(s.pending_commit().sms_text, "see the attachment");
}

}  // namespace
}  // namespace postino::smtp

namespace postino::smtp {
namespace {

// Issue 4: the content step at the terminator and per-destination prices.
account_settings priced() {
  account_settings a = acme();
  a.unit_price = 2;
  a.max_segments = 3;
  a.prices = std::make_shared<const price_table>(price_table{{"3934", 5, false}, {"393", 3, true}});
  return a;
}

TEST(smtp_session, rcpt_checks_one_segment_at_the_destination_price) {
  const auto cfg = config();
  const auto pre = priced();
  session s(cfg, {1, "::1"}, &pre);
  s.start();
  s.feed("EHLO x\r\nMAIL FROM:<ACME>\r\nRCPT TO:<+393471234567>\r\n");
  ASSERT_EQ(s.pending(), request_kind::credit_check);
  EXPECT_EQ(s.pending_credit_check().amount, 5);
  s.resolve(credit_check_result{4});
  EXPECT_NE(take(s).find("452 4.2.2 Insufficient credit\r\n"), std::string::npos);
  s.feed("RCPT TO:<+393331234567>\r\n");
  ASSERT_EQ(s.pending(), request_kind::credit_check);
  EXPECT_EQ(s.pending_credit_check().amount, 3);
  s.resolve(credit_check_result{4});
  s.feed("RCPT TO:<+447911123456>\r\n");  // the cached answer covers the unit price 2
  EXPECT_EQ(s.pending(), request_kind::none);
  EXPECT_NE(take(s).find("250 2.1.5 +447911123456 ...Recipient Ok\r\n"), std::string::npos);
}

TEST(smtp_session, the_commit_carries_text_encoding_segments_and_price) {
  const auto cfg = config();
  const auto pre = priced();
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  std::string text(200, 'a');  // two GSM segments
  std::string out = o.drive(s, "EHLO x\r\nMAIL FROM:<ACME>\r\nRCPT TO:<+393471234567>\r\n"
                               "RCPT TO:<+393331234567>\r\nRCPT TO:<+447911123456>\r\nDATA\r\n" +
                                   text + "\r\n.\r\n");
  ASSERT_EQ(o.committed.size(), 1u) << out;
  const transaction& tx = o.committed[0];
  EXPECT_EQ(tx.body, text + "\r\n");
  EXPECT_EQ(tx.sms_text, text);
  EXPECT_EQ(tx.segments, 2u);
  EXPECT_EQ(tx.data_coding, 0x00);
  EXPECT_EQ(tx.price, 2 * (5 + 3 + 2));
  EXPECT_FALSE(tx.is_mms);
  // Issue 7: each recipient's own segment price, parallel to the recipients,
  // so a failed segment is refunded what it cost.
  EXPECT_EQ(tx.unit_prices, (std::vector<credit_units>{5, 3, 2}));
  credit_units sum = 0;
  for (credit_units u : tx.unit_prices) sum += u * tx.segments;
  EXPECT_EQ(sum, tx.price);
  // The next transaction starts clean: a UCS-2 text of one segment.
  o.drive(s, "MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n\xD0\x9F\xD1\x80\xD0\xB8\r\n.\r\n");
  ASSERT_EQ(o.committed.size(), 2u);
  EXPECT_EQ(o.committed[1].sms_text, "\xD0\x9F\xD1\x80\xD0\xB8");
  EXPECT_EQ(o.committed[1].data_coding, 0x08);
  EXPECT_EQ(o.committed[1].price, 3);
  EXPECT_TRUE(o.committed[1].unit_prices.empty()) << "one recipient: the price is its unit price";
}

TEST(smtp_session, unit_prices_follow_each_recipient_and_are_reset) {
  const auto cfg = config();
  const auto pre = priced();
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  // Two recipients with different prefix prices, in RCPT order.
  o.drive(s, "EHLO x\r\nMAIL FROM:<ACME>\r\nRCPT TO:<+447911123456>\r\nRCPT TO:<+393471234567>\r\n"
             "DATA\r\nhello\r\n.\r\n");
  ASSERT_EQ(o.committed.size(), 1u);
  EXPECT_EQ(o.committed[0].recipients, (std::vector<std::string>{"+447911123456", "+393471234567"}));
  EXPECT_EQ(o.committed[0].unit_prices, (std::vector<credit_units>{2, 5}));
  EXPECT_EQ(o.committed[0].price, 7);
  // A refused message and a RSET leave nothing behind for the next one.
  o.drive(s, "MAIL FROM:<ACME>\r\nRCPT TO:<+393471234567>\r\nDATA\r\n\r\n\r\n.\r\n"
             "MAIL FROM:<ACME>\r\nRCPT TO:<+393471234567>\r\nRSET\r\n"
             "MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nhi\r\n.\r\n");
  ASSERT_EQ(o.committed.size(), 2u);
  EXPECT_TRUE(o.committed[1].unit_prices.empty()) << "uniform prices carry no list";
}

// RFC 1870: SIZE= is the client's estimate. curl --upload-file and Python's
// smtplib.sendmail(msg.as_bytes()) declare the octets of an LF file, which the
// stored CRLF text exceeds; only the maximum refuses a text, at any read size.
TEST(smtp_session, a_text_over_its_declared_size_is_accepted_up_to_the_maximum) {
  auto cfg = config();
  cfg.max_message_size = 1000;
  std::string lf_text;
  for (int i = 0; i < 40; ++i) lf_text += "line " + std::to_string(10 + i) + "\n";  // 8 octets each
  const std::string in = "EHLO x\r\nMAIL FROM:<ACME> SIZE=" + std::to_string(lf_text.size()) +
                         "\r\nRCPT TO:<+393331234567>\r\nDATA\r\n" + lf_text + "\r\n.\r\n"
                         "MAIL FROM:<ACME> SIZE=1\r\nRCPT TO:<+393331234567>\r\nDATA\r\n" +
                         std::string(998, 'x') + "\r\n.\r\n"
                         "MAIL FROM:<ACME> SIZE=1\r\nRCPT TO:<+393331234567>\r\nDATA\r\n" +
                         std::string(500, 'y') + "\r\n" + std::string(499, 'y') + "\r\n.\r\n"
                         "QUIT\r\n";
  for (std::size_t fragment : {std::size_t{1}, std::size_t{7}, std::size_t{64}, in.size()}) {
    auto pre = acme();
    pre.max_segments = 10;  // the texts are 1 to 7 segments
    session s(cfg, {1, "::1"}, &pre);
    owner o;
    s.start();
    const std::string out = o.drive(s, in, fragment);
    ASSERT_EQ(o.committed.size(), 2u) << "fragment " << fragment << "\n" << out;
    // Each LF stored as CRLF, and the terminator's CRLF (curl's) an empty line.
    EXPECT_EQ(o.committed[0].body.size(), 40u * 9u + 2u);
    EXPECT_EQ(o.committed[1].body, std::string(998, 'x') + "\r\n") << "at the maximum, declared 1";
    // 1003 octets stored: over the maximum, whatever was declared.
    EXPECT_EQ(count_of(out, "552 5.3.4 Message too big\r\n"), 1u) << out;
    EXPECT_TRUE(out.ends_with("221 2.0.0 SMSC SMTP Server closing connection.\r\n")) << out;
  }
}

// PROTOCOL.md 1: a repeated parameter is a 501, which counts toward the error
// limit (section 5) like every 501.
TEST(smtp_session, a_repeated_parameter_is_a_counted_501) {
  const auto cfg = config();
  const auto pre = acme();
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  std::string in = "EHLO x\r\n";
  for (int i = 0; i < 9; ++i) in += "MAIL FROM:<ACME> SIZE=1 SIZE=1\r\n";
  in += "MAIL FROM:<ACME> BODY=8BITMIME\r\nRCPT TO:<+393331234567> X=1 x=2\r\nNOOP\r\n";
  const std::string out = o.drive(s, in);
  EXPECT_EQ(count_of(out, "501 5.5.4 Duplicate parameter SIZE\r\n"), 9u) << out;
  EXPECT_NE(out.find("250 2.1.0 ACME ...Sender Ok\r\n"), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("501 5.5.4 Duplicate parameter x\r\n421 4.7.0 Too many errors\r\n")) << out;
  EXPECT_TRUE(s.closing());
}

TEST(smtp_session, content_refusals_keep_the_session_in_sync) {
  const auto cfg = config();
  const auto pre = priced();
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  std::string out = o.drive(s, "EHLO x\r\nMAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n"
                               "\r\n\r\n.\r\n"
                               "MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n" +
                                   std::string(460, 'z') + "\r\n.\r\n"
                                   "MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n"
                                   "X-Mms-Message-Type: MM4_forward.REQ\r\nMIME-Version: 1.0\r\n"
                                   "Content-Type: image/jpeg\r\n\r\n/9j/\r\n.\r\n"
                                   "MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nok\r\n.\r\n");
  EXPECT_NE(out.find("354 Enter Text Message, end with <CRLF>.<CRLF>\r\n554 5.6.0 Empty message\r\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\r\n554 5.3.4 Message too long for SMS (4 segments, max 3)\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\n554 5.6.1 MMS not enabled for this account\r\n"), std::string::npos) << out;
  ASSERT_EQ(o.committed.size(), 1u);
  EXPECT_EQ(o.committed[0].sms_text, "ok");
  EXPECT_EQ(s.messages_accepted(), 1u);
}

TEST(smtp_session, an_mms_is_priced_per_recipient_and_keeps_its_body) {
  const auto cfg = config();
  auto pre = priced();
  pre.mms_enabled = true;
  pre.mms_price = 7;
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  const std::string mms =
      "X-Mms-Message-Type: MM4_forward.REQ\r\nX-Mms-Message-ID: <m1@mmsc>\r\nX-Mms-Ack-Request: Yes\r\n"
      "MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=q\r\n\r\n"
      "--q\r\nContent-Type: text/plain\r\n\r\nFoto\r\n"
      "--q\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n--q--\r\n";
  o.drive(s, "EHLO x\r\nMAIL FROM:<+393401234567/TYPE=PLMN@mmsc>\r\nRCPT TO:<+393331234567/TYPE=PLMN@mmsc>\r\n"
             "RCPT TO:<+393471234567/TYPE=PLMN@mmsc>\r\nDATA\r\n" + mms + ".\r\n");
  ASSERT_EQ(o.committed.size(), 1u);
  const transaction& tx = o.committed[0];
  EXPECT_TRUE(tx.is_mms);
  EXPECT_TRUE(tx.mm4_ack_owed);
  EXPECT_EQ(tx.mm4_message_id, "m1@mmsc");  // stored without the msg-id's <>
  EXPECT_EQ(tx.body, mms);
  EXPECT_EQ(tx.sms_text, "Foto");
  EXPECT_EQ(tx.segments, 1u);
  EXPECT_EQ(tx.price, 14);
  // The MMS price, not the recipients' SMS prefix prices (5 and 3): uniform,
  // so no per-recipient list.
  EXPECT_TRUE(tx.unit_prices.empty());
}

// The owner moves the whole message out at the commit (the journal, delivery
// and the message index share it): the 250 line then lists the recipients
// the owner lends back, and the next transaction starts empty.
TEST(smtp_session, a_message_moved_out_is_answered_from_the_owners_recipients) {
  owner o;
  const session_config c = config();
  session s(c, {1, "192.0.2.1"});
  s.start();
  const std::string out = o.drive(s, "EHLO c\r\n" + plain_login +
                                         "MAIL FROM:<+393331234567>\r\nRCPT TO:<+393471234567>\r\n"
                                         "RCPT TO:<+393351234567>\r\nDATA\r\nCiao\r\n.\r\n"
                                         "MAIL FROM:<+393331234567>\r\nRCPT TO:<+393471234567>\r\nDATA\r\n"
                                         "Ancora\r\n.\r\n");
  ASSERT_EQ(o.committed.size(), 2u);
  EXPECT_EQ(o.committed[0].sms_text, "Ciao");
  EXPECT_EQ(o.committed[0].recipients, (std::vector<std::string>{"+393471234567", "+393351234567"}));
  EXPECT_EQ(o.committed[1].recipients, (std::vector<std::string>{"+393471234567"}));
  EXPECT_NE(out.find("250 2.0.0 Message accepted for delivery to: +393471234567, +393351234567 queued as Q1\r\n"),
            std::string::npos);
  EXPECT_NE(out.find("250 2.0.0 Message accepted for delivery to: +393471234567 queued as Q2\r\n"), std::string::npos);
  EXPECT_TRUE(s.pending_commit().recipients.empty());
}

// PROTOCOL.md 1 / issue 19: a client that pipelines without reading gets no
// more replies queued once max_pending_output is reached; the rest of its
// input stays with the owner until the replies are taken.
TEST(smtp_session, feed_stops_once_the_replies_reach_their_bound) {
  auto cfg = config();
  cfg.max_pending_output = 4096;
  session s(cfg, {1, "::1"});
  s.start();
  std::string input;
  for (int i = 0; i < 10000; ++i) input += "EHLO x\r\n";
  const std::size_t used = s.feed(input);
  EXPECT_LT(used, input.size());
  EXPECT_TRUE(s.output_full());
  EXPECT_LT(s.output().size(), 4096u + 512u);
  EXPECT_EQ(s.feed(std::string_view(input).substr(used)), 0u);  // nothing until the owner sends
  s.output().clear();
  EXPECT_FALSE(s.output_full());
  EXPECT_GT(s.feed(std::string_view(input).substr(used)), 0u);
}

TEST(smtp_session, shutdown_waits_for_a_pending_content_step) {
  const auto cfg = config();
  const auto pre = acme();
  session s(cfg, {1, "::1"}, &pre);
  owner o;
  s.start();
  o.drive(s, "EHLO x\r\nMAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n");
  take(s);
  s.feed("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\ntext\r\n.\r\n");
  ASSERT_EQ(s.pending(), request_kind::content);
  EXPECT_EQ(s.pending_content().limits.max_parts, 1000u);
  s.on_shutdown();
  EXPECT_FALSE(s.closing());
  o.resolve(s);  // the content step, then the commit
  o.resolve(s);
  EXPECT_EQ(take(s),
            "250 2.0.0 Message accepted for delivery to: +393331234567 queued as Q1\r\n"
            "421 4.3.2 Service shutting down\r\n");
  EXPECT_TRUE(s.closing());
}

}  // namespace
}  // namespace postino::smtp
