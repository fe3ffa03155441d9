// libFuzzer target: GSM 03.38 / UCS-2 encoding and segmentation (src/sms/
// gsm.cc, include/sms/postino/sms.h) for any bytes as the text. "Back" is
// defined by the header's own rules, and checked with this file's UTF-8
// reader (utf8_reference.h), not the product's:
//  - the text's characters are its code points, each byte that starts no
//    well-formed UTF-8 sequence read as U+FFFD;
//  - the GSM alphabet is what the decoder (gsm7_to_utf8) reads from the 127
//    septets and the ESC pairs that are no unknown escape (a space);
//  - every character in that alphabet: encoding gsm7, and the septets of
//    the segments (UDH removed) decode to exactly the input; otherwise
//    ucs2, and the UTF-16 of the segments decodes to the characters;
//  - transliterate: the text goes as transliterate_to_gsm would store it,
//    which is the input unchanged or all GSM, and counts and encodes as that
//    text without the setting (what the content step relies on).
// Segments: as many as count_segments says (none past 255 or for an empty
// text), UDH 05 00 03 <ref> <total> <seq> when more than one, no escape or
// surrogate pair split, each full but the last (greedy: the next character
// would not have fitted), the units adding up to the count's. The decoders
// of what an SMSC sends (gsm7, Latin-1, UTF-16) give well-formed UTF-8 for
// any bytes.
// Input: byte 0 = transliterate (bit 0), byte 1 = the concatenation
// reference, then the text (up to -max_len: about 27 segments; past 255,
// where encode_sms gives none, is sms_gsm_test's, since texts that long
// run a hundred times slower under the sanitizers and would crowd the
// corpus).
// Buffers: the input is libFuzzer's; everything else is this file's.
#include <algorithm>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "postino/sms.h"
#include "utf8_reference.h"

namespace {

using namespace postino;

[[noreturn]] void fail(const char* what, std::string_view text) {
  std::fprintf(stderr, "gsm_text invariant: %s (text of %zu bytes)\n", what, text.size());
  std::abort();
}

// The characters the decoder reads from septets: the alphabet, as a set of
// BMP code points (the decoder only writes BMP characters; anything else
// lands outside and counts as not GSM, which then fails loudly).
using alphabet = std::bitset<0x10000>;

const alphabet& gsm_alphabet() {
  static const alphabet a = [] {
    alphabet set;
    const auto add = [&set](const std::string& septets, bool skip_space) {
      for (char32_t cp : fuzz::code_points(sms::gsm7_to_utf8(septets))) {
        if (cp >= set.size()) fail("the GSM decoder wrote a character outside the BMP", septets);
        if (!(skip_space && cp == U' ')) set.set(cp);
      }
    };
    for (int s = 0; s < 128; ++s)
      if (s != 0x1B) add(std::string(1, static_cast<char>(s)), false);
    for (int e = 0; e < 128; ++e) add(std::string{'\x1B', static_cast<char>(e)}, true);  // a space: unknown escape
    return set;
  }();
  return a;
}

bool all_gsm(const std::vector<char32_t>& cps) {
  const alphabet& a = gsm_alphabet();
  return std::all_of(cps.begin(), cps.end(), [&](char32_t cp) { return cp < a.size() && a.test(cp); });
}

struct shape {
  std::uint32_t single, concat, octets_per_unit;
};

// The cost in units of the character that starts `payload`.
std::uint32_t first_cost(const std::string& payload, bool gsm) {
  if (payload.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(payload[0]);
  if (gsm) return b0 == 0x1B ? 2 : 1;
  return b0 >= 0xD8 && b0 <= 0xDB ? 2 : 1;
}

// The segments' shape (UDH, sizes, pairs, greedy fill); returns their
// payloads joined.
std::string check_segments(const sms::encoded_sms& e, const sms::segment_count& c, std::uint8_t ref,
                           std::string_view text) {
  const bool gsm = c.encoding == sms::sms_encoding::gsm7;
  const shape s = gsm ? shape{sms::gsm7_single_septets, sms::gsm7_concat_septets, 1}
                      : shape{sms::ucs2_single_units, sms::ucs2_concat_units, 2};
  if (c.segments == 0 && c.units != 0) fail("no segments for a text with units", text);
  if (c.segments == 1 && c.units > s.single) fail("one segment over the single-segment limit", text);
  if (c.segments > 1 && (c.units <= s.single || c.units > std::uint64_t{c.segments} * s.concat ||
                         c.units < std::uint64_t{c.segments - 1} * (s.concat - 1) + 1))
    fail("the segment count does not fit the units", text);
  const std::size_t want = c.segments > sms::max_concat_segments ? 0 : c.segments;
  if (e.segments.size() != want) fail("encode_sms and count_segments disagree on the segments", text);
  if (e.encoding != c.encoding) fail("encode_sms and count_segments disagree on the encoding", text);
  std::vector<std::string> payloads;
  for (std::size_t i = 0; i < e.segments.size(); ++i) {
    std::string_view seg = e.segments[i];
    if (e.segments.size() > 1) {
      const std::string udh = {5, 0, 3, static_cast<char>(ref), static_cast<char>(e.segments.size()),
                               static_cast<char>(i + 1)};
      if (!seg.starts_with(udh)) fail("a concatenated segment without its UDH", text);
      seg.remove_prefix(udh.size());
    }
    const std::size_t limit = (e.segments.size() > 1 ? s.concat : s.single) * s.octets_per_unit;
    if (seg.empty() || seg.size() > limit || seg.size() % s.octets_per_unit != 0)
      fail("a segment of the wrong size", text);
    if (gsm && std::any_of(seg.begin(), seg.end(), [](char ch) { return (ch & 0x80) != 0; }))
      fail("a GSM segment octet that is no septet", text);
    const auto last = static_cast<unsigned char>(seg[seg.size() - s.octets_per_unit]);
    if (gsm ? last == 0x1B : (last >= 0xD8 && last <= 0xDB)) fail("a segment splits an escape or surrogate pair", text);
    payloads.emplace_back(seg);
  }
  std::string joined;
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    const std::uint32_t units = static_cast<std::uint32_t>(payloads[i].size() / s.octets_per_unit);
    if (i + 1 < payloads.size() && units + first_cost(payloads[i + 1], gsm) <= s.concat)
      fail("a segment not full although the next character fits", text);
    joined += payloads[i];
  }
  if (!payloads.empty() && joined.size() / s.octets_per_unit != c.units) fail("the units do not add up", text);
  return joined;
}

// Encode then decode, without transliteration: the input back.
void round_trip(std::string_view text, std::uint8_t ref) {
  const std::vector<char32_t> cps = fuzz::code_points(text);
  const sms::segment_count c = sms::count_segments(text);
  const bool gsm = all_gsm(cps);
  if ((c.encoding == sms::sms_encoding::gsm7) != gsm) fail(gsm ? "GSM text sent as UCS-2" : "non-GSM text as GSM", text);
  if ((c.segments == 0) != text.empty()) fail("segments for an empty text, or none for a text", text);
  const sms::encoded_sms e = sms::encode_sms(text, ref);
  const std::string joined = check_segments(e, c, ref, text);
  if (e.segments.empty()) return;
  if (gsm) {
    if (sms::gsm7_to_utf8(joined) != text) fail("GSM septets do not decode to the input", text);
  } else if (sms::utf16be_to_utf8(joined) != fuzz::to_utf8(cps)) {
    fail("UCS-2 units do not decode to the input's characters", text);
  }
}

// transliterate: the stored text is the input or all GSM, and behaves as
// that text without the setting.
void transliterated(std::string_view text, std::uint8_t ref) {
  const std::string stored = sms::transliterate_to_gsm(text);
  const bool changed = stored != text;
  if (changed && !all_gsm(fuzz::code_points(stored))) fail("transliteration changed a text that stays UCS-2", text);
  if (all_gsm(fuzz::code_points(text)) && changed) fail("transliteration changed a GSM text", text);
  if (sms::transliterate_to_gsm(stored) != stored) fail("transliteration is not idempotent", text);
  const sms::segment_count a = sms::count_segments(text, true), b = sms::count_segments(stored);
  if (a.encoding != b.encoding || a.segments != b.segments || a.units != b.units)
    fail("count with transliterate differs from the count of the transliterated text", text);
  if (sms::encode_sms(text, ref, true).segments != sms::encode_sms(stored, ref).segments)
    fail("encode with transliterate differs from encoding the transliterated text", text);
  round_trip(stored, ref);
}

// What an SMSC sends, any bytes: well-formed UTF-8 out.
void decoders(std::string_view raw) {
  const std::string gsm = sms::gsm7_to_utf8(raw);
  if (!fuzz::well_formed(gsm)) fail("gsm7_to_utf8 wrote malformed UTF-8", raw);
  if (!fuzz::well_formed(sms::utf16be_to_utf8(raw))) fail("utf16be_to_utf8 wrote malformed UTF-8", raw);
  if (!fuzz::well_formed(sms::latin1_to_utf8(raw))) fail("latin1_to_utf8 wrote malformed UTF-8", raw);
  std::string latin1;
  const bool ok = sms::gsm7_to_latin1(raw, latin1);
  const auto cps = fuzz::code_points(gsm);
  if (ok != std::all_of(cps.begin(), cps.end(), [](char32_t cp) { return cp <= 0xFF; }))
    fail("gsm7_to_latin1 is wrong about what Latin-1 holds", raw);
  if (ok && sms::latin1_to_utf8(latin1) != gsm) fail("gsm7_to_latin1 and gsm7_to_utf8 read different text", raw);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const bool translit = (data[0] & 1) != 0;
  const std::uint8_t ref = data[1];
  const std::string_view text(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (translit)
    transliterated(text, ref);
  else
    round_trip(text, ref);
  decoders(text);
  return 0;
}
