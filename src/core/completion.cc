// CQE dispatch and SQE acquisition shared by every component that submits to
// a shard's ring. No buffers are touched here.
#include "postino/core.h"

#include <liburing.h>

namespace postino::core {

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
