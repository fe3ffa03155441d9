// Unit tests for GSM 03.38 / UCS-2 encoding and segmentation (src/sms/gsm.cc,
// PROTOCOL.md section 3 "Encoding"): the septet of every basic and extension
// character, every other code point falling to UCS-2, the exact short_message
// octets and UDH of concatenated segments, the 160/153 and 70/67 boundaries,
// escape and surrogate pairs at a boundary, transliteration, and a property
// test that count_segments agrees with encode_sms on random text. The GSM
// table here is written independently of the one in gsm.cc, in Unicode order,
// from 3GPP TS 23.038 6.2.1 and 6.2.1.1. All buffers are test-owned.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "postino/sms.h"
#include "utf8_util.h"

namespace {

using postino::sms::count_segments;
using postino::sms::encode_sms;
using postino::sms::segment_count;
using postino::sms::sms_encoding;

std::string repeat(std::string_view s, int n) {
  std::string o;
  for (int i = 0; i < n; ++i) o += s;
  return o;
}

std::string bytes(std::initializer_list<int> v) {
  std::string o;
  for (int b : v) o += static_cast<char>(b);
  return o;
}

std::string udh(int ref, int total, int seq) { return bytes({0x05, 0x00, 0x03, ref, total, seq}); }

// Code point -> GSM octets (ESC-prefixed for the extension table).
const std::map<char32_t, std::string>& gsm_table() {
  static const std::map<char32_t, std::string> t = [] {
    std::map<char32_t, std::string> m;
    const auto one = [&](char32_t cp, int s) { m[cp] = bytes({s}); };
    const auto ext = [&](char32_t cp, int s) { m[cp] = bytes({0x1B, s}); };
    one(U'\n', 0x0A);
    one(U'\r', 0x0D);
    for (char32_t c = 0x20; c <= 0x23; ++c) one(c, static_cast<int>(c));  // space ! " #
    one(U'$', 0x02);
    for (char32_t c = 0x25; c <= 0x3F; ++c) one(c, static_cast<int>(c));  // % .. ?
    one(U'@', 0x00);
    for (char32_t c = U'A'; c <= U'Z'; ++c) one(c, static_cast<int>(c));
    one(U'_', 0x11);
    for (char32_t c = U'a'; c <= U'z'; ++c) one(c, static_cast<int>(c));
    one(0x00A1, 0x40);  // ¡
    one(0x00A3, 0x01);  // £
    one(0x00A4, 0x24);  // ¤
    one(0x00A5, 0x03);  // ¥
    one(0x00A7, 0x5F);  // §
    one(0x00BF, 0x60);  // ¿
    one(0x00C4, 0x5B);  // Ä
    one(0x00C5, 0x0E);  // Å
    one(0x00C6, 0x1C);  // Æ
    one(0x00C7, 0x09);  // Ç
    one(0x00C9, 0x1F);  // É
    one(0x00D1, 0x5D);  // Ñ
    one(0x00D6, 0x5C);  // Ö
    one(0x00D8, 0x0B);  // Ø
    one(0x00DC, 0x5E);  // Ü
    one(0x00DF, 0x1E);  // ß
    one(0x00E0, 0x7F);  // à
    one(0x00E4, 0x7B);  // ä
    one(0x00E5, 0x0F);  // å
    one(0x00E6, 0x1D);  // æ
    one(0x00E8, 0x04);  // è
    one(0x00E9, 0x05);  // é
    one(0x00EC, 0x07);  // ì
    one(0x00F1, 0x7D);  // ñ
    one(0x00F2, 0x08);  // ò
    one(0x00F6, 0x7C);  // ö
    one(0x00F8, 0x0C);  // ø
    one(0x00F9, 0x06);  // ù
    one(0x00FC, 0x7E);  // ü
    one(0x0393, 0x13);  // Γ
    one(0x0394, 0x10);  // Δ
    one(0x0398, 0x19);  // Θ
    one(0x039B, 0x14);  // Λ
    one(0x039E, 0x1A);  // Ξ
    one(0x03A0, 0x16);  // Π
    one(0x03A3, 0x18);  // Σ
    one(0x03A6, 0x12);  // Φ
    one(0x03A8, 0x17);  // Ψ
    one(0x03A9, 0x15);  // Ω
    ext(U'\f', 0x0A);
    ext(U'^', 0x14);
    ext(U'{', 0x28);
    ext(U'}', 0x29);
    ext(U'\\', 0x2F);
    ext(U'[', 0x3C);
    ext(U'~', 0x3D);
    ext(U']', 0x3E);
    ext(U'|', 0x40);
    ext(0x20AC, 0x65);  // €
    return m;
  }();
  return t;
}

// ---- the alphabet ----

TEST(SmsGsmTable, HasEveryBasicSeptetOnceAndTheTenExtensions) {
  const auto& t = gsm_table();
  ASSERT_EQ(t.size(), 127u + 10u);  // 128 septets less ESC, plus the extension characters
  std::vector<int> seen(128, 0);
  for (const auto& [cp, code] : t) {
    if (code.size() == 1) ++seen[static_cast<unsigned char>(code[0])];
  }
  for (int s = 0; s < 128; ++s) EXPECT_EQ(seen[s], s == 0x1B ? 0 : 1) << "septet " << s;
}

TEST(SmsGsmTable, EveryCharacterCostsItsSeptetsAndEncodesToItsCode) {
  for (const auto& [cp, code] : gsm_table()) {
    const std::string text = utf8(cp);
    const segment_count c = count_segments(text);
    EXPECT_EQ(c.encoding, sms_encoding::gsm7) << std::hex << static_cast<uint32_t>(cp);
    EXPECT_EQ(c.segments, 1u);
    EXPECT_EQ(c.units, code.size()) << std::hex << static_cast<uint32_t>(cp);
    const auto e = encode_sms(text, 0);
    ASSERT_EQ(e.encoding, sms_encoding::gsm7);
    ASSERT_EQ(e.segments.size(), 1u);
    EXPECT_EQ(e.segments[0], code) << std::hex << static_cast<uint32_t>(cp);
  }
}

TEST(SmsGsmTable, EveryOtherCodePointIsUcs2) {
  const auto& t = gsm_table();
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    if (t.contains(cp)) continue;
    const segment_count c = count_segments(utf8(cp));
    ASSERT_EQ(c.encoding, sms_encoding::ucs2) << std::hex << static_cast<uint32_t>(cp);
    ASSERT_EQ(c.units, cp >= 0x10000 ? 2u : 1u);
    ASSERT_EQ(c.segments, 1u);
  }
}

TEST(SmsGsmTable, LookalikesThatGsmLacksForceUcs2) {
  for (const char* s : {"`", "ç", "À", "È", "Ì", "Ò", "Ù", "á", "í", "ó", "ú", "\t", "\xC2\xA0", "‘", "’", "“",
                        "”", "–", "—", "…", "Α", "ą", "\xEF\xBB\xBF"}) {
    EXPECT_EQ(count_segments(std::string("abc") + s).encoding, sms_encoding::ucs2) << s;
  }
}

TEST(SmsGsmTable, ItalianTextIsGsm) {
  const auto c = count_segments("Caffè e perché: più città, però 5€ @casa {ok} [x] ~ ^ | \\");
  EXPECT_EQ(c.encoding, sms_encoding::gsm7);
  // 57 characters, 9 of them (€ { } [ ] ~ ^ | \) from the extension table.
  EXPECT_EQ(c.units, 57u + 9u);
  EXPECT_EQ(c.segments, 1u);
}

// ---- GSM segments ----

TEST(SmsGsmSegments, EmptyTextHasNoSegments) {
  EXPECT_EQ(count_segments("").segments, 0u);
  EXPECT_EQ(count_segments("").units, 0u);
  EXPECT_TRUE(encode_sms("", 1).segments.empty());
}

TEST(SmsGsmSegments, OneHundredSixtySeptetsIsOneSegmentWithoutUdh) {
  const std::string text = repeat("a", 160);
  const auto c = count_segments(text);
  EXPECT_EQ(c.encoding, sms_encoding::gsm7);
  EXPECT_EQ(c.segments, 1u);
  EXPECT_EQ(c.units, 160u);
  const auto e = encode_sms(text, 9);
  ASSERT_EQ(e.segments.size(), 1u);
  EXPECT_EQ(e.segments[0], text);  // ASCII letters are their own septets
}

TEST(SmsGsmSegments, OneHundredSixtyOneSeptetsIsTwoSegments) {
  std::string text = repeat("0123456789", 16) + "Z";
  const auto c = count_segments(text);
  EXPECT_EQ(c.segments, 2u);
  EXPECT_EQ(c.units, 161u);
  const auto e = encode_sms(text, 0x42);
  ASSERT_EQ(e.segments.size(), 2u);
  EXPECT_EQ(e.segments[0], udh(0x42, 2, 1) + text.substr(0, 153));
  EXPECT_EQ(e.segments[1], udh(0x42, 2, 2) + text.substr(153));
  EXPECT_EQ(e.segments[0].size(), 6u + 153u);
  EXPECT_EQ(e.segments[1].size(), 6u + 8u);
}

TEST(SmsGsmSegments, TwoFullConcatenatedSegmentsAndOneMore) {
  EXPECT_EQ(count_segments(repeat("x", 153 * 2)).segments, 2u);
  EXPECT_EQ(count_segments(repeat("x", 153 * 2 + 1)).segments, 3u);
  EXPECT_EQ(count_segments(repeat("x", 153 * 3)).segments, 3u);
  const auto e = encode_sms(repeat("x", 153 * 2 + 1), 0xFF);
  ASSERT_EQ(e.segments.size(), 3u);
  EXPECT_EQ(e.segments[0], udh(0xFF, 3, 1) + repeat("x", 153));
  EXPECT_EQ(e.segments[1], udh(0xFF, 3, 2) + repeat("x", 153));
  EXPECT_EQ(e.segments[2], udh(0xFF, 3, 3) + "x");
}

TEST(SmsGsmSegments, ExactOctetsOfAConcatenatedMessageWithGsmSpecials) {
  // 149 letters, then é (05) @ (00) € (1B 65): € is septets 152-153 and still fits the first
  // segment; then £ (01) Δ (10) _ (11) and 10 letters, 166 septets in all.
  const std::string text = repeat("b", 149) + "é@€£Δ_" + repeat("c", 10);
  const auto c = count_segments(text);
  ASSERT_EQ(c.units, 166u);
  ASSERT_EQ(c.segments, 2u);
  const auto e = encode_sms(text, 0x07);
  ASSERT_EQ(e.encoding, sms_encoding::gsm7);
  ASSERT_EQ(e.segments.size(), 2u);
  EXPECT_EQ(e.segments[0], udh(7, 2, 1) + repeat("b", 149) + bytes({0x05, 0x00, 0x1B, 0x65}));
  EXPECT_EQ(e.segments[1], udh(7, 2, 2) + bytes({0x01, 0x10, 0x11}) + repeat("c", 10));
}

TEST(SmsGsmSegments, EscapePairStraddlingTheBoundaryMovesWhole) {
  // 152 septets, then € would be septets 153-154: it goes whole to segment 2.
  const std::string text = repeat("a", 152) + "€" + repeat("z", 10);
  const auto c = count_segments(text);
  EXPECT_EQ(c.units, 164u);
  EXPECT_EQ(c.segments, 2u);
  const auto e = encode_sms(text, 1);
  ASSERT_EQ(e.segments.size(), 2u);
  EXPECT_EQ(e.segments[0], udh(1, 2, 1) + repeat("a", 152));
  EXPECT_EQ(e.segments[1], udh(1, 2, 2) + bytes({0x1B, 0x65}) + repeat("z", 10));
}

TEST(SmsGsmSegments, EscapePairsCanNeedAnExtraSegment) {
  // 153 '{' are 306 septets = 153 x 2, but a segment holds 76 pairs (152 septets) and
  // the last pair cannot be split, so it needs a third segment.
  const std::string text = repeat("{", 153);
  const auto c = count_segments(text);
  EXPECT_EQ(c.units, 306u);
  EXPECT_EQ(c.segments, 3u);
  const auto e = encode_sms(text, 3);
  ASSERT_EQ(e.segments.size(), 3u);
  EXPECT_EQ(e.segments[0], udh(3, 3, 1) + repeat("\x1B\x28", 76));
  EXPECT_EQ(e.segments[1], udh(3, 3, 2) + repeat("\x1B\x28", 76));
  EXPECT_EQ(e.segments[2], udh(3, 3, 3) + "\x1B\x28");
}

TEST(SmsGsmSegments, EscapePairAtTheSingleSegmentLimit) {
  EXPECT_EQ(count_segments(repeat("a", 158) + "€").segments, 1u);  // 160 septets
  EXPECT_EQ(count_segments(repeat("a", 159) + "€").segments, 2u);  // 161 septets
  EXPECT_EQ(count_segments(repeat("€", 80)).segments, 1u);
  EXPECT_EQ(count_segments(repeat("€", 81)).segments, 2u);
}

TEST(SmsGsmSegments, TwoHundredFiftyFiveSegmentsIsTheMost) {
  const std::string most = repeat("m", 153 * 255);
  EXPECT_EQ(count_segments(most).segments, 255u);
  const auto e = encode_sms(most, 5);
  ASSERT_EQ(e.segments.size(), 255u);
  EXPECT_EQ(e.segments[254], udh(5, 255, 255) + repeat("m", 153));

  const std::string too_many = most + "m";
  EXPECT_EQ(count_segments(too_many).segments, 256u);
  EXPECT_TRUE(encode_sms(too_many, 5).segments.empty());
}

// ---- UCS-2 ----

TEST(SmsUcs2, BigEndianOctetsWithAnEmojiAsASurrogatePair) {
  const std::string text = "Ciao ж 😀!";  // U+1F600 = D83D DE00
  const auto c = count_segments(text);
  EXPECT_EQ(c.encoding, sms_encoding::ucs2);
  EXPECT_EQ(c.units, 10u);
  EXPECT_EQ(c.segments, 1u);
  const auto e = encode_sms(text, 0);
  ASSERT_EQ(e.encoding, sms_encoding::ucs2);
  ASSERT_EQ(e.segments.size(), 1u);
  EXPECT_EQ(e.segments[0], bytes({0x00, 'C', 0x00, 'i', 0x00, 'a', 0x00, 'o', 0x00, ' ', 0x04, 0x36, 0x00, ' ', 0xD8,
                                  0x3D, 0xDE, 0x00, 0x00, '!'}));
  EXPECT_EQ(postino::sms::smpp_data_coding(e.encoding), 0x08);
  EXPECT_EQ(postino::sms::smpp_data_coding(sms_encoding::gsm7), 0x00);
}

TEST(SmsUcs2, SeventyUnitsIsOneSegmentSeventyOneIsTwo) {
  EXPECT_EQ(count_segments(repeat("ж", 70)).segments, 1u);
  const std::string text = repeat("ж", 71);
  const auto c = count_segments(text);
  EXPECT_EQ(c.segments, 2u);
  EXPECT_EQ(c.units, 71u);
  const auto e = encode_sms(text, 0x10);
  ASSERT_EQ(e.segments.size(), 2u);
  EXPECT_EQ(e.segments[0], udh(0x10, 2, 1) + repeat("\x04\x36", 67));
  EXPECT_EQ(e.segments[1], udh(0x10, 2, 2) + repeat("\x04\x36", 4));
  EXPECT_EQ(e.segments[0].size(), 140u);
}

TEST(SmsUcs2, TwoFullConcatenatedSegmentsAndOneMore) {
  EXPECT_EQ(count_segments(repeat("ж", 67 * 2)).segments, 2u);
  EXPECT_EQ(count_segments(repeat("ж", 67 * 2 + 1)).segments, 3u);
  const auto e = encode_sms(repeat("ж", 67 * 2 + 1), 0x80);
  ASSERT_EQ(e.segments.size(), 3u);
  EXPECT_EQ(e.segments[2], udh(0x80, 3, 3) + "\x04\x36");
}

TEST(SmsUcs2, SurrogatePairAtTheSingleSegmentLimit) {
  EXPECT_EQ(count_segments(repeat("ж", 68) + "😀").segments, 1u);  // 70 units
  const auto c = count_segments(repeat("ж", 69) + "😀");            // 71 units
  EXPECT_EQ(c.units, 71u);
  EXPECT_EQ(c.segments, 2u);
  EXPECT_EQ(count_segments(repeat("😀", 35)).segments, 1u);
  EXPECT_EQ(count_segments(repeat("😀", 36)).segments, 2u);
}

TEST(SmsUcs2, SurrogatePairStraddlingTheBoundaryMovesWhole) {
  // 66 units, then the emoji would be units 67-68: it goes whole to segment 2.
  const std::string text = repeat("ж", 66) + "😀" + repeat("ж", 5);
  const auto c = count_segments(text);
  EXPECT_EQ(c.units, 73u);
  EXPECT_EQ(c.segments, 2u);
  const auto e = encode_sms(text, 0x33);
  ASSERT_EQ(e.segments.size(), 2u);
  EXPECT_EQ(e.segments[0], udh(0x33, 2, 1) + repeat("\x04\x36", 66));
  EXPECT_EQ(e.segments[1], udh(0x33, 2, 2) + bytes({0xD8, 0x3D, 0xDE, 0x00}) + repeat("\x04\x36", 5));
}

TEST(SmsUcs2, OneNonGsmCharacterMakesTheWholeTextUcs2) {
  // 100 GSM letters would be one GSM segment; one Cyrillic letter makes 101 units, two segments.
  const auto c = count_segments(repeat("a", 100) + "ж");
  EXPECT_EQ(c.encoding, sms_encoding::ucs2);
  EXPECT_EQ(c.units, 101u);
  EXPECT_EQ(c.segments, 2u);
  // Extension characters cost one unit in UCS-2, not two.
  EXPECT_EQ(count_segments("€ж").units, 2u);
}

TEST(SmsUcs2, InvalidUtf8ReadsAsReplacementCharacters) {
  const auto e = encode_sms("a\xFF\xC3", 0);
  ASSERT_EQ(e.encoding, sms_encoding::ucs2);
  ASSERT_EQ(e.segments.size(), 1u);
  EXPECT_EQ(e.segments[0], bytes({0x00, 'a', 0xFF, 0xFD, 0xFF, 0xFD}));
  EXPECT_EQ(count_segments("a\xFF\xC3").units, 3u);
}

// ---- transliteration ----

TEST(SmsTransliteration, OffByDefault) {
  EXPECT_EQ(count_segments("“Ciao” – À presto…").encoding, sms_encoding::ucs2);
}

TEST(SmsTransliteration, TypographyAndAccentedCapitalsStayGsm) {
  const auto e = encode_sms("“Ciao” – À presto… ‘È’ \xC2\xA0Œ ç", 0, true);
  ASSERT_EQ(e.encoding, sms_encoding::gsm7);
  ASSERT_EQ(e.segments.size(), 1u);
  EXPECT_EQ(e.segments[0], std::string("\"Ciao\" - A presto... 'E'  OE ") + '\x09');
  const auto c = count_segments("“Ciao” – À presto… ‘È’ \xC2\xA0Œ ç", true);
  EXPECT_EQ(c.encoding, sms_encoding::gsm7);
  EXPECT_EQ(c.units, e.segments[0].size());
}

TEST(SmsTransliteration, ReplacementsCanUseTheExtensionTable) {
  const auto e = encode_sms("\xCB\x86\xCB\x9C", 0, true);  // ˆ ˜
  ASSERT_EQ(e.encoding, sms_encoding::gsm7);
  EXPECT_EQ(e.segments[0], bytes({0x1B, 0x14, 0x1B, 0x3D}));
}

TEST(SmsTransliteration, GreekCapitalsThatLookLatin) {
  const auto e = encode_sms("ΑΘΗΝΑ ΚΑΛΗΜΕΡΑ", 0, true);
  ASSERT_EQ(e.encoding, sms_encoding::gsm7);
  EXPECT_EQ(e.segments[0], bytes({'A', 0x19, 'H', 'N', 'A', ' ', 'K', 'A', 0x14, 'H', 'M', 'E', 'P', 'A'}));
}

TEST(SmsTransliteration, TextThatStillNeedsUcs2GoesUnchanged) {
  const std::string text = "“ok” 😀";
  const auto c = count_segments(text, true);
  EXPECT_EQ(c.encoding, sms_encoding::ucs2);
  EXPECT_EQ(c.units, 7u);
  const auto e = encode_sms(text, 0, true);
  ASSERT_EQ(e.segments.size(), 1u);
  EXPECT_EQ(e.segments[0], bytes({0x20, 0x1C, 0x00, 'o', 0x00, 'k', 0x20, 0x1D, 0x00, ' ', 0xD8, 0x3D, 0xDE, 0x00}));
}

TEST(SmsTransliteration, EllipsisCountsThreeSeptetsAndMaySplitBetweenTheDots) {
  const std::string text = repeat("a", 152) + "…" + repeat("b", 10);
  const auto c = count_segments(text, true);
  EXPECT_EQ(c.units, 165u);
  const auto e = encode_sms(text, 2, true);
  ASSERT_EQ(e.segments.size(), 2u);
  EXPECT_EQ(e.segments[0], udh(2, 2, 1) + repeat("a", 152) + ".");
  EXPECT_EQ(e.segments[1], udh(2, 2, 2) + ".." + repeat("b", 10));
}

// ---- property: count_segments agrees with encode_sms ----

// Decodes a segment payload back to code points, checking it is well formed.
std::u32string decode_payload(const std::string& payload, sms_encoding enc) {
  static const std::map<std::string, char32_t> reverse = [] {
    std::map<std::string, char32_t> r;
    for (const auto& [cp, code] : gsm_table()) r[code] = cp;
    return r;
  }();
  std::u32string out;
  if (enc == sms_encoding::gsm7) {
    for (std::size_t i = 0; i < payload.size(); ++i) {
      std::string code(1, payload[i]);
      if (payload[i] == 0x1B) {
        EXPECT_LT(i + 1, payload.size()) << "escape pair split at a segment end";
        if (i + 1 >= payload.size()) return out;
        code += payload[++i];
      }
      const auto it = reverse.find(code);
      EXPECT_NE(it, reverse.end());
      if (it != reverse.end()) out += it->second;
    }
    return out;
  }
  EXPECT_EQ(payload.size() % 2, 0u);
  for (std::size_t i = 0; i + 1 < payload.size(); i += 2) {
    const char32_t u = (static_cast<unsigned char>(payload[i]) << 8) | static_cast<unsigned char>(payload[i + 1]);
    if (u >= 0xD800 && u <= 0xDBFF) {
      EXPECT_LT(i + 3, payload.size()) << "surrogate pair split at a segment end";
      if (i + 3 >= payload.size()) return out;
      const char32_t lo =
          (static_cast<unsigned char>(payload[i + 2]) << 8) | static_cast<unsigned char>(payload[i + 3]);
      EXPECT_TRUE(lo >= 0xDC00 && lo <= 0xDFFF);
      out += 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
      i += 2;
    } else {
      EXPECT_FALSE(u >= 0xDC00 && u <= 0xDFFF) << "lone low surrogate";
      out += u;
    }
  }
  return out;
}

TEST(SmsSegmentsProperty, CountAgreesWithEncodeOnRandomText) {
  // Pools: ASCII, GSM extension characters, Latin-1 (some GSM, some not), Greek, emoji,
  // and typography that transliteration handles.
  const std::vector<std::u32string> pools = {
      U"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?@$_-\n",
      U"€{}[]~^|\\\f",
      U"£¥èéùìòÇØøÅåÆæßÉÄÖÑÜ§¿äöñüà¡¤ÀÁÈÍÓÚçáíóú",
      U"ΔΦΓΛΩΠΨΣΘΞΑΒΕαβγδ",
      U"😀🎉👍🇮",
      U"“”‘’–—…\u00A0",
  };
  std::mt19937 rng(20240605);
  const int runs = 4000;
  int gsm_seen = 0, ucs2_seen = 0, multi_seen = 0;
  for (int run = 0; run < runs; ++run) {
    // Most texts draw from the GSM-friendly pools so both encodings are exercised.
    const bool only_gsm_pools = run % 2 == 0;
    const int length = std::uniform_int_distribution<int>(0, 420)(rng);
    std::u32string cps;
    for (int i = 0; i < length; ++i) {
      const std::size_t p = only_gsm_pools ? std::uniform_int_distribution<std::size_t>(0, 1)(rng)
                                           : std::uniform_int_distribution<std::size_t>(0, pools.size() - 1)(rng);
      const std::u32string& pool = pools[p];
      cps += pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(rng)];
    }
    std::string text;
    for (char32_t cp : cps) text += utf8(cp);
    const bool transliterate = run % 3 == 0;
    const uint8_t ref = static_cast<uint8_t>(run);

    const segment_count c = count_segments(text, transliterate);
    const auto e = encode_sms(text, ref, transliterate);
    ASSERT_EQ(c.encoding, e.encoding) << run;
    ASSERT_EQ(c.segments, e.segments.size()) << run;
    (c.encoding == sms_encoding::gsm7 ? gsm_seen : ucs2_seen)++;
    if (c.segments > 1) ++multi_seen;

    const bool gsm = c.encoding == sms_encoding::gsm7;
    const std::size_t unit_octets = gsm ? 1 : 2;
    const std::size_t single_limit = gsm ? 160 : 70;
    const std::size_t concat_limit = gsm ? 153 : 67;
    std::size_t units = 0;
    std::u32string decoded;
    for (std::size_t s = 0; s < e.segments.size(); ++s) {
      std::string payload = e.segments[s];
      if (e.segments.size() > 1) {
        ASSERT_EQ(payload.substr(0, 6), udh(ref, static_cast<int>(e.segments.size()), static_cast<int>(s + 1)));
        payload.erase(0, 6);
        ASSERT_LE(payload.size() / unit_octets, concat_limit) << run;
      } else {
        ASSERT_LE(payload.size() / unit_octets, single_limit) << run;
      }
      ASSERT_FALSE(payload.empty()) << run;
      units += payload.size() / unit_octets;
      decoded += decode_payload(payload, c.encoding);
    }
    ASSERT_EQ(units, c.units) << run;
    // Greedy packing: a segment is only closed when the next character does not fit.
    if (e.segments.size() > 1) {
      for (std::size_t s = 0; s + 1 < e.segments.size(); ++s) {
        const std::size_t used = (e.segments[s].size() - 6) / unit_octets;
        ASSERT_GE(used + 2, concat_limit + 1) << run;
      }
    }
    if (!transliterate || !gsm) {
      ASSERT_EQ(decoded, cps) << run;
    }
  }
  // The mix must have exercised both encodings and concatenation.
  EXPECT_GT(gsm_seen, runs / 5);
  EXPECT_GT(ucs2_seen, runs / 5);
  EXPECT_GT(multi_seen, runs / 5);
}

}  // namespace
