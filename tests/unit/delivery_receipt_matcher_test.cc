// The receipt matcher of one SMSC account (src/delivery/receipt_matcher.h):
// submitted ids matched by receipts across letter case, zero padding and the
// configured hex/decimal form; receipts that come before their
// submit_sm_resp held, matched later, or dropped when their time ends; and
// no guessing across bases under "auto" or "same".
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "../../src/delivery/receipt_matcher.h"

namespace postino::delivery {
namespace {

// Segments are told apart by their recipient index; the matcher never
// looks into the message.
segment_ref seg(std::uint32_t n) { return {nullptr, n, 0, 0}; }

smpp::receipt receipt(std::string id, message_state state = message_state::delivered) {
  smpp::receipt r;
  r.message_id = std::move(id);
  r.state = state;
  r.final = true;
  r.error = "000";
  return r;
}

// The recipient index of the segment a receipt matched, or -1.
int matched(receipt_matcher& m, const std::string& receipted_id) {
  auto a = m.match(receipt(receipted_id));
  return a ? static_cast<int>(a->seg.recipient) : -1;
}

TEST(delivery_receipt_matcher, same_ids_match_across_case_and_leading_zeros) {
  for (const char* form : {"same", "auto"}) {
    receipt_matcher m(form);
    m.await(seg(1), "0000001A");
    m.await(seg(2), "msg-XY");
    EXPECT_EQ(m.awaiting_count(), 2u);
    EXPECT_EQ(matched(m, "1a"), 1) << form;
    EXPECT_EQ(matched(m, "MSG-xy"), 2) << form;
    EXPECT_EQ(m.awaiting_count(), 0u);
  }
}

TEST(delivery_receipt_matcher, a_match_returns_the_id_as_submit_sm_resp_gave_it_and_takes_it_out) {
  receipt_matcher m("same");
  m.await(seg(7), "0000001A");
  auto a = m.match(receipt("1A"));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->seg.recipient, 7u);
  EXPECT_EQ(a->smsc_message_id, "0000001A");
  EXPECT_EQ(matched(m, "1A"), -1);  // a second receipt for it finds nothing
}

TEST(delivery_receipt_matcher, hex_receipts_for_decimal_ids) {
  receipt_matcher m("hex");
  m.await(seg(1), "169552957");
  m.await(seg(2), "16");
  EXPECT_EQ(matched(m, "169552957"), -1);  // not printed as given
  EXPECT_EQ(matched(m, "0A1B2C3D"), 1);
  EXPECT_EQ(matched(m, "00000010"), 2);
}

TEST(delivery_receipt_matcher, decimal_receipts_for_hex_ids) {
  receipt_matcher m("decimal");
  m.await(seg(1), "0000001A");
  m.await(seg(2), "FFFFFFFFFFFFFFFF");
  EXPECT_EQ(matched(m, "1a"), -1);
  EXPECT_EQ(matched(m, "26"), 1);
  EXPECT_EQ(matched(m, "18446744073709551615"), 2);
}

TEST(delivery_receipt_matcher, an_id_that_does_not_convert_matches_as_given) {
  receipt_matcher hex("hex");
  hex.await(seg(1), "msg-1");
  hex.await(seg(2), "18446744073709551616");  // past 64 bits
  EXPECT_EQ(matched(hex, "MSG-1"), 1);
  EXPECT_EQ(matched(hex, "18446744073709551616"), 2);
  receipt_matcher decimal("decimal");
  decimal.await(seg(3), "1ffffffffffffffff");  // 17 hex digits
  EXPECT_EQ(matched(decimal, "1FFFFFFFFFFFFFFFF"), 3);
}

TEST(delivery_receipt_matcher, a_receipt_before_its_submit_sm_resp_is_held_and_applied_then) {
  receipt_matcher m("hex");
  EXPECT_EQ(matched(m, "0A1B2C3D"), -1);
  m.hold(receipt("0A1B2C3D", message_state::undeliverable), 10'000);
  EXPECT_EQ(m.held_count(), 1u);
  EXPECT_EQ(m.take_held("169552958"), std::nullopt);
  std::optional<smpp::receipt> r = m.take_held("169552957");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->state, message_state::undeliverable);
  EXPECT_EQ(m.held_count(), 0u);
  EXPECT_EQ(m.take_held("169552957"), std::nullopt);
}

TEST(delivery_receipt_matcher, a_second_receipt_for_the_same_id_replaces_the_held_one) {
  receipt_matcher m("same");
  m.hold(receipt("00AB", message_state::undeliverable), 1000);
  m.hold(receipt("ab", message_state::delivered), 2000);
  EXPECT_EQ(m.held_count(), 1u);
  auto r = m.take_held("AB");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->state, message_state::delivered);
}

TEST(delivery_receipt_matcher, held_receipts_are_dropped_when_their_time_ends) {
  receipt_matcher m("same");
  m.hold(receipt("1"), 1000);
  m.hold(receipt("2"), 2000);
  EXPECT_TRUE(m.drop_expired(999).empty());
  std::vector<smpp::receipt> dropped = m.drop_expired(1000);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].message_id, "1");
  EXPECT_EQ(m.take_held("1"), std::nullopt);  // its submit_sm_resp came too late
  EXPECT_EQ(m.held_count(), 1u);
  EXPECT_EQ(m.drop_expired(5000).size(), 1u);
  EXPECT_EQ(m.held_count(), 0u);
}

// Why "auto" does not try the other base (config.h, receipt_ids): an SMSC
// that numbers its ids 1, 2, 3 ... and prints them as 8 hex digits, receipts
// included, has 0x1A and 0x26 in flight. A receipt for 0x1A that comes
// before its submit_sm_resp reads, in decimal, 26: exactly the key of 0x26.
// Trying that reading would finalize (and maybe refund) 0x26 with 0x1A's
// state, and 0x1A's own receipt would never match.
TEST(delivery_receipt_matcher, auto_never_matches_the_other_base_reading_of_an_id) {
  receipt_matcher m("auto");
  m.await(seg(0x26), "00000026");
  EXPECT_EQ(matched(m, "0000001A"), -1);
  m.hold(receipt("0000001A", message_state::undeliverable), 10'000);
  EXPECT_EQ(m.awaiting_count(), 1u);
  auto r = m.take_held("0000001A");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->state, message_state::undeliverable);
  EXPECT_EQ(matched(m, "00000026"), 0x26);
}

// The other direction: 0x26's receipt came first and is held; the
// submit_sm_resp for 0x1A must not take it (26 is 0x1A's decimal reading).
TEST(delivery_receipt_matcher, auto_never_applies_a_held_receipt_to_the_other_base_reading) {
  receipt_matcher m("auto");
  m.hold(receipt("00000026", message_state::undeliverable), 10'000);
  EXPECT_EQ(m.take_held("0000001A"), std::nullopt);
  EXPECT_EQ(m.held_count(), 1u);
  EXPECT_TRUE(m.take_held("00000026").has_value());
}

// The same hazard with decimal ids printed in decimal: the receipt for
// sixteen, before its submit_sm_resp, must not take ten (0x10).
TEST(delivery_receipt_matcher, auto_keeps_decimal_ids_apart_from_their_hex_readings) {
  receipt_matcher m("auto");
  m.await(seg(10), "10");
  EXPECT_EQ(matched(m, "16"), -1);
  EXPECT_EQ(m.awaiting_count(), 1u);
  EXPECT_EQ(matched(m, "10"), 10);
}

}  // namespace
}  // namespace postino::delivery
