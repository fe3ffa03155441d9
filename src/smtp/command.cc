// The command table and argument parsers. The table is the single place that
// says which verbs exist, in which phases they run and what the others
// answer, how they end a pipelining group, whether their failures count, and
// how long their lines may be; the session's dispatch follows it. Works on
// caller-owned views; the table is static data.
#include "command.h"

#include <array>

#include "machine.h"
#include "postino/ascii.h"
#include "scanner.h"

namespace postino::smtp {
namespace {

using m = session_machine;
using p = pipelining;
namespace r = replies;
using refusals = std::array<const reply*, command_phases>;

// What each command phase answers where the verb does not run, in phase
// order: connected, greeted, authenticated, mail, rcpt, chunks (PROTOCOL.md's
// precedence: EHLO/HELO first, then AUTH, then the transaction order; the
// handler then checks the arguments). Null: the verb runs there.
constexpr refusals runs_anywhere{};
constexpr refusals auth_refused{&r::ehlo_first, nullptr, &r::already_authenticated, &r::auth_in_transaction,
                                &r::auth_in_transaction, &r::auth_in_transaction};
constexpr refusals mail_refused{&r::helo_first, &r::auth_required, nullptr, &r::nested_mail, &r::nested_mail,
                                &r::nested_mail};
constexpr refusals rcpt_refused{&r::helo_first, &r::auth_required, &r::need_mail_for_rcpt, nullptr, nullptr,
                                &r::rcpt_after_bdat};
constexpr refusals data_refused{&r::helo_first, &r::auth_required, &r::need_mail_for_data, &r::need_rcpt, nullptr,
                                &r::data_after_bdat};
// BDAT goes where DATA goes, and on between chunks (its octets are read
// whatever the answer: session.cc).
constexpr refusals bdat_refused{&r::helo_first, &r::auth_required, &r::need_mail_for_data, &r::need_rcpt, nullptr,
                                nullptr};

constexpr phase_mask anywhere = any_command_phase;
constexpr phase_mask after_mail = in(phase::mail) | in(phase::rcpt);
constexpr phase_mask after_rcpt = in(phase::rcpt) | in(phase::chunks);
// RFC 5321 4.5.3.1.4: 512 for commands; MAIL and RCPT get room for ESMTP
// parameters; an AUTH line may carry a SASL initial response (RFC 4954).
constexpr std::size_t command_512 = default_line_limit;
constexpr std::size_t with_params = 1024;

// clang-format off
constexpr std::array<command_spec, verb_count> table{{
//  verb        id               handler         runs in                   else          pipelining         counts  syntax               line limit
    {"EHLO",     verb::ehlo,     &m::greet,       anywhere,                 runs_anywhere, p::ends_group,    true, &r::syntax_ehlo,     command_512},
    {"HELO",     verb::helo,     &m::greet,       anywhere,                 runs_anywhere, p::ends_group,    true, &r::syntax_helo,     command_512},
    {"AUTH",     verb::auth,     &m::auth,        in(phase::greeted),       auth_refused,  p::ends_group,    true, &r::syntax_auth,     auth_line_limit},
    {"MAIL",     verb::mail,     &m::mail,        in(phase::authenticated), mail_refused,  p::continues,     true, &r::syntax_mail,     with_params},
    {"RCPT",     verb::rcpt,     &m::rcpt,        after_mail,               rcpt_refused,  p::continues,     true, &r::syntax_rcpt,     with_params},
    {"DATA",     verb::data,     &m::data,        in(phase::rcpt),          data_refused,  p::text_follows,  true, &r::syntax_data,     command_512},
    {"RSET",     verb::rset,     &m::rset,        anywhere,                 runs_anywhere, p::continues,     true, &r::syntax_rset,     command_512},
    {"NOOP",     verb::noop,     &m::noop,        anywhere,                 runs_anywhere, p::ends_group,    true, nullptr,             command_512},
    {"QUIT",     verb::quit,     &m::quit,        anywhere,                 runs_anywhere, p::ends_group,    true, nullptr,             command_512},
    {"VRFY",     verb::vrfy,     &m::not_offered, anywhere,                 runs_anywhere, p::ends_group,    true, nullptr,             command_512},
    {"EXPN",     verb::expn,     &m::not_offered, anywhere,                 runs_anywhere, p::ends_group,    true, nullptr,             command_512},
    {"TURN",     verb::turn,     &m::not_offered, anywhere,                 runs_anywhere, p::ends_group,    true, nullptr,             command_512},
    {"HELP",     verb::help,     &m::not_offered, anywhere,                 runs_anywhere, p::continues,     true, nullptr,             command_512},
    {"STARTTLS", verb::starttls, &m::starttls,    anywhere,                 runs_anywhere, p::discards_rest, true, &r::syntax_starttls, command_512},
    {"BDAT",     verb::bdat,     &m::bdat,        after_rcpt,               bdat_refused,  p::continues,     true, &r::syntax_bdat,     command_512},
}};
// clang-format on

// A row is refused exactly in the command phases it does not allow, and only
// command phases are allowed; the rows are in verb order.
constexpr bool rows_agree() {
  for (std::size_t i = 0; i < table.size(); ++i) {
    const command_spec& row = table[i];
    if (static_cast<std::size_t>(row.id) != i || (row.allowed & ~any_command_phase) != 0) return false;
    for (std::size_t p = 0; p < command_phases; ++p)
      if (((row.allowed & in(static_cast<phase>(p))) != 0) != (row.refused[p] == nullptr)) return false;
  }
  return true;
}
static_assert(rows_agree(), "a command row's refusals must match its allowed phases");

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

// Position of the last `c` outside quoted strings, or npos.
std::size_t last_unquoted(std::string_view s, char c) {
  std::size_t found = std::string_view::npos;
  bool quoted = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (quoted) {
      if (s[i] == '\\') ++i;
      else if (s[i] == '"') quoted = false;
    } else if (s[i] == '"') {
      quoted = true;
    } else if (s[i] == c) {
      found = i;
    }
  }
  return found;
}

std::string_view skip_spaces(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

}  // namespace

std::string_view phase_name(phase p) {
  switch (p) {
    case phase::connected: return "connected";
    case phase::greeted: return "greeted";
    case phase::authenticated: return "authenticated";
    case phase::mail: return "mail";
    case phase::rcpt: return "rcpt";
    case phase::chunks: return "chunks";
    case phase::auth_username: return "auth-username";
    case phase::auth_password: return "auth-password";
    case phase::auth_plain: return "auth-plain";
    case phase::data: return "data";
  }
  return "?";
}

const std::array<command_spec, verb_count>& command_table() { return table; }

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

bool parse_path(std::string_view args, std::string_view keyword, path_args& out, display_names names) {
  if (!istarts_with(args, keyword)) return false;
  std::string_view rest = skip_spaces(args.substr(keyword.size()));
  if (rest.empty()) return false;
  std::size_t after = 0;
  if (rest.front() == '<') {
    const std::size_t len = token_length(rest.substr(1), '>');
    if (len == std::string_view::npos || len + 1 >= rest.size()) return false;  // no closing '>'
    out.path = rest.substr(1, len);
    after = len + 2;
    // "Name <addr>" given to curl or swaks comes as `<Name <addr>` (curl
    // brackets the text up to its last '>') or `<Name <addr>>` (swaks): the
    // address is what the inner '<' opens, and a second '>' closes the outer.
    // find() (memchr) first: RCPT is the hot path and the usual path holds
    // no '<'; only one that does is scanned for quotes.
    const bool may_have_name = names == display_names::accepted && out.path.find('<') != std::string_view::npos;
    const std::size_t inner = may_have_name ? last_unquoted(out.path, '<') : std::string_view::npos;
    if (inner != std::string_view::npos) {
      out.path.remove_prefix(inner + 1);
      if (after < rest.size() && rest[after] == '>') ++after;
    }
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

std::string_view repeated_param(std::string_view params) {
  // A MAIL or RCPT line is at most 1024 octets, so a few dozen parameters:
  // comparing each with the ones before it is cheap and allocates nothing.
  std::string_view later = params;
  esmtp_param p;
  while (next_param(later, p)) {
    if (p.name.empty()) continue;
    // The parameters before this one: up to where its name starts.
    std::string_view earlier = params.substr(0, static_cast<std::size_t>(p.name.data() - params.data()));
    esmtp_param q;
    while (next_param(earlier, q))
      if (iequals(q.name, p.name)) return p.name;
  }
  return {};
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
