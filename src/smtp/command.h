// The SMTP command table and the argument parsers, in the manner of Postfix's
// smtpd_cmd_table and OpenSMTPD's smtp_session.c: one row per verb, and the
// row is the wire contract of that verb. It names the handler, the session
// phases where the verb runs (and what every other command phase answers),
// how it ends a pipelining group, whether its failures count toward the error
// limit, its syntax reply and its line limit. The session's dispatch is one
// lookup and the row's checks; no other place lists the verbs. Everything here
// works on views into the caller's line (input buffer or the scanner's carry
// buffer) and copies nothing; the table is static data.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "replies.h"

namespace postino::smtp {

enum class verb : std::uint8_t {
  ehlo, helo, auth, mail, rcpt, data, rset, noop, quit, vrfy, expn, turn, help, starttls, bdat
};
inline constexpr std::size_t verb_count = 15;

// Where the session is. Commands are read in the first six; the others read
// SASL responses or message text. Being authenticated before EHLO/HELO (an
// `auth = "none"` listener) is still `connected`.
enum class phase : std::uint8_t {
  connected,      // before EHLO/HELO (and again after STARTTLS)
  greeted,        // after EHLO/HELO, not authenticated
  authenticated,  // greeted and authenticated, no transaction
  mail,           // after MAIL, no recipient yet
  rcpt,           // after at least one accepted RCPT
  chunks,         // after an accepted BDAT chunk that was not the LAST (RFC 3030)
  auth_username,  // AUTH LOGIN: the next line is the base64 user name
  auth_password,  // AUTH LOGIN: the next line is the base64 password
  auth_plain,     // AUTH PLAIN: the next line is the base64 PLAIN message
  data,           // DATA: message text, until the terminator's reply is out
};
inline constexpr std::size_t command_phases = 6;  // connected .. chunks

using phase_mask = std::uint16_t;
constexpr phase_mask in(phase p) { return static_cast<phase_mask>(1u << static_cast<unsigned>(p)); }
inline constexpr phase_mask any_command_phase =
    in(phase::connected) | in(phase::greeted) | in(phase::authenticated) | in(phase::mail) | in(phase::rcpt) |
    in(phase::chunks);
constexpr bool is_command_phase(phase p) { return (any_command_phase & in(p)) != 0; }
constexpr bool in_transaction(phase p) {
  return p == phase::mail || p == phase::rcpt || p == phase::chunks || p == phase::data;
}

// The phase's name in traces ("authenticated").
std::string_view phase_name(phase p);

// What the client may have sent behind the command (RFC 2920 3.1: a command
// whose answer changes what the client sends next is the last of its group).
enum class pipelining : std::uint8_t {
  continues,      // the group may go on (MAIL, RCPT, RSET, HELP)
  ends_group,     // the last of a group; the bytes after it are read as commands
  text_follows,   // ends the group; accepted, the bytes after it are message text;
                  // refused with bytes after it: synchronization error, close
  discards_rest,  // ends the group; accepted, the bytes after it are dropped (CVE-2011-0411)
};
constexpr bool ends_group(pipelining p) { return p != pipelining::continues; }

class session_machine;  // src/smtp/machine.h
struct command_spec;
// A handler runs once the row's phase check passed; it answers and returns
// whether the command was accepted (the row's `group` rule needs that).
using command_handler = bool (session_machine::*)(const command_spec& row, std::string_view args);

struct command_spec {
  std::string_view name;
  verb id;
  command_handler handler;
  phase_mask allowed;  // the command phases where the handler runs
  // For each command phase outside `allowed`, the reply (a 503 sequence
  // error, 530 before AUTH); null where allowed. Checked to agree with
  // `allowed` when the table is compiled.
  std::array<const reply*, command_phases> refused;
  pipelining group;
  bool counts_errors;      // a counted reply (counts_toward_error_limit) to it counts
  const reply* syntax;     // the 501 for malformed arguments; null: arguments are ignored
  std::size_t line_limit;  // octets including CRLF

  bool allowed_in(phase p) const { return (allowed & in(p)) != 0; }
  // The answer in a command phase where the verb does not run.
  const reply& refusal(phase p) const { return *refused[static_cast<std::size_t>(p)]; }
};

// Every row, in verb order (table()[v].id == v).
const std::array<command_spec, verb_count>& command_table();

// The row for `name` (case-insensitive), or nullptr for an unknown verb.
const command_spec* find_command(std::string_view name);

// The limit of a command line whose first bytes are `prefix` (at least the
// verb and a following space when the line is long enough for it to matter).
std::size_t command_line_limit(std::string_view prefix);

inline constexpr std::size_t default_line_limit = 512;

struct command_line {
  std::string_view verb;
  std::string_view args;  // leading spaces skipped, trailing SP/HTAB trimmed
};
command_line split_command(std::string_view line);

// `MAIL FROM:<path> params` / `RCPT TO:<path> params`, after the verb.
// `keyword` is "FROM:" or "TO:". Accepts the bare form (`FROM: +39...`, first
// token is the address), angle brackets, spaces after the colon, and quoted
// local parts in both forms. The path comes back without its brackets.
// With display_names::accepted, a display name before the address inside the
// brackets (`<Name <addr>>`, `<Name <addr>`, as swaks and curl send a
// command line's "Name <addr>") is dropped and the path is the inner address.
struct path_args {
  std::string_view path;
  std::string_view params;
};
enum class display_names : bool { refused, accepted };
bool parse_path(std::string_view args, std::string_view keyword, path_args& out,
                display_names names = display_names::refused);

// One ESMTP parameter `KEY[=VALUE]`. next_param() takes the next one off
// `rest` and returns false when none is left.
struct esmtp_param {
  std::string_view name;
  std::string_view value;
  bool has_value = false;
};
bool next_param(std::string_view& rest, esmtp_param& out);

// The name of the first parameter in `params` whose name (case-insensitive,
// RFC 5321 2.4) an earlier one already had, as the client spelt it the second
// time; empty when every name is given once. Parameters without a name
// (`=x`) are left to the unknown-parameter check.
std::string_view repeated_param(std::string_view params);

// Decimal without sign or spaces, no overflow; false otherwise.
bool parse_decimal(std::string_view s, std::uint64_t& out);

}  // namespace postino::smtp
