// Process-wide counters of heap allocations and copied bytes for
// postino-replay. counters.cc interposes the C allocator (malloc, calloc,
// realloc and the aligned forms, which operator new and GLib's g_malloc both
// reach) and memcpy/memmove, forwarding each to glibc; while counting is on,
// every call adds to these totals. The replay is single-threaded; the
// counters are plain globals owned by counters.cc.
#pragma once

#include <cstdint>

namespace postino::replay {

struct counts {
  std::uint64_t allocations = 0;      // malloc/calloc/realloc/aligned calls
  std::uint64_t bytes_allocated = 0;  // bytes those calls asked for
  std::uint64_t bytes_copied = 0;     // bytes through memcpy/memmove
};

// Zeroes the totals; counting stays off until resume_counting().
void reset_counts();
void resume_counting();
void pause_counting();
// What was counted since reset_counts().
counts current_counts();

}  // namespace postino::replay
