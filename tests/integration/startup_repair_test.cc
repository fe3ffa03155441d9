// Start-up on data directories earlier versions left (tests/fixtures/, see
// its README): one per journal record version the decoder reads, and one
// whose balances were saturated before max_balance existed (top-ups of
// 2^63-1 and 2x5e18 journaled, a checkpoint row at 2^63-1, another that
// SQLite's overflow turned into a REAL, an accounts.credit near 2^63), which
// made every start abort in the lease invariant; and the first checkpoint's
// tables, which stopped start-up before the MM4 id column was added first. Each fixture is copied to a
// temporary directory and the real gateway starts on it: it must start, keep
// the old messages (postino-ctl message show, the journals), say what it
// repaired (one "repaired:" line per cut value), show the repaired balance
// in the 235 line's CREDIT, append after the old records in the fixture's
// short segment, and, started again, find nothing left to repair (the
// repair is stored with the start-up checkpoint). Odd journal-<n>
// directory names are skipped with a line rather than thrown out of main.
// Every fixture predates schema 4 (issue 13): its accounts get the new
// e-mail defaults, said once in one "migrated:" line.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "harness.h"
#include "postino/account.h"

namespace postino::test {
namespace {

namespace fs = std::filesystem;

constexpr const char* password = "fixture-pw";
// Short segments like the fixtures' own, so the copies stay small.
constexpr const char* small_segments = "[journal]\nsegment_bytes = 1048576\n";

struct expectation {
  const char* fixture;
  std::map<std::string, std::int64_t> credit;  // username -> CREDIT of the 235 line
  std::vector<std::string> repaired;           // every "repaired:" line, in order
  std::vector<std::pair<std::string, std::string>> messages;  // queue id -> a line `message show` prints
  std::size_t journaled_messages = 0;          // message records in the fixture's journals
  bool kill_between_starts = false;            // kill -9 rather than SIGTERM before the second start
};

std::vector<std::string> repaired_lines(const std::string& log) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while ((at = log.find("postino: repaired: ", at)) != std::string::npos) {
    const std::size_t end = log.find('\n', at);
    out.push_back(log.substr(at + 19, end - at - 19));
    at = end;
  }
  return out;
}

std::int64_t credit_of(const gateway& gw, const std::string& user) {
  raw_client c(gw.smtp_port());
  return credit_in(login_ok(c, user, password));
}

// One message from `fixture` to one recipient; true on 250.
bool send_one(const gateway& gw) {
  raw_client c(gw.smtp_port());
  if (login_ok(c, "fixture", password).empty()) return false;
  c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331234567>\r\nDATA\r\nafter the restart\r\n.\r\n");
  for (int i = 0; i < 3; ++i) c.reply();
  return c.reply().rfind("250 2.0.0 Message accepted", 0) == 0;
}

void check_messages(const gateway& gw, const expectation& e) {
  for (const auto& [queue_id, line] : e.messages) {
    auto r = gw.ctl({"message", "show", queue_id});
    EXPECT_EQ(r.exit_code, 0) << queue_id << ": " << r.out << r.err;
    EXPECT_NE(r.out.find("queue_id: " + queue_id + "\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(line), std::string::npos) << queue_id << " lacks '" << line << "':\n" << r.out;
  }
}

std::size_t count_of(const std::string& log, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
  return n;
}

void start_on_fixture(const expectation& e) {
  SCOPED_TRACE(e.fixture);
  auto copy = gateway::on_copy_of(source_path(std::string("tests/fixtures/") + e.fixture), small_segments, 2);
  gateway& gw = *copy;
  ASSERT_TRUE(gw.start()) << gw.last_log();
  EXPECT_EQ(repaired_lines(gw.last_log()), e.repaired) << gw.last_log();
  EXPECT_EQ(count_of(gw.last_log(), "postino: migrated: schema 4: strip_signature turned on for "), 1u)
      << gw.last_log();
  const command_result show = gw.ctl({"account", "show", "fixture"});
  EXPECT_NE(show.out.find("strip signature: yes\nstrip quoted reply: yes\nsubject as text: yes\n"), std::string::npos)
      << show.out << show.err;
  for (const auto& [user, credit] : e.credit) EXPECT_EQ(credit_of(gw, user), credit) << user;
  check_messages(gw, e);
  ASSERT_TRUE(send_one(gw)) << gw.last_log();

  // The repair was stored (with the start-up checkpoint, before anything
  // was accepted, so a kill -9 cannot lose it): a second start finds nothing
  // to repair, and the balances are what the first start left.
  if (e.kill_between_starts)
    gw.kill_hard();
  else
    ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  const std::size_t before = gw.last_log().size();
  ASSERT_TRUE(gw.start()) << gw.last_log();
  const std::string second = gw.log_since(before);
  EXPECT_TRUE(repaired_lines(second).empty()) << second;
  EXPECT_EQ(count_of(second, "postino: migrated: "), 0u) << "the migration is logged once\n" << second;
  for (const auto& [user, credit] : e.credit)
    EXPECT_EQ(credit_of(gw, user), credit - (user == "fixture" ? 1 : 0)) << user << " after the restart";
  check_messages(gw, e);
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();

  // Every old message is still in the journals, the new one after them.
  EXPECT_EQ(messages_in(read_journals(gw.data_dir())).size(), e.journaled_messages + 1);
}

TEST(startup_repair, record_version_1_data_starts_with_its_messages) {
  start_on_fixture({"v1",
                    {{"fixture", 996}},
                    {},
                    {{"0000000000000001", "recipient 0 +393331234567 queued"},
                     {"0000000000000002", "recipient 1 +393401234567 queued"},
                     {"0000000000000003", "price: 1"}},
                    3});
}

// The first checkpoint's message table had no mm4_message_id: indexing that
// column before adding it stopped start-up ("no such column").
TEST(startup_repair, record_version_2_data_of_the_first_checkpoint_starts) {
  start_on_fixture({"v2-first",
                    {{"fixture", 994}},
                    {},
                    {{"0000000000000001", "price: 1"},
                     {"0000000000000002", "recipient 1 +447911123456 queued"},
                     {"0000000000000003", "price: 3"}},
                    3});
}

TEST(startup_repair, record_version_2_data_and_its_checkpoint_start) {
  start_on_fixture({"v2",
                    {{"fixture", 1493}},
                    {},
                    {{"0000000000000001", "price: 1"},  // a row of the old checkpoint, without recipients
                     {"0000000000000002", "price: 2"},
                     {"0000000000000004", "recipient 0 +393331234567 queued"},  // the MMS, replayed
                     {"0000000000000005", "recipient 0 +447911123456 queued"}},
                    4});
}

TEST(startup_repair, record_version_3_data_starts_with_its_deliveries) {
  start_on_fixture({"v3",
                    {{"fixture", 1098}},
                    {},
                    {{"0000000000000001", "recipient 0 +393331234567 queued"},
                     {"0000000000000002", "recipient 1 +447911123456 undeliverable refunded 2"}},
                    2});
}

TEST(startup_repair, saturated_balances_are_cut_to_the_maximum_once_and_said) {
  const std::string maximum = std::to_string(max_balance);
  const std::string past = " is past the maximum " + maximum + "; using the maximum";
  start_on_fixture({"saturated",
                    {{"fixture", max_balance}, {"twice", max_balance}, {"column", max_balance},
                     {"real", max_balance}, {"pricey", 1000}},
                    {"account 1 (fixture): balance 9223372036854776805" + past,
                     "account 2 (twice): balance 10000000000000001000" + past,
                     "account 3 (column): accounts.credit 9223372036854775802 is past the maximum " + maximum +
                         "; storing the maximum (the checkpoint delta takes the difference)",
                     "account 3 (column): balance 18446744073709551609" + past,
                     "account 4 (real): balance 9223372036854776807" + past},
                    {{"0000000000000005", "recipient 1 +393401234567 queued"},
                     {"0000000000000009", "price: 9223372036854775807"}},
                    2,
                    true});
}

// journal-<n> names the gateway never writes: past 32 and 64 bits (std::stoul
// threw out of main for the second), leading zeros (read as shard 7 it would
// have opened journal-7 and replayed nothing of it), past the 256 shards a
// queue id can name, not a number. Each is skipped with a line.
TEST(startup_repair, odd_journal_directory_names_are_skipped_with_a_line) {
  auto copy = gateway::on_copy_of(source_path("tests/fixtures/v3"), small_segments, 2);
  gateway& gw = *copy;
  const std::vector<std::string> odd = {"journal-4294967296", "journal-99999999999999999999", "journal-007",
                                        "journal-256", "journal-x"};
  for (const auto& name : odd) fs::create_directories(gw.data_dir() + "/" + name);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  const std::string log = gw.last_log();
  for (const auto& name : odd)
    EXPECT_NE(log.find("postino: ignoring " + gw.data_dir() + "/" + name + ": not a shard journal"),
              std::string::npos)
        << name << "\n" << log;
  EXPECT_EQ(credit_of(gw, "fixture"), 1098);
  EXPECT_FALSE(fs::exists(gw.data_dir() + "/journal-7")) << "journal-007 is not shard 7's journal";
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
}

}  // namespace
}  // namespace postino::test
