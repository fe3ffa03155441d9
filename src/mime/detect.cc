// E-mail detection (PROTOCOL.md section 3, "E-mail mode"): decides from the
// header block alone whether a DATA body is an e-mail or raw text, and spots
// an MM4 forward request. Runs on every message, so it only scans the caller's
// body in place (no allocation) and stops at the first line that is not a
// header field: a raw bulk text fails on its first line.
//
// A header field is RFC 5322's field-name (printable ASCII but ':') with the
// obsolete syntax's optional blanks before the colon; a line starting with a
// blank continues the field above it (folding) and cannot come first. Lines
// end in LF, with or without CR. No empty line at all means the whole body is
// the header block.
#include <string_view>

#include "postino/ascii.h"
#include "postino/mime.h"

namespace postino::mime {
namespace {

struct header_facts {
  bool all_fields = true;
  bool mime_version = false;
  bool content_type = false;
  bool from = false;
  bool date = false;
  bool mm4_forward = false;
};

// The field name of `line`, or empty when the line is not a field's first line.
std::string_view field_name(std::string_view line, std::string_view& value) {
  std::size_t i = 0;
  while (i < line.size() && line[i] != ':' && line[i] > 32 && line[i] < 127) ++i;
  const std::size_t name_end = i;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (name_end == 0 || i >= line.size() || line[i] != ':') return {};
  value = line.substr(i + 1);
  return line.substr(0, name_end);
}

// Walks the header block and notes the fields the rules look for. The MM4
// message type is one token, so the field's first physical line is enough.
header_facts scan_headers(std::string_view body) {
  header_facts f;
  bool first = true;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t nl = body.find('\n', pos);
    const std::size_t end = nl == std::string_view::npos ? body.size() : nl;
    std::string_view line = body.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl == std::string_view::npos ? body.size() : nl + 1;
    if (line.empty()) break;  // the end of the header block
    if (line.front() == ' ' || line.front() == '\t') {
      if (first) {
        f.all_fields = false;
        return f;
      }
      continue;  // folded continuation of the field above
    }
    first = false;
    std::string_view value;
    const std::string_view name = field_name(line, value);
    if (name.empty()) {
      f.all_fields = false;
      return f;
    }
    if (iequals(name, "MIME-Version")) f.mime_version = true;
    else if (iequals(name, "Content-Type")) f.content_type = true;
    else if (iequals(name, "From")) f.from = true;
    else if (iequals(name, "Date")) f.date = true;
    else if (iequals(name, "X-Mms-Message-Type") && iequals(trim_blanks(value), "MM4_forward.REQ")) f.mm4_forward = true;
  }
  return f;
}

}  // namespace

bool looks_like_email(std::string_view body) noexcept {
  const header_facts f = scan_headers(body);
  return f.all_fields && (f.mime_version || f.content_type || (f.from && f.date));
}

bool is_mm4_forward(std::string_view body) noexcept {
  const header_facts f = scan_headers(body);
  return f.all_fields && f.mm4_forward;
}

}  // namespace postino::mime
