// Multishot accept with direct descriptors, one per (shard, listener). Why
// direct: an accepted socket then lives only in the ring's fixed-file table,
// which each ring has for itself (up to RLIMIT_NOFILE entries each), so the
// process's 20,000-fd limit no longer caps concurrent sessions: shards x table
// does. The peer address, which a shared multishot sockaddr cannot give per
// connection, comes from SO_PEERNAME through a uring_cmd (see connection).
// Owns the listening fd it was given; touches no data buffers.
#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "postino/io.h"

namespace postino::io {

acceptor::acceptor(server& owner, std::size_t listener, int fd)
    : server_(owner), listener_(listener), fd_(fd) {
  retry_.self = this;
}

acceptor::~acceptor() {
  server_.shard().timers().cancel(retry_);
  if (fd_ >= 0) close(fd_);
}

// Multishot while the table has room; one accept at a time near the top;
// none at all when it is full (slot_freed() re-arms).
void acceptor::arm() {
  if (stopping_ || armed_ || fd_ < 0) return;
  unsigned free = server_.free_slots();
  if (free == 0) return;
  multishot_ = free > server_.slot_margin();
  cancelling_ = false;
  io_uring_sqe* sqe = core::get_sqe(server_.shard().ring());
  if (multishot_)
    io_uring_prep_multishot_accept_direct(sqe, fd_, nullptr, nullptr, 0);
  else {
    // liburing 2.3's prep_accept_direct stores index + 1, which wraps
    // IORING_FILE_INDEX_ALLOC to 0 (a plain, non-direct accept): set it here.
    io_uring_prep_accept(sqe, fd_, nullptr, nullptr, 0);
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
  }
  io_uring_sqe_set_data(sqe, static_cast<core::completion*>(this));
  armed_ = true;
}

void acceptor::slot_freed() {
  if (!armed_ && !stopping_ && !retry_.armed()) arm();
}

void acceptor::cancel() {
  io_uring_sqe* sqe = core::get_sqe(server_.shard().ring());
  io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(static_cast<core::completion*>(this)), 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, 0);
  cancelling_ = true;
}

void acceptor::stop() {
  if (stopping_) return;
  stopping_ = true;
  server_.shard().timers().cancel(retry_);
  if (armed_) {
    if (!cancelling_) cancel();  // the final CQE (no F_MORE) closes the socket
  } else if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

void acceptor::on_complete(int result, std::uint32_t flags) {
  if ((flags & IORING_CQE_F_MORE) == 0) armed_ = false;
  if (result >= 0) {
    if (stopping_) {
      io_uring_sqe* sqe = core::get_sqe(server_.shard().ring());
      io_uring_prep_close_direct(sqe, static_cast<unsigned>(result));
      io_uring_sqe_set_data64(sqe, 0);
    } else {
      server_.slot_taken();
      auto* c = new connection(server_, listener_, result);
      server_.adopt(c);
      c->begin();
    }
    logged_full_ = false;
  } else if (result == -ENFILE || result == -EMFILE) {
    if (!logged_full_)
      std::fprintf(stderr, "postino: shard %u: fixed-file table full, pausing accepts: %s\n", server_.shard().id(),
                   std::strerror(-result));
    logged_full_ = true;
  }
  if (armed_) {
    if (multishot_ && !cancelling_ && server_.free_slots() <= server_.slot_margin()) cancel();
    return;
  }
  if (stopping_) {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return;
  }
  if (result < 0 && result != -ECONNABORTED && result != -EINTR && result != -ECANCELED) {
    // Table full, out of memory or a stranger error: try again shortly
    // rather than spin on the same failure.
    server_.shard().timers().schedule(retry_, server_.shard().now_ms(), 100);
    return;
  }
  arm();
}

void acceptor::retry_timer::on_timer() { self->arm(); }

}  // namespace postino::io
