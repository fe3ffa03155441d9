// Tests for the checkpoint's SQL (src/credit/checkpoint.cc): the message
// index with its recipient list and segment count, per-segment delivery rows
// whose final state is never overwritten whatever order the records arrive
// in, the message state folded from those rows, inbound messages, merging
// deltas, and the migration of a database written by the first version.
// Each test owns a fresh temp dir; rows are read back with plain SQLite.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "postino/credit.h"

namespace postino::credit {
namespace {

using delivery = journal_delta::delivery;

class checkpoint_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/postino-checkpoint-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/postino.db";
  }
  void TearDown() override {
    if (db_ != nullptr) sqlite3_close(db_);
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<checkpoint_store> open() {
    std::string error;
    auto s = checkpoint_store::open(path_, error);
    EXPECT_NE(s, nullptr) << error;
    return s;
  }

  // A plain connection of the test's own, for looking at rows.
  sqlite3* db() {
    if (db_ == nullptr) {
      EXPECT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
    }
    return db_;
  }

  void exec(const std::string& sql) {
    char* msg = nullptr;
    EXPECT_EQ(sqlite3_exec(db(), sql.c_str(), nullptr, nullptr, &msg), SQLITE_OK) << (msg ? msg : "") << sql;
    sqlite3_free(msg);
  }

  // Every row of a query, columns as text ("NULL" for NULL).
  std::vector<std::vector<std::string>> rows(const std::string& sql) {
    std::vector<std::vector<std::string>> out;
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db(), sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db());
    while (s != nullptr && sqlite3_step(s) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
        row.emplace_back(t != nullptr ? t : "NULL");
      }
      out.push_back(std::move(row));
    }
    sqlite3_finalize(s);
    return out;
  }

  std::string one(const std::string& sql) {
    auto r = rows(sql);
    return r.empty() || r[0].empty() ? "<none>" : r[0][0];
  }

  std::string message_state_of(const std::string& queue_id) {
    return one("SELECT state FROM checkpoint_message WHERE queue_id = '" + queue_id + "'");
  }

  // "state|smsc|smsc_message_id|error|refund" of one segment.
  std::string segment_row(const std::string& queue_id, int recipient, int segment) {
    auto r = rows("SELECT state, coalesce(smsc, '-'), coalesce(smsc_message_id, '-'), error, refund "
                  "FROM checkpoint_delivery WHERE queue_id = '" + queue_id +
                  "' AND recipient_index = " + std::to_string(recipient) +
                  " AND segment = " + std::to_string(segment));
    if (r.empty()) return "<none>";
    return r[0][0] + "|" + r[0][1] + "|" + r[0][2] + "|" + r[0][3] + "|" + r[0][4];
  }

  static journal_delta::message message(const std::string& queue_id, std::vector<std::string> to,
                                        std::uint32_t segments) {
    auto accepted = std::make_shared<postino::message>();
    accepted->account = 7;
    accepted->price = static_cast<credit_units>(to.size() * segments);
    accepted->recipients = std::move(to);
    accepted->segments = segments;
    journal_delta::message m;
    m.queue_id = queue_id;
    m.sequence = 1;
    m.accepted_ms = 1'700'000'000'000;
    m.accepted = std::move(accepted);
    return m;
  }

  static delivery event(const std::string& queue_id, std::uint32_t recipient, std::uint32_t segment,
                        message_state state, std::uint64_t unix_ms, std::string smsc_id = "",
                        credit_units refund = 0) {
    delivery d;
    d.queue_id = queue_id;
    d.recipient_index = recipient;
    d.segment = segment;
    d.recipient = "+39333000000" + std::to_string(recipient);
    d.state = state;
    d.smsc = "main";
    d.smsc_message_id = std::move(smsc_id);
    d.error = state == message_state::rejected ? 11 : 0;
    d.refund = refund;
    d.unix_ms = unix_ms;
    return d;
  }

  bool write(checkpoint_store& s, std::vector<journal_delta> deltas) {
    std::string error;
    bool ok = s.write(deltas, error);
    EXPECT_TRUE(ok) << error;
    return ok;
  }

  journal_delta with_deliveries(unsigned shard, std::vector<delivery> d) {
    journal_delta delta;
    delta.shard = shard;
    delta.sequence = ++sequence_;
    delta.deliveries = std::move(d);
    return delta;
  }

  journal_delta with_messages(unsigned shard, std::vector<journal_delta::message> m) {
    journal_delta delta;
    delta.shard = shard;
    delta.sequence = ++sequence_;
    delta.accepted = std::move(m);
    return delta;
  }

  std::uint64_t open_messages(checkpoint_store& s) {
    checkpoint_store::loaded out;
    std::string error;
    EXPECT_TRUE(s.load(out, error)) << error;
    return out.messages_to_deliver;
  }

  std::string dir_, path_;
  sqlite3* db_ = nullptr;
  std::uint64_t sequence_ = 0;
};

TEST_F(checkpoint_test, message_index_keeps_recipients_and_segments) {
  auto s = open();
  ASSERT_TRUE(s);
  auto m = message("Q1", {"+393330000000", "+393330000001"}, 3);
  auto single = message("Q2", {}, 1);  // no list given: stored as NULL
  ASSERT_TRUE(write(*s, {with_messages(0, {m, single})}));
  auto r = rows("SELECT recipients, segments, recipient_list, state FROM checkpoint_message WHERE queue_id = 'Q1'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], (std::vector<std::string>{"2", "3", "+393330000000\n+393330000001", "queued"}));
  EXPECT_EQ(one("SELECT coalesce(recipient_list, 'NULL') || '/' || segments FROM checkpoint_message "
                "WHERE queue_id = 'Q2'"),
            "NULL/1");
  EXPECT_EQ(open_messages(*s), 2u);
}

// What was sent (issue 13): originator, text, data coding, an MMS's parts
// and per-recipient prices only when they differ.
TEST_F(checkpoint_test, message_index_keeps_what_was_sent) {
  auto s = open();
  ASSERT_TRUE(s);
  auto sms = message("S1", {"+393330000000", "+447911123456"}, 1);
  auto sent = std::make_shared<postino::message>(*sms.accepted);
  sent->originator = "ACME";
  sent->sms_text = "Ciao\nciao";
  sent->data_coding = 8;
  sent->unit_prices = {1, 3};
  sms.accepted = sent;
  auto even = message("S2", {"+393330000000", "+393330000001"}, 1);
  auto alike = std::make_shared<postino::message>(*even.accepted);
  alike->unit_prices = {2, 2};
  even.accepted = alike;
  auto mms = message("M1", {"+393330000000"}, 1);
  mms.parts = "text/plain 15\nimage/jpeg 51";
  ASSERT_TRUE(write(*s, {with_messages(0, {sms, even, mms})}));
  auto r = rows("SELECT originator, text, data_coding, coalesce(parts, 'NULL'), coalesce(unit_prices, 'NULL'), "
                "text_cleared FROM checkpoint_message ORDER BY queue_id");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0], (std::vector<std::string>{"NULL", "", "0", "text/plain 15\nimage/jpeg 51", "NULL", "0"}));
  EXPECT_EQ(r[1], (std::vector<std::string>{"ACME", "Ciao\nciao", "8", "NULL", "1\n3", "0"}));
  EXPECT_EQ(r[2][4], "NULL") << "alike prices are the even share: not stored";
}

// The retention sweep clears the oldest texts first, at most max_rows per
// call, and leaves the rest of the row.
TEST_F(checkpoint_test, text_sweep_is_bounded_and_keeps_the_row) {
  auto s = open();
  ASSERT_TRUE(s);
  std::vector<journal_delta::message> ms;
  for (int i = 0; i < 5; ++i) {
    auto m = message("T" + std::to_string(i), {"+393330000000"}, 1);
    auto text = std::make_shared<postino::message>(*m.accepted);
    text->sms_text = "secret " + std::to_string(i);
    m.accepted = text;
    m.accepted_ms = 1000 + static_cast<std::uint64_t>(i);
    ms.push_back(std::move(m));
  }
  ASSERT_TRUE(write(*s, {with_messages(0, ms)}));
  unsigned cleared = 0;
  std::string error;
  ASSERT_TRUE(s->clear_texts(1004, 2, cleared, error)) << error;
  EXPECT_EQ(cleared, 2u);
  ASSERT_TRUE(s->clear_texts(1004, 2, cleared, error)) << error;
  EXPECT_EQ(cleared, 2u);
  ASSERT_TRUE(s->clear_texts(1004, 2, cleared, error)) << error;
  EXPECT_EQ(cleared, 0u) << "T4 is not older than the cut";
  auto r = rows("SELECT queue_id, coalesce(text, 'NULL'), text_cleared, state, price FROM checkpoint_message "
                "ORDER BY queue_id");
  ASSERT_EQ(r.size(), 5u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r[i][1] + "/" + r[i][2] + "/" + r[i][3] + "/" + r[i][4], "NULL/1/queued/1");
  EXPECT_EQ(r[4][1], "secret 4");
}

TEST_F(checkpoint_test, in_order_deliveries_reach_the_final_state) {
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(write(*s, {with_messages(0, {message("Q1", {"+393330000000"}, 2)})}));
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 0, 0, message_state::submitted, 100, "id-a"),
                                             event("Q1", 0, 1, message_state::submitted, 101, "id-b")})}));
  EXPECT_EQ(segment_row("Q1", 0, 0), "submitted|main|id-a|0|0");
  EXPECT_EQ(message_state_of("Q1"), "submitted");
  EXPECT_EQ(open_messages(*s), 1u);

  // One final segment of two: still under way.
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 0, 0, message_state::delivered, 200, "id-a")})}));
  EXPECT_EQ(segment_row("Q1", 0, 0), "delivered|main|id-a|0|0");
  EXPECT_EQ(message_state_of("Q1"), "submitted");

  // A final record without the SMSC's id keeps the one the row has.
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 0, 1, message_state::delivered, 201)})}));
  EXPECT_EQ(segment_row("Q1", 0, 1), "delivered|main|id-b|0|0");
  EXPECT_EQ(message_state_of("Q1"), "delivered");
  EXPECT_EQ(open_messages(*s), 0u);
  EXPECT_EQ(one("SELECT recipient FROM checkpoint_delivery WHERE queue_id = 'Q1' AND segment = 1"),
            "+393330000000");
}

// A delivering shard's delta may be written before the accepting shard's:
// the message's state is folded when its row arrives, in this process
// (orphans) and after a restart (start-up's replay refolds every message).
TEST_F(checkpoint_test, deliveries_written_before_their_message_still_set_its_state) {
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 0, 0, message_state::delivered, 100, "id-a")})}));
  ASSERT_TRUE(write(*s, {with_messages(0, {message("Q1", {"+393330000000"}, 1)})}));
  EXPECT_EQ(message_state_of("Q1"), "delivered");

  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q2", 0, 0, message_state::delivered, 100, "id-b")})}));
  s = open();  // a restart: the orphan is forgotten
  journal_delta replayed = with_messages(0, {message("Q2", {"+393330000000"}, 1)});
  replayed.replayed = true;
  ASSERT_TRUE(write(*s, {replayed}));
  EXPECT_EQ(message_state_of("Q2"), "delivered");
}

// Journal retention's look-ups: absent, open or final, and start-up's list
// of the open messages with their rows.
TEST_F(checkpoint_test, retention_reads_message_states_and_open_rows) {
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(write(*s, {with_messages(0, {message("Q1", {"+393330000000"}, 1), message("Q2", {"+393330000000"}, 1),
                                           message("Q3", {"+393330000000"}, 2)})}));
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 0, 0, message_state::delivered, 100, "id-1"),
                                             event("Q3", 0, 0, message_state::submitted, 100, "id-3")})}));
  std::vector<checkpoint_store::indexed> states;
  std::string error;
  ASSERT_TRUE(s->message_states({"Q1", "Q2", "Q3", "Q9"}, states, error)) << error;
  using indexed = checkpoint_store::indexed;
  EXPECT_EQ(states, (std::vector<indexed>{indexed::final, indexed::open, indexed::open, indexed::absent}));

  checkpoint_store::open_messages open;
  ASSERT_TRUE(s->load_open_messages(open, error)) << error;
  ASSERT_EQ(open.size(), 2u);
  EXPECT_TRUE(open.at("Q2").empty()) << "queued: no row yet";
  ASSERT_EQ(open.at("Q3").size(), 1u);
  EXPECT_EQ(open.at("Q3")[0].smsc_message_id, "id-3");
  EXPECT_EQ(open.at("Q3")[0].state, message_state::submitted);
  EXPECT_EQ(open.at("Q3")[0].updated_ms, 100u);
}

TEST_F(checkpoint_test, final_before_submitted_stays_final) {
  auto s = open();
  ASSERT_TRUE(s);
  // Within one write, across two shards' deltas: the final comes first.
  ASSERT_TRUE(write(*s, {with_messages(0, {message("Q1", {"+393330000000"}, 1)}),
                         with_deliveries(1, {event("Q1", 0, 0, message_state::delivered, 300, "id-a")}),
                         with_deliveries(2, {event("Q1", 0, 0, message_state::submitted, 100, "id-a")})}));
  EXPECT_EQ(segment_row("Q1", 0, 0), "delivered|main|id-a|0|0");
  EXPECT_EQ(message_state_of("Q1"), "delivered");

  // In a later write, even with a later time: still final.
  ASSERT_TRUE(write(*s, {with_deliveries(2, {event("Q1", 0, 0, message_state::submitted, 900, "id-z")})}));
  EXPECT_EQ(segment_row("Q1", 0, 0), "delivered|main|id-a|0|0");
  EXPECT_EQ(message_state_of("Q1"), "delivered");
  EXPECT_EQ(open_messages(*s), 0u);
}

TEST_F(checkpoint_test, first_final_wins_over_a_duplicate) {
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(write(*s, {with_messages(0, {message("Q1", {"+393330000000"}, 1)})}));
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 0, 0, message_state::submitted, 100, "id-a"),
                                             event("Q1", 0, 0, message_state::rejected, 200, "id-a", 5),
                                             event("Q1", 0, 0, message_state::delivered, 300, "id-a")})}));
  EXPECT_EQ(segment_row("Q1", 0, 0), "rejected|main|id-a|11|5");
  EXPECT_EQ(message_state_of("Q1"), "rejected");
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 0, 0, message_state::expired, 400, "id-a", 5)})}));
  EXPECT_EQ(segment_row("Q1", 0, 0), "rejected|main|id-a|11|5");
  EXPECT_EQ(one("SELECT count(*) FROM checkpoint_delivery"), "1");
}

TEST_F(checkpoint_test, later_submission_replaces_an_earlier_one) {
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(write(*s, {with_messages(0, {message("Q1", {"+393330000000"}, 1)})}));
  // A retry on another SMSC (its record folded first) and the older attempt.
  auto retry = event("Q1", 0, 0, message_state::submitted, 500, "id-new");
  retry.smsc = "backup";
  ASSERT_TRUE(write(*s, {with_deliveries(2, {retry}),
                         with_deliveries(1, {event("Q1", 0, 0, message_state::submitted, 100, "id-old")})}));
  EXPECT_EQ(segment_row("Q1", 0, 0), "submitted|backup|id-new|0|0");
  ASSERT_TRUE(write(*s, {with_deliveries(2, {event("Q1", 0, 0, message_state::submitted, 600, "id-newer")})}));
  EXPECT_EQ(segment_row("Q1", 0, 0), "submitted|main|id-newer|0|0");
}

TEST_F(checkpoint_test, message_state_is_the_worst_once_every_segment_is_final) {
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(write(*s, {with_messages(0, {message("Q1", {"+393330000000", "+393330000001"}, 2),
                                           message("Q2", {"+393330000000", "+393330000001"}, 1),
                                           message("Q3", {"+393330000000"}, 1),
                                           message("Q4", {"+393330000000"}, 1)})}));
  // Q1: a failure early on does not settle the message while others run.
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 0, 0, message_state::undeliverable, 100, "a", 1),
                                             event("Q1", 0, 1, message_state::delivered, 100, "b")})}));
  EXPECT_EQ(message_state_of("Q1"), "submitted");
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 1, 0, message_state::delivered, 100, "c")})}));
  EXPECT_EQ(message_state_of("Q1"), "submitted") << "3 of 4 segments final";
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 1, 1, message_state::accepted, 100, "d")})}));
  EXPECT_EQ(message_state_of("Q1"), "undeliverable");
  // Q2: delivered and unknown: unknown (final, no refund).
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q2", 0, 0, message_state::delivered, 100, "e"),
                                             event("Q2", 1, 0, message_state::unknown, 100, "f")})}));
  EXPECT_EQ(message_state_of("Q2"), "unknown");
  // Q3: expired before any SMSC took it (no id, no submitted row).
  auto expired = event("Q3", 0, 0, message_state::expired, 100, "", 1);
  expired.smsc.clear();
  ASSERT_TRUE(write(*s, {with_deliveries(1, {expired})}));
  EXPECT_EQ(message_state_of("Q3"), "expired");
  EXPECT_EQ(segment_row("Q3", 0, 0), "expired|-|-|0|1");
  // Q4 had nothing: it stays queued and is the only open message.
  EXPECT_EQ(message_state_of("Q4"), "queued");
  EXPECT_EQ(open_messages(*s), 1u);
}

TEST_F(checkpoint_test, rows_outside_the_message_do_not_complete_it) {
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(write(*s, {with_messages(0, {message("Q1", {"+393330000000"}, 2)})}));
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q1", 0, 0, message_state::delivered, 100, "a"),
                                             event("Q1", 0, 5, message_state::delivered, 100, "x")})}));
  EXPECT_EQ(message_state_of("Q1"), "submitted");
  // Deliveries of a message the index does not have are kept, and harmless.
  ASSERT_TRUE(write(*s, {with_deliveries(1, {event("Q9", 0, 0, message_state::delivered, 100, "z")})}));
  EXPECT_EQ(segment_row("Q9", 0, 0), "delivered|main|z|0|0");
  EXPECT_EQ(message_state_of("Q9"), "<none>");
}

TEST_F(checkpoint_test, inbound_messages_are_stored_once) {
  auto s = open();
  ASSERT_TRUE(s);
  journal_delta d;
  d.shard = 3;
  d.sequence = 42;
  d.inbound_messages.push_back({41, "main", "393330000000", "ACME", "ok, thanks\nsee you", 1000});
  d.inbound_messages.push_back({42, "main", "393330000001", "ACME", "STOP", 2000});
  ASSERT_TRUE(write(*s, {d}));
  ASSERT_TRUE(write(*s, {d}));  // replayed: ignored
  auto r = rows("SELECT shard, sequence, smsc, source, destination, text, received_ms FROM checkpoint_inbound "
                "ORDER BY sequence");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], (std::vector<std::string>{"3", "41", "main", "393330000000", "ACME", "ok, thanks\nsee you", "1000"}));
  EXPECT_EQ(r[1][5], "STOP");
  EXPECT_EQ(one("SELECT sequence FROM checkpoint_journal WHERE shard = 3"), "42");
}

TEST_F(checkpoint_test, merge_keeps_deliveries_and_inbound) {
  journal_delta a = with_deliveries(0, {event("Q1", 0, 0, message_state::submitted, 1, "a")});
  a.inbound_messages.push_back({1, "main", "1", "2", "x", 1});
  journal_delta b = with_deliveries(0, {event("Q1", 0, 0, message_state::delivered, 2, "a")});
  b.inbound_messages.push_back({2, "main", "1", "2", "y", 2});
  b.accepted.push_back(message("Q2", {"+1"}, 1));
  a.merge(std::move(b));
  ASSERT_EQ(a.deliveries.size(), 2u);
  EXPECT_EQ(a.deliveries[1].state, message_state::delivered);
  ASSERT_EQ(a.inbound_messages.size(), 2u);
  EXPECT_EQ(a.inbound_messages[1].text, "y");
  EXPECT_EQ(a.accepted.size(), 1u);
  EXPECT_EQ(a.sequence, 2u);
  EXPECT_FALSE(a.empty());
  journal_delta only_inbound;
  only_inbound.inbound_messages.push_back({1, "main", "1", "2", "x", 1});
  EXPECT_FALSE(only_inbound.empty());
}

TEST_F(checkpoint_test, failed_write_leaves_nothing) {
  auto s = open();
  ASSERT_TRUE(s);
  // The last thing written (an inbound row) fails through a trigger, so
  // the whole checkpoint must roll back.
  exec("CREATE TRIGGER refuse BEFORE INSERT ON checkpoint_inbound BEGIN SELECT RAISE(ABORT, 'refused'); END");
  journal_delta d = with_messages(0, {message("Q1", {"+393330000000"}, 1)});
  d.deliveries.push_back(event("Q1", 0, 0, message_state::submitted, 1, "a"));
  d.inbound_messages.push_back({1, "main", "1", "2", "x", 1});
  std::string error;
  EXPECT_FALSE(s->write({d}, error));
  EXPECT_NE(error.find("refused"), std::string::npos) << error;
  EXPECT_EQ(one("SELECT count(*) FROM checkpoint_message"), "0");
  EXPECT_EQ(one("SELECT count(*) FROM checkpoint_delivery"), "0");
  EXPECT_EQ(one("SELECT count(*) FROM checkpoint_journal"), "0");
  exec("DROP TRIGGER refuse");
  ASSERT_TRUE(write(*s, {d}));
  EXPECT_EQ(message_state_of("Q1"), "submitted");
}

TEST_F(checkpoint_test, old_database_is_migrated) {
  // The first version's tables, by hand, with a message of its time.
  exec("PRAGMA journal_mode = WAL;"
       "CREATE TABLE checkpoint_journal (shard INTEGER PRIMARY KEY, sequence INTEGER NOT NULL,"
       " updated_ms INTEGER NOT NULL);"
       "CREATE TABLE checkpoint_balance (account INTEGER PRIMARY KEY, journal_delta INTEGER NOT NULL,"
       " messages INTEGER NOT NULL);"
       "CREATE TABLE checkpoint_message (queue_id TEXT PRIMARY KEY, account INTEGER NOT NULL,"
       " shard INTEGER NOT NULL, sequence INTEGER NOT NULL, price INTEGER NOT NULL,"
       " recipients INTEGER NOT NULL, accepted_ms INTEGER NOT NULL,"
       " state TEXT NOT NULL DEFAULT 'queued', mm4_message_id TEXT);"
       "CREATE INDEX checkpoint_message_mm4 ON checkpoint_message (mm4_message_id)"
       " WHERE mm4_message_id IS NOT NULL;"
       "CREATE INDEX checkpoint_message_open ON checkpoint_message (state)"
       " WHERE state NOT IN ('delivered', 'expired', 'undeliverable', 'rejected');"
       "INSERT INTO checkpoint_journal VALUES (0, 17, 1);"
       "INSERT INTO checkpoint_balance VALUES (7, -3, 3);"
       "INSERT INTO checkpoint_message VALUES ('OLD1', 7, 0, 5, 1, 1, 1000, 'queued', NULL);"
       "INSERT INTO checkpoint_message VALUES ('OLD2', 7, 0, 6, 2, 2, 1000, 'queued', 'mm4-id');");
  sqlite3_close(db_);
  db_ = nullptr;

  auto s = open();
  ASSERT_TRUE(s);
  std::map<std::string, std::string> columns;
  for (const auto& r : rows("PRAGMA table_info(checkpoint_message)")) columns[r[1]] = r[2];
  EXPECT_EQ(columns["recipient_list"], "TEXT");
  EXPECT_EQ(columns["segments"], "INTEGER");
  for (const char* c : {"originator", "text", "parts", "unit_prices"}) EXPECT_EQ(columns[c], "TEXT") << c;
  EXPECT_EQ(columns["text_cleared"], "INTEGER");
  EXPECT_EQ(columns["data_coding"], "INTEGER");
  EXPECT_EQ(one("SELECT coalesce(text, 'NULL') || '/' || text_cleared FROM checkpoint_message "
                "WHERE queue_id = 'OLD1'"),
            "NULL/0")
      << "an old row: never stored, not cleared";
  EXPECT_EQ(one("SELECT segments || '/' || coalesce(recipient_list, 'NULL') || '/' || mm4_message_id "
                "FROM checkpoint_message WHERE queue_id = 'OLD2'"),
            "1/NULL/mm4-id");
  EXPECT_NE(one("SELECT sql FROM sqlite_master WHERE name = 'checkpoint_message_open'").find("'accepted'"),
            std::string::npos);
  EXPECT_EQ(one("SELECT count(*) FROM sqlite_master WHERE name IN ('checkpoint_delivery', 'checkpoint_inbound')"),
            "2");

  checkpoint_store::loaded out;
  std::string error;
  ASSERT_TRUE(s->load(out, error)) << error;
  EXPECT_EQ(out.sequence[0], 17u);
  EXPECT_EQ(out.balance[7], -3);
  EXPECT_EQ(out.messages_to_deliver, 2u);

  // The migrated index works like a new one, and opening again changes nothing.
  ASSERT_TRUE(write(*s, {with_messages(1, {message("NEW1", {"+393330000000"}, 2)}),
                         with_deliveries(1, {event("OLD1", 0, 0, message_state::accepted, 100, "a")})}));
  EXPECT_EQ(message_state_of("OLD1"), "accepted");
  EXPECT_EQ(open_messages(*s), 2u);
  s.reset();
  s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(open_messages(*s), 2u);
  EXPECT_EQ(one("SELECT segments FROM checkpoint_message WHERE queue_id = 'NEW1'"), "2");
}

// The index of open messages tests its states with comparisons: with
// `state NOT IN (...)`, as the previous version wrote it, SQLite built an
// ephemeral table at every insert of a message to evaluate the condition
// (perf: a fifth of the checkpointer's time in W1). A database with that
// index gets the new one, inserting builds no ephemeral table, and the
// start-up count still reads the index.
TEST_F(checkpoint_test, the_open_index_costs_no_ephemeral_table_per_insert) {
  ASSERT_TRUE(open());
  exec("DROP INDEX checkpoint_message_open;"
       "CREATE INDEX checkpoint_message_open ON checkpoint_message (state) WHERE state NOT IN "
       "('delivered', 'accepted', 'unknown', 'expired', 'deleted', 'undeliverable', 'rejected');");
  sqlite3_close(db_);
  db_ = nullptr;
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(one("SELECT sql FROM sqlite_master WHERE name = 'checkpoint_message_open'").find("NOT IN"),
            std::string::npos);
  std::string plan;
  for (const auto& r : rows("EXPLAIN INSERT OR IGNORE INTO checkpoint_message (queue_id, account, shard, sequence,"
                            " price, recipients, accepted_ms) VALUES ('Q', 1, 0, 1, 1, 1, 1)"))
    plan += r[1] + "\n";
  EXPECT_EQ(plan.find("OpenEphemeral"), std::string::npos) << plan;
  ASSERT_TRUE(write(*s, {with_messages(1, {message("Q1", {"+393330000000"}, 1)})}));
  EXPECT_EQ(open_messages(*s), 1u);
}

}  // namespace
}  // namespace postino::credit

namespace postino::credit {
namespace {

// Sums near the int64 limits (data written before max_balance existed):
// SQLite would turn an overflowing sum into a REAL; the checkpoint cuts it
// to the int64 range instead, and loads the REALs old versions left.
TEST_F(checkpoint_test, balance_sums_saturate_instead_of_becoming_reals) {
  auto s = open();
  ASSERT_TRUE(s);
  constexpr credit_units big = 5'000'000'000'000'000'000;
  for (int i = 0; i < 3; ++i) {
    journal_delta d;
    d.shard = 0;
    d.sequence = ++sequence_;
    d.balance[1] = big;
    d.balance[2] = -big;
    ASSERT_TRUE(write(*s, {d}));
  }
  EXPECT_EQ(one("SELECT journal_delta || ' ' || typeof(journal_delta) FROM checkpoint_balance WHERE account = 1"),
            "9223372036854775807 integer");
  EXPECT_EQ(one("SELECT journal_delta || ' ' || typeof(journal_delta) FROM checkpoint_balance WHERE account = 2"),
            "-9223372036854775808 integer");
  checkpoint_store::loaded out;
  std::string error;
  ASSERT_TRUE(s->load(out, error)) << error;
  EXPECT_EQ(out.balance[1], std::numeric_limits<credit_units>::max());
  EXPECT_EQ(out.balance[2], std::numeric_limits<credit_units>::min());
}

TEST_F(checkpoint_test, reals_left_by_an_old_overflow_load_saturated) {
  auto s = open();
  ASSERT_TRUE(s);
  exec("INSERT INTO checkpoint_balance VALUES (3, 14000000000000000000.0, 1), (4, -1.4e19, 1), (5, 12.0, 1)");
  checkpoint_store::loaded out;
  std::string error;
  ASSERT_TRUE(s->load(out, error)) << error;
  EXPECT_EQ(out.balance[3], std::numeric_limits<credit_units>::max());
  EXPECT_EQ(out.balance[4], std::numeric_limits<credit_units>::min());
  EXPECT_EQ(out.balance[5], 12);
}

TEST_F(checkpoint_test, rows_set_a_value_after_every_add) {
  auto s = open();
  ASSERT_TRUE(s);
  exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, credit INTEGER NOT NULL);"
       "INSERT INTO accounts VALUES (1, 9223372036854775807), (2, 50);");
  journal_delta d;
  d.shard = 0;
  d.sequence = ++sequence_;
  d.balance[1] = std::numeric_limits<credit_units>::max();
  d.balance[2] = -5;
  d.messages[2] = 3;
  std::string error;
  ASSERT_TRUE(s->write({d}, {{1, -42, max_balance}, {2, 7, std::nullopt}}, error)) << error;
  EXPECT_EQ(one("SELECT journal_delta FROM checkpoint_balance WHERE account = 1"), "-42");
  EXPECT_EQ(one("SELECT journal_delta || '/' || messages FROM checkpoint_balance WHERE account = 2"), "7/3");
  EXPECT_EQ(one("SELECT credit FROM accounts WHERE id = 1"), "1000000000000000");
  EXPECT_EQ(one("SELECT credit FROM accounts WHERE id = 2"), "50") << "no column value: the column stays";
  EXPECT_EQ(one("SELECT sequence FROM checkpoint_journal WHERE shard = 0"), std::to_string(sequence_));
}

TEST_F(checkpoint_test, a_column_repair_without_an_accounts_table_writes_nothing) {
  auto s = open();
  ASSERT_TRUE(s);
  std::string error;
  EXPECT_FALSE(s->write({with_messages(0, {message("Q9", {"+393330000000"}, 1)})}, {{1, 0, 0}}, error));
  EXPECT_NE(error.find("account 1: no accounts table"), std::string::npos) << error;
  EXPECT_EQ(one("SELECT count(*) FROM checkpoint_message"), "0");
  EXPECT_EQ(one("SELECT count(*) FROM checkpoint_balance"), "0");
}

TEST_F(checkpoint_test, merged_balances_saturate) {
  journal_delta a, b;
  a.balance[1] = std::numeric_limits<credit_units>::max();
  b.balance[1] = 1;
  a.balance[2] = std::numeric_limits<credit_units>::min();
  b.balance[2] = -1;
  a.merge(std::move(b));
  EXPECT_EQ(a.balance[1], std::numeric_limits<credit_units>::max());
  EXPECT_EQ(a.balance[2], std::numeric_limits<credit_units>::min());
}

// The message table as the very first checkpoint wrote it (before MMS ids
// were indexed): opening it must add the column before indexing it.
TEST_F(checkpoint_test, a_message_table_without_mm4_ids_is_migrated) {
  exec("PRAGMA journal_mode = WAL;"
       "CREATE TABLE checkpoint_journal (shard INTEGER PRIMARY KEY, sequence INTEGER NOT NULL,"
       " updated_ms INTEGER NOT NULL);"
       "CREATE TABLE checkpoint_balance (account INTEGER PRIMARY KEY, journal_delta INTEGER NOT NULL,"
       " messages INTEGER NOT NULL);"
       "CREATE TABLE checkpoint_message (queue_id TEXT PRIMARY KEY, account INTEGER NOT NULL,"
       " shard INTEGER NOT NULL, sequence INTEGER NOT NULL, price INTEGER NOT NULL,"
       " recipients INTEGER NOT NULL, accepted_ms INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'queued');"
       "CREATE INDEX checkpoint_message_open ON checkpoint_message (state)"
       " WHERE state NOT IN ('delivered', 'expired', 'undeliverable', 'rejected');"
       "INSERT INTO checkpoint_message VALUES ('OLD1', 7, 0, 5, 1, 1, 1000, 'queued');");
  sqlite3_close(db_);
  db_ = nullptr;
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(one("SELECT coalesce(mm4_message_id, 'NULL') || '/' || segments FROM checkpoint_message"), "NULL/1");
  EXPECT_EQ(one("SELECT count(*) FROM sqlite_master WHERE name = 'checkpoint_message_mm4'"), "1");
  EXPECT_EQ(open_messages(*s), 1u);
}

// ------------------------------------------------------------ start-up sums

TEST(start_balance, wide_values_print_exactly) {
  EXPECT_EQ(to_string(wide_credit{0}), "0");
  EXPECT_EQ(to_string(wide_credit{-5}), "-5");
  EXPECT_EQ(to_string(wide_credit{std::numeric_limits<credit_units>::max()} * 2), "18446744073709551614");
  EXPECT_EQ(to_string(wide_credit{std::numeric_limits<credit_units>::min()} * 3), "-27670116110564327424");
  const wide_credit lowest = -(((wide_credit{1} << 126) - 1) * 2) - 2;  // -2^127
  EXPECT_EQ(to_string(lowest), "-170141183460469231731687303715884105728");
}

TEST(start_balance, sums_are_exact_and_cut_to_the_maximum) {
  constexpr credit_units top = std::numeric_limits<credit_units>::max();
  // The report's case: a column of 1000 and a top-up of 2^63 - 1.
  auto b = resolve_start_balance(1, 1000, 0, top);
  EXPECT_EQ(to_string(b.found), "9223372036854776807");
  EXPECT_EQ(b.balance, max_balance);
  EXPECT_TRUE(b.balance_repaired());
  EXPECT_FALSE(b.column_repaired());
  EXPECT_EQ(b.journal_delta, max_balance - 1000);
  EXPECT_EQ(describe_repairs(b, "demo"),
            std::vector<std::string>{"account 1 (demo): balance 9223372036854776807 is past the maximum "
                                     "1000000000000000; using the maximum"});
  // A saturated checkpoint row on a saturated column.
  b = resolve_start_balance(2, top, top, 0);
  EXPECT_EQ(to_string(b.found), "18446744073709551614");
  EXPECT_EQ(b.balance, max_balance);
  EXPECT_EQ(b.credit_column, max_balance);
  EXPECT_EQ(b.journal_delta, 0);
  ASSERT_TRUE(b.row().credit_column.has_value());
  EXPECT_EQ(*b.row().credit_column, max_balance);
  auto lines = describe_repairs(b, "x");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "account 2 (x): accounts.credit 9223372036854775807 is past the maximum 1000000000000000; "
                      "storing the maximum (the checkpoint delta takes the difference)");
  // A column near the limit whose checkpoint delta brings the balance back:
  // the column is stored cut, the balance is unchanged.
  b = resolve_start_balance(3, top, -(top - 500), -20);
  EXPECT_EQ(b.balance, 480);
  EXPECT_FALSE(b.balance_repaired());
  EXPECT_TRUE(b.column_repaired());
  EXPECT_EQ(b.credit_column + b.journal_delta, 480);
  // Below zero.
  b = resolve_start_balance(4, std::numeric_limits<credit_units>::min(), std::numeric_limits<credit_units>::min(),
                            -wide_credit{top} * 1000);
  EXPECT_EQ(b.balance, 0);
  EXPECT_EQ(b.credit_column, 0);
  EXPECT_EQ(b.journal_delta, 0);
  lines = describe_repairs(b, "y");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("accounts.credit -9223372036854775808 is below zero; storing 0"), std::string::npos);
  EXPECT_NE(lines[1].find("is below zero; using 0"), std::string::npos);
  // In range: nothing to say.
  b = resolve_start_balance(5, 1000, -10, 25);
  EXPECT_EQ(b.balance, 1015);
  EXPECT_FALSE(b.repaired());
  EXPECT_TRUE(describe_repairs(b, "z").empty());
  EXPECT_EQ(b.journal_delta, 15);
  EXPECT_FALSE(b.row().credit_column.has_value());
  // Exactly the maximum is not a repair.
  EXPECT_FALSE(resolve_start_balance(6, max_balance, 0, 0).repaired());
}

}  // namespace
}  // namespace postino::credit
