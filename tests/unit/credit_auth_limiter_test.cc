// Tests for the per-address failed-AUTH limit (src/credit/auth_limiter.cc):
// checks start only while the address has tokens for their possible
// failures, failures take tokens, successes none, tokens come back over a
// minute, addresses are independent, and idle full buckets are forgotten.
#include <gtest/gtest.h>

#include <string>

#include "postino/credit.h"

namespace postino::credit {
namespace {

TEST(auth_limiter, failures_use_up_the_minute_and_the_address_is_then_refused) {
  auth_limiter l(30);
  std::uint64_t now = 1000;
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(l.try_begin("192.0.2.1", now)) << i;
    l.end("192.0.2.1", true, now);
  }
  EXPECT_FALSE(l.try_begin("192.0.2.1", now));
  EXPECT_TRUE(l.first_refusal("192.0.2.1"));
  EXPECT_FALSE(l.first_refusal("192.0.2.1"));  // one log line per stretch
  EXPECT_TRUE(l.try_begin("192.0.2.2", now));  // another address is not limited
  // Two seconds earn one token back (30 a minute).
  EXPECT_FALSE(l.try_begin("192.0.2.1", now + 1000));
  EXPECT_TRUE(l.try_begin("192.0.2.1", now + 2000));
}

TEST(auth_limiter, checks_under_way_count_against_the_tokens_left) {
  auth_limiter l(3);
  EXPECT_TRUE(l.try_begin("a", 0));
  EXPECT_TRUE(l.try_begin("a", 0));
  EXPECT_TRUE(l.try_begin("a", 0));
  EXPECT_FALSE(l.try_begin("a", 0));  // three may still fail
  l.end("a", false, 0);               // a success gives its place back, takes no token
  EXPECT_TRUE(l.try_begin("a", 0));
}

TEST(auth_limiter, successes_never_limit_an_address) {
  auth_limiter l(2);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(l.try_begin("office", static_cast<std::uint64_t>(i)));
    l.end("office", false, static_cast<std::uint64_t>(i));
  }
}

TEST(auth_limiter, tokens_never_exceed_the_limit_after_a_long_pause) {
  auth_limiter l(5);
  EXPECT_TRUE(l.try_begin("a", 0));
  l.end("a", true, 0);
  const std::uint64_t later = 3'600'000;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(l.try_begin("a", later));
    l.end("a", true, later);
  }
  EXPECT_FALSE(l.try_begin("a", later));
}

TEST(auth_limiter, full_idle_buckets_are_forgotten_when_many_addresses_pass) {
  auth_limiter l(30);
  for (int i = 0; i < 70'000; ++i) {
    const std::string a = "10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256);
    ASSERT_TRUE(l.try_begin(a, 0));
    l.end(a, false, 0);
  }
  EXPECT_LT(l.tracked(), 70'000u);
}

TEST(auth_limiter, the_home_shard_of_an_address_is_stable_and_in_range) {
  EXPECT_EQ(auth_home_shard("192.0.2.7", 4), auth_home_shard("192.0.2.7", 4));
  for (unsigned shards = 1; shards < 9; ++shards) EXPECT_LT(auth_home_shard("2001:db8::1", shards), shards);
}

}  // namespace
}  // namespace postino::credit
