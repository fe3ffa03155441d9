// The provided-buffer ring, listening sockets and the SO_PEERNAME uring_cmd. The buffer ring's memory (ring entries and buffers, one mmap) is
// owned by buffer_ring and lent to the kernel for as long as it is registered;
// the socket helpers touch only caller-owned addresses.
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "postino/core.h"
#include "postino/io.h"

namespace postino::io {

buffer_ring::~buffer_ring() {
  if (ring_ != nullptr) io_uring_unregister_buf_ring(ring_, group_);
  if (br_ != nullptr) munmap(br_, map_bytes_);
}

int buffer_ring::init(io_uring& ring, unsigned count, unsigned size, std::uint16_t group) {
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0 || size == 0) return -EINVAL;
  const std::size_t ring_bytes = std::size_t(count) * sizeof(io_uring_buf);
  // The ring entries must be page aligned; the buffers follow on the next page.
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t ring_pages = (ring_bytes + page - 1) / page * page;
  map_bytes_ = ring_pages + std::size_t(count) * size;
  void* mem = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return -errno;
  br_ = static_cast<io_uring_buf_ring*>(mem);
  base_ = static_cast<char*>(mem) + ring_pages;
  count_ = count;
  size_ = size;
  group_ = group;
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<unsigned long>(br_);
  reg.ring_entries = count;
  reg.bgid = group;
  int rc = io_uring_register_buf_ring(&ring, &reg, 0);
  if (rc != 0) return rc;
  ring_ = &ring;
  const int mask = io_uring_buf_ring_mask(count);
  for (unsigned i = 0; i < count; ++i)
    io_uring_buf_ring_add(br_, base_ + std::size_t(i) * size, size, static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  io_uring_buf_ring_advance(br_, static_cast<int>(count));
  return 0;
}

void buffer_ring::recycle(std::uint16_t id) {
  io_uring_buf_ring_add(br_, base_ + std::size_t(id) * size_, size_, id, io_uring_buf_ring_mask(count_),
                        static_cast<int>(pending_));
  ++pending_;
}

void buffer_ring::commit() {
  if (pending_ == 0) return;
  io_uring_buf_ring_advance(br_, static_cast<int>(pending_));
  pending_ = 0;
}

namespace {

// An IPv4 or IPv6 literal and a port as a socket address (inet_pton writes
// the address only when the text is one of its family).
bool parse_address(const std::string& address, std::uint16_t port, sockaddr_storage& out,
                   socklen_t& len) {
  std::memset(&out, 0, sizeof out);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    out.ss_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    out.ss_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    return false;
  }
  return true;
}

}  // namespace

int open_listener(const std::string& address, std::uint16_t port, int backlog, std::string& error) {
  sockaddr_storage addr;
  socklen_t len = 0;
  if (!parse_address(address, port, addr, len)) {
    error = "'" + address + "' is not an IP address";
    return -1;
  }
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "socket: " + core::errno_text(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Accepted sockets inherit TCP_NODELAY (accepted ones are direct
  // descriptors, out of setsockopt's reach). A session already writes all the
  // replies a read produced at once, so Nagle has nothing to merge; it would
  // only hold a reply written while the previous one is unacknowledged until
  // the client's delayed ACK, up to 40 ms.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      (addr.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    error = "cannot listen on " + format_endpoint(address, port) + ": " + core::errno_text(err);
    return -1;
  }
  return fd;
}

// The kernel's own check: a probe bound without SO_REUSEPORT (SO_REUSEADDR
// only, so a TIME_WAIT left by a previous run does not count) fails with
// EADDRINUSE exactly when a socket listens there already, whoever owns it,
// SO_REUSEPORT or not, and on a wildcard address that covers this one. It is
// closed before the real sockets are bound: only two start-ups within that
// instant could still share the port (two gateways on one database cannot:
// the database lock).
bool port_is_free(const std::string& address, std::uint16_t port, std::string& error) {
  sockaddr_storage addr;
  socklen_t len = 0;
  if (!parse_address(address, port, addr, len)) {
    error = "'" + address + "' is not an IP address";
    return false;
  }
  const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "socket: " + core::errno_text(errno);
    return false;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  const int err = errno;
  close(fd);
  if (bound) return true;
  error = "cannot listen on " + format_endpoint(address, port) +
          (err == EADDRINUSE ? ": another process already listens there (" + core::errno_text(err) + ")"
                             : ": " + core::errno_text(err));
  return false;
}

std::uint16_t local_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

std::string format_ip(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = "unknown";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, text, sizeof text);
  } else if (addr.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6))
      inet_ntop(AF_INET, &a6.s6_addr[12], text, sizeof text);
    else
      inet_ntop(AF_INET6, &a6, text, sizeof text);
  }
  return text;
}

std::string format_endpoint(const std::string& address, std::uint16_t port) {
  if (address.find(':') != std::string::npos) return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

void prep_peer_name(io_uring_sqe* sqe, int fixed_fd, sockaddr_storage* out, unsigned optlen) {
  // liburing 2.3 predates io_uring_prep_cmd_sock; these are the fields the
  // kernel reads for SOCKET_URING_OP_GETSOCKOPT (uapi io_uring.h, 6.7+):
  // cmd_op, level/optname (the two halves of addr), optlen (file_index) and
  // optval (addr3).
  constexpr std::uint32_t socket_uring_op_getsockopt = 2;
  io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fixed_fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->cmd_op = socket_uring_op_getsockopt;
  sqe->addr = static_cast<std::uint64_t>(SOL_SOCKET) | (static_cast<std::uint64_t>(SO_PEERNAME) << 32);
  sqe->file_index = optlen;
  sqe->addr3 = reinterpret_cast<std::uint64_t>(out);
}

}  // namespace postino::io
