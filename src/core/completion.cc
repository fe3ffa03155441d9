// Ring set-up, CQE dispatch and SQE acquisition shared by every component
// that submits to a shard's ring. No buffers are touched here.
#include "postino/core.h"

#include <liburing.h>

#include <cerrno>

namespace postino::core {

int setup_ring(io_uring& ring, unsigned sq_entries, unsigned cq_entries, unsigned& flags) {
  // Most wanted first; each step drops what an older kernel may refuse.
  const unsigned base = IORING_SETUP_CQSIZE;
  const unsigned attempts[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN |
          IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      0,
  };
  int rc = -EINVAL;
  for (unsigned extra : attempts) {
    io_uring_params params{};
    params.flags = base | extra;
    params.cq_entries = cq_entries < sq_entries * 2 ? sq_entries * 2 : cq_entries;
    rc = io_uring_queue_init_params(sq_entries, &ring, &params);
    if (rc == 0) {
      flags = params.flags;
      return 0;
    }
    if (rc != -EINVAL) return rc;
  }
  return rc;
}


void dispatch(io_uring& ring, io_uring_cqe* cqe) {
  auto* target = static_cast<completion*>(io_uring_cqe_get_data(cqe));
  int result = cqe->res;
  std::uint32_t flags = cqe->flags;
  io_uring_cqe_seen(&ring, cqe);
  if (target != nullptr) target->on_complete(result, flags);
}

io_uring_sqe* get_sqe(io_uring& ring) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  while (sqe == nullptr) {
    io_uring_submit(&ring);
    sqe = io_uring_get_sqe(&ring);
  }
  return sqe;
}

}  // namespace postino::core
