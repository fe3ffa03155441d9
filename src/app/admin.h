// The admin endpoint: a small HTTP server (cpp-httplib, kept out of this
// header) on its own threads, never on a shard, on a loopback address only
// (the config loader refuses any other until TLS exists). Not a hot path.
// A few workers serve connections side by side; each connection gets one
// request and a deadline on all of it, from accept until the answer is
// written, so slow or silent clients cannot hold /metrics back for longer
// than that deadline, however many of them there are.
// Every request needs `Authorization: Bearer <token>` (the token of
// <data-dir>/admin-token, admin_token.h), else 401; an `Origin` other than
// the endpoint's own, or a `Host` that is not a loopback name or address
// (DNS rebinding), is 403, so a web page in a local browser cannot use it.
// Routes (JSON answers except /metrics):
//   GET  /metrics                         the shards' relaxed counters
//   GET  /accounts/<id|name>              balance, leases outstanding, status
//   POST /accounts/<id|name>/credit?amount=<n>
//                                         a top-up of 1..max_balance, journaled
//                                         on the home shard; 200 once durable,
//                                         400 when the balance would pass
//                                         max_balance (nothing journaled)
//   POST /accounts/<id|name>/suspend      status in postino.db, cached
//   POST /accounts/<id|name>/resume       logins dropped on every shard
// A path segment of digits only is an account id, anything else a username.
// Live operations run on the account's home shard through its inbox; the
// worker waits for the answer within the request's deadline and never
// touches shard state.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "postino/credit.h"
#include "postino/delivery.h"
#include "postino/tls.h"
#include "postino/runtime.h"


namespace postino::app {

class admin_server {
 public:
  // `database`: postino.db, for account look-ups and status changes (empty:
  // only /metrics is served). `token`: what a request must present.
  admin_server(core::runtime& rt, std::string database, std::string token);
  ~admin_server();
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;

  // Binds address:port (0: ephemeral; "localhost" binds 127.0.0.1) and
  // starts the accepting thread and the workers.
  bool start(const std::string& address, std::uint16_t port, std::string& error);
  // HTTPS instead of HTTP (before start()): the PEM files are read by
  // start(), which fails naming them. Required off loopback (config.cc).
  void use_tls(std::string certificate, std::string private_key) {
    certificate_ = std::move(certificate);
    private_key_ = std::move(private_key);
  }
  bool tls() const { return !certificate_.empty(); }
  // SIGHUP: reads the PEM files again; a file that does not load keeps the
  // current ones and `error` says why. False too when there is no TLS.
  bool reload_tls(std::string& error);
  std::uint16_t port() const { return port_; }
  // The IP literal it listens on (after start).
  const std::string& address() const { return address_; }
  // Stops accepting and waits for the requests in progress (each bounded
  // by its deadline).
  void stop();

  // SMPP delivery counters for /metrics (set before start(); may stay null).
  void set_delivery(std::shared_ptr<delivery::shared_state> d) { delivery_ = std::move(d); }

  // The /metrics body (also used by tests).
  static std::string render_metrics(core::runtime& rt, const delivery::shared_state* delivery = nullptr);

  // How many connections are served at once, and the deadline of each.
  static constexpr unsigned workers = 4;
  static constexpr std::chrono::seconds request_deadline{5};

 private:
  class http;  // the httplib::Server, defined in admin.cc
  struct answer;
  void install_routes();
  answer account_request(const std::string& method, const std::string& who, const std::string& verb,
                         const std::string* amount);
  answer show_account(const credit::stored_account& account);
  answer top_up_account(const credit::stored_account& account, const std::string* amount);
  answer change_status(const credit::stored_account& account, account_status status);

  core::runtime& rt_;
  std::string database_;
  std::string token_;
  std::shared_ptr<delivery::shared_state> delivery_;
  std::mutex store_mutex_;                         // the workers share one connection
  std::unique_ptr<credit::account_store> store_;  // opened on first use
  std::unique_ptr<http> http_;
  std::string certificate_, private_key_;  // empty: plain HTTP
  std::unique_ptr<io::tls_context> tls_context_;  // when TLS
  std::string address_;
  std::uint16_t port_ = 0;
  std::thread thread_;  // httplib's accept loop; it owns the workers
};

}  // namespace postino::app
