// smpp_bind against a tiny SMSC written here: a thread with blocking
// sockets on 127.0.0.1 that speaks SMPP through the codec and can be told to
// hold, throttle or nack submits, refuse binds, ignore enquire_link, unbind,
// send deliver_sm or raw bytes, and close. The bind runs on a real io_uring
// ring (same flags as a shard) driven by this thread: submit, wait briefly
// for CQEs, dispatch, advance the timer wheel. Most tests use the real
// monotonic clock and bound their own duration; the throttling tests hand
// the bind a clock they move by hand, so pauses and rate changes are checked
// exactly without any wall-time assumption. Buffers: the SMSC thread owns its
// socket and buffers; what it records sits behind its mutex.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../src/delivery/smpp_bind.h"
#include "postino/io.h"
#include "postino/runtime.h"
#include "postino/smpp.h"

namespace postino::delivery {
namespace {

using smpp::command::response_bit;

// --- the SMSC ---------------------------------------------------------------
class fake_smsc {
 public:
  // What the SMSC saw, in order ("bind", "submit", "submit_resp", "unbind", ...).
  struct record {
    int connections = 0;
    std::vector<smpp::bind_request> binds;
    std::vector<smpp::short_message_pdu> submits;
    std::vector<std::uint32_t> held;  // sequences of submits not answered yet
    std::size_t max_unanswered = 0;
    int enquires = 0;
    int unbinds = 0;
    std::vector<std::uint32_t> unbind_resps;                           // sequences
    std::vector<std::pair<std::uint32_t, std::uint32_t>> deliver_resps;  // (sequence, status)
    std::vector<std::pair<std::uint32_t, std::uint32_t>> nacks;          // (sequence, status)
    std::vector<std::string> events;
  };

  std::atomic<bool> answer_submits{true};
  std::atomic<bool> answer_enquire{true};
  std::atomic<int> refuse_binds{0};     // the next N binds get ESME_RINVPASWD
  std::atomic<int> throttle_submits{0}; // the next N submits get ESME_RTHROTTLED
  std::atomic<int> nack_submits{0};     // the next N submits get generic_nack ESME_RSYSERR

  fake_smsc() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 16);
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }

  ~fake_smsc() {
    quit_ = true;
    thread_.join();
    if (conn_ >= 0) ::close(conn_);
    ::close(listen_fd_);
  }

  std::uint16_t port() const { return port_; }

  template <class F>
  auto with(F f) {
    std::lock_guard<std::mutex> lock(mutex_);
    return f(rec_);
  }

  // Runs on the SMSC thread with the current connection (-1 when none).
  void post(std::function<void(fake_smsc&, int fd)> action) {
    std::lock_guard<std::mutex> lock(mutex_);
    actions_.push_back(std::move(action));
  }

  // SMSC thread: answers `n` held submits (oldest first) with OK.
  void answer_held(int fd, std::size_t n) {
    std::vector<std::uint32_t> seqs;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      n = std::min(n, rec_.held.size());
      seqs.assign(rec_.held.begin(), rec_.held.begin() + static_cast<std::ptrdiff_t>(n));
      rec_.held.erase(rec_.held.begin(), rec_.held.begin() + static_cast<std::ptrdiff_t>(n));
    }
    for (std::uint32_t s : seqs) answer_submit(fd, s, smpp::status::ok);
  }

  void close_connection() {
    if (conn_ >= 0) ::close(conn_);
    conn_ = -1;
    in_.clear();
  }

  static void send_all(int fd, const std::string& bytes) {
    std::size_t off = 0;
    while (fd >= 0 && off < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }

 private:
  void answer_submit(int fd, std::uint32_t seq, std::uint32_t status) {
    std::string out;
    std::string id;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      id = status == smpp::status::ok ? "id" + std::to_string(++ids_) : "";
      rec_.events.push_back("submit_resp");
    }
    smpp::encode_response(out, smpp::command::submit_sm | response_bit, status, seq, id);
    send_all(fd, out);
  }

  void run() {
    while (!quit_) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {conn_, POLLIN, 0}};
      ::poll(p, conn_ >= 0 ? 2 : 1, 5);
      std::vector<std::function<void(fake_smsc&, int)>> todo;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        todo.swap(actions_);
      }
      for (auto& a : todo) a(*this, conn_);
      if (conn_ >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        ssize_t n = ::recv(conn_, buf, sizeof buf, 0);
        if (n <= 0) {
          close_connection();
          n = 0;
        }
        in_.append(buf, static_cast<std::size_t>(n));
        smpp::header h;
        std::size_t used = 0;
        while (conn_ >= 0 && smpp::next_frame(std::string_view(in_).substr(used), h) == smpp::frame_result::ok) {
          std::string_view body = std::string_view(in_).substr(used + smpp::header_size, h.length - smpp::header_size);
          used += h.length;
          handle(h, body);
        }
        if (conn_ >= 0) in_.erase(0, used);
      }
      // After the old connection's last bytes: a client reconnects only once it has sent them.
      if (p[0].revents & POLLIN) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          close_connection();
          conn_ = fd;
          std::lock_guard<std::mutex> lock(mutex_);
          ++rec_.connections;
          rec_.events.push_back("connect");
        }
      }
    }
  }

  void handle(const smpp::header& h, std::string_view body) {
    using namespace smpp::command;
    std::string out;
    std::unique_lock<std::mutex> lock(mutex_);
    switch (h.command_id) {
      case bind_transceiver: {
        smpp::bind_request b;
        EXPECT_TRUE(smpp::decode_bind(body, b));
        b.command_id = h.command_id;
        rec_.binds.push_back(b);
        rec_.events.push_back("bind");
        std::uint32_t status = smpp::status::ok;
        if (refuse_binds > 0) {
          --refuse_binds;
          status = smpp::status::invalid_password;
        }
        smpp::encode_response(out, bind_transceiver | response_bit, status, h.sequence, "fakesmsc");
        break;
      }
      case submit_sm: {
        smpp::short_message_pdu p;
        EXPECT_TRUE(smpp::decode_short_message_pdu(body, p));
        rec_.submits.push_back(p);
        rec_.events.push_back("submit");
        rec_.held.push_back(h.sequence);
        rec_.max_unanswered = std::max(rec_.max_unanswered, rec_.held.size());
        if (nack_submits > 0) {
          --nack_submits;
          rec_.held.pop_back();
          smpp::encode_header_only(out, generic_nack, smpp::status::system_error, h.sequence);
        } else if (throttle_submits > 0) {
          --throttle_submits;
          rec_.held.pop_back();
          lock.unlock();
          return answer_submit(conn_, h.sequence, smpp::status::throttled);
        } else if (answer_submits) {
          rec_.held.pop_back();
          lock.unlock();
          return answer_submit(conn_, h.sequence, smpp::status::ok);
        }
        break;
      }
      case enquire_link:
        ++rec_.enquires;
        if (answer_enquire) smpp::encode_header_only(out, enquire_link | response_bit, 0, h.sequence);
        break;
      case unbind:
        ++rec_.unbinds;
        rec_.events.push_back("unbind");
        smpp::encode_header_only(out, unbind | response_bit, 0, h.sequence);
        break;
      case unbind | response_bit:
        rec_.unbind_resps.push_back(h.sequence);
        break;
      case deliver_sm | response_bit:
        rec_.deliver_resps.emplace_back(h.sequence, h.status);
        break;
      case generic_nack:
        rec_.nacks.emplace_back(h.sequence, h.status);
        break;
      default:
        break;
    }
    lock.unlock();
    send_all(conn_, out);
  }

  int listen_fd_ = -1;
  int conn_ = -1;  // SMSC thread only
  std::uint16_t port_ = 0;
  std::string in_;
  std::atomic<bool> quit_{false};
  std::mutex mutex_;
  record rec_;
  std::vector<std::function<void(fake_smsc&, int)>> actions_;
  int ids_ = 0;
  std::thread thread_;
};

// --- the owner ----------------------------------------------------------------
struct recorder final : bind_listener {
  struct resp {
    std::uint64_t token;
    std::uint32_t status;
    std::string id;
    bool could_submit;  // can_submit() right after the response
    double rate;        // current_rate() then
  };
  struct deliver {
    deliver_ticket ticket;
    smpp::short_message_pdu pdu;
  };
  int bound = 0;
  int ready = 0;
  std::vector<std::vector<std::uint64_t>> unbound;
  std::vector<resp> resps;
  std::vector<deliver> delivers;
  std::function<void(smpp_bind&)> on_ready_hook;

  void on_bound(smpp_bind&) override { ++bound; }
  void on_unbound(smpp_bind&, std::vector<std::uint64_t> outstanding) override {
    unbound.push_back(std::move(outstanding));
  }
  void on_submit_resp(smpp_bind& b, std::uint64_t token, std::uint32_t status, std::string_view id) override {
    resps.push_back({token, status, std::string(id), b.can_submit(), b.current_rate()});
  }
  void on_deliver_sm(smpp_bind&, deliver_ticket ticket, const smpp::short_message_pdu& pdu) override {
    delivers.push_back({ticket, pdu});
  }
  void on_ready(smpp_bind& b) override {
    ++ready;
    if (on_ready_hook) on_ready_hook(b);
  }
};

// --- the shard stand-in ---------------------------------------------------------
class smpp_bind_test : public ::testing::Test {
 protected:
  void SetUp() override {
    unsigned flags = 0;
    ASSERT_EQ(core::setup_ring(ring_, 64, 256, flags), 0);
    ring_ready_ = true;
    cfg_.name = "test";
    cfg_.host = "127.0.0.1";
    cfg_.port = smsc_.port();
    cfg_.system_id = "esme";
    cfg_.password = "secret";
    cfg_.system_type = "VMA";
    cfg_.window = 10;
    cfg_.max_submits_per_second = 0;
    cfg_.enquire_link_s = 30;
    cfg_.response_timeout_s = 2;
    cfg_.reconnect_min_ms = 50;
    cfg_.reconnect_max_ms = 200;
  }

  void TearDown() override {
    // A test's hook may capture its locals, which are gone by now.
    rec_.on_ready_hook = nullptr;
    if (bind_) {
      // With the SMSC gone the bind stops at once (closed or backing off).
      smsc_ptr_reset();
      bind_->stop();
      EXPECT_TRUE(run_until([&] { return bind_->stopped(); }, 5000));
      bind_.reset();
    }
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

  void smsc_ptr_reset() {
    smsc_.post([](fake_smsc& s, int) { s.close_connection(); });
    run_until([&] { return !bind_->bound(); }, 3000);
  }

  // Real clock unless a test set fake_now_ before make_bind().
  void make_bind() {
    if (fake_) now_ = fake_now_;
    wheel_ = std::make_unique<core::timer_wheel>(clock(), 10);
    bind_env env{&ring_, wheel_.get(), [this] { return clock(); }};
    bind_ = std::make_unique<smpp_bind>(env, cfg_, 3, rec_);
  }

  std::uint64_t clock() const { return fake_ ? now_ : core::monotonic_ms(); }

  // One turn of the event loop: submit, wait up to 5 ms, dispatch, timers.
  void turn() {
    io_uring_submit(&ring_);
    __kernel_timespec ts{0, 5'000'000};
    io_uring_cqe* cqe = nullptr;
    io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) core::dispatch(ring_, cqe);
    wheel_->advance(clock());
  }

  template <class P>
  bool run_until(P pred, std::uint64_t max_ms) {
    const std::uint64_t end = core::monotonic_ms() + max_ms;
    for (;;) {
      if (pred()) return true;
      if (core::monotonic_ms() >= end) return false;
      turn();
    }
  }

  // Fake clock: moves to `t` and runs the loop a little (timers fire).
  void advance_to(std::uint64_t t) {
    now_ = t;
    turn();
  }

  bool start_and_bind() {
    make_bind();
    bind_->start();
    return run_until([&] { return rec_.bound >= 1; }, 5000);
  }

  static smpp::short_message_pdu message(const std::string& to, const std::string& text) {
    smpp::short_message_pdu p;
    p.source = {5, 0, "Postino"};
    p.destination = {1, 1, to};
    p.registered_delivery = 1;
    p.short_message = text;
    return p;
  }

  io_uring ring_{};
  bool ring_ready_ = false;
  bool fake_ = false;
  std::uint64_t fake_now_ = 0;
  std::uint64_t now_ = 0;
  std::unique_ptr<core::timer_wheel> wheel_;
  fake_smsc smsc_;
  smsc_config cfg_;
  recorder rec_;
  std::unique_ptr<smpp_bind> bind_;
};

std::string be32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}

TEST_F(smpp_bind_test, binds_submits_and_reports_the_message_id) {
  ASSERT_TRUE(start_and_bind());
  EXPECT_TRUE(bind_->bound());
  EXPECT_EQ(bind_->name(), "test#3");
  smsc_.with([](fake_smsc::record& r) {
    ASSERT_EQ(r.binds.size(), 1u);
    EXPECT_EQ(r.binds[0].command_id, smpp::command::bind_transceiver);
    EXPECT_EQ(r.binds[0].system_id, "esme");
    EXPECT_EQ(r.binds[0].password, "secret");
    EXPECT_EQ(r.binds[0].system_type, "VMA");
    EXPECT_EQ(r.binds[0].interface_version, 0x34);
  });
  ASSERT_TRUE(bind_->can_submit());
  bind_->submit(message("447700900001", "hello"), 42);
  EXPECT_EQ(bind_->outstanding(), 1u);
  ASSERT_TRUE(run_until([&] { return rec_.resps.size() == 1; }, 5000));
  EXPECT_EQ(rec_.resps[0].token, 42u);
  EXPECT_EQ(rec_.resps[0].status, smpp::status::ok);
  EXPECT_EQ(rec_.resps[0].id, "id1");
  EXPECT_EQ(bind_->outstanding(), 0u);
  smsc_.with([](fake_smsc::record& r) {
    ASSERT_EQ(r.submits.size(), 1u);
    EXPECT_EQ(r.submits[0].destination.value, "447700900001");
    EXPECT_EQ(r.submits[0].source.value, "Postino");
    EXPECT_EQ(r.submits[0].short_message, "hello");
  });
  EXPECT_EQ(bind_->stats().connects, 1u);
  EXPECT_EQ(bind_->stats().binds, 1u);
  EXPECT_EQ(bind_->stats().submits, 1u);
  EXPECT_EQ(bind_->current_rate(), 0.0);
}

TEST_F(smpp_bind_test, generic_nack_answers_the_submit) {
  ASSERT_TRUE(start_and_bind());
  smsc_.nack_submits = 1;
  bind_->submit(message("447700900001", "x"), 5);
  ASSERT_TRUE(run_until([&] { return rec_.resps.size() == 1; }, 5000));
  EXPECT_EQ(rec_.resps[0].token, 5u);
  EXPECT_EQ(rec_.resps[0].status, smpp::status::system_error);
  EXPECT_EQ(bind_->stats().generic_nacks, 1u);
  EXPECT_EQ(bind_->outstanding(), 0u);
}

TEST_F(smpp_bind_test, window_is_never_exceeded) {
  cfg_.window = 3;
  smsc_.answer_submits = false;
  ASSERT_TRUE(start_and_bind());
  std::uint64_t next_token = 1;
  const std::uint64_t total = 12;
  auto pump = [&](smpp_bind& b) {
    while (next_token <= total && b.can_submit()) {
      b.submit(message("447700900001", "m" + std::to_string(next_token)), next_token);
      ++next_token;
    }
  };
  pump(*bind_);
  EXPECT_EQ(next_token, 4u);
  EXPECT_EQ(bind_->outstanding(), 3u);
  EXPECT_FALSE(bind_->can_submit());
  ASSERT_TRUE(run_until([&] { return smsc_.with([](auto& r) { return r.submits.size() == 3; }); }, 5000));
  // Held responses: nothing more may go out, however long we wait.
  run_until([] { return false; }, 100);
  EXPECT_EQ(smsc_.with([](auto& r) { return r.submits.size(); }), 3u);
  EXPECT_FALSE(bind_->can_submit());

  rec_.on_ready_hook = pump;
  smsc_.post([](fake_smsc& s, int fd) { s.answer_held(fd, 1); });
  ASSERT_TRUE(run_until([&] { return rec_.resps.size() == 1; }, 5000));
  EXPECT_GE(rec_.ready, 1);
  EXPECT_TRUE(rec_.resps[0].could_submit);
  EXPECT_EQ(bind_->outstanding(), 3u);  // on_ready refilled the window
  smsc_.answer_submits = true;
  smsc_.post([](fake_smsc& s, int fd) { s.answer_held(fd, 100); });
  ASSERT_TRUE(run_until([&] { return rec_.resps.size() == total; }, 5000));
  for (std::size_t i = 0; i < total; ++i) EXPECT_EQ(rec_.resps[i].status, smpp::status::ok);
  EXPECT_LE(smsc_.with([](auto& r) { return r.max_unanswered; }), 3u);
  EXPECT_EQ(bind_->outstanding(), 0u);
}

TEST_F(smpp_bind_test, rate_limit_caps_submits) {
  cfg_.max_submits_per_second = 20;  // burst 2
  cfg_.window = 1000;
  const std::uint64_t t0 = core::monotonic_ms();
  ASSERT_TRUE(start_and_bind());
  EXPECT_EQ(bind_->current_rate(), 20.0);
  std::uint64_t allowed = 0;
  // As the engine does: take what can_submit() allows, then wait for on_ready.
  auto pump = [&](smpp_bind& b) {
    while (b.can_submit()) b.submit(message("447700900001", "r"), ++allowed);
  };
  rec_.on_ready_hook = pump;
  pump(*bind_);
  EXPECT_EQ(allowed, 2u);  // the burst
  run_until([] { return false; }, 1200);
  const std::uint64_t elapsed = core::monotonic_ms() - t0;
  EXPECT_GE(allowed, 1u);
  // Never more than the bucket held at bind time plus what the rate added since.
  EXPECT_LE(allowed, 20 * elapsed / 1000 + 2 + 1);
  EXPECT_GE(rec_.ready, 1);  // tokens coming back were announced
}

// Throttling with a hand-moved clock: every step below is exact.
TEST_F(smpp_bind_test, throttling_pauses_doubles_and_lowers_the_rate) {
  fake_ = true;
  fake_now_ = 1'000'000;
  cfg_.max_submits_per_second = 100;  // burst 10
  cfg_.window = 100;
  cfg_.enquire_link_s = 3600;
  cfg_.response_timeout_s = 3600;
  ASSERT_TRUE(start_and_bind());
  const std::uint64_t t0 = fake_now_;
  std::uint64_t token = 0;
  auto submit_one = [&] {
    ASSERT_TRUE(bind_->can_submit());
    bind_->submit(message("447700900001", "t"), ++token);
  };
  auto answered = [&](std::size_t n) {
    return run_until([&] { return rec_.resps.size() == n; }, 5000);
  };
  for (int i = 0; i < 10; ++i) submit_one();
  EXPECT_FALSE(bind_->can_submit());  // the burst is used up
  ASSERT_TRUE(answered(10));
  advance_to(t0 + 500);  // ten more tokens
  for (int i = 0; i < 10; ++i) submit_one();
  ASSERT_TRUE(answered(20));
  // Past the bind's first second of sending, so the last second's count is
  // the rate as it is (the t0 bucket has left the window, the t0 + 500 one
  // stays in it until t0 + 1500).
  advance_to(t0 + 1020);

  // Episode 1: 11 submits in the last second -> the rate drops to 80%, 8.8/s; pause 100 ms.
  smsc_.throttle_submits = 1;
  const int ready_before = rec_.ready;
  submit_one();
  ASSERT_TRUE(answered(21));
  const std::uint64_t t1 = t0 + 1020;
  EXPECT_EQ(rec_.resps.back().status, smpp::status::throttled);
  EXPECT_FALSE(rec_.resps.back().could_submit);
  EXPECT_DOUBLE_EQ(rec_.resps.back().rate, 8.8);
  EXPECT_EQ(bind_->stats().throttled, 1u);
  advance_to(t1 + 99);
  EXPECT_FALSE(bind_->can_submit());
  EXPECT_EQ(rec_.ready, ready_before);
  advance_to(t1 + 100);
  EXPECT_TRUE(bind_->can_submit());
  EXPECT_EQ(rec_.ready, ready_before + 1);  // the end of the pause was announced

  // Episode 2 right after: the pause doubles to 200 ms (tokens are not the limit at 8.8/s).
  smsc_.throttle_submits = 1;
  submit_one();
  ASSERT_TRUE(answered(22));
  const std::uint64_t t2 = t1 + 100;
  EXPECT_EQ(bind_->stats().throttled, 2u);
  EXPECT_DOUBLE_EQ(bind_->current_rate(), 8.8);  // 80% of 12 would be higher: kept
  advance_to(t2 + 199);
  EXPECT_FALSE(bind_->can_submit());
  advance_to(t2 + 200);
  EXPECT_TRUE(bind_->can_submit());

  // A clean answer ends the streak: the next episode pauses 100 ms again.
  submit_one();
  ASSERT_TRUE(answered(23));
  EXPECT_EQ(rec_.resps.back().status, smpp::status::ok);
  advance_to(t2 + 320);  // a whole token again at 8.8/s
  smsc_.throttle_submits = 1;
  submit_one();
  ASSERT_TRUE(answered(24));
  const std::uint64_t t3 = t2 + 320;
  EXPECT_EQ(bind_->stats().throttled, 3u);
  advance_to(t3 + 99);
  EXPECT_FALSE(bind_->can_submit());
  advance_to(t3 + 120);  // well before 200 ms (the token is back at 114 ms)
  EXPECT_TRUE(bind_->can_submit());

  // Then the rate climbs back (5% every 250 ms, at least 1/s) to the configured 100/s.
  advance_to(t3 + 250);
  advance_to(t3 + 500);
  EXPECT_GT(bind_->current_rate(), 8.8);
  EXPECT_LT(bind_->current_rate(), 100.0);
  for (std::uint64_t t = t3 + 500; t <= t3 + 60'000; t += 250) advance_to(t);
  EXPECT_DOUBLE_EQ(bind_->current_rate(), 100.0);
}

TEST_F(smpp_bind_test, throttling_caps_an_unlimited_bind_until_it_recovers) {
  fake_ = true;
  fake_now_ = 2'000'000;
  cfg_.max_submits_per_second = 0;
  cfg_.enquire_link_s = 3600;
  cfg_.response_timeout_s = 3600;
  ASSERT_TRUE(start_and_bind());
  const std::uint64_t t0 = fake_now_;
  for (std::uint64_t i = 1; i <= 9; ++i) bind_->submit(message("447700900001", "u"), i);
  ASSERT_TRUE(run_until([&] { return rec_.resps.size() == 9; }, 5000));
  smsc_.throttle_submits = 1;
  bind_->submit(message("447700900001", "u"), 10);
  ASSERT_TRUE(run_until([&] { return rec_.resps.size() == 10; }, 5000));
  // 10 sent at once, less than 100 ms after the first: 100/s, capped at 80%.
  EXPECT_DOUBLE_EQ(bind_->current_rate(), 80.0);
  // Lifted once the cap passes twice the best rate seen (100/s).
  for (std::uint64_t t = t0; t <= t0 + 30'000 && bind_->current_rate() != 0.0; t += 250) advance_to(t);
  EXPECT_EQ(bind_->current_rate(), 0.0);
  EXPECT_TRUE(bind_->can_submit());
}

TEST_F(smpp_bind_test, peer_close_returns_exactly_the_unanswered_tokens_then_rebinds) {
  cfg_.window = 5;
  smsc_.answer_submits = false;
  ASSERT_TRUE(start_and_bind());
  for (std::uint64_t t = 1; t <= 5; ++t) bind_->submit(message("447700900001", "w"), t);
  ASSERT_TRUE(run_until([&] { return smsc_.with([](auto& r) { return r.submits.size() == 5; }); }, 5000));
  smsc_.post([](fake_smsc& s, int fd) {
    s.answer_held(fd, 2);
    s.close_connection();
  });
  ASSERT_TRUE(run_until([&] { return rec_.unbound.size() == 1; }, 5000));
  ASSERT_EQ(rec_.resps.size(), 2u);
  EXPECT_EQ(rec_.resps[0].token, 1u);
  EXPECT_EQ(rec_.resps[1].token, 2u);
  EXPECT_EQ(rec_.unbound[0], (std::vector<std::uint64_t>{3, 4, 5}));
  EXPECT_FALSE(bind_->can_submit());
  EXPECT_EQ(bind_->outstanding(), 0u);
  ASSERT_TRUE(run_until([&] { return rec_.bound == 2; }, 5000));
  EXPECT_EQ(smsc_.with([](auto& r) { return r.connections; }), 2);
  EXPECT_EQ(bind_->stats().binds, 2u);
  EXPECT_TRUE(bind_->can_submit());
}

TEST_F(smpp_bind_test, unanswered_enquire_link_drops_and_reconnects) {
  cfg_.enquire_link_s = 1;
  cfg_.response_timeout_s = 1;
  smsc_.answer_enquire = false;
  ASSERT_TRUE(start_and_bind());
  ASSERT_TRUE(run_until([&] { return bind_->stats().timeouts >= 1 && rec_.bound >= 2; }, 10000));
  EXPECT_GE(bind_->stats().enquire_links, 1u);
  EXPECT_GE(smsc_.with([](auto& r) { return r.enquires; }), 1);
  ASSERT_GE(rec_.unbound.size(), 1u);
  EXPECT_TRUE(rec_.unbound[0].empty());
}

TEST_F(smpp_bind_test, answered_enquire_link_keeps_the_bind) {
  cfg_.enquire_link_s = 1;
  cfg_.response_timeout_s = 1;
  ASSERT_TRUE(start_and_bind());
  ASSERT_TRUE(run_until([&] { return smsc_.with([](auto& r) { return r.enquires >= 2; }); }, 10000));
  EXPECT_EQ(bind_->stats().timeouts, 0u);
  EXPECT_EQ(rec_.bound, 1);
  EXPECT_TRUE(rec_.unbound.empty());
}

TEST_F(smpp_bind_test, unbind_from_the_smsc_is_answered_then_rebinds) {
  ASSERT_TRUE(start_and_bind());
  smsc_.post([](fake_smsc&, int fd) {
    std::string out;
    smpp::encode_header_only(out, smpp::command::unbind, 0, 77);
    fake_smsc::send_all(fd, out);
  });
  ASSERT_TRUE(run_until([&] { return rec_.unbound.size() == 1; }, 5000));
  EXPECT_TRUE(rec_.unbound[0].empty());
  ASSERT_TRUE(run_until([&] { return rec_.bound == 2; }, 5000));
  EXPECT_EQ(smsc_.with([](auto& r) { return r.unbind_resps; }), (std::vector<std::uint32_t>{77}));
}

TEST_F(smpp_bind_test, deliver_sm_reaches_the_owner_and_its_ack_the_smsc) {
  ASSERT_TRUE(start_and_bind());
  smpp::short_message_pdu receipt;
  receipt.source = {1, 1, "447700900001"};
  receipt.destination = {5, 0, "Postino"};
  receipt.esm_class = smpp::esm::smsc_receipt;
  receipt.short_message = "id:abc sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000";
  smsc_.post([receipt](fake_smsc&, int fd) {
    std::string out;
    smpp::encode_deliver_sm(out, 9, receipt);
    fake_smsc::send_all(fd, out);
  });
  ASSERT_TRUE(run_until([&] { return rec_.delivers.size() == 1; }, 5000));
  EXPECT_EQ(ticket_sequence(rec_.delivers[0].ticket), 9u);
  EXPECT_EQ(rec_.delivers[0].pdu.source.value, "447700900001");
  EXPECT_EQ(rec_.delivers[0].pdu.esm_class, smpp::esm::smsc_receipt);
  EXPECT_EQ(rec_.delivers[0].pdu.short_message, receipt.short_message);
  // Nothing is answered until the owner says so.
  EXPECT_TRUE(smsc_.with([](auto& r) { return r.deliver_resps.empty(); }));
  bind_->ack_deliver(rec_.delivers[0].ticket, smpp::status::ok);
  bind_->ack_deliver(rec_.delivers[0].ticket, smpp::status::ok);  // a second answer for the same PDU is dropped
  smsc_.post([receipt](fake_smsc&, int fd) {
    std::string out;
    smpp::encode_deliver_sm(out, 10, receipt);
    fake_smsc::send_all(fd, out);
  });
  ASSERT_TRUE(run_until([&] { return rec_.delivers.size() == 2; }, 5000));
  bind_->ack_deliver(rec_.delivers[1].ticket, smpp::status::system_error);
  ASSERT_TRUE(run_until([&] { return smsc_.with([](auto& r) { return r.deliver_resps.size() == 2; }); }, 5000));
  using pairs = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
  EXPECT_EQ(smsc_.with([](auto& r) { return r.deliver_resps; }),
            (pairs{{9, smpp::status::ok}, {10, smpp::status::system_error}}));
}

// An ack journaled after its connection was lost is dropped, even when the
// new connection brings a deliver_sm of the same sequence number (an SMSC
// may start its sequences again): that one waits for its own ack.
TEST_F(smpp_bind_test, ack_for_a_lost_connection_is_dropped) {
  ASSERT_TRUE(start_and_bind());
  smpp::short_message_pdu mo;
  mo.source = {1, 1, "447700900001"};
  mo.destination = {1, 1, "447700900002"};
  mo.short_message = "hi";
  auto send_deliver = [&](std::uint32_t sequence) {
    smsc_.post([mo, sequence](fake_smsc&, int fd) {
      std::string out;
      smpp::encode_deliver_sm(out, sequence, mo);
      fake_smsc::send_all(fd, out);
    });
  };
  send_deliver(11);
  ASSERT_TRUE(run_until([&] { return rec_.delivers.size() == 1; }, 5000));
  smsc_.post([](fake_smsc& s, int) { s.close_connection(); });
  ASSERT_TRUE(run_until([&] { return rec_.bound == 2; }, 5000));
  send_deliver(11);
  ASSERT_TRUE(run_until([&] { return rec_.delivers.size() == 2; }, 5000));
  EXPECT_EQ(ticket_sequence(rec_.delivers[1].ticket), 11u);
  EXPECT_NE(rec_.delivers[0].ticket, rec_.delivers[1].ticket);
  bind_->ack_deliver(rec_.delivers[0].ticket, smpp::status::system_error);  // journaled too late: dropped
  send_deliver(12);
  ASSERT_TRUE(run_until([&] { return rec_.delivers.size() == 3; }, 5000));
  bind_->ack_deliver(rec_.delivers[2].ticket, smpp::status::ok);
  ASSERT_TRUE(run_until([&] { return smsc_.with([](auto& r) { return !r.deliver_resps.empty(); }); }, 5000));
  bind_->ack_deliver(rec_.delivers[1].ticket, smpp::status::ok);
  ASSERT_TRUE(run_until([&] { return smsc_.with([](auto& r) { return r.deliver_resps.size() == 2; }); }, 5000));
  using pairs = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
  EXPECT_EQ(smsc_.with([](auto& r) { return r.deliver_resps; }), (pairs{{12, 0}, {11, 0}}));
}

TEST_F(smpp_bind_test, malformed_and_unknown_requests_get_error_answers) {
  ASSERT_TRUE(start_and_bind());
  smsc_.post([](fake_smsc&, int fd) {
    // deliver_sm whose body stops in the middle of service_type (no NUL).
    std::string bad = be32(17) + be32(smpp::command::deliver_sm) + be32(0) + be32(21) + "x";
    // data_sm (0x103): not something this client handles.
    std::string unknown = be32(16) + be32(0x00000103) + be32(0) + be32(22);
    fake_smsc::send_all(fd, bad + unknown);
  });
  ASSERT_TRUE(run_until([&] { return smsc_.with([](auto& r) { return !r.nacks.empty() && !r.deliver_resps.empty(); }); },
                        5000));
  using pairs = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
  EXPECT_EQ(smsc_.with([](auto& r) { return r.deliver_resps; }), (pairs{{21, smpp::status::invalid_message_length}}));
  EXPECT_EQ(smsc_.with([](auto& r) { return r.nacks; }), (pairs{{22, smpp::status::invalid_command_id}}));
  EXPECT_TRUE(rec_.delivers.empty());
  EXPECT_TRUE(bind_->bound());
}

TEST_F(smpp_bind_test, framing_error_drops_the_connection) {
  ASSERT_TRUE(start_and_bind());
  smsc_.post([](fake_smsc&, int fd) {
    fake_smsc::send_all(fd, be32(8) + be32(smpp::command::enquire_link) + be32(0) + be32(1));
  });
  ASSERT_TRUE(run_until([&] { return rec_.unbound.size() == 1; }, 5000));
  ASSERT_TRUE(run_until([&] { return rec_.bound == 2; }, 5000));
}

TEST_F(smpp_bind_test, stop_waits_for_outstanding_then_unbinds) {
  smsc_.answer_submits = false;
  ASSERT_TRUE(start_and_bind());
  bind_->submit(message("447700900001", "s"), 1);
  ASSERT_TRUE(run_until([&] { return smsc_.with([](auto& r) { return r.submits.size() == 1; }); }, 5000));
  bind_->stop();
  EXPECT_FALSE(bind_->can_submit());
  EXPECT_FALSE(bind_->stopped());
  smsc_.post([](fake_smsc& s, int fd) { s.answer_held(fd, 1); });
  ASSERT_TRUE(run_until([&] { return bind_->stopped(); }, 5000));
  ASSERT_EQ(rec_.resps.size(), 1u);
  EXPECT_EQ(rec_.resps[0].token, 1u);
  ASSERT_EQ(rec_.unbound.size(), 1u);
  EXPECT_TRUE(rec_.unbound[0].empty());
  auto events = smsc_.with([](auto& r) { return r.events; });
  EXPECT_EQ(events, (std::vector<std::string>{"connect", "bind", "submit", "submit_resp", "unbind"}));
  EXPECT_FALSE(bind_->bound());
}

TEST_F(smpp_bind_test, stop_gives_back_what_stays_unanswered) {
  smsc_.answer_submits = false;
  cfg_.response_timeout_s = 1;
  ASSERT_TRUE(start_and_bind());
  bind_->submit(message("447700900001", "s"), 7);
  bind_->stop();
  ASSERT_TRUE(run_until([&] { return bind_->stopped(); }, 5000));
  ASSERT_EQ(rec_.unbound.size(), 1u);
  EXPECT_EQ(rec_.unbound[0], (std::vector<std::uint64_t>{7}));
  EXPECT_EQ(bind_->stats().timeouts, 1u);
}

TEST_F(smpp_bind_test, refused_bind_backs_off_and_retries) {
  smsc_.refuse_binds = 2;
  ASSERT_TRUE(start_and_bind());
  EXPECT_EQ(smsc_.with([](auto& r) { return r.binds.size(); }), 3u);
  ASSERT_EQ(rec_.unbound.size(), 2u);
  EXPECT_TRUE(rec_.unbound[0].empty());
  EXPECT_TRUE(rec_.unbound[1].empty());
  EXPECT_EQ(bind_->stats().connects, 3u);
  EXPECT_EQ(bind_->stats().binds, 1u);
}

TEST_F(smpp_bind_test, unreachable_smsc_retries_until_stopped) {
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(probe);  // nothing listens there now
  cfg_.port = ntohs(a.sin_port);
  make_bind();
  bind_->start();
  ASSERT_TRUE(run_until([&] { return rec_.unbound.size() >= 2; }, 5000));
  EXPECT_EQ(bind_->stats().connects, 0u);
  EXPECT_FALSE(bind_->can_submit());
  bind_->stop();
  ASSERT_TRUE(run_until([&] { return bind_->stopped(); }, 5000));
}

TEST_F(smpp_bind_test, stop_before_start_is_stopped) {
  make_bind();
  bind_->stop();
  EXPECT_TRUE(bind_->stopped());
  bind_->start();
  EXPECT_TRUE(bind_->stopped());
}

}  // namespace
}  // namespace postino::delivery
