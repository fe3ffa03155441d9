// Admin endpoint (see admin.h): HTTP/1.0, one connection at a time, each
// bounded by a short read deadline so a silent client cannot hold it. Reads
// the shards' counters (relaxed atomics they alone write); owns only its
// request buffer and the response string it builds.
#include "admin.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

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

std::string response(const char* status, const std::string& body) {
  return std::string("HTTP/1.0 ") + status + "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
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
  if (line.rfind("GET /metrics ", 0) == 0 || line == "GET /metrics") {
    write_all(fd, response("200 OK", render_metrics(rt_)));
  } else if (line.rfind("GET ", 0) == 0) {
    write_all(fd, response("404 Not Found", "not found\n"));
  } else {
    write_all(fd, response("405 Method Not Allowed", "only GET\n"));
  }
}

std::string admin_server::render_metrics(core::runtime& rt) {
  std::uint64_t active = 0, total = 0, accepted = 0, groups = 0;
  std::string per_shard;
  for (unsigned i = 0; i < rt.shard_count(); ++i) {
    auto& m = rt.metrics(i);
    std::uint64_t a = m.sessions_active.load(std::memory_order_relaxed);
    active += a;
    total += m.connections_total.load(std::memory_order_relaxed);
    accepted += m.messages_accepted.load(std::memory_order_relaxed);
    groups += m.journal_groups.load(std::memory_order_relaxed);
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
  out += "# TYPE postino_shards gauge\n";
  out += "postino_shards " + std::to_string(rt.shard_count()) + "\n";
  return out;
}

}  // namespace postino::app
