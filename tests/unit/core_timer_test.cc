// The shard's timer wheel, driven by explicit times (never the clock): timers
// fire in deadline order, not before their deadline, cancelling and re-arming
// work (also from inside a callback), long delays survive several revolutions
// of the wheel, and a long stall loses nothing.
#include <gtest/gtest.h>

#include <vector>

#include "postino/runtime.h"

namespace postino::core {
namespace {

struct probe final : timer_node {
  int id = 0;
  std::vector<int>* log = nullptr;
  std::function<void(probe&)> then;
  void on_timer() override {
    log->push_back(id);
    if (then) then(*this);
  }
};

TEST(core_timer, fires_in_deadline_order_and_not_early) {
  timer_wheel w(1000, 10, 64);
  std::vector<int> log;
  probe p[5];
  const std::uint64_t delays[5] = {300, 50, 120, 50, 10};
  for (int i = 0; i < 5; ++i) {
    p[i].id = i;
    p[i].log = &log;
    w.schedule(p[i], 1000, delays[i]);
  }
  EXPECT_EQ(w.size(), 5u);
  w.advance(1009);
  EXPECT_TRUE(log.empty());
  w.advance(1010);
  EXPECT_EQ(log, (std::vector<int>{4}));
  w.advance(1049);
  EXPECT_EQ(log, (std::vector<int>{4}));
  w.advance(1200);
  EXPECT_EQ(log, (std::vector<int>{4, 1, 3, 2}));
  EXPECT_FALSE(p[2].armed());
  EXPECT_TRUE(p[0].armed());
  w.advance(1300);
  EXPECT_EQ(log, (std::vector<int>{4, 1, 3, 2, 0}));
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_deadline_ms(), 0u);
}

TEST(core_timer, cancel_and_rearm) {
  timer_wheel w(0, 10, 64);
  std::vector<int> log;
  probe a, b, c;
  a.id = 1;
  b.id = 2;
  c.id = 3;
  a.log = b.log = c.log = &log;
  w.schedule(a, 0, 100);
  w.schedule(b, 0, 100);
  w.schedule(c, 0, 100);
  w.cancel(b);
  EXPECT_FALSE(b.armed());
  w.cancel(b);  // twice is harmless
  w.schedule(a, 50, 100);  // pushed later: now due at 150
  w.advance(100);
  EXPECT_EQ(log, (std::vector<int>{3}));
  w.advance(149);
  EXPECT_EQ(log, (std::vector<int>{3}));
  w.advance(150);
  EXPECT_EQ(log, (std::vector<int>{3, 1}));
  EXPECT_EQ(w.size(), 0u);
}

TEST(core_timer, callbacks_may_rearm_and_cancel_others) {
  timer_wheel w(0, 10, 16);
  std::vector<int> log;
  probe a, b, c;
  a.id = 1;
  b.id = 2;
  c.id = 3;
  a.log = b.log = c.log = &log;
  int rounds = 0;
  a.then = [&](probe& self) {
    w.cancel(b);  // due in the same tick, not yet fired
    if (++rounds < 3) w.schedule(self, (rounds) * 100, 100);
  };
  w.schedule(a, 0, 100);
  w.schedule(b, 0, 100);
  w.schedule(c, 0, 250);
  w.advance(1000);
  EXPECT_EQ(log, (std::vector<int>{1, 1, 3, 1}));
  EXPECT_EQ(w.size(), 0u);
}

TEST(core_timer, long_delays_span_revolutions) {
  timer_wheel w(0, 10, 8);  // one revolution = 80 ms
  std::vector<int> log;
  probe far, near;
  far.id = 1;
  near.id = 2;
  far.log = near.log = &log;
  w.schedule(far, 0, 1000);
  w.schedule(near, 0, 80);
  for (std::uint64_t t = 10; t < 1000; t += 10) w.advance(t);
  EXPECT_EQ(log, (std::vector<int>{2}));
  EXPECT_TRUE(far.armed());
  EXPECT_GT(w.next_deadline_ms(), 0u);
  w.advance(1000);
  EXPECT_EQ(log, (std::vector<int>{2, 1}));
}

TEST(core_timer, a_stall_loses_nothing) {
  timer_wheel w(0, 10, 8);
  std::vector<int> log;
  probe p[4];
  for (int i = 0; i < 4; ++i) {
    p[i].id = i;
    p[i].log = &log;
    w.schedule(p[i], 0, 30 + 200 * static_cast<std::uint64_t>(i));
  }
  w.advance(10'000);  // many revolutions at once
  EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(w.size(), 0u);
}

TEST(core_timer, next_deadline_is_never_late) {
  timer_wheel w(0, 10, 64);
  probe a;
  std::vector<int> log;
  a.log = &log;
  w.schedule(a, 0, 95);
  std::uint64_t next = w.next_deadline_ms();
  EXPECT_GT(next, 0u);
  EXPECT_LE(next, 100u);
  w.advance(next);
  EXPECT_EQ(log.size(), 1u);
}

}  // namespace
}  // namespace postino::core
