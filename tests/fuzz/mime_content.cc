// libFuzzer target: the content step (mime::read_content, src/mime: GMime
// and libxml2 underneath), what the gateway runs on every DATA body before
// pricing, with the account's content settings chosen by the input. Time
// and memory per input are bounded by libFuzzer (-timeout, -rss_limit_mb,
// -malloc_limit_mb in mime_content.options; inputs up to -max_len). For
// every input:
//  - the result's text is well-formed UTF-8 (utf8_reference.h);
//  - ok exactly when there is no refusal, never "not run";
//  - an SMS: a text, its encoding and segments as count_segments gives them
//    (transliterated already when the account transliterates), within the
//    account's max_segments; an MMS: an account with MMS, within
//    max_mms_bytes, one segment, and its part list (list_parts, what the
//    checkpointer stores) bounded;
//  - a refusal names its numbers: a count over its limit;
//  - read_content_if_cheap, when it runs, gives read_content's answer;
//  - the structure scan that keeps hostile bodies from GMime
//    (check_structure) counts no fewer parts than GMime builds, and no
//    shallower nesting: else its bound could be walked past.
// Input: byte 0 = settings (bits 0-1 content mode: auto, raw, email, auto;
// 2 subject_prefix, 3 strip_signature, 4 strip_quoted_reply, 5
// subject_as_text, 6 transliterate, 7 mms_enabled), byte 1 = max_segments
// (as stored, clamped by the step), byte 2 = limits (0: the defaults,
// else max_parts 1 + 4 x (bits 3-7), max_depth 1 + (bits 0-2), and
// max_mms_bytes 512), then the body as the session stores it.
// Buffers: the input is libFuzzer's; everything else is this file's.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "postino/mime.h"
#include "postino/sms.h"
#include "utf8_reference.h"

namespace {

using namespace postino;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "mime_content invariant: %s\n%s\n", what, detail.c_str());
  std::abort();
}

std::string describe(const mime::content_result& r) {
  return std::string("ok=") + (r.ok ? "1" : "0") + " refusal=" + std::string(mime::refusal_name(r.refusal.kind)) +
         " count=" + std::to_string(r.refusal.count) + " limit=" + std::to_string(r.refusal.limit) +
         " segments=" + std::to_string(r.segments) + " mms=" + (r.mms ? "1" : "0") +
         " text bytes=" + std::to_string(r.text.size());
}

account_settings account_of(std::uint8_t flags, std::uint8_t max_segments, std::uint8_t limits) {
  account_settings a;
  a.id = 7;
  a.username = "acme";
  const unsigned mode = flags & 3;
  a.content = mode == 1 ? content_mode::raw : mode == 2 ? content_mode::email : content_mode::automatic;
  a.subject_prefix = (flags & 4) != 0;
  a.strip_signature = (flags & 8) != 0;
  a.strip_quoted_reply = (flags & 16) != 0;
  a.subject_as_text = (flags & 32) != 0;
  a.transliterate = (flags & 64) != 0;
  a.mms_enabled = (flags & 128) != 0;
  a.max_segments = max_segments;
  if (limits != 0) a.max_mms_bytes = 512;
  return a;
}

mime::content_limits limits_of(std::uint8_t b) {
  mime::content_limits l;
  if (b == 0) return l;
  l.max_parts = 1 + 4 * (b >> 3);
  l.max_depth = 1 + (b & 7);
  return l;
}

void check_sms(const mime::content_result& r, const account_settings& a) {
  const std::uint32_t max = std::clamp<std::uint32_t>(a.max_segments, 1, sms::max_concat_segments);
  if (r.text.empty()) fail("an SMS without text", describe(r));
  const sms::segment_count c = sms::count_segments(r.text);
  if (c.segments != r.segments || c.encoding != r.encoding) fail("segments or encoding not the text's", describe(r));
  if (r.segments < 1 || r.segments > max) fail("an SMS outside 1..max_segments", describe(r));
  if (a.transliterate && sms::transliterate_to_gsm(r.text) != r.text)
    fail("a transliterating account's text is not transliterated", describe(r));
}

void check_mms(const mime::content_result& r, const account_settings& a, std::string_view body) {
  if (!a.mms_enabled || body.size() > a.max_mms_bytes || r.segments != 1) fail("an MMS against its rules", describe(r));
  constexpr std::size_t max_listed = 100;
  const auto parts = mime::list_parts(body, max_listed);
  if (parts.size() > max_listed) fail("list_parts past its bound", describe(r));
  for (const auto& p : parts)
    if (std::any_of(p.content_type.begin(), p.content_type.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
      fail("a listed content type not in lower case", p.content_type);
}

void check_refusal(const mime::content_result& r, const account_settings& a, const mime::content_limits& l) {
  const auto& f = r.refusal;
  switch (f.kind) {
    case mime::refusal_kind::none:
    case mime::refusal_kind::not_run: fail("refused without a reason", describe(r));
    case mime::refusal_kind::too_many_parts:
      if (f.limit != l.max_parts || f.count <= f.limit) fail("too many parts, but not over the limit", describe(r));
      break;
    case mime::refusal_kind::too_deep:
      if (f.limit != l.max_depth || f.count <= f.limit) fail("too deep, but not over the limit", describe(r));
      break;
    case mime::refusal_kind::too_many_segments: {
      const std::uint32_t max = std::clamp<std::uint32_t>(a.max_segments, 1, sms::max_concat_segments);
      if (f.limit != max || f.count <= f.limit || f.count != r.segments)
        fail("too many segments, but not over the limit", describe(r));
      break;
    }
    case mime::refusal_kind::mms_too_big:
      if (f.limit != a.max_mms_bytes || f.count <= f.limit) fail("an MMS too big, but not over", describe(r));
      break;
    case mime::refusal_kind::mms_not_enabled:
      if (a.mms_enabled) fail("MMS not enabled for an account with MMS", describe(r));
      break;
    case mime::refusal_kind::empty: break;
  }
}

bool same(const mime::content_result& x, const mime::content_result& y) {
  return x.ok == y.ok && x.refusal == y.refusal && x.text == y.text && x.encoding == y.encoding &&
         x.segments == y.segments && x.email == y.email && x.mms == y.mms;
}

// GMime builds what the scan let through: never more parts or deeper.
void check_scan_bounds_gmime(std::string_view body, const account_settings& a, const mime::content_limits& l) {
  const bool email = a.content == content_mode::email ||
                     (a.content == content_mode::automatic && mime::looks_like_email(body)) ||
                     mime::is_mm4_forward(body);
  if (!email) return;
  const mime::structure_check shape = mime::check_structure(body, l);
  if (shape.too_many_parts || shape.too_deep) return;
  mime::email_options o;
  o.limits = {1u << 30, 1u << 30};  // GMime's own count, unbounded
  const mime::email_content e = mime::parse_email(body, o);
  if (e.parts > shape.parts || e.depth > shape.depth)
    fail("GMime built more than the structure scan counted",
         "scan parts=" + std::to_string(shape.parts) + " depth=" + std::to_string(shape.depth) +
             "; GMime parts=" + std::to_string(e.parts) + " depth=" + std::to_string(e.depth));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const account_settings account = account_of(data[0], data[1], data[2]);
  const mime::content_limits limits = limits_of(data[2]);
  const std::string_view body(reinterpret_cast<const char*>(data) + 3, size - 3);

  const mime::content_result r = mime::read_content(body, account, limits);
  if (!fuzz::well_formed(r.text)) fail("the text is not UTF-8", describe(r));
  if (r.ok != (r.refusal.kind == mime::refusal_kind::none)) fail("ok and refusal disagree", describe(r));
  if (r.ok && r.mms) check_mms(r, account, body);
  else if (r.ok) check_sms(r, account);
  else check_refusal(r, account, limits);

  mime::content_result cheap;
  if (mime::read_content_if_cheap(body, account, cheap) && !same(cheap, r))
    fail("read_content_if_cheap differs from read_content", describe(cheap) + "\n" + describe(r));
  check_scan_bounds_gmime(body, account, limits);
  return 0;
}
