// libFuzzer target: the whole smtp::session fed a client byte stream, with a
// fake owner that resolves every request (any user and password log in,
// credit is ample, commits are accepted, the content step is the real one).
// The first bytes of an input choose where the stream is cut into reads;
// the rest is the stream. Asserted for every input:
//  - every reply line is "<3 digits>[ -]<text>CRLF", the multi-line ones
//    ending on a line with a space, and nothing else is ever written;
//  - one final reply per end of message: a 250 "queued as" follows a commit,
//    never two for one, and never without one;
//  - the replies do not depend on how the stream is cut, except where
//    PROTOCOL.md says they must (a refused DATA with text behind it in the
//    same read: synchronization error), which is then skipped;
//  - the session's body memory reservation is all given back at its end.
// Buffers: the input is libFuzzer's; everything else is this file's.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "postino/mime.h"
#include "postino/smtp.h"

namespace {

using namespace postino;
using namespace postino::smtp;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "smtp_session invariant: %s\n%s\n", what, detail.c_str());
  std::abort();
}

struct owner {
  account_settings account;
  int commits = 0;

  owner() {
    account.id = 7;
    account.username = "u";
    account.max_recipients = 50;
    account.max_segments = 10;
  }

  void resolve(session& s) {
    switch (s.pending()) {
      case request_kind::authenticate: {
        auth_result r{};
        r.result = s.pending_auth().password == "bad" ? auth_result::outcome::invalid : auth_result::outcome::ok;
        r.account = account;
        r.available = 1'000'000;
        s.resolve(r);
        break;
      }
      case request_kind::credit_check: s.resolve(credit_check_result{1'000'000}); break;
      case request_kind::rate_check: s.resolve(rate_check_result{true}); break;
      case request_kind::commit: {
        commit_result r{};
        r.result = commit_result::outcome::accepted;
        r.queue_id = "00000001";
        ++commits;
        s.resolve(r);
        break;
      }
      case request_kind::content: {
        const auto& req = s.pending_content();
        s.resolve(mime::read_content(*req.body, *req.account, req.limits));
        break;
      }
      case request_kind::relay_lookup: s.resolve(relay_result{nullptr}); break;
      case request_kind::none: break;
    }
  }
};

struct run_result {
  std::string replies;
  int commits = 0;
  bool sync_error = false;
};

// Feeds `stream` in reads that end at `cuts` (ascending offsets).
run_result run(std::string_view stream, const std::vector<std::size_t>& cuts, body_memory_budget& budget) {
  session_config cfg;
  cfg.hostname = "mx.test";
  cfg.max_message_size = 4096;
  cfg.max_pending_output = 1024;
  cfg.body_memory = &budget;
  owner o;
  run_result out;
  {
    session s(cfg, {1, "192.0.2.1"});
    s.start();
    std::size_t start = 0;
    for (std::size_t i = 0; i <= cuts.size() && !s.closing(); ++i) {
      const std::size_t end = i < cuts.size() ? cuts[i] : stream.size();
      std::string_view read = stream.substr(start, end - start);
      start = end;
      while (!s.closing()) {
        const std::size_t n = s.feed(read);
        read.remove_prefix(n);
        out.replies += s.output();
        s.output().clear();
        if (s.pending() != request_kind::none) {
          o.resolve(s);
          continue;
        }
        if (read.empty() || n == 0) break;
      }
    }
    out.replies += s.output();
  }
  out.commits = o.commits;
  out.sync_error = out.replies.find("554 5.5.0") != std::string::npos;
  if (budget.reserved.load() != 0) fail("body memory still reserved after the session", out.replies);
  return out;
}

void check_lines(const std::string& replies) {
  std::size_t pos = 0;
  while (pos < replies.size()) {
    const std::size_t eol = replies.find("\r\n", pos);
    if (eol == std::string::npos) fail("a reply without CRLF", replies.substr(pos));
    const std::string_view line(replies.data() + pos, eol - pos);
    const bool digits = line.size() >= 4 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' && line[1] <= '9' &&
                        line[2] >= '0' && line[2] <= '9';
    if (!digits || (line[3] != ' ' && line[3] != '-')) fail("a malformed reply line", std::string(line));
    if (line.find('\r') != std::string_view::npos || line.find('\n') != std::string_view::npos)
      fail("CR or LF inside a reply line", std::string(line));
    pos = eol + 2;
  }
  if (replies.empty()) return;
  const std::size_t before_last = replies.size() < 3 ? std::string::npos : replies.rfind("\r\n", replies.size() - 3);
  const std::size_t last = before_last == std::string::npos ? 0 : before_last + 2;
  if (replies[last + 3] == '-') fail("the last reply line is a continuation", replies);
}

// Reply lines that accept a message. Counted by their start: the client
// may choose " queued as " as its alphanumeric originator, which the 250 to
// MAIL then echoes (a false alarm of the first version of this target).
std::size_t accepted_lines(const std::string& replies) {
  constexpr std::string_view accepted = "250 2.0.0 Message accepted for delivery to: ";
  std::size_t n = 0;
  for (std::size_t at = 0; at < replies.size();) {
    const std::size_t eol = replies.find("\r\n", at);
    const std::string_view line(replies.data() + at, (eol == std::string::npos ? replies.size() : eol) - at);
    n += line.starts_with(accepted) && line.find(" queued as ") != std::string_view::npos;
    at = eol == std::string::npos ? replies.size() : eol + 2;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // Byte 0: how many cut points follow (0-7), each one byte (a position
  // scaled to the stream).
  const std::size_t ncuts = std::min<std::size_t>(data[0] & 7, size - 1);
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1 + ncuts, size - 1 - ncuts);
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < ncuts; ++i) cuts.push_back(stream.size() * data[1 + i] / 256);
  std::sort(cuts.begin(), cuts.end());

  body_memory_budget budget_split, budget_whole;
  budget_split.limit = budget_whole.limit = 1 << 20;
  const run_result split = run(stream, cuts, budget_split);
  check_lines(split.replies);
  const std::size_t queued = accepted_lines(split.replies);
  if (queued != static_cast<std::size_t>(split.commits))
    fail("commits and 'queued as' replies differ", split.replies);
  const run_result whole = run(stream, {}, budget_whole);
  if (!split.sync_error && !whole.sync_error && whole.replies != split.replies)
    fail("the replies depend on how the stream is cut", "whole:\n" + whole.replies + "\nsplit:\n" + split.replies);
  return 0;
}
