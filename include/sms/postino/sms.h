// SMS address rules (PROTOCOL.md section 2): who a message comes from and which
// handset it goes to. Pure functions over caller-owned string views; results
// are small owned strings. Recipient validity comes from libphonenumber's
// metadata (country code exists, length allowed for that country).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "postino/account.h"
#include "postino/message.h"

namespace postino {

// Pricing (src/sms/pricing.cc): every rule of what a message costs lives
// there. The price of one SMS segment to `e164` ("+<digits>"): the first
// matching rule of account.prices, else unit_price.
credit_units segment_price(const account_settings& account, std::string_view e164) noexcept;

// What a whole message costs: for an SMS, segments x the segment price of each
// recipient; for an MMS, mms_price per recipient. Saturates at the largest
// credit_units value (which no balance covers) instead of overflowing.
credit_units message_price(const account_settings& account, const std::vector<std::string>& recipients,
                           std::uint32_t segments, bool mms) noexcept;

// The per-recipient segment prices a message keeps (message::unit_prices):
// empty when every recipient pays the same (no prefix rules, an MMS, or rules
// that all matched alike), so the usual message allocates nothing for them.
void fill_unit_prices(const account_settings& account, const std::vector<std::string>& recipients, bool mms,
                      std::vector<credit_units>& out);

}  // namespace postino

namespace postino::sms {

struct originator_result {
  bool ok = false;
  std::string value;           // the originator as it goes out
  originator_kind kind = originator_kind::numeric;
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

// Validates a bare originator value (no brackets, no host part). A numeric
// one in the "00" form goes out in the '+' form ("0039..." -> "+39...").
originator_result classify_originator(std::string_view value);

// Which 553 5.1.3 text a refused recipient gets (the texts are the SMTP
// part's, src/smtp/replies.h); `why` completes each of them.
enum class recipient_refusal : std::uint8_t {
  invalid,              // "Invalid recipient: <why>"
  needs_country_code,   // no '+' or "00", not valid with a country code first, no default_country
  not_national_either,  // the same, and not a national number of the account's default_country
};

struct recipient_result {
  bool ok = false;
  std::string e164;            // "+<digits>" when ok
  recipient_refusal refusal = recipient_refusal::invalid;
  std::string why;             // when !ok: the short reason ("invalid length for country code 33")
};

// `path` is the RCPT TO path with angle brackets removed: "+39...", "0039...",
// "39...", "00393331234567@smtp.example.com", "+39.../TYPE=PLMN@host".
// `default_country` (ISO alpha-2, may be empty) lets a number valid only as a
// national number of that country be read that way.
recipient_result normalize_recipient(std::string_view path, std::string_view default_country);

// Builds what normalize_recipient needs once (libphonenumber's instance and
// the validity tables compiled from its metadata, ~25 ms) now, at start-up,
// rather than in the first RCPT of some shard. Returns a line for the log.
std::string prepare_recipient_validation();

// ---- Message text (PROTOCOL.md section 3): raw-mode clean-up, GSM 03.38 /
// UCS-2 encoding and segmentation. Pure functions over caller-owned views;
// results are owned. Implemented in src/sms/text.cc and src/sms/gsm.cc.

// Raw mode: `body` is the DATA body as the session stores it (unstuffed, CRLF
// line ends, no terminator). Strictly valid UTF-8 (no overlongs, surrogates or
// code points above U+10FFFF) is taken as is, minus a leading BOM; anything
// else is read as Windows-1252 as a whole (0x81 0x8D 0x8F 0x90 0x9D, undefined
// there, become U+FFFD). Then tidy_text_lines. `empty` means nothing is left
// (the reply is 554 5.6.0 Empty message).
struct text_result {
  std::string utf8;
  bool empty = true;
  bool was_windows1252 = false;
};
text_result clean_raw_text(std::string_view body);

// Line clean-up shared by raw and e-mail mode, for text already in UTF-8:
// CRLF, bare CR and bare LF each become one LF; trailing line breaks and
// trailing blank lines (empty or only spaces and tabs) are removed; interior
// and leading ones, and trailing spaces of the last non-blank line, are kept.
std::string tidy_text_lines(std::string_view utf8);

bool is_valid_utf8(std::string_view bytes) noexcept;
std::string windows1252_to_utf8(std::string_view bytes);

enum class sms_encoding : std::uint8_t { gsm7, ucs2 };

// SMPP data_coding for the short_message encode_sms produces.
constexpr std::uint8_t smpp_data_coding(sms_encoding e) { return e == sms_encoding::gsm7 ? 0x00 : 0x08; }

inline constexpr std::uint32_t gsm7_single_septets = 160;
inline constexpr std::uint32_t gsm7_concat_septets = 153;   // after the 6-octet UDH
inline constexpr std::uint32_t ucs2_single_units = 70;
inline constexpr std::uint32_t ucs2_concat_units = 67;
inline constexpr std::uint32_t max_concat_segments = max_message_segments;  // 8-bit total in the UDH

// GSM 03.38 default alphabet plus extension table (form feed ^ { } \ [ ~ ] | €
// cost two septets) when every character fits, else UTF-16 code units (two
// for a character outside the BMP). `units` is septets or code units, without
// UDH. An empty text has 0 segments. Invalid UTF-8 counts as U+FFFD per bad
// byte. No allocation: this is on the pricing path.
// `transliterate` (an account setting, off by default) first maps characters
// GSM lacks to near GSM ones (curly quotes, dashes, ellipsis, odd spaces,
// accented letters, Greek capitals that look Latin) but only when that makes
// the whole text GSM; otherwise the original text goes as UCS-2.
struct segment_count {
  sms_encoding encoding = sms_encoding::gsm7;
  std::uint32_t segments = 0;
  std::uint32_t units = 0;
};
segment_count count_segments(std::string_view utf8, bool transliterate = false) noexcept;

// The text as `transliterate` in count_segments would send it: every character
// GSM lacks replaced by its near GSM form, when that makes the whole text GSM;
// otherwise the text unchanged. The content step stores this, so the journal
// holds exactly the text that goes out and delivery needs no account setting.
std::string transliterate_to_gsm(std::string_view utf8);

// Each element is one segment's exact SMPP short_message: for gsm7 unpacked
// septets (one per octet, data_coding 0), for ucs2 UTF-16 big-endian; when
// there is more than one segment each starts with the UDH
// 05 00 03 <concat_ref> <total> <seq from 1> (then esm_class needs 0x40).
// A boundary never splits an escape pair or a surrogate pair. `segments` has
// count_segments(...).segments elements, or none when that is above
// max_concat_segments (or the text is empty).
struct encoded_sms {
  sms_encoding encoding = sms_encoding::gsm7;
  std::vector<std::string> segments;
};
encoded_sms encode_sms(std::string_view utf8, std::uint8_t concat_ref, bool transliterate = false);

// The reverse direction, for what SMSCs send us and for SMSCs that want
// Latin-1: `septets` is unpacked GSM 03.38 (one septet per octet, ESC 0x1B
// before an extension character, no UDH). An unknown escape reads as a space
// (TS 23.038 6.2.1.1's rule for receivers).
std::string gsm7_to_utf8(std::string_view septets);
// The same text as ISO 8859-1 octets; false when a character has no Latin-1
// form (Greek capitals, the euro sign), and `out` is then unspecified.
bool gsm7_to_latin1(std::string_view septets, std::string& out);
std::string latin1_to_utf8(std::string_view latin1);
// UTF-16 big-endian (UCS-2 with surrogate pairs) to UTF-8; an unpaired
// surrogate or a trailing odd octet becomes U+FFFD.
std::string utf16be_to_utf8(std::string_view units);

}  // namespace postino::sms
