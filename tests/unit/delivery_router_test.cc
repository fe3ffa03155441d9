// The delivery router (src/delivery/router.h): longest destination prefix,
// the first SMSC of a route that is up, failover order, and when a down
// SMSC's queue is due to move. The shared "down since" clocks are the test's
// own array; no shard, no binds.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>

#include "../../src/delivery/router.h"

namespace postino::delivery {
namespace {

gateway_config smscs(std::initializer_list<const char*> names) {
  gateway_config c;
  for (const char* n : names) {
    smsc_config s;
    s.name = n;
    c.smscs.push_back(s);
  }
  c.delivery.failover_after_s = 10;
  return c;
}

void add_route(gateway_config& c, const char* prefix, std::vector<std::string> names) {
  route_config r;
  r.prefix = prefix;
  r.smscs = std::move(names);
  c.routes.push_back(std::move(r));
}

struct clocks {
  explicit clocks(std::size_t n) : down(std::make_unique<std::atomic<std::uint64_t>[]>(n)) {}
  std::unique_ptr<std::atomic<std::uint64_t>[]> down;  // all 0: up
};

TEST(delivery_router, longest_prefix_wins_whatever_the_file_order) {
  gateway_config c = smscs({"world", "italy", "tim"});
  add_route(c, "", {"world"});
  add_route(c, "39", {"italy"});
  add_route(c, "39333", {"tim"});
  clocks k(3);
  router r(c, k.down.get());
  EXPECT_EQ(r.choose("+393331234567"), 2);
  EXPECT_EQ(r.choose("+393471234567"), 1);
  EXPECT_EQ(r.choose("+4915112345678"), 0);
  // The '+' is not part of the prefix; a number without it routes the same.
  EXPECT_EQ(r.choose("393331234567"), 2);
}

TEST(delivery_router, equal_prefixes_keep_the_file_order) {
  gateway_config c = smscs({"a", "b"});
  add_route(c, "39", {"b"});
  add_route(c, "39", {"a"});
  clocks k(2);
  EXPECT_EQ(router(c, k.down.get()).choose("+39333"), 1);
}

TEST(delivery_router, without_routes_every_smsc_in_file_order) {
  gateway_config c = smscs({"a", "b", "c"});
  clocks k(3);
  router r(c, k.down.get());
  EXPECT_EQ(r.choose("+1555"), 0);
  r.mark_down(0, 5000);
  EXPECT_EQ(r.choose("+1555"), 1);
  r.mark_down(1, 5000);
  EXPECT_EQ(r.choose("+1555"), 2);
}

TEST(delivery_router, a_number_no_route_covers_has_no_smsc) {
  gateway_config c = smscs({"a"});
  add_route(c, "39", {"a"});
  clocks k(1);
  router r(c, k.down.get());
  EXPECT_EQ(r.choose("+4915112345678"), -1);
  EXPECT_EQ(r.choose_instead_of("+4915112345678", 0), -1);
}

TEST(delivery_router, the_first_smsc_that_is_up_in_failover_order) {
  gateway_config c = smscs({"a", "b", "c"});
  add_route(c, "39", {"c", "a", "b"});
  clocks k(3);
  router r(c, k.down.get());
  EXPECT_EQ(r.choose("+39333"), 2);
  r.mark_down(2, 1000);
  EXPECT_FALSE(r.up(2));
  EXPECT_EQ(r.choose("+39333"), 0);
  r.mark_down(0, 1000);
  EXPECT_EQ(r.choose("+39333"), 1);
  // All down: the route's first, where the segment waits for a bind.
  r.mark_down(1, 1000);
  EXPECT_EQ(r.choose("+39333"), 2);
  r.mark_up(0);
  EXPECT_TRUE(r.up(0));
  EXPECT_EQ(r.choose("+39333"), 0);
}

TEST(delivery_router, failover_takes_the_next_smsc_that_is_up_never_the_one_left) {
  gateway_config c = smscs({"a", "b", "c"});
  add_route(c, "39", {"a", "b", "c"});
  clocks k(3);
  router r(c, k.down.get());
  r.mark_down(0, 1000);
  EXPECT_EQ(r.choose_instead_of("+39333", 0), 1);
  r.mark_down(1, 1000);
  EXPECT_EQ(r.choose_instead_of("+39333", 0), 2);
  // Only `from` itself is up: nothing to move to.
  r.mark_down(2, 1000);
  r.mark_up(0);
  EXPECT_EQ(r.choose_instead_of("+39333", 0), -1);
}

TEST(delivery_router, a_clock_at_zero_still_reads_down) {
  gateway_config c = smscs({"a"});
  clocks k(1);
  router r(c, k.down.get());
  r.mark_down(0, 0);
  EXPECT_FALSE(r.up(0));
  EXPECT_EQ(k.down[0].load(), 1u);
}

TEST(delivery_router, failover_is_due_after_failover_after_s_with_an_alternative_up) {
  gateway_config c = smscs({"a", "b"});
  add_route(c, "39", {"a", "b"});
  clocks k(2);
  router r(c, k.down.get());
  EXPECT_EQ(r.failover_due(0, 100'000), std::nullopt);  // up
  r.mark_down(0, 50'000);
  EXPECT_EQ(r.failover_due(0, 59'999), std::nullopt);
  EXPECT_EQ(r.failover_due(0, 60'000), 10'000u);
  EXPECT_EQ(r.failover_due(0, 75'500), 25'500u);
  // The alternative goes down too: nothing to move to, no walk of the queue.
  r.mark_down(1, 70'000);
  EXPECT_EQ(r.failover_due(0, 90'000), std::nullopt);
  r.mark_up(1);
  EXPECT_EQ(r.failover_due(0, 90'000), 40'000u);
  r.mark_up(0);
  EXPECT_EQ(r.failover_due(0, 90'000), std::nullopt);
}

TEST(delivery_router, an_smsc_alone_on_its_routes_never_fails_over) {
  gateway_config c = smscs({"a", "b"});
  add_route(c, "39", {"a"});
  add_route(c, "49", {"b"});
  clocks k(2);
  router r(c, k.down.get());
  r.mark_down(0, 1000);
  EXPECT_EQ(r.failover_due(0, 1'000'000), std::nullopt);
}

TEST(delivery_router, any_route_listing_the_smsc_offers_an_alternative) {
  gateway_config c = smscs({"a", "b"});
  add_route(c, "39", {"a"});
  add_route(c, "3934", {"a", "b"});
  clocks k(2);
  router r(c, k.down.get());
  r.mark_down(0, 1000);
  EXPECT_EQ(r.failover_due(0, 11'000), 10'000u);
  // Only numbers whose own route lists another SMSC move.
  EXPECT_EQ(r.choose_instead_of("+393471234567", 0), 1);
  EXPECT_EQ(r.choose_instead_of("+393331234567", 0), -1);
}

}  // namespace
}  // namespace postino::delivery
