// Admin endpoint (see admin.h) on cpp-httplib. httplib's accept loop runs on
// thread_; every accepted socket goes to a pool of `workers` threads through
// a queue that stamps the accept time. Each connection is read and written
// through a deadline_stream, whose every wait (poll) ends at accept time +
// request_deadline, so the whole request, however it is dripped, is bounded;
// there is no watchdog thread and no shutdown() of a socket another thread
// may already have closed and whose fd number may be reused. (httplib's own
// SocketStream applies its timeouts per read, so a byte every few seconds
// would hold a worker forever.) The queue is bounded too: a connection past
// it is closed at once. Checks run before routing (pre-routing handler):
// Host and Origin (403), then the bearer token (401). Shard operations are
// closures posted to shards, answered through a promise the worker waits on
// until a limit inside the deadline (a late answer lands in the shared state
// and is dropped). Owns its listening socket (handed to httplib), the
// responses it builds and one account_store connection, shared by the
// workers under store_mutex_.
#include "admin.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <optional>
#include <vector>

#include "admin_token.h"
#include "gateway.h"
#include "postino/ascii.h"
#include "postino/io.h"

namespace postino::app {

using credit::stored_account;

namespace {

using clock_type = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

// Shard answers are awaited until this long after accept, which leaves the
// rest of the deadline for writing the 503 that says they were late, and
// keeps the answer inside postino-ctl's own 5 s bound.
constexpr auto shard_answer_limit = std::chrono::milliseconds(2500);
// Accepted connections waiting for a worker; beyond that they are closed.
constexpr std::size_t max_waiting = 64;
constexpr const char* metrics_type = "text/plain; version=0.0.4";
// What one connection may send: no route takes a body, and a request line
// with its headers fits in a few hundred bytes.
constexpr std::size_t max_request_bytes = 64 * 1024;

// When the connection this worker thread serves was accepted (set by the
// accept_stamping_queue before it runs the connection's job).
thread_local clock_type::time_point accepted_at{};

clock_type::time_point request_deadline_now() { return accepted_at + admin_server::request_deadline; }

// An httplib::Stream on one socket whose every wait ends at one deadline.
// Reads go through a small buffer (httplib reads request lines a byte at a
// time). Owns the buffer, not the socket.
class deadline_stream final : public httplib::Stream {
 public:
  // `ssl`: the connection's TLS (the handshake done), or null for HTTP.
  deadline_stream(int fd, clock_type::time_point deadline, SSL* ssl = nullptr)
      : fd_(fd), deadline_(deadline), ssl_(ssl) {}

  bool is_readable() const override { return pos_ < have_ || tls_buffered() || wait_for(POLLIN); }
  bool is_writable() const override { return wait_for(POLLOUT); }

  ssize_t read(char* ptr, size_t size) override {
    if (pos_ == have_) {
      // The deadline bounds time, this the bytes: httplib grows a header
      // line until its LF and keeps every header, before any check runs.
      if (read_total_ >= max_request_bytes || (!tls_buffered() && !wait_for(POLLIN))) return -1;
      const std::size_t room = std::min(sizeof buffer_, max_request_bytes - read_total_);
      ssize_t n;
      if (ssl_ != nullptr) {
        n = SSL_read(ssl_, buffer_, static_cast<int>(room));
      } else {
        do {
          n = ::recv(fd_, buffer_, room, 0);
        } while (n < 0 && errno == EINTR);
      }
      if (n <= 0) return n;
      read_total_ += static_cast<std::size_t>(n);
      pos_ = 0;
      have_ = static_cast<std::size_t>(n);
    }
    const std::size_t n = std::min(size, have_ - pos_);
    std::memcpy(ptr, buffer_ + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!wait_for(POLLOUT)) return -1;
    if (ssl_ != nullptr) return SSL_write(ssl_, ptr, static_cast<int>(std::min<size_t>(size, INT32_MAX)));
    ssize_t n;
    do {
      n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { name_of(::getpeername, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { name_of(::getsockname, ip, port); }
  socket_t socket() const override { return fd_; }

 private:
  // Decrypted bytes OpenSSL holds already: poll() would not see them.
  bool tls_buffered() const { return ssl_ != nullptr && SSL_pending(ssl_) > 0; }

  // poll() until `events` or the deadline; false once it has passed.
  bool wait_for(short events) const {
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - clock_type::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, events, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left));
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return false;
    }
  }

  template <class Getter>
  void name_of(Getter get, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ip.clear();
    port = 0;
    if (get(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
      ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
      port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
      ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
      port = ntohs(a->sin6_port);
    }
    ip = text;
  }

  int fd_;
  clock_type::time_point deadline_;
  SSL* ssl_;  // not owned
  char buffer_[4096];
  std::size_t pos_ = 0, have_ = 0;
  std::size_t read_total_ = 0;
};

// httplib's task queue: a ThreadPool of `workers`, each job stamped with the
// time its connection was accepted (the queue is called right after accept).
class accept_stamping_queue final : public httplib::TaskQueue {
 public:
  accept_stamping_queue() : pool_(admin_server::workers) {}

  void enqueue(std::function<void()> fn) override {
    const auto now = clock_type::now();
    if (waiting_.load(std::memory_order_relaxed) >= max_waiting) {
      // Served here with its deadline already past: closed without a wait.
      accepted_at = clock_type::time_point{};
      fn();
      return;
    }
    waiting_.fetch_add(1, std::memory_order_relaxed);
    pool_.enqueue([this, fn = std::move(fn), now] {
      waiting_.fetch_sub(1, std::memory_order_relaxed);
      accepted_at = now;
      fn();
    });
  }
  void shutdown() override { pool_.shutdown(); }

 private:
  httplib::ThreadPool pool_;
  std::atomic<std::size_t> waiting_{0};
};

}  // namespace

// httplib's server with one request per connection, read and written
// through a deadline_stream. process_and_close_socket is a private virtual
// of httplib::Server; overriding it is allowed and is httplib's only hook
// between accept and the request. process_request (protected) parses,
// routes and writes the answer.
class admin_server::http final : public httplib::Server {
 public:
  // A request without Content-Length or Transfer-Encoding has no body
  // (RFC 9112 6.3), but httplib 0.11 reads a POST's body until the client
  // closes, so `curl -X POST` would wait for the deadline and get nothing.
  static void no_length_no_body(httplib::Request& req) {
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding"))
      req.set_header("Content-Length", "0");
  }

  // Serves on an already listening socket (bound by io::open_listener,
  // whose errors carry errno text, which httplib's bind does not report).
  void adopt_listener(int fd) { svr_sock_ = fd; }
  // HTTPS: every connection's TLS handshake first (null: plain HTTP). The
  // context is the SMTP listeners' kind (io::tls_context: TLS 1.2 or later,
  // reloaded on SIGHUP); the handshake here is OpenSSL's on the socket.
  io::tls_context* tls = nullptr;

 private:
  bool process_and_close_socket(socket_t sock) override {
    const auto deadline = request_deadline_now();
    bool ok = false;
    if (tls == nullptr) {
      deadline_stream stream(sock, deadline);
      bool connection_closed = true;
      ok = process_request(stream, /*close_connection=*/true, connection_closed, no_length_no_body);
    } else {
      ok = serve_tls(sock, deadline);
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ok;
  }

  // The handshake and OpenSSL's reads and writes block on the socket: its
  // timeouts are the request's deadline, so a silent client is cut there too.
  bool serve_tls(socket_t sock, clock_type::time_point deadline) {
    const timeval limit{static_cast<time_t>(request_deadline.count()), 0};
    ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    ::setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(tls->current()), &SSL_free);
    if (!ssl || SSL_set_fd(ssl.get(), sock) != 1 || SSL_accept(ssl.get()) != 1) {
      ERR_clear_error();  // a client that is not speaking TLS, or gave up
      return false;
    }
    deadline_stream stream(sock, deadline, ssl.get());
    bool connection_closed = true;
    const bool ok = process_request(stream, /*close_connection=*/true, connection_closed, no_length_no_body);
    SSL_shutdown(ssl.get());
    ERR_clear_error();
    return ok;
  }
};


struct admin_server::answer {
  int status = 200;
  std::string body;
  const char* type = "application/json";
};

namespace {

std::string json_text(const json& j) {
  // Usernames come from postino-ctl: invalid UTF-8 is replaced, not thrown.
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string error_json(const std::string& what) { return json_text(json{{"error", what}}); }

std::optional<std::uint64_t> account_number(std::string_view s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  std::uint64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// Posts `fn` to `shard`; the future is ready once fn's reply ran there.
template <class T>
std::future<T> post_to_shard(core::shard& shard, std::function<void(std::function<void(T)>)> fn) {
  auto promise = std::make_shared<std::promise<T>>();
  std::future<T> future = promise->get_future();
  shard.post_from_any_thread([fn = std::move(fn), promise] {
    fn([promise](T value) { promise->set_value(std::move(value)); });
  });
  return future;
}

clock_type::time_point shard_answer_deadline() { return accepted_at + shard_answer_limit; }

// Runs `fn` on `shard` and waits (until the shard answer limit) for its value.
template <class T>
std::optional<T> ask_shard(core::shard& shard, std::function<void(std::function<void(T)>)> fn) {
  std::future<T> future = post_to_shard<T>(shard, std::move(fn));
  if (future.wait_until(shard_answer_deadline()) != std::future_status::ready) return std::nullopt;
  return future.get();
}

bool loopback_literal(const std::string& name) {
  in_addr v4;
  in6_addr v6;
  if (::inet_pton(AF_INET, name.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  if (::inet_pton(AF_INET6, name.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

// A Host header naming this machine: localhost, 127.0.0.0/8 or [::1], with
// or without a port. Anything else is a name that merely resolves here (a
// DNS rebinding page).
bool loopback_host(std::string_view host) {
  std::string name, port;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    name = std::string(host.substr(1, close - 1));
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    if (!rest.empty()) port = std::string(rest.substr(1));
    if (name.find(':') == std::string::npos) return false;  // brackets are for IPv6 only
  } else {
    const auto colon = host.find(':');
    if (colon != std::string_view::npos && host.find(':', colon + 1) != std::string_view::npos) return false;
    name = std::string(host.substr(0, colon));
    if (colon != std::string_view::npos) port = std::string(host.substr(colon + 1));
  }
  if (!port.empty() && !account_number(port)) return false;
  name = to_lower(name);
  return name == "localhost" || loopback_literal(name);
}

// The origins of this endpoint's own pages (none exist today, but a page
// served from the endpoint itself is no cross-site request).
bool own_origin(std::string_view origin, const std::string& address, std::uint16_t port) {
  const std::string p = ":" + std::to_string(port);
  const std::string bound = address.find(':') != std::string::npos ? "[" + address + "]" : address;
  const std::string o = to_lower(origin);
  for (const std::string& host : {bound, std::string("localhost"), std::string("127.0.0.1"), std::string("[::1]")})
    if (o == "http://" + to_lower(host) + p) return true;
  return false;
}

// The token of "Authorization: Bearer <token>" ("" when there is none).
std::string bearer_token(const httplib::Request& req) {
  const std::string value = req.get_header_value("Authorization");
  if (value.size() < 7 || to_lower(value.substr(0, 7)) != "bearer ") return {};
  const auto start = value.find_first_not_of(' ', 7);
  if (start == std::string::npos) return {};
  const auto end = value.find_last_not_of(' ');
  return value.substr(start, end + 1 - start);
}

}  // namespace

admin_server::admin_server(core::runtime& rt, std::string database, std::string token)
    : rt_(rt), database_(std::move(database)), token_(std::move(token)) {}

admin_server::~admin_server() { stop(); }

bool admin_server::reload_tls(std::string& error) {
  if (!tls_context_) {
    error = "no TLS";
    return false;
  }
  return tls_context_->reload(error);
}

bool admin_server::start(const std::string& address, std::uint16_t port, std::string& error) {
  address_ = address == "localhost" ? "127.0.0.1" : address;
  if (tls() && !(tls_context_ = io::tls_context::load({certificate_, private_key_}, error))) {
    error = "admin endpoint: " + error;
    return false;
  }
  if (port != 0 && !io::port_is_free(address_, port, error)) return false;
  int fd = io::open_listener(address_, port, 64, error);
  if (fd < 0) return false;
  // httplib's accept loop blocks in accept(); io::open_listener's socket is
  // non-blocking (the shards' rings want that), which would end the loop.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
    error = std::string("admin endpoint: fcntl: ") + std::strerror(errno);
    ::close(fd);
    return false;
  }
  port_ = io::local_port(fd);
  http_ = std::make_unique<http>();
  http_->tls = tls_context_.get();
  http_->new_task_queue = [] { return new accept_stamping_queue; };
  http_->set_payload_max_length(64 * 1024);
  install_routes();
  http_->adopt_listener(fd);
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  // httplib's stop() does nothing until its loop says it runs.
  const auto until = clock_type::now() + std::chrono::seconds(5);
  while (!http_->is_running() && clock_type::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!http_->is_running()) {
    error = "admin endpoint: the HTTP server did not start";
    return false;
  }
  return true;
}

void admin_server::stop() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
  http_.reset();
}

void admin_server::install_routes() {
  httplib::Server& s = *http_;
  // Before routing, so unknown paths need the token as well.
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const char* refusal = nullptr;
    // The Host check keeps a browser's DNS rebinding off a loopback HTTP
    // endpoint; over TLS the certificate's name does that, and the
    // endpoint is reached by its public name.
    if (!tls() && req.has_header("Host") && !loopback_host(req.get_header_value("Host")))
      refusal = "the Host header must name a loopback address (localhost, 127.0.0.1, [::1])";
    else if (req.has_header("Origin") && !own_origin(req.get_header_value("Origin"), address_, port_))
      refusal = "cross-origin requests are refused";
    if (refusal != nullptr) {
      res.status = 403;
      res.set_content(error_json(refusal), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }
    const std::string presented = bearer_token(req);
    if (!same_token(presented, token_)) {
      res.status = 401;
      res.set_header("WWW-Authenticate", presented.empty() ? "Bearer" : "Bearer error=\"invalid_token\"");
      res.set_content(error_json(presented.empty() ? "Authorization: Bearer <token of <data-dir>/admin-token> needed"
                                                   : "wrong token"),
                      "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // httplib's own refusals (no route: 404; a malformed request: 400) get a body too.
  s.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    res.set_content(error_json(res.status == 404 ? "not found" : "HTTP " + std::to_string(res.status)),
                    "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    res.status = 500;
    res.set_content(error_json("internal error"), "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_metrics(rt_, delivery_.get()), metrics_type);
  });
  s.Post("/metrics", [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_content(error_json("GET only"), "application/json");
  });
  if (database_.empty()) return;
  auto accounts = [this](const httplib::Request& req, httplib::Response& res) {
    const std::string verb = req.matches.size() > 2 ? req.matches[2].str() : std::string();
    const bool one_amount = req.get_param_value_count("amount") == 1;
    const std::string amount = one_amount ? req.get_param_value("amount") : std::string();
    answer a = account_request(req.method, req.matches[1].str(), verb, one_amount ? &amount : nullptr);
    res.status = a.status;
    res.set_content(a.body, a.type);
  };
  for (const char* pattern : {R"(/accounts/([^/]+))", R"(/accounts/([^/]+)/([^/]+))"}) {
    s.Get(pattern, accounts);
    s.Post(pattern, accounts);
  }
}

admin_server::answer admin_server::account_request(const std::string& method, const std::string& who,
                                                   const std::string& verb, const std::string* amount) {
  if ((verb.empty() && method != "GET") || (!verb.empty() && method != "POST"))
    return {405, error_json(verb.empty() ? "GET only" : "POST only")};
  if (!verb.empty() && verb != "credit" && verb != "suspend" && verb != "resume")
    return {404, error_json("unknown operation: " + verb)};

  std::optional<stored_account> account;
  {
    std::lock_guard<std::mutex> lock(store_mutex_);
    std::string error;
    if (!store_) store_ = credit::account_store::open(database_, error);
    if (!store_) return {503, error_json("database: " + error)};
    const auto number = account_number(who);
    account = number ? store_->find_by_id(*number) : store_->find_by_username(who);
    if (!account) {
      std::string why = store_->last_error();
      store_.reset();  // reopen next time if the connection is what failed
      return why.empty() ? answer{404, error_json("no such account: " + who)}
                         : answer{503, error_json("database: " + why)};
    }
  }
  if (verb.empty()) return show_account(*account);
  if (verb == "credit") return top_up_account(*account, amount);
  return change_status(*account, verb == "suspend" ? account_status::suspended : account_status::active);
}

namespace {

json account_head(const stored_account& a) {
  return json{{"id", a.settings.id}, {"username", a.settings.username}};
}

}  // namespace

admin_server::answer admin_server::show_account(const stored_account& account) {
  const account_id id = account.settings.id;
  core::shard& home = rt_.shard_at(credit::home_shard(id, rt_.shard_count()));
  auto view = ask_shard<credit::lease_authority::account_view>(
      home, [&home, id](auto reply) { reply(app::account_view(home, id)); });
  if (!view) return {503, error_json("the home shard did not answer")};
  json j = account_head(account);
  j["status"] = status_name(account.settings.status);
  j["balance"] = view->balance;
  j["leased"] = view->leased;
  j["lease_holders"] = view->lease_holders;
  j["recalling"] = view->recalling;
  j["messages_since_start"] = view->messages;
  return {200, json_text(j)};
}

admin_server::answer admin_server::top_up_account(const stored_account& account, const std::string* amount_text) {
  credit_units amount = 0;
  const std::string text = amount_text != nullptr ? *amount_text : std::string();
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), amount);
  if (text.empty() || parsed.ec != std::errc() || parsed.ptr != text.data() + text.size() || amount <= 0 ||
      amount > max_balance)
    return {400, error_json("amount must be an integer from 1 to " + std::to_string(max_balance) +
                            ": ?amount=<n>, once")};
  const account_id id = account.settings.id;
  core::shard& home = rt_.shard_at(credit::home_shard(id, rt_.shard_count()));
  auto r = ask_shard<top_up_result>(home, [&home, id, amount](auto reply) {
    app::top_up(home, id, amount, [reply](top_up_result result) { reply(result); });
  });
  if (!r) return {503, error_json("the home shard did not answer")};
  if (r->result == top_up_result::outcome::over_maximum)
    return {400, error_json("the balance " + std::to_string(r->balance) + " plus " + std::to_string(amount) +
                            " would pass the maximum balance " + std::to_string(max_balance))};
  if (r->result != top_up_result::outcome::durable)
    return {503, error_json("the journal could not store the top-up")};
  json j = account_head(account);
  j["added"] = amount;
  j["balance"] = r->balance;
  return {200, json_text(j)};
}

admin_server::answer admin_server::change_status(const stored_account& account, account_status status) {
  const account_id id = account.settings.id;
  {
    std::lock_guard<std::mutex> lock(store_mutex_);
    std::string error;
    if (!store_) store_ = credit::account_store::open(database_, error);
    if (!store_) return {503, error_json("database: " + error)};
    if (!store_->set_status(id, status)) {
      std::string why = store_->last_error();
      store_.reset();
      return {503, error_json("database: " + why)};
    }
  }
  // Every shard drops its cached logins, so the next AUTH reads the status;
  // asked all at once, awaited together within the answer limit.
  std::vector<std::future<bool>> dropped;
  for (unsigned s = 0; s < rt_.shard_count(); ++s) {
    core::shard& shard = rt_.shard_at(s);
    dropped.push_back(post_to_shard<bool>(shard, [&shard, id](auto reply) {
      app::forget_credentials(shard, id);
      reply(true);
    }));
  }
  unsigned late = 0;
  for (auto& f : dropped) late += f.wait_until(shard_answer_deadline()) == std::future_status::ready ? 0 : 1;
  json j = account_head(account);
  j["status"] = status_name(status);
  // The status is stored either way; a late shard drops the logins when it
  // gets to its inbox.
  if (late > 0) j["shards_late"] = late;
  return {200, json_text(j)};
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

// The allocator's own account (glibc's mallinfo2, which locks each arena for
// a moment): bytes in live allocations and bytes it holds free. With
// postino_sessions_active it tells what a session costs, which RSS mixes
// with fixed mappings (each shard's receive-buffer ring) and with the free
// memory a burst of handshakes left behind.
void render_heap(std::string& out) {
  const struct mallinfo2 heap = mallinfo2();
  out += "# TYPE postino_heap_allocated_bytes gauge\n";
  out += "postino_heap_allocated_bytes " + std::to_string(heap.uordblks + heap.hblkhd) + "\n";
  out += "# TYPE postino_heap_free_bytes gauge\n";
  out += "postino_heap_free_bytes " + std::to_string(heap.fordblks) + "\n";
}

}  // namespace

std::string admin_server::render_metrics(core::runtime& rt, const delivery::shared_state* delivery) {
  using m = core::shard_metrics;
  struct row {
    const char* name;
    std::atomic<std::uint64_t> m::*field;
  };
  static const row counters[] = {
      {"postino_connections_total", &m::connections_total},
      {"postino_messages_accepted_total", &m::messages_accepted},
      {"postino_journal_groups_total", &m::journal_groups},
      {"postino_journal_segments_deleted_total", &m::journal_segments_deleted},
      {"postino_journal_records_carried_total", &m::journal_records_carried},
      {"postino_credit_lease_requests_total", &m::credit_requests},
      {"postino_credit_lease_recalls_total", &m::credit_recalls},
      {"postino_tls_handshakes_total", &m::tls_handshakes},
      {"postino_tls_resumed_total", &m::tls_resumed},
      {"postino_tls_failures_total", &m::tls_failures},
  };
  const auto of_shard = [&rt](unsigned i, std::atomic<std::uint64_t> m::*field) {
    return (rt.metrics(i).*field).load(std::memory_order_relaxed);
  };
  std::uint64_t active = 0;
  std::string per_shard;
  for (unsigned i = 0; i < rt.shard_count(); ++i) {
    const std::uint64_t a = of_shard(i, &m::sessions_active);
    active += a;
    per_shard += "postino_sessions_active{shard=\"" + std::to_string(i) + "\"} " + std::to_string(a) + "\n";
  }
  std::string out = "# TYPE postino_sessions_active gauge\npostino_sessions_active " + std::to_string(active) + "\n";
  out += per_shard;
  for (const row& r : counters) {
    std::uint64_t sum = 0;
    for (unsigned i = 0; i < rt.shard_count(); ++i) sum += of_shard(i, r.field);
    out += std::string("# TYPE ") + r.name + " counter\n" + r.name + " " + std::to_string(sum) + "\n";
  }
  std::uint64_t segments = 0;
  for (unsigned i = 0; i < rt.shard_count(); ++i) segments += of_shard(i, &m::journal_segments);
  out += "# TYPE postino_journal_segments gauge\npostino_journal_segments " + std::to_string(segments) + "\n";
  out += "# TYPE postino_shards gauge\n";
  out += "postino_shards " + std::to_string(rt.shard_count()) + "\n";
  render_heap(out);
  if (delivery != nullptr && delivery->enabled()) render_delivery(out, *delivery, rt.shard_count());
  return out;
}

}  // namespace postino::app
