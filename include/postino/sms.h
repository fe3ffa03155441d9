// SMS address rules (PROTOCOL.md section 2): who a message comes from and which
// handset it goes to. Pure functions over caller-owned string views; results
// are small owned strings. Recipient validity comes from libphonenumber's
// metadata (country code exists, length allowed for that country).
#pragma once

#include <string>
#include <string_view>

#include "postino/smtp.h"

namespace postino::sms {

struct originator_result {
  bool ok = false;
  std::string value;           // the originator as it goes out
  smtp::originator_kind kind = smtp::originator_kind::numeric;
  std::string why;             // when !ok: a short reason for the 553 reply
};

// `path` is the MAIL FROM path with angle brackets already removed (may be
// empty, may carry a quoted local part, an @host part or /TYPE=PLMN).
// Applies the account's default originator when the local part is not a valid
// originator or the path is empty, and the allowed-originators list (then
// `not_allowed` is set and the reply is 553 5.7.1).
struct originator_check {
  originator_result result;
  bool not_allowed = false;
};
originator_check resolve_originator(std::string_view path, const account_settings& account);

// Validates a bare originator value (no brackets, no host part).
originator_result classify_originator(std::string_view value);

struct recipient_result {
  bool ok = false;
  std::string e164;            // "+<digits>" when ok
  std::string why;             // when !ok: reason for 553 5.1.3
};

// `path` is the RCPT TO path with angle brackets removed: "+39...", "0039...",
// "39...", "00393331234567@smtp.example.com", "+39.../TYPE=PLMN@host".
// `default_country` (ISO alpha-2, may be empty) lets a number valid only as a
// national number of that country be read that way.
recipient_result normalize_recipient(std::string_view path, std::string_view default_country);

}  // namespace postino::sms
