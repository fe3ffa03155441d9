// Differential tests for the compiled validity tables (src/sms/number_ranges.cc):
// for every calling code libphonenumber supports, is_valid_number must give
// exactly what libphonenumber gives for IsValidNumberForRegion(number, main
// region) || IsValidNumber(number), the question check_international asks.
// Inputs are libphonenumber's own example numbers, their one-digit mutations,
// random completions of their prefixes and seeded random numbers of every
// length; every input also checks that make_phone_number gives libphonenumber
// back the same national significant number. All buffers are test-owned.
#include <gtest/gtest.h>
#include <phonenumbers/phonenumberutil.h>

#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "../../src/sms/number_ranges.h"

namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;
using postino::sms::is_valid_number;
using postino::sms::make_phone_number;
using postino::sms::match_pattern;
using postino::sms::number_ranges_stats;
using postino::sms::pattern_match;
using postino::sms::validity;

const PhoneNumberUtil& util() { return *PhoneNumberUtil::GetInstance(); }

std::set<int> supported_codes() {
  std::set<int> codes;
  util().GetSupportedCallingCodes(&codes);
  return codes;
}

// Tallies of one differential run.
struct tally {
  long checked = 0, valid = 0, fallback = 0;
};

// Compares one (code, national digits) with libphonenumber; returns false
// (after reporting) on the first disagreement so a broken table does not
// flood the log.
bool agrees(int code, const std::string& national, tally& t) {
  PhoneNumber number = make_phone_number(code, national);
  std::string nsn;
  util().GetNationalSignificantNumber(number, &nsn);
  EXPECT_EQ(nsn, national) << "+" << code << " " << national;
  if (nsn != national) return false;
  std::string main_region;
  util().GetRegionCodeForCountryCode(code, &main_region);
  bool expected =
      util().IsValidNumberForRegion(number, main_region) || util().IsValidNumber(number);
  validity got = is_valid_number(code, national);
  ++t.checked;
  t.valid += expected;
  if (got == validity::unknown) {
    ++t.fallback;
    return true;  // the caller asks libphonenumber: nothing to disagree on
  }
  EXPECT_EQ(got == validity::valid, expected)
      << "+" << code << " national " << national << ": libphonenumber says "
      << (expected ? "valid" : "invalid");
  return (got == validity::valid) == expected;
}

// Every example number libphonenumber has, as (calling code, NSN).
std::set<std::pair<int, std::string>> example_numbers() {
  std::set<std::pair<int, std::string>> out;
  auto add = [&](const PhoneNumber& n) {
    std::string nsn;
    util().GetNationalSignificantNumber(n, &nsn);
    out.emplace(n.country_code(), nsn);
  };
  const PhoneNumberUtil::PhoneNumberType types[] = {PhoneNumberUtil::FIXED_LINE,
                                                    PhoneNumberUtil::MOBILE,
                                                    PhoneNumberUtil::FIXED_LINE_OR_MOBILE,
                                                    PhoneNumberUtil::TOLL_FREE,
                                                    PhoneNumberUtil::PREMIUM_RATE,
                                                    PhoneNumberUtil::SHARED_COST,
                                                    PhoneNumberUtil::VOIP,
                                                    PhoneNumberUtil::PERSONAL_NUMBER,
                                                    PhoneNumberUtil::PAGER,
                                                    PhoneNumberUtil::UAN,
                                                    PhoneNumberUtil::VOICEMAIL};
  std::set<std::string> regions;
  util().GetSupportedRegions(&regions);
  for (const std::string& region : regions) {
    PhoneNumber n;
    for (auto type : types)
      if (util().GetExampleNumberForType(region, type, &n)) add(n);
    if (util().GetInvalidExampleNumber(region, &n)) add(n);
  }
  std::set<int> global;
  util().GetSupportedGlobalNetworkCallingCodes(&global);
  for (int code : global) {
    PhoneNumber n;
    if (util().GetExampleNumberForNonGeoEntity(code, &n)) add(n);
  }
  return out;
}

TEST(SmsNumberRanges, EveryCallingCodeIsCompiledOrFallsBack) {
  const auto& info = number_ranges_stats();
  std::set<int> seen(info.compiled_codes.begin(), info.compiled_codes.end());
  seen.insert(info.fallback_codes.begin(), info.fallback_codes.end());
  EXPECT_EQ(seen, supported_codes());
  std::string fallback;
  for (int code : info.fallback_codes) fallback += " " + std::to_string(code);
  std::printf(
      "number ranges: %zu codes compiled, %zu fall back (%s), %zu regions, %zu DFA states, "
      "%zu bytes, built in %.1f ms\n",
      info.compiled_codes.size(), info.fallback_codes.size(),
      fallback.empty() ? "none" : fallback.c_str() + 1, info.regions, info.dfa_states,
      info.table_bytes, info.build_ms);
  EXPECT_LE(info.fallback_codes.size(), 5u) << "fall back:" << fallback;
  for (int code : info.fallback_codes)
    EXPECT_EQ(is_valid_number(code, "3331234567"), validity::unknown);
}

TEST(SmsNumberRanges, ExampleNumbersAndTheirMutations) {
  auto examples = example_numbers();
  std::set<int> codes_seen;
  tally t;
  long examples_valid = 0;
  for (const auto& [code, nsn] : examples) {
    codes_seen.insert(code);
    long before = t.valid;
    ASSERT_TRUE(agrees(code, nsn, t));
    examples_valid += t.valid - before;
    for (std::size_t i = 0; i < nsn.size(); ++i) {
      for (char d = '0'; d <= '9'; ++d) {  // each digit changed
        if (d == nsn[i]) continue;
        std::string changed = nsn;
        changed[i] = d;
        ASSERT_TRUE(agrees(code, changed, t));
      }
      std::string dropped = nsn;  // one digit dropped
      dropped.erase(i, 1);
      if (!dropped.empty()) {
        ASSERT_TRUE(agrees(code, dropped, t));
      }
    }
    for (std::size_t i = 0; i <= nsn.size(); ++i)  // one digit added
      for (char d = '0'; d <= '9'; ++d)
        ASSERT_TRUE(agrees(code, nsn.substr(0, i) + d + nsn.substr(i), t));
  }
  EXPECT_EQ(codes_seen, supported_codes());  // every code has an example
  EXPECT_GT(examples_valid, 900);
  EXPECT_GT(t.valid, 10000);
  std::printf(
      "examples: %zu numbers (%ld valid); with mutations %ld checked, %ld valid, %ld fell back\n",
      examples.size(), examples_valid, t.checked, t.valid, t.fallback);
}

// Random digits after a prefix of a real number land in ranges that are
// actually used, where pure random digits seldom do.
TEST(SmsNumberRanges, RandomCompletionsOfExamplePrefixes) {
  std::mt19937_64 rng(20240611);
  tally t;
  for (const auto& [code, nsn] : example_numbers()) {
    for (std::size_t keep = 1; keep < nsn.size(); ++keep) {
      for (int i = 0; i < 3; ++i) {
        std::string digits = nsn.substr(0, keep);
        std::size_t length =
            nsn.size() - 1 + rng() % 3;  // the example's length, and one less or more
        while (digits.size() < length) digits.push_back(static_cast<char>('0' + rng() % 10));
        ASSERT_TRUE(agrees(code, digits, t));
      }
    }
  }
  EXPECT_GT(t.valid, 5000);
  std::printf("prefix completions: %ld checked, %ld valid, %ld fell back\n", t.checked, t.valid,
              t.fallback);
}

TEST(SmsNumberRanges, SeededRandomNumbersOfEveryLength) {
  std::mt19937_64 rng(4242);
  tally t;
  std::map<std::size_t, long> valid_by_length;
  for (int code : supported_codes()) {
    for (std::size_t length = 1; length <= 15; ++length) {
      for (int i = 0; i < 20; ++i) {
        std::string digits;
        while (digits.size() < length) digits.push_back(static_cast<char>('0' + rng() % 10));
        long before = t.valid;
        ASSERT_TRUE(agrees(code, digits, t));
        valid_by_length[length] += t.valid - before;
      }
    }
  }
  EXPECT_GT(t.valid, 1000);
  std::printf("random: %ld checked (%zu codes x 15 lengths x 20), %ld valid, %ld fell back\n",
              t.checked, supported_codes().size(), t.valid, t.fallback);
}

TEST(SmsNumberRanges, EdgeInputs) {
  tally t;
  for (int code : supported_codes()) {
    ASSERT_TRUE(agrees(code, "0", t));
    ASSERT_TRUE(agrees(code, "00", t));
    ASSERT_TRUE(agrees(code, "0000000000", t));
    ASSERT_TRUE(agrees(code, "9999999999999999999", t));  // 19 digits: still fits 64 bits
  }
  // The empty NSN: make_phone_number gives national_number 0, which
  // libphonenumber reads back as "0", so compare with libphonenumber directly.
  for (int code : supported_codes()) {
    validity got = is_valid_number(code, "");
    if (got != validity::unknown) {
      EXPECT_EQ(got, validity::invalid) << code;
    }
  }
  // Codes libphonenumber does not know are invalid, as it says; codes out of
  // the table's range and non-digits are left to libphonenumber.
  EXPECT_EQ(is_valid_number(999, "123456789"), validity::invalid);
  EXPECT_EQ(is_valid_number(0, "123456789"), validity::unknown);
  EXPECT_EQ(is_valid_number(1000, "123456789"), validity::unknown);
  EXPECT_EQ(is_valid_number(39, "33312a4567"), validity::unknown);
  // The seeds and well-known forms.
  EXPECT_EQ(is_valid_number(39, "3331234567"), validity::valid);
  EXPECT_EQ(is_valid_number(39, "3401234567"), validity::valid);
  EXPECT_EQ(is_valid_number(39, "0612345678"), validity::valid);
  EXPECT_EQ(is_valid_number(1, "4155552671"), validity::valid);
  EXPECT_EQ(is_valid_number(1, "0005551234"), validity::invalid);
  EXPECT_EQ(is_valid_number(44, "7911123456"), validity::valid);
}

// ---- the pattern engine alone, against std::regex ----

// A random pattern of the subset the metadata uses, kept as a tree so that
// matching inputs can be drawn from it as well as random ones.
struct random_pattern {
  enum class kind { digit, any, klass, group } what = kind::digit;
  char digit = '0';
  std::string klass;  // members as written between the brackets
  std::string allowed;
  std::vector<std::vector<random_pattern>> branches;  // group: alternatives of sequences
  int min = 1, max = 1;

  std::string text() const {
    std::string atom;
    switch (what) {
      case kind::digit:
        atom = std::string(1, digit);
        break;
      case kind::any:
        atom = "\\d";
        break;
      case kind::klass:
        atom = "[" + klass + "]";
        break;
      case kind::group:
        atom = "(?:";
        for (std::size_t b = 0; b < branches.size(); ++b) {
          if (b > 0) atom += '|';
          for (const auto& p : branches[b]) atom += p.text();
        }
        atom += ')';
        break;
    }
    if (min == 0 && max == 1) return atom + "?";
    if (min == 1 && max == 1) return atom;
    if (min == max) return atom + "{" + std::to_string(min) + "}";
    return atom + "{" + std::to_string(min) + "," + std::to_string(max) + "}";
  }

  void sample(std::mt19937_64& rng, std::string& out) const {
    int times = min + static_cast<int>(rng() % static_cast<unsigned>(max - min + 1));
    for (int i = 0; i < times; ++i) {
      switch (what) {
        case kind::digit:
          out += digit;
          break;
        case kind::any:
          out += static_cast<char>('0' + rng() % 10);
          break;
        case kind::klass:
          out += allowed[rng() % allowed.size()];
          break;
        case kind::group:
          for (const auto& p : branches[rng() % branches.size()]) p.sample(rng, out);
          break;
      }
    }
  }
};

random_pattern make_random_pattern(std::mt19937_64& rng, int depth) {
  random_pattern p;
  unsigned pick = rng() % (depth > 0 ? 4 : 3);
  if (pick == 0) {
    p.what = random_pattern::kind::digit;
    p.digit = static_cast<char>('0' + rng() % 10);
  } else if (pick == 1) {
    p.what = random_pattern::kind::any;
  } else if (pick == 2) {
    p.what = random_pattern::kind::klass;
    int items = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < items; ++i) {
      char lo = static_cast<char>('0' + rng() % 10);
      char hi = static_cast<char>(lo + rng() % static_cast<unsigned>('9' - lo + 1));
      p.klass += lo;
      if (hi > lo) p.klass += std::string("-") + hi;
      for (char c = lo; c <= hi; ++c) p.allowed += c;
    }
  } else {
    p.what = random_pattern::kind::group;
    int branches = 1 + static_cast<int>(rng() % 3);
    for (int b = 0; b < branches; ++b) {
      std::vector<random_pattern> seq;
      int length = static_cast<int>(rng() % 4);  // an empty branch is allowed
      for (int i = 0; i < length; ++i) seq.push_back(make_random_pattern(rng, depth - 1));
      p.branches.push_back(std::move(seq));
    }
  }
  switch (rng() % 5) {
    case 0:
      p.min = 0, p.max = 1;
      break;
    case 1:
      p.min = p.max = 1 + static_cast<int>(rng() % 3);
      break;
    case 2:
      p.min = static_cast<int>(rng() % 3);
      p.max = p.min + 1 + static_cast<int>(rng() % 2);
      break;
    default:
      break;
  }
  return p;
}

TEST(SmsNumberRanges, PatternEngineAgreesWithStdRegex) {
  std::mt19937_64 rng(777);
  long checked = 0, matched = 0, prefixed = 0;
  for (int n = 0; n < 200; ++n) {
    std::vector<random_pattern> seq;
    int length = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < length; ++i) seq.push_back(make_random_pattern(rng, 1));
    std::string text;
    for (const auto& p : seq) text += p.text();
    const std::regex re(text);  // ECMAScript: the same language for this subset
    for (int i = 0; i < 24; ++i) {
      std::string digits;
      if (i % 2 == 0) {
        for (const auto& p : seq) p.sample(rng, digits);
        if (i % 4 == 2 && !digits.empty()) digits[rng() % digits.size()] = '0' + rng() % 10;
        if (i % 8 == 4) digits.push_back(static_cast<char>('0' + rng() % 10));
      } else {
        std::size_t size = rng() % 9;
        while (digits.size() < size) digits.push_back(static_cast<char>('0' + rng() % 10));
      }
      bool full = std::regex_match(digits, re);
      bool prefix = std::regex_search(digits, re, std::regex_constants::match_continuous);
      ASSERT_EQ(match_pattern(text, digits, false), full ? pattern_match::yes : pattern_match::no)
          << text << " on '" << digits << "'";
      ASSERT_EQ(match_pattern(text, digits, true), prefix ? pattern_match::yes : pattern_match::no)
          << text << " prefix of '" << digits << "'";
      ++checked;
      matched += full;
      prefixed += prefix;
    }
  }
  EXPECT_GT(matched, 1000);
  std::printf("pattern engine: %ld inputs on 200 random patterns, %ld full matches, %ld prefix\n",
              checked, matched, prefixed);
}

TEST(SmsNumberRanges, PatternEngineEdges) {
  EXPECT_EQ(match_pattern("", "", false), pattern_match::yes);
  EXPECT_EQ(match_pattern("", "1", false), pattern_match::no);
  EXPECT_EQ(match_pattern("", "1", true), pattern_match::yes);  // empty leading_digits
  EXPECT_EQ(match_pattern("1|12", "12", false), pattern_match::yes);
  EXPECT_EQ(match_pattern("12|1", "1", false), pattern_match::yes);
  EXPECT_EQ(match_pattern("8|", "5", true), pattern_match::yes);
  EXPECT_EQ(match_pattern("(12)3", "123", false), pattern_match::yes);  // a capturing group
  EXPECT_EQ(match_pattern("[0-24]\\d{0}", "3", false), pattern_match::no);
  // Outside the subset: the calling code would fall back to libphonenumber.
  for (const char* p : {"1*",   "1+", "1??",  "1{2}+", "1{2,}", "1{3,2}", "^1",    "1$",
                        "[^1]", "a",  "\\w",  "\\D",   ".",     "(?=1)",  "(?i)1", "[]",
                        "(1",   "1)", "[1-]", "{2}",   "[a-z]", "1{99}",  "\\"})
    EXPECT_EQ(match_pattern(p, "1", false), pattern_match::unsupported) << p;
}

}  // namespace
