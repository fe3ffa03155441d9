// A connection: a direct descriptor, its session, and the little state
// that moves bytes between them. Buffers: a received buffer belongs to the
// server's buffer ring and is only read during ingest(); bytes the session
// cannot take yet (a request is pending) are copied into spill_, which the
// connection owns and frees once drained. out_ holds the replies of one batch
// (swapped out of the session's output string) and stays untouched while its
// send is in flight; at most one send per connection is in flight.
// TLS: ciphertext is decrypted record by record from the received buffer
// into the shard's scratch and handed on as if it had been received in the
// clear; the session's output is encrypted into the channel's pending string,
// which is swapped into out_ just as the session's output is otherwise.
// Lifetime: the object outlives its socket until every SQE that points at it
// has completed and any request it handed out has come back (waiting_), so a
// late CQE, credit answer or journal waiter never touches freed memory.
#include <liburing.h>
#include <sys/socket.h>

#include <cerrno>

#include "postino/io.h"

namespace postino::io {

struct connection::peer_probe final : core::completion {
  connection* self = nullptr;
  sockaddr_storage addr{};
  void on_complete(int result, std::uint32_t) override {
    self->on_peer(result, addr);
    delete this;
  }
};

connection::connection(server& owner, std::size_t listener, int fixed_fd)
    : server_(owner),
      recv_op_(this),
      send_op_(this),
      fd_(fixed_fd),
      listener_(static_cast<std::uint16_t>(listener)) {}

connection::~connection() = default;

void connection::begin() {
  auto& m = server_.shard().metrics();
  core::shard_metrics::bump(m.connections_total);
  core::shard_metrics::bump(m.sessions_active);
  const auto& spec = server_.listeners().spec(listener_);
  const bool v6 = spec.address.find(':') != std::string::npos;
  auto* probe = new peer_probe;
  probe->self = this;
  io_uring_sqe* sqe = core::get_sqe(server_.shard().ring());
  prep_peer_name(sqe, fd_, &probe->addr, v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  io_uring_sqe_set_data(sqe, static_cast<core::completion*>(probe));
  probe_inflight_ = true;
}

void connection::on_peer(int result, const sockaddr_storage& addr) {
  probe_inflight_ = false;
  if (closed_) {
    maybe_retire();
    return;
  }
  const auto& spec = server_.listeners().spec(listener_);
  peer_info peer;
  peer.number = server_.listeners().next_connection_number();
  peer.ip = result >= 0 ? format_ip(addr) : "unknown";
  session_ = spec.make_session(std::move(peer));
  if (spec.tls_start == tls_mode::implicit) {
    tls_ = std::make_unique<tls_channel>(spec.tls->current());
    if (!tls_->valid()) {
      teardown();
      return;
    }
  }
  session_->start();  // with implicit TLS the greeting waits for the handshake
  // Accepted just as the shutdown began: greet, then say goodbye.
  if (server_.stopping()) session_->on_shutdown();
  arm_recv();
  flush();
  arm_idle_timer();
}

void connection::arm_recv() {
  if (recv_armed_ || recv_paused_ || peer_eof_ || closed_) return;
  io_uring_sqe* sqe = core::get_sqe(server_.shard().ring());
  io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
  sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
  sqe->buf_group = server_.buffers().group();
  io_uring_sqe_set_data(sqe, static_cast<core::completion*>(&recv_op_));
  recv_armed_ = true;
}

// Backpressure: a client that keeps sending while its request waits is left
// to TCP's window instead of growing spill_ without bound.
void connection::pause_recv() {
  if (recv_paused_) return;
  recv_paused_ = true;
  if (!recv_armed_) return;
  io_uring_sqe* sqe = core::get_sqe(server_.shard().ring());
  io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(static_cast<core::completion*>(&recv_op_)), 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, 0);
}

void connection::on_recv(int result, std::uint32_t flags) {
  if ((flags & IORING_CQE_F_MORE) == 0) recv_armed_ = false;
  if (flags & IORING_CQE_F_BUFFER) {
    auto id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    if (result > 0 && !closed_)
      ingest(std::string_view(server_.buffers().data(id), static_cast<std::size_t>(result)));
    server_.buffers().recycle(id);
  }
  if (closed_) {
    maybe_retire();
    return;
  }
  if (result == 0) {
    // The peer finished sending; what it sent still gets its replies. With
    // nothing of it left to run, a request whose answer it could no longer
    // act on (a password check) may be dropped; a pipelining client that
    // half-closed behind its commands still has them parked and waits.
    peer_eof_ = true;
    recv_armed_ = false;
    if (waiting_ && spill_.empty()) server_.handler().abandoned(*this);
    flush();
    return;
  }
  if (result < 0 && result != -ENOBUFS && result != -ECANCELED) {
    teardown();
    return;
  }
  arm_recv();  // after ENOBUFS, a cancel, or any CQE without F_MORE
}

// Input the session cannot take yet (a request waits, or its replies are
// not yet read by the client) is parked in spill_; recv pauses once spill_
// reaches its bound, or at once when replies are what blocks, so that the
// buffers go back to the ring and neither spill_ nor the output grows.
void connection::ingest(std::string_view bytes) {
  // After STARTTLS nothing sent in the clear may run (CVE-2011-0411).
  if (!session_ || session_->closing() || tls_starting_ || tls_failed_) return;
  timed_out_ = false;
  if (tls_)
    receive_tls(bytes);
  else
    take_plain(bytes);
}

void connection::take_plain(std::string_view bytes) {
  if (waiting_ || !spill_.empty()) {
    park(bytes);
    return;
  }
  std::size_t used = process(bytes);
  if (used < bytes.size() && !session_->closing()) park(bytes.substr(used));
  flush();
  if (!waiting_) arm_idle_timer();
}

void connection::receive_tls(std::string_view bytes) {
  const bool was_established = tls_->established();
  const auto result = tls_->decrypt(bytes, server_.tls_scratch(), server::tls_scratch_size, [this](std::string_view plain) {
    take_plain(plain);
    return !closed_ && !session_->closing();
  });
  if (closed_) return;
  if (!was_established && tls_->established()) on_tls_established();
  if (result == tls_channel::status::failed) {
    core::shard_metrics::bump(server_.shard().metrics().tls_failures);
    tls_failed_ = true;  // the alert goes out, then the connection closes
  } else if (result == tls_channel::status::closed) {
    peer_eof_ = true;    // close_notify: as the end of the stream
    if (waiting_ && spill_.empty()) server_.handler().abandoned(*this);
  }
  flush();
}

void connection::on_tls_established() {
  auto& m = server_.shard().metrics();
  core::shard_metrics::bump(m.tls_handshakes);
  if (tls_->resumed()) core::shard_metrics::bump(m.tls_resumed);
}

// The 220 to STARTTLS and everything before it went out in the clear; from
// here on the bytes are TLS records.
void connection::start_tls() {
  tls_starting_ = false;
  const auto& spec = server_.listeners().spec(listener_);
  tls_ = std::make_unique<tls_channel>(spec.tls ? spec.tls->current() : nullptr);
  if (!tls_->valid()) teardown();
}

void connection::park(std::string_view bytes) {
  spill_.append(bytes);
  if (spill_.size() >= server_.listeners().options().spill_limit || session_->output_full()) pause_recv();
}

// Feeds `input` until it is used up, the session closes, or a request has to
// wait. Requests answered synchronously (a local credit check) keep the loop
// going without leaving it.
std::size_t connection::process(std::string_view input) {
  std::size_t pos = 0;
  in_process_ = true;
  while (!waiting_ && !session_->closing() && !session_->output_full()) {
    if (session_->has_request()) {
      start_request();
      continue;
    }
    if (pos >= input.size()) break;
    std::size_t n = session_->feed(input.substr(pos));
    pos += n;
    if (session_->take_starttls()) {
      tls_starting_ = true;
      pos = input.size();  // the session dropped the read-ahead
      break;
    }
    if (n == 0 && !session_->has_request()) break;
  }
  in_process_ = false;
  return pos;
}

void connection::start_request() {
  waiting_ = true;
  server_.shard().timers().cancel(*this);  // our slowness is not the client's idleness
  server_.handler().handle(*this);
}

void connection::complete() {
  waiting_ = false;
  if (in_process_) return;  // process() carries on
  if (closed_) {
    maybe_retire();
    return;
  }
  resume();
}

void connection::resume() {
  // Nothing is received while this runs, so spill_ stays empty meanwhile.
  // Run even without parked input: an answer may leave the next request
  // pending (the content step's result starts the commit).
  std::string input;
  input.swap(spill_);
  std::size_t used = process(input);
  if (used < input.size() && !session_->closing()) {
    input.erase(0, used);
    spill_.swap(input);
  }
  flush();
  if (closed_) return;
  if (!waiting_) arm_idle_timer();
  if (recv_paused_ && !waiting_ && !session_->output_full() && spill_.size() < server_.listeners().options().spill_limit / 2) {
    recv_paused_ = false;
    arm_recv();
  }
}

void connection::flush() {
  if (closed_ || send_inflight_) return;
  if (out_off_ >= out_.size()) {
    out_.clear();
    out_off_ = 0;
    take_output();
  }
  if (out_off_ < out_.size()) {
    io_uring_sqe* sqe = core::get_sqe(server_.shard().ring());
    io_uring_prep_send(sqe, fd_, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, static_cast<core::completion*>(&send_op_));
    send_inflight_ = true;
    return;
  }
  release_reply_buffers();
  if (!session_) return;
  if (tls_starting_) {
    start_tls();
    return;
  }
  if (tls_failed_ || session_->closing() || (peer_eof_ && !waiting_ && spill_.empty())) teardown();
}

// Everything is out: an idle connection keeps no reply buffer, neither ours
// nor the session's nor the TLS channel's (each kept the capacity of its
// last reply or record: some 300 bytes for every idle TLS session, measured
// with heaptrack). A busy session allocates one reply buffer per batch.
void connection::release_reply_buffers() {
  std::string().swap(out_);
  if (session_ && session_->output().empty()) std::string().swap(session_->output());
  if (tls_ && tls_->pending().empty()) std::string().swap(tls_->pending());
}

// The next bytes to send: the session's replies, through TLS when it is on.
// Before the handshake is done they wait in the session (an implicit-TLS
// greeting) and only the handshake's records go out.
void connection::take_output() {
  if (!session_) return;
  std::string& replies = session_->output();
  if (!tls_) {
    if (!replies.empty()) out_.swap(replies);
    return;
  }
  if (tls_->established() && !tls_failed_) {
    if (!replies.empty() && !tls_->write(replies)) tls_failed_ = true;
    replies.clear();
    if (session_->closing() && !tls_notified_) {
      tls_notified_ = true;
      tls_->close_notify();
    }
  }
  out_.swap(tls_->pending());
}

void connection::on_send(int result, std::uint32_t) {
  send_inflight_ = false;
  if (closed_) {
    maybe_retire();
    return;
  }
  if (result < 0) {
    teardown();
    return;
  }
  out_off_ += static_cast<std::uint32_t>(result);  // a short send resumes here
  flush();
  // The client read what held the session back: take the parked input.
  if (!closed_ && !waiting_ && session_ && !session_->output_full() && (recv_paused_ || !spill_.empty()))
    resume();
}

void connection::arm_idle_timer() {
  if (closed_ || !session_ || session_->closing()) return;
  server_.shard().timers().schedule(*this, server_.shard().now_ms(),
                                    static_cast<std::uint64_t>(session_->idle_limit().count()));
}

void connection::on_timer() {
  if (closed_) return;
  if (!session_ || timed_out_ || session_->closing()) {
    teardown();  // the 421 could not be delivered in a whole period
    return;
  }
  timed_out_ = true;
  session_->on_timeout();
  flush();
  // A whole idle period more to deliver the 421, then teardown.
  if (!closed_)
    server_.shard().timers().schedule(*this, server_.shard().now_ms(),
                                      static_cast<std::uint64_t>(session_->idle_limit().count()));
}

void connection::server_shutdown() {
  if (closed_ || !session_) return;  // a session still being set up sees stopping() itself
  session_->on_shutdown();
  flush();
}

void connection::force_close() { teardown(); }

void connection::teardown() {
  if (closed_) return;
  closed_ = true;
  server_.shard().timers().cancel(*this);
  core::shard_metrics::bump(server_.shard().metrics().sessions_active, -1);
  std::string().swap(spill_);
  // Cancel everything on the descriptor (multishot recv, a send), then close
  // it; the final CQEs of the cancelled requests release this object.
  io_uring_sqe* sqe = core::get_sqe(server_.shard().ring());
  io_uring_prep_cancel_fd(sqe, fd_, IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, 0);
  sqe = core::get_sqe(server_.shard().ring());
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(fd_));
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, 0);
  server_.slot_released();  // queued after the close, so an accept finds it free
  if (waiting_) server_.handler().abandoned(*this);
  maybe_retire();
}

void connection::maybe_retire() {
  if (!closed_ || retired_ || recv_armed_ || send_inflight_ || probe_inflight_ || waiting_) return;
  retired_ = true;
  server_.retire(this);
}

}  // namespace postino::io
