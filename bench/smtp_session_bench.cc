// Micro-benchmarks for the whole SMTP session state machine
// (include/smtp/postino/smtp.h) with no I/O: requests (credit check, commit,
// authentication) are resolved inline, the message is moved out as the
// gateway does and dropped, and every commit gets
// the same queue id. Measured: one pipelined transaction on a persistent,
// pre-authenticated session (the W1 shape: the text, its terminator and the
// next MAIL/RCPT/DATA arrive in one read), one message to 1,000 recipients,
// and a whole short connection (greeting, EHLO, AUTH PLAIN, one message,
// QUIT: the W3 shape). The inputs are owned by the benchmark; the session
// owns its output, which is cleared after every read as the owner would after
// sending it.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "postino/mime.h"
#include "postino/smtp.h"
#include "bench_inputs.h"

namespace {

using namespace postino;
using namespace postino::smtp;

account_settings bench_account() {
  account_settings a;
  a.id = 7;
  a.username = "bench";
  return a;
}

session_config bench_config() {
  session_config c;
  c.hostname = "postino.bench";
  return c;
}

// Resolves whatever the session asks for, at once and favourably.
void resolve_inline(session& s, const account_settings& account) {
  switch (s.pending()) {
    case request_kind::authenticate: {
      auth_result r{auth_result::outcome::ok, account, 1000000000};
      s.resolve(r);
      break;
    }
    case request_kind::credit_check: s.resolve(credit_check_result{1000000000}); break;
    case request_kind::commit: {
      transaction for_journal = std::move(s.pending_commit());
      benchmark::DoNotOptimize(for_journal.body.data());
      commit_result r{commit_result::outcome::accepted, "0100000000000001", 0, 0, &for_journal.recipients};
      s.resolve(r);
      break;
    }
    case request_kind::rate_check: s.resolve(rate_check_result{true}); break;
    case request_kind::content: {
      const auto& req = s.pending_content();
      s.resolve(mime::read_content(*req.body, *req.account, req.limits));
      break;
    }
    case request_kind::relay_lookup: s.resolve(relay_result{&account}); break;
    case request_kind::none: break;
  }
}

// Feeds one read to the session the way the gateway does: feed, resolve,
// feed the rest, and clear the output the owner would have sent.
void feed_read(session& s, std::string_view read, const account_settings& account) {
  while (!read.empty() && !s.closing()) {
    read.remove_prefix(s.feed(read));
    if (s.pending() == request_kind::none) {
      if (!s.output_full()) break;
      s.output().clear();  // the replies reached their bound: the gateway sends them first
      continue;
    }
    resolve_inline(s, account);  // the content step leaves the commit pending
    resolve_inline(s, account);
    if (s.pending() != request_kind::none) std::abort();  // a request this owner cannot resolve
  }
  s.output().clear();
}

std::string envelope(std::size_t recipients) {
  std::string s = "MAIL FROM:<+393401234567>\r\n";
  for (std::size_t i = 0; i < recipients; ++i) s += "RCPT TO:<+39333" + std::to_string(1000000 + i) + ">\r\n";
  return s + "DATA\r\n";
}

std::string text_100() { return postino::bench::gsm_text(100) + "\r\n.\r\n"; }

// W1: steady state of a pipelining client on a persistent session.
void BM_session_pipelined_message(benchmark::State& state) {
  const auto recipients = static_cast<std::size_t>(state.range(0));
  const account_settings account = bench_account();
  const session_config config = bench_config();
  session s(config, {1, "127.0.0.1"}, &account);
  s.start();
  feed_read(s, "EHLO load.example\r\n", account);
  feed_read(s, envelope(recipients), account);
  const std::string read = text_100() + envelope(recipients);
  const std::uint64_t before = s.messages_accepted();
  for (auto _ : state) feed_read(s, read, account);
  if (s.messages_accepted() - before != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("a message was not accepted");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * read.size()));
}
BENCHMARK(BM_session_pipelined_message)->ArgName("rcpts")->Arg(1)->Arg(5)->Arg(1000);

// W3: one connection from greeting to QUIT, with AUTH PLAIN.
void BM_session_connection(benchmark::State& state) {
  const account_settings account = bench_account();
  const session_config config = bench_config();
  // "\0bench\0bench-pass" in base64.
  const std::vector<std::string> reads = {
      "EHLO load.example\r\n", "AUTH PLAIN AGJlbmNoAGJlbmNoLXBhc3M=\r\n", envelope(1), text_100() + "QUIT\r\n"};
  std::uint64_t accepted = 0;
  std::uint64_t number = 0;
  for (auto _ : state) {
    session s(config, {++number, "127.0.0.1"});
    s.start();
    s.output().clear();
    for (const auto& r : reads) feed_read(s, r, account);
    accepted += s.messages_accepted();
    if (!s.closing()) state.SkipWithError("QUIT did not close");
  }
  if (accepted != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("a message was not accepted");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_session_connection);

}  // namespace
