// Tests for a home shard's in-memory balances (src/credit/ledger.cc):
// all-or-nothing debits, unknown accounts, credits and the shard mapping.
#include <gtest/gtest.h>

#include <limits>

#include "postino/credit.h"

namespace postino::credit {
namespace {

TEST(ledger, unknown_account_has_nothing) {
  ledger l;
  EXPECT_EQ(l.available(7), 0);
  EXPECT_FALSE(l.try_debit(7, 1));
  EXPECT_FALSE(l.try_debit(7, 0));
  EXPECT_EQ(l.available(7), 0);
}

TEST(ledger, debits_all_or_nothing) {
  ledger l;
  l.set_balance(1, 10);
  EXPECT_TRUE(l.try_debit(1, 4));
  EXPECT_EQ(l.available(1), 6);
  EXPECT_FALSE(l.try_debit(1, 7));
  EXPECT_EQ(l.available(1), 6) << "a refused debit takes nothing";
  EXPECT_TRUE(l.try_debit(1, 6));
  EXPECT_EQ(l.available(1), 0);
  EXPECT_FALSE(l.try_debit(1, 1));
  EXPECT_TRUE(l.try_debit(1, 0));
  EXPECT_FALSE(l.try_debit(1, -5)) << "a negative debit would be a credit";
  EXPECT_EQ(l.available(1), 0);
}

TEST(ledger, credit_and_set_balance) {
  ledger l;
  l.credit(3, 5);  // a top-up can arrive before any checkpoint
  EXPECT_EQ(l.available(3), 5);
  l.credit(3, 2);
  EXPECT_EQ(l.available(3), 7);
  l.set_balance(3, 100);
  EXPECT_EQ(l.available(3), 100);
  l.set_balance(4, 1);
  EXPECT_EQ(l.available(3), 100) << "accounts are independent";
}

TEST(ledger, credit_stops_at_the_maximum_balance_instead_of_wrapping) {
  ledger l;
  l.set_balance(1, std::numeric_limits<credit_units>::max() - 1);
  l.credit(1, 10);
  EXPECT_EQ(l.available(1), max_balance);
  l.set_balance(2, 5);
  l.credit(2, std::numeric_limits<credit_units>::max());
  EXPECT_EQ(l.available(2), max_balance);
}

TEST(ledger, home_shard_is_stable_and_in_range) {
  for (account_id id = 0; id < 100; ++id) {
    EXPECT_LT(home_shard(id, 3), 3u);
    EXPECT_EQ(home_shard(id, 3), home_shard(id, 3));
  }
  EXPECT_EQ(home_shard(7, 1), 0u);
}

}  // namespace
}  // namespace postino::credit
