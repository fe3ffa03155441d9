// Unit tests for per-destination pricing (src/sms/pricing.cc): the first
// matching rule of the account's resolved table, the unit price otherwise,
// a message's price for SMS and MMS, and saturation instead of overflow.
// Settings and recipient lists are test-owned.
#include <gtest/gtest.h>

#include <limits>

#include "postino/sms.h"

namespace postino {
namespace {

account_settings with_table() {
  account_settings a;
  a.unit_price = 2;
  a.mms_price = 9;
  // As the store orders it: the account's rules, then the global ones.
  a.prices = std::make_shared<const price_table>(
      price_table{{"3934", 5, false}, {"39", 1, false}, {"393", 3, true}, {"44", 4, true}});
  return a;
}

TEST(sms_pricing, first_matching_rule_else_unit_price) {
  const auto a = with_table();
  EXPECT_EQ(segment_price(a, "+393471234567"), 5);
  EXPECT_EQ(segment_price(a, "+393331234567"), 1) << "an account rule wins over a longer global one";
  EXPECT_EQ(segment_price(a, "+447911123456"), 4);
  EXPECT_EQ(segment_price(a, "+33612345678"), 2);
  EXPECT_EQ(segment_price(a, "447911123456"), 4) << "with or without '+'";
  account_settings none;
  none.unit_price = 7;
  EXPECT_EQ(segment_price(none, "+393331234567"), 7);
}

TEST(sms_pricing, message_price_sums_each_recipient) {
  const auto a = with_table();
  const std::vector<std::string> to = {"+393471234567", "+393331234567", "+33612345678"};
  EXPECT_EQ(message_price(a, to, 1, false), 5 + 1 + 2);
  EXPECT_EQ(message_price(a, to, 3, false), 3 * (5 + 1 + 2));
  EXPECT_EQ(message_price(a, to, 1, true), 3 * 9) << "an MMS costs mms_price per recipient";
  EXPECT_EQ(message_price(a, {}, 2, false), 0);
}

TEST(sms_pricing, saturates_instead_of_overflowing) {
  account_settings a;
  a.unit_price = std::numeric_limits<credit_units>::max() / 2;
  const auto max = std::numeric_limits<credit_units>::max();
  EXPECT_EQ(message_price(a, {"+393331234567"}, 3, false), max);
  EXPECT_EQ(message_price(a, {"+393331234567", "+393471234567", "+393481234567"}, 1, false), max);
}

}  // namespace
}  // namespace postino
