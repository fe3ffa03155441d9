// One shard's event loop: its ring, fixed-file table, timer wheel,
// mailboxes, services and shutdown sequence. Everything here runs on the
// shard's thread except post_from_any_thread() (any thread, under
// inbox_mutex_) and the MSG_RING a peer shard aims at wake_. Buffers: mailbox
// messages are values popped from the SPSC queues; inbox closures are moved
// out under the mutex and run here; services own theirs.
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <exception>

#include "postino/runtime.h"

namespace postino::core {
namespace {

[[noreturn]] void die(const char* what, int err) {
  std::fprintf(stderr, "postino: shard: %s: %s\n", what, std::strerror(err));
  std::abort();
}

unsigned fixed_table_size(unsigned wanted) {
  if (wanted != 0) return wanted;
  // A ring's table may be as large as RLIMIT_NOFILE, and each ring has its
  // own, so shards x table can go well past the process's fd limit.
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  rlim_t n = lim.rlim_cur == RLIM_INFINITY ? (1u << 20) : lim.rlim_cur;
  if (n > (1u << 20)) n = 1u << 20;
  return static_cast<unsigned>(n);
}

}  // namespace

shard::shard(runtime& rt, unsigned id) : rt_(rt), id_(id) {
  wake_.self = this;
  inbox_read_.self = this;
  tick_.self = this;
  grace_.self = this;
  // Created here (main thread) so post_from_any_thread() works even before
  // the shard's thread has started.
  inbox_fd_ = eventfd(0, EFD_CLOEXEC);
  if (inbox_fd_ < 0) die("eventfd", errno);
}

shard::~shard() {
  destroy_services();  // a shard whose thread never ran them down
  if (ring_ready_) io_uring_queue_exit(ring_.get());
  if (inbox_fd_ >= 0) close(inbox_fd_);
}

// In reverse order of creation: a service may use those made before it.
void shard::destroy_services() {
  while (!services_.empty()) services_.pop_back();
}

unsigned shard::count() const { return rt_.shard_count(); }
shard_metrics& shard::metrics() { return rt_.metrics(id_); }
const runtime_options& shard::options() const { return rt_.options_; }

bool shard::setup(std::string& error) {
  const runtime_options& o = rt_.options_;
  ring_ = std::make_unique<io_uring>();
  unsigned flags = 0;
  int rc = setup_ring(*ring_, o.sq_entries, o.cq_entries, flags);
  if (rc < 0) {
    error = std::string("io_uring_queue_init: ") + std::strerror(-rc);
    return false;
  }
  ring_ready_ = true;
  io_uring_register_ring_fd(ring_.get());  // an optimisation only; failure is fine

  unsigned table = fixed_table_size(o.fixed_files);
  rc = io_uring_register_files_sparse(ring_.get(), table);
  if (rc < 0) {
    error = "io_uring_register_files_sparse(" + std::to_string(table) + "): " + std::strerror(-rc);
    return false;
  }
  fixed_files_ = table;
  now_ms_ = monotonic_ms();
  timers_ = std::make_unique<timer_wheel>(now_ms_);
  wake_needed_.assign(count(), 0);
  arm_inbox_read();
  if (rt_.factory_) {
    try {
      rt_.factory_(*this, services_);
    } catch (const std::exception& e) {  // a service that cannot start (its own resources)
      error = e.what();
      return false;
    }
  }
  io_uring_submit(ring_.get());
  return true;
}

void shard::run(std::function<void(bool, const std::string&)> started) {
  std::string error;
  bool ok = setup(error);
  started(ok, error);
  // No shard may message a peer whose ring does not exist yet: wait for all.
  rt_.set_up_.fetch_add(1, std::memory_order_acq_rel);
  rt_.set_up_.notify_all();
  for (unsigned seen = rt_.set_up_.load(std::memory_order_acquire); seen < count();
       seen = rt_.set_up_.load(std::memory_order_acquire))
    rt_.set_up_.wait(seen, std::memory_order_acquire);
  if (!ok) {
    // Count as drained so the other shards can still finish.
    reported_drained_ = true;
    rt_.shard_drained();
    return;
  }
  for (;;) {
    int rc = io_uring_submit_and_wait(ring_.get(), 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME)
      die("io_uring_submit_and_wait", -rc);
    now_ms_ = monotonic_ms();
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(ring_.get(), &cqe) == 0) dispatch(*ring_, cqe);
    after_batch();
    if (reported_drained_ && rt_.drained_.load(std::memory_order_acquire) == count()) break;
  }
  // A peer may have posted (a credit give-back) just before everyone drained.
  drain_mailboxes();
  destroy_services();
}

void shard::after_batch() {
  // Messages that arrived during the batch (their wake CQE may still be on
  // its way) run now, so the handler's end-of-batch answers see them. Extra
  // drains are harmless: a set notified_ flag always has a wake in flight.
  drain_mailboxes();
  for (const auto& s : services_) s->after_batch();
  while (self_posted_) {
    self_posted_ = false;
    message m;
    while (rt_.queue(id_, id_).pop(m)) m.run(*this);
  }
  send_wakes();
  arm_tick();
  if (stopping_ && !reported_drained_ && drained()) {
    reported_drained_ = true;
    rt_.shard_drained();
    for (unsigned s = 0; s < count(); ++s)
      if (s != id_) wake_needed_[s] = 1;
    send_wakes();
    // This shard may leave its loop right away: the wakes must go now.
    io_uring_submit(ring_.get());
  }
}

bool shard::drained() const {
  for (const auto& s : services_)
    if (!s->drained()) return false;
  return true;
}

void shard::post(unsigned to, const message& m) {
  rt_.queue(id_, to).push(m);
  if (to == id_)
    self_posted_ = true;
  else
    wake_needed_[to] = 1;
}

void shard::send_wakes() {
  for (unsigned to = 0; to < wake_needed_.size(); ++to) {
    if (!wake_needed_[to]) continue;
    wake_needed_[to] = 0;
    shard& target = *rt_.shards_[to];
    if (!target.ring_ready_) continue;  // its setup failed: the runtime is stopping
    // One MSG_RING per quiet period: the target clears the flag before it
    // drains, so a message pushed after that drain always finds it clear.
    if (target.notified_.exchange(true, std::memory_order_acq_rel)) continue;
    io_uring_sqe* sqe = get_sqe(*ring_);
    io_uring_prep_msg_ring(sqe, target.ring_->ring_fd, 0, reinterpret_cast<std::uint64_t>(&target.wake_), 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, 0);
  }
}

void shard::wake_op::on_complete(int, std::uint32_t) {
  self->notified_.exchange(false, std::memory_order_acq_rel);
  self->drain_mailboxes();
}

void shard::drain_mailboxes() {
  message m;
  for (unsigned from = 0; from < count(); ++from) {
    auto& q = rt_.queue(from, id_);
    while (q.pop(m)) m.run(*this);
  }
}

void shard::post_from_any_thread(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    inbox_work_.push_back(std::move(fn));
  }
  std::uint64_t one = 1;
  while (write(inbox_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void shard::arm_inbox_read() {
  io_uring_sqe* sqe = get_sqe(*ring_);
  io_uring_prep_read(sqe, inbox_fd_, &inbox_counter_, sizeof inbox_counter_, 0);
  io_uring_sqe_set_data(sqe, static_cast<completion*>(&inbox_read_));
}

void shard::inbox_op::on_complete(int result, std::uint32_t) {
  self->run_inbox();
  if (result >= 0 || result == -EINTR || result == -EAGAIN) self->arm_inbox_read();
}

void shard::run_inbox() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    work.swap(inbox_work_);
  }
  for (auto& fn : work) fn();
}

void shard::arm_tick() {
  std::uint64_t next = timers_->next_deadline_ms();
  if (next == 0) return;
  if (tick_armed_ && tick_deadline_ms_ <= next) return;
  static_assert(sizeof(__kernel_timespec) == sizeof(tick_ts_[0]));
  auto& ts = tick_ts_[tick_armed_ ? 1 : 0];
  ts.tv_sec = static_cast<long long>(next / 1000);
  ts.tv_nsec = static_cast<long long>(next % 1000) * 1'000'000;
  auto* kts = reinterpret_cast<__kernel_timespec*>(&ts);
  io_uring_sqe* sqe = get_sqe(*ring_);
  if (tick_armed_) {
    // Only ever moves the deadline earlier; the timeout keeps tick_ as its data.
    io_uring_prep_timeout_update(sqe, kts, reinterpret_cast<std::uint64_t>(static_cast<completion*>(&tick_)),
                                 IORING_TIMEOUT_ABS);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, 0);
  } else {
    io_uring_prep_timeout(sqe, kts, 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data(sqe, static_cast<completion*>(&tick_));
    tick_armed_ = true;
  }
  tick_deadline_ms_ = next;
}

void shard::tick_op::on_complete(int, std::uint32_t) {
  self->tick_armed_ = false;
  self->now_ms_ = monotonic_ms();
  self->timers_->advance(self->now_ms_);
}

void shard::begin_shutdown() {
  if (stopping_) return;
  stopping_ = true;
  for (auto s = services_.rbegin(); s != services_.rend(); ++s) (*s)->begin_shutdown();
  timers_->schedule(grace_, now_ms_, static_cast<std::uint64_t>(options().shutdown_grace.count()));
}

void shard::grace_timer::on_timer() {
  for (auto s = self->services_.rbegin(); s != self->services_.rend(); ++s) (*s)->grace_expired();
}

}  // namespace postino::core
