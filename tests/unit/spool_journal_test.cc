// Unit tests for the journal (src/spool/): group commit on a real io_uring
// ring (SINGLE_ISSUER | DEFER_TASKRUN, reaped with submit_and_wait and
// core::dispatch) in a temporary directory; recovery in order; a torn tail cut
// at every byte; damage in the middle; the fdatasync and write failpoints
// (451 path and seal); rotation; the durable-offset log; delivery records
// (with and without a waiter) grouped with messages. Each test owns its
// ring, directory, transactions and waiters.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "../../src/spool/record_codec.h"
#include "postino/core.h"
#include "postino/spool.h"

namespace {

namespace fs = std::filesystem;
using namespace postino;
using namespace postino::spool;

// Failpoints and the durable-offset log exist only in a POSTINO_TEST_HOOKS
// build (the CMake option; release builds have none).
#ifdef POSTINO_TEST_HOOKS
constexpr bool test_hooks_built = true;
#else
constexpr bool test_hooks_built = false;
#endif

// The durable-offset log must be named before the first journal runs; it is
// removed when the test program exits.
struct fsync_log {
  std::string path = "/tmp/postino-spool-fsync-log-" + std::to_string(getpid());
  fsync_log() {
    ::unlink(path.c_str());
    setenv("POSTINO_FSYNC_LOG", path.c_str(), 1);
  }
  ~fsync_log() { ::unlink(path.c_str()); }
};
const fsync_log the_fsync_log;
const std::string& fsync_log_path = the_fsync_log.path;

struct waiter final : append_waiter {
  int ok = 0;
  int failed = 0;
  void on_durable(bool durable) override { durable ? ++ok : ++failed; }
  bool done() const { return ok + failed > 0; }
};

// A waiter that appends another record from inside its callback.
struct chaining_waiter final : append_waiter {
  journal* j = nullptr;
  waiter* next = nullptr;
  bool durable = false;
  void on_durable(bool d) override {
    durable = d;
    message tx;
    tx.body = "appended from a callback";
    tx.recipients = {"+393331234567"};
    j->append_message(std::move(tx), next);
  }
};

message make_tx(int i, std::size_t body_size = 60) {
  message tx;
  tx.account = 100 + static_cast<account_id>(i % 3);
  tx.originator = i % 2 ? "+393401234567" : "ACME";
  tx.originator_type = i % 2 ? originator_kind::numeric : originator_kind::alphanumeric;
  tx.recipients = {"+39333" + std::to_string(1000000 + i)};
  if (i % 4 == 0) tx.recipients.push_back("+447911123456");
  tx.segments = 1;
  tx.price = static_cast<credit_units>(tx.recipients.size());
  tx.body = "message " + std::to_string(i) + " ";
  while (tx.body.size() < body_size) tx.body.push_back(static_cast<char>('a' + tx.body.size() % 26));
  tx.body.resize(body_size);
  return tx;
}

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/postino-journal-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/journal-3";
    int rc = io_uring_queue_init(64, &ring_, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    if (rc < 0) GTEST_SKIP() << "io_uring_queue_init: " << std::strerror(-rc);
    ring_ok_ = true;
  }

  void TearDown() override {
    j_.reset();
    if (ring_ok_) io_uring_queue_exit(&ring_);
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  journal_options options(std::uint64_t segment_bytes = 1 << 20) const {
    journal_options o;
    o.dir = dir_;
    o.node_id = 1;
    o.shard_id = 3;
    o.segment_bytes = segment_bytes;
    return o;
  }

  // Opens the journal, attaches it to the ring and returns the records recovered.
  std::vector<record> open(std::uint64_t segment_bytes = 1 << 20) {
    j_.reset();
    std::vector<record> seen;
    std::string error;
    j_ = journal::open(options(segment_bytes), [&](const record& r) { seen.push_back(r); }, error);
    EXPECT_TRUE(j_) << error;
    if (j_) j_->attach(ring_);
    return seen;
  }

  // Opens expecting failure; returns the error.
  std::string open_error() {
    j_.reset();
    int visited = 0;
    std::string error;
    auto j = journal::open(options(), [&](const record&) { ++visited; }, error);
    EXPECT_FALSE(j);
    EXPECT_EQ(visited, 0);
    return error;
  }

  // Reaps CQEs until the journal has nothing pending (bounded in time).
  void drain() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (j_ && j_->pending() > 0) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "journal never completed";
      __kernel_timespec ts{0, 200'000'000};
      io_uring_cqe* cqe = nullptr;
      int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      if (rc < 0 && rc != -ETIME && rc != -EINTR) FAIL() << "submit_and_wait: " << std::strerror(-rc);
      unsigned head;
      unsigned n = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) { ++n; }
      for (unsigned i = 0; i < n; ++i) {
        ASSERT_EQ(io_uring_peek_cqe(&ring_, &cqe), 0);
        core::dispatch(ring_, cqe);
      }
    }
  }

  std::vector<fs::path> segments() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().filename().string().rfind("segment-", 0) == 0) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }

  static std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void write_file(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  // Appends one message and waits until it is durable; returns the offset
  // the journal reached.
  std::uint64_t append_one(int i, std::size_t body = 60) {
    waiter w;
    j_->append_message(make_tx(i, body), &w);
    drain();
    EXPECT_EQ(w.ok, 1);
    return j_->durable_offset();
  }

  std::string root_;
  std::string dir_;
  io_uring ring_{};
  bool ring_ok_ = false;
  std::unique_ptr<journal> j_;
};

std::uint64_t files_name(const fs::path& segment) {
  return std::stoull(segment.filename().string().substr(8, 16), nullptr, 16);
}

std::vector<record> messages(const std::vector<record>& all) {
  std::vector<record> out;
  for (const auto& r : all)
    if (r.type == record_type::message) out.push_back(r);
  return out;
}

TEST_F(JournalTest, AppendsInBurstsAndRecoversInOrder) {
  EXPECT_TRUE(open().empty());
  constexpr int bursts = 20, per_burst = 25;
  std::vector<std::string> ids;
  std::vector<message> sent;
  std::vector<waiter> waiters(bursts * per_burst);
  std::vector<waiter> credit_waiters(bursts);
  for (int b = 0; b < bursts; ++b) {
    for (int k = 0; k < per_burst; ++k) {
      int i = b * per_burst + k;
      // Bodies from empty to a few KB, short ones stay in the string's
      // inline buffer: both must be written from where the journal keeps them.
      auto tx = make_tx(i, static_cast<std::size_t>((i * 37) % 3000));
      sent.push_back(tx);
      ids.push_back(j_->append_message(std::move(tx), &waiters[static_cast<std::size_t>(i)]).format());
    }
    j_->append_credit(record_type::top_up, 100, 1000 + b, &credit_waiters[static_cast<std::size_t>(b)]);
    drain();
  }
  for (const auto& w : waiters) EXPECT_EQ(w.ok, 1);
  for (const auto& w : credit_waiters) EXPECT_EQ(w.ok, 1);
  std::uint64_t groups = j_->groups_committed();
  std::printf("group commit: %d records in %llu groups\n", bursts * (per_burst + 1),
              static_cast<unsigned long long>(groups));
  EXPECT_LT(groups, static_cast<std::uint64_t>(bursts * per_burst));
  EXPECT_GE(groups, static_cast<std::uint64_t>(bursts));
  std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), ids.size());
  EXPECT_EQ(j_->pending(), 0u);

  auto recovered = open();
  ASSERT_EQ(recovered.size(), static_cast<std::size_t>(bursts * (per_burst + 1)));
  auto msgs = messages(recovered);
  ASSERT_EQ(msgs.size(), sent.size());
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    EXPECT_EQ((queue_id{1, 3, msgs[i].sequence}.format()), ids[i]);
    EXPECT_EQ(msgs[i].tx.body, sent[i].body) << i;
    EXPECT_EQ(msgs[i].tx.recipients, sent[i].recipients);
    EXPECT_EQ(msgs[i].tx.originator, sent[i].originator);
    EXPECT_EQ(msgs[i].tx.originator_type, sent[i].originator_type);
    EXPECT_EQ(msgs[i].tx.account, sent[i].account);
    EXPECT_EQ(msgs[i].tx.price, sent[i].price);
  }
  for (std::size_t i = 1; i < recovered.size(); ++i)
    EXPECT_LT(recovered[i - 1].sequence, recovered[i].sequence);
  int top_ups = 0;
  for (const auto& r : recovered) {
    if (r.type == record_type::top_up) {
      EXPECT_EQ(r.amount, 1000 + top_ups);
      ++top_ups;
    }
  }
  EXPECT_EQ(top_ups, bursts);
  // Appending continues after the recovered records with fresh sequences.
  waiter w;
  std::string id = j_->append_message(make_tx(9999), &w).format();
  drain();
  EXPECT_EQ(w.ok, 1);
  EXPECT_EQ(unique.count(id), 0u);
  EXPECT_EQ((queue_id{1, 3, recovered.back().sequence + 1}.format()), id);
}

TEST_F(JournalTest, RecordsAppendedDuringAFlightJoinTheNextGroup) {
  open();
  std::vector<waiter> w(11);
  for (auto& x : w) j_->append_message(make_tx(1), &x);
  drain();
  for (auto& x : w) EXPECT_EQ(x.ok, 1);
  EXPECT_EQ(j_->groups_committed(), 2u);  // the first alone, then the ten that queued
}

TEST_F(JournalTest, GroupOverTheIovecLimitIsSplit) {
  // Each message with a body takes two iovecs: 1200 queued messages cannot go
  // out in one writev (IOV_MAX 1024), so they form several groups.
  open(16 << 20);
  std::vector<waiter> w(1201);
  for (std::size_t i = 0; i < w.size(); ++i) j_->append_message(make_tx(static_cast<int>(i), 40), &w[i]);
  drain();
  for (const auto& x : w) EXPECT_EQ(x.ok, 1);
  EXPECT_GE(j_->groups_committed(), 4u);  // 1, then at most 512 per group
  EXPECT_LE(j_->groups_committed(), 5u);
  auto recovered = messages(open(16 << 20));
  ASSERT_EQ(recovered.size(), w.size());
  for (std::size_t i = 0; i < w.size(); ++i)
    ASSERT_EQ(recovered[i].tx.body, make_tx(static_cast<int>(i), 40).body);
}

TEST_F(JournalTest, WaiterMayAppendFromItsCallback) {
  open();
  waiter second;
  chaining_waiter first;
  first.j = j_.get();
  first.next = &second;
  j_->append_message(make_tx(1), &first);
  drain();
  EXPECT_TRUE(first.durable);
  EXPECT_EQ(second.ok, 1);
  EXPECT_EQ(messages(open()).size(), 2u);
}

TEST_F(JournalTest, TornTailIsCutAtEveryByte) {
  open(64 * 1024);
  for (int i = 0; i < 4; ++i) append_one(i, 120);
  std::uint64_t before = j_->durable_offset();
  std::uint64_t after = append_one(4, 300);
  j_.reset();
  auto files = segments();
  ASSERT_EQ(files.size(), 1u);
  const std::string original = read_file(files[0]);
  for (std::uint64_t cut = before; cut <= after; ++cut) {
    for (bool truncate : {true, false}) {
      std::string torn = original.substr(0, cut);
      if (!truncate) torn.append(original.size() - cut, '\0');
      write_file(files[0], torn);
      auto recovered = messages(open(64 * 1024));
      ASSERT_TRUE(j_) << "cut " << cut;
      std::size_t expected = cut == after ? 5 : 4;
      ASSERT_EQ(recovered.size(), expected) << "cut " << cut << (truncate ? " truncated" : " zeroed");
      EXPECT_EQ(recovered.back().tx.body, make_tx(static_cast<int>(expected) - 1,
                                                   expected == 5 ? 300 : 120).body);
      // A shorter record now goes where the torn one was: the torn bytes
      // after it must never come back as a record.
      append_one(50, 10);
      auto again = messages(open(64 * 1024));
      ASSERT_EQ(again.size(), expected + 1) << "cut " << cut;
      EXPECT_EQ(again.back().tx.body, make_tx(50, 10).body);
      j_.reset();
    }
  }
}

TEST_F(JournalTest, TornMiddleOfTheLastGroupIsCut) {
  // Five records in the group in flight: a damaged second record with intact
  // records after it is still a torn group (none was acknowledged).
  open();
  append_one(0);
  std::uint64_t group_start = j_->durable_offset();
  std::vector<waiter> w(6);
  j_->append_message(make_tx(1), &w[0]);  // flies alone
  for (int i = 2; i <= 6; ++i) j_->append_message(make_tx(i), &w[static_cast<std::size_t>(i - 1)]);
  drain();
  j_.reset();
  auto file = segments().at(0);
  std::string bytes = read_file(file);
  // Flip a byte inside the record of make_tx(3): the second of the last group.
  std::string body3 = make_tx(3).body;
  auto pos = bytes.find(body3, group_start);
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 5] ^= 0x20;
  write_file(file, bytes);
  auto recovered = messages(open());
  ASSERT_TRUE(j_);
  ASSERT_EQ(recovered.size(), 3u);  // 0, 1 and the first of the last group
  EXPECT_EQ(recovered.back().tx.body, make_tx(2).body);
}

TEST_F(JournalTest, DamageBeforeALaterGroupFailsWithFileAndOffset) {
  open();
  std::vector<std::uint64_t> ends;
  for (int i = 0; i < 5; ++i) ends.push_back(append_one(i));
  j_.reset();
  auto file = segments().at(0);
  std::string bytes = read_file(file);
  bytes[ends[0] + 60] ^= 0x01;  // inside record 2 of 5
  write_file(file, bytes);
  std::string error = open_error();
  EXPECT_NE(error.find(file.string() + ": offset " + std::to_string(ends[0]) + ": "),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("checksum mismatch"), std::string::npos) << error;
}

TEST_F(JournalTest, DamageInAnOlderSegmentFails) {
  open(2048);
  for (int i = 0; i < 12; ++i) append_one(i, 400);
  j_.reset();
  auto files = segments();
  ASSERT_GE(files.size(), 3u);
  std::string bytes = read_file(files[0]);
  bytes[100] ^= 0x40;
  write_file(files[0], bytes);
  std::string error = open_error();
  EXPECT_EQ(error.rfind(files[0].string() + ": offset 0: ", 0), 0u) << error;
}

TEST_F(JournalTest, ZeroedRecordBeforeLaterGroupsFails) {
  open(2048);
  std::vector<std::uint64_t> ends;
  for (int i = 0; i < 12; ++i) ends.push_back(append_one(i, 400));
  j_.reset();
  auto files = segments();
  ASSERT_GE(files.size(), 3u);
  // In an older segment: its second record's header wiped.
  std::string older = read_file(files[0]);
  std::string saved = older;
  std::uint64_t second = ends[0];
  std::fill(older.begin() + static_cast<long>(second), older.begin() + static_cast<long>(second) + 40, '\0');
  write_file(files[0], older);
  std::string error = open_error();
  EXPECT_EQ(error.rfind(files[0].string() + ": offset " + std::to_string(second) + ": ", 0), 0u)
      << error;
  write_file(files[0], saved);
  // In the newest segment, with a later group after it.
  std::string newest = read_file(files.back());
  std::fill(newest.begin(), newest.begin() + 40, '\0');
  write_file(files.back(), newest);
  error = open_error();
  EXPECT_EQ(error.rfind(files.back().string() + ": offset 0: zeroed record before a later group", 0),
            0u)
      << error;
}

TEST_F(JournalTest, FailedFsyncFailsOnlyItsGroupAndSeals) {
  open();
  waiter first;
  std::vector<waiter> doomed(3);
  j_->append_message(make_tx(0), &first);  // in flight alone
  std::vector<std::string> doomed_ids;
  for (int i = 0; i < 3; ++i) doomed_ids.push_back(j_->append_message(make_tx(10 + i), &doomed[static_cast<std::size_t>(i)]).format());
  spool::test_hooks::fail_next_syncs(1, 1);  // the first group's fdatasync passes, the next fails
  auto sealed_segment = segments().at(0);
  drain();
  EXPECT_EQ(first.ok, 1);
  for (const auto& w : doomed) EXPECT_EQ(w.failed, 1);
  ASSERT_EQ(segments().size(), 2u);  // the seal started a new segment
  EXPECT_GT(j_->durable_offset(), 0u);
  // The journal accepts again, in the new segment.
  waiter later;
  std::string later_id = j_->append_message(make_tx(20), &later).format();
  drain();
  EXPECT_EQ(later.ok, 1);
  for (const auto& id : doomed_ids) EXPECT_NE(id, later_id);
  // The failed group's bytes are on disk (only the fdatasync "failed"), yet
  // recovery must not return them.
  EXPECT_NE(read_file(sealed_segment).find(make_tx(11).body), std::string::npos);
  auto recovered = open();
  std::vector<std::string> bodies;
  int seals = 0;
  for (const auto& r : recovered) {
    if (r.type == record_type::message) bodies.push_back(r.tx.body);
    if (r.type == record_type::seal) {
      ++seals;
      EXPECT_EQ(files_name(sealed_segment), r.sealed_segment);
      EXPECT_GT(r.offset, 0u);
    }
  }
  EXPECT_EQ(seals, 1);
  EXPECT_EQ(bodies, (std::vector<std::string>{make_tx(0).body, make_tx(20).body}));
}

// A failed group and then a failed seal (no new segment): the journal stops
// accepting, and the group's bytes are zeroed in place so that a restart
// replays nothing the clients were told 451 for.
TEST_F(JournalTest, FailedSealZeroesTheFailedGroupSoARestartSkipsIt) {
  open();
  append_one(0);
  auto segment = segments().at(0);
  spool::test_hooks::fail_next_syncs(1);
  spool::test_hooks::fail_next_seals(1);
  std::vector<waiter> doomed(3);
  for (int i = 0; i < 3; ++i) j_->append_message(make_tx(10 + i), &doomed[static_cast<std::size_t>(i)]);
  drain();
  for (const auto& w : doomed) EXPECT_EQ(w.failed, 1);
  EXPECT_EQ(segments().size(), 1u) << "no seal was written";
  waiter refused;
  j_->append_message(make_tx(20), &refused);
  drain();
  EXPECT_EQ(refused.failed, 1) << "a failed journal accepts nothing more";
  // Message 10 was the group in flight (11 and 12 waited and were refused
  // without being written).
  EXPECT_EQ(read_file(segment).find(make_tx(10).body), std::string::npos) << "the failed group is zeroed";
  auto recovered = open();
  std::vector<std::string> bodies;
  for (const auto& r : recovered)
    if (r.type == record_type::message) bodies.push_back(r.tx.body);
  EXPECT_EQ(bodies, (std::vector<std::string>{make_tx(0).body}));
}

TEST_F(JournalTest, SealOffsetIsTheLastDurableOffset) {
  open();
  std::uint64_t good = append_one(0);
  spool::test_hooks::fail_next_syncs(1);
  waiter bad;
  j_->append_message(make_tx(1), &bad);
  drain();
  EXPECT_EQ(bad.failed, 1);
  auto recovered = open();
  ASSERT_EQ(recovered.size(), 2u);
  EXPECT_EQ(recovered[1].type, record_type::seal);
  EXPECT_EQ(recovered[1].offset, good);
  EXPECT_EQ(recovered[1].sealed_segment, 1u);
}

TEST_F(JournalTest, FailedWriteFailsTheGroup) {
  open();
  spool::test_hooks::fail_next_writes(1);
  waiter bad;
  j_->append_message(make_tx(1), &bad);
  drain();
  EXPECT_EQ(bad.failed, 1);
  waiter good;
  j_->append_message(make_tx(2), &good);
  drain();
  EXPECT_EQ(good.ok, 1);
  auto bodies = messages(open());
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(bodies[0].tx.body, make_tx(2).body);
}

TEST_F(JournalTest, RotatesAcrossSegments) {
  open(4096);
  std::vector<waiter> w(60);
  std::vector<std::string> sent;
  for (int b = 0; b < 6; ++b) {
    for (int k = 0; k < 10; ++k) {
      int i = b * 10 + k;
      auto tx = make_tx(i, 200 + static_cast<std::size_t>(i) * 13);
      sent.push_back(tx.body);
      j_->append_message(std::move(tx), &w[static_cast<std::size_t>(i)]);
    }
    drain();
  }
  for (const auto& x : w) EXPECT_EQ(x.ok, 1);
  auto files = segments();
  EXPECT_GE(files.size(), 5u);
  for (const auto& f : files) EXPECT_GE(fs::file_size(f), 4096u);
  auto recovered = messages(open(4096));
  ASSERT_EQ(recovered.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(recovered[i].tx.body, sent[i]);
  std::printf("rotation: %zu segments of 4096 bytes for %zu records\n", files.size(), sent.size());
}

TEST_F(JournalTest, RecordLargerThanASegmentFailsAlone) {
  open(4096);
  waiter huge, small;
  j_->append_message(make_tx(1, 10000), &huge);
  j_->append_message(make_tx(2, 100), &small);
  drain();
  EXPECT_EQ(huge.failed, 1);
  EXPECT_EQ(small.ok, 1);
  EXPECT_EQ(messages(open(4096)).size(), 1u);
}

TEST_F(JournalTest, FsyncLogNamesDurableOffsets) {
  if (!test_hooks_built) GTEST_SKIP() << "built without POSTINO_TEST_HOOKS";
  open();
  std::uint64_t off = append_one(7);
  std::ifstream in(fsync_log_path);
  std::string line, last;
  std::string segment = segments().at(0).string();
  while (std::getline(in, line))
    if (line.rfind(segment + " ", 0) == 0) last = line;
  EXPECT_EQ(last, segment + " " + std::to_string(off));
}

TEST_F(JournalTest, PowerCutAfterLoggedOffsetKeepsDurableRecords) {
  if (!test_hooks_built) GTEST_SKIP() << "built without POSTINO_TEST_HOOKS";
  // Simulates losing everything not covered by an fdatasync: the segment is
  // cut at the last logged offset after more (unsynced) garbage was written.
  open();
  append_one(1);
  std::uint64_t off = append_one(2);
  j_.reset();
  auto file = segments().at(0);
  std::string bytes = read_file(file);
  for (std::size_t i = off; i < off + 97; ++i) bytes[i] = static_cast<char>(i * 7);
  write_file(file, bytes);
  auto recovered = messages(open());
  ASSERT_EQ(recovered.size(), 2u);
  EXPECT_EQ(j_->durable_offset(), off);
}

TEST_F(JournalTest, EmptyNewestSegmentContinuesAfterItsName) {
  open();
  append_one(1);
  j_.reset();
  // A rotation that crashed before its first group: an empty newest segment.
  std::string path = dir_ + "/segment-0000000000000040.log";
  write_file(path, std::string(4096, '\0'));
  open();
  waiter w;
  std::string id = j_->append_message(make_tx(2), &w).format();
  drain();
  EXPECT_EQ(id, (queue_id{1, 3, 0x40}.format()));
  EXPECT_EQ(messages(open()).size(), 2u);
}

// A data directory copied with its segments cut to their records (the
// repository's fixtures are, to stay small): the journal reads them, grows
// the newest to the configured size and appends after the last record.
TEST_F(JournalTest, ASegmentShorterThanConfiguredIsReadAndAppendedTo) {
  open();
  std::uint64_t end = 0;
  for (int i = 0; i < 3; ++i) end = append_one(i);
  j_.reset();
  auto file = segments().at(0);
  fs::resize_file(file, end);
  EXPECT_EQ(messages(open()).size(), 3u);
  EXPECT_EQ(fs::file_size(file), 1u << 20) << "grown back to the configured size";
  append_one(3);
  EXPECT_EQ(messages(open()).size(), 4u);
}

TEST_F(JournalTest, EverySegmentCutToItsRecordsIsRead) {
  open(2048);
  for (int i = 0; i < 12; ++i) append_one(i, 400);
  j_.reset();
  auto files = segments();
  ASSERT_GE(files.size(), 3u);
  for (const auto& f : files) {
    const std::string bytes = read_file(f);
    std::size_t end = 0;
    codec::header h;
    while (codec::check_record(reinterpret_cast<const std::uint8_t*>(bytes.data()) + end, bytes.size() - end, h) ==
           codec::check_result::ok)
      end += codec::header_size + h.length;
    fs::resize_file(f, end);
  }
  EXPECT_EQ(messages(open(2048)).size(), 12u);
  append_one(12, 400);
  EXPECT_EQ(messages(open(2048)).size(), 13u);
}

// Sequences and segment names a queue id cannot carry (12 hex digits): not
// ours, refused with the file named rather than wrapped past 2^64 into 0.
TEST_F(JournalTest, SequencesPastTheQueueIdRangeAreRefused) {
  open();
  append_one(1);
  j_.reset();
  record r;
  r.type = record_type::top_up;
  r.sequence = std::uint64_t{1} << 48;
  r.account = 1;
  r.amount = 1;
  const std::string path = dir_ + "/segment-0000000000000040.log";
  write_file(path, codec::encode_record(r));
  std::string error = open_error();
  EXPECT_EQ(error, path + ": offset 0: sequence 281474976710656 is past the largest a queue id holds "
                          "(281474976710655)");
  r.sequence = ~std::uint64_t{0};
  write_file(path, codec::encode_record(r));
  EXPECT_NE(open_error().find("sequence 18446744073709551615 is past"), std::string::npos);
  fs::remove(path);
  const std::string far = dir_ + "/segment-ffffffffffffffff.log";
  write_file(far, std::string(4096, '\0'));
  error = open_error();
  EXPECT_EQ(error.rfind(far + ": a segment name past the largest sequence", 0), 0u) << error;
}

record delivery_record(record_type type, int i) {
  record r;
  r.type = type;
  if (type == record_type::inbound) {
    r.inbound.smsc = "smsc-" + std::to_string(i % 2);
    r.inbound.source = "39333" + std::to_string(1000000 + i);
    r.inbound.destination = "ACME";
    r.inbound.data_coding = 8;
    r.inbound.text = "reply " + std::to_string(i);
    return r;
  }
  r.delivery.key = {1, 3, static_cast<std::uint64_t>(100 + i), static_cast<std::uint32_t>(i % 2),
                    static_cast<std::uint32_t>(i % 3)};
  r.delivery.recipient = "+39333" + std::to_string(1000000 + i);
  r.delivery.smsc = "smsc-a";
  r.delivery.smsc_message_id = "id-" + std::to_string(i);
  if (type == record_type::delivery_final) {
    r.delivery.state = i % 2 ? message_state::delivered : message_state::undeliverable;
    r.delivery.error = i % 2 ? 0 : 11;
    r.delivery.account = 100 + static_cast<account_id>(i % 3);
    r.delivery.refund = i % 2 ? 0 : 2;
  }
  return r;
}

TEST_F(JournalTest, DeliveryRecordsWithAndWithoutWaitersRecoverInOrder) {
  open();
  // Interleaved with messages and credits; every other delivery record has
  // no waiter. Appended in bursts so they share groups with the others.
  const record_type kinds[] = {record_type::submitted, record_type::delivery_final, record_type::inbound};
  std::vector<record> sent;
  std::vector<record_type> order;
  std::vector<waiter> waiters(60);
  std::vector<waiter> message_waiters(20);
  waiter credit;
  for (int i = 0; i < 60; ++i) {
    record r = delivery_record(kinds[i % 3], i);
    j_->append_delivery(r.type, r, i % 2 ? &waiters[static_cast<std::size_t>(i)] : nullptr);
    sent.push_back(r);
    order.push_back(r.type);
    if (i % 3 == 2) {
      j_->append_message(make_tx(i), &message_waiters[static_cast<std::size_t>(i / 3)]);
      order.push_back(record_type::message);
    }
    if (i == 30) {
      j_->append_credit(record_type::refund, 101, 5, &credit);
      order.push_back(record_type::refund);
    }
    if (i % 10 == 9) drain();
  }
  drain();
  for (int i = 0; i < 60; ++i) {
    const waiter& w = waiters[static_cast<std::size_t>(i)];
    EXPECT_EQ(w.ok, i % 2 ? 1 : 0) << i;
    EXPECT_EQ(w.failed, 0) << i;
  }
  for (const auto& w : message_waiters) EXPECT_EQ(w.ok, 1);
  EXPECT_EQ(credit.ok, 1);
  EXPECT_LT(j_->groups_committed(), order.size());  // grouped, not one fsync each
  const std::uint64_t durable = j_->durable_sequence();

  auto recovered = open();
  ASSERT_EQ(recovered.size(), order.size());
  EXPECT_EQ(recovered.back().sequence, durable);
  std::size_t next = 0;
  for (std::size_t i = 0; i < recovered.size(); ++i) {
    const record& r = recovered[i];
    EXPECT_EQ(r.type, order[i]) << i;
    if (i > 0) {
      EXPECT_LT(recovered[i - 1].sequence, r.sequence);
    }
    EXPECT_GT(r.unix_ms, 0u);
    if (r.type == record_type::message || r.type == record_type::refund) continue;
    const record& s = sent.at(next++);
    ASSERT_EQ(r.type, s.type);
    if (r.type == record_type::inbound) {
      EXPECT_EQ(r.inbound.smsc, s.inbound.smsc);
      EXPECT_EQ(r.inbound.source, s.inbound.source);
      EXPECT_EQ(r.inbound.destination, s.inbound.destination);
      EXPECT_EQ(r.inbound.data_coding, s.inbound.data_coding);
      EXPECT_EQ(r.inbound.text, s.inbound.text);
    } else {
      EXPECT_EQ(r.delivery.key, s.delivery.key);
      EXPECT_EQ(r.delivery.recipient, s.delivery.recipient);
      EXPECT_EQ(r.delivery.smsc, s.delivery.smsc);
      EXPECT_EQ(r.delivery.smsc_message_id, s.delivery.smsc_message_id);
      EXPECT_EQ(r.delivery.state, s.delivery.state);
      EXPECT_EQ(r.delivery.error, s.delivery.error);
      EXPECT_EQ(r.delivery.account, s.delivery.account);
      EXPECT_EQ(r.delivery.refund, s.delivery.refund);
    }
  }
  EXPECT_EQ(next, sent.size());
}

TEST_F(JournalTest, DeliveryOfAWrongTypeFailsItsWaiterLater) {
  open();
  waiter wrong, fine;
  record r = delivery_record(record_type::submitted, 1);
  j_->append_delivery(record_type::top_up, r, &wrong);
  j_->append_delivery(record_type::message, r, nullptr);  // nobody to tell
  EXPECT_EQ(wrong.ok + wrong.failed, 0);                  // never from inside append
  j_->append_delivery(record_type::submitted, r, &fine);
  drain();
  EXPECT_EQ(wrong.failed, 1);
  EXPECT_EQ(fine.ok, 1);
  auto recovered = open();
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].type, record_type::submitted);
}

// Whoever waits for a record learns its sequence when it is queued: the
// message index keys a live inbound row by it, as replay does.
TEST_F(JournalTest, WaitersLearnTheirRecordsSequence) {
  open();
  waiter first, second, third;
  j_->append_message(make_tx(1), &first);
  j_->append_delivery(record_type::inbound, delivery_record(record_type::inbound, 2), &second);
  j_->append_credit(record_type::top_up, 7, 100, &third);
  EXPECT_NE(first.sequence, 0u);
  EXPECT_EQ(second.sequence, first.sequence + 1);
  EXPECT_EQ(third.sequence, first.sequence + 2);
  drain();
  std::vector<std::uint64_t> sequences;
  for (const auto& r : open()) sequences.push_back(r.sequence);
  EXPECT_EQ(sequences, (std::vector<std::uint64_t>{first.sequence, second.sequence, third.sequence}));
}

TEST_F(JournalTest, FailedGroupWithoutWaitersIsNotReplayed) {
  open();
  append_one(0);
  // A waiter-less delivery record flies alone and its fdatasync fails: the
  // journal seals with nobody to tell, and the record must not come back.
  // The one queued behind it goes to the new segment.
  spool::test_hooks::fail_next_syncs(1);
  j_->append_delivery(record_type::submitted, delivery_record(record_type::submitted, 1), nullptr);
  j_->append_delivery(record_type::inbound, delivery_record(record_type::inbound, 2), nullptr);
  drain();
  waiter later;
  j_->append_delivery(record_type::delivery_final, delivery_record(record_type::delivery_final, 3), &later);
  drain();
  EXPECT_EQ(later.ok, 1);
  std::vector<record_type> types;
  for (const auto& r : open()) types.push_back(r.type);
  EXPECT_EQ(types, (std::vector<record_type>{record_type::message, record_type::seal, record_type::inbound,
                                             record_type::delivery_final}));
}

TEST_F(JournalTest, UnitPricesSurviveTheJournal) {
  open();
  message tx = make_tx(0);  // two recipients
  ASSERT_EQ(tx.recipients.size(), 2u);
  tx.segments = 3;
  tx.unit_prices = {2, 5};
  tx.price = 3 * (2 + 5);
  waiter w;
  j_->append_message(std::move(tx), &w);
  drain();
  EXPECT_EQ(w.ok, 1);
  auto recovered = messages(open());
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].tx.unit_prices, (std::vector<credit_units>{2, 5}));
  EXPECT_EQ(recovered[0].tx.price, 21);
}

}  // namespace

namespace {

// A carried record's payload as the encoder writes it from the decoded record.
std::string reader_payload_of(const record& carried) {
  return codec::encode_record(carried).substr(codec::header_size);
}

// Retention's reader: an old segment lists its messages (with their queue
// ids) and the messages its delivery records name; a carried copy of a
// message, appended to the newest segment, recovers with its origin and the
// original's exact message, and once the old segment is deleted start-up
// reads the rest as before.
TEST_F(JournalTest, CarriedRecordsOutliveTheirDeletedSegment) {
  open(4096);
  std::vector<waiter> w(12);
  std::vector<message> sent;
  for (int i = 0; i < 12; ++i) {
    sent.push_back(make_tx(i, 700));
    j_->append_message(message(sent.back()), &w[static_cast<std::size_t>(i)]);
    if (i == 2) {
      record news = delivery_record(record_type::submitted, 1);
      news.delivery.key = {1, 3, 2, 0, 0};
      j_->append_delivery(record_type::submitted, news, nullptr);
    }
    drain();
  }
  std::string error;
  const std::vector<std::uint64_t> names = segment_names(dir_, error);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_GE(names.size(), 3u);
  auto reader = segment_reader::open(dir_, names[0], std::nullopt, 1, 3, error);
  ASSERT_TRUE(reader) << error;
  ASSERT_GE(reader->messages().size(), 2u);
  EXPECT_EQ(reader->messages()[0].id, (queue_id{1, 3, 1}));
  EXPECT_EQ(reader->messages()[0].offset, 0u);
  ASSERT_EQ(reader->deliveries().size(), 1u);
  EXPECT_EQ(reader->deliveries()[0], (queue_id{1, 3, 2}));
  EXPECT_LE(reader->max_sequence(), names[1] - 1);
  EXPECT_GT(reader->used_bytes(), 0u);
  EXPECT_FALSE(segment_reader::first_seal(dir_, names[1]));

  waiter carried;
  const std::size_t first_segment_messages = reader->messages().size();
  j_->append_carried(reader->carried_payload(reader->messages()[1]), &carried);
  drain();
  EXPECT_EQ(carried.ok, 1);
  const auto newest = segment_names(dir_, error);
  reader.reset();
  fs::remove(segment_path(dir_, names[0]));

  const auto recovered = open(4096);
  std::vector<record> copies;
  for (const auto& r : recovered)
    if (r.type == record_type::carried) copies.push_back(r);
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].origin.node, 1u);
  EXPECT_EQ(copies[0].origin.shard, 3u);
  EXPECT_EQ(copies[0].origin.sequence, 2u);
  EXPECT_GT(copies[0].sequence, 12u) << "its own place in this journal";
  EXPECT_EQ(copies[0].tx.body, sent[1].body);
  EXPECT_EQ(copies[0].tx.recipients, sent[1].recipients);
  EXPECT_EQ(copies[0].tx.originator, sent[1].originator);
  EXPECT_EQ(messages(recovered).size(), sent.size() - first_segment_messages);

  // Carrying the carried record again copies it as it is: the origin stays.
  auto again = segment_reader::open(dir_, newest.back(), std::nullopt, 1, 3, error);
  ASSERT_TRUE(again) << error;
  ASSERT_FALSE(again->messages().empty());
  const stored_message& copy = again->messages().back();
  EXPECT_EQ(copy.id, (queue_id{1, 3, 2}));
  EXPECT_EQ(again->carried_payload(copy), reader_payload_of(copies[0]));
}

}  // namespace
