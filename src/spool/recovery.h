// Journal start-up: reads every segment of a journal directory, checks every
// record, cuts a torn final group, passes the records to the caller and hands
// the journal the segment and offset to continue at. Segment files are
// mapped read-only while recovery runs and unmapped before it returns; the
// descriptors in recovered_state belong to the caller.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "postino/spool.h"

namespace postino::spool {

struct recovered_state {
  int dir_fd = -1;
  int segment_fd = -1;             // the newest segment, read-write
  std::uint64_t segment_name = 0;
  std::uint64_t capacity = 0;      // its size: appends must stay below it
  std::uint64_t offset = 0;        // first free byte; everything before is durable
  std::uint64_t next_sequence = 1;
};

// False with `error` ("<file>: offset <n>: <what>" for damaged records, or a
// system call's errno text); `visit` is only called once every segment has
// been checked, so a failed recovery visits nothing.
bool recover(const journal_options& options, const std::function<void(record&)>& visit,
             recovered_state& state, std::string& error);

}  // namespace postino::spool
