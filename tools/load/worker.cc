// The I/O side of one postino-load thread (see worker.h): connects sessions
// (a plain socket is bound to its source address, registered as a direct
// descriptor and closed, so the process fd table holds none of them), keeps
// one multishot recv per connection on a provided-buffer ring, at most one
// send per connection in flight, and schedules messages (closed loop, open
// loop at a fixed rate, churn) or NOOP probes (idle). Receive buffers belong
// to the worker and go back to the buffer ring as soon as their bytes are
// parsed; a session's `sending` buffer belongs to the kernel until its send
// completes, even after the connection died.
// TLS (--tls) runs on memory BIOs (tls_client.h says why): a connection's
// ciphertext goes through its tls_connection between the ring's buffers and
// the session, which only ever sees plaintext; the TLS object belongs to the
// connection and goes with it.
#include "worker.h"

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

#include "client_session.h"
#include "message_builder.h"
#include "tls_client.h"

namespace postino::load {

std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

namespace {

constexpr std::int64_t ms = 1'000'000;
constexpr std::int64_t sec = 1'000'000'000;
constexpr std::int64_t reconnect_backoff = 100 * ms;
constexpr std::int64_t give_up_connecting = 10 * sec;  // every connect failed for this long
constexpr std::int64_t min_probe_step = 1 * ms;        // probes go out in batches at most this often
constexpr unsigned max_buf_entries = 4096;  // power of two; 8 MiB of receive buffers at most
constexpr unsigned buf_size = 2048;
constexpr unsigned buf_group = 0;

enum op : std::uint8_t { op_connect = 1, op_recv, op_send, op_shutdown, op_close };

std::uint64_t tag(op o, std::uint32_t idx, std::uint16_t gen) {
  return (std::uint64_t{gen} << 48) | (std::uint64_t{idx} << 8) | o;
}
op tag_op(std::uint64_t t) { return static_cast<op>(t & 0xff); }
std::uint32_t tag_idx(std::uint64_t t) { return static_cast<std::uint32_t>((t >> 8) & 0xffffffffffull); }
std::uint16_t tag_gen(std::uint64_t t) { return static_cast<std::uint16_t>(t >> 48); }

// The I/O state of one session slot; the protocol state is client_session.
struct conn {
  std::string sending;  // the kernel reads it until the send completes
  std::size_t sent_off = 0;
  std::int64_t connect_start = 0;
  std::int64_t last_rx = 0;
  std::int64_t reconnect_at = -1;  // after the close completes; -1: stay closed
  std::uint16_t gen = 0;
  bool active = false;  // a socket sits in the slot (connecting, open or closing)
  bool connected = false;
  bool closing = false;
  bool send_inflight = false;
  bool handshaking = false;  // counted in connecting_ until ready or gone
  bool ready = false;        // counted in ready_now_
  std::unique_ptr<tls_connection> tls;  // --tls: from its start to the close
  std::int64_t tls_start = 0;
};

class worker final : public session_host {
 public:
  worker(process_shared& shared, const thread_share& share, thread_progress& progress)
      : shared_(shared),
        cfg_(*shared.cfg),
        share_(share),
        progress_(progress),
        random_(cfg_.seed * 0x9e3779b97f4a7c15ull + share.thread_id),
        builder_(cfg_.msg, cfg_.seed + share.thread_id),
        session_cfg_(session_config::make(cfg_, builder_, random_, share.thread_id)),
        sessions_(share.sessions),
        conns_(share.sessions) {
    for (auto& s : sessions_) s.set_config(&session_cfg_);
  }

  ~worker() override {
    if (ring_ready_) io_uring_queue_exit(&ring_);
    if (br_ != nullptr) munmap(br_, buf_entries_ * sizeof(io_uring_buf));
  }

  run_results run() {
    if (share_.sessions == 0) return std::move(results_);
    if (!setup()) return std::move(results_);
    const std::int64_t start = monotonic_ns();
    last_tick_ = start;
    last_second_ = start;
    probe_tick_ = start;
    open_deadline_ = start + 5 * sec;
    for (std::uint32_t i = 0; i < share_.sessions; ++i) connect_wait_.push_back(i);
    loop();
    finish();
    return std::move(results_);
  }

  // session_host
  claim claim_message(client_session& s, std::int64_t now) override {
    const auto idx = static_cast<std::uint32_t>(&s - sessions_.data());
    if (cfg_.mode == load_mode::open) {
      if (!backlog_.empty()) {
        const std::int64_t due = backlog_.front();
        backlog_.pop_front();
        s.listed_free = false;
        return start_claim(due);
      }
      if (stopping_) return {};
      if (!s.listed_free) {
        s.listed_free = true;
        free_.push_back(idx);
      }
      return {claim_kind::wait};
    }
    if (stopping_) return {};
    if (shared_.budget != 0 && shared_.claimed.fetch_add(1, std::memory_order_relaxed) >= shared_.budget) {
      shared_.stop.store(true);  // every thread stops at its next turn
      return {};
    }
    return start_claim(cfg_.mode == load_mode::churn ? conns_[idx].connect_start : now);
  }
  bool stopping() const override { return stopping_; }
  void on_reply_code(int code, bool expected) override {
    // Counted in flat arrays (the parser guarantees 200..599): several
    // replies per message make a map lookup each worth avoiding.
    const auto i = static_cast<std::size_t>(code);
    ++results_.replies;
    ++code_counts_[i];
    if (!expected) {
      ++results_.errors;
      ++error_counts_[i];
    }
  }
  void on_ack(std::uint64_t seq, std::int64_t start_ns, std::string_view queue_id, std::int64_t now) override {
    ++results_.acked;
    const auto lat = static_cast<std::uint64_t>(now > start_ns ? now - start_ns : 0);
    results_.latency.record(lat);
    interval_.record(lat);
    results_.last_ack_ns = now;
    if (shared_.log_fd >= 0) {
      log_.append("ack ");
      log_.append(queue_id);
      log_.push_back(' ');
      append_nonce(log_, share_.thread_id, seq);
      log_.push_back('\n');
      if (log_.size() >= 64 * 1024) flush_log();
    }
  }
  void on_failed(std::uint64_t) override { ++results_.failed; }
  void on_inflight_lost(std::uint64_t seq) override {
    ++results_.inflight_lost;
    std::string nonce;
    append_nonce(nonce, share_.thread_id, seq);
    results_.inflight.push_back(std::move(nonce));
  }
  void on_ready(client_session& s, std::int64_t now) override {
    const auto idx = static_cast<std::uint32_t>(&s - sessions_.data());
    conn& c = conns_[idx];
    if (c.handshaking) {
      c.handshaking = false;
      --connecting_;
    }
    if (!c.ready) {
      c.ready = true;
      ++ready_now_;
      if (ready_now_ >= results_.ready_peak) {
        results_.ready_peak = ready_now_;
        results_.all_ready_ns = now;
      }
    }
    if (s.pipelining()) ++results_.pipelining_sessions;
  }
  void on_probe(std::int64_t rtt_ns) override {
    ++results_.probes;
    const auto v = static_cast<std::uint64_t>(rtt_ns > 0 ? rtt_ns : 0);
    results_.probe.record(v);
    interval_.record(v);
  }
  void fatal(std::string message) override {
    if (fatal_seen_) return;
    fatal_seen_ = true;
    shared_.set_fatal(std::move(message));
  }

 private:
  claim start_claim(std::int64_t start) {
    ++results_.attempted;
    if (results_.first_start_ns == 0 || start < results_.first_start_ns) results_.first_start_ns = start;
    return {claim_kind::message, ++seq_, start};
  }

  bool setup() {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
              IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = 32768;
    int rc = io_uring_queue_init_params(4096, &ring_, &p);
    if (rc == -EINVAL) {
      p = io_uring_params{};
      p.flags = IORING_SETUP_CQSIZE;
      p.cq_entries = 32768;
      rc = io_uring_queue_init_params(4096, &ring_, &p);
    }
    if (rc < 0) {
      fatal(std::string("io_uring_queue_init: ") + std::strerror(-rc));
      return false;
    }
    ring_ready_ = true;
    rc = io_uring_register_files_sparse(&ring_, share_.sessions);
    if (rc < 0) {
      fatal("io_uring_register_files_sparse(" + std::to_string(share_.sessions) + "): " + std::strerror(-rc) +
            " (the per-ring limit is RLIMIT_NOFILE; use more threads or --processes)");
      return false;
    }
    // Two buffers per session cover a burst of replies on every connection
    // at once; beyond that a recv waits (ENOBUFS, re-armed) rather than
    // memory growing with the session count.
    buf_entries_ = 256;
    while (buf_entries_ < max_buf_entries && buf_entries_ < 2 * share_.sessions) buf_entries_ *= 2;
    void* mem = mmap(nullptr, buf_entries_ * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
      fatal(std::string("mmap of the buffer ring: ") + std::strerror(errno));
      return false;
    }
    br_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<unsigned long>(br_);
    reg.ring_entries = buf_entries_;
    reg.bgid = buf_group;
    rc = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (rc < 0) {
      fatal(std::string("io_uring_register_buf_ring: ") + std::strerror(-rc));
      return false;
    }
    io_uring_buf_ring_init(br_);
    buffers_.resize(std::size_t{buf_entries_} * buf_size);
    const int mask = io_uring_buf_ring_mask(buf_entries_);
    for (unsigned i = 0; i < buf_entries_; ++i)
      io_uring_buf_ring_add(br_, buffers_.data() + std::size_t{i} * buf_size, buf_size, static_cast<unsigned short>(i), mask,
                            static_cast<int>(i));
    io_uring_buf_ring_advance(br_, static_cast<int>(buf_entries_));

    if (cfg_.tls != tls_mode::none) {
      std::string error;
      char ip[INET6_ADDRSTRLEN] = {};
      inet_ntop(cfg_.addr.family, cfg_.addr.family == AF_INET ? static_cast<const void*>(&cfg_.addr.v4) : &cfg_.addr.v6,
                ip, sizeof ip);
      tls_ctx_ = tls_client_context::make(cfg_.tls_ca, cfg_.tls_insecure, cfg_.tls_resume, ip, error);
      if (!tls_ctx_) {
        fatal(error);
        return false;
      }
    }
    addr_len_ = cfg_.addr.family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    std::memset(&addr_, 0, sizeof addr_);
    if (cfg_.addr.family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr_);
      a->sin_family = AF_INET;
      a->sin_port = htons(static_cast<std::uint16_t>(cfg_.addr.port));
      a->sin_addr = cfg_.addr.v4;
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr_);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(static_cast<std::uint16_t>(cfg_.addr.port));
      a->sin6_addr = cfg_.addr.v6;
    }
    return true;
  }

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (s == nullptr) {
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
    }
    if (s == nullptr) __builtin_trap();  // cannot happen right after a submit
    return s;
  }

  // --- connections ---------------------------------------------------------

  void start_connect(std::uint32_t idx, std::int64_t now) {
    conn& c = conns_[idx];
    const int fd = ::socket(cfg_.addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      connect_failed(idx, errno, now, false);
      return;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg_.addr.family == AF_INET) {
      // Port chosen at connect time, per destination, so each source address
      // offers the whole ephemeral range to this one server.
      setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      sockaddr_in src{};
      src.sin_family = AF_INET;
      const std::uint64_t n = static_cast<std::uint64_t>(cfg_.source_addrs > 0 ? cfg_.source_addrs : 1);
      src.sin_addr.s_addr = htonl(0x7f000001u + static_cast<std::uint32_t>((share_.session_base + idx) % n));
      if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
        const int err = errno;
        ::close(fd);
        connect_failed(idx, err, now, false);
        return;
      }
    }
    int slot_fd = fd;
    const int rc = io_uring_register_files_update(&ring_, idx, &slot_fd, 1);
    ::close(fd);
    if (rc < 0) {
      connect_failed(idx, -rc, now, false);
      return;
    }
    ++c.gen;
    c.active = true;
    c.connected = false;
    c.closing = false;
    c.connect_start = now;
    c.reconnect_at = -1;
    c.handshaking = true;
    ++connecting_;
    ++live_;
    io_uring_sqe* s = sqe();
    io_uring_prep_connect(s, static_cast<int>(idx), reinterpret_cast<sockaddr*>(&addr_), addr_len_);
    s->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(s, tag(op_connect, idx, c.gen));
  }

  // A connect that never got a socket into the slot, or that the kernel
  // refused; slot_taken says whether the slot must be closed first.
  void connect_failed(std::uint32_t idx, int err, std::int64_t now, bool slot_taken) {
    ++results_.connect_errors;
    ++results_.connect_failures[std::strerror(err)];
    if (failing_since_ == 0) failing_since_ = now;
    if (now - failing_since_ > give_up_connecting) {
      // Bounded even when only --messages was given: a server that stays
      // away ends the run, as an error if it was never there.
      if (results_.connects == 0) fatal("cannot connect to " + cfg_.addr.text + ": " + std::strerror(err));
      else shared_.stop.store(true);
    }
    const std::int64_t at = stopping_ ? -1 : now + reconnect_backoff;
    if (slot_taken) {
      close_slot(idx, at);
    } else if (at >= 0) {
      reconnect_.push_back({at, idx});
    }
  }

  void arm_recv(std::uint32_t idx) {
    io_uring_sqe* s = sqe();
    io_uring_prep_recv_multishot(s, static_cast<int>(idx), nullptr, 0, 0);
    s->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    s->buf_group = buf_group;
    io_uring_sqe_set_data64(s, tag(op_recv, idx, conns_[idx].gen));
  }

  // With TLS the session's commands are encrypted once the handshake is
  // done (until then they wait in s.out) and the send carries whatever
  // OpenSSL wrote: handshake records as well as data.
  void flush(std::uint32_t idx) {
    conn& c = conns_[idx];
    client_session& s = sessions_[idx];
    if (c.send_inflight || !c.connected || c.closing) return;
    if (c.tls) {
      if (c.tls->handshake_done() && !s.out.empty()) {
        if (!c.tls->write_plain(s.out)) {
          tls_failed(idx, monotonic_ns());
          return;
        }
        s.out.clear();
      }
      c.tls->take_cipher(c.sending);
      if (c.sending.empty()) return;
    } else {
      if (s.out.empty()) return;
      c.sending.swap(s.out);
      s.out.clear();
    }
    c.sent_off = 0;
    submit_send(idx);
  }

  // --- TLS -------------------------------------------------------------------

  void begin_tls(std::uint32_t idx, std::int64_t now) {
    conn& c = conns_[idx];
    c.tls = std::make_unique<tls_connection>();
    c.tls_start = now;
    if (!c.tls->start(*tls_ctx_)) {
      tls_failed(idx, now);
      return;
    }
    if (c.tls->offered_session()) ++results_.tls_offered;
    flush(idx);
  }

  // Ciphertext from the ring: through TLS into the session. Returns false
  // when the connection is over (already ended here).
  bool tls_data(std::uint32_t idx, std::string_view data, std::int64_t now) {
    conn& c = conns_[idx];
    client_session& s = sessions_[idx];
    const bool was_done = c.tls->handshake_done();
    plain_.clear();
    const tls_status st = c.tls->on_cipher(data, plain_);
    if (st == tls_status::failed) {
      tls_failed(idx, now);
      return false;
    }
    if (!was_done && c.tls->handshake_done()) {
      ++results_.tls_handshakes;
      if (c.tls->resumed()) ++results_.tls_resumed;
      results_.tls_handshake.record(static_cast<std::uint64_t>(now - c.tls_start));
      if (s.state() == client_session::phase::starting_tls) s.on_tls_established();
    }
    if (!plain_.empty() && !s.on_data(plain_, *this, now)) {
      end_connection(idx, now);
      return false;
    }
    if (st == tls_status::closed) {
      end_connection(idx, now);
      return false;
    }
    return true;
  }

  // A handshake or record failed. Before any handshake of this thread
  // succeeded it is a setting (a CA that does not match, a server without
  // TLS) and stops the run; later it is counted and the connection goes.
  void tls_failed(std::uint32_t idx, std::int64_t now) {
    ++results_.tls_failures;
    if (results_.tls_handshakes == 0) fatal("TLS: " + conns_[idx].tls->error());
    end_connection(idx, now);
  }

  void submit_send(std::uint32_t idx) {
    conn& c = conns_[idx];
    io_uring_sqe* s = sqe();
    io_uring_prep_send(s, static_cast<int>(idx), c.sending.data() + c.sent_off, c.sending.size() - c.sent_off,
                       MSG_NOSIGNAL);
    s->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(s, tag(op_send, idx, c.gen));
    c.send_inflight = true;
  }

  // Shuts the socket down (which also ends its multishot recv) and closes
  // the slot; the slot is reused only after the close completes.
  void close_slot(std::uint32_t idx, std::int64_t reconnect_at) {
    conn& c = conns_[idx];
    c.reconnect_at = reconnect_at;
    if (c.closing) return;
    c.closing = true;
    c.connected = false;
    c.tls.reset();
    io_uring_sqe* s = sqe();
    io_uring_prep_shutdown(s, static_cast<int>(idx), SHUT_RDWR);
    s->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
    io_uring_sqe_set_data64(s, tag(op_shutdown, idx, c.gen));
    s = sqe();
    io_uring_prep_close_direct(s, idx);
    io_uring_sqe_set_data64(s, tag(op_close, idx, c.gen));
  }

  // The connection is over, by the server's close, an error, a timeout or
  // our decision; the session settles its messages and the slot is closed.
  void end_connection(std::uint32_t idx, std::int64_t now) {
    conn& c = conns_[idx];
    client_session& s = sessions_[idx];
    const bool clean = s.state() == client_session::phase::quitting;
    if (s.on_disconnected(*this)) ++results_.disconnects;
    s.listed_free = false;
    if (c.handshaking) {
      c.handshaking = false;
      --connecting_;
    }
    if (c.ready) {
      c.ready = false;
      --ready_now_;
    }
    std::int64_t at = -1;
    if (!stopping_) at = (clean && cfg_.mode == load_mode::churn) ? now : now + reconnect_backoff;
    close_slot(idx, at);
  }

  // --- completions -------------------------------------------------------

  void on_cqe(const io_uring_cqe* cqe) {
    const std::uint64_t t = cqe->user_data;
    const std::uint32_t idx = tag_idx(t);
    const op o = tag_op(t);
    if (idx >= conns_.size()) return;
    conn& c = conns_[idx];
    const bool current = tag_gen(t) == c.gen;
    switch (o) {
      case op_connect: {
        if (!current || c.closing) return;
        const std::int64_t now = monotonic_ns();
        if (cqe->res < 0) {
          if (c.handshaking) {
            c.handshaking = false;
            --connecting_;
          }
          connect_failed(idx, -cqe->res, now, true);
          return;
        }
        ++results_.connects;
        failing_since_ = 0;
        c.connected = true;
        c.last_rx = now;
        arm_recv(idx);
        sessions_[idx].on_connected();
        if (cfg_.tls == tls_mode::implicit) begin_tls(idx, now);
        return;
      }
      case op_recv: on_recv(idx, c, current, cqe); return;
      case op_send: {
        c.send_inflight = false;
        if (!current || !c.connected) {
          c.sending.clear();
          flush(idx);  // a new connection may be waiting to write
          return;
        }
        if (cqe->res < 0) {
          end_connection(idx, monotonic_ns());
          return;
        }
        c.sent_off += static_cast<std::size_t>(cqe->res);
        if (c.sent_off < c.sending.size()) {
          submit_send(idx);
          return;
        }
        c.sending.clear();
        flush(idx);
        return;
      }
      case op_shutdown: return;
      case op_close: {
        if (!current || !c.closing) return;
        c.closing = false;
        c.active = false;
        --live_;
        if (c.reconnect_at < 0 || stopping_) return;
        if (c.reconnect_at <= monotonic_ns()) connect_wait_.push_back(idx);
        else reconnect_.push_back({c.reconnect_at, idx});
        return;
      }
    }
  }

  void on_recv(std::uint32_t idx, conn& c, bool current, const io_uring_cqe* cqe) {
    const bool has_buffer = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    const unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!current || !c.connected) {
      if (has_buffer) give_back(bid);
      return;
    }
    const std::int64_t now = monotonic_ns();
    if (cqe->res > 0 && has_buffer) {
      c.last_rx = now;
      const std::string_view data(buffers_.data() + std::size_t{bid} * buf_size, static_cast<std::size_t>(cqe->res));
      if (c.tls) {
        const bool keep = tls_data(idx, data, now);
        give_back(bid);
        if (!keep) return;
      } else {
        const bool keep = sessions_[idx].on_data(data, *this, now);
        give_back(bid);
        if (!keep) {
          end_connection(idx, now);
          return;
        }
      }
      if (sessions_[idx].take_tls_request()) begin_tls(idx, now);
      if (!c.connected || c.closing) return;
      flush(idx);
      if (!more) arm_recv(idx);
      return;
    }
    if (has_buffer) give_back(bid);
    if (cqe->res == -ENOBUFS) {
      ++enobufs_;
      arm_recv(idx);
      return;
    }
    end_connection(idx, now);  // EOF or an error
  }

  void give_back(unsigned bid) {
    io_uring_buf_ring_add(br_, buffers_.data() + std::size_t{bid} * buf_size, buf_size, static_cast<unsigned short>(bid),
                          io_uring_buf_ring_mask(buf_entries_), 0);
    io_uring_buf_ring_advance(br_, 1);
  }

  // --- scheduling ----------------------------------------------------------

  void update_stopping(std::int64_t now) {
    if (stopping_) return;
    const bool deadline = shared_.deadline_ns != 0 && now >= shared_.deadline_ns;
    if (!(deadline || own_stop_ || shared_.stop.load(std::memory_order_relaxed) ||
          shared_.abort.load(std::memory_order_relaxed)))
      return;
    stopping_ = true;
    stop_time_ = now;
    if (!own_stop_) shared_.stop.store(true);
    results_.backlog_unsent += backlog_.size();
    backlog_.clear();
    connect_wait_.clear();
    reconnect_.clear();
    // Sessions with nothing outstanding quit now; the others when their
    // replies come in.
    for (std::uint32_t i = 0; i < sessions_.size(); ++i) {
      client_session& s = sessions_[i];
      if (s.state() == client_session::phase::ready && !s.awaiting_reply() && !s.mid_transaction()) {
        s.quit();
        s.listed_free = false;
        flush(i);
      }
    }
    free_.clear();
  }

  void start_connects(std::int64_t now) {
    while (!reconnect_.empty() && reconnect_.front().first <= now) {
      connect_wait_.push_back(reconnect_.front().second);
      reconnect_.pop_front();
    }
    while (!connect_wait_.empty() && connecting_ < static_cast<std::uint64_t>(cfg_.max_connecting)) {
      const std::uint32_t idx = connect_wait_.front();
      connect_wait_.pop_front();
      if (conns_[idx].active) continue;
      start_connect(idx, now);
    }
  }

  void schedule_open(std::int64_t now) {
    if (stopping_) return;
    if (open_t0_ == 0) {
      if (ready_now_ < share_.sessions && now < open_deadline_) return;
      open_t0_ = now;
      interval_ns_ = share_.rate > 0 ? 1e9 / share_.rate : 1e9;
      next_due_ = static_cast<double>(now);
    }
    while (!schedule_done_ && next_due_ <= static_cast<double>(now)) {
      if (shared_.budget != 0 && shared_.claimed.fetch_add(1, std::memory_order_relaxed) >= shared_.budget) {
        // The messages already due still go out; this thread stops when
        // its backlog is empty.
        schedule_done_ = true;
        break;
      }
      backlog_.push_back(static_cast<std::int64_t>(next_due_));
      next_due_ += interval_ns_;
    }
    while (!backlog_.empty() && !free_.empty()) {
      const std::uint32_t idx = free_.back();
      free_.pop_back();
      client_session& s = sessions_[idx];
      if (!s.listed_free) continue;
      s.listed_free = false;
      if (!s.free_for_message() || !conns_[idx].connected) continue;
      const std::int64_t due = backlog_.front();
      backlog_.pop_front();
      s.begin_message(start_claim(due));
      flush(idx);
    }
    if (schedule_done_ && backlog_.empty()) own_stop_ = true;
  }

  void schedule_probes(std::int64_t now) {
    if (stopping_ || ready_now_ == 0) {
      probe_tick_ = now;
      return;
    }
    const double per_ns = static_cast<double>(ready_now_) / (cfg_.probe_interval * 1e9);
    probe_quota_ += static_cast<double>(now - probe_tick_) * per_ns;
    probe_tick_ = now;
    std::size_t scanned = 0;
    while (probe_quota_ >= 1.0 && scanned < sessions_.size()) {
      ++scanned;
      probe_cursor_ = (probe_cursor_ + 1) % sessions_.size();
      client_session& s = sessions_[probe_cursor_];
      if (s.state() != client_session::phase::ready || s.awaiting_reply() || !conns_[probe_cursor_].connected) continue;
      s.probe(now);
      flush(static_cast<std::uint32_t>(probe_cursor_));
      probe_quota_ -= 1.0;
    }
    if (probe_quota_ > static_cast<double>(ready_now_)) probe_quota_ = static_cast<double>(ready_now_);
  }

  void check_timeouts(std::int64_t now) {
    const auto limit = static_cast<std::int64_t>(cfg_.reply_timeout * 1e9);
    for (std::uint32_t i = 0; i < sessions_.size(); ++i) {
      conn& c = conns_[i];
      if (!c.connected || c.closing || !sessions_[i].waiting()) continue;
      if (now - c.last_rx > limit) {
        ++results_.timeouts;
        end_connection(i, now);
      }
    }
  }

  void publish(std::int64_t now) {
    progress_.acked.store(results_.acked, std::memory_order_relaxed);
    progress_.errors.store(results_.errors, std::memory_order_relaxed);
    progress_.ready.store(ready_now_, std::memory_order_relaxed);
    progress_.probes.store(results_.probes, std::memory_order_relaxed);
    // The live p99 covers the samples since the last whole second, so the
    // first seconds show a value too.
    if (interval_.count() != 0)
      progress_.p99_ns.store(interval_.value_at_quantile(0.99), std::memory_order_relaxed);
    if (now - last_second_ >= sec) {
      interval_.reset();
      last_second_ = now;
      check_timeouts(now);
    }
  }

  std::int64_t next_wake(std::int64_t now) const {
    std::int64_t wake = now + 100 * ms;
    auto earlier = [&wake](std::int64_t t) {
      if (t < wake) wake = t;
    };
    if (!stopping_) {
      if (shared_.deadline_ns != 0) earlier(shared_.deadline_ns);
      if (cfg_.mode == load_mode::open && open_t0_ != 0) earlier(static_cast<std::int64_t>(next_due_));
      if (cfg_.mode == load_mode::idle && ready_now_ > 0)
        earlier(now + std::max(min_probe_step, static_cast<std::int64_t>(cfg_.probe_interval * 1e9 /
                                                                            static_cast<double>(ready_now_))));
      if (!reconnect_.empty()) earlier(reconnect_.front().first);
    } else {
      earlier(stop_time_ + static_cast<std::int64_t>(cfg_.drain_timeout * 1e9));
    }
    return wake;
  }

  void loop() {
    for (;;) {
      std::int64_t now = monotonic_ns();
      update_stopping(now);
      if (shared_.abort.load(std::memory_order_relaxed)) break;
      if (stopping_ && (live_ == 0 || now - stop_time_ > static_cast<std::int64_t>(cfg_.drain_timeout * 1e9))) break;
      if (!stopping_) {
        start_connects(now);
        if (cfg_.mode == load_mode::open) schedule_open(now);
        if (cfg_.mode == load_mode::idle) schedule_probes(now);
      }
      if (now - last_tick_ >= 100 * ms) {
        publish(now);
        last_tick_ = now;
      }
      const std::int64_t wait = std::max<std::int64_t>(next_wake(now) - now, 0);
      __kernel_timespec ts{};
      ts.tv_sec = wait / sec;
      ts.tv_nsec = wait % sec;
      io_uring_cqe* first = nullptr;
      const int rc = io_uring_submit_and_wait_timeout(&ring_, &first, 1, &ts, nullptr);
      if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        fatal(std::string("io_uring_submit_and_wait_timeout: ") + std::strerror(-rc));
        break;
      }
      unsigned head = 0, seen = 0;
      io_uring_cqe* cqe = nullptr;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        on_cqe(cqe);
        ++seen;
      }
      io_uring_cq_advance(&ring_, seen);
    }
  }

  void finish() {
    // Whatever is still open settles its messages: an ended text without a
    // reply is in flight.
    for (std::uint32_t i = 0; i < sessions_.size(); ++i)
      if (conns_[i].active && sessions_[i].state() != client_session::phase::closed) sessions_[i].on_disconnected(*this);
    results_.backlog_unsent += backlog_.size();
    for (std::size_t i = 0; i < code_counts_.size(); ++i) {
      if (code_counts_[i] != 0) results_.codes[static_cast<int>(i)] += code_counts_[i];
      if (error_counts_[i] != 0) results_.error_codes[static_cast<int>(i)] += error_counts_[i];
    }
    flush_log();
    publish(monotonic_ns());
  }

  void flush_log() {
    std::size_t off = 0;
    while (off < log_.size()) {
      const ssize_t n = ::write(shared_.log_fd, log_.data() + off, log_.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        fatal(std::string("writing the --log file: ") + std::strerror(errno));
        break;
      }
      off += static_cast<std::size_t>(n);
    }
    log_.clear();
  }

  process_shared& shared_;
  const settings& cfg_;
  thread_share share_;
  thread_progress& progress_;
  rng random_;
  message_builder builder_;
  session_config session_cfg_;
  std::vector<client_session> sessions_;
  std::vector<conn> conns_;
  run_results results_;
  std::array<std::uint64_t, 600> code_counts_{};
  std::array<std::uint64_t, 600> error_counts_{};
  histogram interval_;

  io_uring ring_{};
  bool ring_ready_ = false;
  io_uring_buf_ring* br_ = nullptr;
  unsigned buf_entries_ = 0;
  std::vector<char> buffers_;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;

  std::deque<std::uint32_t> connect_wait_;
  std::deque<std::pair<std::int64_t, std::uint32_t>> reconnect_;  // in due order: one fixed backoff
  std::uint64_t connecting_ = 0;
  std::uint64_t live_ = 0;
  std::uint64_t ready_now_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t enobufs_ = 0;
  std::int64_t failing_since_ = 0;  // first connect failure since the last success
  std::int64_t last_tick_ = 0;
  std::int64_t last_second_ = 0;
  bool stopping_ = false;
  bool fatal_seen_ = false;
  std::int64_t stop_time_ = 0;

  // open loop
  std::deque<std::int64_t> backlog_;  // due times not yet sent
  std::vector<std::uint32_t> free_;
  std::int64_t open_t0_ = 0;
  bool schedule_done_ = false;  // the message budget is used up
  bool own_stop_ = false;       // and every message of it was sent
  std::int64_t open_deadline_ = 0;
  double next_due_ = 0;
  double interval_ns_ = 0;

  // idle
  std::size_t probe_cursor_ = 0;
  double probe_quota_ = 0;
  std::int64_t probe_tick_ = 0;

  std::string log_;
  std::unique_ptr<tls_client_context> tls_ctx_;  // --tls: this thread's SSL_CTX and last ticket
  std::string plain_;                            // decrypted bytes of one receive
};

}  // namespace

run_results run_worker(process_shared& shared, const thread_share& share, thread_progress& progress) {
  auto w = std::make_unique<worker>(shared, share, progress);
  run_results r = w->run();
  w.reset();  // closes the ring and its sockets before the monitor reports
  progress.done.store(true);
  shared.thread_done();
  return r;
}

}  // namespace postino::load
