// The admin endpoint: a tiny HTTP/1.0 server on its own plain thread (blocking
// accept and reads, never on a shard) that serves GET /metrics from the
// shards' relaxed counters. Not a hot path: one request at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "postino/runtime.h"

namespace postino::app {

class admin_server {
 public:
  explicit admin_server(core::runtime& rt) : rt_(rt) {}
  ~admin_server();
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;

  // Binds address:port (0: ephemeral) and starts the thread.
  bool start(const std::string& address, std::uint16_t port, std::string& error);
  std::uint16_t port() const { return port_; }
  void stop();

  // The /metrics body (also used by tests).
  static std::string render_metrics(core::runtime& rt);

 private:
  void run();
  void serve(int fd);

  core::runtime& rt_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the poll() on stop
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace postino::app
