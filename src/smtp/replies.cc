// Builds the multi-recipient acceptance line. Appends to the session's output
// string (owned by the session); reads the transaction's recipients.
#include "replies.h"

namespace postino::smtp::reply {

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
    const std::size_t more = rest == 0 ? 0 : 5 + std::to_string(rest).size() + 5;
    if (listed > 0 && with + more + tail > accepted_line_limit) break;
    if (sep != 0) out += ", ";
    out += recipients[listed];
  }
  if (listed < n) {
    out += " and ";
    out += std::to_string(n - listed);
    out += " more";
  }
  out += queued;
  out += queue_id;
  out += "\r\n";
}

}  // namespace postino::smtp::reply
