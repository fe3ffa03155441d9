// Journal segment file helpers (see segment_file.h). These are synchronous
// system calls used only on rare paths: start-up, rotation, sealing, and the
// readers' mappings (recovery, retention on the checkpoint thread). No
// buffers are kept; the zero-fill fallback uses a small local block.
#include "segment_file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

namespace postino::spool::files {
namespace {

constexpr std::string_view prefix = "segment-";
constexpr std::string_view suffix = ".log";
constexpr std::size_t hex_digits = 16;

bool write_zeros(int fd, std::uint64_t from, std::uint64_t to) {
  std::vector<char> zeros(64 * 1024, 0);
  while (from < to) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), to - from));
    ssize_t w = pwrite(fd, zeros.data(), n, static_cast<off_t>(from));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    from += static_cast<std::uint64_t>(w);
  }
  return true;
}

// Says in `error` what failed and why (errno, read at once); false, so a
// failed step is `return failed(error, "what")`.
bool failed(std::string& error, std::string_view what) {
  error = errno_text(what, errno);
  return false;
}

}  // namespace

std::string segment_path(const std::string& dir, std::uint64_t name) {
  char file[64];
  std::snprintf(file, sizeof file, "segment-%016" PRIx64 ".log", name);
  return dir + "/" + file;
}

std::optional<std::uint64_t> parse_segment_name(std::string_view filename) {
  if (filename.size() != prefix.size() + hex_digits + suffix.size()) return std::nullopt;
  if (filename.substr(0, prefix.size()) != prefix) return std::nullopt;
  if (filename.substr(prefix.size() + hex_digits) != suffix) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : filename.substr(prefix.size(), hex_digits)) {
    int digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    else return std::nullopt;
    value = value << 4 | static_cast<std::uint64_t>(digit);
  }
  return value;
}

int create_segment(int dir_fd, const std::string& dir, std::uint64_t name, std::uint64_t bytes,
                   std::string& error) {
  std::string path = segment_path(dir, name);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno_text(path + ": create", errno);
    return -1;
  }
  // A half-made segment (no space to preallocate it) is removed, so the
  // next attempt can create the same name and recovery never meets it.
  if (!ensure_size(fd, bytes, error)) {
    error = path + ": " + error;
    ::close(fd);
    ::unlink(path.c_str());
    return -1;
  }
  if (fsync(dir_fd) != 0) {
    error = errno_text(dir + ": fsync", errno);
    ::close(fd);
    ::unlink(path.c_str());
    return -1;
  }
  return fd;
}

bool zero_range(int fd, std::uint64_t from, std::uint64_t to, std::string& error) {
  if (to <= from) return true;
  int rc = fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(from),
                     static_cast<off_t>(to - from));
  if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) {
    if (!write_zeros(fd, from, to)) return failed(error, "zero torn tail");
  } else if (rc != 0) {
    return failed(error, "zero torn tail");
  }
  if (fdatasync(fd) != 0) return failed(error, "fdatasync");
  return true;
}

bool ensure_size(int fd, std::uint64_t bytes, std::string& error) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return failed(error, "fstat");
  if (static_cast<std::uint64_t>(st.st_size) >= bytes) return true;
  // Mode 0 allocates and extends the size; the new range reads as zeros.
  if (fallocate(fd, 0, 0, static_cast<off_t>(bytes)) != 0) return failed(error, "fallocate");
  if (fsync(fd) != 0) return failed(error, "fsync");
  return true;
}

mapped_file::~mapped_file() {
  if (data_ != nullptr) munmap(const_cast<std::uint8_t*>(data_), size_);
}

bool mapped_file::map(const std::string& path, std::string& error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = errno_text(path + ": open", errno);
    return false;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    error = errno_text(path + ": fstat", errno);
    ::close(fd);
    return false;
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {
    void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      error = errno_text(path + ": mmap", errno);
      ::close(fd);
      return false;
    }
    data_ = static_cast<const std::uint8_t*>(p);
  }
  ::close(fd);
  return true;
}

}  // namespace postino::spool::files
