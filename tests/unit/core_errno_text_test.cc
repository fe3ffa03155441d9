// The one wording of syscall errors (src/core/errno_text.cc): strerror's
// text, with "<what>: " in front when asked, and usable from many threads.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "postino/core.h"

namespace postino::core {
namespace {

TEST(errno_text, is_the_strerror_text) {
  EXPECT_EQ(errno_text(ENOENT), std::strerror(ENOENT));
  EXPECT_EQ(errno_text(EWOULDBLOCK), std::strerror(EWOULDBLOCK));
  EXPECT_EQ(errno_text("open /x", ENOENT), std::string("open /x: ") + std::strerror(ENOENT));
  EXPECT_FALSE(errno_text(123456).empty());  // an unknown value still says something
}

TEST(errno_text, answers_on_every_thread_at_once) {
  const std::string expected = std::strerror(EACCES);
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10'000; ++i) wrong[static_cast<std::size_t>(t)] += errno_text(EACCES) != expected;
    });
  for (auto& th : threads) th.join();
  for (int w : wrong) EXPECT_EQ(w, 0);
}

}  // namespace
}  // namespace postino::core
