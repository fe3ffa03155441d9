// The fair queue of one SMSC account (src/delivery/fair_queue.h): round
// robin between customer accounts, one segment per turn; what keeps its
// turn; failover taking segments out; and the backlog counter, which counts
// a segment from admit() until it settles, not while it is merely queued.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "../../src/delivery/fair_queue.h"

namespace postino::delivery {
namespace {

// One message per account and recipient count; segments name themselves by
// (account, recipient).
std::shared_ptr<const outbound_message> message(account_id account, std::size_t recipients) {
  auto accepted = std::make_shared<postino::message>();
  accepted->account = account;
  for (std::size_t i = 0; i < recipients; ++i) accepted->recipients.push_back("+3933300" + std::to_string(i));
  auto m = std::make_shared<outbound_message>();
  m->source = std::move(accepted);
  m->unit_prices.assign(recipients, 1);
  m->segments = {"x"};
  return m;
}

std::vector<segment_ref> segments_of(const std::shared_ptr<const outbound_message>& m) {
  std::vector<segment_ref> out;
  for (std::uint32_t r = 0; r < m->source->recipients.size(); ++r) out.push_back({m, r, 0, 0});
  return out;
}

// Pops everything: "A0 B0 A1" (account letter, recipient index).
std::string drain(fair_queue& q) {
  std::string order;
  segment_ref seg;
  while (q.pop(seg)) {
    if (!order.empty()) order += ' ';
    order += static_cast<char>('A' + seg.account() - 1);
    order += std::to_string(seg.recipient);
  }
  return order;
}

TEST(delivery_fair_queue, one_segment_per_account_per_turn) {
  std::atomic<std::int64_t> backlog{0};
  fair_queue q(backlog);
  q.admit(segments_of(message(1, 5)));
  q.admit(segments_of(message(2, 1)));
  q.admit(segments_of(message(3, 2)));
  EXPECT_EQ(q.size(), 8u);
  EXPECT_EQ(drain(q), "A0 B0 C0 A1 C1 A2 A3 A4");
  EXPECT_TRUE(q.empty());
}

TEST(delivery_fair_queue, a_campaign_does_not_starve_a_single_message) {
  std::atomic<std::int64_t> backlog{0};
  fair_queue q(backlog);
  q.admit(segments_of(message(1, 100000)));
  segment_ref seg;
  ASSERT_TRUE(q.pop(seg));
  // Arrives while the campaign is being sent: out within one turn.
  q.admit(segments_of(message(2, 1)));
  ASSERT_TRUE(q.pop(seg));
  EXPECT_EQ(seg.account(), 1u);
  ASSERT_TRUE(q.pop(seg));
  EXPECT_EQ(seg.account(), 2u);
  EXPECT_EQ(q.size(), 100000u - 2);
}

TEST(delivery_fair_queue, a_segment_pushed_back_to_the_front_keeps_its_turn_in_its_account) {
  std::atomic<std::int64_t> backlog{0};
  fair_queue q(backlog);
  q.admit(segments_of(message(1, 3)));
  q.admit(segments_of(message(2, 1)));
  segment_ref seg;
  ASSERT_TRUE(q.pop(seg));  // A0, throttled: back to the front
  q.push_front(seg);
  // B had the next turn anyway; A0 goes before A1.
  EXPECT_EQ(drain(q), "B0 A0 A1 A2");
}

TEST(delivery_fair_queue, an_account_whose_fifo_emptied_rejoins_at_the_back) {
  std::atomic<std::int64_t> backlog{0};
  fair_queue q(backlog);
  q.admit(segments_of(message(1, 1)));
  q.admit(segments_of(message(2, 2)));
  segment_ref seg;
  ASSERT_TRUE(q.pop(seg));  // A0: A's FIFO is empty now
  q.push_front(seg);
  EXPECT_EQ(drain(q), "B0 A0 B1");
}

TEST(delivery_fair_queue, a_due_retry_goes_behind_its_account) {
  std::atomic<std::int64_t> backlog{0};
  fair_queue q(backlog);
  auto a = message(1, 3);
  std::vector<segment_ref> first = segments_of(a);
  segment_ref retried = first[0];
  first.erase(first.begin());
  q.admit(std::move(first));
  q.push_back(retried);
  EXPECT_EQ(drain(q), "A1 A2 A0");
}

TEST(delivery_fair_queue, the_backlog_counts_from_admit_until_settled) {
  std::atomic<std::int64_t> backlog{0};
  fair_queue q(backlog);
  q.admit(segments_of(message(1, 3)));
  EXPECT_EQ(backlog.load(), 3);
  segment_ref seg;
  ASSERT_TRUE(q.pop(seg));  // in flight: still waiting for the SMSC
  EXPECT_EQ(backlog.load(), 3);
  q.push_front(seg);  // throttled, or the bind was lost
  EXPECT_EQ(backlog.load(), 3);
  ASSERT_TRUE(q.pop(seg));
  q.settled();  // the SMSC took it
  EXPECT_EQ(backlog.load(), 2);
  q.unsettled();  // its final record was not durable: owed again
  EXPECT_EQ(backlog.load(), 3);
  q.push_back(seg);  // the retry is due: no new count
  EXPECT_EQ(backlog.load(), 3);
  q.settled(3);
  EXPECT_EQ(backlog.load(), 0);
}

TEST(delivery_fair_queue, the_smscs_of_a_gateway_share_one_backlog) {
  std::atomic<std::int64_t> backlog{0};
  fair_queue a(backlog), b(backlog);
  a.admit(segments_of(message(1, 2)));
  b.admit(segments_of(message(2, 5)));
  EXPECT_EQ(backlog.load(), 7);
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(b.size(), 5u);
}

TEST(delivery_fair_queue, failover_moves_what_has_a_destination_and_keeps_the_rest_in_turn) {
  std::atomic<std::int64_t> backlog{0};
  fair_queue q(backlog);
  q.admit(segments_of(message(1, 4)));
  q.admit(segments_of(message(2, 2)));
  q.admit(segments_of(message(3, 1)));
  fair_queue::moved_segments moved;
  // Even recipients of A go to SMSC 4, all of B to SMSC 5, the rest stay.
  const std::size_t n = q.move_out(
      [](const segment_ref& s) {
        if (s.account() == 1) return s.recipient % 2 == 0 ? 4 : -1;
        return s.account() == 2 ? 5 : -1;
      },
      moved);
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(backlog.load(), 7 - 4);
  ASSERT_EQ(moved.size(), 2u);
  ASSERT_EQ(moved[4].size(), 2u);
  EXPECT_EQ(moved[4][0].recipient, 0u);
  EXPECT_EQ(moved[4][1].recipient, 2u);
  EXPECT_EQ(moved[5].size(), 2u);
  EXPECT_EQ(q.size(), 3u);
  // The ones left are queued again in the order they were taken.
  EXPECT_EQ(drain(q), "C0 A1 A3");
}

TEST(delivery_fair_queue, failover_with_nowhere_to_go_changes_no_count) {
  std::atomic<std::int64_t> backlog{0};
  fair_queue q(backlog);
  q.admit(segments_of(message(1, 2)));
  q.admit(segments_of(message(2, 1)));
  fair_queue::moved_segments moved;
  EXPECT_EQ(q.move_out([](const segment_ref&) { return -1; }, moved), 0u);
  EXPECT_TRUE(moved.empty());
  EXPECT_EQ(backlog.load(), 3);
  EXPECT_EQ(drain(q), "A0 B0 A1");
}

}  // namespace
}  // namespace postino::delivery
