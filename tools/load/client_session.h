// One postino-load SMTP client connection as a pure state machine: it takes
// the server's bytes and decides what to say next, appending commands to its
// output buffer; the thread that owns it (the session_host) does the I/O,
// the clock, the message budget and the bookkeeping. Every reply is matched
// against the command it answers (a queue of expected replies, in order, as
// RFC 2920 pipelining requires); a reply with nothing outstanding or bytes
// that are not a reply stop the run. With pipelining the end of one message's
// text, the next MAIL, its RCPTs and DATA leave in one write; the text itself
// waits for the 354. The session owns its parser, its output buffers and its
// queue of expected replies; the shared config and builder belong to the host.
// With STARTTLS the session asks its host for TLS after the 220 (the host
// owns the TLS connection and feeds the session plaintext) and starts again
// with EHLO once the host says the handshake is done (RFC 3207).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "message_builder.h"
#include "reply_parser.h"
#include "settings.h"

namespace postino::load {

enum class claim_kind { message, wait, done };

struct claim {
  claim_kind kind = claim_kind::done;
  std::uint64_t seq = 0;
  std::int64_t start_ns = 0;  // latency is measured from here (the due time in open loop)
};

class client_session;

class session_host {
 public:
  virtual ~session_host() = default;
  // A message for s to send now, a request to wait for one (open loop: s is
  // free and the host remembers it), or none at all (the session quits).
  virtual claim claim_message(client_session& s, std::int64_t now) = 0;
  virtual bool stopping() const = 0;
  virtual void on_reply_code(int code, bool expected) = 0;
  virtual void on_ack(std::uint64_t seq, std::int64_t start_ns, std::string_view queue_id, std::int64_t now) = 0;
  virtual void on_failed(std::uint64_t seq) = 0;
  virtual void on_inflight_lost(std::uint64_t seq) = 0;
  virtual void on_ready(client_session& s, std::int64_t now) = 0;
  virtual void on_probe(std::int64_t rtt_ns) = 0;
  virtual void fatal(std::string message) = 0;
};

// What every session of one thread says the same way, built once.
struct session_config {
  load_mode mode = load_mode::closed;
  auth_mode auth = auth_mode::none;
  bool allow_pipelining = true;
  bool bdat = false;      // texts go as BDAT <n> LAST chunks (RFC 3030), not DATA
  bool starttls = false;  // STARTTLS after the first EHLO
  std::string ehlo_line;   // "EHLO name\r\n"
  std::string helo_line;   // "HELO name\r\n"
  std::string auth_line;   // "AUTH PLAIN <b64>\r\n" or "AUTH LOGIN\r\n"
  std::string user_line;   // base64 user, for LOGIN
  std::string pass_line;   // base64 password, for LOGIN
  const message_builder* builder = nullptr;
  rng* random = nullptr;
  std::uint64_t thread_id = 0;  // the <thread> of every nonce

  static session_config make(const settings& s, const message_builder& b, rng& r, std::uint64_t thread_id) {
    session_config c;
    c.mode = s.mode;
    c.auth = s.auth;
    c.allow_pipelining = !s.no_pipelining;
    c.bdat = s.bdat;
    c.starttls = s.tls == tls_mode::starttls;
    c.ehlo_line = "EHLO " + s.ehlo + "\r\n";
    c.helo_line = "HELO " + s.ehlo + "\r\n";
    if (s.auth == auth_mode::plain) c.auth_line = "AUTH PLAIN " + auth_plain_response(s.user, s.password) + "\r\n";
    if (s.auth == auth_mode::login) c.auth_line = "AUTH LOGIN\r\n";
    c.user_line = base64(s.user) + "\r\n";
    c.pass_line = base64(s.password) + "\r\n";
    c.builder = &b;
    c.random = &r;
    c.thread_id = thread_id;
    return c;
  }
};

class client_session {
 public:
  enum class phase : std::uint8_t { closed, greeting, ehlo, starting_tls, auth, ready, quitting };
  enum class expect : std::uint8_t {
    greeting, ehlo, helo, starttls, login_user, login_pass, auth_result, mail, rcpt, data, eod, rset, noop, quit
  };

  explicit client_session(const session_config* cfg = nullptr) : cfg_(cfg) {}
  void set_config(const session_config* cfg) { cfg_ = cfg; }

  // Commands waiting to be written; the host moves them out and sends them.
  std::string out;

  phase state() const { return phase_; }
  bool pipelining() const { return pipelining_; }
  bool awaiting_reply() const { return queue_len_ != 0; }
  // Waiting on the server: a reply, or its close after QUIT.
  bool waiting() const {
    return queue_len_ != 0 || phase_ == phase::quitting || phase_ == phase::greeting || phase_ == phase::starting_tls;
  }
  bool tls_active() const { return tls_active_; }

  // True once after the server's 220 to STARTTLS: the host starts TLS now.
  // Whatever plaintext followed the 220 was never parsed (a server that
  // sends more there is injecting, the client-side twin of CVE-2011-0411).
  bool take_tls_request() {
    const bool r = tls_wanted_;
    tls_wanted_ = false;
    return r;
  }
  // The host's TLS handshake is done: everything before is forgotten and
  // the dialogue starts again with EHLO (RFC 3207 4.2).
  void on_tls_established() {
    tls_active_ = true;
    parser_.reset();
    pipelining_ = false;
    phase_ = phase::ehlo;
    out.append(cfg_->ehlo_line);
    push(expect::ehlo);
  }
  // Set and cleared by an open-loop host while the session sits on its list
  // of free sessions, so it is listed once.
  bool listed_free = false;
  bool mid_transaction() const { return envelope_.active || ending_.active; }
  // Free for a new envelope: ready, not quitting, and (with pipelining) only
  // waiting at most for the reply to the previous message's end.
  bool free_for_message() const {
    if (phase_ != phase::ready || envelope_.active || after_rset_) return false;
    // A BDAT message is in `ending_` from its first write: one at a time.
    if (cfg_->bdat && ending_.active) return false;
    return pipelining_ || queue_len_ == 0;
  }
  std::int64_t probe_started() const { return probe_start_; }
  bool probe_outstanding() const { return probe_start_ != 0; }

  void on_connected() {
    reset();
    phase_ = phase::greeting;
    push(expect::greeting);
  }

  // Bytes from the server. Returns false when the connection must go: a
  // fatal protocol error (already reported to the host) or a 421.
  bool on_data(std::string_view data, session_host& host, std::int64_t now) {
    const auto r = parser_.feed(data, [&](const reply& rep) { return on_reply(rep, host, now); });
    if (r == feed_result::garbage) {
      host.fatal("protocol desync: " + parser_.error());
      return false;
    }
    return r == feed_result::ok || (r == feed_result::stopped && tls_wanted_);
  }

  // The connection is gone. A message whose text ended is in flight (the
  // server may or may not have it); one still in its envelope just failed.
  // Returns true when the server closed unasked.
  bool on_disconnected(session_host& host) {
    const bool unexpected = phase_ != phase::quitting && phase_ != phase::closed && !server_closing_;
    if (ending_.active) host.on_inflight_lost(ending_.seq);
    if (envelope_.active) host.on_failed(envelope_.seq);
    reset();
    return unexpected;
  }

  // Starts a message the host assigned (open loop, or after claim_message).
  void begin_message(const claim& c) {
    envelope_ = {c.seq, c.start_ns, true, false};
    ok_rcpts_ = 0;
    rcpts_sent_ = 0;
    ++messages_on_connection_;
    if (pipelining_) {
      cfg_->builder->append_envelope(out, *cfg_->random, declare_size_, cfg_->bdat);
      push(expect::mail);
      push(expect::rcpt, static_cast<std::uint32_t>(cfg_->builder->spec().rcpts));
      if (cfg_->bdat) send_chunk();
      else push(expect::data);
    } else {
      cfg_->builder->append_mail(out, declare_size_);
      push(expect::mail);
    }
  }

  void quit() {
    if (phase_ == phase::quitting || phase_ == phase::closed) return;
    phase_ = phase::quitting;
    out.append("QUIT\r\n");
    push(expect::quit);
  }

  void probe(std::int64_t now) {
    probe_start_ = now;
    out.append("NOOP\r\n");
    push(expect::noop);
  }

  // What to do when nothing is outstanding but the session is ready.
  void next_step(session_host& host, std::int64_t now) {
    if (phase_ != phase::ready) return;
    switch (cfg_->mode) {
      case load_mode::idle:
        if (host.stopping() && queue_len_ == 0) quit();
        return;
      case load_mode::churn:
        // One message per connection: QUIT follows its text (pipelined) or
        // its reply.
        if (messages_on_connection_ > 0) {
          if (!envelope_.active && (pipelining_ || queue_len_ == 0)) quit();
          return;
        }
        [[fallthrough]];
      case load_mode::closed:
      case load_mode::open: {
        if (!free_for_message()) return;
        const claim c = host.claim_message(*this, now);
        if (c.kind == claim_kind::message) begin_message(c);
        else if (c.kind == claim_kind::done) quit();
        return;
      }
    }
  }

 private:
  struct slot {
    std::uint64_t seq = 0;
    std::int64_t start_ns = 0;
    bool active = false;
    bool failed = false;
  };
  struct pending {
    expect kind;
    std::uint32_t count;
  };

  void reset() {
    parser_.reset();
    out.clear();
    queue_len_ = 0;
    queue_head_ = 0;
    envelope_ = {};
    ending_ = {};
    phase_ = phase::closed;
    pipelining_ = false;
    server_closing_ = false;
    after_rset_ = false;
    probe_start_ = 0;
    messages_on_connection_ = 0;
    ok_rcpts_ = 0;
    rcpts_sent_ = 0;
    tls_active_ = false;
    tls_wanted_ = false;
  }

  void push(expect k, std::uint32_t n = 1) {
    if (n == 0) return;
    if (queue_len_ != 0) {
      auto& last = queue_[(queue_head_ + queue_len_ - 1) % queue_.size()];
      if (last.kind == k && k == expect::rcpt) {
        last.count += n;
        return;
      }
    }
    // The longest legitimate queue is end-of-text, RSET, MAIL, RCPT, DATA,
    // QUIT; overflowing means this file has a bug, not the server.
    if (queue_len_ == queue_.size()) __builtin_trap();
    queue_[(queue_head_ + queue_len_) % queue_.size()] = {k, n};
    ++queue_len_;
  }
  expect pop() {
    auto& front = queue_[queue_head_];
    const expect k = front.kind;
    if (--front.count == 0) {
      queue_head_ = (queue_head_ + 1) % queue_.size();
      --queue_len_;
    }
    return k;
  }

  static bool success(expect k, int code) {
    switch (k) {
      case expect::greeting:
      case expect::starttls: return code == 220;
      case expect::ehlo:
      case expect::helo:
      case expect::mail:
      case expect::eod:
      case expect::rset:
      case expect::noop: return code == 250;
      case expect::rcpt: return code == 250 || code == 251;
      case expect::login_user:
      case expect::login_pass: return code == 334;
      case expect::auth_result: return code == 235;
      case expect::data: return code == 354;
      case expect::quit: return code == 221;
    }
    return false;
  }

  // Replies no server in step can give: 3xx answers only DATA and AUTH, and
  // DATA is never answered with 2xx. Seeing one means replies and commands
  // are paired wrongly (a reply too many or too few), not a refusal.
  static bool impossible(expect k, int code) {
    const bool intermediate = code >= 300 && code < 400;
    switch (k) {
      case expect::data: return code < 300;
      case expect::login_user:
      case expect::login_pass:
      case expect::auth_result: return false;
      default: return intermediate;
    }
  }

  static const char* name(expect k) {
    switch (k) {
      case expect::greeting: return "the greeting";
      case expect::ehlo: return "EHLO";
      case expect::helo: return "HELO";
      case expect::starttls: return "STARTTLS";
      case expect::login_user: return "AUTH LOGIN";
      case expect::login_pass: return "the AUTH LOGIN user name";
      case expect::auth_result: return "AUTH";
      case expect::mail: return "MAIL";
      case expect::rcpt: return "RCPT";
      case expect::data: return "DATA";
      case expect::eod: return "the end of the message text";
      case expect::rset: return "RSET";
      case expect::noop: return "NOOP";
      case expect::quit: return "QUIT";
    }
    return "?";
  }

  static std::string describe(const reply& r) {
    std::string s = std::to_string(r.code) + " ";
    const auto line = r.last_line();
    s.append(line.substr(0, 120));
    return s;
  }

  bool on_reply(const reply& r, session_host& host, std::int64_t now) {
    if (queue_len_ == 0) {
      if (r.code == 421) {  // a server may say goodbye unasked (RFC 5321 3.8)
        host.on_reply_code(r.code, false);
        server_closing_ = true;
        return false;
      }
      host.fatal("protocol desync: reply \"" + describe(r) + "\" with no command outstanding");
      return false;
    }
    const expect k = pop();
    const bool ok = success(k, r.code);
    host.on_reply_code(r.code, ok);
    if (impossible(k, r.code)) {
      host.fatal("protocol desync: reply \"" + describe(r) + "\" cannot answer " + name(k));
      return false;
    }
    if (r.code == 421) {
      // The server is going away; a message answered with it was refused,
      // not lost.
      if (k == expect::eod && ending_.active) {
        host.on_failed(ending_.seq);
        ending_.active = false;
      }
      server_closing_ = true;
      return false;
    }
    switch (k) {
      case expect::greeting:
      case expect::ehlo:
      case expect::starttls:
      case expect::helo:
      case expect::login_user:
      case expect::login_pass:
      case expect::auth_result: return on_hello_reply(k, ok, r, host, now);
      case expect::mail:
      case expect::rcpt: return on_envelope_reply(k, ok, host, now);
      case expect::data:
        if (!ok) {
          finish_failed_envelope(host, now, true);
          return true;
        }
        cfg_->builder->append_text(out, cfg_->thread_id, envelope_.seq);
        ending_ = envelope_;
        envelope_.active = false;
        push(expect::eod);
        if (pipelining_) next_step(host, now);
        return true;
      case expect::eod:
        if (ok) host.on_ack(ending_.seq, ending_.start_ns, queue_id_of(r.last_line()), now);
        else host.on_failed(ending_.seq);
        ending_.active = false;
        // A refused chunk leaves the transaction failed (RFC 3030 2); not
        // every server ends it, so RSET before the next message.
        if (!ok && cfg_->bdat) return reset_after_refusal();
        if (!pipelining_ || queue_len_ == 0) next_step(host, now);
        return true;
      case expect::rset:
        if (after_rset_) {
          after_rset_ = false;
          next_step(host, now);
        }
        return true;
      case expect::noop:
        if (probe_start_ != 0) {
          host.on_probe(now - probe_start_);
          probe_start_ = 0;
        }
        if (queue_len_ == 0) next_step(host, now);
        return true;
      case expect::quit:
        phase_ = phase::quitting;
        return true;
    }
    return true;
  }

  // MAIL and RCPT: without pipelining each reply sends the next command.
  bool on_envelope_reply(expect k, bool ok, session_host& host, std::int64_t now) {
    switch (k) {
      case expect::mail:
        if (!ok) envelope_.failed = true;
        if (!pipelining_) {
          if (ok) send_next_rcpt();
          else finish_failed_envelope(host, now, false);
        }
        return true;
      case expect::rcpt:
        if (ok) ++ok_rcpts_;
        if (!pipelining_) {
          if (rcpts_sent_ < cfg_->builder->spec().rcpts) {
            send_next_rcpt();
          } else if (ok_rcpts_ > 0 && cfg_->bdat) {
            send_chunk();
          } else if (ok_rcpts_ > 0) {
            out.append("DATA\r\n");
            push(expect::data);
          } else {
            finish_failed_envelope(host, now, true);
          }
        }
        return true;
      default: return true;
    }
  }

  // The replies before the session is ready: greeting, EHLO/HELO, STARTTLS
  // and AUTH.
  bool on_hello_reply(expect k, bool ok, const reply& r, session_host& host, std::int64_t now) {
    switch (k) {
      case expect::greeting:
        if (!ok) {
          quit();
          return true;
        }
        phase_ = phase::ehlo;
        out.append(cfg_->ehlo_line);
        push(expect::ehlo);
        return true;
      case expect::ehlo:
        if (!ok) {
          out.append(cfg_->helo_line);
          push(expect::helo);
          return true;
        }
        if (cfg_->starttls && !tls_active_) return ask_starttls(r, host);
        if (cfg_->bdat && !advertises(r.text, "CHUNKING")) {
          host.fatal("--bdat: the server's EHLO does not offer CHUNKING");
          return false;
        }
        pipelining_ = cfg_->allow_pipelining && advertises(r.text, "PIPELINING");
        declare_size_ = advertises(r.text, "SIZE");
        return after_hello(host, now);
      case expect::starttls:
        if (!ok) {
          host.fatal("STARTTLS refused: " + describe(r));
          return false;
        }
        phase_ = phase::starting_tls;
        tls_wanted_ = true;
        return false;  // stop parsing: the next bytes are TLS
      case expect::helo:
        if (!ok) {
          host.fatal("the server refused both EHLO and HELO: " + describe(r));
          return false;
        }
        if (cfg_->starttls && !tls_active_) {
          host.fatal("--tls starttls: the server took HELO, not EHLO, so it offers no STARTTLS");
          return false;
        }
        if (cfg_->bdat) {
          host.fatal("--bdat: the server took HELO, not EHLO, so it offers no CHUNKING");
          return false;
        }
        pipelining_ = false;
        return after_hello(host, now);
      case expect::login_user:
      case expect::login_pass:
        if (!ok) {
          host.fatal("AUTH LOGIN refused: " + describe(r));
          return false;
        }
        out.append(k == expect::login_user ? cfg_->user_line : cfg_->pass_line);
        push(k == expect::login_user ? expect::login_pass : expect::auth_result);
        return true;
      case expect::auth_result:
        if (!ok) {
          host.fatal("authentication failed: " + describe(r));
          return false;
        }
        return become_ready(host, now);
      default: return true;
    }
  }

  bool ask_starttls(const reply& r, session_host& host) {
    if (!advertises(r.text, "STARTTLS")) {
      host.fatal("--tls starttls: the server's EHLO does not offer STARTTLS");
      return false;
    }
    out.append("STARTTLS\r\n");
    push(expect::starttls);
    return true;
  }

  bool after_hello(session_host& host, std::int64_t now) {
    if (cfg_->auth == auth_mode::none) return become_ready(host, now);
    phase_ = phase::auth;
    out.append(cfg_->auth_line);
    push(cfg_->auth == auth_mode::login ? expect::login_user : expect::auth_result);
    return true;
  }

  bool become_ready(session_host& host, std::int64_t now) {
    phase_ = phase::ready;
    host.on_ready(*this, now);
    if (phase_ == phase::ready && !envelope_.active && queue_len_ == 0) next_step(host, now);
    return true;
  }

  // The text as one BDAT LAST chunk, behind the envelope: the message is
  // then waiting for its end reply only (no 354 in between).
  void send_chunk() {
    cfg_->builder->append_bdat(out, cfg_->thread_id, envelope_.seq);
    ending_ = envelope_;
    envelope_.active = false;
    push(expect::eod);
  }

  bool reset_after_refusal() {
    out.append("RSET\r\n");
    push(expect::rset);
    after_rset_ = true;
    return true;
  }

  void send_next_rcpt() {
    cfg_->builder->append_rcpt(out, *cfg_->random, static_cast<std::size_t>(rcpts_sent_));
    ++rcpts_sent_;
    push(expect::rcpt);
  }

  // The envelope went wrong (MAIL, every RCPT or DATA refused). Any open
  // transaction is dropped with RSET before the next message, which with
  // pipelining rides in the same write.
  void finish_failed_envelope(session_host& host, std::int64_t now, bool need_rset) {
    host.on_failed(envelope_.seq);
    envelope_.active = false;
    if (need_rset) {
      out.append("RSET\r\n");
      push(expect::rset);
      if (!pipelining_) {
        after_rset_ = true;
        return;
      }
    }
    next_step(host, now);
  }

  static bool advertises(std::string_view ehlo_text, std::string_view keyword) {
    std::size_t pos = ehlo_text.find('\n');  // the first line is the server's name
    while (pos != std::string_view::npos) {
      const std::size_t start = pos + 1;
      const std::size_t end = ehlo_text.find('\n', start);
      const std::string_view line = ehlo_text.substr(start, end == std::string_view::npos ? end : end - start);
      if (line.size() >= keyword.size()) {
        bool same = true;
        for (std::size_t i = 0; i < keyword.size() && same; ++i)
          same = (line[i] & ~0x20) == keyword[i];
        if (same && (line.size() == keyword.size() || line[keyword.size()] == ' ')) return true;
      }
      pos = end;
    }
    return false;
  }

  const session_config* cfg_;
  reply_parser parser_;
  std::array<pending, 8> queue_{};
  std::size_t queue_head_ = 0;
  std::size_t queue_len_ = 0;
  slot envelope_;  // MAIL/RCPT/DATA sent, text not yet
  slot ending_;    // text and its end sent, reply not yet
  phase phase_ = phase::closed;
  bool pipelining_ = false;
  bool declare_size_ = false;  // the EHLO offered SIZE: MAIL declares the text's size
  bool server_closing_ = false;
  bool after_rset_ = false;
  bool tls_active_ = false;
  bool tls_wanted_ = false;
  std::int64_t probe_start_ = 0;
  int ok_rcpts_ = 0;
  int rcpts_sent_ = 0;
  int messages_on_connection_ = 0;
};

}  // namespace postino::load
