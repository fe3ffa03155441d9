// The SPSC mailbox queue: order and completeness within one thread and across
// two (a producer and a consumer thread, many chunk boundaries), and that
// values with owned memory are moved through and destroyed exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "postino/runtime.h"

namespace postino::core {
namespace {

TEST(core_mailbox, fifo_in_one_thread_across_chunks) {
  spsc_queue<int, 4> q;
  int out = -1;
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.pop(out));
  for (int i = 0; i < 37; ++i) q.push(i);
  EXPECT_FALSE(q.empty());
  for (int i = 0; i < 37; ++i) {
    ASSERT_TRUE(q.pop(out));
    EXPECT_EQ(out, i);
  }
  EXPECT_FALSE(q.pop(out));
  EXPECT_TRUE(q.empty());
  q.push(99);  // still usable after draining at a chunk boundary
  ASSERT_TRUE(q.pop(out));
  EXPECT_EQ(out, 99);
}

TEST(core_mailbox, producer_and_consumer_threads_keep_order) {
  constexpr std::uint64_t kCount = 2'000'000;
  spsc_queue<std::uint64_t, 128> q;
  std::atomic<bool> go{false};
  std::thread producer([&] {
    while (!go.load()) {
    }
    for (std::uint64_t i = 1; i <= kCount; ++i) q.push(i);
  });
  go = true;
  std::uint64_t expected = 1, value = 0, sum = 0;
  while (expected <= kCount) {
    if (!q.pop(value)) {
      std::this_thread::yield();
      continue;
    }
    ASSERT_EQ(value, expected);
    sum += value;
    ++expected;
  }
  producer.join();
  EXPECT_EQ(sum, kCount * (kCount + 1) / 2);
  EXPECT_FALSE(q.pop(value));
}

struct words {
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  std::int64_t c = 0;
};
void add_words(shard&, const words&) {}

TEST(core_mailbox, messages_carry_their_words) {
  spsc_queue<message> q;
  q.push(message::of<&add_words>({1, 2, 3}));
  message got;
  ASSERT_TRUE(q.pop(got));
  EXPECT_TRUE(got.runs<&add_words>());
  const words w = got.payload<&add_words>();
  EXPECT_EQ(w.a + w.b + static_cast<std::uint64_t>(w.c), 6u);
}

struct counted {
  static inline int alive = 0;
  std::unique_ptr<std::string> payload;
  counted() { ++alive; }
  explicit counted(std::string s) : payload(std::make_unique<std::string>(std::move(s))) { ++alive; }
  counted(counted&& o) noexcept : payload(std::move(o.payload)) { ++alive; }
  counted& operator=(counted&& o) noexcept {
    payload = std::move(o.payload);
    return *this;
  }
  ~counted() { --alive; }
};

TEST(core_mailbox, owned_values_are_moved_and_destroyed_once) {
  {
    spsc_queue<counted, 3> q;
    for (int i = 0; i < 10; ++i) q.push(counted("v" + std::to_string(i)));
    counted out;
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(q.pop(out));
      ASSERT_TRUE(out.payload);
      EXPECT_EQ(*out.payload, "v" + std::to_string(i));
    }
    // Six left in the queue: its destructor must free them.
  }
  EXPECT_EQ(counted::alive, 0);
}

}  // namespace
}  // namespace postino::core
