// The SMTP session: a pure state machine that consumes bytes and produces
// reply bytes and requests. It does no I/O, no hashing, no disk: whatever is
// slow or belongs to another shard is a request the owner resolves, at once or
// later. Buffers: the input view passed to feed() is owned by the caller and is
// only read during the call (command lines are parsed in place; DATA text is
// copied once, unstuffed, into the transaction's body). Output and the
// transaction belong to the session; the owner may move the whole message
// out while a commit is pending.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "postino/account.h"
#include "postino/message.h"
#include "postino/mime.h"

namespace postino::smtp {

// Debug tracing of a session's phase changes (connected, greeted,
// authenticated, mail, rcpt, the AUTH exchange, data): write() gets the
// connection number and a line such as "phase greeted -> authenticated (AUTH)",
// valid only during the call. Null (the default): no tracing, one branch per
// phase change.
struct phase_trace {
  void (*write)(void* context, std::uint64_t connection, std::string_view line) = nullptr;
  void* context = nullptr;
};

// The concurrent-connection limits (PROTOCOL.md 5), kept by the owner across
// shards; the session only asks, without I/O, and gives back exactly what it
// was granted (at its end, or when STARTTLS forgets the login).
class connection_gate {
 public:
  enum class admission : std::uint8_t { counted, uncounted, refused };
  virtual ~connection_gate() = default;
  // At connect: refused means 421 4.7.0 Too many connections instead of 220.
  virtual admission admit_peer(std::string_view peer_ip) = 0;
  virtual void leave_peer(std::string_view peer_ip) = 0;  // only after `counted`
  // At AUTH success: refused means 421 4.7.0 instead of 235.
  virtual admission admit_account(account_id account) = 0;
  virtual void leave_account(account_id account) = 0;     // only after `counted`
};

// Body memory of unfinished DATA over the whole process (PROTOCOL.md 5):
// each DATA reserves its declared SIZE (or the maximum) before its 354 and
// gives it back when the transaction ends; one atomic add per DATA.
struct body_memory_budget {
  std::atomic<std::int64_t> reserved{0};
  std::int64_t limit = 0;  // bytes; 0: no cap
};

// Per-listener settings; the session keeps a reference, so it must outlive it.
struct session_config {
  std::string hostname = "localhost";
  std::uint64_t max_message_size = 10485760;  // advertised as SIZE
  bool tls_available = false;                 // STARTTLS offered (a starttls listener)
  bool implicit_tls = false;                  // TLS from the first byte: active from the start
  // AUTH only inside TLS (538 5.7.11 before it, and EHLO offers no AUTH).
  bool require_tls_for_auth = false;
  // auth = "relay" (PROTOCOL.md 5a): no AUTH (EHLO offers none); each MAIL
  // asks which account relays for the client's address and the sender's
  // domain (a relay_lookup request), and gets 554 5.7.1 when none does.
  bool relay = false;
  bare_newline_policy bare_newline = bare_newline_policy::normalize;
  unsigned max_errors = 10;         // unknown verbs + syntax errors, then 421
  unsigned max_auth_failures = 3;   // per connection, then 421
  // The delivery queue's bound (PROTOCOL.md 4): while *delivery_backlog is at
  // or above delivery_backlog_limit, MAIL gets 452 4.3.1. Null: no bound.
  const std::atomic<std::int64_t>* delivery_backlog = nullptr;
  std::int64_t delivery_backlog_limit = 0;
  // Replies not yet taken by the owner above which feed() stops consuming
  // (a client that pipelines without reading gets no more replies queued
  // until it reads, as Postfix blocks in write): output stays bounded.
  std::size_t max_pending_output = 16 * 1024;
  mime::content_limits mime_limits;           // e-mail mode: parts and depth
  connection_gate* connections = nullptr;     // null: no connection limits
  body_memory_budget* body_memory = nullptr;  // null: no cap (452 4.3.1 at DATA over it)
  phase_trace trace;                          // debug logging; off by default
};

struct connection_info {
  std::uint64_t number = 0;  // connections since start, unique across shards
  std::string peer_ip;       // textual, as shown in the greeting
};

enum class request_kind : std::uint8_t { none, authenticate, credit_check, commit, rate_check, content, relay_lookup };

struct auth_request {
  std::string username;
  std::string password;
};

struct auth_result {
  // temporary_failure: 454 4.7.0 (the store failed, or this address is over
  // its failed-AUTH limit and no check ran); busy: 454 4.3.0, every check
  // queue of the process is full.
  enum class outcome : std::uint8_t { ok, invalid, temporary_failure, busy } result;
  account_settings account;     // valid when ok
  credit_units available = 0;   // credit still available, for the 235 line
};

struct credit_check_request {
  account_id account = 0;
  credit_units amount = 0;      // price of one segment to this recipient
};

struct credit_check_result {
  credit_units available = 0;   // the account's available credit now
};

// MAIL of an account with a rate limit (PROTOCOL.md 5): one message token.
// Accounts without a limit never make this request.
struct rate_check_request {
  account_id account = 0;
  std::uint32_t per_second = 0;  // the account's max_messages_per_second (> 0)
};

struct rate_check_result {
  bool allowed = false;         // false: 451 4.7.1, the transaction does not start
};

// MAIL on a relay listener: which account relays for this client address
// and envelope-sender domain (both views valid while the request is pending;
// the domain is empty for a sender without '@', which no account matches).
struct relay_request {
  std::string_view client_ip;
  std::string_view sender_domain;
};

struct relay_result {
  const account_settings* account = nullptr;  // read during resolve; null: 554 5.7.1 Relay access denied
};

// End of DATA: the content step (src/mime) on the stored body. The owner
// runs mime::read_content(*body, *account, limits) where it fits (at once
// for a small raw text, on a worker for anything GMime parses, so that no
// message stalls a shard) and resolves with its result. The body and the
// account stay untouched until then.
struct content_request {
  const std::string* body = nullptr;
  const account_settings* account = nullptr;
  mime::content_limits limits;
};

using originator_kind = postino::originator_kind;

// One mail transaction is the domain's message (include/model/postino/message.h):
// the session fills it; at end of DATA the owner takes it through the
// commit request, moving it out whole (the session keeps nothing of it).
using transaction = postino::message;

struct commit_result {
  enum class outcome : std::uint8_t { accepted, insufficient_credit, local_error } result;
  // When accepted: the queue id's text (queue_id::to_text), which the owner
  // keeps alive during resolve.
  std::string_view queue_id;
  credit_units need = 0;        // when insufficient_credit
  credit_units available = 0;   // when insufficient_credit
  // When accepted: the message's recipients, for the 250 line, if the owner
  // moved the message out of the session (it keeps them alive during
  // resolve); null: the session's own.
  const std::vector<std::string>* recipients = nullptr;
};

enum class timer_kind : std::uint8_t { command, data };

class session {
 public:
  // `preauthenticated` is set for an `auth = "none"` listener's account.
  session(const session_config& config, connection_info conn,
          const account_settings* preauthenticated = nullptr);
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  // Writes the 220 greeting to output().
  void start();

  // Consumes bytes from `input` and returns how many it took. It stops early
  // when a request becomes pending or the session is closing; the caller
  // keeps the rest and feeds it again after resolving the request.
  std::size_t feed(std::string_view input);

  request_kind pending() const;
  const auth_request& pending_auth() const;
  const credit_check_request& pending_credit_check() const;
  const rate_check_request& pending_rate_check() const;
  const content_request& pending_content() const;
  const relay_request& pending_relay() const;
  transaction& pending_commit();

  void resolve(const auth_result& r);
  void resolve(const credit_check_result& r);
  void resolve(const rate_check_result& r);
  void resolve(const commit_result& r);
  void resolve(mime::content_result r);
  void resolve(const relay_result& r);

  // Replies produced so far, in order. The owner sends them and clears it.
  std::string& output();
  // True once the session wants the connection closed after output is sent.
  bool closing() const;
  // True once, right after STARTTLS was accepted: the owner sends output()
  // in the clear and then speaks TLS (the session has already started over).
  bool take_starttls();
  // True while output() holds max_pending_output bytes or more: feed()
  // takes nothing until the owner has sent (and cleared) them.
  bool output_full() const;

  // The timer that applies now, and what to do when it fires.
  timer_kind current_timer() const;
  // DATA transactions begun (354 sent) so far: the owner times each one's
  // total from when this changes (a BDAT transaction's first chunk counts too).
  std::uint64_t data_started() const;
  void on_timeout();
  // Server shutdown: idle sessions get 421 4.3.2 now; a transaction in DATA
  // or waiting for its commit finishes first and then gets the 421.
  void on_shutdown();

  const connection_info& connection() const;

  // Counters the owner may export.
  bool authenticated() const;
  std::uint64_t messages_accepted() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace postino::smtp
