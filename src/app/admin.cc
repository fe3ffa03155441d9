// Admin endpoint (see admin.h): HTTP/1.0, one connection at a time, each
// bounded by a short read deadline so a silent client cannot hold it. Reads
// the shards' counters (relaxed atomics they alone write); live operations
// are closures posted to shards, answered through a promise this thread
// waits on with a deadline (a late answer lands in the shared state and is
// dropped). Owns its request buffer, the response it builds, and its own
// account_store connection.
#include "admin.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <optional>

#include "gateway.h"
#include "postino/credit.h"
#include "postino/io.h"

namespace postino::app {
namespace {

void write_all(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

std::string response(const char* status, const std::string& body,
                     const char* type = "text/plain; version=0.0.4") {
  return std::string("HTTP/1.0 ") + status + "\r\nContent-Type: " + type + "\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string error_json(const std::string& what) { return "{\"error\": " + json_string(what) + "}\n"; }

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 19 && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// Runs `fn` on `shard` and waits (bounded) for the value it produces.
template <class T>
std::optional<T> ask_shard(core::shard& shard, std::function<void(std::function<void(T)>)> fn,
                           std::chrono::seconds timeout = std::chrono::seconds(10)) {
  auto promise = std::make_shared<std::promise<T>>();
  std::future<T> future = promise->get_future();
  shard.post_from_any_thread([fn = std::move(fn), promise] {
    fn([promise](T value) { promise->set_value(std::move(value)); });
  });
  if (future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return future.get();
}

}  // namespace

admin_server::~admin_server() { stop(); }

bool admin_server::start(const std::string& address, std::uint16_t port, std::string& error) {
  listen_fd_ = io::open_listener(address, port, 64, error);
  if (listen_fd_ < 0) return false;
  port_ = io::local_port(listen_fd_);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    error = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  thread_ = std::thread([this] { run(); });
  return true;
}

void admin_server::stop() {
  if (thread_.joinable()) {
    std::uint64_t one = 1;
    if (write(stop_fd_, &one, sizeof one) < 0) {
      // an eventfd write only fails on overflow, which cannot happen here
    }
    thread_.join();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
  listen_fd_ = stop_fd_ = -1;
}

void admin_server::run() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serve(fd);
    close(fd);
  }
}

void admin_server::serve(int fd) {
  std::string request;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (request.find("\r\n\r\n") == std::string::npos && request.find("\n\n") == std::string::npos &&
         request.size() < 8192) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return;
    char buf[2048];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    request.append(buf, static_cast<std::size_t>(n));
  }
  auto line_end = request.find_first_of("\r\n");
  std::string line = request.substr(0, line_end);
  std::string method = line.substr(0, line.find(' '));
  std::string target;
  if (auto sp = line.find(' '); sp != std::string::npos) {
    auto end = line.find(' ', sp + 1);
    target = line.substr(sp + 1, end == std::string::npos ? std::string::npos : end - sp - 1);
  }
  if (target == "/metrics") {
    if (method != "GET") return write_all(fd, response("405 Method Not Allowed", "only GET\n"));
    return write_all(fd, response("200 OK", render_metrics(rt_, delivery_.get())));
  }
  if (target.rfind("/accounts/", 0) == 0 && !database_.empty()) {
    answer a = accounts(method, target);
    return write_all(fd, response(a.status, a.body, "application/json"));
  }
  write_all(fd, response("404 Not Found", "not found\n"));
}

admin_server::answer admin_server::accounts(const std::string& method, const std::string& target) {
  // /accounts/<who>[/<verb>][?amount=<n>]
  std::string path = target, query;
  if (auto q = target.find('?'); q != std::string::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  std::string rest = path.substr(std::strlen("/accounts/"));
  std::string who = rest.substr(0, rest.find('/'));
  std::string verb = rest.find('/') == std::string::npos ? "" : rest.substr(rest.find('/') + 1);
  if (who.empty()) return {"404 Not Found", error_json("no account named")};
  if ((verb.empty() && method != "GET") || (!verb.empty() && method != "POST"))
    return {"405 Method Not Allowed", error_json(verb.empty() ? "GET only" : "POST only")};

  std::string error;
  if (!store_) store_ = credit::account_store::open(database_, error);
  if (!store_) return {"503 Service Unavailable", error_json("database: " + error)};
  auto account = all_digits(who) ? store_->find_by_id(std::stoull(who)) : store_->find_by_username(who);
  if (!account) {
    std::string why = store_->last_error();
    store_.reset();  // reopen next time if the connection is what failed
    return why.empty() ? answer{"404 Not Found", error_json("no such account: " + who)}
                       : answer{"503 Service Unavailable", error_json("database: " + why)};
  }
  const account_id id = account->settings.id;
  core::shard& home = rt_.shard_at(credit::home_shard(id, rt_.shard_count()));
  const std::string id_field = "{\"id\": " + std::to_string(id) + ", \"username\": " +
                               json_string(account->settings.username);

  if (verb.empty()) {
    auto view = ask_shard<credit::lease_authority::account_view>(
        home, [&home, id](auto reply) { reply(app::account_view(home, id)); });
    if (!view) return {"503 Service Unavailable", error_json("the home shard did not answer")};
    return {"200 OK", id_field + ", \"status\": \"" + status_name(account->settings.status) +
                          "\", \"balance\": " + std::to_string(view->balance) +
                          ", \"leased\": " + std::to_string(view->leased) +
                          ", \"lease_holders\": " + std::to_string(view->lease_holders) +
                          ", \"recalling\": " + (view->recalling ? "true" : "false") +
                          ", \"messages_since_start\": " + std::to_string(view->messages) + "}\n"};
  }
  if (verb == "credit") {
    std::string amount_text = query.rfind("amount=", 0) == 0 ? query.substr(7) : "";
    credit_units amount = 0;
    const auto parsed = std::from_chars(amount_text.data(), amount_text.data() + amount_text.size(), amount);
    if (amount_text.empty() || parsed.ec != std::errc() || parsed.ptr != amount_text.data() + amount_text.size() ||
        amount <= 0 || amount > max_balance)
      return {"400 Bad Request", error_json("amount must be an integer from 1 to " + std::to_string(max_balance) +
                                            ": ?amount=<n>")};
    auto r = ask_shard<top_up_result>(home, [&home, id, amount](auto reply) {
      app::top_up(home, id, amount, [reply](top_up_result result) { reply(result); });
    });
    if (!r) return {"503 Service Unavailable", error_json("the home shard did not answer")};
    if (r->result == top_up_result::outcome::over_maximum)
      return {"400 Bad Request", error_json("the balance " + std::to_string(r->balance) + " plus " +
                                            std::to_string(amount) + " would pass the maximum balance " +
                                            std::to_string(max_balance))};
    if (r->result != top_up_result::outcome::durable)
      return {"503 Service Unavailable", error_json("the journal could not store the top-up")};
    return {"200 OK", id_field + ", \"added\": " + std::to_string(amount) +
                          ", \"balance\": " + std::to_string(r->balance) + "}\n"};
  }
  if (verb == "suspend" || verb == "resume") {
    const account_status status = verb == "suspend" ? account_status::suspended : account_status::active;
    if (!store_->set_status(id, status)) {
      std::string why = store_->last_error();
      store_.reset();
      return {"503 Service Unavailable", error_json("database: " + why)};
    }
    // Every shard drops its cached logins, so the next AUTH reads the status.
    for (unsigned s = 0; s < rt_.shard_count(); ++s) {
      core::shard& shard = rt_.shard_at(s);
      ask_shard<bool>(shard, [&shard, id](auto reply) {
        app::forget_credentials(shard, id);
        reply(true);
      });
    }
    return {"200 OK", id_field + ", \"status\": \"" + status_name(status) + "\"}\n"};
  }
  return {"404 Not Found", error_json("unknown operation: " + verb)};
}

namespace {

// Sums one delivery counter over the shards.
std::uint64_t total_of(const delivery::shared_state& d, unsigned shards,
                       std::atomic<std::uint64_t> delivery::delivery_metrics::*field) {
  std::uint64_t sum = 0;
  for (unsigned i = 0; i < shards; ++i) sum += (d.metrics[i].*field).load(std::memory_order_relaxed);
  return sum;
}

void render_delivery(std::string& out, const delivery::shared_state& d, unsigned shards) {
  using m = delivery::delivery_metrics;
  struct row {
    const char* name;
    const char* type;
    std::atomic<std::uint64_t> m::*field;
  };
  static const row rows[] = {
      {"postino_smpp_submits_total", "counter", &m::submits},
      {"postino_smpp_submitted_ok_total", "counter", &m::submitted_ok},
      {"postino_smpp_throttled_total", "counter", &m::throttled},
      {"postino_smpp_temporary_errors_total", "counter", &m::temporary_errors},
      {"postino_smpp_permanent_errors_total", "counter", &m::permanent_errors},
      {"postino_smpp_resubmitted_total", "counter", &m::resubmitted},
      {"postino_smpp_receipts_total", "counter", &m::receipts},
      {"postino_smpp_receipts_matched_total", "counter", &m::receipts_matched},
      {"postino_smpp_receipts_early_total", "counter", &m::receipts_held},
      {"postino_smpp_receipts_unmatched_total", "counter", &m::receipts_unmatched},
      {"postino_delivery_final_total", "counter", &m::finals},
      {"postino_delivery_refunds_total", "counter", &m::refunds},
      {"postino_delivery_refunded_units_total", "counter", &m::refunded_units},
      {"postino_delivery_expired_total", "counter", &m::expired},
      {"postino_delivery_failovers_total", "counter", &m::failovers},
      {"postino_inbound_messages_total", "counter", &m::inbound},
      {"postino_smpp_binds_up", "gauge", &m::binds_up},
  };
  for (const row& r : rows) {
    out += std::string("# TYPE ") + r.name + " " + r.type + "\n";
    out += std::string(r.name) + " " + std::to_string(total_of(d, shards, r.field)) + "\n";
  }
  out += "# TYPE postino_delivery_backlog gauge\n";
  out += "postino_delivery_backlog " + std::to_string(d.backlog.load(std::memory_order_relaxed)) + "\n";
}

}  // namespace

std::string admin_server::render_metrics(core::runtime& rt, const delivery::shared_state* delivery) {
  std::uint64_t active = 0, total = 0, accepted = 0, groups = 0, requests = 0, recalls = 0;
  std::string per_shard;
  for (unsigned i = 0; i < rt.shard_count(); ++i) {
    auto& m = rt.metrics(i);
    std::uint64_t a = m.sessions_active.load(std::memory_order_relaxed);
    active += a;
    total += m.connections_total.load(std::memory_order_relaxed);
    accepted += m.messages_accepted.load(std::memory_order_relaxed);
    groups += m.journal_groups.load(std::memory_order_relaxed);
    requests += m.credit_requests.load(std::memory_order_relaxed);
    recalls += m.credit_recalls.load(std::memory_order_relaxed);
    per_shard += "postino_sessions_active{shard=\"" + std::to_string(i) + "\"} " + std::to_string(a) + "\n";
  }
  std::string out;
  out += "# TYPE postino_sessions_active gauge\n";
  out += "postino_sessions_active " + std::to_string(active) + "\n";
  out += per_shard;
  out += "# TYPE postino_connections_total counter\n";
  out += "postino_connections_total " + std::to_string(total) + "\n";
  out += "# TYPE postino_messages_accepted_total counter\n";
  out += "postino_messages_accepted_total " + std::to_string(accepted) + "\n";
  out += "# TYPE postino_journal_groups_total counter\n";
  out += "postino_journal_groups_total " + std::to_string(groups) + "\n";
  out += "# TYPE postino_credit_lease_requests_total counter\n";
  out += "postino_credit_lease_requests_total " + std::to_string(requests) + "\n";
  out += "# TYPE postino_credit_lease_recalls_total counter\n";
  out += "postino_credit_lease_recalls_total " + std::to_string(recalls) + "\n";
  out += "# TYPE postino_shards gauge\n";
  out += "postino_shards " + std::to_string(rt.shard_count()) + "\n";
  if (delivery != nullptr && delivery->enabled()) render_delivery(out, *delivery, rt.shard_count());
  return out;
}

}  // namespace postino::app
