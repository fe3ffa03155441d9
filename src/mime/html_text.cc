// HTML to readable text for e-mail mode (PROTOCOL.md section 3: "HTML-only is
// reduced to readable text"), with libxml2's HTML parser. The caller's UTF-8
// view is parsed into a libxml2 document owned here and freed before return;
// the text is built in an owned string. The tree is walked iteratively with an
// explicit stack, so a deeply nested mail cannot exhaust the thread's stack.
//
// Decisions, for a text that reads well on a handset and costs few segments:
// - whitespace collapses as a browser collapses it (except inside <pre>); a
//   no-break space is kept as one plain space (U+00A0 alone would force the
//   whole SMS into UCS-2), zero-width spaces and BOMs are dropped;
// - a block element (p, div, li, tr, h1..h6, ...) starts and ends a line, but
//   adjacent block edges give one line break, not several; <br> always breaks;
//   at most one blank line survives in a row; line-end blanks are trimmed;
// - a link keeps its target as "text (url)", unless the text already is the
//   target (with or without its scheme or mailto:), or the target is a
//   fragment, javascript: or cid:; a link with no text becomes its url;
// - list items start with "- " (ol: "1. ", "2. "...); table cells in a row
//   are separated by a space;
// - head, title, script, style, template and svg are dropped; images too (an
//   alt text is usually decoration: "logo", "spacer").
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <climits>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "postino/ascii.h"
#include "postino/mime.h"

namespace postino::mime {
namespace {

bool name_is(const xmlNode* n, const char* name) {
  return n->name != nullptr && xmlStrcasecmp(n->name, reinterpret_cast<const xmlChar*>(name)) == 0;
}

bool name_in(const xmlNode* n, std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (name_is(n, name)) return true;
  return false;
}

bool is_skipped(const xmlNode* n) { return name_in(n, {"head", "title", "script", "style", "template", "svg"}); }

bool is_block(const xmlNode* n) {
  return name_in(n, {"address", "article", "aside", "blockquote", "center", "dd",      "details", "dialog",
                     "dir",     "div",     "dl",    "dt",         "fieldset", "figcaption", "figure", "footer",
                     "form",    "h1",      "h2",    "h3",         "h4",     "h5",      "h6",      "header",
                     "hgroup",  "hr",      "li",    "main",       "menu",   "nav",     "ol",      "p",
                     "pre",     "section", "summary", "table",    "tr",     "ul",      "caption", "legend"});
}

std::string attribute(const xmlNode* n, const char* name) {
  xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
  if (v == nullptr) return {};
  std::string s(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return s;
}

// The target without what a reader would not type: scheme, mailto:, a final '/'.
std::string_view bare_target(std::string_view url) {
  for (std::string_view scheme : {"mailto:", "https://", "http://"}) {
    if (istarts_with(url, scheme)) {
      url.remove_prefix(scheme.size());
      break;
    }
  }
  if (!url.empty() && url.back() == '/') url.remove_suffix(1);
  return url;
}

class text_builder {
 public:
  // Collapsible text (or, in <pre>, text kept as written).
  void text(std::string_view s, bool pre) {
    for (std::size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (pre) {
        if (c == '\r') continue;
        if (c == '\n') {
          line_break();
          continue;
        }
        put(c);
        continue;
      }
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        space_ = true;
        continue;
      }
      // U+00A0 no-break space: a real, uncollapsed space.
      if (c == '\xC2' && i + 1 < s.size() && s[i + 1] == '\xA0') {
        flush_space();
        start_line();
        out_ += ' ';
        ++i;
        continue;
      }
      // U+200B zero-width space and U+FEFF: invisible, and not GSM.
      if (c == '\xE2' && s.substr(i, 3) == "\xE2\x80\x8B") {
        i += 2;
        continue;
      }
      if (c == '\xEF' && s.substr(i, 3) == "\xEF\xBB\xBF") {
        i += 2;
        continue;
      }
      put(c);
    }
  }

  // A block edge: what follows starts on a new line (one, however many edges).
  void block() {
    space_ = false;
    if (!out_.empty() && out_.back() != '\n') want_line_ = true;
  }

  // <br>: always a line break.
  void line_break() {
    space_ = false;
    want_line_ = false;
    out_ += '\n';
  }

  // A separator between table cells.
  void cell() { space_ = true; }

  void raw(std::string_view s) {
    flush_space();
    start_line();
    out_ += s;
  }

  std::size_t size() const { return out_.size(); }
  std::string_view since(std::size_t start) const { return std::string_view(out_).substr(start); }

  // Trailing blanks trimmed per line, at most one blank line in a row, no
  // blank lines at the start.
  std::string finish() {
    std::string result;
    result.reserve(out_.size());
    std::size_t blank_run = 0;
    std::size_t pos = 0;
    while (pos <= out_.size()) {
      std::size_t nl = out_.find('\n', pos);
      if (nl == std::string::npos) nl = out_.size();
      std::string_view line = std::string_view(out_).substr(pos, nl - pos);
      while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
      if (line.empty()) {
        ++blank_run;
      } else {
        if (!result.empty()) result.append(blank_run > 0 ? "\n\n" : "\n");
        result += line;
        blank_run = 0;
      }
      pos = nl + 1;
    }
    return result;
  }

 private:
  void start_line() {
    if (want_line_) {
      out_ += '\n';
      want_line_ = false;
    }
  }
  void flush_space() {
    if (space_ && !want_line_ && !out_.empty() && out_.back() != '\n') out_ += ' ';
    space_ = false;
  }
  void put(char c) {
    flush_space();
    start_line();
    out_ += c;
  }

  std::string out_;
  bool space_ = false;
  bool want_line_ = false;
};

// The marker of a list item: "- " or, inside <ol>, its number.
std::string list_marker(const xmlNode* li) {
  const xmlNode* parent = li->parent;
  if (parent == nullptr || !name_is(parent, "ol")) return "- ";
  int n = 1;
  for (const xmlNode* s = li->prev; s != nullptr; s = s->prev)
    if (s->type == XML_ELEMENT_NODE && name_is(s, "li")) ++n;
  return std::to_string(n) + ". ";
}

void link_suffix(text_builder& b, const xmlNode* a, std::size_t start) {
  std::string href_text = attribute(a, "href");
  const std::string_view href = trim(href_text);
  if (href.empty() || href.front() == '#' || istarts_with(href, "javascript:") ||
      istarts_with(href, "cid:"))
    return;
  const std::string_view shown = trim(b.since(start));
  if (shown.empty()) {
    b.raw(href);
    return;
  }
  if (shown == href || bare_target(shown) == bare_target(href)) return;
  b.raw(" (");
  b.raw(href);
  b.raw(")");
}

struct frame {
  const xmlNode* node;
  std::size_t start;  // output size when the element was entered
};

void walk(const xmlNode* root, text_builder& b) {
  std::vector<frame> stack;
  int pre_depth = 0;
  const xmlNode* n = root;
  while (n != nullptr) {
    bool descend = false;
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
      if (n->content != nullptr) b.text(reinterpret_cast<const char*>(n->content), pre_depth > 0);
    } else if (n->type == XML_ELEMENT_NODE && !is_skipped(n)) {
      if (name_is(n, "br")) {
        b.line_break();
      } else {
        if (is_block(n)) b.block();
        if (name_is(n, "li")) b.raw(list_marker(n));
        if (name_in(n, {"td", "th"})) b.cell();
        if (name_is(n, "pre")) ++pre_depth;
        descend = n->children != nullptr && !name_is(n, "img");
        if (descend) {
          stack.push_back({n, b.size()});
        } else {
          if (name_is(n, "a")) link_suffix(b, n, b.size());
          if (name_is(n, "pre")) --pre_depth;
          if (is_block(n)) b.block();
        }
      }
    } else if (n->type == XML_DOCUMENT_NODE || n->type == XML_HTML_DOCUMENT_NODE) {
      descend = n->children != nullptr;
      if (descend) stack.push_back({n, b.size()});
    }
    if (descend) {
      n = n->children;
      continue;
    }
    // Leave finished elements until one has a next sibling.
    while (n->next == nullptr && !stack.empty()) {
      const frame f = stack.back();
      stack.pop_back();
      const xmlNode* e = f.node;
      if (e->type == XML_ELEMENT_NODE) {
        if (name_is(e, "a")) link_suffix(b, e, f.start);
        if (name_is(e, "pre")) --pre_depth;
        if (is_block(e)) b.block();
      }
      n = e;
    }
    if (n == root || (stack.empty() && n->next == nullptr)) break;
    n = n->next;
  }
}

}  // namespace

std::string html_to_text(std::string_view html_utf8) {
  static std::once_flag init;
  std::call_once(init, [] { xmlInitParser(); });
  if (html_utf8.empty() || html_utf8.size() > static_cast<std::size_t>(INT_MAX)) return {};
  htmlDocPtr doc = htmlReadMemory(html_utf8.data(), static_cast<int>(html_utf8.size()), nullptr, "UTF-8",
                                  HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
  if (doc == nullptr) return {};
  text_builder b;
  walk(reinterpret_cast<const xmlNode*>(doc), b);
  xmlFreeDoc(doc);
  return b.finish();
}

}  // namespace postino::mime
