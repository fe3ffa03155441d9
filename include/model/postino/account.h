// What a session and a shard know about an authenticated account: a small
// value snapshot copied out of the account store (src/credit). Owned by value
// by whoever holds it; refreshed when the store changes it. The price table is
// shared, immutable, behind a shared_ptr: sessions copy the snapshot, and a
// global table copied into every parked session would cost kilobytes each.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postino {

using account_id = std::uint64_t;
using credit_units = std::int64_t;

// The largest balance an account may hold (10^15 units). Top-ups that would
// pass it are refused; a balance found above it at start-up (data written
// before the limit existed) is cut to it and the repair logged. Far below
// the int64 range, so sums of a few thousand balances and prices cannot
// overflow, and every credit sum is still computed with overflow checks.
inline constexpr credit_units max_balance = 1'000'000'000'000'000;

enum class account_status : std::uint8_t { active = 0, suspended = 1 };

// What an SMS originator is (PROTOCOL.md section 2): text, a number of at
// most 15 digits, or a longer number (sent with an unknown type of number).
enum class originator_kind : std::uint8_t { alphanumeric, numeric, numeric_long };

enum class bare_newline_policy : std::uint8_t { normalize = 0, reject = 1 };

// How a DATA body is read (PROTOCOL.md section 3): detected per message
// (`automatic`), or forced to raw text or to e-mail (MIME).
enum class content_mode : std::uint8_t { automatic = 0, raw = 1, email = 2 };

// One destination-prefix price: `prefix` is the leading digits of the E.164
// number without '+' ("39", "393"); `price` is per SMS segment.
struct price_rule {
  std::string prefix;
  credit_units price = 0;
  bool global = false;  // from the global table, not the account's own
};

// In precedence order, as the account store builds it: the account's own rules
// (longest prefix first), then the global ones (longest first). The first rule
// whose prefix matches gives the price, so an account rule wins whenever one
// of the account's prefixes matches, and the global table fills the rest.
using price_table = std::vector<price_rule>;

inline constexpr std::uint64_t default_max_mms_bytes = 1048576;  // 1 MiB of raw MIME body

struct account_settings {
  account_id id = 0;
  std::string username;
  account_status status = account_status::active;
  std::string default_originator;                // empty: none configured
  std::vector<std::string> allowed_originators;  // empty: any valid originator
  std::uint32_t max_recipients = 1000;
  std::string default_country;                   // ISO 3166 alpha-2, empty: none
  credit_units unit_price = 1;                   // per SMS segment, when no prefix rule matches
  // Message content (issue 4).
  content_mode content = content_mode::automatic;
  std::uint32_t max_segments = 1;                // 1..255; above: 554 5.3.4
  bool subject_prefix = false;                   // e-mail mode: "<subject>\n<text>"
  bool strip_signature = true;                   // e-mail mode: cut the "-- " line and after
  bool strip_quoted_reply = true;                // e-mail mode: cut a reply's quoted original
  bool subject_as_text = true;                   // e-mail mode: an empty body sends the Subject
  bool transliterate = false;                    // map curly quotes etc. to GSM when that avoids UCS-2
  bool mms_enabled = false;
  std::uint64_t max_mms_bytes = default_max_mms_bytes;
  credit_units mms_price = 3;                    // per MMS recipient
  // Issue 5: MAIL commands per second, account-wide (burst the same); 0 = unlimited.
  std::uint32_t max_messages_per_second = 0;
  std::shared_ptr<const price_table> prices;     // may be null: no rules
};

inline const char* status_name(account_status s) {
  return s == account_status::active ? "ACTIVE" : "SUSPENDED";
}

inline const char* content_mode_name(content_mode m) {
  return m == content_mode::raw ? "raw" : m == content_mode::email ? "email" : "auto";
}

inline std::optional<content_mode> parse_content_mode(std::string_view name) {
  if (name == "auto") return content_mode::automatic;
  if (name == "raw") return content_mode::raw;
  if (name == "email") return content_mode::email;
  return std::nullopt;
}

}  // namespace postino
