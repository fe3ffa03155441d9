// Interposes the C allocator and memcpy/memmove for postino-replay (see
// counters.h). Symbols defined in the executable take precedence over
// glibc's for every caller that binds through the PLT: postino_lib's own
// code, libstdc++ (operator new, std::string's copies), GLib and
// libphonenumber. Each wrapper forwards to glibc's implementation
// (__libc_malloc and friends, __memcpy_chk / __memmove_chk with no size
// bound) so behaviour and the heap layout are glibc's; counting adds a few
// instructions per call, the same in every run. glibc's calls to itself use
// internal aliases and are not seen; a copy the compiler inlines (a small
// constant size) is not seen either, which is the point: those cost nothing
// worth guarding. Owns only the counters.
#include "counters.h"

#include <cstddef>
#include <cstdint>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
void* __memcpy_chk(void*, const void*, std::size_t, std::size_t);
void* __memmove_chk(void*, const void*, std::size_t, std::size_t);
}

namespace {

bool counting = false;
postino::replay::counts totals;

// Through volatile pointers, so the compiler cannot turn the forward back
// into a call to memcpy/memmove (which would be these functions again).
void* (*volatile forward_memcpy)(void*, const void*, std::size_t, std::size_t) = __memcpy_chk;
void* (*volatile forward_memmove)(void*, const void*, std::size_t, std::size_t) = __memmove_chk;

inline void count_allocation(std::size_t bytes) {
  if (!counting) return;
  ++totals.allocations;
  totals.bytes_allocated += bytes;
}

}  // namespace

namespace postino::replay {

void reset_counts() {
  totals = {};
  counting = false;
}

void resume_counting() { counting = true; }
void pause_counting() { counting = false; }
counts current_counts() { return totals; }

}  // namespace postino::replay

extern "C" {

void* malloc(std::size_t n) {
  count_allocation(n);
  return __libc_malloc(n);
}

void* calloc(std::size_t n, std::size_t size) {
  count_allocation(n * size);
  return __libc_calloc(n, size);
}

void* realloc(void* p, std::size_t n) {
  count_allocation(n);
  return __libc_realloc(p, n);
}

void free(void* p) { __libc_free(p); }

void* memalign(std::size_t alignment, std::size_t n) {
  count_allocation(n);
  return __libc_memalign(alignment, n);
}

void* aligned_alloc(std::size_t alignment, std::size_t n) { return memalign(alignment, n); }

int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return 22;  // EINVAL
  void* p = memalign(alignment, n);
  if (p == nullptr) return 12;  // ENOMEM
  *out = p;
  return 0;
}

void* memcpy(void* dst, const void* src, std::size_t n) {
  if (counting) totals.bytes_copied += n;
  return forward_memcpy(dst, src, n, static_cast<std::size_t>(-1));
}

void* memmove(void* dst, const void* src, std::size_t n) {
  if (counting) totals.bytes_copied += n;
  return forward_memmove(dst, src, n, static_cast<std::size_t>(-1));
}

}  // extern "C"
