// Typed mailbox messages cost no heap allocation per message: the payload is
// copied into the message, the message into the SPSC queue's chunk, and only
// a new chunk (one per 256 messages) allocates. Counts operator new across a
// run of posts (this binary replaces the global operator new to count).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "postino/runtime.h"

namespace {
std::atomic<std::uint64_t> allocations{0};
}

void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace postino::core {
namespace {

// As big as the largest payload the gateway posts (a lease report).
struct report {
  std::uint64_t account = 0;
  unsigned shard = 0;
  std::int64_t spent = 0;
  std::int64_t returned = 0;
  std::uint64_t messages = 0;
  bool recall_answer = false;
  std::int64_t need = 0;
};
static_assert(sizeof(report) == message::payload_capacity);

std::uint64_t total = 0;
void on_report(shard&, const report& r) { total += r.spent; }

TEST(core_mail_alloc, posting_typed_messages_allocates_only_queue_chunks) {
  constexpr std::uint64_t kMessages = 256 * 100;
  spsc_queue<message> q;
  const std::uint64_t before = allocations.load();
  for (std::uint64_t i = 0; i < kMessages; ++i) {
    report r;
    r.account = i;
    r.spent = static_cast<std::int64_t>(i);
    q.push(message::of<&on_report>(r));
  }
  const std::uint64_t during = allocations.load() - before;
  message m;
  std::uint64_t popped = 0, sum = 0;
  while (q.pop(m)) {
    ASSERT_TRUE(m.runs<&on_report>());
    sum += static_cast<std::uint64_t>(m.payload<&on_report>().spent);
    ++popped;
  }
  EXPECT_EQ(popped, kMessages);
  EXPECT_EQ(sum, kMessages * (kMessages - 1) / 2);
  std::printf("%llu typed messages posted: %llu allocations (queue chunks), %.4f per message\n",
              static_cast<unsigned long long>(kMessages), static_cast<unsigned long long>(during),
              static_cast<double>(during) / static_cast<double>(kMessages));
  // One chunk per 256 slots, the first one made by the constructor.
  EXPECT_LE(during, kMessages / 256);
}

}  // namespace
}  // namespace postino::core
