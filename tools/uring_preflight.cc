// CI preflight: proves this kernel gives postino what its shards need, an
// io_uring ring with SINGLE_ISSUER and DEFER_TASKRUN, a registered
// provided-buffer ring and MSG_RING, so that a green CI means the real I/O
// path ran. Exits 0 when all work, 1 naming the first that does not.
#include <liburing.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

int fail(const char* what, int err) {
  std::fprintf(stderr, "uring-preflight: %s: %s\n", what, std::strerror(err));
  return 1;
}

}  // namespace

int main() {
  io_uring ring;
  int rc = io_uring_queue_init(64, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
  if (rc < 0) return fail("io_uring_queue_init(SINGLE_ISSUER|DEFER_TASKRUN)", -rc);

  io_uring_buf_ring* br = nullptr;
  if (posix_memalign(reinterpret_cast<void**>(&br), 4096, 8 * sizeof(io_uring_buf)) != 0)
    return fail("posix_memalign", ENOMEM);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<unsigned long>(br);
  reg.ring_entries = 8;
  reg.bgid = 0;
  rc = io_uring_register_buf_ring(&ring, &reg, 0);
  if (rc < 0) return fail("io_uring_register_buf_ring", -rc);

  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_msg_ring(sqe, ring.ring_fd, 0, 42, 0);
  io_uring_submit_and_wait(&ring, 1);
  io_uring_cqe* cqe = nullptr;
  bool seen_message = false;
  while (io_uring_peek_cqe(&ring, &cqe) == 0) {
    if (cqe->user_data == 42) seen_message = true;
    else if (cqe->res < 0) return fail("IORING_OP_MSG_RING", -cqe->res);
    io_uring_cqe_seen(&ring, cqe);
    if (!seen_message) io_uring_submit_and_wait(&ring, 1);
  }
  if (!seen_message) return fail("IORING_OP_MSG_RING delivered nothing", EIO);
  io_uring_queue_exit(&ring);
  std::printf("uring-preflight: SINGLE_ISSUER|DEFER_TASKRUN ring, buffer ring, MSG_RING: ok\n");
  return 0;
}
