// The command table and argument parsers. The table is the single place that
// says which verbs exist, what they need before they run and how long their
// lines may be; the session's dispatch follows it. Works on caller-owned views.
#include "command.h"

#include <array>

#include "postino/ascii.h"
#include "scanner.h"

namespace postino::smtp {
namespace {

constexpr std::string_view helo_first = "503 5.5.1 ERROR: send EHLO or HELO first";
constexpr std::string_view ehlo_first = "503 5.5.1 ERROR: send EHLO first";

// RFC 5321 4.5.3.1.4: 512 for commands; MAIL and RCPT get room for ESMTP
// parameters; an AUTH line may carry a SASL initial response (RFC 4954).
constexpr std::array<command_spec, 14> table{{
    {"EHLO", verb::ehlo, 0, {}, default_line_limit},
    {"HELO", verb::helo, 0, {}, default_line_limit},
    {"AUTH", verb::auth, needs_helo, ehlo_first, auth_line_limit},
    {"MAIL", verb::mail, needs_helo | needs_auth, helo_first, 1024},
    {"RCPT", verb::rcpt, needs_helo | needs_auth, helo_first, 1024},
    {"DATA", verb::data, needs_helo | needs_auth | text_follows, helo_first, default_line_limit},
    {"RSET", verb::rset, 0, {}, default_line_limit},
    {"NOOP", verb::noop, 0, {}, default_line_limit},
    {"QUIT", verb::quit, 0, {}, default_line_limit},
    {"VRFY", verb::vrfy, 0, {}, default_line_limit},
    {"EXPN", verb::expn, 0, {}, default_line_limit},
    {"TURN", verb::turn, 0, {}, default_line_limit},
    {"HELP", verb::help, 0, {}, default_line_limit},
    {"STARTTLS", verb::starttls, discards_readahead, {}, default_line_limit},
}};

bool is_space(char c) { return c == ' ' || c == '\t'; }

// Length of a token that may contain quoted strings; stops at `stop` outside
// quotes or at the end. Returns npos for an unterminated quote.
std::size_t token_length(std::string_view s, char stop) {
  bool quoted = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == stop || (stop == ' ' && c == '\t')) {
      return i;
    }
  }
  return quoted ? std::string_view::npos : s.size();
}

std::string_view skip_spaces(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

}  // namespace

const command_spec* find_command(std::string_view name) {
  for (const auto& row : table)
    if (iequals(row.name, name)) return &row;
  return nullptr;
}

std::size_t command_line_limit(std::string_view prefix) {
  const std::size_t space = prefix.find(' ');
  if (space == std::string_view::npos) return default_line_limit;
  const command_spec* row = find_command(prefix.substr(0, space));
  return row != nullptr ? row->line_limit : default_line_limit;
}

command_line split_command(std::string_view line) {
  while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
  const std::size_t space = line.find(' ');
  if (space == std::string_view::npos) return {line, {}};
  return {line.substr(0, space), skip_spaces(line.substr(space + 1))};
}

bool parse_path(std::string_view args, std::string_view keyword, path_args& out) {
  if (!istarts_with(args, keyword)) return false;
  std::string_view rest = skip_spaces(args.substr(keyword.size()));
  if (rest.empty()) return false;
  std::size_t after = 0;
  if (rest.front() == '<') {
    const std::size_t len = token_length(rest.substr(1), '>');
    if (len == std::string_view::npos || len + 1 >= rest.size()) return false;  // no closing '>'
    out.path = rest.substr(1, len);
    after = len + 2;
  } else {
    const std::size_t len = token_length(rest, ' ');
    if (len == std::string_view::npos || len == 0) return false;
    out.path = rest.substr(0, len);
    after = len;
  }
  rest = rest.substr(after);
  if (!rest.empty() && !is_space(rest.front())) return false;  // `<a>b`
  out.params = skip_spaces(rest);
  return true;
}

bool next_param(std::string_view& rest, esmtp_param& out) {
  rest = skip_spaces(rest);
  if (rest.empty()) return false;
  std::size_t end = 0;
  while (end < rest.size() && !is_space(rest[end])) ++end;
  std::string_view token = rest.substr(0, end);
  rest.remove_prefix(end);
  const std::size_t eq = token.find('=');
  out.has_value = eq != std::string_view::npos;
  out.name = out.has_value ? token.substr(0, eq) : token;
  out.value = out.has_value ? token.substr(eq + 1) : std::string_view{};
  return true;
}

bool parse_decimal(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

}  // namespace postino::smtp
