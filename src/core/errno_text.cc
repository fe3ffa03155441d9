// The one wording of syscall errors (include/core/postino/core.h): strerror_r into
// a local buffer, so shards, workers and the main thread may all ask at once.
// Returns owned strings; keeps nothing.
#include <cstring>
#include <string>
#include <string_view>

#include "postino/core.h"

namespace postino::core {

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r (g++ defines _GNU_SOURCE): returns the text, which is
  // either a static string or written into buf.
  return strerror_r(err, buf, sizeof buf);
}

std::string errno_text(std::string_view what, int err) {
  std::string out(what);
  out += ": ";
  out += errno_text(err);
  return out;
}

}  // namespace postino::core
