// A small pool of worker threads with a bounded job queue, for the slow part
// of AUTH (Argon2id verification plus the account look-up). Jobs are moved in
// by submit() and owned by the pool until they have run; a job must not throw
// (one that does is reported on stderr and dropped, so a worker never dies).
// The destructor runs every job already queued, then joins the workers.
#include <cstdio>
#include <exception>

#include "postino/credit.h"

namespace postino::credit {

hash_pool::hash_pool(unsigned threads, std::size_t max_queued) : max_queued_(max_queued) {
  if (threads == 0) threads = 1;  // a pool with no worker would only ever fill up
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

hash_pool::~hash_pool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& t : threads_) t.join();
}

bool hash_pool::submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || jobs_.size() >= max_queued_) return false;
    jobs_.push_back(std::move(job));
  }
  ready_.notify_one();
  return true;
}

void hash_pool::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      job();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "postino: hash_pool job threw: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "postino: hash_pool job threw a non-standard exception\n");
    }
  }
}

}  // namespace postino::credit
