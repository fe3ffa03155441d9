// The exact reply texts of PROTOCOL.md (clients grep for them), kept in one
// place so the session's code reads as protocol steps. Each constant is one
// reply line without its CRLF. Nothing here owns or touches buffers except
// append_accepted(), which appends to a string the caller owns.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace postino::smtp::reply {

inline constexpr std::string_view ok = "250 2.0.0 OK";
inline constexpr std::string_view closing = "221 2.0.0 SMSC SMTP Server closing connection.";
inline constexpr std::string_view not_implemented = "502 5.5.1 Command not implemented";
inline constexpr std::string_view unrecognized = "500 5.5.2 Command unrecognized";
inline constexpr std::string_view line_too_long = "500 5.5.2 Line too long";
inline constexpr std::string_view auth_required = "530 5.7.0 Authentication required";
inline constexpr std::string_view already_authenticated = "503 5.5.1 Already authenticated";
inline constexpr std::string_view auth_in_transaction = "503 5.5.1 AUTH not allowed during a mail transaction";
inline constexpr std::string_view nested_mail = "503 5.5.1 Nested MAIL command";
inline constexpr std::string_view need_mail_for_rcpt = "503 5.5.1 ERROR: send MAIL first";
inline constexpr std::string_view need_mail_for_data = "503 5.5.1 ERROR: need MAIL command";
inline constexpr std::string_view need_rcpt = "503 5.5.1 ERROR: need RCPT command";
inline constexpr std::string_view start_data = "354 Enter Text Message, end with <CRLF>.<CRLF>";
inline constexpr std::string_view ask_username = "334 VXNlcm5hbWU6";
inline constexpr std::string_view ask_password = "334 UGFzc3dvcmQ6";
inline constexpr std::string_view ask_plain = "334 ";
inline constexpr std::string_view auth_cancelled = "501 5.7.0 Authentication cancelled";
inline constexpr std::string_view cannot_decode = "501 5.5.2 Cannot decode response";
inline constexpr std::string_view unknown_mechanism = "504 5.5.4 Unrecognized authentication type";
inline constexpr std::string_view auth_invalid = "535 5.7.8 Authentication credentials invalid";
inline constexpr std::string_view too_many_auth_failures = "421 4.7.0 Too many authentication failures";
inline constexpr std::string_view auth_temporary = "454 4.7.0 Temporary authentication failure";
inline constexpr std::string_view auth_busy = "454 4.3.0 Authentication service busy, try again later";
inline constexpr std::string_view account_suspended = "550 5.7.1 Account suspended";
inline constexpr std::string_view unsupported_parameter = "555 5.5.4 Unsupported parameter ";
inline constexpr std::string_view size_exceeds_max = "552 5.3.4 Message size exceeds fixed maximum message size";
inline constexpr std::string_view invalid_sender = "553 5.1.7 Invalid sender: ";
inline constexpr std::string_view sender_not_allowed = "553 5.7.1 Sender not allowed for this account";
inline constexpr std::string_view invalid_recipient = "553 5.1.3 Invalid recipient: ";
inline constexpr std::string_view too_many_recipients = "452 4.5.3 Too many recipients";
inline constexpr std::string_view insufficient_credit_rcpt = "452 4.2.2 Insufficient credit";
inline constexpr std::string_view bare_newline = "550 5.5.2 Bare LF or CR not allowed";
inline constexpr std::string_view message_too_big = "552 5.3.4 Message too big";
inline constexpr std::string_view rate_limited = "451 4.7.1 Rate limit exceeded, try again later";
inline constexpr std::string_view local_error = "451 4.3.0 Local error in processing, try again";
inline constexpr std::string_view queue_full = "452 4.3.1 Insufficient system storage";
inline constexpr std::string_view sync_error = "554 5.5.0 SMTP synchronization error";
inline constexpr std::string_view too_many_errors = "421 4.7.0 Too many errors";
inline constexpr std::string_view shutting_down = "421 4.3.2 Service shutting down";
inline constexpr std::string_view tls_ready = "220 2.0.0 Ready to start TLS";

inline constexpr std::string_view syntax_ehlo = "501 5.5.4 Syntax: EHLO hostname";
inline constexpr std::string_view syntax_helo = "501 5.5.4 Syntax: HELO hostname";
inline constexpr std::string_view syntax_auth = "501 5.5.4 Syntax: AUTH mechanism [initial-response]";
inline constexpr std::string_view syntax_mail = "501 5.5.4 Syntax: MAIL FROM:<address>";
inline constexpr std::string_view syntax_rcpt = "501 5.5.4 Syntax: RCPT TO:<address>";
inline constexpr std::string_view syntax_data = "501 5.5.4 Syntax: DATA";
inline constexpr std::string_view syntax_rset = "501 5.5.4 Syntax: RSET";
inline constexpr std::string_view syntax_starttls = "501 5.5.4 Syntax: STARTTLS";
inline constexpr std::string_view bad_size = "501 5.5.4 Bad SIZE parameter";
inline constexpr std::string_view bad_body = "501 5.5.4 Bad BODY parameter";

// Longest reply line, CRLF included, that the accepted-for-delivery line may
// reach: it stays *under* 512 octets (PROTOCOL.md section 1).
inline constexpr std::size_t accepted_line_limit = 511;

// Appends `250 2.0.0 Message accepted for delivery to: <r1>, <r2> and <k> more
// queued as <id>` + CRLF, listing as many recipients as fit under 512 octets.
void append_accepted(std::string& out, const std::vector<std::string>& recipients, std::string_view queue_id);

}  // namespace postino::smtp::reply
