// Start-up recovery of delivery work (src/delivery/recovery.cc): from replayed
// message, submitted and delivery_final records, which segments are submitted
// again, which wait for their receipt, and that messages final everywhere are
// left alone. Records are built in memory; no journal is involved.
#include <gtest/gtest.h>

#include <algorithm>

#include "postino/config.h"
#include "postino/delivery.h"
#include "postino/spool.h"

namespace postino::delivery {
namespace {

gateway_config two_smscs() {
  gateway_config c;
  smsc_config a;
  a.name = "a";
  smsc_config b;
  b.name = "b";
  c.smscs = {a, b};
  return c;
}

spool::record sms(std::uint64_t sequence, std::vector<std::string> recipients, std::uint32_t segments) {
  spool::record r;
  r.type = spool::record_type::message;
  r.sequence = sequence;
  r.unix_ms = 1'700'000'000'000;
  r.tx.recipients = std::move(recipients);
  r.tx.segments = segments;
  r.tx.sms_text = std::string(segments == 1 ? 20 : 200, 'x');  // 1 or 2 GSM segments
  r.tx.price = static_cast<credit_units>(r.tx.recipients.size() * segments);
  r.tx.body = r.tx.sms_text + "\r\n";
  return r;
}

// A submitted or delivery_final record about segment `segment` of recipient
// `recipient` of the message with `sequence` accepted on shard `shard`.
spool::record news(spool::record_type type, std::uint8_t shard, std::uint64_t sequence, std::uint32_t recipient,
                   std::uint32_t segment, const char* smsc, const char* id) {
  spool::record r;
  r.type = type;
  r.delivery.key = {0, shard, sequence, recipient, segment};
  r.delivery.smsc = smsc;
  r.delivery.smsc_message_id = id;
  if (type == spool::record_type::delivery_final) r.delivery.state = message_state::delivered;
  return r;
}

TEST(delivery_recovery, only_segments_not_final_come_back) {
  const auto config = two_smscs();
  recovery rec(config);
  using spool::record_type;
  // Message 1: both recipients final (one final record even comes first).
  rec.visit(news(record_type::delivery_final, 0, 1, 1, 0, "a", "x2"), 0, 0);
  rec.visit(sms(1, {"+393331234567", "+393471234567"}, 1), 0, 0);
  rec.visit(news(record_type::submitted, 0, 1, 0, 0, "a", "x1"), 0, 0);
  rec.visit(news(record_type::delivery_final, 0, 1, 0, 0, "a", "x1"), 0, 0);
  // Message 2 (accepted on shard 1), two segments: segment 0 submitted to b,
  // segment 1 final, and a second recipient never submitted. The records
  // about it may sit in any shard's journal.
  rec.visit(sms(2, {"+393331234567", "+447911123456"}, 2), 0, 1);
  rec.visit(news(record_type::submitted, 1, 2, 0, 0, "b", "y0"), 0, 0);
  rec.visit(news(record_type::delivery_final, 1, 2, 0, 1, "b", "y1"), 0, 0);
  recovery::result out = rec.finish(2);
  EXPECT_EQ(out.awaiting_receipt, 1u);
  EXPECT_EQ(out.to_submit, 2u);
  std::size_t segments = 0;
  for (const auto& shard : out.per_shard) {
    for (const auto& seg : shard) {
      ++segments;
      ASSERT_NE(seg.message, nullptr);
      EXPECT_EQ(seg.message->key.sequence, 2u) << "message 1 is final everywhere";
      EXPECT_EQ(seg.message->segments.size(), 2u);
      if (seg.recipient == 0) {
        EXPECT_EQ(seg.segment, 0u);
        EXPECT_EQ(seg.smsc, 1);
        EXPECT_EQ(seg.smsc_message_id, "y0");
      } else {
        EXPECT_EQ(seg.smsc, -1);
      }
    }
  }
  EXPECT_EQ(segments, 3u);
}

// Journal retention deletes covered segments; the message index stands for
// what they held. Shard 0's checkpoint covers sequences up to 10.
TEST(delivery_recovery, covered_messages_take_their_state_from_the_index) {
  const auto config = two_smscs();
  recovery rec(config);
  using spool::record_type;
  credit::checkpoint_store::open_messages open;
  // Message 5: open, its submission (to b, id z5) known only to the index.
  open[queue_id{0, 0, 5}.format()] = {{0, 0, message_state::submitted, "b", "z5", 1'700'000'000'100}};
  // Message 6: open, queued (no row), carried forward from a deleted segment.
  open[queue_id{0, 0, 6}.format()] = {};
  rec.use_index(std::move(open), {{0, 10}}, 0);
  rec.visit(sms(4, {"+393331234567"}, 1), 0, 0);  // covered and not open: final
  rec.visit(sms(5, {"+393331234567"}, 1), 0, 0);
  spool::record carried = sms(6, {"+393471234567"}, 1);
  carried.type = record_type::carried;
  carried.sequence = 40;  // its own place in the journal that carried it
  carried.origin = {0, 0, 6, 1'700'000'000'000};
  rec.visit(carried, 0, 1);
  rec.visit(carried, 0, 1);  // carried twice (a crash before the old segment went): still one
  rec.visit(sms(11, {"+447911123456"}, 1), 0, 0);  // not covered: the journal tells all
  recovery::result out = rec.finish(2);
  EXPECT_EQ(out.awaiting_receipt, 1u);
  EXPECT_EQ(out.to_submit, 2u);
  std::vector<std::uint64_t> sequences;
  for (const auto& shard : out.per_shard)
    for (const auto& seg : shard) {
      sequences.push_back(seg.message->key.sequence);
      if (seg.message->key.sequence == 5) {
        EXPECT_EQ(seg.smsc, 1);
        EXPECT_EQ(seg.smsc_message_id, "z5");
      }
      if (seg.message->key.sequence == 6) EXPECT_EQ(seg.message->key.shard, 0u) << "the origin's shard, not 1";
    }
  std::sort(sequences.begin(), sequences.end());
  EXPECT_EQ(sequences, (std::vector<std::uint64_t>{5, 6, 11}));
}

// A segment resubmitted after a restart (its first SMSC gone) is submitted
// twice; the later submission is the one whose receipt comes, whichever
// journal is read first.
TEST(delivery_recovery, the_latest_submission_wins) {
  const auto config = two_smscs();
  recovery rec(config);
  using spool::record_type;
  auto later = news(record_type::submitted, 0, 1, 0, 0, "b", "new");
  later.unix_ms = 2'000;
  auto earlier = news(record_type::submitted, 0, 1, 0, 0, "a", "old");
  earlier.unix_ms = 1'000;
  rec.visit(sms(1, {"+393331234567"}, 1), 0, 0);
  rec.visit(later, 0, 1);
  rec.visit(earlier, 0, 0);
  recovery::result out = rec.finish(2);
  ASSERT_EQ(out.awaiting_receipt, 1u);
  for (const auto& shard : out.per_shard)
    for (const auto& seg : shard) EXPECT_EQ(seg.smsc_message_id, "new");
}

TEST(delivery_recovery, mms_stays_queued_and_is_counted) {
  const auto config = two_smscs();
  recovery rec(config);
  spool::record mms = sms(3, {"+393331234567"}, 1);
  mms.tx.is_mms = true;
  rec.visit(mms, 0, 0);
  recovery::result out = rec.finish(1);
  EXPECT_EQ(out.mms_left_queued, 1u);
  EXPECT_EQ(out.to_submit, 0u);
}

}  // namespace
}  // namespace postino::delivery

namespace postino::delivery {
namespace {

// Refunds are bounded by the price: a failed segment gives back its unit
// price, and every segment failing must not give back more than the message
// cost. A version 1 record was charged one segment whatever its text, which
// may encode to three; unit prices checked one by one may still add up past
// the price.
credit_units refunds_if_all_fail(const outbound_message& m) {
  credit_units total = 0;
  for (credit_units u : m.unit_prices) total += u * static_cast<credit_units>(m.segments.size());
  return total;
}

TEST(delivery_outbound, refunds_never_add_up_past_the_price) {
  spool::record r = sms(7, {"+393331234567", "+393401234567"}, 1);
  r.tx.sms_text = std::string(400, 'x');  // three GSM segments, charged as one
  auto m = make_outbound(std::make_shared<const message>(r.tx), queue_id{0, 0, 7}, r.unix_ms, 3600);
  ASSERT_EQ(m->segments.size(), 3u);
  EXPECT_LE(refunds_if_all_fail(*m), r.tx.price);

  spool::record p = sms(8, {"+393331234567", "+393401234567"}, 2);
  p.tx.price = 10;
  p.tx.unit_prices = {5, 5};  // each within the price, together twice it
  m = make_outbound(std::make_shared<const message>(p.tx), queue_id{0, 0, 8}, p.unix_ms, 3600);
  ASSERT_EQ(m->segments.size(), 2u);
  EXPECT_LE(refunds_if_all_fail(*m), p.tx.price);

  spool::record fine = sms(9, {"+393331234567", "+447911123456"}, 2);
  fine.tx.price = 6;
  fine.tx.unit_prices = {1, 2};  // per-prefix prices, exact
  m = make_outbound(std::make_shared<const message>(fine.tx), queue_id{0, 0, 9}, fine.unix_ms, 3600);
  EXPECT_EQ(m->unit_prices, (std::vector<credit_units>{1, 2})) << "exact prices are kept";
}

}  // namespace
}  // namespace postino::delivery
