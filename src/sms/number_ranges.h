// Exact phone-number validity without libphonenumber's regex machinery
// (internal to src/sms): the national-number patterns of libphonenumber's
// own compiled-in metadata are compiled once into digit DFAs, and a lookup is
// a table walk over the caller's digits that allocates nothing and takes no
// lock. It answers what check_international asks libphonenumber,
// IsValidNumberForRegion(number, main region) || IsValidNumber(number), and
// says `unknown` for the few calling codes whose patterns it could not
// compile, where the caller asks libphonenumber instead. The tables are built
// on first use, are immutable afterwards and are shared by every thread; the
// digits are a caller-owned view that is only read during the call.
#pragma once

#include <phonenumbers/phonenumber.pb.h>

#include <cstddef>
#include <string_view>
#include <vector>

namespace postino::sms {

enum class validity { valid, invalid, unknown };

// `national_digits` is the national significant number (ASCII digits, as
// libphonenumber's GetNationalSignificantNumber would give it). A calling
// code libphonenumber does not know is `invalid`, as libphonenumber says.
validity is_valid_number(int country_code, std::string_view national_digits);

// The PhoneNumber libphonenumber would parse from "+<code><national>": the
// leading zeros go into italian_leading_zero / number_of_leading_zeros so
// that GetNationalSignificantNumber gives `national_digits` back exactly.
// At most 19 digits, so the national number fits in 64 bits.
i18n::phonenumbers::PhoneNumber make_phone_number(int country_code,
                                                  std::string_view national_digits);

// What the first use built, for tests and start-up logs.
struct number_ranges_info {
  std::vector<int> compiled_codes;  // answered by the tables
  std::vector<int> fallback_codes;  // `unknown`: a pattern outside the subset or too big
  std::size_t regions = 0;          // region (or non-geographic entity) automata
  std::size_t dfa_states = 0;
  std::size_t table_bytes = 0;  // heap held by the tables
  double build_ms = 0;          // wall time of the one-time build
};
const number_ranges_info& number_ranges_stats();

// The pattern engine alone, so tests can hold it against another regex
// engine: whether `pattern` fully matches `digits` (or, with `prefix`,
// whether `digits` starts with a match, as leading_digits is used), or
// `unsupported` when the pattern is outside the subset the tables compile.
// Builds an automaton per call: for tests only.
enum class pattern_match { no, yes, unsupported };
pattern_match match_pattern(std::string_view pattern, std::string_view digits, bool prefix);

}  // namespace postino::sms
