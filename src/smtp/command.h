// The SMTP command table and the argument parsers, in the manner of Postfix's
// smtpd_cmd_table: each verb carries the checks the session applies before its
// handler runs (EHLO/HELO needed, AUTH needed), its line limit and how it
// treats read-ahead. Everything here works on views into the caller's line
// (input buffer or the scanner's carry buffer) and copies nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace postino::smtp {

enum class verb : std::uint8_t {
  ehlo, helo, auth, mail, rcpt, data, rset, noop, quit, vrfy, expn, turn, help, starttls
};

// Flags of a command table row.
enum command_flag : std::uint8_t {
  needs_helo = 1 << 0,          // refused before EHLO/HELO (with the row's text)
  needs_auth = 1 << 1,          // refused before AUTH: 530 5.7.0
  text_follows = 1 << 2,        // accepted, the bytes after it are message text;
                                // refused with bytes after it: synchronization error
  discards_readahead = 1 << 3,  // accepted, bytes after it are dropped (CVE-2011-0411)
};

struct command_spec {
  std::string_view name;
  verb id;
  std::uint8_t flags;
  std::string_view no_helo_reply;  // the 503 when needs_helo fails
  std::size_t line_limit;          // octets including CRLF
};

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
struct path_args {
  std::string_view path;
  std::string_view params;
};
bool parse_path(std::string_view args, std::string_view keyword, path_args& out);

// One ESMTP parameter `KEY[=VALUE]`. next_param() takes the next one off
// `rest` and returns false when none is left.
struct esmtp_param {
  std::string_view name;
  std::string_view value;
  bool has_value = false;
};
bool next_param(std::string_view& rest, esmtp_param& out);

// Decimal without sign or spaces, no overflow; false otherwise.
bool parse_decimal(std::string_view s, std::uint64_t& out);

}  // namespace postino::smtp
