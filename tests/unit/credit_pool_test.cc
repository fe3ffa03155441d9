// Tests for the bounded worker pool (src/credit/hash_pool.cc): jobs run off
// the caller's thread, a full queue refuses, and the destructor drains.
// Waits are bounded by generous timeouts so a bug fails instead of hanging;
// nothing here asserts how fast anything is.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>

#include "postino/credit.h"

namespace postino::credit {
namespace {

constexpr auto bound = std::chrono::seconds(30);

TEST(hash_pool, runs_jobs_on_worker_threads) {
  hash_pool pool(2, 16);
  std::promise<std::thread::id> ran;
  auto f = ran.get_future();
  ASSERT_TRUE(pool.submit([&] { ran.set_value(std::this_thread::get_id()); }));
  ASSERT_EQ(f.wait_for(bound), std::future_status::ready);
  EXPECT_NE(f.get(), std::this_thread::get_id());
}

TEST(hash_pool, refuses_when_the_queue_is_full) {
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> done{0};
  {
    hash_pool pool(1, 2);
    std::promise<void> started;
    ASSERT_TRUE(pool.submit([&] {
      started.set_value();
      gate.wait();
      ++done;
    }));
    // The only worker is now busy, so the queue fills.
    ASSERT_EQ(started.get_future().wait_for(bound), std::future_status::ready);
    EXPECT_TRUE(pool.submit([&] { ++done; }));
    EXPECT_TRUE(pool.submit([&] { ++done; }));
    EXPECT_FALSE(pool.submit([&] { ++done; }));
    EXPECT_FALSE(pool.submit([&] { ++done; }));
    release.set_value();
    // Leaving the scope drains the two queued jobs and joins.
  }
  EXPECT_EQ(done.load(), 3);
}

TEST(hash_pool, accepts_again_once_drained) {
  hash_pool pool(1, 1);
  for (int i = 0; i < 20; ++i) {
    std::promise<void> ran;
    auto f = ran.get_future();
    ASSERT_TRUE(pool.submit([&] { ran.set_value(); }));
    ASSERT_EQ(f.wait_for(bound), std::future_status::ready);
  }
}

TEST(hash_pool, destructor_runs_every_queued_job) {
  std::atomic<int> done{0};
  {
    hash_pool pool(2, 1000);
    for (int i = 0; i < 500; ++i) ASSERT_TRUE(pool.submit([&] { ++done; }));
  }
  EXPECT_EQ(done.load(), 500);
}

TEST(hash_pool, a_throwing_job_does_not_kill_the_worker) {
  hash_pool pool(1, 4);
  ASSERT_TRUE(pool.submit([] { throw std::runtime_error("test job failure"); }));
  std::promise<void> ran;
  auto f = ran.get_future();
  ASSERT_TRUE(pool.submit([&] { ran.set_value(); }));
  EXPECT_EQ(f.wait_for(bound), std::future_status::ready);
}

TEST(hash_pool, zero_threads_still_has_a_worker) {
  hash_pool pool(0, 4);
  std::promise<void> ran;
  auto f = ran.get_future();
  ASSERT_TRUE(pool.submit([&] { ran.set_value(); }));
  EXPECT_EQ(f.wait_for(bound), std::future_status::ready);
}

}  // namespace
}  // namespace postino::credit
