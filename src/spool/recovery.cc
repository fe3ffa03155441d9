// Journal recovery (DESIGN.md "Durability and credit"). Every segment is
// mapped read-only (the mapping is this file's, dropped on return) and
// walked record by record. Rules:
//  - a seal record (first record of the segment created after a failure)
//    limits the sealed segment: records must reach exactly the sealed offset,
//    and nothing after it is read;
//  - a zero header ends a segment (preallocated space);
//  - a bad record, or stray bytes after the end, in the newest segment (or
//    in the one before it when the newest holds nothing) is a torn final
//    group when no later group follows it: at most one write group is in
//    flight and the next starts only after its fdatasync, so a valid record
//    whose group starts after the damage proves the damaged record was
//    acknowledged. Torn bytes are zeroed and fdatasynced before appending
//    resumes, so they can never be read back as records;
//  - any other damage, including bytes after the end of an older segment,
//    stops start-up with "<file>: offset <n>: <what>".
// Records are visited only after every segment passed.
#include "recovery.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "record_codec.h"
#include "segment_file.h"

namespace postino::spool {
namespace {

namespace fs = std::filesystem;

struct segment {
  std::uint64_t name = 0;
  std::string path;
  files::mapped_file file;
  std::uint64_t limit = 0;       // sealed offset, or the file size
  bool sealed = false;
  // Walk result.
  std::uint64_t end = 0;         // after the last valid record
  codec::check_result stop = codec::check_result::zero;  // why the walk stopped before limit
  bool reached_limit = false;
  std::uint64_t max_sequence = 0;
  bool any_record = false;
  // Bytes [end, wipe_to) are a torn tail to zero.
  std::uint64_t wipe_to = 0;
};

std::string at(const segment& s, std::uint64_t offset, std::string_view what) {
  return s.path + ": offset " + std::to_string(offset) + ": " + std::string(what);
}

bool list_segments(const std::string& dir, std::vector<std::unique_ptr<segment>>& out,
                   std::string& error) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    auto name = files::parse_segment_name(entry.path().filename().string());
    if (!name) continue;
    auto s = std::make_unique<segment>();
    s->name = *name;
    s->path = files::segment_path(dir, *name);
    out.push_back(std::move(s));
  }
  if (ec) {
    error = dir + ": " + ec.message();
    return false;
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->name < b->name; });
  return true;
}

// Seals name the segment they close; each is the first record of a segment.
std::map<std::uint64_t, std::uint64_t> find_seals(
    const std::vector<std::unique_ptr<segment>>& segments) {
  std::map<std::uint64_t, std::uint64_t> seals;
  for (const auto& s : segments) {
    codec::header h;
    if (codec::check_record(s->file.data(), s->file.size(), h) != codec::check_result::ok ||
        h.type != static_cast<std::uint8_t>(record_type::seal))
      continue;
    record r;
    std::string what;
    if (codec::decode_record(h, s->file.data() + codec::header_size, r, what))
      seals[r.sealed_segment] = r.offset;
  }
  return seals;
}

// Walks records from the start up to the limit, stopping at a zero header or
// the first bad record. A checked record whose payload does not decode is
// never a torn write (its CRC matched): that is fatal.
bool walk(segment& s, std::string& error) {
  const std::uint8_t* data = s.file.data();
  std::uint64_t off = 0;
  while (off < s.limit) {
    codec::header h;
    auto c = codec::check_record(data + off, s.limit - off, h);
    if (c != codec::check_result::ok) {
      s.stop = c;
      break;
    }
    record r;
    std::string what;
    if (!codec::decode_record(h, data + off + codec::header_size, r, what)) {
      error = at(s, off, what);
      return false;
    }
    if (h.sequence > codec::max_sequence) {
      error = at(s, off, "sequence " + std::to_string(h.sequence) + " is past the largest a queue id holds (" +
                             std::to_string(codec::max_sequence) + ")");
      return false;
    }
    s.max_sequence = s.any_record ? std::max(s.max_sequence, h.sequence) : h.sequence;
    s.any_record = true;
    off += codec::header_size + h.length;
  }
  s.end = off;
  s.reached_limit = off >= s.limit;
  return true;
}

// Index of the last non-zero byte in [from, to) plus one, or `from`.
std::uint64_t nonzero_end(const std::uint8_t* data, std::uint64_t from, std::uint64_t to) {
  while (to > from && (to & 7) != 0 && data[to - 1] == 0) --to;
  while (to >= from + 8) {
    std::uint64_t word;
    std::memcpy(&word, data + to - 8, 8);
    if (word != 0) break;
    to -= 8;
  }
  while (to > from && data[to - 1] == 0) --to;
  return to;
}

// Decides whether the bytes after a tail-eligible segment's end are a torn
// final group (then marks them for zeroing) or damage to acknowledged data.
bool check_tail(segment& s, std::string& error) {
  const std::uint8_t* data = s.file.data();
  std::uint64_t size = s.file.size();
  std::uint64_t stray_end = nonzero_end(data, s.end, size);
  if (stray_end == s.end) return true;
  const std::uint8_t magic[4] = {'P', 'S', 'J', '1'};
  for (std::uint64_t p = s.end + 1; p + codec::header_size <= size;) {
    auto* hit = static_cast<const std::uint8_t*>(
        memmem(data + p, size - p, magic, sizeof magic));
    if (hit == nullptr) break;
    auto pos = static_cast<std::uint64_t>(hit - data);
    codec::header h;
    if (codec::check_record(hit, size - pos, h) == codec::check_result::ok &&
        h.group_offset > s.end) {
      std::string what = s.stop == codec::check_result::zero
                             ? "zeroed record before a later group at offset " + std::to_string(pos)
                             : std::string(codec::describe(s.stop)) +
                                   " before a later group at offset " + std::to_string(pos);
      error = at(s, s.end, what);
      return false;
    }
    p = pos + 1;
  }
  s.wipe_to = stray_end;
  return true;
}

// Applies the rules of the file comment to every walked segment.
bool judge(std::vector<std::unique_ptr<segment>>& segments, std::string& error) {
  std::size_t last = segments.size() - 1;
  for (std::size_t i = segments.size(); i-- > 0;) {
    segment& s = *segments[i];
    bool tail = i == last || (i + 1 == last && segments[last]->end == 0);
    if (s.sealed) {
      if (s.limit > s.file.size()) {
        error = at(s, s.limit, "sealed offset beyond the end of the file");
        return false;
      }
      if (!s.reached_limit) {
        error = at(s, s.end, std::string(codec::describe(s.stop)) + " before the sealed offset " +
                                 std::to_string(s.limit));
        return false;
      }
      continue;
    }
    if (tail) {
      if (!check_tail(s, error)) return false;
      continue;
    }
    if (!s.reached_limit && s.stop != codec::check_result::zero) {
      error = at(s, s.end, codec::describe(s.stop));
      return false;
    }
    // An older segment was only left for a newer one after its last group
    // succeeded, so after its end it holds nothing but preallocated zeros.
    std::uint64_t stray_end = nonzero_end(s.file.data(), s.end, s.file.size());
    if (stray_end != s.end) {
      error = at(s, s.end, "zero header before data ending at offset " + std::to_string(stray_end));
      return false;
    }
  }
  return true;
}

bool wipe_torn_tails(const std::vector<std::unique_ptr<segment>>& segments, std::string& error) {
  for (const auto& s : segments) {
    if (s->wipe_to <= s->end) continue;
    int fd = ::open(s->path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      error = files::errno_text(s->path + ": open", errno);
      return false;
    }
    bool ok = files::zero_range(fd, s->end, s->wipe_to, error);
    ::close(fd);
    if (!ok) {
      error = s->path + ": " + error;
      return false;
    }
  }
  return true;
}

// Records the last process wrote but had not fdatasynced yet (in flight at a
// kill -9) are still in the page cache and are replayed as accepted; they
// must reach the disk before anything (a checkpoint, a new group) relies on
// them. Only the tail segments can hold such records.
bool sync_tails(const std::vector<std::unique_ptr<segment>>& segments, std::string& error) {
  std::size_t first = segments.size() >= 2 ? segments.size() - 2 : 0;
  for (std::size_t i = first; i < segments.size(); ++i) {
    int fd = ::open(segments[i]->path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = files::errno_text(segments[i]->path + ": open", errno);
      return false;
    }
    int rc = fdatasync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) {
      error = files::errno_text(segments[i]->path + ": fdatasync", err);
      return false;
    }
  }
  return true;
}

void visit_all(const std::vector<std::unique_ptr<segment>>& segments,
               const std::function<void(record&)>& visit) {
  for (const auto& s : segments) {
    std::uint64_t off = 0;
    while (off < s->end) {
      codec::header h;
      codec::check_record(s->file.data() + off, s->end - off, h);
      record r;
      std::string what;
      codec::decode_record(h, s->file.data() + off + codec::header_size, r, what);
      if (visit) visit(r);
      off += codec::header_size + h.length;
    }
  }
}

bool open_directory(const std::string& dir, int& dir_fd, std::string& error) {
  std::error_code ec;
  bool created = fs::create_directories(dir, ec);
  if (ec) {
    error = dir + ": " + ec.message();
    return false;
  }
  dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    error = files::errno_text(dir + ": open", errno);
    return false;
  }
  if (created) {
    // The new directory's own entry must survive a crash too.
    fs::path parent = fs::absolute(fs::path(dir)).lexically_normal().parent_path();
    int parent_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent_fd >= 0) {
      fsync(parent_fd);
      ::close(parent_fd);
    }
  }
  return true;
}

bool start_empty(const journal_options& options, recovered_state& state, std::string& error) {
  state.segment_name = 1;
  state.next_sequence = 1;
  state.segment_fd =
      files::create_segment(state.dir_fd, options.dir, state.segment_name, options.segment_bytes, error);
  state.capacity = options.segment_bytes;
  state.offset = 0;
  return state.segment_fd >= 0;
}

bool open_newest(const journal_options& options, const segment& newest, recovered_state& state,
                 std::string& error) {
  state.segment_name = newest.name;
  state.offset = newest.end;
  state.segment_fd = ::open(newest.path.c_str(), O_RDWR | O_CLOEXEC);
  if (state.segment_fd < 0) {
    error = files::errno_text(newest.path + ": open", errno);
    return false;
  }
  if (!files::ensure_size(state.segment_fd, options.segment_bytes, error)) {
    // A full disk must not stop start-up (or a reader): the segment's own
    // preallocated size is enough to go on, and the next rotation will say
    // whether space is back.
    if (errno != ENOSPC && errno != EDQUOT) {
      error = newest.path + ": " + error;
      return false;
    }
    std::fprintf(stderr, "postino: %s: %s; continuing within its %zu bytes\n", newest.path.c_str(),
                 error.c_str(), newest.file.size());
    error.clear();
    state.capacity = newest.file.size();
    return true;
  }
  state.capacity = std::max<std::uint64_t>(options.segment_bytes, newest.file.size());
  return true;
}

}  // namespace

bool read_journal(const std::string& dir, const std::function<void(record&)>& visit, std::string& error) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;  // a shard that never wrote has no journal
  std::vector<std::unique_ptr<segment>> segments;
  if (!list_segments(dir, segments, error)) return false;
  for (auto& s : segments) {
    if (!s->file.map(s->path, error)) return false;
    s->limit = s->file.size();
  }
  auto seals = find_seals(segments);
  for (auto& s : segments) {
    auto it = seals.find(s->name);
    if (it != seals.end() && s.get() != segments.back().get()) s->limit = std::min(it->second, s->file.size());
    // A bad record only ends this segment's walk: judging damage is
    // start-up's business, a reader reports what it can read.
    if (!walk(*s, error)) return false;
  }
  visit_all(segments, visit);
  return true;
}

bool recover(const journal_options& options, const std::function<void(record&)>& visit,
             recovered_state& state, std::string& error) {
  if (!open_directory(options.dir, state.dir_fd, error)) return false;
  std::vector<std::unique_ptr<segment>> segments;
  if (!list_segments(options.dir, segments, error)) return false;
  if (segments.empty()) return start_empty(options, state, error);

  for (auto& s : segments) {
    if (s->name > codec::max_sequence) {
      error = s->path + ": a segment name past the largest sequence a queue id holds (" +
              std::to_string(codec::max_sequence) + ")";
      return false;
    }
    if (!s->file.map(s->path, error)) return false;
    s->limit = s->file.size();
  }
  auto seals = find_seals(segments);
  for (auto& s : segments) {
    auto it = seals.find(s->name);
    if (it != seals.end() && s.get() != segments.back().get()) {
      s->sealed = true;
      s->limit = it->second;
      if (s->limit > s->file.size()) continue;  // judged below
    }
    if (!walk(*s, error)) return false;
  }
  if (!judge(segments, error)) return false;
  if (!wipe_torn_tails(segments, error)) return false;
  if (!sync_tails(segments, error)) return false;

  std::uint64_t next = std::max<std::uint64_t>(segments.back()->name, 1);
  for (const auto& s : segments)
    if (s->any_record) next = std::max(next, s->max_sequence + 1);
  state.next_sequence = next;
  visit_all(segments, visit);
  return open_newest(options, *segments.back(), state, error);
}

}  // namespace postino::spool
