// The journal's group commit on the shard's io_uring ring. Records appended
// while no group is in flight start one at once; records appended while one
// is in flight wait in `queued_` and form the next group when it completes,
// so at most one IORING_OP_WRITEV (at the segment offset) linked to one
// IORING_OP_FSYNC (DATASYNC) is ever in flight per journal. Waiters hear
// on_durable(true) only after that fdatasync succeeded.
//
// Buffers: each queued record shares its message (handed in by
// append_message) or its copy of a delivery record's strings (copied by
// append_delivery: they are small). When a group is formed its records move
// into `flight_.records`, their headers are encoded into `flight_.staging`, and
// `flight_.iov` points into the staging string and straight at each
// message's body; none of these is touched until both CQEs are back.
//
// Failure (short write, write or fdatasync error): the group's waiters hear
// on_durable(false) and the journal seals: a new segment whose first record
// names the old segment and its last durable offset, written and fdatasynced
// synchronously (a rare path). If sealing fails the journal is failed and
// every later append fails; the failed group's bytes are then overwritten
// with zeros in place (the segment is preallocated, so this needs no new
// space), because without a seal a restart would otherwise replay whatever
// of them reached the disk: messages whose client was told 451. A new segment that cannot be created (disk
// full) fails only the records waiting for it; the next append retries.
// Failures that are not the result of a CQE (a failed journal, a record
// larger than a segment) are reported from a NOP
// completion, so a waiter is never called back from inside append. A null
// waiter (delivery records nobody waits for) is skipped wherever waiters are
// told.
#include <liburing.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <vector>

#include "failpoint.h"
#include "postino/core.h"
#include "postino/runtime.h"
#include "postino/spool.h"
#include "record_codec.h"
#include "recovery.h"
#include "segment_file.h"

namespace postino::spool {
namespace {

// A group's iovecs stay within one writev.
constexpr std::size_t max_iov = IOV_MAX;
// The write's CQE result is an int; the kernel also caps one write near 2 GiB.
constexpr std::uint64_t max_group_bytes = 1u << 30;

struct pending_record {
  record_type type = record_type::message;
  std::uint64_t sequence = 0;
  std::uint64_t unix_ms = 0;
  std::shared_ptr<const message> msg;  // message only
  account_id account = 0;        // top_up, refund
  credit_units amount = 0;
  delivery_event delivery;       // submitted, delivery_final
  inbound_message inbound;       // inbound
  std::string carried;           // carried: the payload
  append_waiter* waiter = nullptr;

  std::uint64_t disk_size() const {
    switch (type) {
      case record_type::message: return codec::message_size(*msg);
      case record_type::submitted:
      case record_type::delivery_final: return codec::delivery_size(type, delivery);
      case record_type::inbound: return codec::inbound_size(inbound);
      case record_type::carried: return codec::header_size + carried.size();
      case record_type::top_up:
      case record_type::refund:
      case record_type::seal: break;
    }
    return codec::credit_size;
  }
  bool has_body() const { return type == record_type::message && !msg->body.empty(); }
};

// Appends a queued record's header and payload (a message's body is written
// from its message, not staged).
void encode_one(std::string& staging, const pending_record& p, std::uint64_t group_offset) {
  switch (p.type) {
    case record_type::message:
      codec::encode_message(staging, p.sequence, p.unix_ms, group_offset, *p.msg);
      return;
    case record_type::submitted:
    case record_type::delivery_final:
      codec::encode_delivery(staging, p.type, p.sequence, p.unix_ms, group_offset, p.delivery);
      return;
    case record_type::inbound:
      codec::encode_inbound(staging, p.sequence, p.unix_ms, group_offset, p.inbound);
      return;
    case record_type::carried:
      codec::encode_carried(staging, p.sequence, p.unix_ms, group_offset, p.carried);
      return;
    case record_type::top_up:
    case record_type::refund:
    case record_type::seal:  // never queued: seal() writes it synchronously
      codec::encode_credit(staging, p.type, p.sequence, p.unix_ms, group_offset, p.account, p.amount);
      return;
  }
}

class journal_impl;

// One of the journal's SQEs: forwards its CQE to the journal.
class journal_op final : public core::completion {
 public:
  enum class kind { write, sync, notify };
  journal_op(journal_impl& owner, kind k) : owner_(owner), kind_(k) {}
  void on_complete(int result, std::uint32_t flags) override;

 private:
  journal_impl& owner_;
  kind kind_;
};

class journal_impl final : public journal {
 public:
  journal_impl(const journal_options& options, const recovered_state& state)
      : options_(options),
        dir_fd_(state.dir_fd),
        segment_fd_(state.segment_fd),
        segment_name_(state.segment_name),
        segment_path_(files::segment_path(options.dir, state.segment_name)),
        capacity_(state.capacity),
        write_offset_(state.offset),
        durable_offset_(state.offset),
        next_sequence_(state.next_sequence),
        durable_sequence_(state.next_sequence - 1) {}

  ~journal_impl() override {
    // The shard waits for pending() == 0 before destroying a journal; an
    // op still in flight here would complete into freed memory.
    assert(!flight_.active && !notify_in_flight_);
    if (segment_fd_ >= 0) ::close(segment_fd_);
    if (dir_fd_ >= 0) ::close(dir_fd_);
  }

  void attach(io_uring& ring) override { ring_ = &ring; }

  queue_id append_message(std::shared_ptr<const message> m, append_waiter* waiter) override {
    pending_record p = numbered(record_type::message, waiter);
    p.msg = std::move(m);
    const queue_id id{static_cast<std::uint8_t>(options_.node_id), static_cast<std::uint8_t>(options_.shard_id),
                      p.sequence};
    enqueue(std::move(p));
    return id;
  }

  void append_credit(record_type type, account_id account, credit_units amount,
                     append_waiter* waiter) override {
    pending_record p = numbered(type, waiter);
    p.account = account;
    p.amount = amount;
    if (type != record_type::top_up && type != record_type::refund) {
      fail_later(std::move(p));
      return;
    }
    enqueue(std::move(p));
  }

  void append_delivery(record_type type, const record& r, append_waiter* waiter) override {
    pending_record p = numbered(type, waiter);
    switch (type) {
      case record_type::submitted:
      case record_type::delivery_final:
        p.delivery = r.delivery;
        enqueue(std::move(p));
        return;
      case record_type::inbound:
        p.inbound = r.inbound;
        enqueue(std::move(p));
        return;
      case record_type::message:
      case record_type::top_up:
      case record_type::refund:
      case record_type::seal:
      case record_type::carried:
        break;
    }
    fail_later(std::move(p));
  }

  void append_carried(std::string payload, append_waiter* waiter) override {
    pending_record p = numbered(record_type::carried, waiter);
    p.carried = std::move(payload);
    enqueue(std::move(p));
  }

  std::size_t pending() const override {
    return queued_.size() + flight_.records.size() + doomed_.size() + notifying_;
  }
  std::uint64_t groups_committed() const override { return groups_committed_; }
  std::uint64_t durable_offset() const override { return durable_offset_; }
  std::uint64_t durable_sequence() const override { return durable_sequence_; }

  void on_op(journal_op::kind k, int result);

 private:
  struct group {
    bool active = false;
    int outstanding = 0;
    int write_result = 0;
    int sync_result = 0;
    std::uint64_t offset = 0;
    std::uint64_t bytes = 0;
    std::vector<pending_record> records;
    std::string staging;
    std::vector<iovec> iov;
  };

  // A record of `type` with the next sequence and the time now; its waiter
  // learns the sequence.
  pending_record numbered(record_type type, append_waiter* waiter) {
    pending_record p;
    p.type = type;
    p.sequence = next_sequence_++;
    p.unix_ms = core::unix_ms();
    p.waiter = waiter;
    if (waiter != nullptr) waiter->sequence = p.sequence;
    return p;
  }
  void enqueue(pending_record&& p);
  void fail_later(pending_record&& p);
  void notify_failures();
  void maybe_submit();
  std::size_t take_group();
  void encode_group();
  void submit_group();
  void finish_group();
  bool rotate();
  bool seal();
  void scrub_failed_tail();
  void report_unscrubbed(int err);
  void fail_journal();
  void report_failure(const group& g, std::size_t records);
  std::uint64_t new_segment_name() const {
    return std::max(next_sequence_, segment_name_ + 1);
  }

  journal_options options_;
  io_uring* ring_ = nullptr;
  int dir_fd_;
  int segment_fd_;
  std::uint64_t segment_name_;
  std::string segment_path_;
  std::uint64_t capacity_;
  std::uint64_t write_offset_;   // end of the group in flight
  std::uint64_t durable_offset_; // end of the last fdatasynced group
  std::uint64_t next_sequence_;
  std::uint64_t durable_sequence_;
  std::uint64_t groups_committed_ = 0;
  bool failed_ = false;
  bool rotate_failing_ = false;

  std::deque<pending_record> queued_;
  group flight_;
  std::vector<pending_record> doomed_;  // told on_durable(false) from a NOP
  std::size_t notifying_ = 0;
  bool notify_in_flight_ = false;

  journal_op write_op_{*this, journal_op::kind::write};
  journal_op sync_op_{*this, journal_op::kind::sync};
  journal_op notify_op_{*this, journal_op::kind::notify};
};

void journal_op::on_complete(int result, std::uint32_t) { owner_.on_op(kind_, result); }

void journal_impl::enqueue(pending_record&& p) {
  if (failed_ || p.disk_size() - codec::header_size > codec::max_payload) {
    fail_later(std::move(p));
    return;
  }
  queued_.push_back(std::move(p));
  maybe_submit();
}

void journal_impl::fail_later(pending_record&& p) {
  assert(ring_ != nullptr);
  doomed_.push_back(std::move(p));
  if (notify_in_flight_) return;
  io_uring_sqe* sqe = core::get_sqe(*ring_);
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data(sqe, static_cast<core::completion*>(&notify_op_));
  notify_in_flight_ = true;
}

void journal_impl::notify_failures() {
  notify_in_flight_ = false;
  std::vector<pending_record> doomed;
  doomed.swap(doomed_);
  notifying_ = doomed.size();
  for (auto& p : doomed) {
    --notifying_;
    if (p.waiter != nullptr) p.waiter->on_durable(false);
  }
}

// Moves the records of the next group from queued_ into flight_.records:
// as many as fit the segment's free space, the iovec limit and the group
// byte cap. Rotates first when none fits the current segment.
std::size_t journal_impl::take_group() {
  for (;;) {
    std::uint64_t room = std::min(capacity_ - write_offset_, max_group_bytes);
    std::uint64_t bytes = 0;
    std::size_t iov = 0, count = 0;
    for (const auto& p : queued_) {
      std::uint64_t size = p.disk_size();
      std::size_t need = 1 + (p.has_body() ? 1 : 0);
      if (bytes + size > room || iov + need > max_iov) break;
      bytes += size;
      iov += need;
      ++count;
    }
    if (count > 0) {
      for (std::size_t i = 0; i < count; ++i) {
        flight_.records.push_back(std::move(queued_.front()));
        queued_.pop_front();
      }
      flight_.bytes = bytes;
      return count;
    }
    if (write_offset_ > 0) {
      if (!rotate()) return 0;
      continue;
    }
    // Larger than an empty segment: it can never be written.
    fail_later(std::move(queued_.front()));
    queued_.pop_front();
    if (queued_.empty()) return 0;
  }
}

void journal_impl::encode_group() {
  group& g = flight_;
  g.offset = write_offset_;
  g.staging.clear();
  // Staging ranges per record, turned into pointers only once the staging
  // string has stopped growing.
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  ranges.reserve(g.records.size());
  for (const auto& p : g.records) {
    std::size_t begin = g.staging.size();
    encode_one(g.staging, p, g.offset);
    ranges.emplace_back(begin, g.staging.size());
  }
  g.iov.clear();
  for (std::size_t i = 0; i < g.records.size(); ++i) {
    char* start = g.staging.data() + ranges[i].first;
    std::size_t len = ranges[i].second - ranges[i].first;
    // Consecutive staging ranges (records without a body) share one iovec.
    if (!g.iov.empty() && static_cast<char*>(g.iov.back().iov_base) + g.iov.back().iov_len == start)
      g.iov.back().iov_len += len;
    else
      g.iov.push_back({start, len});
    const auto& p = g.records[i];
    if (p.has_body())
      g.iov.push_back({const_cast<char*>(p.msg->body.data()), p.msg->body.size()});
  }
}

void journal_impl::submit_group() {
  group& g = flight_;
  // The write and its linked fsync must reach the kernel in one submission:
  // a link cut at a submission boundary would let the fsync run alone.
  if (io_uring_sq_space_left(ring_) < 2) io_uring_submit(ring_);
  io_uring_sqe* write = core::get_sqe(*ring_);
  io_uring_prep_writev(write, segment_fd_, g.iov.data(), static_cast<unsigned>(g.iov.size()),
                       g.offset);
  write->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data(write, static_cast<core::completion*>(&write_op_));
  io_uring_sqe* sync = core::get_sqe(*ring_);
  io_uring_prep_fsync(sync, segment_fd_, IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data(sync, static_cast<core::completion*>(&sync_op_));
  g.active = true;
  g.outstanding = 2;
  g.write_result = 0;
  g.sync_result = 0;
  write_offset_ = g.offset + g.bytes;
}

void journal_impl::maybe_submit() {
  if (failed_ || flight_.active || queued_.empty() || ring_ == nullptr) return;
  if (take_group() == 0) return;
  encode_group();
  submit_group();
}

void journal_impl::on_op(journal_op::kind k, int result) {
  switch (k) {
    case journal_op::kind::notify:
      notify_failures();
      return;
    case journal_op::kind::write:
      if (failpoint::take_write_failure()) result = -EIO;
      flight_.write_result = result;
      break;
    case journal_op::kind::sync:
      // A sync cancelled by a failed write is not a real fdatasync.
      if (result == 0 && failpoint::take_sync_failure()) result = -EIO;
      flight_.sync_result = result;
      break;
  }
  if (--flight_.outstanding == 0) finish_group();
}

void journal_impl::finish_group() {
  group& g = flight_;
  bool ok = g.write_result >= 0 && static_cast<std::uint64_t>(g.write_result) == g.bytes &&
            g.sync_result == 0;
  std::vector<pending_record> done;
  done.swap(g.records);
  g.active = false;
  g.iov.clear();
  if (ok) {
    durable_offset_ = write_offset_;
    for (const auto& p : done) durable_sequence_ = std::max(durable_sequence_, p.sequence);
    ++groups_committed_;
    failpoint::log_durable(segment_path_, durable_offset_);
  } else {
    report_failure(g, done.size());
    if (!seal()) {
      fail_journal();
      scrub_failed_tail();
    }
  }
  // Waiters may append from their callback; the state is settled by now.
  for (auto& p : done)
    if (p.waiter != nullptr) p.waiter->on_durable(ok);
  maybe_submit();
}

// One line per failed group, naming the segment, the offset and the errno.
void journal_impl::report_failure(const group& g, std::size_t records) {
  std::string what;
  if (g.write_result < 0)
    what = files::errno_text("write", -g.write_result);
  else if (static_cast<std::uint64_t>(g.write_result) != g.bytes)
    what = "short write (" + std::to_string(g.write_result) + " of " + std::to_string(g.bytes) + " bytes)";
  else
    what = files::errno_text("fdatasync", -g.sync_result);
  std::fprintf(stderr, "postino: journal %s: offset %llu: %s; %zu record(s) refused with 451, sealing\n",
               segment_path_.c_str(), static_cast<unsigned long long>(g.offset), what.c_str(), records);
}

// A segment that cannot be created (a full disk: ENOSPC from fallocate)
// costs only the records waiting for it: nothing was written, the full
// segment stays intact, and the next append tries again, so the gateway
// accepts again as soon as space is back. Logged once per outage.
bool journal_impl::rotate() {
  std::uint64_t name = new_segment_name();
  std::string error;
  int fd = files::create_segment(dir_fd_, options_.dir, name, options_.segment_bytes, error);
  if (fd < 0) {
    if (!rotate_failing_)
      std::fprintf(stderr, "postino: journal %s: cannot start a new segment: %s; refusing with 451 until it can\n",
                   options_.dir.c_str(), error.c_str());
    rotate_failing_ = true;
    while (!queued_.empty()) {
      fail_later(std::move(queued_.front()));
      queued_.pop_front();
    }
    return false;
  }
  if (rotate_failing_)
    std::fprintf(stderr, "postino: journal %s: new segment %s created, accepting again\n", options_.dir.c_str(),
                 files::segment_path(options_.dir, name).c_str());
  rotate_failing_ = false;
  ::close(segment_fd_);
  segment_fd_ = fd;
  segment_name_ = name;
  segment_path_ = files::segment_path(options_.dir, name);
  capacity_ = options_.segment_bytes;
  write_offset_ = durable_offset_ = 0;
  next_sequence_ = std::max(next_sequence_, name);
  failpoint::log_durable(segment_path_, 0);
  return true;
}

// After a failed group: nothing after durable_offset_ in the current segment
// may ever be replayed (the kernel may have dropped some of its pages and a
// later fdatasync could succeed on the rest).
bool journal_impl::seal() {
  std::uint64_t sealed = segment_name_;
  std::uint64_t good = durable_offset_;
  std::uint64_t name = new_segment_name();
  std::string error;
  if (failpoint::take_seal_failure()) {
    std::fprintf(stderr, "postino: journal %s: seal: injected failure\n", options_.dir.c_str());
    return false;
  }
  int fd = files::create_segment(dir_fd_, options_.dir, name, options_.segment_bytes, error);
  if (fd < 0) {
    std::fprintf(stderr, "postino: journal %s: seal: %s\n", options_.dir.c_str(), error.c_str());
    return false;
  }
  std::string bytes;
  codec::encode_seal(bytes, name, core::unix_ms(), 0, sealed, good);
  std::string path = files::segment_path(options_.dir, name);
  ssize_t n = pwrite(fd, bytes.data(), bytes.size(), 0);
  if (n != static_cast<ssize_t>(bytes.size()) || fdatasync(fd) != 0) {
    error = files::errno_text(path + ": seal", n < 0 ? errno : EIO);
    std::fprintf(stderr, "postino: journal %s: %s\n", options_.dir.c_str(), error.c_str());
    ::close(fd);
    return false;
  }
  ::close(segment_fd_);
  segment_fd_ = fd;
  segment_name_ = name;
  segment_path_ = path;
  capacity_ = options_.segment_bytes;
  write_offset_ = durable_offset_ = bytes.size();
  next_sequence_ = name + 1;
  durable_sequence_ = std::max(durable_sequence_, name);
  failpoint::log_durable(segment_path_, durable_offset_);
  return true;
}

// No seal could be written after a failed group: zero the group's bytes in
// the current segment, so that recovery finds a torn tail at the last durable
// offset and replays nothing of it. If even that fails, say so plainly: the
// operator must not restart on this disk without looking.
void journal_impl::scrub_failed_tail() {
  static const std::string zeros(64 * 1024, '\0');
  for (std::uint64_t at = durable_offset_; at < write_offset_;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), write_offset_ - at));
    ssize_t done = pwrite(segment_fd_, zeros.data(), n, static_cast<off_t>(at));
    if (done <= 0) return report_unscrubbed(done < 0 ? errno : EIO);
    at += static_cast<std::uint64_t>(done);
  }
  if (fdatasync(segment_fd_) != 0) return report_unscrubbed(errno);
  std::fprintf(stderr, "postino: journal %s: the failed group after offset %llu is zeroed; a restart will not "
               "replay it\n", segment_path_.c_str(), static_cast<unsigned long long>(durable_offset_));
  write_offset_ = durable_offset_;
}

void journal_impl::report_unscrubbed(int err) {
  std::fprintf(stderr, "postino: journal %s: cannot zero the failed group after offset %llu (%s): a restart may "
               "replay messages that were refused with 451; truncate the segment to that offset first\n",
               segment_path_.c_str(), static_cast<unsigned long long>(durable_offset_), std::strerror(err));
}

void journal_impl::fail_journal() {
  failed_ = true;
  while (!queued_.empty()) {
    fail_later(std::move(queued_.front()));
    queued_.pop_front();
  }
}

}  // namespace

namespace {

class journal_service final : public core::service {
 public:
  journal_service(journal& j, core::shard& shard) : journal_(j), shard_(shard) {}
  void after_batch() override {
    shard_.metrics().journal_groups.store(journal_.groups_committed(), std::memory_order_relaxed);
  }
  bool drained() const override { return journal_.pending() == 0; }

 private:
  journal& journal_;
  core::shard& shard_;
};

}  // namespace

std::unique_ptr<core::service> attach_to_shard(journal& j, core::shard& shard) {
  j.attach(shard.ring());
  return std::make_unique<journal_service>(j, shard);
}

std::unique_ptr<journal> journal::open(const journal_options& options,
                                       const std::function<void(record&)>& visit,
                                       std::string& error) {
  recovered_state state;
  if (!recover(options, visit, state, error)) {
    if (state.segment_fd >= 0) ::close(state.segment_fd);
    if (state.dir_fd >= 0) ::close(state.dir_fd);
    return nullptr;
  }
  // A power-cut test may drop whatever this process writes after this point.
  failpoint::log_durable(files::segment_path(options.dir, state.segment_name), state.offset);
  return std::make_unique<journal_impl>(options, state);
}

}  // namespace postino::spool
