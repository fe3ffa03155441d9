// The advisory lock that says "a process owns writes to this database": the
// gateway holds it for its whole life, postino-ctl takes it around each write
// and refuses when it cannot. flock() on "<db>.lock" is released by the
// kernel when the holder dies, so a crash never leaves a stale lock. The lock
// file is never unlinked: unlinking would let two processes lock two different
// inodes under the same name. No buffers are touched here.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "postino/credit.h"

namespace postino::credit {

// On false, errno tells why: EWOULDBLOCK when another process holds the lock,
// anything else when the lock file could not be opened or locked at all.
bool database_lock::try_acquire(const std::string& db_path) {
  if (fd_ >= 0) return true;
  const std::string lock_path = db_path + ".lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return false;
  }
  fd_ = fd;
  return true;
}

database_lock::~database_lock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace postino::credit
