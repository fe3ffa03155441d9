// Every reply the SMTP session sends (PROTOCOL.md; clients grep for the
// texts), as typed values: a `reply` is one line with its code, its enhanced
// status code and its text, checked when the program is compiled; replies
// that carry values (a hostname, a sender, numbers) are append_* functions
// that write the whole line. Nothing else in the program spells a reply: the
// session, the content step's refusals (src/mime returns a refusal kind) and
// the gateway all go through here. The constants are static data; the
// append_* functions append to a string the caller owns and allocate nothing
// beyond that string's growth.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "postino/account.h"
#include "postino/mime.h"

namespace postino::smtp {

// PROTOCOL.md section 5: what the client sent could not be understood or is
// not offered. 503 (out of sequence), AUTH failures (their own limit) and
// policy refusals do not count.
constexpr bool counts_toward_error_limit(std::uint16_t code) {
  return code == 500 || code == 501 || code == 502 || code == 504 || code == 555;
}

// One reply line: "<code> <class.subject.detail> <text>", or "<code> <text>"
// for the replies RFC 3463 gives no enhanced code (220 greeting, 334, 354).
// Made from the line as the client sees it, without CRLF; the constructor
// runs at compile time, so a malformed constant does not build. A line whose
// text ends in a slot (": ", "parameter ") is completed by the session with
// one value (see session_machine::send).
class reply {
 public:
  consteval reply(std::string_view line) : line_(line) {  // NOLINT: implicit from a literal on purpose
    if (line.size() < 4 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]) || line[3] != ' ')
      throw "a reply line starts with a three-digit code and a space";
    code_ = static_cast<std::uint16_t>((line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'));
    enhanced_size_ = static_cast<std::uint8_t>(enhanced_code_size(line.substr(4)));
    if (enhanced_size_ != 0 && line[4] != line[0]) throw "the enhanced code's class is not the reply's";
  }

  constexpr std::uint16_t code() const { return code_; }
  constexpr std::string_view enhanced() const { return line_.substr(4, enhanced_size_); }
  constexpr std::string_view text() const { return line_.substr(enhanced_size_ == 0 ? 4 : 5 + enhanced_size_); }
  // The whole line, without CRLF: what the session appends.
  constexpr std::string_view line() const { return line_; }
  constexpr bool counts_as_error() const { return counts_toward_error_limit(code_); }

 private:
  static constexpr bool digit(char c) { return c >= '0' && c <= '9'; }
  // "d.d{1,3}.d{1,3}" followed by a space or the end: its length, else 0.
  static constexpr std::size_t enhanced_code_size(std::string_view s) {
    std::size_t i = 0;
    if (s.empty() || (s[0] != '2' && s[0] != '4' && s[0] != '5')) return 0;
    ++i;
    for (int part = 0; part < 2; ++part) {
      if (i >= s.size() || s[i] != '.') return 0;
      const std::size_t start = ++i;
      while (i < s.size() && digit(s[i]) && i - start < 3) ++i;
      if (i == start) return 0;
    }
    return (i == s.size() || s[i] == ' ') ? i : 0;
  }

  std::string_view line_;
  std::uint16_t code_ = 0;
  std::uint8_t enhanced_size_ = 0;
};

namespace replies {

inline constexpr reply ok{"250 2.0.0 OK"};
inline constexpr reply closing{"221 2.0.0 SMSC SMTP Server closing connection."};
inline constexpr reply not_implemented{"502 5.5.1 Command not implemented"};
inline constexpr reply unrecognized{"500 5.5.2 Command unrecognized"};
inline constexpr reply line_too_long{"500 5.5.2 Line too long"};
inline constexpr reply auth_required{"530 5.7.0 Authentication required"};
inline constexpr reply helo_first{"503 5.5.1 ERROR: send EHLO or HELO first"};
inline constexpr reply ehlo_first{"503 5.5.1 ERROR: send EHLO first"};
inline constexpr reply already_authenticated{"503 5.5.1 Already authenticated"};
inline constexpr reply auth_in_transaction{"503 5.5.1 AUTH not allowed during a mail transaction"};
inline constexpr reply nested_mail{"503 5.5.1 Nested MAIL command"};
inline constexpr reply need_mail_for_rcpt{"503 5.5.1 ERROR: send MAIL first"};
inline constexpr reply need_mail_for_data{"503 5.5.1 ERROR: need MAIL command"};
inline constexpr reply need_rcpt{"503 5.5.1 ERROR: need RCPT command"};
inline constexpr reply data_after_bdat{"503 5.5.1 ERROR: DATA not allowed after BDAT"};
inline constexpr reply rcpt_after_bdat{"503 5.5.1 ERROR: RCPT not allowed after BDAT"};
inline constexpr reply start_data{"354 Enter Text Message, end with <CRLF>.<CRLF>"};
inline constexpr reply ask_username{"334 VXNlcm5hbWU6"};
inline constexpr reply ask_password{"334 UGFzc3dvcmQ6"};
inline constexpr reply ask_plain{"334 "};
inline constexpr reply auth_cancelled{"501 5.7.0 Authentication cancelled"};
inline constexpr reply cannot_decode{"501 5.5.2 Cannot decode response"};
inline constexpr reply unknown_mechanism{"504 5.5.4 Unrecognized authentication type"};
inline constexpr reply auth_invalid{"535 5.7.8 Authentication credentials invalid"};
inline constexpr reply too_many_auth_failures{"421 4.7.0 Too many authentication failures"};
inline constexpr reply auth_temporary{"454 4.7.0 Temporary authentication failure"};
inline constexpr reply auth_busy{"454 4.3.0 Authentication service busy, try again later"};
inline constexpr reply account_suspended{"550 5.7.1 Account suspended"};
// A relay listener's MAIL (and the RCPTs after it) that no account relays
// for (PROTOCOL.md 5a).
inline constexpr reply relay_denied{"554 5.7.1 Relay access denied"};
inline constexpr reply unsupported_parameter{"555 5.5.4 Unsupported parameter "};  // + the name
inline constexpr reply duplicate_parameter{"501 5.5.4 Duplicate parameter "};  // + the name
inline constexpr reply size_exceeds_max{"552 5.3.4 Message size exceeds fixed maximum message size"};
inline constexpr reply invalid_sender{"553 5.1.7 Invalid sender: "};                 // + why
inline constexpr reply sender_not_allowed{"553 5.7.1 Sender not allowed for this account"};
inline constexpr reply invalid_recipient{"553 5.1.3 Invalid recipient: "};           // + why
// A number without '+' or "00" that is not valid read with a country code
// first: most often a national number (issue 13), so the reply says what to
// add instead of only how the international reading failed.
inline constexpr reply recipient_needs_country_code{
    "553 5.1.3 Invalid recipient: the number needs its country code (+<country code><number>) or the "
    "account's default_country; read as international: "};  // + why
inline constexpr reply recipient_not_national_either{
    "553 5.1.3 Invalid recipient: not valid with its country code nor as a national number of the "
    "account's default_country; read as international: "};  // + why
inline constexpr reply too_many_recipients{"452 4.5.3 Too many recipients"};
inline constexpr reply insufficient_credit_rcpt{"452 4.2.2 Insufficient credit"};
inline constexpr reply bare_newline{"550 5.5.2 Bare LF or CR not allowed"};
inline constexpr reply message_too_big{"552 5.3.4 Message too big"};
inline constexpr reply rate_limited{"451 4.7.1 Rate limit exceeded, try again later"};
inline constexpr reply local_error{"451 4.3.0 Local error in processing, try again"};
inline constexpr reply queue_full{"452 4.3.1 Insufficient system storage"};
inline constexpr reply sync_error{"554 5.5.0 SMTP synchronization error"};
inline constexpr reply too_many_errors{"421 4.7.0 Too many errors"};
inline constexpr reply too_many_connections{"421 4.7.0 Too many connections"};
inline constexpr reply insufficient_storage{"452 4.3.1 Insufficient system storage"};
inline constexpr reply shutting_down{"421 4.3.2 Service shutting down"};
inline constexpr reply tls_ready{"220 2.0.0 Ready to start TLS"};
inline constexpr reply tls_already_active{"503 5.5.1 TLS already active"};
inline constexpr reply encryption_required{"538 5.7.11 Encryption required for requested authentication mechanism"};

inline constexpr reply syntax_ehlo{"501 5.5.4 Syntax: EHLO hostname"};
inline constexpr reply syntax_helo{"501 5.5.4 Syntax: HELO hostname"};
inline constexpr reply syntax_auth{"501 5.5.4 Syntax: AUTH mechanism [initial-response]"};
inline constexpr reply syntax_mail{"501 5.5.4 Syntax: MAIL FROM:<address>"};
inline constexpr reply syntax_rcpt{"501 5.5.4 Syntax: RCPT TO:<address>"};
inline constexpr reply syntax_data{"501 5.5.4 Syntax: DATA"};
inline constexpr reply syntax_bdat{"501 5.5.4 Syntax: BDAT <size> [LAST]"};
inline constexpr reply syntax_rset{"501 5.5.4 Syntax: RSET"};
inline constexpr reply syntax_starttls{"501 5.5.4 Syntax: STARTTLS"};
inline constexpr reply bad_size{"501 5.5.4 Bad SIZE parameter"};
inline constexpr reply bad_body{"501 5.5.4 Bad BODY parameter"};

// The content step's refusals (mime::refusal_kind), worded by append_content_refusal.
inline constexpr reply empty_message{"554 5.6.0 Empty message"};
inline constexpr reply mms_not_enabled{"554 5.6.1 MMS not enabled for this account"};

// ------------------------------------------------------------ lines with values

// `220 <hostname> ESMTP Service ready. Connection <n> with [<ip>]`
void append_greeting(std::string& out, std::string_view hostname, std::uint64_t connection, std::string_view peer_ip);

// What EHLO offers besides PIPELINING, ENHANCEDSTATUSCODES, SIZE and 8BITMIME.
struct ehlo_offer {
  std::uint64_t max_message_size = 0;
  bool starttls = false;
  bool auth = false;  // AUTH LOGIN PLAIN and its old Outlook form
};
// The multi-line 250 reply to EHLO: `250-<hostname> Requested okay,
// completed`, one line per extension, the last one `250 `.
void append_ehlo(std::string& out, std::string_view hostname, const ehlo_offer& offer);
// `250 <hostname> Requested okay, completed`
void append_helo(std::string& out, std::string_view hostname);
// "250 2.0.0 <size> octets received": a BDAT chunk that was not the LAST.
void append_chunk_received(std::string& out, std::uint64_t size);

// A multi-line reply: `<code>-<line>` for all but the last, `<code> <line>`.
void append_multiline(std::string& out, std::uint16_t code, std::span<const std::string_view> lines);

// `235 2.7.0 Authentication successful. CREDIT: <n> ID ACCOUNT: <id> STATUS: <status>`
void append_auth_ok(std::string& out, credit_units available, account_id account, account_status status);
// `250 2.1.0 <sender> ...Sender Ok` and `250 2.1.5 <e164> ...Recipient Ok`,
// once per message and per recipient: inline, so that the literal parts are
// copied as constants of known size.
inline void append_sender_ok(std::string& out, std::string_view sender) {
  out += "250 2.1.0 ";
  out += sender;
  out += " ...Sender Ok\r\n";
}
inline void append_recipient_ok(std::string& out, std::string_view e164) {
  out += "250 2.1.5 ";
  out += e164;
  out += " ...Recipient Ok\r\n";
}
// `554 5.7.1 Insufficient credit: need <n>, available <m>`
void append_insufficient_credit(std::string& out, credit_units need, credit_units available);
// `421 4.4.2 <hostname> Timeout, closing connection`
void append_timeout(std::string& out, std::string_view hostname);

// The content step's refusal in SMTP words (PROTOCOL.md sections 3 and 5):
//   too_many_parts     554 5.6.0 Too many MIME parts (max <limit>)
//   too_deep           554 5.6.0 MIME nesting too deep (max <limit>)
//   mms_not_enabled    554 5.6.1 MMS not enabled for this account
//   mms_too_big        552 5.3.4 Message too big
//   empty              554 5.6.0 Empty message
//   too_many_segments  554 5.3.4 Message too long for SMS (<count> segments, max <limit>)
//   not_run            451 4.3.0 Local error in processing, try again
// None of them counts toward the error limit.
void append_content_refusal(std::string& out, const mime::content_refusal& refusal);

// Longest reply line, CRLF included, that the accepted-for-delivery line may
// reach: it stays *under* 512 octets (PROTOCOL.md section 1).
inline constexpr std::size_t accepted_line_limit = 511;

// Appends `250 2.0.0 Message accepted for delivery to: <r1>, <r2> and <k> more
// queued as <id>` + CRLF, listing as many recipients as fit under 512 octets.
void append_accepted(std::string& out, const std::vector<std::string>& recipients, std::string_view queue_id);

}  // namespace replies
}  // namespace postino::smtp
