// The SMTP session state machine (PROTOCOL.md sections 1, 2, 3 for DATA text,
// 5 for per-session limits). It consumes the caller's input views in place,
// appends replies to its own output string, and turns whatever is slow or
// belongs to another component (password check, credit, journal commit) into
// a request the owner resolves. At the terminator the content step
// (src/mime) turns the body into the SMS text, or a refusal, and prices it.
// A command is one lookup in the command table (command.cc) and its row's
// checks, then the row's handler below; every reply comes from replies.h.
// Buffers: see machine.h. The input view is the caller's and is only read
// during feed(); everything else belongs to the session.
#include "postino/smtp.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <utility>

#include "base64.h"
#include "machine.h"
#include "postino/ascii.h"
#include "postino/sms.h"

namespace postino::smtp {
namespace {

void wipe(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  std::string().swap(s);
}

bool in_auth_exchange(phase p) {
  return p == phase::auth_username || p == phase::auth_password || p == phase::auth_plain;
}

// Buffers above these sizes are given back after a transaction, so a parked
// session stays small (DESIGN.md: well under 4 KiB).
constexpr std::size_t keep_body_capacity = 1024;
constexpr std::size_t keep_recipient_capacity = 16;
constexpr std::size_t keep_output_capacity = 2048;

// The 553 5.1.3 text for a refused recipient; the sms part says which.
const reply& recipient_refusal_reply(sms::recipient_refusal refusal) {
  switch (refusal) {
    case sms::recipient_refusal::needs_country_code: return replies::recipient_needs_country_code;
    case sms::recipient_refusal::not_national_either: return replies::recipient_not_national_either;
    case sms::recipient_refusal::invalid: break;
  }
  return replies::invalid_recipient;
}

}  // namespace

session_machine::session_machine(const session_config& c, connection_info ci, const account_settings* pre)
    : config(c), conn(std::move(ci)), tls_active(c.implicit_tls) {
  if (pre != nullptr) {
    account = *pre;
    authed = true;
    preauthenticated = true;
  }
}

// ------------------------------------------------------------------ output

void session_machine::send(const reply& r) {
  if (closing) return;
  out += r.line();
  out += "\r\n";
  count(r);
}

void session_machine::send(const reply& r, std::string_view value) {
  if (closing) return;
  out += r.line();
  // The value may be the client's own bytes (a parameter's name): a CR, LF
  // or other control character in it would break the reply line (found by
  // tests/fuzz/smtp_session).
  for (const char c : value) out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
  out += "\r\n";
  count(r);
}

bool session_machine::refuse(const reply& r) {
  send(r);
  return false;
}

// The error limit (PROTOCOL.md 5) counts by the reply's code, for the
// commands whose row counts their failures (and outside any command: an
// unknown verb, a line too long, an AUTH response).
void session_machine::count(const reply& r) {
  if (r.counts_as_error() && counting_errors && ++errors >= config.max_errors) close_with(replies::too_many_errors);
}

void session_machine::close_with(const reply& r) {
  if (closing) return;
  out += r.line();
  out += "\r\n";
  closing = true;
}

void session_machine::enter(phase to, std::string_view cause) {
  if (to == state) return;  // every RCPT after the first
  if (config.trace.write != nullptr) trace(to, cause);
  state = to;
}

// "phase <from> -> <to> (<cause>)", built on the stack: tracing allocates nothing.
void session_machine::trace(phase to, std::string_view cause) const {
  std::array<char, 128> line{};
  std::size_t n = 0;
  for (std::string_view piece : {std::string_view("phase "), phase_name(state), std::string_view(" -> "),
                                 phase_name(to), std::string_view(" ("), cause, std::string_view(")")}) {
    const std::size_t take = std::min(piece.size(), line.size() - n);
    std::memcpy(line.data() + n, piece.data(), take);
    n += take;
  }
  config.trace.write(config.trace.context, conn.number, {line.data(), n});
}

// ------------------------------------------------------------------ input

std::size_t session_machine::feed(std::string_view in) {
  std::size_t pos = 0;
  while (pos < in.size() && pending == request_kind::none && !closing && !output_full()) {
    if (chunk.left > 0) {
      pos += take_chunk(in.substr(pos));
      continue;
    }
    if (state == phase::data) {
      pos += text.feed(in.substr(pos), tx().body);
      if (static_cast<std::int64_t>(tx().body.size()) > body_reserved) grow_body_reservation();
      if (text.done()) end_of_data();
      continue;
    }
    const bool commands = is_command_phase(state);
    const auto r = lines.next(in.substr(pos), commands ? line_mode::command : line_mode::auth_response);
    pos += r.consumed;
    if (r.what == line_scanner::kind::too_long) {
      line_too_long();
    } else if (r.what == line_scanner::kind::line) {
      if (!commands) auth_response(r.line);
      else if (command(r.line, pos < in.size())) pos = in.size();  // read-ahead discarded
    }
  }
  return pos;
}

void session_machine::line_too_long() {
  if (!is_command_phase(state)) abandon_auth("line too long");
  send(replies::line_too_long);
}

// One table lookup, the row's phase check (PROTOCOL.md's precedence: EHLO/HELO,
// AUTH, transaction order; the handler checks the arguments), the row's
// handler, then the row's pipelining rule. Returns whether the rest of the
// input is to be dropped.
bool session_machine::command(std::string_view line, bool more_follows) {
  const command_line cl = split_command(line);
  const command_spec* row = find_command(cl.verb);
  if (row == nullptr) {
    send(replies::unrecognized);
    return false;
  }
  counting_errors = row->counts_errors;
  if (row->id == verb::bdat) expect_chunk(cl.args);
  const reply* relay_no = config.relay ? relay_refusal(*row) : nullptr;
  const bool accepted = relay_no != nullptr     ? refuse(*relay_no)
                        : row->allowed_in(state) ? (this->*row->handler)(*row, cl.args)
                                                 : refuse(row->refusal(state));
  counting_errors = true;
  if (chunk.owed && chunk.left == 0) end_of_chunk();  // BDAT 0
  switch (row->group) {
    case pipelining::text_follows:
      // The bytes behind a refused DATA would be message text run as commands.
      if (!accepted && more_follows) close_with(replies::sync_error);
      return false;
    case pipelining::discards_rest: return accepted;
    case pipelining::continues:
    case pipelining::ends_group: return false;
  }
  return false;
}

// A relay listener offers no AUTH (PROTOCOL.md 5a), and an RCPT after a MAIL
// refused for relaying hears the same refusal, not "need MAIL". Null: the
// table decides.
const reply* session_machine::relay_refusal(const command_spec& row) const {
  if (row.id == verb::auth) return &replies::not_implemented;
  if (row.id == verb::rcpt && relay_denied && state == phase::authenticated) return &replies::relay_denied;
  return nullptr;
}

// ------------------------------------------------------------------ greeting

bool session_machine::greet(const command_spec& row, std::string_view args) {
  if (args.empty()) return refuse(*row.syntax);
  reset_transaction();
  // A relay listener's transactions start without AUTH: the account is
  // found per MAIL.
  enter(authed || config.relay ? phase::authenticated : phase::greeted, row.name);
  if (row.id == verb::ehlo)
    replies::append_ehlo(out, config.hostname,
                         {config.max_message_size, config.tls_available && !tls_active, auth_offered()});
  else
    replies::append_helo(out, config.hostname);
  return true;
}

bool session_machine::starttls(const command_spec& row, std::string_view args) {
  if (tls_active) return refuse(replies::tls_already_active);
  if (!config.tls_available) return refuse(replies::not_implemented);
  if (!args.empty()) return refuse(*row.syntax);
  send(replies::tls_ready);
  starttls_accepted = true;
  // RFC 3207 4.2: forget everything learnt from the client in the clear.
  tls_active = true;
  if (!preauthenticated) {
    release_account();
    authed = false;
    account = account_settings{};
  }
  reset_transaction();
  enter(phase::connected, row.name);
  lines.reset();
  return true;
}

bool session_machine::rset(const command_spec& row, std::string_view args) {
  if (!args.empty()) return refuse(*row.syntax);
  reset_transaction();
  if (in_transaction(state)) enter(phase::authenticated, row.name);
  send(replies::ok);
  return true;
}

bool session_machine::noop(const command_spec&, std::string_view) {
  send(replies::ok);
  return true;
}

bool session_machine::quit(const command_spec&, std::string_view) {
  close_with(replies::closing);
  return true;
}

bool session_machine::not_offered(const command_spec&, std::string_view) {
  return refuse(replies::not_implemented);
}

// ------------------------------------------------------------------ AUTH

// The table runs AUTH only once greeted and not authenticated, outside a
// transaction ("in a transaction" is refused first, so both 503 texts occur).
bool session_machine::auth(const command_spec& row, std::string_view args) {
  const command_line parts = split_command(args);
  if (parts.verb.empty() || parts.args.find(' ') != std::string_view::npos) return refuse(*row.syntax);
  if (config.require_tls_for_auth && !tls_active) return refuse(replies::encryption_required);
  const bool has_initial = !parts.args.empty();
  // RFC 4954: "=" is an empty initial response.
  const std::string_view initial = parts.args == "=" ? std::string_view{} : parts.args;
  if (iequals(parts.verb, "LOGIN")) return auth_login(has_initial, initial);
  if (iequals(parts.verb, "PLAIN")) return auth_plain(has_initial, initial);
  return refuse(replies::unknown_mechanism);
}

bool session_machine::auth_login(bool has_initial, std::string_view initial) {
  if (!has_initial) {
    send(replies::ask_username);
    enter(phase::auth_username, "AUTH");
    return true;
  }
  if (!decode_base64(initial, credentials.username)) {
    abandon_auth("AUTH");
    return refuse(replies::cannot_decode);
  }
  send(replies::ask_password);
  enter(phase::auth_password, "AUTH");
  return true;
}

bool session_machine::auth_plain(bool has_initial, std::string_view initial) {
  if (!has_initial) {
    send(replies::ask_plain);
    enter(phase::auth_plain, "AUTH");
    return true;
  }
  std::string decoded;
  if (!decode_base64(initial, decoded)) return refuse(replies::cannot_decode);
  plain(decoded);
  wipe(decoded);
  return true;
}

void session_machine::auth_response(std::string_view line) {
  if (line == "*") {
    abandon_auth("AUTH cancelled");
    send(replies::auth_cancelled);
    return;
  }
  std::string decoded;
  if (!decode_base64(line, decoded)) {
    abandon_auth("AUTH response");
    send(replies::cannot_decode);
    return;
  }
  switch (state) {
    case phase::auth_username:
      credentials.username = std::move(decoded);
      send(replies::ask_password);
      enter(phase::auth_password, "AUTH response");
      return;
    case phase::auth_password:
      enter(phase::greeted, "AUTH response");
      credentials.password = std::move(decoded);
      pending = request_kind::authenticate;
      return;
    case phase::auth_plain:
      enter(phase::greeted, "AUTH response");
      plain(decoded);
      wipe(decoded);
      return;
    default: return;
  }
}

// SASL PLAIN (RFC 4616): authzid NUL authcid NUL passwd. The authorization
// identity, when given, must be the user itself: no proxy logins.
void session_machine::plain(std::string_view message) {
  const std::size_t first = message.find('\0');
  const std::size_t second = first == std::string_view::npos ? first : message.find('\0', first + 1);
  if (second == std::string_view::npos || message.find('\0', second + 1) != std::string_view::npos) {
    auth_failed();
    return;
  }
  const std::string_view authzid = message.substr(0, first);
  const std::string_view user = message.substr(first + 1, second - first - 1);
  if (!authzid.empty() && authzid != user) {
    auth_failed();
    return;
  }
  credentials.username.assign(user);
  credentials.password.assign(message.substr(second + 1));
  pending = request_kind::authenticate;
}

// Ends an AUTH exchange (back to `greeted`, where AUTH runs) and wipes what it
// learnt.
void session_machine::abandon_auth(std::string_view cause) {
  if (in_auth_exchange(state)) enter(phase::greeted, cause);
  wipe(credentials.username);
  wipe(credentials.password);
}

void session_machine::auth_failed() {
  send(replies::auth_invalid);
  if (++auth_failures >= config.max_auth_failures) close_with(replies::too_many_auth_failures);
}

void session_machine::resolve(const auth_result& r) {
  pending = request_kind::none;
  abandon_auth("AUTH");
  switch (r.result) {
    case auth_result::outcome::ok:
      // PROTOCOL.md 5: over the account's connections, 421 instead of 235:
      // a client reads it as "not logged in, closing" at any point.
      if (config.connections != nullptr) {
        const auto admitted = config.connections->admit_account(r.account.id);
        if (admitted == connection_gate::admission::refused) {
          close_with(replies::too_many_connections);
          break;
        }
        account_counted = admitted == connection_gate::admission::counted;
      }
      authed = true;
      account = r.account;
      enter(phase::authenticated, "AUTH");
      if (!closing) replies::append_auth_ok(out, r.available, account.id, account.status);
      break;
    case auth_result::outcome::invalid: auth_failed(); break;
    case auth_result::outcome::temporary_failure: send(replies::auth_temporary); break;
    case auth_result::outcome::busy: send(replies::auth_busy); break;
  }
  finish_if_shutting_down();
}

// ------------------------------------------------------------------ MAIL

bool session_machine::mail(const command_spec& row, std::string_view args) {
  relay_denied = false;
  if (!config.relay && account.status == account_status::suspended) return refuse(replies::account_suspended);
  path_args pa;
  if (!parse_path(args, "FROM:", pa)) return refuse(*row.syntax);
  if (!mail_params(pa.params)) return false;
  if (config.relay) return ask_relay(pa.path);
  return mail_from(pa.path);
}

// A relay listener: the owner finds the account for the client address and
// the sender's domain (the path is copied: the input is gone by then).
bool session_machine::ask_relay(std::string_view path) {
  relay_sender.assign(path);
  const std::size_t at = relay_sender.rfind('@');
  const std::string_view domain =
      at == std::string::npos ? std::string_view{} : std::string_view(relay_sender).substr(at + 1);
  relay = relay_request{conn.peer_ip, domain};
  pending = request_kind::relay_lookup;
  return true;
}

void session_machine::resolve(const relay_result& r) {
  pending = request_kind::none;
  if (r.account == nullptr) {
    relay_denied = true;
    send(replies::relay_denied);
  } else if (r.account->status == account_status::suspended) {
    send(replies::account_suspended);
  } else {
    // The originator rules apply as for AUTH: an e-mail address sender is
    // the account's default originator.
    account = *r.account;
    mail_from(relay_sender);
  }
  finish_if_shutting_down();
}

// The sender's rules, the queue's bound and the rate limit, for `account`.
bool session_machine::mail_from(std::string_view path) {
  const sms::originator_check oc = sms::resolve_originator(path, account);
  if (oc.not_allowed) return refuse(replies::sender_not_allowed);
  if (!oc.result.ok) {
    send(replies::invalid_sender, oc.result.why);
    return false;
  }
  // A full delivery queue is a 4xx the client retries later; checked
  // before the rate limit so a refused MAIL spends no token.
  if (config.delivery_backlog != nullptr &&
      config.delivery_backlog->load(std::memory_order_relaxed) >= config.delivery_backlog_limit)
    return refuse(replies::queue_full);
  transaction& t = tx();
  t.account = account.id;
  t.originator = oc.result.value;
  t.originator_type = oc.result.kind;
  // Checked last, so a MAIL refused for its syntax or sender spends no
  // token; an account without a limit costs nothing here.
  if (account.max_messages_per_second > 0) {
    rate = rate_check_request{account.id, account.max_messages_per_second};
    pending = request_kind::rate_check;
    return true;
  }
  mail_ok();
  return true;
}

// A repeated parameter first (the list as a whole is malformed), then each
// parameter left to right: SIZE and BODY, anything else refused. False once a
// refusal is sent. SIZE is the client's estimate (RFC 1870): over the maximum
// it is refused here, and otherwise it limits nothing (DATA holds the text to
// the maximum); it is kept only as what DATA reserves of the body memory.
bool session_machine::mail_params(std::string_view params) {
  declared_size = 0;
  if (!no_repeated_param(params)) return false;
  esmtp_param p;
  while (next_param(params, p)) {
    if (iequals(p.name, "SIZE")) {
      std::uint64_t size = 0;
      if (!p.has_value || !parse_decimal(p.value, size)) return refuse(replies::bad_size);
      if (size > config.max_message_size) return refuse(replies::size_exceeds_max);
      declared_size = size;  // what this DATA reserves of the body memory
    } else if (iequals(p.name, "BODY")) {
      // Both are the same to a gateway that stores the octets it is given.
      if (!p.has_value || !(iequals(p.value, "7BIT") || iequals(p.value, "8BITMIME")))
        return refuse(replies::bad_body);
    } else {
      send(replies::unsupported_parameter, p.name.empty() ? p.value : p.name);
      return false;
    }
  }
  return true;
}

// PROTOCOL.md 1: a MAIL or RCPT parameter given twice is a 501, before the
// parameters are looked at one by one, so that it is answered the same
// whether the name is known (MAIL's SIZE, BODY) or not (RCPT takes none).
bool session_machine::no_repeated_param(std::string_view params) {
  const std::string_view repeated = repeated_param(params);
  if (repeated.empty()) return true;
  send(replies::duplicate_parameter, repeated);
  return false;
}

void session_machine::mail_ok() {
  enter(phase::mail, "MAIL");
  if (!closing) replies::append_sender_ok(out, tx().originator);
}

void session_machine::resolve(const rate_check_result& r) {
  pending = request_kind::none;
  if (r.allowed) {
    mail_ok();
  } else {
    // A 4xx the client retries later; not a protocol error, so it does
    // not count toward the error limit.
    reset_transaction();
    send(replies::rate_limited);
  }
  finish_if_shutting_down();
}

// ------------------------------------------------------------------ RCPT

bool session_machine::rcpt(const command_spec& row, std::string_view args) {
  path_args pa;
  // PROTOCOL.md section 2 / issue 13: a lenient server takes the address
  // out of a display name that a client passed through.
  if (!parse_path(args, "TO:", pa, display_names::accepted)) return refuse(*row.syntax);
  if (!no_repeated_param(pa.params)) return false;
  std::string_view rest = pa.params;
  esmtp_param p;
  if (next_param(rest, p)) {
    send(replies::unsupported_parameter, p.name.empty() ? p.value : p.name);
    return false;
  }
  sms::recipient_result rr = sms::normalize_recipient(pa.path, account.default_country);
  if (!rr.ok) {
    send(recipient_refusal_reply(rr.refusal), rr.why);
    return false;
  }
  if (is_duplicate(rr.e164)) {
    recipient_ok(rr.e164);
    return true;
  }
  if (tx().recipients.size() >= account.max_recipients) return refuse(replies::too_many_recipients);
  // One segment at this destination's price; the whole price is the commit's.
  const credit_units price = segment_price(account, rr.e164);
  if (cached_credit && *cached_credit >= price) {
    add_recipient(std::move(rr.e164));
    return true;
  }
  credit = credit_check_request{account.id, price};
  waiting_recipient = std::move(rr.e164);
  pending = request_kind::credit_check;
  return true;
}

bool session_machine::is_duplicate(const std::string& e164) const {
  if (auto key = recipient_key(e164)) return recipient_keys.contains(*key);
  return tx_ && std::find(tx_->recipients.begin(), tx_->recipients.end(), e164) != tx_->recipients.end();
}

void session_machine::add_recipient(std::string e164) {
  if (auto key = recipient_key(e164)) recipient_keys.insert(*key);
  // The owner moves each message out with its recipient list: reserve what
  // the last one needed, so a list is one allocation, not a doubling chain.
  std::vector<std::string>& recipients = tx().recipients;
  if (recipients.capacity() == 0) recipients.reserve(recipients_hint);
  recipients.push_back(std::move(e164));
  enter(phase::rcpt, "RCPT");
  recipient_ok(recipients.back());
}

// Straight into the output: a 1,000-recipient message would otherwise
// build (and allocate) a line per recipient.
void session_machine::recipient_ok(std::string_view e164) {
  if (!closing) replies::append_recipient_ok(out, e164);
}

void session_machine::resolve(const credit_check_result& r) {
  pending = request_kind::none;
  // Only a positive answer is remembered; a refusal is always fresh, so a
  // top-up lets the same session go on.
  if (r.available >= credit.amount) {
    cached_credit = r.available;
    add_recipient(std::move(waiting_recipient));
  } else {
    send(replies::insufficient_credit_rcpt);
  }
  waiting_recipient.clear();
  finish_if_shutting_down();
}

// ------------------------------------------------------------------ DATA

bool session_machine::data(const command_spec& row, std::string_view args) {
  if (!args.empty()) return refuse(*row.syntax);
  if (!reserve_body()) return refuse(replies::insufficient_storage);
  send(replies::start_data);
  ++data_count;  // as BDAT's first chunk does (begin_chunks)
  tx().body.clear();
  // A declared SIZE is room taken once: grown by doubling, a 9 MiB body
  // would leave its 1, 2, 4 and 8 MiB steps in the allocator's arenas, and
  // the process would hold about twice what the budget counts. An eighth
  // more for the CRLFs of a size declared with LF line ends (RFC 1870).
  if (declared_size > keep_body_capacity)
    tx().body.reserve(std::min<std::uint64_t>(config.max_message_size, declared_size + declared_size / 8) + 8);
  // The maximum, never the client's SIZE= (an estimate, RFC 1870: curl and
  // Python's smtplib declare the octets of an LF file, which is longer once
  // its line ends are CRLF).
  text.start(config.max_message_size, config.bare_newline == bare_newline_policy::reject);
  enter(phase::data, row.name);
  return true;
}

// The phase stays `data` until the terminator's reply: through the content
// step and the commit (no input is read while they are pending).
void session_machine::end_of_data() {
  if (text.bare_newline_seen() && config.bare_newline == bare_newline_policy::reject) {
    send(replies::bare_newline);
    return finish_transaction("end of data");
  }
  if (text.too_big()) {
    send(replies::message_too_big);
    return finish_transaction("end of data");
  }
  read_content();
}

// ------------------------------------------------------------------ BDAT

// BDAT's octets follow its line whatever the answer (RFC 3030 2): they are
// owed before the table's checks run, so that a refused BDAT still has its
// chunk read and dropped and the session stays in step with the client. A
// size that does not parse owes nothing (nothing tells where the chunk would
// end): its 501 is all there is.
void session_machine::expect_chunk(std::string_view args) {
  chunk = {};
  const command_line parts = split_command(args);  // "<size> [LAST]": the size is the first token
  std::uint64_t size = 0;
  const char* end = parts.verb.data() + parts.verb.size();
  const auto [ptr, ec] = std::from_chars(parts.verb.data(), end, size);
  if (parts.verb.empty() || ec != std::errc() || ptr != end) return;
  chunk.size = chunk.left = size;
  chunk.owed = true;
  chunk.last = iequals(parts.args, "LAST");
  chunk.valid = parts.args.empty() || chunk.last;
}

// The table let BDAT through (after RCPT, or between chunks). A chunk
// refused here ends the transaction: the message would miss it, so the
// chunks pipelined behind it hear "need MAIL" (RFC 3030 2: the client sends
// no more, and what it already sent is read and refused).
bool session_machine::bdat(const command_spec& row, std::string_view) {
  const reply* no = !chunk.valid                                  ? row.syntax
                    : state == phase::rcpt && !begin_chunks()     ? &replies::insufficient_storage
                    : chunk.size > config.max_message_size - tx().body.size() ? &replies::message_too_big
                                                                               : nullptr;
  if (no == nullptr) {
    chunk.keep = true;
    return true;
  }
  send(*no);
  if (in_transaction(state)) finish_transaction(row.name);
  return false;
}

// The first chunk: as DATA's 354, it reserves the body's memory and starts
// the owner's total-time clock.
bool session_machine::begin_chunks() {
  if (!reserve_body()) return false;
  ++data_count;
  tx().body.clear();
  if (declared_size > keep_body_capacity)
    tx().body.reserve(std::min<std::uint64_t>(config.max_message_size, declared_size) + 8);
  enter(phase::chunks, "BDAT");
  return true;
}

std::size_t session_machine::take_chunk(std::string_view in) {
  const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.left, in.size()));
  if (chunk.keep) {
    tx().body.append(in.data(), n);
    if (static_cast<std::int64_t>(tx().body.size()) > body_reserved) grow_body_reservation();
  }
  chunk.left -= n;
  if (chunk.left == 0) end_of_chunk();
  return n;
}

// A refused chunk's reply went out with its BDAT line; an accepted one is
// answered once its octets are in, and the LAST goes on as DATA's end does
// (the phase stays `chunks` through the content step and the commit). The
// octets are the message as sent: no dot-stuffing, line ends as they come,
// only a bare CR or LF refused under the reject policy.
void session_machine::end_of_chunk() {
  chunk.owed = false;
  if (!chunk.keep) return;
  if (!chunk.last) {
    if (!closing) replies::append_chunk_received(out, chunk.size);
    return;
  }
  if (config.bare_newline == bare_newline_policy::reject && has_bare_newline(tx().body)) {
    send(replies::bare_newline);
    return finish_transaction("BDAT LAST");
  }
  read_content();
}

// The end of the message's octets, from DATA or BDAT LAST.
void session_machine::read_content() {
  // The content step (src/mime): raw or e-mail text, MMS, encoding,
  // segments, or the refusal. A small raw text is read here; anything
  // costlier is a request the owner runs where it fits (off the shard's
  // loop). The body stays as received; the text is apart.
  mime::content_result cheap;
  if (mime::read_content_if_cheap(tx().body, account, cheap)) return apply_content(cheap);
  content = content_request{&tx().body, &account, config.mime_limits};
  pending = request_kind::content;
}

void session_machine::resolve(mime::content_result& r) {
  pending = request_kind::none;
  apply_content(r);
}

// The content step's answer: a refusal (worded by replies.cc), or the text,
// encoding and price (fields moved out of `r`), and then the commit request.
void session_machine::apply_content(mime::content_result& r) {
  if (!r.ok) {
    if (!closing) replies::append_content_refusal(out, r.refusal);
    return finish_transaction("content refused");
  }
  transaction& t = tx();
  t.sms_text = std::move(r.text);
  t.data_coding = sms::smpp_data_coding(r.encoding);
  t.segments = r.segments;
  t.is_mms = r.mms;
  t.mm4_ack_owed = r.ack_owed;
  t.mm4_message_id = std::move(r.mm4_message_id);
  t.mm4_transaction_id = std::move(r.mm4_transaction_id);
  t.mm4_originator_system = std::move(r.mm4_originator_system);
  t.price = message_price(account, t.recipients, t.segments, t.is_mms);
  postino::fill_unit_prices(account, t.recipients, t.is_mms, t.unit_prices);
  recipients_hint = std::min<std::size_t>(t.recipients.size(), keep_recipient_capacity);
  pending = request_kind::commit;
}

void session_machine::resolve(const commit_result& r) {
  pending = request_kind::none;
  switch (r.result) {
    case commit_result::outcome::accepted:
      ++accepted;
      if (!closing) replies::append_accepted(out, r.recipients != nullptr ? *r.recipients : tx().recipients, r.queue_id);
      break;
    case commit_result::outcome::insufficient_credit:
      if (!closing) replies::append_insufficient_credit(out, r.need, r.available);
      break;
    case commit_result::outcome::local_error: send(replies::local_error); break;
  }
  finish_transaction("commit");
}

void session_machine::finish_transaction(std::string_view cause) {
  reset_transaction();
  enter(phase::authenticated, cause);
  finish_if_shutting_down();
}

void session_machine::finish_if_shutting_down() {
  if (shutdown_requested) close_with(replies::shutting_down);
}

// Drops the transaction's data (RSET, EHLO, STARTTLS, end of DATA) and gives
// back buffers a big transaction grew; AUTH and EHLO stay. The caller moves
// the phase.
void session_machine::reset_transaction() {
  release_body();
  declared_size = 0;
  cached_credit.reset();
  relay_denied = false;
  if (!tx_) return;
  transaction& tx = *tx_;
  tx.account = 0;
  tx.originator.clear();
  tx.originator_type = originator_kind::numeric;
  tx.price = 0;
  tx.unit_prices.clear();
  tx.segments = 1;
  tx.recipients.clear();
  // The owner usually moved the list out already; the keys stay here.
  if (tx.recipients.capacity() > keep_recipient_capacity || recipient_keys.capacity() > keep_recipient_capacity) {
    std::vector<std::string>().swap(tx.recipients);
    recipient_keys.release();
    std::vector<credit_units>().swap(tx.unit_prices);
  } else {
    recipient_keys.clear();
  }
  tx.body.clear();
  if (tx.body.capacity() > keep_body_capacity) std::string().swap(tx.body);
  std::string().swap(tx.sms_text);
  tx.data_coding = 0;
  tx.is_mms = false;
  tx.mm4_ack_owed = false;
  std::string().swap(tx.mm4_message_id);
  std::string().swap(tx.mm4_transaction_id);
  std::string().swap(tx.mm4_originator_system);
}

// ------------------------------------------------------------------ events

// PROTOCOL.md 5: an address over its connections gets 421 as its greeting
// (RFC 5321 3.1 allows 421 there) and the connection closes.
void session_machine::start() {
  if (config.connections != nullptr) {
    const auto admitted = config.connections->admit_peer(conn.peer_ip);
    if (admitted == connection_gate::admission::refused) return close_with(replies::too_many_connections);
    peer_counted = admitted == connection_gate::admission::counted;
  }
  replies::append_greeting(out, config.hostname, conn.number, conn.peer_ip);
}

// ------------------------------------------------------------------ limits

// The declared SIZE, or the maximum when none was declared (the body may
// take that much), against the process-wide budget: one atomic add per DATA.
bool session_machine::reserve_body() {
  release_body();
  body_memory_budget* b = config.body_memory;
  if (b == nullptr || b->limit <= 0) return true;
  const auto want = static_cast<std::int64_t>(declared_size > 0 ? declared_size : config.max_message_size);
  const std::int64_t before = b->reserved.fetch_add(want, std::memory_order_relaxed);
  if (before + want > b->limit) {
    b->reserved.fetch_sub(want, std::memory_order_relaxed);
    return false;
  }
  body_reserved = want;
  return true;
}

// SIZE is an estimate (RFC 1870): a body that outgrows it takes what it
// holds in steps of 1 MiB (never refused mid-DATA: the text must be read to
// its end), so the budget counts what is really held and later DATAs see it.
void session_machine::grow_body_reservation() {
  body_memory_budget* b = config.body_memory;
  if (b == nullptr || b->limit <= 0) return;
  constexpr std::int64_t step = 1 << 20;
  const std::int64_t more = static_cast<std::int64_t>(tx().body.size()) - body_reserved + step;
  b->reserved.fetch_add(more, std::memory_order_relaxed);
  body_reserved += more;
}

void session_machine::release_body() {
  if (body_reserved == 0) return;
  config.body_memory->reserved.fetch_sub(body_reserved, std::memory_order_relaxed);
  body_reserved = 0;
}

void session_machine::release_account() {
  if (!account_counted) return;
  config.connections->leave_account(account.id);
  account_counted = false;
}

void session_machine::release_limits() {
  release_body();
  release_account();
  if (peer_counted) config.connections->leave_peer(conn.peer_ip);
  peer_counted = false;
}

// Timers: `data` while DATA text is being read, `command` otherwise,
// including while the content step or the commit is pending.
timer_kind session_machine::current_timer() const {
  const bool receiving = state == phase::data || state == phase::chunks;
  return receiving && pending == request_kind::none ? timer_kind::data : timer_kind::command;
}

void session_machine::on_timeout() {
  if (closing) return;
  replies::append_timeout(out, config.hostname);
  closing = true;
}

void session_machine::on_shutdown() {
  if (closing) return;
  // A message being received or committed finishes first.
  if (state == phase::data || state == phase::chunks) {
    shutdown_requested = true;
    return;
  }
  close_with(replies::shutting_down);
}

// ------------------------------------------------------------------ session

struct session::impl : session_machine {
  using session_machine::session_machine;
};

session::session(const session_config& config, connection_info conn, const account_settings* preauthenticated)
    : impl_(std::make_unique<impl>(config, std::move(conn), preauthenticated)) {}

session::~session() {
  impl_->release_limits();
  wipe(impl_->credentials.password);
}

void session::start() { impl_->start(); }

std::size_t session::feed(std::string_view input) {
  // The owner has sent and cleared what a big pipelined batch produced; give
  // the room back so that the session parks small.
  if (impl_->out.empty() && impl_->out.capacity() > keep_output_capacity) std::string().swap(impl_->out);
  if (impl_->pending != request_kind::none || impl_->closing || impl_->output_full()) return 0;
  return impl_->feed(input);
}

request_kind session::pending() const { return impl_->pending; }
const auth_request& session::pending_auth() const { return impl_->credentials; }
const credit_check_request& session::pending_credit_check() const { return impl_->credit; }
const rate_check_request& session::pending_rate_check() const { return impl_->rate; }
const content_request& session::pending_content() const { return impl_->content; }
const relay_request& session::pending_relay() const { return impl_->relay; }
transaction& session::pending_commit() { return impl_->tx(); }

void session::resolve(const auth_result& r) {
  if (impl_->pending == request_kind::authenticate) impl_->resolve(r);
}
void session::resolve(const credit_check_result& r) {
  if (impl_->pending == request_kind::credit_check) impl_->resolve(r);
}
void session::resolve(const rate_check_result& r) {
  if (impl_->pending == request_kind::rate_check) impl_->resolve(r);
}
void session::resolve(const commit_result& r) {
  if (impl_->pending == request_kind::commit) impl_->resolve(r);
}
void session::resolve(mime::content_result r) {
  if (impl_->pending == request_kind::content) impl_->resolve(r);
}
void session::resolve(const relay_result& r) {
  if (impl_->pending == request_kind::relay_lookup) impl_->resolve(r);
}

std::string& session::output() { return impl_->out; }
bool session::closing() const { return impl_->closing; }
bool session::take_starttls() { return std::exchange(impl_->starttls_accepted, false); }
bool session::output_full() const { return impl_->output_full(); }

timer_kind session::current_timer() const { return impl_->current_timer(); }
std::uint64_t session::data_started() const { return impl_->data_count; }
void session::on_timeout() { impl_->on_timeout(); }
void session::on_shutdown() { impl_->on_shutdown(); }

const connection_info& session::connection() const { return impl_->conn; }
bool session::authenticated() const { return impl_->authed; }
std::uint64_t session::messages_accepted() const { return impl_->accepted; }

}  // namespace postino::smtp
