// The admin endpoint: a tiny HTTP/1.0 server on its own plain thread (blocking
// accept and reads, never on a shard), on loopback. Not a hot path: one
// request at a time. Routes (JSON answers except /metrics):
//   GET  /metrics                         the shards' relaxed counters
//   GET  /accounts/<id|name>              balance, leases outstanding, status
//   POST /accounts/<id|name>/credit?amount=<n>
//                                         a top-up, journaled on the home
//                                         shard; 200 once durable
//   POST /accounts/<id|name>/suspend      status in postino.db, cached
//   POST /accounts/<id|name>/resume       logins dropped on every shard
// A path segment of digits only is an account id, anything else a username.
// Live operations run on the account's home shard through its inbox; this
// thread waits for the answer (bounded) and never touches shard state.
#pragma once

#include <atomic>
#include <memory>
#include <cstdint>
#include <string>
#include <thread>

#include "postino/credit.h"
#include "postino/delivery.h"
#include "postino/runtime.h"

namespace postino::app {

class admin_server {
 public:
  // `database`: postino.db, for account look-ups and status changes (empty:
  // only /metrics is served).
  explicit admin_server(core::runtime& rt, std::string database = {}) : rt_(rt), database_(std::move(database)) {}
  ~admin_server();
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;

  // Binds address:port (0: ephemeral) and starts the thread.
  bool start(const std::string& address, std::uint16_t port, std::string& error);
  std::uint16_t port() const { return port_; }
  void stop();

  // SMPP delivery counters for /metrics (set before start(); may stay null).
  void set_delivery(std::shared_ptr<delivery::shared_state> d) { delivery_ = std::move(d); }

  // The /metrics body (also used by tests).
  static std::string render_metrics(core::runtime& rt, const delivery::shared_state* delivery = nullptr);

 private:
  struct answer {
    const char* status = "200 OK";
    std::string body;
  };
  void run();
  void serve(int fd);
  answer accounts(const std::string& method, const std::string& target);

  core::runtime& rt_;
  std::string database_;
  std::shared_ptr<delivery::shared_state> delivery_;
  std::unique_ptr<credit::account_store> store_;  // opened on first use
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the poll() on stop
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace postino::app
