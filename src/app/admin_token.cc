// The admin token file (see admin_token.h). Runs on the gateway's main thread
// at start-up (under the database lock, so two gateways never race to create
// it) and in postino-ctl; owns only the strings it returns.
#include "admin_token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "postino/core.h"

namespace postino::app {
namespace {

constexpr std::size_t token_bytes = 32;     // drawn from RAND_bytes
constexpr std::size_t min_token_size = 32;  // a hand-written token must not be shorter
constexpr std::size_t max_token_size = 512;

using core::errno_text;

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// RFC 6750's token68 characters: what may follow "Bearer " in a header.
bool valid_token(std::string_view t) {
  if (t.size() < min_token_size || t.size() > max_token_size) return false;
  for (unsigned char c : t) {
    // (c != 0 first: strchr also finds the terminating NUL.)
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    (c != 0 && std::strchr("-._~+/=", c) != nullptr);
    if (!ok) return false;
  }
  return true;
}

// Reads the whole (small) file behind `fd` and checks it holds one token line.
std::optional<std::string> read_token_from(int fd, const std::string& path, std::string& error) {
  std::string text;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = path + ": " + errno_text(errno);
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > max_token_size + 2) break;
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!valid_token(text)) {
    error = path + ": not an admin token (one line of " + std::to_string(min_token_size) + " to " +
            std::to_string(max_token_size) + " characters A-Z a-z 0-9 - . _ ~ + / =); delete it and "
            "restart the gateway to make a new one";
    return std::nullopt;
  }
  return text;
}

std::string random_hex_token(std::string& error) {
  unsigned char bytes[token_bytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    error = "RAND_bytes failed: cannot draw a random admin token";
    return {};
  }
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : bytes) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return hex;
}

bool write_all(int fd, const std::string& text) {
  std::size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

// A new token in a 0600 temporary file, made durable and renamed over `path`.
std::optional<std::string> create_token(const std::string& path, std::string& error) {
  std::string token = random_hex_token(error);
  if (token.empty()) return std::nullopt;
  const std::string tmp = path + ".tmp";
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    error = tmp + ": " + errno_text(errno);
    return std::nullopt;
  }
  // O_EXCL: never write through a file or link someone else put there.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = tmp + ": " + errno_text(errno);
    return std::nullopt;
  }
  const bool written = write_all(fd, token + "\n") && ::fsync(fd) == 0;
  const int write_errno = errno;
  if (::close(fd) != 0 || !written) {
    error = tmp + ": " + errno_text(written ? errno : write_errno);
    ::unlink(tmp.c_str());
    return std::nullopt;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    return std::nullopt;
  }
  // The rename itself, durable: a crash must not leave a token the running
  // gateway used but the next start does not find.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return token;
}

// An existing token file: ours, regular, and 0600 (repaired when it is not).
std::optional<std::string> load_existing(int fd, const std::string& path, std::string& note, std::string& error) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = path + ": " + errno_text(errno);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + ": not a regular file";
    return std::nullopt;
  }
  if (st.st_uid != ::geteuid()) {
    error = path + ": owned by uid " + std::to_string(st.st_uid) + ", not by this gateway's uid " +
            std::to_string(::geteuid()) + "; whoever owns it can read the token";
    return std::nullopt;
  }
  if ((st.st_mode & 077) != 0) {
    if (::fchmod(fd, 0600) != 0) {
      error = path + ": mode " + octal_mode(st.st_mode) + " lets others read the token, and chmod 0600 failed: " +
              errno_text(errno);
      return std::nullopt;
    }
    note = "admin token " + path + " had mode " + octal_mode(st.st_mode) +
           " (group/others could read it): set to 0600; delete it and restart to make a new token if "
           "someone may have read it";
  }
  return read_token_from(fd, path, error);
}

}  // namespace

std::string admin_token_path(const std::string& data_dir) {
  return (std::filesystem::path(data_dir) / "admin-token").string();
}

std::optional<std::string> load_or_create_admin_token(const std::string& path, std::string& note,
                                                      std::string& error) {
  note.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return create_token(path, error);
  if (fd < 0) {
    error = path + ": " + errno_text(errno);
    return std::nullopt;
  }
  auto token = load_existing(fd, path, note, error);
  ::close(fd);
  return token;
}

std::optional<std::string> read_admin_token(const std::string& path, std::string& error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot read the admin token " + path + ": " + errno_text(errno);
    return std::nullopt;
  }
  auto token = read_token_from(fd, path, error);
  ::close(fd);
  return token;
}

bool same_token(std::string_view presented, std::string_view expected) {
  if (presented.size() != expected.size() || expected.empty()) return false;
  return CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) == 0;
}

}  // namespace postino::app
