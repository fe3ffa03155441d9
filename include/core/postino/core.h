// Shard runtime primitives shared by every component that submits work to a
// shard's io_uring ring. The shard owns the ring; a component that submits an
// SQE owns the `completion` object whose address it stores in user_data, and
// must keep it alive until its CQE has been dispatched.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

struct io_uring;
struct io_uring_cqe;
struct io_uring_sqe;

namespace postino::core {

// Creates `ring` on the calling thread (SINGLE_ISSUER makes it the only
// submitter) with SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN | SUBMIT_ALL,
// dropping flags the kernel refuses. Returns 0 or -errno; `flags` gets the
// flags that were accepted.
int setup_ring(io_uring& ring, unsigned sq_entries, unsigned cq_entries, unsigned& flags);

// Every SQE's user_data is a pointer to one of these (or 0 for ignored CQEs).
class completion {
 public:
  virtual void on_complete(int result, std::uint32_t cqe_flags) = 0;

 protected:
  ~completion() = default;
};

// Dispatches one CQE to its completion. Shards call this for each CQE they reap.
void dispatch(io_uring& ring, io_uring_cqe* cqe);

// Returns an SQE, submitting queued ones first when the SQ ring is full.
io_uring_sqe* get_sqe(io_uring& ring);

// Milliseconds since the Unix epoch (CLOCK_REALTIME): the time journal
// records and the message index store. Timers use monotonic_ms (runtime.h).
std::uint64_t unix_ms();

// The text of an errno value, as strerror gives it but safe on any thread
// (src/core/errno_text.cc): how every syscall error is worded.
std::string errno_text(int err);
// "<what>: <errno text>".
std::string errno_text(std::string_view what, int err);

}  // namespace postino::core
