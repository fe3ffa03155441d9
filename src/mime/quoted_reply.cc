// E-mail mode's quoted-reply cut (issue 13 item 3, PROTOCOL.md section 3):
// drops a reply's quoted original from the decoded text, so that a "Re:"
// from a phone's mail app costs the SMS the sender wrote, not the whole
// thread. Reads the caller's text view; returns an owned string. One pass
// over the lines classifies them, one more writes the kept ones: linear, no
// regex, and only the few lines directly above a quote block are compared
// against the attribution forms.
//
// What is cut:
// - every '>'-quoted line (">", "> text", ">> nested", leading blanks
//   allowed), wherever it stands: a top-posted reply's trailing block, a
//   bottom-posted one's leading block and the quoted pieces of an
//   interleaved answer alike, so the sender's own lines always stay;
// - the attribution line directly above a quote block (blank lines between
//   allowed), possibly wrapped over two lines as Gmail wraps a long one:
//   "On <date>, <name> wrote:", "<name> wrote:", Italian "Il ... ha
//   scritto:", German "Am ... schrieb ...:", French "Le ... a écrit :",
//   Spanish "El ... escribió:", Portuguese "Em ... escreveu:", Dutch "Op ...
//   schreef ...:";
// - an Outlook-style separator ("-----Original Message-----", "-----
//   Messaggio originale-----", German, French, Spanish, Portuguese, Dutch
//   forms), or Outlook's newer header block ("From: ..." directly followed
//   by "Sent: ...", localized, with the underscore line above it), and
//   everything after it.
// What is not: an HTML reply's <blockquote> (html_to_text leaves no '>'),
// forwarded messages ("---------- Forwarded message ----------" is what the
// sender means to send). A text the cut would leave blank is returned as it
// was: the cut never empties a text that was not empty.
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "postino/mime.h"

namespace postino::mime {
namespace {

struct line {
  std::size_t begin = 0;  // first byte
  std::size_t end = 0;    // one past the last byte before '\r'/'\n'
  std::size_t next = 0;   // first byte of the next line
  bool cut = false;
};

std::vector<line> split_lines(std::string_view text) {
  std::vector<line> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    const std::size_t next = nl == std::string_view::npos ? text.size() : nl + 1;
    std::size_t end = nl == std::string_view::npos ? text.size() : nl;
    if (end > pos && text[end - 1] == '\r') --end;
    out.push_back({pos, end, next, false});
    pos = next;
  }
  return out;
}

bool is_blank(std::string_view s) { return s.find_first_not_of(" \t") == std::string_view::npos; }

bool is_quoted(std::string_view s) {
  const std::size_t first = s.find_first_not_of(" \t");
  return first != std::string_view::npos && s[first] == '>';
}

// The line lower-cased (ASCII), with no-break spaces (U+00A0, U+202F, which
// French mail clients put before ':') as spaces, runs of blanks as one
// space, and trimmed: the form the attribution forms are compared in.
std::string normalized(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\xC2' && i + 1 < s.size() && s[i + 1] == '\xA0') {
      c = ' ';
      i += 1;
    } else if (c == '\xE2' && i + 2 < s.size() && s[i + 1] == '\x80' && s[i + 2] == '\xAF') {
      c = ' ';
      i += 2;
    } else if (c == '\t') {
      c = ' ';
    } else if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// "<...> wrote:" and the forms whose verb ends the line.
constexpr std::array<std::string_view, 8> attribution_endings = {
    " wrote:", " ha scritto:", " schrieb:", " a écrit :", " a écrit:", " escribió:", " escreveu:", " schreef:"};

// Forms whose verb is followed by the name: "Am <date> schrieb <name>:".
struct opener_verb {
  std::string_view opener;
  std::string_view verb;
};
constexpr std::array<opener_verb, 3> attribution_with_name_after = {
    {{"am ", " schrieb "}, {"op ", " schreef "}, {"le ", " a écrit "}}};

bool is_attribution(const std::string& n) {
  if (n.empty() || n.back() != ':') return false;
  for (std::string_view e : attribution_endings)
    if (n.ends_with(e)) return true;
  for (const auto& f : attribution_with_name_after)
    if (n.starts_with(f.opener) && n.find(f.verb) != std::string::npos) return true;
  return false;
}

// The first line of an attribution wrapped over two lines starts so.
bool opens_attribution(const std::string& n) {
  for (std::string_view o : {"on ", "il ", "am ", "le ", "el ", "em ", "op "})
    if (n.starts_with(o)) return true;
  return false;
}

// An Outlook-style separator: dashes, a phrase, dashes.
// The first non-blank byte, lower-cased ('\0' for a blank line): a cheap
// filter before a line is normalized (most lines are never normalized).
char first_letter(std::string_view s) {
  const std::size_t at = s.find_first_not_of(" \t");
  if (at == std::string_view::npos) return '\0';
  const char c = s[at];
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_original_separator(std::string_view s) {
  if (first_letter(s) != '-') return false;
  std::string n = normalized(s);
  if (!n.starts_with("---")) return false;
  const std::size_t first = n.find_first_not_of('-');
  const std::size_t last = n.find_last_not_of('-');
  if (first == std::string::npos || last + 1 == n.size()) return false;
  std::string_view phrase = std::string_view(n).substr(first, last + 1 - first);
  while (phrase.starts_with(' ')) phrase.remove_prefix(1);
  while (phrase.ends_with(' ')) phrase.remove_suffix(1);
  for (std::string_view p : {"original message", "messaggio originale", "ursprüngliche nachricht",
                             "message d'origine", "mensaje original", "mensagem original", "oorspronkelijk bericht"})
    if (phrase == p) return true;
  return false;
}

// Outlook's newer reply header, with no dashed separator: "From: <name>"
// directly followed by "Sent: <date>" (and its Italian, German, French,
// Spanish, Portuguese forms); often under a line of underscores, which
// then goes too. Returns the first line to cut, or npos.
constexpr std::array<opener_verb, 6> outlook_header_pairs = {{{"from:", "sent:"},
                                                             {"da:", "inviato:"},
                                                             {"von:", "gesendet:"},
                                                             {"de :", "envoy\xC3\xA9 :"},
                                                             {"de:", "envoy\xC3\xA9:"},
                                                             {"de:", "enviado"}}};

std::size_t outlook_header_at(std::string_view text, const std::vector<line>& lines, std::size_t i) {
  if (i + 1 >= lines.size()) return std::string_view::npos;
  const char letter = first_letter(text.substr(lines[i].begin, lines[i].end - lines[i].begin));
  if (letter != 'f' && letter != 'd' && letter != 'v') return std::string_view::npos;
  const std::string first = normalized(text.substr(lines[i].begin, lines[i].end - lines[i].begin));
  const std::string second = normalized(text.substr(lines[i + 1].begin, lines[i + 1].end - lines[i + 1].begin));
  bool pair = false;
  for (const auto& p : outlook_header_pairs)
    if (first.starts_with(p.opener) && second.starts_with(p.verb)) pair = true;
  if (!pair) return std::string_view::npos;
  if (i > 0) {
    const std::string above = normalized(text.substr(lines[i - 1].begin, lines[i - 1].end - lines[i - 1].begin));
    if (above.size() >= 10 && above.find_first_not_of('_') == std::string::npos) return i - 1;
  }
  return i;
}

// Marks the attribution (one or two lines) above the quote block that starts
// at `block`, with the blank lines between.
void mark_attribution(std::string_view text, std::vector<line>& lines, std::size_t block) {
  std::size_t i = block;
  while (i > 0 && !lines[i - 1].cut && is_blank(text.substr(lines[i - 1].begin, lines[i - 1].end - lines[i - 1].begin)))
    --i;
  if (i == 0 || lines[i - 1].cut) return;
  const line& above = lines[i - 1];
  const std::string last = normalized(text.substr(above.begin, above.end - above.begin));
  std::size_t from = i - 1;
  if (!is_attribution(last)) {
    if (i < 2 || lines[i - 2].cut) return;
    const line& first_line = lines[i - 2];
    const std::string first = normalized(text.substr(first_line.begin, first_line.end - first_line.begin));
    if (!opens_attribution(first) || !is_attribution(first + " " + last)) return;
    from = i - 2;
  }
  for (std::size_t k = from; k < block; ++k) lines[k].cut = true;
}

// Marks every quoted line, the attributions above quote blocks, and the
// separator with all after it.
void mark_quotes(std::string_view text, std::vector<line>& lines) {
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view s = text.substr(lines[i].begin, lines[i].end - lines[i].begin);
    std::size_t from = is_original_separator(s) ? i : outlook_header_at(text, lines, i);
    if (from != std::string_view::npos) {
      for (std::size_t k = from; k < lines.size(); ++k) lines[k].cut = true;
      return;
    }
    if (!is_quoted(s)) continue;
    const bool starts_block = i == 0 || !lines[i - 1].cut;
    lines[i].cut = true;
    if (starts_block) mark_attribution(text, lines, i);
  }
}

}  // namespace

std::string cut_quoted_reply(std::string_view text) {
  std::vector<line> lines = split_lines(text);
  mark_quotes(text, lines);
  std::string out;
  out.reserve(text.size());
  bool after_cut = false;      // a cut since the last kept line
  bool last_blank = true;      // the last kept line was blank (or none yet)
  bool any_cut = false;
  for (const line& l : lines) {
    if (l.cut) {
      after_cut = any_cut = true;
      continue;
    }
    const bool blank = is_blank(text.substr(l.begin, l.end - l.begin));
    // A blank line where a block was cut, after a blank line or at the
    // start, would double the gap the block left.
    if (blank && after_cut && last_blank) continue;
    out.append(text.substr(l.begin, l.next - l.begin));
    after_cut = false;
    last_blank = blank;
  }
  if (!any_cut) return std::string(text);
  if (out.find_first_not_of(" \t\r\n") == std::string::npos) return std::string(text);
  return out;
}

}  // namespace postino::mime
