// The recorded sessions the CI guard replays (tests/replay/*.txt) and their
// reader (tools/replay/recording.cc, compiled in here: postino-replay is not
// part of postino_lib): every recording loads, its reads and its phase pieces
// each cover the client's bytes exactly once and in order, no read exceeds
// the receive-buffer size, and a malformed header is refused. Recordings are
// read from the source tree; scratch files live in a temporary directory the
// test owns.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <string>

#include "../../tools/replay/recording.cc"

namespace postino::replay {
namespace {

const std::string dir = std::string(POSTINO_SOURCE_DIR) + "/tests/replay";

template <typename Parts, typename Bytes>
std::string join(const Parts& parts, Bytes bytes) {
  std::string out;
  for (const auto& p : parts) out += bytes(p);
  return out;
}

TEST(BenchReplay, EveryRecordingCoversItsBytesInReadsAndPieces) {
  int found = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".txt") continue;
    ++found;
    const recording r = load_recording(e.path().string(), 4096);
    SCOPED_TRACE(r.name);
    EXPECT_GT(r.messages, 0u);
    EXPECT_FALSE(r.about.empty());
    EXPECT_EQ(join(r.reads, [](std::string_view v) { return v; }), r.bytes);
    EXPECT_EQ(join(r.pieces, [](const piece& p) { return p.bytes; }), r.bytes);
    for (auto v : r.reads) EXPECT_LE(v.size(), 4096u);
    for (const auto& p : r.pieces) EXPECT_LE(p.bytes.size(), 4096u);
    // Every message has a text piece ending in the terminator.
    std::uint64_t terminators = 0;
    for (const auto& p : r.pieces)
      if (p.what == phase::text && p.bytes.ends_with("\r\n.\r\n")) ++terminators;
    EXPECT_EQ(terminators, r.messages);
  }
  EXPECT_EQ(found, 4);  // the seed's session, bulk, 1,000 recipients, 10 KiB body
}

TEST(BenchReplay, SeedSessionIsOneLinePerReadAndSplitsByPhase) {
  const recording r = load_recording(dir + "/seed_session.txt", 4096);
  ASSERT_EQ(r.reads.size(), 10u);
  EXPECT_EQ(r.reads[0], "Ehlo Client\r\n");
  ASSERT_EQ(r.pieces.size(), 9u);  // the text and its dot are one piece
  const phase expected[] = {phase::envelope, phase::envelope, phase::envelope, phase::envelope, phase::envelope,
                            phase::recipients, phase::envelope, phase::text, phase::envelope};
  for (std::size_t i = 0; i < r.pieces.size(); ++i) EXPECT_EQ(r.pieces[i].what, expected[i]) << i;
  EXPECT_EQ(r.pieces[7].bytes, "Test messaggio SMS via SMTP\r\n.\r\n");
}

TEST(BenchReplay, LongReadsAreCutAtTheReadLimit) {
  const recording whole = load_recording(dir + "/rcpt_1000.txt", 1 << 20);
  const recording cut = load_recording(dir + "/rcpt_1000.txt", 4096);
  EXPECT_GT(cut.reads.size(), whole.reads.size());
  std::size_t recipients = 0;
  for (const auto& p : cut.pieces) recipients += p.what == phase::recipients;
  EXPECT_EQ(recipients, 1000u);
}

class BenchReplayBad : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    std::ofstream(path_, std::ios::binary) << text;
    return path_;
  }
  void TearDown() override { std::remove(path_.c_str()); }
  std::string path_ = (std::filesystem::temp_directory_path() / ("bench_replay_" + std::to_string(::getpid()) + ".txt")).string();
};

TEST_F(BenchReplayBad, ReadsThatDoNotAddUpAreRefused) {
  EXPECT_THROW(load_recording(write("# messages: 1\n# reads: 5\nQUIT\r\n"), 4096), std::runtime_error);
}

TEST_F(BenchReplayBad, MissingHeadersAreRefused) {
  EXPECT_THROW(load_recording(write("# reads: lines\nQUIT\r\n"), 4096), std::runtime_error);
  EXPECT_THROW(load_recording(write("# messages: 0\nQUIT\r\n"), 4096), std::runtime_error);
  EXPECT_THROW(load_recording(write("# messages: x\n# reads: lines\nQUIT\r\n"), 4096), std::runtime_error);
}

}  // namespace
}  // namespace postino::replay
