// The shard runtime end to end inside one process: real shards on 127.0.0.1:0
// with real sessions, the real gateway handler (account store, Argon2id pool,
// ledgers on home shards, one journal per shard), and plain blocking sockets
// as clients. Covers the greeting (connection number, peer IP), NOOP/QUIT,
// AUTH through the pool and the cache, messages committed through the journal
// from both shards (so credit crosses shards by mailbox), pipelining, the idle
// timeout, a full fixed-file table, shutdown, and the memory an idle session
// costs (C++ heap bytes counted by the replaced operator new below).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "../../src/app/gateway.h"
#include "../../src/app/smtp_endpoint.h"
#include "postino/config.h"
#include "postino/credit.h"
#include "postino/io.h"
#include "postino/runtime.h"
#include "postino/smtp.h"
#include "postino/spool.h"

// Heap accounting for the memory test: every C++ allocation in the process.
namespace {
std::atomic<long long> g_heap_bytes{0};
thread_local long long t_heap_bytes = 0;  // this thread's share, to subtract the clients'
}
void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  auto size = static_cast<long long>(malloc_usable_size(p));
  g_heap_bytes.fetch_add(size, std::memory_order_relaxed);
  t_heap_bytes += size;
  return p;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  auto size = static_cast<long long>(malloc_usable_size(p));
  g_heap_bytes.fetch_sub(size, std::memory_order_relaxed);
  t_heap_bytes -= size;
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

namespace postino {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string b64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i < in.size()) {
    unsigned v = (unsigned char)in[i] << 16 | (i + 1 < in.size() ? (unsigned char)in[i + 1] << 8 : 0);
    out += {t[v >> 18], t[(v >> 12) & 63], i + 1 < in.size() ? t[(v >> 6) & 63] : '=', '='};
  }
  return out;
}

class client {
 public:
  explicit client(std::uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd_);
      fd_ = -1;
    }
    int one = 1;
    if (fd_ >= 0) setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~client() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  void half_close() { shutdown(fd_, SHUT_WR); }
  void send(const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }
  // One whole reply (continuation lines included), "" on timeout or close.
  std::string reply(std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::size_t pos = 0;
      for (;;) {
        auto lf = buf_.find('\n', pos);
        if (lf == std::string::npos) break;
        if (lf - pos < 4 || buf_[pos + 3] != '-') {
          std::string r = buf_.substr(0, lf + 1);
          buf_.erase(0, lf + 1);
          return r;
        }
        pos = lf + 1;
      }
      if (!fill(deadline)) return "";
    }
  }
  // Everything until the server closes.
  std::string until_close(std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) {
    }
    std::string r;
    r.swap(buf_);
    return r;
  }
  bool closed_by_peer(std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) {
    }
    return eof_;
  }

 private:
  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (fd_ < 0 || eof_) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char b[16384];
    ssize_t n = recv(fd_, b, sizeof b, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(b, static_cast<std::size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool eof_ = false;
  std::string buf_;
};

// What a fixture's shards, servers and sessions are run with.
struct fixture_options {
  core::runtime_options runtime;
  io::server_options server;
  app::smtp_timeouts timeouts;
};

// A complete gateway in-process: store, pool, journals, runtime.
class gateway_fixture {
 public:
  explicit gateway_fixture(unsigned shards, fixture_options options = {}, credit_units credit = 1000) {
    char tmpl[] = "/tmp/postino-io-XXXXXX";
    dir_ = mkdtemp(tmpl);
    db_ = dir_ + "/postino.db";
    std::string error;
    auto store = credit::account_store::open(db_, error);
    EXPECT_TRUE(store) << error;
    account_settings s;
    s.username = "alice";
    account_id id = store->add(s, "secret", credit, error);
    EXPECT_NE(id, 0u) << error;
    session_config_.hostname = "io.test";

    auto services = std::make_shared<app::gateway_services>();
    services->database = db_;
    services->balances.resize(shards);
    services->balances[credit::home_shard(id, shards)].emplace_back(id, credit);
    pool_ = std::make_unique<credit::hash_pool>(1, 64);
    services->pool = pool_.get();
    for (unsigned i = 0; i < shards; ++i) {
      spool::journal_options jo;
      jo.dir = dir_ + "/journal-" + std::to_string(i);
      jo.shard_id = i;
      jo.segment_bytes = 1 << 20;
      journals_.push_back(spool::journal::open(jo, [](const spool::record&) {}, error));
      EXPECT_TRUE(journals_.back()) << error;
    }
    std::vector<spool::journal*> ptrs;
    for (auto& j : journals_) ptrs.push_back(j.get());

    options.runtime.shards = shards;
    options.runtime.pin_threads = false;
    if (options.server.buffer_count == 4096) options.server.buffer_count = 256;  // tests need few
    listeners_ = std::make_unique<io::listener_set>(
        std::vector<io::listener_spec>{app::smtp_listener("127.0.0.1", 0, session_config_, nullptr, options.timeouts)},
        shards, options.server);
    EXPECT_TRUE(listeners_->bind(error)) << error;
    rt_ = std::make_unique<core::runtime>(options.runtime, app::make_shard_services(services, ptrs, *listeners_));
    started_ = rt_->start(error);
    EXPECT_TRUE(started_) << error;
  }
  ~gateway_fixture() {
    stop();
    pool_.reset();
    rt_.reset();
    journals_.clear();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    rt_->stop();
    rt_->join();
  }
  std::uint16_t port() const { return listeners_->bound_port(0); }
  core::runtime& rt() { return *rt_; }
  bool started() const { return started_; }
  std::size_t messages_in_journals() {
    std::size_t n = 0;
    for (unsigned i = 0; i < journals_.size(); ++i) {
      spool::journal_options jo;
      jo.dir = dir_ + "/journal-" + std::to_string(i);
      std::string error;
      auto j = spool::journal::open(jo, [&](const spool::record& r) { n += r.type == spool::record_type::message; },
                                    error);
      EXPECT_TRUE(j) << error;
    }
    return n;
  }
  std::uint64_t sum(std::atomic<std::uint64_t> core::shard_metrics::*field) {
    std::uint64_t total = 0;
    for (unsigned i = 0; i < rt_->shard_count(); ++i) total += (rt_->metrics(i).*field).load();
    return total;
  }

 private:
  std::string dir_, db_;
  smtp::session_config session_config_;
  std::unique_ptr<credit::hash_pool> pool_;
  std::vector<std::unique_ptr<spool::journal>> journals_;
  std::unique_ptr<io::listener_set> listeners_;
  std::unique_ptr<core::runtime> rt_;
  bool started_ = false;
  bool stopped_ = false;
};

void login(client& c) {
  ASSERT_EQ(c.reply().substr(0, 4), "220 ");
  c.send("EHLO me\r\n");
  ASSERT_EQ(c.reply().substr(0, 4), "250-");
  c.send("AUTH PLAIN " + b64(std::string("\0alice\0secret", 13)) + "\r\n");
  std::string r = c.reply();
  ASSERT_EQ(r.substr(0, 4), "235 ") << r;
}

TEST(io_runtime, greeting_noop_quit) {
  gateway_fixture gw(2);
  ASSERT_TRUE(gw.started());
  client c(gw.port());
  ASSERT_TRUE(c.ok());
  std::string greeting = c.reply();
  EXPECT_TRUE(std::regex_match(greeting, std::regex("220 io\\.test ESMTP Service ready\\. Connection \\d+ with "
                                                    "\\[127\\.0\\.0\\.1\\]\r\n")))
      << greeting;
  c.send("NOOP\r\n");
  EXPECT_EQ(c.reply(), "250 2.0.0 OK\r\n");
  c.send("QUIT\r\n");
  EXPECT_EQ(c.reply(), "221 2.0.0 SMSC SMTP Server closing connection.\r\n");
  EXPECT_TRUE(c.closed_by_peer());
  gw.stop();
  EXPECT_EQ(gw.sum(&core::shard_metrics::connections_total), 1u);
  EXPECT_EQ(gw.sum(&core::shard_metrics::sessions_active), 0u);
}

TEST(io_runtime, connection_numbers_are_unique_across_shards) {
  gateway_fixture gw(3);
  std::vector<std::string> numbers;
  for (int i = 0; i < 12; ++i) {
    client c(gw.port());
    std::smatch m;
    std::string g = c.reply();
    ASSERT_TRUE(std::regex_search(g, m, std::regex("Connection (\\d+) with"))) << g;
    numbers.push_back(m[1]);
  }
  std::sort(numbers.begin(), numbers.end());
  EXPECT_EQ(std::unique(numbers.begin(), numbers.end()), numbers.end());
}

TEST(io_runtime, auth_and_messages_from_every_shard) {
  gateway_fixture gw(2);
  // Several connections so both shards (the account's home and the other)
  // take messages; credit crosses by mailbox for one of them.
  constexpr int kClients = 8;
  for (int i = 0; i < kClients; ++i) {
    client c(gw.port());
    login(c);
    c.send("MAIL FROM:<ACME>\r\n");
    EXPECT_EQ(c.reply(), "250 2.1.0 ACME ...Sender Ok\r\n");
    c.send("RCPT TO:<+393331234567>\r\n");
    EXPECT_EQ(c.reply(), "250 2.1.5 +393331234567 ...Recipient Ok\r\n");
    c.send("DATA\r\n");
    EXPECT_EQ(c.reply().substr(0, 4), "354 ");
    c.send("hello " + std::to_string(i) + "\r\n.\r\n");
    std::string r = c.reply();
    EXPECT_EQ(r.rfind("250 2.0.0 Message accepted for delivery to: +393331234567 queued as ", 0), 0u) << r;
    c.send("QUIT\r\n");
    EXPECT_EQ(c.reply().substr(0, 4), "221 ");
  }
  // The 235 line reports what is left after the debits, wherever they ran.
  client last(gw.port());
  ASSERT_EQ(last.reply().substr(0, 4), "220 ");
  last.send("EHLO me\r\nAUTH PLAIN " + b64(std::string("\0alice\0secret", 13)) + "\r\n");
  EXPECT_EQ(last.reply().substr(0, 4), "250-");
  std::string r = last.reply();
  EXPECT_NE(r.find("CREDIT: " + std::to_string(1000 - kClients) + " "), std::string::npos) << r;
  gw.stop();
  EXPECT_EQ(gw.sum(&core::shard_metrics::messages_accepted), static_cast<std::uint64_t>(kClients));
  EXPECT_EQ(gw.messages_in_journals(), static_cast<std::size_t>(kClients));
}

TEST(io_runtime, wrong_password_and_cached_credentials) {
  gateway_fixture gw(1);
  client c(gw.port());
  ASSERT_EQ(c.reply().substr(0, 4), "220 ");
  c.send("EHLO me\r\nAUTH PLAIN " + b64(std::string("\0alice\0nope", 11)) + "\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "250-");
  EXPECT_EQ(c.reply(), "535 5.7.8 Authentication credentials invalid\r\n");
  // Same credentials twice: the second is served from the shard's cache.
  for (int i = 0; i < 2; ++i) {
    client ok(gw.port());
    login(ok);
  }
}

TEST(io_runtime, pipelined_transactions_in_one_write) {
  gateway_fixture gw(2);
  client c(gw.port());
  login(c);
  std::string batch;
  constexpr int kMessages = 5;
  for (int i = 0; i < kMessages; ++i)
    batch += "MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nmessage " + std::to_string(i) + "\r\n.\r\n";
  batch += "QUIT\r\n";
  c.send(batch);  // everything at once, without waiting for 354
  for (int i = 0; i < kMessages; ++i) {
    EXPECT_EQ(c.reply().substr(0, 4), "250 ");
    EXPECT_EQ(c.reply().substr(0, 4), "250 ");
    EXPECT_EQ(c.reply().substr(0, 4), "354 ");
    std::string r = c.reply();
    EXPECT_EQ(r.rfind("250 2.0.0 Message accepted", 0), 0u) << r;
  }
  EXPECT_EQ(c.reply().substr(0, 4), "221 ");
  EXPECT_TRUE(c.closed_by_peer());
  gw.stop();
  EXPECT_EQ(gw.messages_in_journals(), static_cast<std::size_t>(kMessages));
}

TEST(io_runtime, client_that_half_closes_still_gets_its_replies) {
  gateway_fixture gw(1);
  client c(gw.port());
  login(c);
  c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nbye\r\n.\r\nQUIT\r\n");
  c.half_close();
  std::string all = c.until_close();
  EXPECT_NE(all.find("250 2.0.0 Message accepted"), std::string::npos) << all;
  EXPECT_NE(all.find("221 2.0.0"), std::string::npos) << all;
}

TEST(io_runtime, idle_timeout_says_421_and_closes) {
  fixture_options o;
  o.timeouts.idle = 300ms;
  gateway_fixture gw(1, o);
  client c(gw.port());
  ASSERT_EQ(c.reply().substr(0, 4), "220 ");
  EXPECT_EQ(c.until_close(), "421 4.4.2 io.test Timeout, closing connection\r\n");
}

TEST(io_runtime, shutdown_says_421_to_idle_sessions) {
  gateway_fixture gw(2);
  client a(gw.port()), b(gw.port());
  ASSERT_EQ(a.reply().substr(0, 4), "220 ");
  ASSERT_EQ(b.reply().substr(0, 4), "220 ");
  std::thread stopper([&] { gw.stop(); });
  EXPECT_EQ(a.until_close(), "421 4.3.2 Service shutting down\r\n");
  EXPECT_EQ(b.until_close(), "421 4.3.2 Service shutting down\r\n");
  stopper.join();
}

TEST(io_runtime, full_fixed_file_table_delays_accepts_until_a_slot_frees) {
  fixture_options o;
  o.runtime.fixed_files = 4;
  gateway_fixture gw(1, o);
  std::vector<std::unique_ptr<client>> first;
  for (int i = 0; i < 4; ++i) {
    first.push_back(std::make_unique<client>(gw.port()));
    ASSERT_EQ(first.back()->reply().substr(0, 4), "220 ");
  }
  client waiting(gw.port());  // TCP-connected, in the backlog: no slot yet
  EXPECT_EQ(waiting.reply(300ms), "");
  first[0]->send("QUIT\r\n");
  EXPECT_EQ(first[0]->reply().substr(0, 4), "221 ");
  EXPECT_EQ(waiting.reply().substr(0, 4), "220 ");
}

TEST(io_runtime, tiny_buffer_ring_survives_enobufs) {
  fixture_options o;
  o.server.buffer_count = 2;  // far fewer buffers than talking connections
  o.server.buffer_size = 64;  // and short ones: every command spans several
  gateway_fixture gw(1, o);
  constexpr int kClients = 16;
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<client>(gw.port()));
    login(*clients.back());
  }
  std::string batch;
  for (int k = 0; k < 20; ++k) batch += "NOOP\r\n";
  batch += "MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n" + std::string(100, 'x') + "\r\n.\r\nQUIT\r\n";
  for (auto& c : clients) c->send(batch);  // all at once: the ring runs dry
  for (auto& c : clients) {
    for (int k = 0; k < 20; ++k) ASSERT_EQ(c->reply(), "250 2.0.0 OK\r\n");
    EXPECT_EQ(c->reply().substr(0, 4), "250 ");
    EXPECT_EQ(c->reply().substr(0, 4), "250 ");
    EXPECT_EQ(c->reply().substr(0, 4), "354 ");
    EXPECT_EQ(c->reply().rfind("250 2.0.0 Message accepted", 0), 0u);
    EXPECT_EQ(c->reply().substr(0, 4), "221 ");
  }
  gw.stop();
  EXPECT_EQ(gw.messages_in_journals(), static_cast<std::size_t>(kClients));
}

TEST(io_runtime, read_ahead_while_a_commit_waits_is_spilled_and_throttled) {
  fixture_options o;
  o.server.spill_limit = 4096;  // so the second message overflows it and reads pause
  gateway_fixture gw(2, o);
  client c(gw.port());
  login(c);
  // The first message's commit waits for fdatasync while the second message,
  // ~256 KiB of 100-octet lines, is already on its way behind it.
  std::string line(98, 'y');
  std::string big;
  for (int i = 0; i < 2600; ++i) big += line + "\r\n";
  c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nfirst\r\n.\r\n"
         "MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\n" + big + ".\r\n"
         "MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nthird\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "354 ");
  EXPECT_EQ(c.reply().rfind("250 2.0.0 Message accepted", 0), 0u);
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "354 ");
  // Accepted or refused as too long for an SMS: either way one reply, in step.
  std::string second = c.reply();
  bool second_accepted = second.rfind("250 2.0.0 Message accepted", 0) == 0;
  EXPECT_TRUE(second_accepted || second.substr(0, 4) == "554 ") << second;
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "354 ");
  EXPECT_EQ(c.reply().rfind("250 2.0.0 Message accepted", 0), 0u);
  EXPECT_EQ(c.reply().substr(0, 4), "221 ");
  gw.stop();
  EXPECT_EQ(gw.messages_in_journals(), second_accepted ? 3u : 2u);
}

TEST(io_runtime, grace_period_ends_stuck_transactions) {
  fixture_options o;
  o.runtime.shutdown_grace = 200ms;
  gateway_fixture gw(1, o);
  client c(gw.port());
  login(c);
  c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nnever finished\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "354 ");
  gw.stop();  // returns once the grace period has closed the session
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(gw.messages_in_journals(), 0u);
}

#ifdef POSTINO_TEST_HOOKS
TEST(io_runtime, failed_fsync_answers_451_and_gives_the_debit_back) {
  gateway_fixture gw(2, {}, 10);
  client c(gw.port());
  login(c);
  spool::test_hooks::fail_next_syncs(1);
  c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nlost\r\n.\r\n");
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "250 ");
  EXPECT_EQ(c.reply().substr(0, 4), "354 ");
  EXPECT_EQ(c.reply(), "451 4.3.0 Local error in processing, try again\r\n");
  // The debit came back: a new session still sees all 10 units.
  client again(gw.port());
  ASSERT_EQ(again.reply().substr(0, 4), "220 ");
  again.send("EHLO me\r\nAUTH PLAIN " + b64(std::string("\0alice\0secret", 13)) + "\r\n");
  EXPECT_EQ(again.reply().substr(0, 4), "250-");
  std::string r = again.reply();
  EXPECT_NE(r.find("CREDIT: 10 "), std::string::npos) << r;
}
#endif

TEST(io_runtime, idle_session_memory) {
  gateway_fixture gw(2);
  constexpr int kSessions = 500;
  std::vector<std::unique_ptr<client>> clients;
  clients.reserve(kSessions);
  // Warm-up: first-time allocations (caches, vectors) are not per session.
  {
    client warm(gw.port());
    login(warm);
  }
  std::this_thread::sleep_for(50ms);
  long long before = g_heap_bytes.load();
  long long mine_before = t_heap_bytes;
  for (int i = 0; i < kSessions; ++i) {
    clients.push_back(std::make_unique<client>(gw.port()));
    login(*clients.back());
  }
  long long client_side = t_heap_bytes - mine_before;  // this thread's clients and buffers
  long long after = g_heap_bytes.load();
  double per_session = static_cast<double>(after - before - client_side) / kSessions;
  std::printf("sizeof(io::connection) = %zu; heap per idle authenticated session = %.0f bytes\n",
              sizeof(io::connection), per_session);
  EXPECT_LT(per_session, 4096.0);
  EXPECT_EQ(gw.sum(&core::shard_metrics::sessions_active), static_cast<std::uint64_t>(kSessions));
}

}  // namespace
}  // namespace postino
