// The content step (PROTOCOL.md section 3): what the session runs on a DATA
// body at its terminator, before pricing. It chooses raw or e-mail mode,
// recognises an MMS, cleans the text up, encodes and counts segments, and
// names every reason not to send as a refusal kind with its numbers (the SMTP
// session words it: src/smtp/replies.cc). Reads the caller's body view and
// settings; the result is owned.
//
// Decisions where PROTOCOL.md leaves room:
// - X-Mms-Message-Type: MM4_forward.REQ in a well-formed header block makes
//   an MMS whatever the account's content_mode: it is a protocol marker, not a
//   guess. Media parts make an MMS only in e-mail mode and only for an
//   mms_enabled account; other accounts get the text of such mails.
// - An MMS: "MMS not enabled" first, then its size (the raw MIME body stored
//   whole, against max_mms_bytes), then emptiness (no media and no text).
//   It counts as one segment; its text part, cleaned, goes with it.
// - With transliterate on, the stored text is the transliterated one when
//   that makes it GSM, so the journal holds exactly what goes out.
// - max_segments is capped at 255, the most an 8-bit UDH can number.
// - subject_as_text (issue 13 item 2): an e-mail SMS whose text is empty after
//   the clean-up (no body, a blank one, or one the signature cut emptied)
//   sends its decoded Subject, tidied the same way, instead of being refused;
//   an MMS keeps its own rule (media or text), as the Subject is not its text.
#include <algorithm>
#include <string>
#include <string_view>

#include "postino/mime.h"
#include "postino/sms.h"

namespace postino::mime {
namespace {

content_result refuse(refusal_kind kind, std::uint64_t count = 0, std::uint64_t limit = 0) {
  content_result r;
  r.ok = false;
  r.refusal = {kind, count, limit};
  return r;
}

// The SMS rules shared by both modes, on text already in UTF-8.
content_result finish_sms(std::string text, bool email, const account_settings& account) {
  if (text.empty()) return refuse(refusal_kind::empty);
  if (account.transliterate) text = sms::transliterate_to_gsm(text);
  const sms::segment_count count = sms::count_segments(text);
  const std::uint32_t max = std::clamp<std::uint32_t>(account.max_segments, 1, sms::max_concat_segments);
  if (count.segments > max) {
    content_result r = refuse(refusal_kind::too_many_segments, count.segments, max);
    r.segments = count.segments;
    r.encoding = count.encoding;
    r.email = email;
    return r;
  }
  content_result r;
  r.ok = true;
  r.text = std::move(text);
  r.encoding = count.encoding;
  r.segments = count.segments;
  r.email = email;
  return r;
}

content_result too_many_parts(const content_limits& limits, std::uint32_t found) {
  return refuse(refusal_kind::too_many_parts, found, limits.max_parts);
}

content_result too_deep(const content_limits& limits, std::uint32_t found) {
  return refuse(refusal_kind::too_deep, found, limits.max_depth);
}

email_options email_options_of(const account_settings& account, const content_limits& limits) {
  email_options o;
  o.subject_prefix = account.subject_prefix;
  o.strip_signature = account.strip_signature;
  o.strip_quoted_reply = account.strip_quoted_reply;
  o.limits = limits;
  return o;
}

bool email_mode(std::string_view body, const account_settings& account, bool mm4) {
  return mm4 || account.content == content_mode::email ||
         (account.content == content_mode::automatic && looks_like_email(body));
}

// Above this a raw body's clean-up takes long enough (tens of microseconds
// per kilobyte and up) to be worth a worker's hop.
constexpr std::size_t cheap_raw_bytes = 64 * 1024;

}  // namespace

std::string_view refusal_name(refusal_kind kind) noexcept {
  switch (kind) {
    case refusal_kind::none: return "none";
    case refusal_kind::too_many_parts: return "too_many_parts";
    case refusal_kind::too_deep: return "too_deep";
    case refusal_kind::mms_not_enabled: return "mms_not_enabled";
    case refusal_kind::mms_too_big: return "mms_too_big";
    case refusal_kind::empty: return "empty";
    case refusal_kind::too_many_segments: return "too_many_segments";
    case refusal_kind::not_run: return "not_run";
  }
  return "unknown";
}

bool read_content_if_cheap(std::string_view body, const account_settings& account, content_result& out) {
  if (body.size() > cheap_raw_bytes || email_mode(body, account, is_mm4_forward(body))) return false;
  out = finish_sms(sms::clean_raw_text(body).utf8, false, account);
  return true;
}

content_result read_content(std::string_view body, const account_settings& account, const content_limits& limits) {
  const bool mm4 = is_mm4_forward(body);
  if (!email_mode(body, account, mm4)) return finish_sms(sms::clean_raw_text(body).utf8, false, account);

  // The structure bound first: GMime builds every part it finds.
  const structure_check shape = check_structure(body, limits);
  if (shape.too_many_parts) return too_many_parts(limits, shape.parts);
  if (shape.too_deep) return too_deep(limits, shape.depth);
  email_content e = parse_email(body, email_options_of(account, limits));
  if (e.over_limits) return e.parts > limits.max_parts ? too_many_parts(limits, e.parts) : too_deep(limits, e.depth);
  const bool mms = mm4 || e.mm4_forward || (account.mms_enabled && e.has_media);
  if (!mms) {
    std::string text = sms::tidy_text_lines(e.text);
    if (text.empty() && account.subject_as_text) text = sms::tidy_text_lines(e.subject);
    return finish_sms(std::move(text), true, account);
  }

  if (!account.mms_enabled) return refuse(refusal_kind::mms_not_enabled);
  if (body.size() > account.max_mms_bytes) return refuse(refusal_kind::mms_too_big, body.size(), account.max_mms_bytes);
  std::string text = sms::tidy_text_lines(e.text);
  if (text.empty() && !e.has_media) return refuse(refusal_kind::empty);
  content_result r;
  r.ok = true;
  r.email = true;
  r.mms = true;
  r.segments = 1;
  r.encoding = sms::count_segments(text).encoding;
  r.text = std::move(text);
  r.ack_owed = (mm4 || e.mm4_forward) && e.mm4_ack_requested;
  r.mm4_message_id = std::move(e.message_id);
  r.mm4_transaction_id = std::move(e.mm4_transaction_id);
  r.mm4_originator_system = std::move(e.mm4_originator_system);
  return r;
}

}  // namespace postino::mime
