// Sockets on the shards' rings, for any protocol: the listening sockets of
// every (shard, listener) pair, each shard's server (a core::service: its
// provided-buffer ring, acceptors and connections), and the connection
// (socket + the protocol's session + a little state). The protocol is a
// `session` the listener's factory makes for each connection (the app wraps
// smtp::session in one); its requests go to the shard's request_handler.
// Buffers: the buffer ring owns its memory and lends one buffer per recv CQE
// to a connection, which must give it back (recycle) before the batch ends;
// a connection owns its output string (the session's replies being sent) and
// its spill string (read-ahead parked while a request waits); the session
// owns everything inside it.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "postino/core.h"
#include "postino/runtime.h"
#include "postino/tls.h"

struct io_uring;
struct io_uring_buf_ring;

namespace postino::io {

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
// False, with `error` naming the address, when some socket already listens
// on address:port (another gateway would otherwise share it through
// SO_REUSEPORT and silently take part of the connections). Call before the
// first open_listener of a fixed port.
bool port_is_free(const std::string& address, std::uint16_t port, std::string& error);
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

class connection;
class server;

// The protocol a connection speaks: a pure state machine that consumes bytes
// and produces reply bytes and requests (an SMTP session, behind the app's
// adapter). The connection feeds it, sends its output, and while it has a
// request pending hands the connection to the shard's request_handler.
class session {
 public:
  virtual ~session() = default;
  virtual void start() = 0;                               // the greeting, into output()
  virtual std::size_t feed(std::string_view input) = 0;   // bytes taken
  virtual bool has_request() const = 0;
  virtual std::string& output() = 0;                      // the owner sends and clears it
  virtual bool closing() const = 0;                       // close once output is sent
  virtual bool output_full() const = 0;                   // feed() takes nothing until output is sent
  virtual std::chrono::milliseconds idle_limit() const = 0;  // how long the peer may be silent now
  virtual void on_timeout() = 0;
  virtual void on_shutdown() = 0;
  // True once, right after the session accepted STARTTLS: the connection
  // sends what is queued in the clear, drops whatever the client sent
  // meanwhile (CVE-2011-0411) and then speaks TLS.
  virtual bool take_starttls() { return false; }
};

// Who is on the other end: the number is unique across shards since start.
struct peer_info {
  std::uint64_t number = 0;
  std::string ip;  // textual; "unknown" when the kernel could not say
};

// Answers sessions' pending requests. One per shard, created on the shard's
// thread before its server, used only there.
class request_handler {
 public:
  virtual ~request_handler() = default;
  // The session of `c` has a pending request. Resolve it now or later and
  // then call c.complete(); if c.gone(), skip the resolve but still call
  // complete(), which releases the connection.
  virtual void handle(connection& c) = 0;
  // `c` closed, or its client finished sending, while its request is with
  // the handler. A handler that can drop the request (a password check
  // still queued) does: it resolves the session if !c.gone() and calls
  // c.complete() now; otherwise it does nothing and completes as usual.
  virtual void abandoned(connection& c) {}
};

struct listener_spec {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: ephemeral
  // Makes each accepted connection's session, on its shard's thread.
  std::function<std::unique_ptr<session>(peer_info)> make_session;
  // implicit: TLS from the first byte (the session's greeting waits for the
  // handshake); starttls: when the session says so. Needs `tls`.
  tls_mode tls_start = tls_mode::none;
  std::shared_ptr<tls_context> tls;
};

struct server_options {
  unsigned buffer_count = 4096;         // provided buffers per shard (power of two)
  unsigned buffer_size = 4096;          // bytes each
  unsigned listen_backlog = 4096;
  std::size_t spill_limit = 64 * 1024;  // read-ahead kept while a request waits
};

// The listening sockets of every (shard, listener) pair, opened on the main
// thread before the runtime starts (SO_REUSEPORT; port 0 is resolved once
// and shared by all shards), and the connection numbers. Outlives the runtime.
class listener_set {
 public:
  listener_set(std::vector<listener_spec> specs, unsigned shards, server_options options);
  ~listener_set();  // closes the sockets no server took
  listener_set(const listener_set&) = delete;
  listener_set& operator=(const listener_set&) = delete;

  bool bind(std::string& error);
  std::uint16_t bound_port(std::size_t listener) const { return ports_.at(listener); }
  std::size_t size() const { return specs_.size(); }
  const listener_spec& spec(std::size_t listener) const { return specs_[listener]; }
  const server_options& options() const { return options_; }
  // The socket of (shard, listener), now owned by the caller; -1 if unbound.
  int take_fd(unsigned shard, std::size_t listener);
  std::uint64_t next_connection_number() { return numbers_.fetch_add(1, std::memory_order_relaxed) + 1; }

 private:
  std::vector<listener_spec> specs_;
  unsigned shards_;
  server_options options_;
  std::vector<int> fds_;  // [shard][listener]
  std::vector<std::uint16_t> ports_;
  alignas(core::cache_line) std::atomic<std::uint64_t> numbers_{0};
};

class acceptor;

// One shard's listeners and connections, a service of that shard: created on
// its thread (after the request handler, which must outlive it), it takes
// the shard's sockets from the listener set and accepts until shutdown.
class server final : public core::service {
 public:
  // Throws std::runtime_error when the buffer ring cannot be set up.
  server(core::shard& shard, listener_set& listeners, request_handler& handler);
  ~server() override;
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  core::shard& shard() { return shard_; }
  request_handler& handler() { return handler_; }
  buffer_ring& buffers() { return buffers_; }
  listener_set& listeners() { return listeners_; }
  bool stopping() const { return stopping_; }

  void after_batch() override;      // hands buffers back, frees closed connections
  void begin_shutdown() override;   // stops accepting; idle sessions say goodbye
  void grace_expired() override;    // closes what is left
  bool drained() const override;

  // For the acceptors and connections.
  void adopt(connection* c);
  void retire(connection* c);       // deleted after the current batch
  // Fixed-file slots: a multishot accept that finds the table full takes the
  // connection off the backlog and then drops it, so acceptors keep count and
  // stop before the table fills (the backlog then holds the next clients).
  unsigned free_slots() const { return shard_.fixed_files() - slots_used_; }
  unsigned slot_margin() const { return slot_margin_; }
  void slot_taken() { ++slots_used_; }
  void slot_released();
  // Where connections decrypt a record before the session reads it: one
  // record's plaintext, used within one call, shared by the shard.
  char* tls_scratch() { return tls_scratch_.get(); }
  static constexpr std::size_t tls_scratch_size = 16 * 1024;

 private:
  core::shard& shard_;
  listener_set& listeners_;
  request_handler& handler_;
  buffer_ring buffers_;
  std::vector<std::unique_ptr<acceptor>> acceptors_;
  // Connections: an intrusive list would save a pointer per connection, but
  // the vector keeps the connection itself free of list hooks; index kept in
  // the connection for O(1) removal.
  std::vector<connection*> connections_;
  std::vector<connection*> graveyard_;
  unsigned slots_used_ = 0;
  unsigned slot_margin_ = 1;
  bool stopping_ = false;
  std::unique_ptr<char[]> tls_scratch_;
};

// Multishot accept on one shard's listening socket for one listener,
// installing direct descriptors. Re-armed when the kernel ends it, cancelled
// on shutdown.
class acceptor final : public core::completion {
 public:
  acceptor(server& owner, std::size_t listener, int fd);
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
  server& server_;
  std::size_t listener_;
  int fd_;
  bool armed_ = false;
  bool multishot_ = false;
  bool cancelling_ = false;
  bool stopping_ = false;
  bool logged_full_ = false;
  retry_timer retry_;
};

// One accepted socket and its session. Lives on its shard's heap; freed
// (at the end of a CQE batch) once the socket is closed and no CQE, request
// answer or journal waiter can still reach it.
class connection final : public core::timer_node {
 public:
  connection(server& owner, std::size_t listener, int fixed_fd);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // For request handlers.
  io::session& session() { return *session_; }
  core::shard& shard() { return server_.shard(); }
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
  void take_plain(std::string_view bytes);
  void receive_tls(std::string_view bytes);
  void on_tls_established();
  void start_tls();
  void take_output();
  void release_reply_buffers();
  void park(std::string_view bytes);
  std::size_t process(std::string_view input);
  void start_request();
  void resume();
  void flush();
  void arm_idle_timer();
  void teardown();
  void maybe_retire();

  server& server_;
  op<&connection::on_recv> recv_op_;
  op<&connection::on_send> send_op_;
  std::unique_ptr<io::session> session_;
  std::unique_ptr<tls_channel> tls_;  // null: the connection is in the clear
  std::string out_;    // bytes being sent (swapped out of session.output(), or the TLS channel's)
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
  bool tls_starting_ = false;  // STARTTLS accepted: clear output still going out
  bool tls_failed_ = false;    // close once the alert is sent
  bool tls_notified_ = false;  // close_notify queued
};

}  // namespace postino::io
