// Journal retention on the checkpoint thread (see retention.h). Segments are
// read through spool's segment_reader and judged by the message index the
// checkpoint just wrote; carried records are appended by the journal's own
// shard (carry_records, gateway.h), whose answer comes back through
// `answers_`; files are unlinked here, off the shards' threads.
#include "retention.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <tuple>

#include "gateway.h"
#include "postino/core.h"
#include "postino/spool.h"

namespace postino::app {
namespace {

using indexed = credit::checkpoint_store::indexed;

// The distinct messages a segment's delivery records name, as queue ids.
std::vector<std::string> named_messages(const spool::segment_reader& reader) {
  std::vector<queue_id> ids = reader.deliveries();
  auto order = [](const queue_id& a, const queue_id& b) {
    return std::tie(a.node, a.shard, a.sequence) < std::tie(b.node, b.shard, b.sequence);
  };
  std::sort(ids.begin(), ids.end(), order);
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const queue_id& id : ids) out.push_back(id.format());
  return out;
}

}  // namespace

journal_retention::journal_retention(core::runtime& rt, std::string data_dir, unsigned node_id, bool evaluate,
                                     std::uint64_t first_wait_ms)
    : rt_(rt), data_dir_(std::move(data_dir)), node_(node_id), evaluate_(evaluate), first_wait_ms_(first_wait_ms) {}

std::string journal_retention::dir_of(unsigned shard) const {
  return data_dir_ + "/journal-" + std::to_string(shard);
}

void journal_retention::run(const std::vector<std::uint64_t>& positions, std::uint64_t finals,
                            credit::checkpoint_store& index) {
  finals_ = finals;
  take_answers();
  for (unsigned shard = 0; shard < positions.size() && shard < rt_.shard_count(); ++shard)
    run_journal(shard, positions[shard], index);
}

void journal_retention::take_answers() {
  std::vector<carried_answer> list;
  {
    std::lock_guard lock(answers_->mutex);
    list.swap(answers_->list);
  }
  for (const carried_answer& a : list) {
    carrying_.erase({a.shard, a.segment});
    // Every carried record is durable: the old segment holds nothing needed.
    if (!a.ok || !delete_segment(a.shard, a.segment)) postpone(a.shard, a.segment, 0);
  }
}

// Oldest first, every segment but the newest whose records the checkpoint
// covers: all of a segment's records have sequences below the next
// segment's name (the journal's next sequence when it was created).
void journal_retention::run_journal(unsigned shard, std::uint64_t position, credit::checkpoint_store& index) {
  std::string error;
  const std::vector<std::uint64_t> names = spool::segment_names(dir_of(shard), error);
  if (!error.empty()) std::fprintf(stderr, "postino: journal retention: %s\n", error.c_str());
  rt_.metrics(shard).journal_segments.store(names.size(), std::memory_order_relaxed);
  if (!evaluate_) return;
  const std::uint64_t now = core::unix_ms();
  for (std::size_t at = 0; at + 1 < names.size() && names[at + 1] - 1 <= position; ++at) {
    const std::pair<unsigned, std::uint64_t> key{shard, names[at]};
    if (carrying_.contains(key)) continue;
    const auto w = waits_.find(key);
    if (w != waits_.end() && (now < w->second.due_ms || finals_ < w->second.finals_due)) continue;
    std::uint64_t finals_needed = 0;
    switch (evaluate(shard, names, at, index, finals_needed)) {
      case verdict::keep: postpone(shard, names[at], finals_needed); break;
      case verdict::carry: carrying_.insert(key); break;
      case verdict::deleted: break;
    }
  }
}

// Reads segment names[at] and deletes it, asks its shard to carry its open
// messages forward, or keeps it (see retention.h for when).
journal_retention::verdict journal_retention::evaluate(unsigned shard, const std::vector<std::uint64_t>& names,
                                                       std::size_t at, credit::checkpoint_store& index,
                                                       std::uint64_t& finals_needed) {
  const std::string dir = dir_of(shard);
  const std::uint64_t name = names[at];
  // A segment opening with the seal of an older one still here bounds it.
  const auto own_seal = spool::segment_reader::first_seal(dir, name);
  if (own_seal && std::binary_search(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(at), own_seal->first))
    return verdict::keep;
  std::optional<std::uint64_t> limit;
  if (const auto next_seal = spool::segment_reader::first_seal(dir, names[at + 1]); next_seal && next_seal->first == name)
    limit = next_seal->second;
  std::string error;
  const auto reader = spool::segment_reader::open(dir, name, limit, node_, shard, error);
  std::vector<std::string> ids;
  if (reader) {
    ids = named_messages(*reader);
    for (const spool::stored_message& m : reader->messages()) ids.push_back(m.id.format());
  }
  std::vector<indexed> states;
  if (!reader || !index.message_states(ids, states, error)) {
    if (!failing_) std::fprintf(stderr, "postino: journal retention: %s (the segment is kept)\n", error.c_str());
    failing_ = true;
    return verdict::keep;
  }
  failing_ = false;
  const std::size_t named = ids.size() - reader->messages().size();
  for (std::size_t i = 0; i < named; ++i)
    if (states[i] == indexed::absent) return verdict::keep;  // its message is not covered yet
  std::vector<std::size_t> open;
  std::uint64_t open_bytes = 0;
  for (std::size_t i = 0; i < reader->messages().size(); ++i) {
    if (states[named + i] == indexed::final) continue;
    open.push_back(i);
    open_bytes += reader->messages()[i].bytes;
  }
  if (open_bytes * 2 > reader->used_bytes()) {
    // Each final folded finishes at most one open message of the average size.
    const std::uint64_t excess = open_bytes - reader->used_bytes() / 2;
    finals_needed = (excess * open.size() + open_bytes - 1) / open_bytes;
    return verdict::keep;
  }
  std::vector<std::string> payloads;
  for (std::size_t i : open) {
    payloads.push_back(reader->carried_payload(reader->messages()[i]));
    if (payloads.back().empty()) return verdict::keep;
  }
  if (payloads.empty()) return delete_segment(shard, name) ? verdict::deleted : verdict::keep;
  core::shard* target = &rt_.shard_at(shard);
  std::shared_ptr<answers> box = answers_;
  target->post_from_any_thread([target, box, shard, name, payloads = std::move(payloads)]() mutable {
    carry_records(*target, std::move(payloads), [box, shard, name](bool ok) {
      std::lock_guard lock(box->mutex);
      box->list.push_back({shard, name, ok});
    });
  });
  return verdict::carry;
}

// Unlinks the segment and syncs its directory, so a restart does not find
// it again (it would find only records the index makes harmless: covered,
// final or carried, but it would read them).
bool journal_retention::delete_segment(unsigned shard, std::uint64_t name) {
  const std::string dir = dir_of(shard);
  const std::string path = spool::segment_path(dir, name);
  waits_.erase({shard, name});
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    std::fprintf(stderr, "postino: journal retention: %s\n", core::errno_text(path + ": unlink", errno).c_str());
    return false;
  }
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  rt_.metrics(shard).journal_segments_deleted.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void journal_retention::postpone(unsigned shard, std::uint64_t name, std::uint64_t finals_needed) {
  wait& w = waits_[{shard, name}];
  w.delay_ms = std::min(longest_wait_ms, std::max(first_wait_ms_, w.delay_ms * 2));
  w.due_ms = core::unix_ms() + w.delay_ms;
  w.finals_due = finals_ + finals_needed;
}

}  // namespace postino::app
