// Test-build hooks of the journal (documented in postino/spool.h): injected
// write/fdatasync/seal failures and the durable-offset log for power-cut tests.
// Without POSTINO_TEST_HOOKS every function here is an inline no-op. No
// buffers are kept.
#pragma once

#include <cstdint>
#include <string>

namespace postino::spool::failpoint {

#ifdef POSTINO_TEST_HOOKS
// True when this group write / fdatasync must be reported as failed (EIO).
bool take_write_failure();
bool take_sync_failure();
// True when this seal (the new segment after a failed group) must fail.
bool take_seal_failure();
// Appends "<segment path> <offset>" to $POSTINO_FSYNC_LOG when it is set.
void log_durable(const std::string& segment_path, std::uint64_t offset);
#else
inline bool take_write_failure() { return false; }
inline bool take_sync_failure() { return false; }
inline bool take_seal_failure() { return false; }
inline void log_durable(const std::string&, std::uint64_t) {}
#endif

}  // namespace postino::spool::failpoint
