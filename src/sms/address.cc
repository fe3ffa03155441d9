// SMS address rules (PROTOCOL.md section 2): turns a MAIL FROM path into the
// originator that goes out and an RCPT TO path into an E.164 recipient. The
// paths are caller-owned views that are only read; every result is a small
// owned string. Recipient validity is libphonenumber's IsValidNumber (country
// code exists, national number matches a range that country uses, which
// implies an allowed length); it accepts the seed's mobile numbers
// (+393331234567, +393401234567), so the looser IsPossibleNumber is only used
// to tell "wrong length" apart from "not a number in use" in the reply.
//
// Speed: libphonenumber's validity check cost ~35,000 instructions and ~54
// heap allocations per recipient under callgrind, 85% of it regex plumbing
// (RegExpCache hashing multi-KB patterns, UnicodeString conversion, a
// RegexMatcher per call) rather than matching, and Parse would add more; a
// 1,000-recipient message spent 93% of its RCPT phase there. So the
// international forms skip Parse and the regexes: the country code is split
// off with a table of the calling codes libphonenumber knows (they are
// prefix-free, as its ExtractCountryCode assumes), and number_ranges.h
// answers IsValidNumberForRegion(main region) || IsValidNumber from DFAs
// compiled out of libphonenumber's own metadata (exact: a differential test
// compares them with libphonenumber on every calling code). That took
// normalize_recipient from ~36,700 to ~680 instructions and no allocation per
// valid recipient (scripts/guard, rcpt_1000 RCPT phase: 39.5M -> 3.4M
// instructions, 54,022 -> 2,022 allocations); the tables cost ~25 ms and
// ~0.6 MB once. libphonenumber still decides for the calling codes the tables
// leave out, for numbers they find invalid (Parse drops a national prefix
// after the country code; IsPossibleNumber words the refusal) and for the
// default_country fallback.
#include "postino/ascii.h"
#include "postino/sms.h"

#include "number_ranges.h"

#include <phonenumbers/phonemetadata.pb.h>
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <array>
#include <set>
#include <string>

namespace postino::sms {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

constexpr std::size_t max_alphanumeric = 11;
constexpr std::size_t max_numeric_digits = 16;
constexpr std::size_t max_short_numeric_digits = 15;  // above: unknown type of number
constexpr std::size_t min_recipient_chars = 10;
constexpr std::size_t max_recipient_chars = 16;
constexpr std::size_t max_recipient_chars_00 = 17;
constexpr std::size_t max_country_code_digits = 3;

// "00" then a country code (which never starts with 0): the international
// prefix most countries dial, read as '+'.
bool starts_with_00(std::string_view digits) {
  return digits.size() > 2 && digits[0] == '0' && digits[1] == '0' && digits[2] != '0';
}

bool is_letter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// The local part of a path: drops an RFC 5321 source route ("@a,@b:"), the
// quotes of a quoted local part (undoing backslash escapes), the "@host" part
// and the MM4 "/TYPE=PLMN" suffix. A quoted local part may hold '@' and '/'.
std::string local_part(std::string_view path) {
  if (!path.empty() && path.front() == '@') {
    auto colon = path.find(':');
    path = colon == std::string_view::npos ? std::string_view{} : path.substr(colon + 1);
  }
  std::string local;
  if (!path.empty() && path.front() == '"') {
    std::size_t i = 1;
    for (; i < path.size() && path[i] != '"'; ++i) {
      if (path[i] == '\\' && i + 1 < path.size()) ++i;
      local.push_back(path[i]);
    }
    // Anything between the closing quote and '@' is not part of a valid path;
    // keep it so the value fails validation instead of being silently lost.
    std::string_view rest = i < path.size() ? path.substr(i + 1) : std::string_view{};
    auto at = rest.find('@');
    local.append(rest.substr(0, at));
  } else {
    local.assign(path.substr(0, path.find('@')));
  }
  constexpr std::string_view plmn = "/TYPE=PLMN";
  if (local.size() >= plmn.size() &&
      iequals(std::string_view(local).substr(local.size() - plmn.size()), plmn))
    local.resize(local.size() - plmn.size());
  return local;
}

// Calling codes libphonenumber has metadata for, indexed by code (1-999).
class calling_codes {
 public:
  calling_codes() {
    std::set<int> codes;
    PhoneNumberUtil::GetInstance()->GetSupportedCallingCodes(&codes);
    for (int c : codes)
      if (c > 0 && c < static_cast<int>(known_.size())) known_[static_cast<std::size_t>(c)] = true;
  }
  // Length of the country code `digits` starts with, or 0 when none matches.
  std::size_t prefix_length(std::string_view digits) const {
    if (digits.empty() || digits.front() == '0') return 0;
    int code = 0;
    for (std::size_t n = 1; n <= max_country_code_digits && n < digits.size(); ++n) {
      code = code * 10 + (digits[n - 1] - '0');
      if (known_[static_cast<std::size_t>(code)]) return n;
    }
    return 0;
  }

 private:
  std::array<bool, 1000> known_{};
};

const calling_codes& known_calling_codes() {
  static const calling_codes codes;
  return codes;
}

// is_valid_number's question asked of libphonenumber itself, for the calling
// codes the compiled tables leave out.
validity libphonenumber_validity(int country_code, std::string_view national) {
  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  PhoneNumber number = make_phone_number(country_code, national);
  // Most numbers belong to the calling code's main region; checking it first
  // halves the regex work of IsValidNumber, which also finds the region.
  std::string main_region;
  util.GetRegionCodeForCountryCode(country_code, &main_region);
  return util.IsValidNumberForRegion(number, main_region) || util.IsValidNumber(number)
             ? validity::valid
             : validity::invalid;
}

// An international reading of `digits` (country code first): the E.164
// form when valid, else empty with `why` set.
std::string check_international(std::string_view digits, std::string& why) {
  std::size_t cc_len = known_calling_codes().prefix_length(digits);
  if (cc_len == 0) {
    why = "unknown country code";
    return {};
  }
  std::string_view national = digits.substr(cc_len);
  int country_code = 0;
  for (char c : digits.substr(0, cc_len)) country_code = country_code * 10 + (c - '0');
  // The question is libphonenumber's IsValidNumberForRegion(main region) ||
  // IsValidNumber, answered from tables compiled out of its own metadata;
  // `unknown` only for a calling code they could not compile.
  validity answer = is_valid_number(country_code, national);
  if (answer == validity::unknown) answer = libphonenumber_validity(country_code, national);
  if (answer == validity::valid) {
    std::string e164;
    e164.reserve(digits.size() + 1);
    e164.push_back('+');
    e164.append(digits);
    return e164;
  }
  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  // Parse also drops a national prefix written after the country code
  // ("+44 07911...", "+7 8 4731..."); agree with it on such numbers.
  PhoneNumber parsed;
  std::string with_plus;  // not "+" + string: GCC 12 warns falsely (-Wrestrict) on that
  with_plus.reserve(digits.size() + 1);
  with_plus.push_back('+');
  with_plus.append(digits);
  if (util.Parse(with_plus, "ZZ", &parsed) == PhoneNumberUtil::NO_PARSING_ERROR &&
      util.IsValidNumber(parsed)) {
    std::string e164;
    util.Format(parsed, PhoneNumberUtil::E164, &e164);
    return e164;
  }
  std::string code(digits.substr(0, cc_len));
  bool possible = util.IsPossibleNumber(make_phone_number(country_code, national));
  why = possible ? "not a valid number for country code " + code
                 : "invalid length for country code " + code;
  return {};
}

// A number without '+' or "00" read as a national number of `region`.
bool national_e164(std::string_view digits, std::string_view region, std::string& e164) {
  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  std::string region_code(region);
  for (char& c : region_code)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  int expected_code = util.GetCountryCodeForRegion(region_code);
  if (expected_code == 0) return false;  // not a region libphonenumber knows
  PhoneNumber number;
  if (util.Parse(std::string(digits), region_code, &number) != PhoneNumberUtil::NO_PARSING_ERROR)
    return false;
  if (number.country_code() != expected_code || !util.IsValidNumber(number)) return false;
  util.Format(number, PhoneNumberUtil::E164, &e164);
  return true;
}

originator_result invalid_originator(std::string why) {
  originator_result r;
  r.why = std::move(why);
  return r;
}

// Whether `value` (as it goes out) is on the account's list. Numeric entries
// match with or without a leading '+' on either side; alphanumeric ones are
// compared exactly, since the handset shows them as written.
bool is_allowed(const originator_result& r, const std::vector<std::string>& allowed) {
  // The digits after a '+' or "00" international prefix, else all of them.
  auto strip_prefix = [](std::string_view s) {
    if (!s.empty() && s.front() == '+') return s.substr(1);
    return all_digits(s) && starts_with_00(s) ? s.substr(2) : s;
  };
  for (const std::string& entry : allowed) {
    if (entry == r.value) return true;
    if (r.kind != originator_kind::alphanumeric &&
        strip_prefix(entry) == strip_prefix(r.value))
      return true;
  }
  return false;
}

}  // namespace

originator_result classify_originator(std::string_view value) {
  if (value.empty()) return invalid_originator("empty originator");
  std::string_view digits = value.front() == '+' ? value.substr(1) : value;
  if (all_digits(digits)) {
    // "0039..." is the same international number as "+39..." (as for a
    // recipient), and goes out in the '+' form so the SMSC gets it as one.
    const bool international_00 = digits.size() == value.size() && starts_with_00(digits);
    if (international_00) digits.remove_prefix(2);
    if (digits.size() > max_numeric_digits)
      return invalid_originator("numeric originator over 16 digits");
    originator_result r;
    r.ok = true;
    if (international_00) r.value.push_back('+');
    r.value.append(international_00 ? digits : value);
    r.kind = digits.size() > max_short_numeric_digits ? originator_kind::numeric_long
                                                      : originator_kind::numeric;
    return r;
  }
  bool letter = false;
  for (char c : value) {
    if (is_letter(c)) {
      letter = true;
    } else if (!is_digit(c) && c != ' ') {
      return invalid_originator("not a valid originator");
    }
  }
  if (!letter) return invalid_originator("not a valid originator");
  if (value.size() > max_alphanumeric)
    return invalid_originator("alphanumeric originator over 11 characters");
  originator_result r;
  r.ok = true;
  r.value.assign(value);
  r.kind = originator_kind::alphanumeric;
  return r;
}

originator_check resolve_originator(std::string_view path, const account_settings& account) {
  originator_check check;
  std::string local = path.empty() ? std::string{} : local_part(path);
  if (!local.empty()) check.result = classify_originator(local);
  if (!check.result.ok) {
    if (account.default_originator.empty()) {
      check.result = invalid_originator(local.empty() ? "empty sender and no default originator"
                                                      : "not a valid originator");
      return check;
    }
    check.result = classify_originator(account.default_originator);
    if (!check.result.ok) {
      check.result.why = "default originator is not valid";
      return check;
    }
  }
  if (!account.allowed_originators.empty() &&
      !is_allowed(check.result, account.allowed_originators))
    check.not_allowed = true;
  return check;
}

std::string prepare_recipient_validation() {
  known_calling_codes();
  const number_ranges_info& info = number_ranges_stats();
  if (info.compiled_codes.empty())
    return "recipient validation: libphonenumber's metadata could not be compiled; every recipient is checked "
           "by libphonenumber itself (exact, slower)";
  std::string line = "recipient validation: " + std::to_string(info.compiled_codes.size()) +
                     " calling codes compiled from libphonenumber's metadata (" +
                     std::to_string(info.table_bytes / 1024) + " KiB, " +
                     std::to_string(static_cast<int>(info.build_ms)) + " ms)";
  if (!info.fallback_codes.empty())
    line += ", " + std::to_string(info.fallback_codes.size()) + " left to libphonenumber";
  return line;
}

recipient_result normalize_recipient(std::string_view path, std::string_view default_country) {
  recipient_result r;
  std::string given = local_part(path);
  std::string_view number = given;
  bool international = false;
  std::size_t max_chars = max_recipient_chars;
  if (!number.empty() && number.front() == '+') {
    number.remove_prefix(1);
    international = true;
  } else if (number.size() >= 2 && number[0] == '0' && number[1] == '0') {
    number.remove_prefix(2);
    international = true;
    max_chars = max_recipient_chars_00;
  }
  if (!all_digits(number)) {
    r.why = "not a number";
    return r;
  }
  if (given.size() < min_recipient_chars || given.size() > max_chars) {
    r.why = max_chars == max_recipient_chars ? "must be 10 to 16 characters"
                                             : "must be 10 to 17 characters in the 00 form";
    return r;
  }
  std::string why;
  r.e164 = check_international(number, why);
  if (!r.e164.empty()) {
    r.ok = true;
    return r;
  }
  if (!international && !default_country.empty() &&
      national_e164(number, default_country, r.e164)) {
    r.ok = true;
    return r;
  }
  // A number without '+' or "00" was read with a country code first; when
  // that fails it is most often a national number, and "invalid length for
  // country code 33" (for 333...) would send the sender the wrong way.
  if (!international)
    r.refusal = default_country.empty() ? recipient_refusal::needs_country_code
                                        : recipient_refusal::not_national_either;
  r.why = std::move(why);
  return r;
}

}  // namespace postino::sms
