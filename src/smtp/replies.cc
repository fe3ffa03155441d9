// The reply lines that carry values (replies.h): each appends one whole line,
// CRLF included, to the session's output string (owned by the session) and
// formats numbers on the stack, so a reply costs no allocation beyond that
// string's growth. Reads the caller's views only during the call.
#include "replies.h"

#include <array>
#include <charconv>
#include <initializer_list>

namespace postino::smtp::replies {
namespace {

// Decimal digits of an integer in a stack buffer.
class decimal {
 public:
  template <class Integer>
  explicit decimal(Integer v) {
    size_ = static_cast<std::size_t>(std::to_chars(buf_.begin(), buf_.end(), v).ptr - buf_.begin());
  }
  std::string_view view() const { return {buf_.data(), size_}; }

 private:
  std::array<char, 24> buf_{};
  std::size_t size_ = 0;
};

void append_line(std::string& out, std::initializer_list<std::string_view> pieces) {
  for (std::string_view p : pieces) out += p;
  out += "\r\n";
}

}  // namespace

void append_greeting(std::string& out, std::string_view hostname, std::uint64_t connection, std::string_view peer_ip) {
  const decimal n(connection);
  append_line(out, {"220 ", hostname, " ESMTP Service ready. Connection ", n.view(), " with [", peer_ip, "]"});
}

void append_multiline(std::string& out, std::uint16_t code, std::span<const std::string_view> lines) {
  const decimal c(code);
  for (std::size_t i = 0; i < lines.size(); ++i) append_line(out, {c.view(), i + 1 == lines.size() ? " " : "-", lines[i]});
}

void append_ehlo(std::string& out, std::string_view hostname, const ehlo_offer& offer) {
  std::array<char, 32> size_line{'S', 'I', 'Z', 'E', ' '};
  const char* size_end = std::to_chars(size_line.data() + 5, size_line.data() + size_line.size(), offer.max_message_size).ptr;
  std::array<std::string_view, 8> lines{"PIPELINING", "ENHANCEDSTATUSCODES",
                                        {size_line.data(), static_cast<std::size_t>(size_end - size_line.data())},
                                        "8BITMIME", "CHUNKING"};
  std::size_t n = 5;
  if (offer.starttls) lines[n++] = "STARTTLS";
  if (offer.auth) {
    lines[n++] = "AUTH LOGIN PLAIN";
    lines[n++] = "AUTH=LOGIN PLAIN";
  }
  append_line(out, {"250-", hostname, " Requested okay, completed"});  // extensions follow
  append_multiline(out, 250, {lines.data(), n});
}

void append_helo(std::string& out, std::string_view hostname) {
  append_line(out, {"250 ", hostname, " Requested okay, completed"});
}

void append_chunk_received(std::string& out, std::uint64_t size) {
  const decimal n(size);
  append_line(out, {"250 2.0.0 ", n.view(), " octets received"});
}

void append_auth_ok(std::string& out, credit_units available, account_id account, account_status status) {
  const decimal credit(available);
  const decimal id(account);
  append_line(out, {"235 2.7.0 Authentication successful. CREDIT: ", credit.view(), " ID ACCOUNT: ", id.view(),
                    " STATUS: ", status_name(status)});
}

void append_insufficient_credit(std::string& out, credit_units need, credit_units available) {
  const decimal n(need);
  const decimal a(available);
  append_line(out, {"554 5.7.1 Insufficient credit: need ", n.view(), ", available ", a.view()});
}

void append_timeout(std::string& out, std::string_view hostname) {
  append_line(out, {"421 4.4.2 ", hostname, " Timeout, closing connection"});
}

void append_content_refusal(std::string& out, const mime::content_refusal& refusal) {
  const decimal count(refusal.count);
  const decimal limit(refusal.limit);
  switch (refusal.kind) {
    case mime::refusal_kind::too_many_parts:
      return append_line(out, {"554 5.6.0 Too many MIME parts (max ", limit.view(), ")"});
    case mime::refusal_kind::too_deep:
      return append_line(out, {"554 5.6.0 MIME nesting too deep (max ", limit.view(), ")"});
    case mime::refusal_kind::mms_not_enabled: return append_line(out, {mms_not_enabled.line()});
    case mime::refusal_kind::mms_too_big: return append_line(out, {message_too_big.line()});
    case mime::refusal_kind::empty: return append_line(out, {empty_message.line()});
    case mime::refusal_kind::too_many_segments:
      return append_line(out, {"554 5.3.4 Message too long for SMS (", count.view(), " segments, max ", limit.view(), ")"});
    case mime::refusal_kind::none:  // a result nobody filled: the step did not run
    case mime::refusal_kind::not_run: return append_line(out, {local_error.line()});
  }
  append_line(out, {local_error.line()});
}

// Once per message: the literal parts are appended as constants of known
// size (the guard counts bytes through memcpy).
void append_accepted(std::string& out, const std::vector<std::string>& recipients, std::string_view queue_id) {
  constexpr std::string_view head = "250 2.0.0 Message accepted for delivery to: ";
  constexpr std::string_view queued = " queued as ";
  const std::size_t tail = queued.size() + queue_id.size() + 2;  // + CRLF
  const std::size_t start = out.size();
  out += head;
  const std::size_t n = recipients.size();
  std::size_t listed = 0;
  for (; listed < n; ++listed) {
    const std::size_t sep = listed == 0 ? 0 : 2;
    const std::size_t with = out.size() - start + sep + recipients[listed].size();
    const std::size_t rest = n - listed - 1;
    // " and <k> more" must still fit after this recipient if others remain.
    const std::size_t more = rest == 0 ? 0 : 5 + decimal(rest).view().size() + 5;
    if (listed > 0 && with + more + tail > accepted_line_limit) break;
    if (sep != 0) out += ", ";
    out += recipients[listed];
  }
  if (listed < n) {
    out += " and ";
    out += decimal(n - listed).view();
    out += " more";
  }
  out += queued;
  out += queue_id;
  out += "\r\n";
}

}  // namespace postino::smtp::replies
