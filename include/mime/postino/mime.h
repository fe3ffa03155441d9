// Message content (PROTOCOL.md section 3): what a DATA body becomes. The
// content step reads the body the session stored (raw text, an e-mail from a
// mail client or library, or an MM4 MMS) with the account's settings and
// returns the SMS text with its encoding and segment count, or the MMS facts,
// or why it is refused (a kind and its numbers; SMTP words it, mime writes no
// reply text). Pure functions over caller-owned views: the body is
// only read during the call; results are owned. E-mail parsing uses GMime 3,
// HTML reduction libxml2's HTML parser; both are initialised once per process
// on first use, and independent calls may run on different threads at once.
// Implemented in src/mime/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "postino/account.h"
#include "postino/sms.h"

namespace postino::mime {

// Why a body is not sent, with the numbers a reply may name: `limit` is the
// bound (max parts, max depth, max segments, max MMS bytes), `count` what was
// found (for parts and depth: as far as the scan went, one over the bound).
enum class refusal_kind : std::uint8_t {
  none,
  too_many_parts,     // e-mail mode: more MIME parts than limit
  too_deep,           // e-mail mode: nested deeper than limit
  mms_not_enabled,    // an MMS for an account without MMS
  mms_too_big,        // an MMS of count bytes over limit (max_mms_bytes)
  empty,              // no text (and, for an MMS, no media)
  too_many_segments,  // count segments, over the limit of max_segments
  not_run,            // the step could not run (its worker queue was full, or it failed)
};
struct content_refusal {
  refusal_kind kind = refusal_kind::none;
  std::uint64_t count = 0;
  std::uint64_t limit = 0;
  bool operator==(const content_refusal&) const = default;
};
// A name for logs and test messages ("too_many_parts"), not a reply.
std::string_view refusal_name(refusal_kind kind) noexcept;

struct content_result {
  bool ok = false;
  content_refusal refusal;    // when !ok: why (kind none only in a result nobody filled)
  std::string text;           // the SMS text, UTF-8, cleaned up; an MMS: its text part
  sms::sms_encoding encoding = sms::sms_encoding::gsm7;
  std::uint32_t segments = 0; // SMS segments (may exceed max_segments when refused); 1 for an MMS
  bool email = false;         // read as an e-mail (MIME), not as raw text
  bool mms = false;
  bool ack_owed = false;      // MM4_forward.REQ with X-Mms-Ack-Request: Yes
  std::string mm4_message_id;         // X-Mms-Message-ID, else Message-ID; without <>
  std::string mm4_transaction_id;     // X-Mms-Transaction-ID
  std::string mm4_originator_system;  // X-Mms-Originator-System
};

// Bounds on an e-mail's MIME structure (PROTOCOL.md section 5). A part is
// every MIME entity, multipart containers and the message itself included;
// depth counts the levels of multiparts and attached messages below it.
struct content_limits {
  std::uint32_t max_parts = 1000;
  std::uint32_t max_depth = 20;
};

// The content step the session runs at the terminator. `body` is the stored
// DATA body (unstuffed, CRLF line ends). Refusals, in this order:
//   too_many_parts, too_deep (e-mail mode), mms_not_enabled, mms_too_big,
//   empty, too_many_segments
// (src/smtp/replies.h words them for the client).
content_result read_content(std::string_view body, const account_settings& account,
                            const content_limits& limits = {});

// read_content into `out` when that is cheap enough for a shard's own loop
// (a raw-mode text of at most 64 KiB: one linear pass, microseconds); false,
// with `out` untouched, for anything GMime would parse, or a big body, which
// belongs on a worker.
bool read_content_if_cheap(std::string_view body, const account_settings& account, content_result& out);

// A linear scan of the MIME structure that stops at the first part or level
// over `limits`, before any parser builds the parts (src/mime/structure.cc).
struct structure_check {
  std::uint32_t parts = 0;  // counted so far (stops one past max_parts)
  std::uint32_t depth = 0;  // deepest level seen (stops one past max_depth)
  bool too_many_parts = false;
  bool too_deep = false;
};
structure_check check_structure(std::string_view body, const content_limits& limits);

// PROTOCOL.md's e-mail rule: every line before the first empty line is an
// RFC 5322 header field (folded lines included), and MIME-Version, or
// Content-Type, or both From and Date are among them.
bool looks_like_email(std::string_view body) noexcept;

// True when the header block (as looks_like_email reads it) carries
// X-Mms-Message-Type: MM4_forward.REQ, whatever else it holds.
bool is_mm4_forward(std::string_view body) noexcept;

// The account's e-mail content settings (account_settings has the same
// names and defaults; src/mime/README.md gives the rules).
struct email_options {
  bool subject_prefix = false;
  bool strip_signature = true;
  bool strip_quoted_reply = true;
  content_limits limits;     // the parsed tree is checked against these too
};

// One e-mail, parsed with GMime: the chosen text (text/plain preferred, HTML
// reduced), decoded to UTF-8, with the subject, signature and quoted-reply
// rules applied but not yet tidied (tidy_text_lines does that), and the MMS
// facts. subject_as_text is the content step's (read_content): it applies to
// the text after tidying.
struct email_content {
  std::string text;
  std::string subject;       // decoded (RFC 2047), UTF-8
  bool from_html = false;    // the text came from a text/html part
  bool has_media = false;    // some image/*, audio/* or video/* part
  bool mm4_forward = false;  // X-Mms-Message-Type: MM4_forward.REQ
  bool mm4_ack_requested = false;
  std::string message_id;    // X-Mms-Message-ID, else Message-ID; without <>
  std::string mm4_transaction_id;
  std::string mm4_originator_system;
  std::uint32_t parts = 0;   // MIME entities GMime built (see content_limits)
  std::uint32_t depth = 0;
  bool over_limits = false;  // parts or depth over options.limits: nothing else is filled
};
email_content parse_email(std::string_view body, const email_options& options);

// Cuts a reply's quoted original from `text` (one linear pass, no regex):
// every block of '>'-quoted lines, with the attribution line directly above
// it ("On ... wrote:" and its Italian, German, French, Spanish, Portuguese
// and Dutch forms) and the blank lines around it, and everything from an
// Outlook-style "-----Original Message-----" separator (or its localized
// forms) on; the sender's own lines between quote blocks stay. A text the cut
// would leave blank is returned unchanged: the cut never empties a text that
// was not empty. Line ends may be LF or CRLF.
std::string cut_quoted_reply(std::string_view text);

// The leaf parts of an MMS (or any MIME message) for the message index:
// each part's content type (lower case, without parameters) and its size
// once its transfer encoding is undone, in document order, at most
// `max_parts` of them (src/mime/parts.cc).
struct mime_part_summary {
  std::string content_type;
  std::uint64_t bytes = 0;
};
std::vector<mime_part_summary> list_parts(std::string_view body, std::size_t max_parts = 100);

// Readable text from an HTML document given as UTF-8 (libxml2's HTML parser,
// no network, errors ignored): block elements and <br> become line breaks,
// a link keeps its target as "text (url)", scripts, styles and the head are
// dropped, entities are decoded, no-break spaces become spaces.
std::string html_to_text(std::string_view html_utf8);

// Decodes `bytes` declared as `charset` (may be empty) to UTF-8: UTF-8 and
// US-ASCII as they are when valid, ISO-8859-1 and Windows-1252 as
// Windows-1252 unless the bytes are valid UTF-8 with multi-byte sequences
// (a mis-declared charset: read as UTF-8), others through GMime's iconv
// wrapper; whatever cannot be decoded so is read as Windows-1252, the
// raw-mode rule.
std::string to_utf8(std::string_view bytes, std::string_view charset);

}  // namespace postino::mime
