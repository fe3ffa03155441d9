// Unit tests for the SMS address rules (src/sms/address.cc, PROTOCOL.md
// section 2): every sender and recipient form of the protocol and the seeds,
// edge lengths, bad input, the account's default originator, allowed list and
// default country. All strings are test-owned literals.
#include <gtest/gtest.h>
#include <phonenumbers/phonenumberutil.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "postino/sms.h"

namespace {

using postino::account_settings;
using postino::originator_kind;
using postino::sms::classify_originator;
using postino::sms::normalize_recipient;
using postino::sms::recipient_refusal;
using postino::sms::resolve_originator;

account_settings plain_account() { return account_settings{}; }

// ---- originator ----

TEST(SmsOriginator, SeedNumericKeepsPlus) {
  auto c = resolve_originator("+393401234567", plain_account());
  ASSERT_TRUE(c.result.ok) << c.result.why;
  EXPECT_EQ(c.result.value, "+393401234567");
  EXPECT_EQ(c.result.kind, originator_kind::numeric);
  EXPECT_FALSE(c.not_allowed);
}

TEST(SmsOriginator, NumericWithoutPlus) {
  auto c = resolve_originator("393401234567", plain_account());
  ASSERT_TRUE(c.result.ok);
  EXPECT_EQ(c.result.value, "393401234567");
  EXPECT_EQ(c.result.kind, originator_kind::numeric);
}

TEST(SmsOriginator, NumericLengths) {
  auto fifteen = classify_originator("+123456789012345");
  ASSERT_TRUE(fifteen.ok);
  EXPECT_EQ(fifteen.kind, originator_kind::numeric);
  auto sixteen = classify_originator("1234567890123456");
  ASSERT_TRUE(sixteen.ok);
  EXPECT_EQ(sixteen.kind, originator_kind::numeric_long);
  auto sixteen_plus = classify_originator("+1234567890123456");
  ASSERT_TRUE(sixteen_plus.ok);
  EXPECT_EQ(sixteen_plus.value, "+1234567890123456");
  EXPECT_EQ(sixteen_plus.kind, originator_kind::numeric_long);
  EXPECT_FALSE(classify_originator("12345678901234567").ok);
  EXPECT_FALSE(classify_originator("+12345678901234567").ok);
  EXPECT_FALSE(classify_originator("+").ok);
  EXPECT_FALSE(classify_originator("++39340").ok);
  EXPECT_FALSE(classify_originator("").ok);
}

// Issue 13 item 7: "00" is the international prefix, as for a recipient; the
// originator goes out in the '+' form (it went out as "0039..." before).
TEST(SmsOriginator, ZeroZeroFormGoesOutWithPlus) {
  auto bare = classify_originator("00393401234567");
  ASSERT_TRUE(bare.ok) << bare.why;
  EXPECT_EQ(bare.value, "+393401234567");
  EXPECT_EQ(bare.kind, originator_kind::numeric);
  auto host = resolve_originator("00393401234567@smtp.example.com", plain_account());
  ASSERT_TRUE(host.result.ok) << host.result.why;
  EXPECT_EQ(host.result.value, "+393401234567");
  auto mm4 = resolve_originator("00393401234567/TYPE=PLMN@mms.example.net", plain_account());
  ASSERT_TRUE(mm4.result.ok) << mm4.result.why;
  EXPECT_EQ(mm4.result.value, "+393401234567");
  // The 16-digit bound counts the digits after "00", as after '+'.
  auto sixteen = classify_originator("001234567890123456");
  ASSERT_TRUE(sixteen.ok) << sixteen.why;
  EXPECT_EQ(sixteen.value, "+1234567890123456");
  EXPECT_EQ(sixteen.kind, originator_kind::numeric_long);
  EXPECT_FALSE(classify_originator("0012345678901234567").ok);
  // No country code starts with 0: these stay as given.
  EXPECT_EQ(classify_originator("000393401234").value, "000393401234");
  EXPECT_EQ(classify_originator("00").value, "00");
  EXPECT_EQ(classify_originator("0039").value, "+39");
  EXPECT_EQ(classify_originator("0612345678").value, "0612345678");
  // A "00" inside an alphanumeric or '+' originator is not a prefix.
  EXPECT_EQ(classify_originator("00ACME").value, "00ACME");
  EXPECT_EQ(classify_originator("+0039340").value, "+0039340");
}

TEST(SmsOriginator, Alphanumeric) {
  auto shop = classify_originator("ACME SHOP");
  ASSERT_TRUE(shop.ok);
  EXPECT_EQ(shop.kind, originator_kind::alphanumeric);
  EXPECT_EQ(shop.value, "ACME SHOP");
  auto eleven = classify_originator("Abcdefghij1");
  ASSERT_TRUE(eleven.ok);
  EXPECT_EQ(eleven.kind, originator_kind::alphanumeric);
  EXPECT_FALSE(classify_originator("Abcdefghij12").ok);  // 12 characters
  EXPECT_FALSE(classify_originator("ACME-SHOP").ok);     // not letter/digit/space
  EXPECT_FALSE(classify_originator("caf\xc3\xa9").ok);   // non-ASCII
  EXPECT_FALSE(classify_originator("123 456").ok);       // no letter, not numeric
  EXPECT_FALSE(classify_originator("   ").ok);
  auto digits_and_letter = classify_originator("3T");
  ASSERT_TRUE(digits_and_letter.ok);
  EXPECT_EQ(digits_and_letter.kind, originator_kind::alphanumeric);
}

TEST(SmsOriginator, QuotedLocalPart) {
  auto c = resolve_originator("\"ACME SHOP\"", plain_account());
  ASSERT_TRUE(c.result.ok) << c.result.why;
  EXPECT_EQ(c.result.value, "ACME SHOP");
  EXPECT_EQ(c.result.kind, originator_kind::alphanumeric);
  auto with_host = resolve_originator("\"ACME SHOP\"@example.com", plain_account());
  ASSERT_TRUE(with_host.result.ok);
  EXPECT_EQ(with_host.result.value, "ACME SHOP");
}

TEST(SmsOriginator, HostAndPlmnSuffix) {
  auto mm4 = resolve_originator("+393401234567/TYPE=PLMN@mms.example.net", plain_account());
  ASSERT_TRUE(mm4.result.ok) << mm4.result.why;
  EXPECT_EQ(mm4.result.value, "+393401234567");
  auto host = resolve_originator("393401234567@mms.example.net", plain_account());
  ASSERT_TRUE(host.result.ok);
  EXPECT_EQ(host.result.value, "393401234567");
  auto lower = resolve_originator("+393401234567/type=plmn", plain_account());
  ASSERT_TRUE(lower.result.ok);
  EXPECT_EQ(lower.result.value, "+393401234567");
}

TEST(SmsOriginator, EmailAddressFallsBackToDefault) {
  account_settings account;
  account.default_originator = "MYSHOP";
  auto c = resolve_originator("abatevincenzo83@libero.it", account);  // 15-char local part
  ASSERT_TRUE(c.result.ok);
  EXPECT_EQ(c.result.value, "MYSHOP");
  EXPECT_EQ(c.result.kind, originator_kind::alphanumeric);
}

TEST(SmsOriginator, EmptyPathUsesDefault) {
  account_settings account;
  account.default_originator = "+393401234567";
  auto c = resolve_originator("", account);
  ASSERT_TRUE(c.result.ok);
  EXPECT_EQ(c.result.value, "+393401234567");
  EXPECT_EQ(c.result.kind, originator_kind::numeric);
}

TEST(SmsOriginator, NoDefaultGivesReason) {
  auto empty = resolve_originator("", plain_account());
  EXPECT_FALSE(empty.result.ok);
  EXPECT_EQ(empty.result.why, "empty sender and no default originator");
  auto bad = resolve_originator("john.smith@example.com", plain_account());
  EXPECT_FALSE(bad.result.ok);
  EXPECT_EQ(bad.result.why, "not a valid originator");
}

TEST(SmsOriginator, InvalidDefaultIsReported) {
  account_settings account;
  account.default_originator = "TOO LONG SENDER";
  auto c = resolve_originator("", account);
  EXPECT_FALSE(c.result.ok);
  EXPECT_FALSE(c.result.why.empty());
}

TEST(SmsOriginator, AllowedList) {
  account_settings account;
  account.allowed_originators = {"ACME", "393401234567"};
  EXPECT_FALSE(resolve_originator("ACME", account).not_allowed);
  EXPECT_TRUE(resolve_originator("acme", account).not_allowed);  // handsets show case
  EXPECT_FALSE(resolve_originator("+393401234567", account).not_allowed);  // '+' optional
  EXPECT_TRUE(resolve_originator("+393409999999", account).not_allowed);
  EXPECT_FALSE(resolve_originator("00393401234567", account).not_allowed);  // the 00 form too
  account.allowed_originators = {"00393401234567"};
  EXPECT_FALSE(resolve_originator("+393401234567", account).not_allowed);   // and in the list
  EXPECT_FALSE(resolve_originator("00393401234567", account).not_allowed);
  EXPECT_FALSE(resolve_originator("393401234567", account).not_allowed);
  account.allowed_originators = {"ACME", "393401234567"};
  account.default_originator = "OTHER";
  auto fallback = resolve_originator("", account);
  ASSERT_TRUE(fallback.result.ok);
  EXPECT_TRUE(fallback.not_allowed);  // the default is checked like any other
}

// ---- recipient ----

void expect_recipient(std::string_view path, std::string_view e164, std::string_view country = "") {
  auto r = normalize_recipient(path, country);
  EXPECT_TRUE(r.ok) << path << ": " << r.why;
  EXPECT_EQ(r.e164, e164) << path;
}

void expect_refused(std::string_view path, std::string_view why, std::string_view country = "",
                    recipient_refusal refusal = recipient_refusal::invalid) {
  auto r = normalize_recipient(path, country);
  EXPECT_FALSE(r.ok) << path << " -> " << r.e164;
  EXPECT_EQ(r.why, why) << path;
  EXPECT_EQ(r.refusal, refusal) << path;
}

// A number without '+' or "00": its refusal says that it needs its country
// code (the reply's text is src/smtp/replies.h's).
void expect_needs_country_code(std::string_view path, std::string_view why) {
  expect_refused(path, why, "", recipient_refusal::needs_country_code);
}

TEST(SmsRecipient, SeedAndProtocolForms) {
  expect_recipient("+393331234567", "+393331234567");
  expect_recipient("00393331234567", "+393331234567");
  expect_recipient("393331234567", "+393331234567");
  expect_recipient("00393331234567@smtp.example.com", "+393331234567");
  expect_recipient("+393331234567/TYPE=PLMN@mms.example.net", "+393331234567");
  expect_recipient("+393401234567", "+393401234567");
  expect_recipient("\"+393331234567\"@smtp.example.com", "+393331234567");
}

TEST(SmsRecipient, OtherCountries) {
  expect_recipient("+14155552671", "+14155552671");      // US, shared code 1
  expect_recipient("+447911123456", "+447911123456");    // UK mobile
  expect_recipient("+4915112345678", "+4915112345678");  // DE mobile, 13 digits
  expect_recipient("+33612345678", "+33612345678");      // FR mobile
  expect_recipient("008613812345678", "+8613812345678"); // CN, 00 form
  expect_recipient("+390612345678", "+390612345678");    // IT landline, leading zero kept
  // A national prefix written after the country code is dropped, as
  // libphonenumber's Parse does.
  expect_recipient("+4407911123456", "+447911123456");
}

TEST(SmsRecipient, EdgeLengths) {
  // 10 characters as given: the lower bound.
  expect_recipient("+390612345", "+390612345");
  expect_refused("+39061234", "must be 10 to 16 characters");
  // 16 characters with '+', 17 with 00: the upper bounds (then the country decides).
  expect_refused("+393331234567890", "invalid length for country code 39");
  expect_refused("+3933312345678901", "must be 10 to 16 characters");
  expect_refused("003933312345678901", "must be 10 to 17 characters in the 00 form");
  expect_refused("393331234567890123", "must be 10 to 16 characters");
  expect_needs_country_code("393331234567890", "invalid length for country code 39");
}

TEST(SmsRecipient, BadInput) {
  expect_refused("", "not a number");
  expect_refused("+", "not a number");
  expect_refused("00", "not a number");
  expect_refused("john@example.com", "not a number");
  expect_refused("+39 333 1234567", "not a number");
  expect_refused("+39-333-1234567", "not a number");
  expect_refused("+39333123456a", "not a number");
  expect_refused("++393331234567", "not a number");
  expect_refused("+0393331234567", "unknown country code");
  expect_refused("+999123456789", "unknown country code");
  expect_refused("+3912", "must be 10 to 16 characters");
  expect_refused("+39123456789012", "not a valid number for country code 39");
}

TEST(SmsRecipient, NotInUseForCountry) {
  // NANP area codes never start with 0 or 1: right length, not a valid number.
  expect_refused("+10005551234", "not a valid number for country code 1");
}

TEST(SmsRecipient, DefaultCountryReadsNationalNumbers) {
  expect_recipient("3331234567", "+393331234567", "IT");
  expect_recipient("3331234567", "+393331234567", "it");
  expect_recipient("0612345678", "+390612345678", "IT");
  expect_recipient("07911123456", "+447911123456", "GB");
  // International reading wins when valid.
  expect_recipient("393331234567", "+393331234567", "IT");
  expect_recipient("393331234567", "+393331234567", "GB");
  // Without the default the national form is not accepted, and the refusal
  // says that the number needs its country code (issue 13 item 5: the reply
  // said only "invalid length for country code 33").
  expect_needs_country_code("3331234567", "invalid length for country code 33");
  expect_needs_country_code("0612345678", "unknown country code");
  expect_needs_country_code("07911123456", "unknown country code");
  // '+' and 00 forms never use the default country, nor say it.
  expect_refused("+3331234567", "invalid length for country code 33", "IT");
  expect_refused("003331234567", "invalid length for country code 33", "IT");
  expect_refused("+3331234567", "invalid length for country code 33");
  // With a default country that does not take it either (or an unknown one).
  expect_refused("3331234567", "invalid length for country code 33", "XX",
                 recipient_refusal::not_national_either);
  expect_refused("2221234567", "invalid length for country code 222", "IT",
                 recipient_refusal::not_national_either);
  // Not a number or the wrong length: those reasons stand on their own.
  expect_refused("333123456", "must be 10 to 16 characters");
  expect_refused("333 1234567", "not a number");
}

// The fast path (own country-code split, no Parse) must agree with
// libphonenumber's Parse + IsValidNumber on every input.
TEST(SmsRecipient, AgreesWithLibphonenumberParse) {
  const auto& util = *i18n::phonenumbers::PhoneNumberUtil::GetInstance();
  std::mt19937_64 rng(12345);
  const char* prefixes[] = {"1", "7", "20", "33", "39", "390", "3906", "393", "44", "447", "49",
                            "491", "55", "61", "81", "86", "91", "234", "351", "352", "380",
                            "420", "44800", "6", "8", "9", "0", "21", "999", "3900"};
  int checked = 0, valid = 0;
  for (const char* prefix : prefixes) {
    for (int i = 0; i < 400; ++i) {
      std::string digits = prefix;
      std::size_t total = 9 + rng() % 7;  // 9..15 digits
      while (digits.size() < total) digits.push_back(static_cast<char>('0' + rng() % 10));
      std::string plus = "+" + digits;
      i18n::phonenumbers::PhoneNumber n;
      bool expected = util.Parse(plus, "ZZ", &n) ==
                          i18n::phonenumbers::PhoneNumberUtil::NO_PARSING_ERROR &&
                      util.IsValidNumber(n);
      std::string formatted;
      if (expected) util.Format(n, i18n::phonenumbers::PhoneNumberUtil::E164, &formatted);
      auto r = normalize_recipient(plus, "");
      ASSERT_EQ(r.ok, expected) << plus << " " << r.why;
      if (expected) {
        EXPECT_EQ(r.e164, formatted);
        ++valid;
      }
      ++checked;
    }
  }
  EXPECT_GT(valid, 100);
  std::printf("agreement: %d numbers, %d valid\n", checked, valid);
}

// Reports the cost per call; asserts nothing about time.
TEST(SmsRecipient, CostPerCall) {
  constexpr int calls = 20000;
  int ok = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) ok += normalize_recipient("+393331234567", "").ok;
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) ok += normalize_recipient("+14155552671", "").ok;
  auto t2 = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) ok += normalize_recipient("3331234567", "IT").ok;
  auto t3 = std::chrono::steady_clock::now();
  EXPECT_EQ(ok, 3 * calls);
  auto ns = [](auto d) { return std::chrono::duration<double, std::nano>(d).count() / calls; };
  std::printf("normalize_recipient ns/call: +39 %.0f, +1 %.0f, national IT %.0f\n", ns(t1 - t0),
              ns(t2 - t1), ns(t3 - t2));
}

}  // namespace
