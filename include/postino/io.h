// io_uring plumbing for the shards: ring set-up with the best flags the kernel
// accepts, the provided-buffer ring that multishot recv fills, listening
// sockets, the per-listener acceptor, and the connection (socket + SMTP
// session + a little state). Buffers: the buffer ring owns its memory and
// lends one buffer per recv CQE to a connection, which must give it back
// (recycle) before the batch ends; a connection owns its output string (the
// session's replies being sent) and its spill string (read-ahead parked while
// a request waits); the session owns everything inside it.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "postino/core.h"
#include "postino/runtime.h"
#include "postino/smtp.h"

struct io_uring;
struct io_uring_buf_ring;

namespace postino::io {

// Creates `ring` on the calling thread (SINGLE_ISSUER makes it the only
// submitter) with SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN | SUBMIT_ALL,
// dropping flags the kernel refuses. Returns 0 or -errno; `flags` gets the
// flags that were accepted.
int setup_ring(io_uring& ring, unsigned sq_entries, unsigned cq_entries, unsigned& flags);

// A provided-buffer ring registered with io_uring_register_buf_ring (liburing
// 2.3 has no io_uring_setup_buf_ring): `count` buffers of `size` bytes in one
// mapping, group id `group`. Single-threaded (the shard's).
class buffer_ring {
 public:
  buffer_ring() = default;
  ~buffer_ring();
  buffer_ring(const buffer_ring&) = delete;
  buffer_ring& operator=(const buffer_ring&) = delete;

  // `count` must be a power of two, at most 32768. Returns 0 or -errno.
  int init(io_uring& ring, unsigned count, unsigned size, std::uint16_t group);
  std::uint16_t group() const { return group_; }
  unsigned size() const { return size_; }
  unsigned count() const { return count_; }
  const char* data(std::uint16_t id) const { return base_ + std::size_t(id) * size_; }
  // Hands buffer `id` back; visible to the kernel after commit().
  void recycle(std::uint16_t id);
  void commit();

 private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  char* base_ = nullptr;
  std::size_t map_bytes_ = 0;
  unsigned count_ = 0;
  unsigned size_ = 0;
  unsigned pending_ = 0;
  std::uint16_t group_ = 0;
};

// A bound, listening TCP socket (SO_REUSEADDR, SO_REUSEPORT, non-blocking,
// close-on-exec). Returns the fd or -1 with `error` naming the address.
int open_listener(const std::string& address, std::uint16_t port, int backlog, std::string& error);
// The port a socket is bound to, 0 on error.
std::uint16_t local_port(int fd);
// "1.2.3.4" / "2001:db8::1"; a v4-mapped v6 address prints as IPv4.
std::string format_ip(const sockaddr_storage& addr);
// "ADDR:PORT", IPv6 as "[ADDR]:PORT".
std::string format_endpoint(const std::string& address, std::uint16_t port);

// SO_PEERNAME through IORING_OP_URING_CMD (SOCKET_URING_OP_GETSOCKOPT,
// kernel 6.7+): the peer address of a direct descriptor, which has no fd for
// getpeername(). `optlen` must equal the socket family's sockaddr size.
void prep_peer_name(struct io_uring_sqe* sqe, int fixed_fd, sockaddr_storage* out,
                    unsigned optlen);

// Multishot accept on one shard's listening socket for one listener,
// installing direct descriptors. Re-armed when the kernel ends it, cancelled
// on shutdown.
class acceptor final : public core::completion {
 public:
  acceptor(core::shard& shard, std::size_t listener, int fd);
  ~acceptor();
  void arm();
  void stop();  // cancels the accept; the socket closes when the cancel lands
  void slot_freed();  // a connection gave its fixed-file slot back
  bool active() const { return armed_ || fd_ >= 0; }
  void on_complete(int result, std::uint32_t flags) override;

 private:
  void cancel();
  struct retry_timer final : core::timer_node {
    acceptor* self = nullptr;
    void on_timer() override;
  };
  core::shard& shard_;
  std::size_t listener_;
  int fd_;
  bool armed_ = false;
  bool multishot_ = false;
  bool cancelling_ = false;
  bool stopping_ = false;
  bool logged_full_ = false;
  retry_timer retry_;
};

// One accepted socket and its SMTP session. Lives on its shard's heap; freed
// (at the end of a CQE batch) once the socket is closed and no CQE, request
// answer or journal waiter can still reach it.
class connection final : public core::timer_node {
 public:
  connection(core::shard& shard, std::size_t listener, int fixed_fd);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // For request handlers.
  smtp::session& session() { return *session_; }
  core::shard& shard() { return shard_; }
  // The socket is gone: whatever the request's outcome, nobody will read it.
  bool gone() const { return closed_; }
  // The pending request was resolved (or abandoned because gone()).
  void complete();

  // For the shard and the acceptor.
  void begin();             // asks for the peer's address, then greets
  void server_shutdown();   // session.on_shutdown(): idle sessions say 421
  void force_close();       // the grace period is over
  std::size_t index = 0;    // position in the shard's connection list

  void on_timer() override;

 private:
  // Each kind of SQE gets its own completion so a CQE knows what it was.
  template <void (connection::*Handler)(int, std::uint32_t)>
  struct op final : core::completion {
    connection* self;
    explicit op(connection* c) : self(c) {}
    void on_complete(int result, std::uint32_t flags) override { (self->*Handler)(result, flags); }
  };
  struct peer_probe;

  void on_peer(int result, const sockaddr_storage& addr);
  void on_recv(int result, std::uint32_t flags);
  void on_send(int result, std::uint32_t flags);

  void arm_recv();
  void pause_recv();
  void ingest(std::string_view bytes);
  void park(std::string_view bytes);
  std::size_t process(std::string_view input);
  void start_request();
  void resume();
  void flush();
  void arm_idle_timer();
  void teardown();
  void maybe_retire();

  core::shard& shard_;
  op<&connection::on_recv> recv_op_;
  op<&connection::on_send> send_op_;
  std::optional<smtp::session> session_;
  std::string out_;    // bytes being sent (swapped out of session.output())
  std::string spill_;  // read-ahead parked while a request is pending
  std::uint32_t out_off_ = 0;
  int fd_;             // direct descriptor (fixed-file slot)
  std::uint16_t listener_;
  bool recv_armed_ = false;
  bool recv_paused_ = false;
  bool send_inflight_ = false;
  bool probe_inflight_ = false;
  bool waiting_ = false;   // a request is with the handler
  bool in_process_ = false;
  bool peer_eof_ = false;
  bool timed_out_ = false;
  bool closed_ = false;
  bool retired_ = false;
};

}  // namespace postino::io
