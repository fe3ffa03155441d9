// The SMTP session state machine (PROTOCOL.md sections 1, 2, 3 for DATA text,
// 5 for per-session limits). It consumes the caller's input views in place,
// appends replies to its own output string, and turns whatever is slow or
// belongs to another component (password check, credit, journal commit) into
// a request the owner resolves. At the terminator the content step
// (src/mime) turns the body into the SMS text, or a refusal, and prices it.
// Buffers: the input view is the caller's and is only read during feed(); the
// line scanner's carry buffer, the output, the transaction (with the message
// body, copied once from the input) and the pending requests belong to the
// session. The owner may move the body out of
// pending_commit() while the commit is pending.
#include "postino/smtp.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "command.h"
#include "postino/ascii.h"
#include "postino/mime.h"
#include "postino/sms.h"
#include "base64.h"
#include "replies.h"
#include "scanner.h"

namespace postino::smtp {
namespace {

// Where the session is in the protocol, apart from HELO/AUTH/MAIL facts.
enum class phase : std::uint8_t { command, auth_login_user, auth_login_password, auth_plain, data };

// Replies that count toward the per-session error limit (PROTOCOL.md 5):
// what the client sent could not be understood or is not offered. A 503
// (a command out of sequence) does not count: a client that pipelines ahead
// of a refusal sends several, and none of them is garbage.
bool counts_as_error(std::string_view line) {
  if (line.size() < 3) return false;
  const std::string_view code = line.substr(0, 3);
  return code == "500" || code == "501" || code == "502" || code == "504" || code == "555";
}

// Recipients are kept distinct through a set of integer keys: an E.164
// number has at most 15 digits, so "+<digits>" maps exactly onto a 64-bit
// value (the digit count is folded in so leading zeros cannot collide, and no
// key is 0).
std::optional<std::uint64_t> recipient_key(std::string_view e164) {
  if (e164.size() < 2 || e164.size() > 18 || e164.front() != '+') return std::nullopt;
  std::uint64_t v = 0;
  for (char c : e164.substr(1)) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v * 32 + (e164.size() - 1);
}

// The keys of a transaction's recipients: open addressing with linear
// probing, at most half full, 0 marking a free slot. Each RCPT is O(1); the
// sorted vector this replaces moved half its keys on every insert, which is
// quadratic in the recipient count (2 KB copied per RCPT at 1,000, and
// max_recipients has no upper bound).
class key_set {
 public:
  bool contains(std::uint64_t key) const {
    if (slots_.empty()) return false;
    for (std::size_t i = slot_of(key);; i = (i + 1) & mask()) {
      if (slots_[i] == key) return true;
      if (slots_[i] == 0) return false;
    }
  }
  void insert(std::uint64_t key) {  // not already present
    if ((size_ + 1) * 2 > slots_.size()) grow();
    place(key);
    ++size_;
  }
  void clear() {
    std::fill(slots_.begin(), slots_.end(), 0);
    size_ = 0;
  }
  void release() {
    std::vector<std::uint64_t>().swap(slots_);
    bits_ = 0;
    size_ = 0;
  }
  std::size_t capacity() const { return slots_.size() / 2; }

 private:
  std::size_t mask() const { return slots_.size() - 1; }
  std::size_t slot_of(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> (64 - bits_));  // Fibonacci hashing
  }
  void place(std::uint64_t key) {
    std::size_t i = slot_of(key);
    while (slots_[i] != 0) i = (i + 1) & mask();
    slots_[i] = key;
  }
  void grow() {
    std::vector<std::uint64_t> old = std::move(slots_);
    bits_ = old.empty() ? 4 : bits_ + 1;
    slots_.assign(std::size_t{1} << bits_, 0);
    for (std::uint64_t k : old)
      if (k != 0) place(k);
  }

  std::vector<std::uint64_t> slots_;
  unsigned bits_ = 0;
  std::size_t size_ = 0;
};

void append_number(std::string& out, std::int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void wipe(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  std::string().swap(s);
}

// Buffers above these sizes are given back after a transaction, so a parked
// session stays small (DESIGN.md: well under 4 KiB).
constexpr std::size_t keep_body_capacity = 1024;
constexpr std::size_t keep_recipient_capacity = 16;
constexpr std::size_t keep_output_capacity = 2048;

}  // namespace

struct session::impl {
  impl(const session_config& c, connection_info ci, const account_settings* pre)
      : config(c), conn(std::move(ci)) {
    if (pre != nullptr) {
      account = *pre;
      authed = true;
      preauthenticated = true;
    }
  }

  const session_config& config;
  connection_info conn;
  account_settings account;
  transaction tx;
  std::string out;
  line_scanner lines;
  data_scanner text;
  key_set recipient_keys;
  auth_request auth;
  credit_check_request credit;
  rate_check_request rate;
  content_request content;
  std::string waiting_recipient;  // the RCPT whose credit check is pending
  std::uint64_t declared_size = 0;
  std::uint64_t accepted = 0;
  credit_units cached_credit = 0;  // a positive credit answer, this transaction
  std::size_t recipients_hint = 1;  // recipients of the last message committed
  unsigned errors = 0;
  unsigned auth_failures = 0;
  phase state = phase::command;
  request_kind pending = request_kind::none;
  bool helo = false;
  bool authed = false;
  bool preauthenticated = false;
  bool in_mail = false;
  bool has_cached_credit = false;
  bool tls_active = false;
  bool closing = false;
  bool shutdown_requested = false;
  bool discard_input = false;

  // ------------------------------------------------------------- output

  void send(std::string_view line) {
    if (closing) return;
    out += line;
    out += "\r\n";
    if (counts_as_error(line) && ++errors >= config.max_errors) close_with(reply::too_many_errors);
  }

  void send2(std::string_view head, std::string_view tail) {
    if (closing) return;
    out += head;
    out += tail;
    out += "\r\n";
    if (counts_as_error(head) && ++errors >= config.max_errors) close_with(reply::too_many_errors);
  }

  void close_with(std::string_view line) {
    if (closing) return;
    out += line;
    out += "\r\n";
    closing = true;
  }

  // ------------------------------------------------------------- input

  std::size_t feed(std::string_view in) {
    std::size_t pos = 0;
    while (pos < in.size() && pending == request_kind::none && !closing && !output_full()) {
      if (state == phase::data) {
        pos += text.feed(in.substr(pos), tx.body);
        if (text.done()) end_of_data();
        continue;
      }
      const line_mode mode = state == phase::command ? line_mode::command : line_mode::auth_response;
      const auto r = lines.next(in.substr(pos), mode);
      pos += r.consumed;
      if (r.what == line_scanner::kind::too_long) {
        line_too_long();
      } else if (r.what == line_scanner::kind::line) {
        if (state == phase::command) command(r.line, pos < in.size());
        else auth_response(r.line);
      }
      if (discard_input) {
        discard_input = false;
        pos = in.size();
      }
    }
    return pos;
  }

  bool output_full() const { return out.size() >= config.max_pending_output; }

  void line_too_long() {
    if (state != phase::command) abandon_auth();
    send(reply::line_too_long);
  }

  // The command table decides which generic checks run before the handler,
  // in the precedence of PROTOCOL.md: EHLO/HELO, AUTH, then the handler's
  // own transaction-order and argument checks.
  void command(std::string_view line, bool more_follows) {
    const command_line cl = split_command(line);
    const command_spec* spec = find_command(cl.verb);
    if (spec == nullptr) {
      send(reply::unrecognized);
      return;
    }
    bool accepted_cmd = false;
    if ((spec->flags & needs_helo) && !helo) {
      send(spec->no_helo_reply);
    } else if ((spec->flags & needs_auth) && !authed) {
      send(reply::auth_required);
    } else {
      accepted_cmd = dispatch(spec->id, cl.args);
    }
    if ((spec->flags & text_follows) && !accepted_cmd && more_follows) {
      // The bytes behind a refused DATA would be message text run as commands.
      close_with(reply::sync_error);
    }
    if ((spec->flags & discards_readahead) && accepted_cmd) discard_input = true;
  }

  // Returns whether the command was accepted (only DATA and STARTTLS care).
  bool dispatch(verb v, std::string_view args) {
    switch (v) {
      case verb::ehlo: return do_ehlo(args);
      case verb::helo: return do_helo(args);
      case verb::auth: return do_auth(args);
      case verb::mail: return do_mail(args);
      case verb::rcpt: return do_rcpt(args);
      case verb::data: return do_data(args);
      case verb::rset:
        if (!args.empty()) {
          send(reply::syntax_rset);
          return false;
        }
        reset_transaction();
        send(reply::ok);
        return true;
      case verb::noop:
        send(reply::ok);
        return true;
      case verb::quit:
        close_with(reply::closing);
        return true;
      case verb::vrfy:
      case verb::expn:
      case verb::turn:
      case verb::help:
        send(reply::not_implemented);
        return false;
      case verb::starttls: return do_starttls(args);
    }
    return false;
  }

  // ------------------------------------------------------------- greeting

  bool do_ehlo(std::string_view args) {
    if (args.empty()) {
      send(reply::syntax_ehlo);
      return false;
    }
    reset_transaction();
    helo = true;
    std::vector<std::string_view> ext = {"PIPELINING", "ENHANCEDSTATUSCODES"};
    std::string size = "SIZE ";
    size += std::to_string(config.max_message_size);
    ext.push_back(size);
    ext.push_back("8BITMIME");
    if (config.tls_available && !tls_active) ext.push_back("STARTTLS");
    if (!preauthenticated) {
      ext.push_back("AUTH LOGIN PLAIN");
      ext.push_back("AUTH=LOGIN PLAIN");
    }
    out += "250-";
    out += config.hostname;
    out += " Requested okay, completed\r\n";
    for (std::size_t i = 0; i < ext.size(); ++i) {
      out += i + 1 == ext.size() ? "250 " : "250-";
      out += ext[i];
      out += "\r\n";
    }
    return true;
  }

  bool do_helo(std::string_view args) {
    if (args.empty()) {
      send(reply::syntax_helo);
      return false;
    }
    reset_transaction();
    helo = true;
    out += "250 ";
    out += config.hostname;
    out += " Requested okay, completed\r\n";
    return true;
  }

  bool do_starttls(std::string_view args) {
    if (!config.tls_available || tls_active) {
      send(reply::not_implemented);
      return false;
    }
    if (!args.empty()) {
      send(reply::syntax_starttls);
      return false;
    }
    send(reply::tls_ready);
    // RFC 3207 4.2: forget everything learnt from the client in the clear.
    tls_active = true;
    helo = false;
    if (!preauthenticated) {
      authed = false;
      account = account_settings{};
    }
    reset_transaction();
    lines.reset();
    return true;
  }

  // ------------------------------------------------------------- AUTH

  bool do_auth(std::string_view args) {
    // Inside a transaction the session is always authenticated; the more
    // specific refusal comes first so both replies of PROTOCOL.md occur.
    if (in_mail) {
      send(reply::auth_in_transaction);
      return false;
    }
    if (authed) {
      send(reply::already_authenticated);
      return false;
    }
    const command_line parts = split_command(args);
    if (parts.verb.empty() || parts.args.find(' ') != std::string_view::npos) {
      send(reply::syntax_auth);
      return false;
    }
    const bool has_initial = !parts.args.empty();
    // RFC 4954: "=" is an empty initial response.
    const std::string_view initial = parts.args == "=" ? std::string_view{} : parts.args;
    if (iequals(parts.verb, "LOGIN")) {
      if (!has_initial) {
        send(reply::ask_username);
        state = phase::auth_login_user;
        return true;
      }
      if (!decode_base64(initial, auth.username)) {
        abandon_auth();
        send(reply::cannot_decode);
        return false;
      }
      send(reply::ask_password);
      state = phase::auth_login_password;
      return true;
    }
    if (iequals(parts.verb, "PLAIN")) {
      if (!has_initial) {
        send(reply::ask_plain);
        state = phase::auth_plain;
        return true;
      }
      std::string decoded;
      if (!decode_base64(initial, decoded)) {
        send(reply::cannot_decode);
        return false;
      }
      plain(decoded);
      wipe(decoded);
      return true;
    }
    send(reply::unknown_mechanism);
    return false;
  }

  void auth_response(std::string_view line) {
    const phase was = state;
    state = phase::command;
    if (line == "*") {
      abandon_auth();
      send(reply::auth_cancelled);
      return;
    }
    std::string decoded;
    if (!decode_base64(line, decoded)) {
      abandon_auth();
      send(reply::cannot_decode);
      return;
    }
    switch (was) {
      case phase::auth_login_user:
        auth.username = std::move(decoded);
        send(reply::ask_password);
        state = phase::auth_login_password;
        return;
      case phase::auth_login_password:
        auth.password = std::move(decoded);
        pending = request_kind::authenticate;
        return;
      case phase::auth_plain:
        plain(decoded);
        wipe(decoded);
        return;
      default:
        return;
    }
  }

  // SASL PLAIN (RFC 4616): authzid NUL authcid NUL passwd. The authorization
  // identity, when given, must be the user itself: no proxy logins.
  void plain(std::string_view message) {
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
    auth.username.assign(user);
    auth.password.assign(message.substr(second + 1));
    pending = request_kind::authenticate;
  }

  void abandon_auth() {
    state = phase::command;
    wipe(auth.username);
    wipe(auth.password);
  }

  void auth_failed() {
    send(reply::auth_invalid);
    if (++auth_failures >= config.max_auth_failures) close_with(reply::too_many_auth_failures);
  }

  void resolve(const auth_result& r) {
    pending = request_kind::none;
    abandon_auth();
    switch (r.result) {
      case auth_result::outcome::ok: {
        authed = true;
        account = r.account;
        std::string line = "235 2.7.0 Authentication successful. CREDIT: ";
        append_number(line, r.available);
        line += " ID ACCOUNT: ";
        line += std::to_string(account.id);
        line += " STATUS: ";
        line += status_name(account.status);
        send(line);
        break;
      }
      case auth_result::outcome::invalid:
        auth_failed();
        break;
      case auth_result::outcome::temporary_failure:
        send(reply::auth_temporary);
        break;
      case auth_result::outcome::busy:
        send(reply::auth_busy);
        break;
    }
    finish_if_shutting_down();
  }

  // ------------------------------------------------------------- MAIL

  bool do_mail(std::string_view args) {
    if (in_mail) {
      send(reply::nested_mail);
      return false;
    }
    if (account.status == account_status::suspended) {
      send(reply::account_suspended);
      return false;
    }
    path_args pa;
    if (!parse_path(args, "FROM:", pa)) {
      send(reply::syntax_mail);
      return false;
    }
    std::uint64_t size = 0;
    std::string_view rest = pa.params;
    esmtp_param p;
    while (next_param(rest, p)) {
      if (iequals(p.name, "SIZE")) {
        if (!p.has_value || !parse_decimal(p.value, size)) {
          send(reply::bad_size);
          return false;
        }
        if (size > config.max_message_size) {
          send(reply::size_exceeds_max);
          return false;
        }
      } else if (iequals(p.name, "BODY")) {
        // Both are the same to a gateway that stores the octets it is given.
        if (!p.has_value || !(iequals(p.value, "7BIT") || iequals(p.value, "8BITMIME"))) {
          send(reply::bad_body);
          return false;
        }
      } else {
        send2(reply::unsupported_parameter, p.name.empty() ? p.value : p.name);
        return false;
      }
    }
    const sms::originator_check oc = sms::resolve_originator(pa.path, account);
    if (oc.not_allowed) {
      send(reply::sender_not_allowed);
      return false;
    }
    if (!oc.result.ok) {
      send2(reply::invalid_sender, oc.result.why);
      return false;
    }
    // A full delivery queue is a 4xx the client retries later; checked
    // before the rate limit so a refused MAIL spends no token.
    if (config.delivery_backlog != nullptr &&
        config.delivery_backlog->load(std::memory_order_relaxed) >= config.delivery_backlog_limit) {
      send(reply::queue_full);
      return false;
    }
    declared_size = size;
    tx.account = account.id;
    tx.originator = oc.result.value;
    tx.originator_type = oc.result.kind;
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

  void mail_ok() {
    in_mail = true;
    std::string line = "250 2.1.0 ";
    line += tx.originator;
    line += " ...Sender Ok";
    send(line);
  }

  void resolve(const rate_check_result& r) {
    pending = request_kind::none;
    if (r.allowed) {
      mail_ok();
    } else {
      // A 4xx the client retries later; not a protocol error, so it does
      // not count toward the error limit.
      reset_transaction();
      send(reply::rate_limited);
    }
    finish_if_shutting_down();
  }

  // ------------------------------------------------------------- RCPT

  bool do_rcpt(std::string_view args) {
    if (!in_mail) {
      send(reply::need_mail_for_rcpt);
      return false;
    }
    path_args pa;
    if (!parse_path(args, "TO:", pa)) {
      send(reply::syntax_rcpt);
      return false;
    }
    std::string_view rest = pa.params;
    esmtp_param p;
    if (next_param(rest, p)) {
      send2(reply::unsupported_parameter, p.name.empty() ? p.value : p.name);
      return false;
    }
    sms::recipient_result rr = sms::normalize_recipient(pa.path, account.default_country);
    if (!rr.ok) {
      send2(reply::invalid_recipient, rr.why);
      return false;
    }
    if (is_duplicate(rr.e164)) {
      recipient_ok(rr.e164);
      return true;
    }
    if (tx.recipients.size() >= account.max_recipients) {
      send(reply::too_many_recipients);
      return false;
    }
    // One segment at this destination's price; the whole price is the commit's.
    const credit_units price = segment_price(account, rr.e164);
    if (has_cached_credit && cached_credit >= price) {
      add_recipient(std::move(rr.e164));
      return true;
    }
    credit = credit_check_request{account.id, price};
    waiting_recipient = std::move(rr.e164);
    pending = request_kind::credit_check;
    return true;
  }

  bool is_duplicate(const std::string& e164) const {
    if (auto key = recipient_key(e164)) return recipient_keys.contains(*key);
    return std::find(tx.recipients.begin(), tx.recipients.end(), e164) != tx.recipients.end();
  }

  void add_recipient(std::string e164) {
    if (auto key = recipient_key(e164)) recipient_keys.insert(*key);
    // The owner moves each message out with its recipient list: reserve what
    // the last one needed, so a list is one allocation, not a doubling chain.
    if (tx.recipients.capacity() == 0) tx.recipients.reserve(recipients_hint);
    tx.recipients.push_back(std::move(e164));
    recipient_ok(tx.recipients.back());
  }

  // Straight into the output: a 1,000-recipient message would otherwise
  // build (and allocate) a line per recipient.
  void recipient_ok(std::string_view e164) {
    if (closing) return;
    out += "250 2.1.5 ";
    out += e164;
    out += " ...Recipient Ok\r\n";
  }

  void resolve(const credit_check_result& r) {
    pending = request_kind::none;
    // Only a positive answer is remembered; a refusal is always fresh, so a
    // top-up lets the same session go on.
    if (r.available >= credit.amount) {
      has_cached_credit = true;
      cached_credit = r.available;
      add_recipient(std::move(waiting_recipient));
    } else {
      send(reply::insufficient_credit_rcpt);
    }
    waiting_recipient.clear();
    finish_if_shutting_down();
  }

  // ------------------------------------------------------------- DATA

  bool do_data(std::string_view args) {
    if (!in_mail) {
      send(reply::need_mail_for_data);
      return false;
    }
    if (tx.recipients.empty()) {
      send(reply::need_rcpt);
      return false;
    }
    if (!args.empty()) {
      send(reply::syntax_data);
      return false;
    }
    send(reply::start_data);
    std::uint64_t limit = config.max_message_size;
    if (declared_size != 0) limit = std::min(limit, declared_size);
    tx.body.clear();
    text.start(limit, config.bare_newline == bare_newline_policy::reject);
    state = phase::data;
    return true;
  }

  void end_of_data() {
    state = phase::command;
    if (text.bare_newline_seen() && config.bare_newline == bare_newline_policy::reject) {
      send(reply::bare_newline);
      finish_transaction();
      return;
    }
    if (text.too_big()) {
      send(reply::message_too_big);
      finish_transaction();
      return;
    }
    // The content step (src/mime): raw or e-mail text, MMS, encoding,
    // segments, or the refusal. A small raw text is read here; anything
    // costlier is a request the owner runs where it fits (off the shard's
    // loop). The body stays as received; the text is apart.
    mime::content_result cheap;
    if (mime::read_content_if_cheap(tx.body, account, cheap)) return apply_content(cheap);
    content = content_request{&tx.body, &account, config.mime_limits};
    pending = request_kind::content;
  }

  void resolve(mime::content_result& r) {
    pending = request_kind::none;
    apply_content(r);
  }

  // The content step's answer: a refusal, or the text, encoding and price
  // (fields moved out of `r`), and then the commit request.
  void apply_content(mime::content_result& r) {
    if (!r.ok) {
      send(r.refusal);
      finish_transaction();
      return;
    }
    tx.sms_text = std::move(r.text);
    tx.data_coding = sms::smpp_data_coding(r.encoding);
    tx.segments = r.segments;
    tx.is_mms = r.mms;
    tx.mm4_ack_owed = r.ack_owed;
    tx.mm4_message_id = std::move(r.mm4_message_id);
    tx.mm4_transaction_id = std::move(r.mm4_transaction_id);
    tx.mm4_originator_system = std::move(r.mm4_originator_system);
    tx.price = message_price(account, tx.recipients, tx.segments, tx.is_mms);
    postino::fill_unit_prices(account, tx.recipients, tx.is_mms, tx.unit_prices);
    recipients_hint = std::min<std::size_t>(tx.recipients.size(), keep_recipient_capacity);
    pending = request_kind::commit;
  }

  void resolve(const commit_result& r) {
    pending = request_kind::none;
    switch (r.result) {
      case commit_result::outcome::accepted:
        ++accepted;
        if (!closing) reply::append_accepted(out, r.recipients != nullptr ? *r.recipients : tx.recipients, r.queue_id);
        break;
      case commit_result::outcome::insufficient_credit: {
        std::string line = "554 5.7.1 Insufficient credit: need ";
        append_number(line, r.need);
        line += ", available ";
        append_number(line, r.available);
        send(line);
        break;
      }
      case commit_result::outcome::local_error:
        send(reply::local_error);
        break;
    }
    finish_transaction();
  }

  void finish_transaction() {
    reset_transaction();
    finish_if_shutting_down();
  }

  void finish_if_shutting_down() {
    if (shutdown_requested) close_with(reply::shutting_down);
  }

  // Drops the transaction (RSET, EHLO, end of DATA) and gives back buffers a
  // big transaction grew; AUTH and EHLO stay.
  void reset_transaction() {
    in_mail = false;
    has_cached_credit = false;
    cached_credit = 0;
    declared_size = 0;
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

  // ------------------------------------------------------------- events

  void on_timeout() {
    std::string line = "421 4.4.2 ";
    line += config.hostname;
    line += " Timeout, closing connection";
    close_with(line);
  }

  void on_shutdown() {
    if (closing) return;
    // A message being received or committed finishes first.
    if (state == phase::data || pending == request_kind::commit || pending == request_kind::content) {
      shutdown_requested = true;
      return;
    }
    close_with(reply::shutting_down);
  }
};

session::session(const session_config& config, connection_info conn, const account_settings* preauthenticated)
    : impl_(std::make_unique<impl>(config, std::move(conn), preauthenticated)) {}

session::~session() {
  wipe(impl_->auth.password);
}

void session::start() {
  auto& s = *impl_;
  s.out += "220 ";
  s.out += s.config.hostname;
  s.out += " ESMTP Service ready. Connection ";
  s.out += std::to_string(s.conn.number);
  s.out += " with [";
  s.out += s.conn.peer_ip;
  s.out += "]\r\n";
}

std::size_t session::feed(std::string_view input) {
  // The owner has sent and cleared what a big pipelined batch produced; give
  // the room back so that the session parks small.
  if (impl_->out.empty() && impl_->out.capacity() > keep_output_capacity) std::string().swap(impl_->out);
  if (impl_->pending != request_kind::none || impl_->closing || impl_->output_full()) return 0;
  return impl_->feed(input);
}

request_kind session::pending() const { return impl_->pending; }
const auth_request& session::pending_auth() const { return impl_->auth; }
const credit_check_request& session::pending_credit_check() const { return impl_->credit; }
const rate_check_request& session::pending_rate_check() const { return impl_->rate; }
const content_request& session::pending_content() const { return impl_->content; }
transaction& session::pending_commit() { return impl_->tx; }

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

std::string& session::output() { return impl_->out; }
bool session::closing() const { return impl_->closing; }
bool session::output_full() const { return impl_->output_full(); }

timer_kind session::current_timer() const {
  return impl_->state == phase::data ? timer_kind::data : timer_kind::command;
}
void session::on_timeout() { impl_->on_timeout(); }
void session::on_shutdown() { impl_->on_shutdown(); }

const connection_info& session::connection() const { return impl_->conn; }
bool session::authenticated() const { return impl_->authed; }
std::uint64_t session::messages_accepted() const { return impl_->accepted; }

}  // namespace postino::smtp
