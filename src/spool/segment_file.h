// File-level helpers for journal segments: names, creation (preallocated,
// fsynced, directory fsynced), zeroing a torn tail, errno text, and a
// read-only mapping for the readers (recovery, retention). They own no
// buffers but the mapping; descriptors they return belong to the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "postino/core.h"

namespace postino::spool::files {

// "<dir>/segment-<16 hex digits>.log"
std::string segment_path(const std::string& dir, std::uint64_t name);
// The name encoded in a directory entry, or nothing for other files.
std::optional<std::uint64_t> parse_segment_name(std::string_view filename);

// "<what>: <errno text>" (one wording for every part: postino/core.h).
using core::errno_text;

// Creates segment `name` in `dir` (whose descriptor is dir_fd), preallocated
// to `bytes`, fsyncs it and the directory. Returns the read-write descriptor,
// or -1 with `error` set.
int create_segment(int dir_fd, const std::string& dir, std::uint64_t name, std::uint64_t bytes,
                   std::string& error);

// Makes [from, to) of fd read as zeros and fdatasyncs it, so bytes after a
// recovery cut can never be read back as records.
bool zero_range(int fd, std::uint64_t from, std::uint64_t to, std::string& error);

// Grows fd to at least `bytes` of allocated, zero-filled space and fsyncs it.
bool ensure_size(int fd, std::uint64_t bytes, std::string& error);

// A read-only private mapping of a whole file, unmapped by the destructor.
class mapped_file {
 public:
  mapped_file() = default;
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file();
  bool map(const std::string& path, std::string& error);
  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace postino::spool::files
