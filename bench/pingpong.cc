// The loopback ping-pong ceiling for bench/compare: the least work a
// request/response protocol can do per exchange over N TCP connections, on
// io_uring like postino and postino-load. A W1 message through a pipelining
// client is one such exchange (the text's end and the next MAIL/RCPT/DATA in
// one write; 250, 250, 250, 354 in one reply), so W1's msgs/s divided by this
// rate says how close a server comes to what the kernel's loopback allows.
//   pingpong server PORT
//   pingpong client PORT CONNECTIONS SECONDS REQUEST_BYTES RESPONSE_BYTES
// The client sends requests of REQUEST_BYTES ("R<response bytes>", padding,
// '\n'); the server answers every '\n'-terminated request with that many
// bytes, batching the replies of one read into one send as postino does. The
// client keeps one request outstanding per connection (closed loop) and
// prints one JSON line (nlohmann-json): exchanges, seconds, exchanges/s and
// its CPU seconds.
// Not a Google Benchmark binary (bench/*_bench.cc are): bench/compare builds
// it with g++ -O2 and -luring (nlohmann-json is header-only). Each
// connection owns its receive buffer; the request and response bytes are
// static and shared.
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what, int err) {
  std::fprintf(stderr, "pingpong: %s: %s\n", what, std::strerror(err));
  std::exit(1);
}

enum op : std::uint64_t { op_accept = 1, op_recv = 2, op_send = 3 };

struct conn {
  int fd = -1;
  char buf[4096];
  std::size_t need = 0;       // server: response bytes per request; client: bytes still expected
  const char* out = nullptr;  // what is being sent
  std::size_t out_left = 0;
};

std::uint64_t tag(op o, std::size_t idx) { return (static_cast<std::uint64_t>(idx) << 2) | o; }

io_uring_sqe* sqe(io_uring& ring) {
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  if (s == nullptr) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

void arm_recv(io_uring& ring, std::vector<conn>& cs, std::size_t i) {
  io_uring_sqe* s = sqe(ring);
  io_uring_prep_recv(s, cs[i].fd, cs[i].buf, sizeof cs[i].buf, 0);
  io_uring_sqe_set_data64(s, tag(op_recv, i));
}

void arm_send(io_uring& ring, std::vector<conn>& cs, std::size_t i) {
  io_uring_sqe* s = sqe(ring);
  io_uring_prep_send(s, cs[i].fd, cs[i].out, cs[i].out_left, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, tag(op_send, i));
}

void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Handles a sent CQE: short sends continue from where they stopped.
bool sent(io_uring& ring, std::vector<conn>& cs, std::size_t i, int res) {
  if (res <= 0) return false;
  cs[i].out += res;
  cs[i].out_left -= static_cast<std::size_t>(res);
  if (cs[i].out_left > 0) arm_send(ring, cs, i);
  return true;
}

int server(int port) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = loopback(port);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("bind", errno);
  if (listen(lfd, 4096) != 0) fail("listen", errno);
  io_uring ring;
  if (int r = io_uring_queue_init(4096, &ring, 0); r < 0) fail("io_uring_queue_init", -r);
  static std::string responses(1 << 20, 'x');  // many responses back to back, each ending in '\n'
  std::vector<conn> cs;
  cs.reserve(65536);
  io_uring_sqe* s = sqe(ring);
  io_uring_prep_multishot_accept(s, lfd, nullptr, nullptr, 0);
  io_uring_sqe_set_data64(s, tag(op_accept, 0));
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const auto o = static_cast<op>(cqe->user_data & 3);
      const std::size_t i = cqe->user_data >> 2;
      if (o == op_accept) {
        if (cqe->res >= 0) {
          nodelay(cqe->res);
          cs.emplace_back();
          cs.back().fd = cqe->res;
          arm_recv(ring, cs, cs.size() - 1);
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
          s = sqe(ring);
          io_uring_prep_multishot_accept(s, lfd, nullptr, nullptr, 0);
          io_uring_sqe_set_data64(s, tag(op_accept, 0));
        }
      } else if (o == op_recv) {
        conn& c = cs[i];
        if (cqe->res <= 0) {
          close(c.fd);
          continue;
        }
        const char* p = c.buf;
        const char* end = c.buf + cqe->res;
        std::size_t requests = 0;
        if (c.need == 0) c.need = static_cast<std::size_t>(std::atoi(c.buf + 1));  // "R<bytes>..."
        while (const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p))) {
          p = static_cast<const char*>(lf) + 1;
          ++requests;
        }
        if (requests > 0) {
          const std::size_t bytes = requests * c.need;
          if (bytes > responses.size()) fail("too many requests at once", EOVERFLOW);
          c.out = responses.data() + responses.size() - bytes;
          c.out_left = bytes;
          arm_send(ring, cs, i);
        }
        arm_recv(ring, cs, i);
      } else if (o == op_send) {
        if (!sent(ring, cs, i, cqe->res)) close(cs[i].fd);
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}

int client(int port, std::size_t conns, double seconds, std::size_t request, std::size_t response) {
  std::string req = "R" + std::to_string(response);
  req.resize(request - 1, 'x');
  req += '\n';
  std::vector<conn> cs(conns);
  const sockaddr_in a = loopback(port);
  for (auto& c : cs) {
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c.fd < 0) fail("socket", errno);
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) fail("connect", errno);
    nodelay(c.fd);
  }
  io_uring ring;
  if (int r = io_uring_queue_init(4096, &ring, 0); r < 0) fail("io_uring_queue_init", -r);
  rusage ru0{};
  getrusage(RUSAGE_SELF, &ru0);
  const auto t0 = std::chrono::steady_clock::now();
  const auto stop = t0 + std::chrono::duration<double>(seconds);
  std::uint64_t exchanges = 0;
  auto start_exchange = [&](std::size_t i) {
    cs[i].out = req.data();
    cs[i].out_left = req.size();
    cs[i].need = response;
    arm_send(ring, cs, i);
    arm_recv(ring, cs, i);
  };
  for (std::size_t i = 0; i < conns; ++i) start_exchange(i);
  std::size_t in_flight = conns;
  bool stopping = false;
  while (in_flight > 0) {
    io_uring_submit_and_wait(&ring, 1);
    if (!stopping && std::chrono::steady_clock::now() >= stop) stopping = true;
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const auto o = static_cast<op>(cqe->user_data & 3);
      const std::size_t i = cqe->user_data >> 2;
      if (o == op_send) {
        if (!sent(ring, cs, i, cqe->res)) fail("send", -cqe->res);
        continue;
      }
      if (cqe->res <= 0) fail("recv", cqe->res == 0 ? ECONNRESET : -cqe->res);
      const auto got = static_cast<std::size_t>(cqe->res);
      if (got < cs[i].need) {
        cs[i].need -= got;
        arm_recv(ring, cs, i);
        continue;
      }
      ++exchanges;
      if (stopping) --in_flight;
      else start_exchange(i);
    }
    io_uring_cq_advance(&ring, seen);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru1{};
  getrusage(RUSAGE_SELF, &ru1);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  const double cpu = secs(ru1.ru_utime) - secs(ru0.ru_utime) + secs(ru1.ru_stime) - secs(ru0.ru_stime);
  // The decimals the line has always had: microseconds, and a tenth of an exchange per second.
  auto decimals = [](double v, double scale) { return std::round(v * scale) / scale; };
  const nlohmann::ordered_json line = {{"tool", "pingpong"},
                                       {"connections", conns},
                                       {"request_bytes", request},
                                       {"response_bytes", response},
                                       {"exchanges", exchanges},
                                       {"elapsed_s", decimals(wall, 1e6)},
                                       {"rate", decimals(static_cast<double>(exchanges) / wall, 1e1)},
                                       {"cpu_seconds", decimals(cpu, 1e6)}};
  std::printf("%s\n", line.dump().c_str());
  for (auto& c : cs) close(c.fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "server") == 0) return server(std::atoi(argv[2]));
  if (argc == 7 && std::strcmp(argv[1], "client") == 0) {
    const auto request = static_cast<std::size_t>(std::atol(argv[5]));
    const auto response = static_cast<std::size_t>(std::atol(argv[6]));
    if (request < 8 || request > 4096 || response < 1 || response > 4096) {
      std::fprintf(stderr, "pingpong: request 8..4096 bytes, response 1..4096 bytes\n");
      return 2;
    }
    return client(std::atoi(argv[2]), static_cast<std::size_t>(std::atol(argv[3])), std::atof(argv[4]), request,
                  response);
  }
  std::fprintf(stderr, "usage: pingpong server PORT | pingpong client PORT CONNECTIONS SECONDS REQUEST RESPONSE\n");
  return 2;
}
