// The MIME structure bound (PROTOCOL.md section 5: at most `max_parts` parts
// and `max_depth` levels of nesting in e-mail mode), checked before GMime
// parses anything. GMime has no such limit: it builds every part of a body
// in memory (200,000 parts cost ~1.6 s and ~400 MB), so this linear scan of
// the caller's body (no allocation beyond a boundary stack of at most
// max_depth entries and a boundary per multipart) stops at the first part or
// level over the bound. It follows GMime 3.2's reading (gmime-parser.c),
// because every entity it fails to see is one GMime builds unbounded:
// multipart bodies split at "--boundary" lines (an outer boundary also ends
// every part inside it), message/rfc822 (rfc2822, news, global) parts and a
// digest's untyped parts hold a message of their own, a delimiter line ends
// a header block; the last valid Content-Type field counts (GMime ignores a
// field whose name has a control character or a blank inside), its type and
// subtype are tokens with comments and white space allowed around the '/',
// and its boundary is what GMime's own parameter parser reads (gmime_boundary:
// GMime is only asked for the boundary of each multipart, never to build
// one). The structure_scan fuzz invariant of tests/fuzz/mime_content.cc
// checks that GMime never builds more parts or levels than this counts: a
// comment before the type ("(c) multipart/mixed") or a control character
// after it hid 200,000 parts from the bound (7.8 s and 266 MB in GMime).
// The count after GMime's parse (email.cc) stays the authority; this only
// keeps hostile bodies away from it. Hand-written because no Debian library
// bounds MIME structure.
#include <gmime/gmime.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gmime_init.h"
#include "postino/ascii.h"
#include "postino/mime.h"

namespace postino::mime {
namespace {

// What an entity's header block says about its body.
struct entity_kind {
  bool multipart = false;  // with a boundary parameter (which may be empty)
  bool digest = false;     // multipart/digest: a part without Content-Type is a message
  bool message = false;    // message/rfc822, rfc2822, news or global: a message inside
  std::string boundary;    // multipart only
};

// GMime's character classes (gmime-table-private.h): linear white space
// includes CR and LF; a token character is none of those, no control
// character and no RFC 2045 tspecial (bytes past ASCII are tokens).
bool is_ctrl(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; }
bool is_lwsp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_ttoken(char c) {
  constexpr std::string_view tspecials = "()<>@,;:\\\"/[]?=";
  return !is_ctrl(c) && !is_lwsp(c) && tspecials.find(c) == std::string_view::npos;
}

// Skips white space and (nested, backslash-quoted) comments from `pos`, as
// GMime's skip_cfws; an unterminated comment leaves `pos` where it was.
void skip_cfws(std::string_view s, std::size_t& pos) {
  std::size_t i = pos;
  const auto skip_lwsp = [&] {
    while (i < s.size() && is_lwsp(s[i])) ++i;
  };
  skip_lwsp();
  while (i < s.size() && s[i] == '(') {
    int depth = 1;
    for (++i; i < s.size() && depth > 0; ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      else if (s[i] == '(') ++depth;
      else if (s[i] == ')') --depth;
    }
    if (depth != 0) return;
    skip_lwsp();
  }
  pos = i;
}

std::string_view token_at(std::string_view s, std::size_t& pos) {
  const std::size_t start = pos;
  while (pos < s.size() && is_ttoken(s[pos])) ++pos;
  return s.substr(start, pos - start);
}

// The type and subtype of a Content-Type value as GMime's parser decides
// what to build (g_mime_parse_content_type): tokens around a '/', comments
// and white space allowed between; false when there is no subtype.
bool parse_type(std::string_view value, std::string_view& type, std::string_view& subtype) {
  std::size_t pos = 0;
  skip_cfws(value, pos);
  type = token_at(value, pos);
  skip_cfws(value, pos);
  if (pos >= value.size() || value[pos] != '/') return false;
  ++pos;
  skip_cfws(value, pos);
  subtype = token_at(value, pos);
  return !subtype.empty();
}

// The boundary GMime's multipart reads: its own parameter parser (RFC 2231
// pieces, quoting, comments, the first "boundary" of several) on the
// unfolded, RFC 2047-decoded value, exactly as the object it builds takes
// its Content-Type (gmime-object.c); nullopt when there is none.
std::optional<std::string> gmime_boundary(std::string_view raw_value) {
  detail::ensure_gmime();
  const std::string value(raw_value);
  char* unfolded = g_mime_utils_header_unfold(value.c_str());
  char* decoded = g_mime_utils_header_decode_text(nullptr, unfolded != nullptr ? unfolded : "");
  GMimeContentType* type = g_mime_content_type_parse(nullptr, decoded != nullptr ? decoded : "");
  std::optional<std::string> boundary;
  if (const char* b = g_mime_content_type_get_parameter(type, "boundary")) boundary = b;
  g_object_unref(type);
  g_free(decoded);
  g_free(unfolded);
  return boundary;
}

// `raw_value`: what follows the colon of the entity's last Content-Type
// field, its folded lines included; nullopt when it has none.
entity_kind kind_of(std::optional<std::string_view> raw_value, bool in_digest) {
  entity_kind k;
  std::string_view type, subtype;
  // GMime holds header values as C strings: a NUL ends the value.
  if (raw_value) raw_value = raw_value->substr(0, raw_value->find('\0'));
  if (!raw_value || !parse_type(*raw_value, type, subtype)) {
    k.message = in_digest;  // GMime's default in a digest: message/rfc822
    return k;
  }
  if (iequals(type, "multipart")) {
    std::optional<std::string> boundary = gmime_boundary(*raw_value);
    k.multipart = boundary.has_value();
    k.boundary = std::move(boundary).value_or(std::string());
    k.digest = iequals(subtype, "digest");
  } else if (iequals(type, "message")) {
    // The subtypes GMime parses as a message of their own.
    k.message = iequals(subtype, "rfc822") || iequals(subtype, "rfc2822") || iequals(subtype, "news") ||
                iequals(subtype, "global");
  }
  return k;
}

struct level {
  std::string boundary;
  std::uint32_t depth = 0;  // of the multipart that owns the boundary
  bool digest = false;      // its parts default to message/rfc822
};

// -1: not a delimiter; else the stack index it closes or opens (`closing`
// tells which). Innermost first, as a nested boundary may extend an outer one.
int delimiter(std::string_view line, const std::vector<level>& stack, bool& closing) {
  if (line.size() < 2 || line[0] != '-' || line[1] != '-') return -1;
  const std::string_view rest = line.substr(2);
  for (int i = static_cast<int>(stack.size()) - 1; i >= 0; --i) {
    const std::string& b = stack[static_cast<std::size_t>(i)].boundary;
    if (!rest.starts_with(b)) continue;
    std::string_view tail = rest.substr(b.size());
    closing = tail.starts_with("--");
    if (closing) tail.remove_prefix(2);
    if (trim_blanks(tail).empty()) return i;
  }
  return -1;
}

struct line_reader {
  std::string_view body;
  std::size_t pos = 0;
  bool done() const { return pos >= body.size(); }
  std::string_view next() {
    const std::size_t nl = body.find('\n', pos);
    const std::size_t end = nl == std::string_view::npos ? body.size() : nl;
    std::string_view line = body.substr(pos, end - pos);
    pos = nl == std::string_view::npos ? body.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  }
};

// A header line's field name as GMime's parser accepts one: up to the
// colon, no control character, blanks only between the name and the colon
// (anything else makes GMime ignore the field). Returns the colon's offset.
std::optional<std::size_t> field_name(std::string_view line, std::string_view& name) {
  bool blank = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == ':') {
      if (i == 0) return std::nullopt;
      name = trim(line.substr(0, i), " \t");
      return i;
    }
    if (c == ' ' || c == '\t') blank = true;
    else if (blank || is_ctrl(c)) return std::nullopt;
  }
  return std::nullopt;
}

// Reads one header block (up to and including its empty line) and returns
// what its Content-Type says: the last valid Content-Type field, as GMime
// takes it, with its folded lines (those that start with a blank). As in
// GMime, a delimiter of an open multipart also ends the block (it is left
// for the caller: the next part starts there), and a part of a digest
// without a (readable) Content-Type is a message.
entity_kind read_headers(line_reader& in, const std::vector<level>& stack, bool in_digest) {
  std::optional<std::string_view> content_type;
  std::size_t value_start = 0;
  bool in_content_type = false;
  while (!in.done()) {
    const std::size_t start = in.pos;
    const std::string_view line = in.next();
    if (line.empty()) break;
    bool closing = false;
    if (delimiter(line, stack, closing) >= 0) {
      in.pos = start;
      break;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      if (in_content_type) content_type = in.body.substr(value_start, in.pos - value_start);
      continue;
    }
    std::string_view name;
    const std::optional<std::size_t> colon = field_name(line, name);
    in_content_type = colon && iequals(name, "Content-Type");
    if (in_content_type) {
      value_start = start + *colon + 1;
      content_type = in.body.substr(value_start, in.pos - value_start);
    }
  }
  return kind_of(content_type, in_digest);
}

class structure_walk {
 public:
  structure_walk(std::string_view body, const content_limits& limits) : in_{body, 0}, limits_(limits) {}

  structure_check run() {
    entity(0, false);  // the message's own header block
    while (!over() && !stack_.empty() && !in_.done()) {
      bool closing = false;
      const int at = delimiter(in_.next(), stack_, closing);
      if (at < 0) continue;
      const std::uint32_t depth = stack_[static_cast<std::size_t>(at)].depth;
      const bool digest = stack_[static_cast<std::size_t>(at)].digest;
      stack_.resize(static_cast<std::size_t>(at) + (closing ? 0 : 1));
      if (!closing) entity(depth + 1, digest);
    }
    return result_;
  }

 private:
  bool over() const { return result_.too_many_parts || result_.too_deep; }

  // One entity at `depth` (0: the message); a message/rfc822 part's own
  // message follows its headers at once, one level deeper.
  void entity(std::uint32_t depth, bool in_digest) {
    for (;;) {
      if (depth > limits_.max_depth) {
        result_.depth = depth;  // one over the bound, as the refusal's count promises
        result_.too_deep = true;
        return;
      }
      if (++result_.parts > limits_.max_parts) {
        result_.too_many_parts = true;
        return;
      }
      result_.depth = std::max(result_.depth, depth);
      entity_kind k = read_headers(in_, stack_, in_digest);
      if (k.multipart) {
        stack_.push_back({std::move(k.boundary), depth, k.digest});
        return;
      }
      if (!k.message) return;
      ++depth;
      in_digest = false;
    }
  }

  line_reader in_;
  content_limits limits_;
  std::vector<level> stack_;
  structure_check result_;
};

}  // namespace

structure_check check_structure(std::string_view body, const content_limits& limits) {
  return structure_walk(body, limits).run();
}

}  // namespace postino::mime
