// The MIME structure bound (PROTOCOL.md section 5: at most `max_parts` parts
// and `max_depth` levels of nesting in e-mail mode), checked before GMime
// parses anything. GMime has no such limit: it builds every part of a body
// in memory (200,000 parts cost ~1.6 s and ~400 MB), so this linear scan of
// the caller's body (no allocation beyond a boundary stack of at most
// max_depth entries, each a view into the body) stops at the first part or
// level over the bound. It follows GMime's reading: multipart bodies split at
// "--boundary" lines (an outer boundary also ends every part inside it),
// message/rfc822 (rfc2822, news) parts and a digest's untyped parts hold a
// message of their own, a delimiter line ends a header block. The count after GMime's
// parse (email.cc) stays the authority; this only keeps hostile bodies away
// from it. Hand-written because no Debian library bounds MIME structure.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "postino/ascii.h"
#include "postino/mime.h"

namespace postino::mime {
namespace {

// What an entity's header block says about its body.
struct entity_kind {
  bool multipart = false;
  bool digest = false;    // multipart/digest: a part without Content-Type is a message
  bool message = false;   // message/rfc822, rfc2822, news or global: a message inside
  std::string boundary;   // multipart only; may come from RFC 2231 pieces
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(ascii_lower(c));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// RFC 2231: `boundary*=utf-8''a%20b` is percent-encoded after its charset.
std::string decode_extended(std::string_view v) {
  const auto quote = v.find("''");
  if (quote != std::string_view::npos) v.remove_prefix(quote + 2);
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size() && hex_value(v[i + 1]) >= 0 && hex_value(v[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(v[i + 1]) * 16 + hex_value(v[i + 2]));
      i += 2;
    } else {
      out += v[i];
    }
  }
  return out;
}

std::string unquote(std::string_view v) {
  v = trim_blanks(v);
  if (v.size() < 2 || v.front() != '"' || v.back() != '"') return std::string(v);
  std::string out;
  for (std::size_t i = 1; i + 1 < v.size(); ++i) {
    if (v[i] == '\\' && i + 2 < v.size()) ++i;
    out += v[i];
  }
  return out;
}

// The boundary parameter of a Content-Type value: `boundary=`, or its RFC
// 2231 forms `boundary*=` and `boundary*0=`, `boundary*1*=` ... in order.
std::string boundary_of(std::string_view params) {
  std::string plain, pieces;
  std::size_t pos = 0;
  while (pos < params.size()) {
    std::size_t semi = pos;
    bool quoted = false;
    while (semi < params.size() && (quoted || params[semi] != ';')) {
      if (params[semi] == '"') quoted = !quoted;
      ++semi;
    }
    const std::string_view param = trim_blanks(params.substr(pos, semi - pos));
    pos = semi + 1;
    const auto eq = param.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view name = trim_blanks(param.substr(0, eq));
    const std::string_view value = param.substr(eq + 1);
    if (iequals(name, "boundary")) plain = unquote(value);
    else if (name.size() > 9 && iequals(name.substr(0, 9), "boundary*"))
      pieces += name.back() == '*' ? decode_extended(unquote(value)) : unquote(value);
  }
  return plain.empty() ? pieces : plain;
}

entity_kind kind_of(std::string_view content_type) {
  entity_kind k;
  const auto semi = content_type.find(';');
  const std::string_view type = trim_blanks(content_type.substr(0, semi));
  const auto slash = type.find('/');
  if (slash == std::string_view::npos) return k;
  const std::string_view major = trim_blanks(type.substr(0, slash));
  const std::string_view minor = trim_blanks(type.substr(slash + 1));
  if (iequals(major, "multipart")) {
    k.boundary = semi == std::string_view::npos ? std::string() : boundary_of(content_type.substr(semi + 1));
    k.multipart = !k.boundary.empty();
    k.digest = iequals(minor, "digest");
  } else if (iequals(major, "message")) {
    // The subtypes GMime parses as a message of their own.
    k.message = iequals(minor, "rfc822") || iequals(minor, "rfc2822") || iequals(minor, "news") ||
                iequals(minor, "global");
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

// Reads one header block (up to and including its empty line) and returns
// what its Content-Type says; folded lines continue the field above. As in
// GMime, a delimiter of an open multipart also ends the block (it is left
// for the caller: the next part starts there), and a part of a digest
// without a Content-Type is a message.
entity_kind read_headers(line_reader& in, const std::vector<level>& stack, bool in_digest) {
  std::string content_type;
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
      if (in_content_type) content_type += line;
      continue;
    }
    const auto colon = line.find(':');
    in_content_type = colon != std::string_view::npos && iequals(trim_blanks(line.substr(0, colon)), "Content-Type");
    if (in_content_type) content_type.assign(line.substr(colon + 1));
  }
  if (content_type.empty() && in_digest) {
    entity_kind message;
    message.message = true;
    return message;
  }
  return kind_of(content_type);
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
