// postino-load's client session state machine, without sockets: what it
// writes after each reply, that pipelining puts the end of one text and the
// next envelope in one write, AUTH exchanges, refusals, and that a reply out
// of step stops the run instead of being miscounted.
#include <gtest/gtest.h>

#include <deque>
#include <regex>
#include <string>
#include <vector>

#include "../../tools/load/client_session.h"

namespace postino::load {
namespace {

struct fake_host final : session_host {
  std::uint64_t budget = 1000;
  std::uint64_t seq = 0;
  bool stop = false;
  bool wait_instead = false;
  std::vector<int> codes;
  int unexpected = 0;
  std::vector<std::pair<std::uint64_t, std::string>> acks;
  std::vector<std::uint64_t> failed, lost;
  std::vector<std::int64_t> probes;
  int ready = 0;
  std::string fatal_text;

  claim claim_message(client_session&, std::int64_t now) override {
    if (stop || seq >= budget) return {};
    if (wait_instead) return {claim_kind::wait};
    return {claim_kind::message, ++seq, now};
  }
  bool stopping() const override { return stop; }
  void on_reply_code(int code, bool expected) override {
    codes.push_back(code);
    unexpected += !expected;
  }
  void on_ack(std::uint64_t s, std::int64_t, std::string_view qid, std::int64_t) override {
    acks.emplace_back(s, std::string(qid));
  }
  void on_failed(std::uint64_t s) override { failed.push_back(s); }
  void on_inflight_lost(std::uint64_t s) override { lost.push_back(s); }
  void on_ready(client_session&, std::int64_t) override { ++ready; }
  void on_probe(std::int64_t rtt) override { probes.push_back(rtt); }
  void fatal(std::string m) override { fatal_text = std::move(m); }
};

struct load_session : ::testing::Test {
  settings cfg;
  message_spec spec;
  std::unique_ptr<message_builder> builder;
  rng random{1};
  session_config scfg;
  fake_host host;
  client_session s;

  void make(load_mode mode, auth_mode auth = auth_mode::none, bool allow_pipelining = true,
            tls_mode tls = tls_mode::none) {
    cfg.mode = mode;
    cfg.tls = tls;
    cfg.auth = auth;
    cfg.user = "user";
    cfg.password = "pw";
    cfg.no_pipelining = !allow_pipelining;
    cfg.ehlo = "me";
    spec.size = 20;
    builder = std::make_unique<message_builder>(spec, 1);
    scfg = session_config::make(cfg, *builder, random, 4);
    s.set_config(&scfg);
    s.on_connected();
  }
  // Feeds a reply and returns what the session wrote in answer.
  std::string say(const std::string& reply_text, bool expect_keep = true) {
    const bool keep = s.on_data(reply_text, host, 1000);
    EXPECT_EQ(keep, expect_keep) << reply_text << " fatal: " << host.fatal_text;
    std::string out;
    out.swap(s.out);
    return out;
  }
  static std::string ehlo(bool pipelining) {
    return std::string("250-host hello\r\n") + (pipelining ? "250-PIPELINING\r\n" : "") +
           "250-AUTH LOGIN PLAIN\r\n250 SIZE 1000\r\n";
  }
  // The MAIL a server offering SIZE gets: the text's size declared (RFC 1870).
  static bool sized_mail(const std::string& w) {
    static const std::regex mail("MAIL FROM:<load@postino\\.test> SIZE=[0-9]+\r\n");
    return std::regex_match(w, mail);
  }
  static int count(const std::string& hay, const std::string& needle) {
    int n = 0;
    for (std::size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
  }
};

TEST_F(load_session, pipelined_closed_loop_writes_one_group_per_message) {
  make(load_mode::closed);
  EXPECT_EQ(say("220 host ESMTP\r\n"), "EHLO me\r\n");
  std::string w = say(ehlo(true));
  EXPECT_TRUE(s.pipelining());
  EXPECT_EQ(host.ready, 1);
  EXPECT_TRUE(w.starts_with("MAIL FROM:<load@postino.test> SIZE=")) << w;
  EXPECT_NE(w.find("\r\nRCPT TO:<+39333"), std::string::npos) << w;
  EXPECT_TRUE(w.ends_with(">\r\nDATA\r\n"));
  EXPECT_EQ(say("250 2.1.0 ok\r\n250 2.1.5 ok\r\n"), "");
  // The text, its end, and the next envelope leave together.
  w = say("354 go ahead\r\n");
  EXPECT_TRUE(w.starts_with("n=4-1 ")) << w;
  EXPECT_NE(w.find("\r\n.\r\nMAIL FROM:<load@postino.test> SIZE="), std::string::npos) << w;
  EXPECT_TRUE(w.ends_with("DATA\r\n"));
  // The previous message's 250 and the next envelope's replies in one read.
  w = say("250 2.0.0 Message accepted for delivery to: +1 queued as Q1\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  ASSERT_EQ(host.acks.size(), 1u);
  EXPECT_EQ(host.acks[0], (std::pair<std::uint64_t, std::string>{1, "Q1"}));
  EXPECT_TRUE(w.starts_with("n=4-2 "));
  host.stop = true;  // no more messages: QUIT rides behind the last text
  w = say("250 2.0.0 queued as Q2\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_TRUE(w.starts_with("n=4-3 "));
  EXPECT_TRUE(w.ends_with("\r\n.\r\nQUIT\r\n")) << w;
  EXPECT_EQ(say("250 2.0.0 queued as Q3\r\n221 bye\r\n"), "");
  EXPECT_EQ(host.acks.size(), 3u);
  EXPECT_EQ(host.unexpected, 0);
  EXPECT_EQ(s.state(), client_session::phase::quitting);
  EXPECT_FALSE(s.on_disconnected(host));  // closed after QUIT: expected
}

TEST_F(load_session, without_pipelining_one_command_per_reply) {
  make(load_mode::closed, auth_mode::none, false);
  spec.rcpts = 2;
  builder = std::make_unique<message_builder>(spec, 1);
  scfg.builder = builder.get();
  say("220 host\r\n");
  std::string w = say(ehlo(true));
  EXPECT_FALSE(s.pipelining());
  EXPECT_TRUE(sized_mail(w)) << w;
  EXPECT_TRUE(say("250 ok\r\n").starts_with("RCPT TO:<"));
  EXPECT_TRUE(say("250 ok\r\n").starts_with("RCPT TO:<"));
  EXPECT_EQ(say("250 ok\r\n"), "DATA\r\n");
  w = say("354 go\r\n");
  EXPECT_TRUE(w.ends_with("\r\n.\r\n")) << w;
  EXPECT_EQ(count(w, "MAIL"), 0);
  EXPECT_TRUE(sized_mail(say("250 queued as A\r\n")));
}

TEST_F(load_session, server_without_pipelining_is_not_pipelined) {
  make(load_mode::closed);
  say("220 host\r\n");
  EXPECT_TRUE(sized_mail(say(ehlo(false))));
  EXPECT_FALSE(s.pipelining());
}

TEST_F(load_session, size_is_declared_only_where_the_server_offers_it) {
  make(load_mode::closed);
  say("220 host\r\n");
  EXPECT_EQ(say("250-host hello\r\n250 AUTH LOGIN PLAIN\r\n"), "MAIL FROM:<load@postino.test>\r\n");
}

TEST_F(load_session, auth_plain_and_login) {
  make(load_mode::closed, auth_mode::plain);
  say("220 host\r\n");
  EXPECT_EQ(say(ehlo(true)), "AUTH PLAIN AHVzZXIAcHc=\r\n");
  EXPECT_EQ(host.ready, 0);
  EXPECT_TRUE(say("235 2.7.0 Authentication successful\r\n").starts_with("MAIL FROM:"));
  EXPECT_EQ(host.ready, 1);

  make(load_mode::closed, auth_mode::login);  // on_connected starts afresh
  say("220 host\r\n");
  EXPECT_EQ(say(ehlo(true)), "AUTH LOGIN\r\n");
  EXPECT_EQ(say("334 VXNlcm5hbWU6\r\n"), "dXNlcg==\r\n");
  EXPECT_EQ(say("334 UGFzc3dvcmQ6\r\n"), "cHc=\r\n");
  EXPECT_TRUE(say("235 2.7.0 ok\r\n").starts_with("MAIL FROM:"));
}

TEST_F(load_session, failed_auth_stops_the_run) {
  make(load_mode::closed, auth_mode::plain);
  say("220 host\r\n");
  say(ehlo(true));
  say("535 5.7.8 Authentication credentials invalid\r\n", false);
  EXPECT_NE(host.fatal_text.find("authentication failed: 535"), std::string::npos) << host.fatal_text;
}

TEST_F(load_session, refused_data_resets_and_goes_on_in_the_same_write) {
  make(load_mode::closed);
  say("220 host\r\n");
  say(ehlo(true));
  const std::string w = say("250 ok\r\n553 5.1.3 Invalid recipient\r\n503 5.5.1 ERROR: need RCPT command\r\n");
  EXPECT_TRUE(w.starts_with("RSET\r\nMAIL FROM:")) << w;
  EXPECT_EQ(host.failed, (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(host.unexpected, 2);
  EXPECT_EQ(say("250 2.0.0 OK\r\n"), "");  // RSET's reply asks nothing more
  EXPECT_TRUE(say("250 ok\r\n250 ok\r\n354 go\r\n").starts_with("n=4-2 "));
}

// --bdat: envelope and chunk in one write, one message at a time; a
// refused chunk is followed by RSET; a server without CHUNKING stops the run.
TEST_F(load_session, bdat_sends_envelope_and_chunk_together) {
  cfg.bdat = true;
  make(load_mode::closed);
  say("220 host\r\n");
  std::string w = say("250-host hello\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 1000\r\n");
  const std::size_t bdat = w.find("\r\nBDAT ");
  ASSERT_NE(bdat, std::string::npos) << w;
  EXPECT_EQ(w.find("DATA\r\n"), std::string::npos) << w;
  const std::size_t eol = w.find("\r\n", bdat + 2);
  const std::string command = w.substr(bdat + 2, eol - bdat - 2);
  const std::string chunk = w.substr(eol + 2);
  EXPECT_EQ(command, "BDAT " + std::to_string(chunk.size()) + " LAST") << w;
  EXPECT_TRUE(chunk.starts_with("n=4-1 ")) << chunk;
  EXPECT_TRUE(chunk.ends_with("\r\n")) << chunk;
  EXPECT_EQ(chunk.find("\r\n.\r\n"), std::string::npos) << chunk;
  EXPECT_FALSE(s.free_for_message());  // its end reply first
  w = say("250 ok\r\n250 ok\r\n250 2.0.0 Message accepted queued as Q1\r\n");
  ASSERT_EQ(host.acks.size(), 1u);
  EXPECT_TRUE(w.starts_with("MAIL FROM:")) << w;
  w = say("250 ok\r\n250 ok\r\n552 5.3.4 Message too big\r\n");
  EXPECT_EQ(w, "RSET\r\n");
  EXPECT_EQ(host.failed, (std::vector<std::uint64_t>{2}));
  EXPECT_TRUE(say("250 2.0.0 OK\r\n").starts_with("MAIL FROM:"));
  EXPECT_EQ(host.unexpected, 1);
}

TEST_F(load_session, bdat_without_chunking_stops_the_run) {
  cfg.bdat = true;
  make(load_mode::closed);
  say("220 host\r\n");
  say(ehlo(true), false);
  EXPECT_NE(host.fatal_text.find("CHUNKING"), std::string::npos) << host.fatal_text;
}

TEST_F(load_session, refused_message_is_counted_not_acked) {
  make(load_mode::closed);
  say("220 host\r\n");
  say(ehlo(true));
  say("250 ok\r\n250 ok\r\n354 go\r\n");
  say("554 5.3.4 Message too long for SMS\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_TRUE(host.acks.empty());
  EXPECT_EQ(host.failed, (std::vector<std::uint64_t>{1}));
}

TEST_F(load_session, reply_with_nothing_outstanding_is_a_desync) {
  make(load_mode::idle);
  say("220 host\r\n");
  say(ehlo(true));  // idle: nothing more is asked
  say("250 extra\r\n", false);
  EXPECT_NE(host.fatal_text.find("protocol desync"), std::string::npos) << host.fatal_text;
}

TEST_F(load_session, reply_that_cannot_answer_its_command_is_a_desync) {
  make(load_mode::closed);
  say("220 host\r\n");
  say(ehlo(true));
  // One reply too many shifts everything: a 250 lands on DATA.
  say("250 ok\r\n250 ok\r\n250 ok\r\n", false);
  EXPECT_NE(host.fatal_text.find("cannot answer DATA"), std::string::npos) << host.fatal_text;
}

TEST_F(load_session, garbage_is_a_desync) {
  make(load_mode::closed);
  say("220 host\r\n");
  say("garbage\r\n", false);
  EXPECT_NE(host.fatal_text.find("not a reply line"), std::string::npos) << host.fatal_text;
}

TEST_F(load_session, lost_connection_leaves_the_ended_text_in_flight) {
  make(load_mode::closed);
  say("220 host\r\n");
  say(ehlo(true));
  say("250 ok\r\n250 ok\r\n354 go\r\n");  // text of 1 and envelope of 2 sent
  EXPECT_TRUE(s.on_disconnected(host));
  EXPECT_EQ(host.lost, (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(host.failed, (std::vector<std::uint64_t>{2}));
}

TEST_F(load_session, a_421_answer_to_the_text_is_a_refusal_and_ends_the_session) {
  make(load_mode::closed);
  say("220 host\r\n");
  say(ehlo(true));
  say("250 ok\r\n250 ok\r\n354 go\r\n");
  say("421 4.3.2 Service shutting down\r\n", false);
  EXPECT_FALSE(s.on_disconnected(host));
  EXPECT_TRUE(host.lost.empty());
  EXPECT_EQ(host.failed.size(), 2u);
}

TEST_F(load_session, unsolicited_421_is_a_goodbye_not_a_desync) {
  make(load_mode::idle);
  say("220 host\r\n");
  say(ehlo(true));
  say("421 4.4.2 host Timeout, closing connection\r\n", false);
  EXPECT_TRUE(host.fatal_text.empty());
  EXPECT_EQ(host.unexpected, 1);
}

TEST_F(load_session, churn_sends_one_message_then_quits) {
  make(load_mode::churn);
  say("220 host\r\n");
  say(ehlo(true));
  const std::string w = say("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_TRUE(w.ends_with("\r\n.\r\nQUIT\r\n")) << w;
  say("250 queued as X\r\n221 bye\r\n");
  EXPECT_EQ(host.acks.size(), 1u);
  EXPECT_EQ(s.state(), client_session::phase::quitting);
}

TEST_F(load_session, idle_probes_with_noop_and_quits_when_stopping) {
  make(load_mode::idle);
  say("220 host\r\n");
  EXPECT_EQ(say(ehlo(true)), "");
  s.probe(400);
  EXPECT_EQ(s.out, "NOOP\r\n");
  s.out.clear();
  say("250 2.0.0 OK\r\n");
  ASSERT_EQ(host.probes.size(), 1u);
  EXPECT_EQ(host.probes[0], 600);
  host.stop = true;
  s.probe(1000);
  s.out.clear();
  EXPECT_EQ(say("250 2.0.0 OK\r\n"), "QUIT\r\n");
}

TEST_F(load_session, open_loop_session_waits_while_free) {
  make(load_mode::open);
  host.wait_instead = true;
  say("220 host\r\n");
  EXPECT_EQ(say(ehlo(true)), "");
  EXPECT_TRUE(s.free_for_message());
  s.begin_message({claim_kind::message, 7, 100});
  EXPECT_FALSE(s.free_for_message());
  EXPECT_TRUE(s.out.starts_with("MAIL FROM:"));
  s.out.clear();
  const std::string w = say("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_TRUE(w.starts_with("n=4-7 "));
  EXPECT_TRUE(w.ends_with("\r\n.\r\n"));  // nothing was due: no next envelope
  EXPECT_TRUE(s.free_for_message());     // pipelining: free while the reply is pending
}

TEST_F(load_session, failed_ehlo_falls_back_to_helo) {
  make(load_mode::closed);
  say("220 host\r\n");
  EXPECT_EQ(say("502 5.5.1 Command not implemented\r\n"), "HELO me\r\n");
  EXPECT_TRUE(say("250 host\r\n").starts_with("MAIL FROM:"));
  EXPECT_FALSE(s.pipelining());
}

}  // namespace
}  // namespace postino::load

namespace postino::load {
namespace {

TEST_F(load_session, starttls_asks_the_host_for_tls_and_starts_again_with_ehlo) {
  make(load_mode::closed, auth_mode::plain, true, tls_mode::starttls);
  EXPECT_EQ(say("220 host\r\n"), "EHLO me\r\n");
  // Before TLS: STARTTLS alone, no AUTH even though it is offered, no MAIL.
  EXPECT_EQ(say("250-host\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"), "STARTTLS\r\n");
  EXPECT_EQ(host.ready, 0);
  // Plaintext after the 220 (an injection) is never parsed: no reply is
  // counted for it and nothing is written.
  EXPECT_EQ(say("220 2.0.0 Ready to start TLS\r\n250 2.0.0 OK\r\n"), "");
  EXPECT_EQ(host.codes, (std::vector<int>{220, 250, 220}));
  EXPECT_EQ(s.state(), client_session::phase::starting_tls);
  EXPECT_TRUE(s.waiting());
  EXPECT_TRUE(s.take_tls_request());
  EXPECT_FALSE(s.take_tls_request());  // once
  s.on_tls_established();
  EXPECT_TRUE(s.tls_active());
  std::string w;
  w.swap(s.out);
  EXPECT_EQ(w, "EHLO me\r\n");
  EXPECT_TRUE(say("250-host\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n").starts_with("AUTH PLAIN "));
  EXPECT_TRUE(say("235 2.7.0 ok\r\n").starts_with("MAIL FROM:"));
  EXPECT_EQ(host.ready, 1);
  EXPECT_TRUE(host.fatal_text.empty()) << host.fatal_text;
}

TEST_F(load_session, starttls_stops_when_the_server_does_not_offer_it) {
  make(load_mode::closed, auth_mode::none, true, tls_mode::starttls);
  say("220 host\r\n");
  say(ehlo(true), false);
  EXPECT_NE(host.fatal_text.find("does not offer STARTTLS"), std::string::npos) << host.fatal_text;
}

TEST_F(load_session, starttls_refused_stops_the_run) {
  make(load_mode::closed, auth_mode::none, true, tls_mode::starttls);
  say("220 host\r\n");
  EXPECT_EQ(say("250-host\r\n250 STARTTLS\r\n"), "STARTTLS\r\n");
  say("454 4.7.0 TLS not available\r\n", false);
  EXPECT_NE(host.fatal_text.find("STARTTLS refused"), std::string::npos) << host.fatal_text;
  EXPECT_FALSE(s.take_tls_request());
}

TEST_F(load_session, a_new_connection_forgets_tls) {
  make(load_mode::closed, auth_mode::none, true, tls_mode::starttls);
  say("220 host\r\n");
  say("250-host\r\n250 STARTTLS\r\n");
  say("220 go\r\n");
  s.take_tls_request();
  s.on_tls_established();
  s.on_disconnected(host);
  s.on_connected();
  EXPECT_FALSE(s.tls_active());
  say("220 host\r\n");
  EXPECT_EQ(say("250-host\r\n250 STARTTLS\r\n"), "STARTTLS\r\n");  // TLS again on the new connection
}

}  // namespace
}  // namespace postino::load
