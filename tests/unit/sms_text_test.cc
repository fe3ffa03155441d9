// Unit tests for the raw-mode text clean-up (src/sms/text.cc, PROTOCOL.md
// section 3 "Raw mode"): line breaks, trailing and interior blank lines, the
// empty outcome, strict UTF-8 validation (overlongs, surrogates, range,
// truncation, checked exhaustively for short sequences against a canonical
// re-encoding) and the Windows-1252 fallback, cross-checked byte by byte
// against glibc's iconv. All buffers are test-owned.
#include <gtest/gtest.h>
#include <iconv.h>

#include <cstdint>
#include <random>
#include <string>

#include "postino/sms.h"
#include "utf8_util.h"

namespace {

using postino::sms::clean_raw_text;
using postino::sms::is_valid_utf8;
using postino::sms::tidy_text_lines;
using postino::sms::windows1252_to_utf8;

// ---- line clean-up ----

TEST(SmsRawText, CrlfBecomesLf) {
  const auto r = clean_raw_text("Hello\r\nWorld");
  EXPECT_EQ(r.utf8, "Hello\nWorld");
  EXPECT_FALSE(r.empty);
  EXPECT_FALSE(r.was_windows1252);
}

TEST(SmsRawText, TrailingLineBreaksGo) {
  EXPECT_EQ(clean_raw_text("Hello\r\n").utf8, "Hello");
  EXPECT_EQ(clean_raw_text("Hello\r\n\r\n\r\n").utf8, "Hello");
}

TEST(SmsRawText, TrailingBlankLinesWithSpacesAndTabsGo) {
  EXPECT_EQ(clean_raw_text("Hello\r\n  \r\n\t\r\n \t \r\n").utf8, "Hello");
  EXPECT_EQ(clean_raw_text("Hello\r\n   ").utf8, "Hello");
}

TEST(SmsRawText, TrailingSpacesOfTheLastLineWithTextStay) {
  EXPECT_EQ(clean_raw_text("Hello  \r\n\r\n").utf8, "Hello  ");
}

TEST(SmsRawText, InteriorAndLeadingBlankLinesStay) {
  EXPECT_EQ(clean_raw_text("A\r\n\r\n\r\nB\r\n").utf8, "A\n\n\nB");
  EXPECT_EQ(clean_raw_text("A\r\n  \r\nB").utf8, "A\n  \nB");
  EXPECT_EQ(clean_raw_text("\r\n\r\nA").utf8, "\n\nA");
  EXPECT_EQ(clean_raw_text("  indented\r\n").utf8, "  indented");
}

TEST(SmsRawText, BareLfAndBareCrAreLineBreaks) {
  EXPECT_EQ(clean_raw_text("A\nB\rC").utf8, "A\nB\nC");
  EXPECT_EQ(clean_raw_text("A\r\rB").utf8, "A\n\nB");
  EXPECT_EQ(clean_raw_text("A\n\rB").utf8, "A\n\nB");  // LF then CR: two breaks
  EXPECT_EQ(clean_raw_text("A\r\r\n\nB\n\r\n").utf8, "A\n\n\nB");
}

TEST(SmsRawText, EmptyIsItsOwnOutcome) {
  for (const char* body : {"", "\r\n", "\r\n\r\n", "   ", " \t\r\n\t \r\n", "\n\r"}) {
    const auto r = clean_raw_text(body);
    EXPECT_TRUE(r.empty) << '"' << body << '"';
    EXPECT_EQ(r.utf8, "");
  }
  EXPECT_FALSE(clean_raw_text(".").empty);
  EXPECT_TRUE(clean_raw_text("\xEF\xBB\xBF\r\n").empty);  // only a BOM
}

TEST(SmsRawText, FirstLineThatLooksLikeAHeaderStaysText) {
  const auto r = clean_raw_text("Nota: domani l'ufficio è chiuso.\r\nSubject: nessuno\r\n\r\nGrazie\r\n");
  EXPECT_EQ(r.utf8, "Nota: domani l'ufficio è chiuso.\nSubject: nessuno\n\nGrazie");
  EXPECT_FALSE(r.was_windows1252);
}

TEST(SmsRawText, ValidUtf8StaysAsIs) {
  const std::string text = "Caffè 5€ — ok 😀 Ωμέγα";
  const auto r = clean_raw_text(text);
  EXPECT_EQ(r.utf8, text);
  EXPECT_FALSE(r.was_windows1252);
}

TEST(SmsRawText, LeadingBomIsDropped) {
  EXPECT_EQ(clean_raw_text("\xEF\xBB\xBFHi\r\n").utf8, "Hi");
  EXPECT_EQ(clean_raw_text("Hi \xEF\xBB\xBF").utf8, "Hi \xEF\xBB\xBF");  // only a leading one
}

TEST(SmsRawText, DotsAndOtherTextAreUntouched) {
  // The session has already unstuffed; a leading dot here is the sender's.
  EXPECT_EQ(clean_raw_text(".hidden\r\n..two").utf8, ".hidden\n..two");
}

TEST(SmsTidyLines, WorksOnDecodedText) {
  EXPECT_EQ(tidy_text_lines("Ciao\r\n\r\n-- \r\nMario\r\n\r\n"), "Ciao\n\n-- \nMario");
  EXPECT_EQ(tidy_text_lines(""), "");
  EXPECT_EQ(tidy_text_lines("\t"), "");
}

// ---- Windows-1252 fallback ----

TEST(SmsWindows1252, EuroAndAccentedLetters) {
  auto r = clean_raw_text("Prezzo: 5\x80");
  EXPECT_TRUE(r.was_windows1252);
  EXPECT_EQ(r.utf8, "Prezzo: 5€");
  r = clean_raw_text("caf\xe9\r\n");
  EXPECT_TRUE(r.was_windows1252);
  EXPECT_EQ(r.utf8, "café");
  r = clean_raw_text("\x93quoted\x94 \x96 dash \x85");
  EXPECT_EQ(r.utf8, "“quoted” – dash …");
}

TEST(SmsWindows1252, TheWholeBodyIsReadAsWindows1252) {
  // Valid UTF-8 for "é" next to a stray 0x80: the body is not UTF-8, so both are 1252.
  const auto r = clean_raw_text("caf\xC3\xA9 \x80");
  EXPECT_TRUE(r.was_windows1252);
  EXPECT_EQ(r.utf8, "cafÃ© €");
}

TEST(SmsWindows1252, UndefinedBytesBecomeReplacementCharacters) {
  EXPECT_EQ(windows1252_to_utf8("\x81\x8D\x8F\x90\x9D"), "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(clean_raw_text("a\x81z").utf8, "a\uFFFDz");
}

TEST(SmsWindows1252, EveryByteMatchesGlibcIconv) {
  iconv_t cd = iconv_open("UTF-8", "WINDOWS-1252");
  ASSERT_NE(cd, reinterpret_cast<iconv_t>(-1));
  for (int b = 0; b < 256; ++b) {
    char in[1] = {static_cast<char>(b)};
    char out[8];
    char* inp = in;
    char* outp = out;
    std::size_t inleft = 1, outleft = sizeof out;
    iconv(cd, nullptr, nullptr, nullptr, nullptr);
    const std::size_t rc = iconv(cd, &inp, &inleft, &outp, &outleft);
    const std::string ours = windows1252_to_utf8(std::string(1, static_cast<char>(b)));
    if (rc == static_cast<std::size_t>(-1)) {
      // glibc leaves exactly the five undefined positions unmapped.
      EXPECT_TRUE(b == 0x81 || b == 0x8D || b == 0x8F || b == 0x90 || b == 0x9D) << b;
      EXPECT_EQ(ours, "\uFFFD") << b;
    } else {
      EXPECT_EQ(ours, std::string(out, outp)) << b;
    }
  }
  iconv_close(cd);
}

TEST(SmsWindows1252, ResultIsAlwaysValidUtf8) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_TRUE(is_valid_utf8(windows1252_to_utf8(all)));
}

// ---- strict UTF-8 ----

TEST(SmsUtf8, BoundaryCodePointsAreValid) {
  for (const char* s : {"\x7F", "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80",
                        "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(is_valid_utf8(s)) << s;
  }
}

TEST(SmsUtf8, OverlongsSurrogatesAndOutOfRangeAreInvalid) {
  for (const char* s : {"\xC0\xAF", "\xC1\xBF", "\xE0\x80\xAF", "\xE0\x9F\xBF", "\xF0\x80\x80\xAF",
                        "\xF0\x8F\xBF\xBF", "\xED\xA0\x80", "\xED\xBF\xBF", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80",
                        "\xF8\x88\x80\x80\x80", "\xFF", "\xFE"}) {
    EXPECT_FALSE(is_valid_utf8(s)) << s;
    EXPECT_TRUE(clean_raw_text(s).was_windows1252);
  }
}

TEST(SmsUtf8, TruncatedAndStrayContinuationBytesAreInvalid) {
  for (const char* s : {"\x80", "a\xBF", "\xC3", "\xE2\x82", "\xF0\x9F\x98", "\xE2\x82\xACx\xE2", "\xC3\x28",
                        "\xE2\x28\xAC", "\xF0\x9F\x28\x80"}) {
    EXPECT_FALSE(is_valid_utf8(s)) << s;
  }
}

TEST(SmsUtf8, FastAsciiPathDoesNotHideALateBadByte) {
  for (std::size_t at = 0; at < 40; ++at) {
    std::string s(40, 'a');
    s[at] = '\x80';
    EXPECT_FALSE(is_valid_utf8(s)) << at;
    s[at] = 'b';
    EXPECT_TRUE(is_valid_utf8(s)) << at;
  }
}

// Reference rule: a byte string is valid when it is the concatenation of the
// canonical (shortest) encodings of scalar values. For one sequence: decode the
// bits as the lead byte announces, re-encode canonically, compare.
bool reference_valid_sequence(const std::string& s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  std::size_t len;
  char32_t cp;
  if (b(0) < 0x80) {
    len = 1, cp = b(0);
  } else if ((b(0) & 0xE0) == 0xC0) {
    len = 2, cp = b(0) & 0x1F;
  } else if ((b(0) & 0xF0) == 0xE0) {
    len = 3, cp = b(0) & 0x0F;
  } else if ((b(0) & 0xF8) == 0xF0) {
    len = 4, cp = b(0) & 0x07;
  } else {
    return false;
  }
  if (s.size() != len) return false;
  for (std::size_t i = 1; i < len; ++i) {
    if ((b(i) & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (b(i) & 0x3F);
  }
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  return utf8(cp) == s;
}

TEST(SmsUtf8, ExhaustiveOneTwoAndThreeByteSequences) {
  std::string s;
  for (int a = 0; a < 256; ++a) {
    s.assign(1, static_cast<char>(a));
    ASSERT_EQ(is_valid_utf8(s), reference_valid_sequence(s)) << a;
    for (int b = 0; b < 256; ++b) {
      s.assign({static_cast<char>(a), static_cast<char>(b)});
      // Two bytes may also be two valid one-byte sequences.
      const bool two_singles = a < 0x80 && b < 0x80;
      ASSERT_EQ(is_valid_utf8(s), two_singles || reference_valid_sequence(s)) << a << ' ' << b;
    }
  }
  for (int a = 0xE0; a <= 0xEF; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (int c = 0; c < 256; ++c) {
        s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        ASSERT_EQ(is_valid_utf8(s), reference_valid_sequence(s)) << a << ' ' << b << ' ' << c;
      }
    }
  }
}

TEST(SmsUtf8, FourByteSequencesSampled) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> lead(0xF0, 0xF7), tail(0x70, 0xCF);  // around the continuation range
  std::string s;
  for (int i = 0; i < 200000; ++i) {
    s.assign({static_cast<char>(lead(rng)), static_cast<char>(tail(rng)), static_cast<char>(tail(rng)),
              static_cast<char>(tail(rng))});
    ASSERT_EQ(is_valid_utf8(s), reference_valid_sequence(s)) << i;
  }
}

TEST(SmsUtf8, EveryScalarValueIsValidAndEverySurrogateIsNot) {
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    ASSERT_EQ(is_valid_utf8(utf8(cp)), !surrogate) << std::hex << static_cast<std::uint32_t>(cp);
  }
}

}  // namespace
