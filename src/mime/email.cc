// E-mail mode (PROTOCOL.md section 3): parses a DATA body with GMime 3 and
// picks the text an SMS carries, decoded to UTF-8, plus the facts the MMS
// rules need (media parts, the MM4 headers). The body is copied once into a
// GMime memory stream; the GMime objects are owned here and unreferenced
// before return; results are owned strings. g_mime_init runs once per
// process (detail::ensure_gmime, gmime_init.h); GMime parses independent
// messages on different threads safely once initialised (its iconv cache has
// its own lock).
//
// Which text (decisions where PROTOCOL.md says only "text/plain preferred"):
// - multipart/alternative: the first text/plain alternative, searched through
//   nested multiparts; else the last HTML one (RFC 2046: last is richest);
// - multipart/related: its root (the `start` part, else the first), or when
//   that holds no text (an MMS's SMIL layout) the first other part that does;
// - multipart/signed: the signed content; multipart/encrypted: nothing;
// - other multiparts (mixed, report, ...): the first part that yields text;
// - parts with Content-Disposition: attachment, and attached messages, are
//   never the text; text/* other than plain and html (calendar, enriched)
//   neither.
// Charsets: see to_utf8 in mime.h. format=flowed (RFC 3676, Thunderbird and
// Apple Mail) is unwrapped, with DelSp. The signature cut looks for the
// RFC 3676 separator line "-- "; in text made from HTML, whose line ends are
// trimmed, "--" alone counts too (Thunderbird's <div class="moz-signature">).
// The quoted-reply cut (strip_quoted_reply) is src/mime/quoted_reply.cc's,
// after the signature cut. With subject_prefix the SMS is
// "<subject>\n<text>": a line break reads as a heading and, unlike ": ",
// never doubles the subject's own punctuation; a message with a subject and
// no text becomes the subject alone, with no line break after it.
#include <gmime/gmime.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <string>
#include <string_view>

#include "gmime_init.h"
#include "postino/ascii.h"
#include "postino/mime.h"
#include "postino/sms.h"

namespace postino::mime {

void detail::ensure_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

namespace {

constexpr int max_depth = 32;  // MIME nesting beyond this is not a real mail


std::string_view view(const char* s) { return s == nullptr ? std::string_view{} : std::string_view(s); }

std::string trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// Owns one GObject reference.
template <class T>
class ref {
 public:
  explicit ref(T* p = nullptr) : p_(p) {}
  ~ref() {
    if (p_ != nullptr) g_object_unref(p_);
  }
  ref(const ref&) = delete;
  ref& operator=(const ref&) = delete;
  T* get() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  T* p_;
};

bool type_is(GMimeObject* o, const char* type, const char* subtype) {
  GMimeContentType* ct = g_mime_object_get_content_type(o);
  return ct != nullptr && g_mime_content_type_is_type(ct, type, subtype);
}

bool is_attachment(GMimeObject* o) {
  GMimeContentDisposition* d = g_mime_object_get_content_disposition(o);
  return d != nullptr && g_mime_content_disposition_is_attachment(d);
}

struct choice {
  GMimePart* part = nullptr;
  bool html = false;
};

choice pick(GMimeObject* o, int depth);

choice pick_alternative(GMimeMultipart* mp, int depth) {
  choice html;
  const int n = g_mime_multipart_get_count(mp);
  for (int i = 0; i < n; ++i) {
    const choice c = pick(g_mime_multipart_get_part(mp, i), depth + 1);
    if (c.part == nullptr) continue;
    if (!c.html) return c;
    html = c;
  }
  return html;
}

GMimeObject* related_root(GMimeMultipart* mp) {
  const int n = g_mime_multipart_get_count(mp);
  if (n == 0) return nullptr;
  std::string start = trimmed(view(g_mime_object_get_content_type_parameter(GMIME_OBJECT(mp), "start")));
  if (start.size() >= 2 && start.front() == '<' && start.back() == '>') start = start.substr(1, start.size() - 2);
  if (!start.empty()) {
    for (int i = 0; i < n; ++i) {
      GMimeObject* part = g_mime_multipart_get_part(mp, i);
      if (view(g_mime_object_get_content_id(part)) == start) return part;
    }
  }
  return g_mime_multipart_get_part(mp, 0);
}

choice pick(GMimeObject* o, int depth) {
  if (o == nullptr || depth > max_depth) return {};
  if (GMIME_IS_MULTIPART(o)) {
    auto* mp = GMIME_MULTIPART(o);
    if (type_is(o, "multipart", "alternative")) return pick_alternative(mp, depth);
    if (type_is(o, "multipart", "encrypted")) return {};
    if (type_is(o, "multipart", "related")) {
      // The root is the text of an HTML mail; in an MMS it is the SMIL
      // layout, and the text is one of the parts it refers to.
      GMimeObject* root = related_root(mp);
      const choice c = pick(root, depth + 1);
      if (c.part != nullptr) return c;
      const int n = g_mime_multipart_get_count(mp);
      for (int i = 0; i < n; ++i) {
        GMimeObject* part = g_mime_multipart_get_part(mp, i);
        if (part == root) continue;
        const choice other = pick(part, depth + 1);
        if (other.part != nullptr) return other;
      }
      return {};
    }
    if (type_is(o, "multipart", "signed"))
      return g_mime_multipart_get_count(mp) > 0 ? pick(g_mime_multipart_get_part(mp, 0), depth + 1) : choice{};
    const int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n; ++i) {
      const choice c = pick(g_mime_multipart_get_part(mp, i), depth + 1);
      if (c.part != nullptr) return c;
    }
    return {};
  }
  if (!GMIME_IS_PART(o) || is_attachment(o)) return {};
  if (type_is(o, "text", "plain")) return {GMIME_PART(o), false};
  if (type_is(o, "text", "html")) return {GMIME_PART(o), true};
  return {};
}

bool has_media(GMimeObject* o, int depth) {
  if (o == nullptr || depth > max_depth) return false;
  if (GMIME_IS_MULTIPART(o)) {
    auto* mp = GMIME_MULTIPART(o);
    const int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n; ++i)
      if (has_media(g_mime_multipart_get_part(mp, i), depth + 1)) return true;
    return false;
  }
  if (!GMIME_IS_PART(o)) return false;
  return type_is(o, "image", "*") || type_is(o, "audio", "*") || type_is(o, "video", "*");
}

// The part's content with its transfer encoding (base64, quoted-printable)
// undone; the charset is left as it is.
std::string decoded_bytes(GMimePart* part) {
  GMimeDataWrapper* content = g_mime_part_get_content(part);
  if (content == nullptr) return {};
  ref<GMimeStream> mem(g_mime_stream_mem_new());
  if (g_mime_data_wrapper_write_to_stream(content, mem.get()) < 0) return {};
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem.get()));
  return bytes == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

// RFC 3676 4.2: a line ending in a space is soft-broken and joins the next;
// a leading space was added by space-stuffing; with DelSp=yes the soft
// break's space goes too. The signature separator "-- " is never soft.
std::string unflow(std::string_view text, bool delsp) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    const bool last = nl == std::string_view::npos;
    std::string_view line = text.substr(pos, (last ? text.size() : nl) - pos);
    pos = last ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    const bool soft = !line.empty() && line.back() == ' ' && line != "-- ";
    if (soft && delsp) line.remove_suffix(1);
    out += line;
    if (!soft && !last) out += '\n';
  }
  return out;
}

// Cuts at the first signature separator line.
void cut_signature(std::string& text, bool from_html) {
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string_view line = std::string_view(text).substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line == "-- " || (from_html && line == "--")) {
      text.resize(pos);
      return;
    }
    pos = nl + 1;
  }
}

void drop_leading_blank_lines(std::string& text) {
  std::size_t keep = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;
    const std::string_view line = std::string_view(text).substr(pos, nl - pos);
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) break;
    pos = nl + 1;
    keep = pos;
  }
  text.erase(0, keep);
}

// The MMS id is stored in one form, the msg-id without its angle brackets:
// RFC 5322 3.6.4 says they are not part of the id, GMime already gives
// Message-ID that way, and an MM4 peer may write X-Mms-Message-ID with or
// without them; so a lookup or a match finds the message whichever header
// carried the id and however the peer bracketed it.
std::string without_angle_brackets(std::string id) {
  if (id.size() >= 2 && id.front() == '<' && id.back() == '>') return id.substr(1, id.size() - 2);
  return id;
}

std::string header(GMimeObject* o, const char* name) { return trimmed(view(g_mime_object_get_header(o, name))); }

// Counts the entities GMime built, as check_structure counts them (the
// message, every part, every multipart, attached messages' own entities),
// stopping once past a limit.
void count_entities(GMimeObject* o, std::uint32_t depth, const content_limits& limits, email_content& e) {
  if (o == nullptr || e.over_limits) return;
  e.depth = std::max(e.depth, depth);
  if (++e.parts > limits.max_parts || depth > limits.max_depth) {
    e.over_limits = true;
    return;
  }
  if (GMIME_IS_MULTIPART(o)) {
    auto* mp = GMIME_MULTIPART(o);
    const int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n && !e.over_limits; ++i) count_entities(g_mime_multipart_get_part(mp, i), depth + 1, limits, e);
  } else if (GMIME_IS_MESSAGE_PART(o)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
    if (inner != nullptr) count_entities(g_mime_message_get_mime_part(inner), depth + 1, limits, e);
  }
}

}  // namespace

// Valid UTF-8 with at least one byte past ASCII: a multi-byte sequence.
bool has_multibyte_utf8(std::string_view bytes) {
  const bool beyond_ascii =
      std::any_of(bytes.begin(), bytes.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  return beyond_ascii && sms::is_valid_utf8(bytes);
}

std::string to_utf8(std::string_view bytes, std::string_view charset) {
  const auto as_utf8_or_1252 = [&] {
    if (sms::is_valid_utf8(bytes)) {
      std::string_view b = bytes;
      if (b.starts_with("\xEF\xBB\xBF")) b.remove_prefix(3);
      return std::string(b);
    }
    return sms::windows1252_to_utf8(bytes);
  };
  if (charset.empty() || iequals(charset, "utf-8") || iequals(charset, "utf8") || iequals(charset, "us-ascii") ||
      iequals(charset, "ascii"))
    return as_utf8_or_1252();
  // WHATWG maps the Latin-1 labels to Windows-1252: senders that say
  // ISO-8859-1 and send 0x80 mean the euro sign. But a client that declares
  // Latin-1 over UTF-8 bytes (PHPMailer's default) is far likelier than
  // Latin-1 text that happens to be valid UTF-8 with multi-byte sequences
  // ("Ã¨" and the like): such bytes are read as the UTF-8 they are.
  if (iequals(charset, "iso-8859-1") || iequals(charset, "iso8859-1") || iequals(charset, "latin1") ||
      iequals(charset, "windows-1252") || iequals(charset, "cp1252") || iequals(charset, "latin-1"))
    return has_multibyte_utf8(bytes) ? as_utf8_or_1252() : sms::windows1252_to_utf8(bytes);
  detail::ensure_gmime();
  const std::string name(charset);
  iconv_t cd = g_mime_iconv_open("UTF-8", name.c_str());
  if (cd == reinterpret_cast<iconv_t>(-1)) return as_utf8_or_1252();
  char* converted = g_mime_iconv_strndup(cd, bytes.data(), bytes.size());
  g_mime_iconv_close(cd);
  if (converted == nullptr) return as_utf8_or_1252();
  std::string out(converted);
  g_free(converted);
  if (!sms::is_valid_utf8(out)) return as_utf8_or_1252();
  return out;
}

email_content parse_email(std::string_view body, const email_options& options) {
  detail::ensure_gmime();
  email_content e;
  ref<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(body.data(), body.size()));
  ref<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  ref<GMimeMessage> message(g_mime_parser_construct_message(parser.get(), nullptr));
  if (!message) return e;
  GMimeObject* top = GMIME_OBJECT(message.get());
  GMimeObject* root = g_mime_message_get_mime_part(message.get());
  count_entities(root, 0, options.limits, e);
  if (e.over_limits) return e;

  e.mm4_forward = iequals(header(top, "X-Mms-Message-Type"), "MM4_forward.REQ");
  e.mm4_ack_requested = iequals(header(top, "X-Mms-Ack-Request"), "Yes");
  e.message_id = without_angle_brackets(header(top, "X-Mms-Message-ID"));
  if (e.message_id.empty()) e.message_id = trimmed(view(g_mime_message_get_message_id(message.get())));
  e.mm4_transaction_id = header(top, "X-Mms-Transaction-ID");
  e.mm4_originator_system = header(top, "X-Mms-Originator-System");

  std::string subject = trimmed(view(g_mime_message_get_subject(message.get())));
  for (char& c : subject)
    if (c == '\r' || c == '\n' || c == '\t') c = ' ';
  e.subject = sms::is_valid_utf8(subject) ? subject : sms::windows1252_to_utf8(subject);

  e.has_media = has_media(root, 0);
  const choice c = pick(root, 0);
  if (c.part != nullptr) {
    GMimeObject* part = GMIME_OBJECT(c.part);
    std::string text = to_utf8(decoded_bytes(c.part), view(g_mime_object_get_content_type_parameter(part, "charset")));
    if (c.html) {
      text = html_to_text(text);
      e.from_html = true;
    } else if (iequals(view(g_mime_object_get_content_type_parameter(part, "format")), "flowed")) {
      text = unflow(text, iequals(view(g_mime_object_get_content_type_parameter(part, "delsp")), "yes"));
    }
    if (options.strip_signature) cut_signature(text, c.html);
    if (options.strip_quoted_reply) text = cut_quoted_reply(text);
    drop_leading_blank_lines(text);
    e.text = std::move(text);
  }
  if (options.subject_prefix && !e.subject.empty()) {
    const bool no_text = e.text.find_first_not_of(" \t\r\n") == std::string::npos;
    e.text = no_text ? e.subject : e.subject + "\n" + e.text;
  }
  return e;
}

}  // namespace postino::mime
