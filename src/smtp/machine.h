// The SMTP session's state machine (private to src/smtp): what
// smtp::session (include/smtp/postino/smtp.h) runs behind its pimpl, declared here
// so that the command table (command.cc) can name each verb's handler.
// Definitions in session.cc. Buffers: the input view is the caller's and is
// only read during feed(); the line scanner's carry buffer, the output, the
// transaction (with the message body, copied once from the input) and the
// pending requests belong to the machine. The owner may move the whole
// transaction (a postino::message) out while the commit is pending.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "command.h"
#include "postino/mime.h"
#include "postino/smtp.h"
#include "recipient_keys.h"
#include "replies.h"
#include "scanner.h"

namespace postino::smtp {

class session_machine {
 public:
  session_machine(const session_config& c, connection_info ci, const account_settings* preauthenticated);

  // ------------------------------------------------ the owner's side (smtp.h)
  void start();
  std::size_t feed(std::string_view in);
  bool output_full() const { return out.size() >= config.max_pending_output; }
  timer_kind current_timer() const;
  void resolve(const auth_result& r);
  void resolve(const credit_check_result& r);
  void resolve(const rate_check_result& r);
  void resolve(const commit_result& r);
  void resolve(mime::content_result& r);
  void resolve(const relay_result& r);
  void on_timeout();
  void on_shutdown();
  void release_limits();  // the session ends: gives back connection slots and body memory

  // ------------------------------------------------ the command table's handlers
  // Each runs once its row allowed the phase (command.cc) and returns whether
  // the command was accepted.
  bool greet(const command_spec& row, std::string_view args);  // EHLO, HELO
  bool auth(const command_spec& row, std::string_view args);
  bool mail(const command_spec& row, std::string_view args);
  bool rcpt(const command_spec& row, std::string_view args);
  bool data(const command_spec& row, std::string_view args);
  bool rset(const command_spec& row, std::string_view args);
  bool noop(const command_spec& row, std::string_view args);
  bool quit(const command_spec& row, std::string_view args);
  bool not_offered(const command_spec& row, std::string_view args);  // VRFY, EXPN, TURN, HELP
  bool starttls(const command_spec& row, std::string_view args);
  bool bdat(const command_spec& row, std::string_view args);
  // EHLO offers AUTH unless the listener's account is fixed (or found per
  // MAIL: a relay listener) or AUTH waits for TLS.
  bool auth_offered() const {
    return !preauthenticated && !config.relay && (tls_active || !config.require_tls_for_auth);
  }

  const session_config& config;
  connection_info conn;
  account_settings account;
  // The transaction's buffers exist once the session has begun one and are
  // kept for the next; a session idle since AUTH holds none of them.
  transaction& tx() {
    if (!tx_) tx_ = std::make_unique<transaction>();
    return *tx_;
  }
  std::unique_ptr<transaction> tx_;
  std::string out;
  auth_request credentials;  // the AUTH exchange's user and password (wiped after)
  credit_check_request credit;
  rate_check_request rate;
  content_request content;
  relay_request relay;
  request_kind pending = request_kind::none;
  std::uint64_t accepted = 0;
  bool authed = false;
  bool closing = false;
  bool starttls_accepted = false;  // until the owner takes it (take_starttls)
  std::uint64_t data_count = 0;    // DATA transactions begun (354 sent)

 private:
  // output
  void send(const reply& r);
  void send(const reply& r, std::string_view value);  // a reply whose text ends in a slot
  bool refuse(const reply& r);                         // send(r), then "not accepted"
  void count(const reply& r);
  void close_with(const reply& r);
  void enter(phase to, std::string_view cause);
  void trace(phase to, std::string_view cause) const;

  // input
  bool command(std::string_view line, bool more_follows);
  const reply* relay_refusal(const command_spec& row) const;
  void line_too_long();

  // AUTH
  bool auth_login(bool has_initial, std::string_view initial);
  bool auth_plain(bool has_initial, std::string_view initial);
  void auth_response(std::string_view line);
  void plain(std::string_view message);
  void abandon_auth(std::string_view cause);
  void auth_failed();

  // MAIL, RCPT
  bool mail_params(std::string_view params);
  bool mail_from(std::string_view path);
  bool ask_relay(std::string_view path);
  bool no_repeated_param(std::string_view params);
  void mail_ok();
  bool is_duplicate(const std::string& e164) const;
  void add_recipient(std::string e164);
  void recipient_ok(std::string_view e164);

  // DATA and BDAT, and the end of the transaction
  void end_of_data();
  void expect_chunk(std::string_view args);
  std::size_t take_chunk(std::string_view in);
  void end_of_chunk();
  bool begin_chunks();
  void read_content();
  void apply_content(mime::content_result& r);
  void finish_transaction(std::string_view cause);
  void finish_if_shutting_down();
  void reset_transaction();

  // Limits kept with the owner (PROTOCOL.md 5): connection slots, body memory.
  bool reserve_body();
  void grow_body_reservation();
  void release_body();
  void release_account();

  line_scanner lines;
  data_scanner text;
  // The BDAT chunk the client sends behind the current or last BDAT line.
  struct chunk_state {
    std::uint64_t size = 0;  // its octets, for the 250
    std::uint64_t left = 0;  // octets still to read
    bool owed = false;       // the BDAT's size parsed: `size` octets follow its line
    bool valid = false;      // and the rest of the line too
    bool last = false;       // BDAT <size> LAST
    bool keep = false;       // accepted: the octets go to the body; refused: dropped
  } chunk;
  key_set recipient_keys;
  std::string waiting_recipient;  // the RCPT whose credit check is pending
  std::string relay_sender;       // the MAIL path whose relay look-up is pending
  bool relay_denied = false;      // this transaction's MAIL got 554 5.7.1: so does RCPT
  std::optional<credit_units> cached_credit;  // a positive credit answer, this transaction
  std::size_t recipients_hint = 1;            // recipients of the last message committed
  unsigned errors = 0;
  unsigned auth_failures = 0;
  phase state = phase::connected;
  bool preauthenticated = false;
  bool tls_active = false;
  bool shutdown_requested = false;
  bool counting_errors = true;  // the current command's row counts its failures
  bool peer_counted = false;     // holds a per-address connection slot
  bool account_counted = false;  // holds a per-account slot for account.id
  std::uint64_t declared_size = 0;  // MAIL's SIZE=, this transaction (0: none)
  std::int64_t body_reserved = 0;   // bytes of config.body_memory this transaction holds
};

}  // namespace postino::smtp
