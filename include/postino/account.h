// What a session and a shard know about an authenticated account: a small
// value snapshot copied out of the account store (src/credit). Owned by value
// by whoever holds it; refreshed when the store changes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace postino {

using account_id = std::uint64_t;
using credit_units = std::int64_t;

enum class account_status : std::uint8_t { active = 0, suspended = 1 };

enum class bare_newline_policy : std::uint8_t { normalize = 0, reject = 1 };

struct account_settings {
  account_id id = 0;
  std::string username;
  account_status status = account_status::active;
  std::string default_originator;                // empty: none configured
  std::vector<std::string> allowed_originators;  // empty: any valid originator
  std::uint32_t max_recipients = 1000;
  std::string default_country;                   // ISO 3166 alpha-2, empty: none
  credit_units unit_price = 1;                   // per SMS segment
};

inline const char* status_name(account_status s) {
  return s == account_status::active ? "ACTIVE" : "SUSPENDED";
}

}  // namespace postino
