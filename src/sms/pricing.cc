// Per-recipient pricing (PROTOCOL.md section 4, issue 4): the price of one SMS
// segment to a destination, from the account's price table (account rules
// before global ones, longest prefix first: the order the account store
// builds), else the account's unit price; a whole message's price; and the
// per-recipient unit prices a message keeps when they differ. Reads the
// caller's settings and recipient strings; allocates nothing but the unit
// price list (only when prices differ), so it can run at every RCPT and at
// every terminator.
#include <algorithm>
#include <limits>

#include "postino/sms.h"

namespace postino {
namespace {

constexpr credit_units saturated = std::numeric_limits<credit_units>::max();

std::string_view digits_of(std::string_view e164) {
  if (!e164.empty() && e164.front() == '+') e164.remove_prefix(1);
  return e164;
}

}  // namespace

credit_units segment_price(const account_settings& account, std::string_view e164) noexcept {
  if (account.prices) {
    const std::string_view digits = digits_of(e164);
    for (const price_rule& rule : *account.prices)
      if (!rule.prefix.empty() && digits.starts_with(rule.prefix)) return rule.price;
  }
  return account.unit_price;
}

credit_units message_price(const account_settings& account, const std::vector<std::string>& recipients,
                           std::uint32_t segments, bool mms) noexcept {
  credit_units total = 0;
  for (const std::string& r : recipients) {
    credit_units one = 0;
    if (mms) {
      one = account.mms_price;
    } else if (__builtin_mul_overflow(segment_price(account, r), static_cast<credit_units>(segments), &one)) {
      return saturated;
    }
    if (__builtin_add_overflow(total, one, &total)) return saturated;
  }
  return total;
}

void fill_unit_prices(const account_settings& account, const std::vector<std::string>& recipients, bool mms,
                      std::vector<credit_units>& out) {
  out.clear();
  if (mms || !account.prices || recipients.empty()) return;
  const credit_units first = segment_price(account, recipients.front());
  const auto differs = [&](const std::string& r) { return segment_price(account, r) != first; };
  if (std::none_of(recipients.begin() + 1, recipients.end(), differs)) return;
  out.reserve(recipients.size());
  for (const std::string& r : recipients) out.push_back(segment_price(account, r));
}

}  // namespace postino
