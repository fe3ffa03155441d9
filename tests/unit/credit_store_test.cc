// Tests for the SQLite account store (src/credit/account_store.cc): schema
// creation and versioning on an empty file, add/find/list, the credential
// generation bumps that drive cache invalidation, duplicate names, credit
// bounds and persistence across reopen. Each test owns a fresh temp dir.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <thread>

#include "postino/credit.h"
#include "postino/sms.h"

namespace postino::credit {
namespace {

class store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/postino-store-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/postino.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<account_store> open_store() {
    std::string error;
    auto s = account_store::open(path_, error);
    EXPECT_NE(s, nullptr) << error;
    return s;
  }

  static account_settings settings(std::string name) {
    account_settings s;
    s.username = std::move(name);
    return s;
  }

  std::string dir_, path_;
};

TEST_F(store_test, migrates_an_empty_database_and_sets_pragmas) {
  auto store = open_store();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), 5);
  EXPECT_TRUE(store->list().empty());
  EXPECT_TRUE(store->last_error().empty());

  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the file holds password hashes";

  // Looked at from outside: WAL mode, the tables of migrations 1 and 2, a row per version.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  auto scalar = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK) << sql;
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return out;
  };
  EXPECT_EQ(scalar("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(scalar("SELECT count(*) FROM schema_version"), "5");
  EXPECT_EQ(scalar("SELECT count(*) FROM sqlite_master WHERE name IN ('accounts', 'settings', 'prices')"), "3");
  sqlite3_close(db);
}

TEST_F(store_test, reopening_does_not_migrate_again) {
  { ASSERT_NE(open_store(), nullptr); }
  auto store = open_store();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), 5);
}

TEST_F(store_test, concurrent_first_opens_migrate_once) {
  // The gateway's auth workers each open their own connection at start-up.
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      std::string error;
      auto s = account_store::open(path_, error);
      if (s && s->schema_version() == 5) ++opened;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(opened.load(), 4);
  auto store = open_store();
  std::string error;
  EXPECT_NE(store->add(settings("alice"), "pw", 0, error), 0u) << error;
}

TEST_F(store_test, refuses_a_database_from_a_newer_program) {
  { ASSERT_NE(open_store(), nullptr); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "INSERT INTO schema_version (version) VALUES (99)", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  std::string error;
  EXPECT_EQ(account_store::open(path_, error), nullptr);
  EXPECT_NE(error.find("99"), std::string::npos) << error;
  EXPECT_NE(error.find(path_), std::string::npos) << error;
}

TEST_F(store_test, open_error_names_the_path_and_sqlite_text) {
  std::string error;
  const std::string bad = dir_ + "/missing-dir/postino.db";
  EXPECT_EQ(account_store::open(bad, error), nullptr);
  EXPECT_NE(error.find(bad), std::string::npos) << error;
  EXPECT_NE(error.find("unable to open"), std::string::npos) << error;
}

TEST_F(store_test, add_find_and_list) {
  auto store = open_store();
  account_settings a = settings("alice");
  a.default_originator = "Acme";
  a.allowed_originators = {"Acme", "+393331234567"};
  a.max_recipients = 50;
  a.default_country = "IT";
  a.unit_price = 3;
  std::string error;
  account_id alice = store->add(a, "s3cret", 100, error);
  ASSERT_NE(alice, 0u) << error;
  account_id bob = store->add(settings("bob"), "other", 0, error);
  ASSERT_NE(bob, 0u) << error;
  EXPECT_NE(alice, bob);

  auto found = store->find_by_username("alice");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->settings.id, alice);
  EXPECT_EQ(found->settings.status, account_status::active);
  EXPECT_EQ(found->settings.default_originator, "Acme");
  EXPECT_EQ(found->settings.allowed_originators, a.allowed_originators);
  EXPECT_EQ(found->settings.max_recipients, 50u);
  EXPECT_EQ(found->settings.default_country, "IT");
  EXPECT_EQ(found->settings.unit_price, 3);
  EXPECT_EQ(found->credit_checkpoint, 100);
  EXPECT_EQ(found->credential_generation, 0u);
  EXPECT_TRUE(found->password_hash.starts_with("$argon2id$"));
  EXPECT_TRUE(verify_password(found->password_hash, "s3cret"));

  auto by_id = store->find_by_id(bob);
  ASSERT_TRUE(by_id.has_value());
  EXPECT_EQ(by_id->settings.username, "bob");
  EXPECT_TRUE(by_id->settings.allowed_originators.empty());

  EXPECT_FALSE(store->find_by_username("carol").has_value());
  EXPECT_TRUE(store->last_error().empty()) << "not found is not a database error";
  EXPECT_FALSE(store->find_by_id(9999).has_value());
  EXPECT_FALSE(store->find_by_username("ALICE").has_value()) << "usernames are case-sensitive";

  auto all = store->list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].settings.username, "alice");
  EXPECT_EQ(all[1].settings.username, "bob");
}

TEST_F(store_test, duplicate_username_is_an_error) {
  auto store = open_store();
  std::string error;
  ASSERT_NE(store->add(settings("alice"), "one", 0, error), 0u) << error;
  error.clear();
  EXPECT_EQ(store->add(settings("alice"), "two", 5, error), 0u);
  EXPECT_NE(error.find("already exists"), std::string::npos) << error;
  EXPECT_EQ(store->list().size(), 1u);
  // The original password still holds.
  EXPECT_TRUE(verify_password(store->find_by_username("alice")->password_hash, "one"));
}

TEST_F(store_test, refuses_invalid_accounts_without_hashing) {
  auto store = open_store();
  std::string error;
  EXPECT_EQ(store->add(settings(""), "pw", 0, error), 0u);
  EXPECT_EQ(store->add(settings(std::string("a\0b", 3)), "pw", 0, error), 0u);
  EXPECT_EQ(store->add(settings("carol"), "", 0, error), 0u);
  EXPECT_EQ(store->add(settings("carol"), "pw", -1, error), 0u);
  account_settings comma = settings("carol");
  comma.allowed_originators = {"A,B"};
  EXPECT_EQ(store->add(comma, "pw", 0, error), 0u);
  EXPECT_TRUE(store->list().empty());
}

TEST_F(store_test, set_password_and_status_bump_the_generation) {
  auto store = open_store();
  std::string error;
  account_id id = store->add(settings("alice"), "old", 0, error);
  ASSERT_NE(id, 0u) << error;

  ASSERT_TRUE(store->set_password(id, "new"));
  auto a = store->find_by_id(id);
  EXPECT_EQ(a->credential_generation, 1u);
  EXPECT_TRUE(verify_password(a->password_hash, "new"));
  EXPECT_FALSE(verify_password(a->password_hash, "old"));

  ASSERT_TRUE(store->set_status(id, account_status::suspended));
  a = store->find_by_id(id);
  EXPECT_EQ(a->settings.status, account_status::suspended);
  EXPECT_EQ(a->credential_generation, 2u);

  // Setting the same status again changes nothing.
  ASSERT_TRUE(store->set_status(id, account_status::suspended));
  EXPECT_EQ(store->find_by_id(id)->credential_generation, 2u);

  ASSERT_TRUE(store->set_status(id, account_status::active));
  a = store->find_by_id(id);
  EXPECT_EQ(a->settings.status, account_status::active);
  EXPECT_EQ(a->credential_generation, 3u);

  EXPECT_FALSE(store->set_password(777, "x"));
  EXPECT_FALSE(store->set_status(777, account_status::active));
}

TEST_F(store_test, add_credit_stays_within_bounds) {
  auto store = open_store();
  std::string error;
  account_id id = store->add(settings("alice"), "pw", 10, error);
  ASSERT_NE(id, 0u) << error;
  EXPECT_TRUE(store->add_credit(id, 5));
  EXPECT_EQ(store->find_by_id(id)->credit_checkpoint, 15);
  EXPECT_TRUE(store->add_credit(id, -15));
  EXPECT_EQ(store->find_by_id(id)->credit_checkpoint, 0);
  EXPECT_FALSE(store->add_credit(id, -1));
  EXPECT_TRUE(store->add_credit(id, max_balance));
  EXPECT_FALSE(store->add_credit(id, 1)) << "past the maximum balance must be refused";
  EXPECT_EQ(store->last_error(),
            "the credit 1000000000000000 plus 1 would leave the range 0..1000000000000000 (the maximum balance)");
  EXPECT_EQ(store->find_by_id(id)->credit_checkpoint, max_balance);
  EXPECT_FALSE(store->add_credit(4242, 1));
  // The refused calls rolled back: the store still takes writes.
  EXPECT_TRUE(store->add_credit(id, -1));
}

TEST_F(store_test, hostile_credit_amounts_are_refused_with_a_reason) {
  auto store = open_store();
  std::string error;
  account_id id = store->add(settings("bob"), "pw", 10, error);
  ASSERT_NE(id, 0u) << error;
  for (credit_units amount : {std::numeric_limits<credit_units>::max(), credit_units{5'000'000'000'000'000'000},
                              max_balance, std::numeric_limits<credit_units>::min(), credit_units{-11}}) {
    EXPECT_FALSE(store->add_credit(id, amount)) << amount;
    EXPECT_NE(store->last_error().find("would leave the range 0..1000000000000000"), std::string::npos)
        << store->last_error();
    EXPECT_EQ(store->find_by_id(id)->credit_checkpoint, 10) << "nothing was written";
  }
  EXPECT_EQ(store->add(settings("carol"), "pw", max_balance + 1, error), 0u);
  EXPECT_EQ(error, "initial credit must be 0 to 1000000000000000 (the maximum balance)");
  EXPECT_EQ(store->add(settings("carol"), "pw", std::numeric_limits<credit_units>::max(), error), 0u);
  EXPECT_EQ(store->add(settings("carol"), "pw", -1, error), 0u);
  EXPECT_NE(store->add(settings("carol"), "pw", max_balance, error), 0u) << error;
}

TEST_F(store_test, update_settings) {
  auto store = open_store();
  std::string error;
  account_id id = store->add(settings("alice"), "pw", 0, error);
  ASSERT_NE(store->add(settings("bob"), "pw", 0, error), 0u);
  auto a = store->find_by_id(id)->settings;
  a.default_country = "DE";
  a.unit_price = 7;
  a.allowed_originators = {"X"};
  ASSERT_TRUE(store->update_settings(a));
  auto b = store->find_by_id(id);
  EXPECT_EQ(b->settings.default_country, "DE");
  EXPECT_EQ(b->settings.unit_price, 7);
  EXPECT_EQ(b->settings.allowed_originators, std::vector<std::string>{"X"});
  EXPECT_EQ(b->credential_generation, 0u) << "no credential changed";

  a.username = "bob";
  EXPECT_FALSE(store->update_settings(a)) << "username taken";
  a.username = "alice2";
  ASSERT_TRUE(store->update_settings(a));
  EXPECT_EQ(store->find_by_id(id)->credential_generation, 1u) << "a rename drops cached logins";
}

TEST_F(store_test, content_settings_round_trip) {
  auto store = open_store();
  account_settings s = settings("mms");
  s.content = content_mode::email;
  s.max_segments = 4;
  s.subject_prefix = true;
  s.strip_signature = false;
  s.strip_quoted_reply = false;
  s.subject_as_text = false;
  s.transliterate = true;
  s.mms_enabled = true;
  s.max_mms_bytes = 300 * 1024;
  s.mms_price = 5;
  std::string error;
  const account_id id = store->add(s, "pw", 0, error);
  ASSERT_NE(id, 0u) << error;
  auto a = store->find_by_id(id);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->settings.content, content_mode::email);
  EXPECT_EQ(a->settings.max_segments, 4u);
  EXPECT_TRUE(a->settings.subject_prefix);
  EXPECT_FALSE(a->settings.strip_signature);
  EXPECT_FALSE(a->settings.strip_quoted_reply);
  EXPECT_FALSE(a->settings.subject_as_text);
  EXPECT_TRUE(a->settings.transliterate);
  EXPECT_TRUE(a->settings.mms_enabled);
  EXPECT_EQ(a->settings.max_mms_bytes, 300u * 1024);
  EXPECT_EQ(a->settings.mms_price, 5);
  // Defaults for an account that says nothing.
  ASSERT_NE(store->add(settings("plain"), "pw", 0, error), 0u) << error;
  auto p = store->find_by_username("plain");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->settings.content, content_mode::automatic);
  EXPECT_EQ(p->settings.max_segments, 1u);
  EXPECT_TRUE(p->settings.strip_signature);
  EXPECT_TRUE(p->settings.strip_quoted_reply);
  EXPECT_TRUE(p->settings.subject_as_text);
  EXPECT_FALSE(p->settings.mms_enabled);
  EXPECT_EQ(p->settings.max_mms_bytes, default_max_mms_bytes);
  EXPECT_EQ(p->settings.prices, nullptr);
  // update_settings writes them too, and refuses what the schema would.
  a->settings.max_segments = 255;
  a->settings.content = content_mode::raw;
  a->settings.strip_quoted_reply = true;
  EXPECT_TRUE(store->update_settings(a->settings)) << store->last_error();
  EXPECT_EQ(store->find_by_id(id)->settings.content, content_mode::raw);
  EXPECT_TRUE(store->find_by_id(id)->settings.strip_quoted_reply);
  EXPECT_FALSE(store->find_by_id(id)->settings.subject_as_text);
  a->settings.max_segments = 256;
  EXPECT_FALSE(store->update_settings(a->settings));
  EXPECT_EQ(store->last_error(), "max segments must be 1 to 255");
  s.username = "bad";
  s.mms_price = -1;
  EXPECT_EQ(store->add(s, "pw", 0, error), 0u);
}

TEST_F(store_test, price_tables_account_first_then_global_longest_first) {
  auto store = open_store();
  std::string error;
  const account_id alice = store->add(settings("alice"), "pw", 0, error);
  const account_id bob = store->add(settings("bob"), "pw", 0, error);
  ASSERT_TRUE(store->set_price(0, "39", 2));
  ASSERT_TRUE(store->set_price(0, "393", 3));
  ASSERT_TRUE(store->set_price(0, "44", 4));
  ASSERT_TRUE(store->set_price(alice, "39", 1));
  ASSERT_TRUE(store->set_price(alice, "3934", 7));
  ASSERT_TRUE(store->set_price(0, "44", 5)) << "set replaces";
  EXPECT_FALSE(store->set_price(0, "+39", 1));
  EXPECT_FALSE(store->set_price(0, "39", -1));
  EXPECT_FALSE(store->set_price(999, "39", 1));
  EXPECT_EQ(store->last_error(), "no account with id 999");

  auto a = store->find_by_username("alice");
  ASSERT_TRUE(a && a->settings.prices);
  std::vector<std::pair<std::string, bool>> order;
  for (const auto& r : *a->settings.prices) order.emplace_back(r.prefix, r.global);
  const std::vector<std::pair<std::string, bool>> expected = {
      {"3934", false}, {"39", false}, {"393", true}, {"39", true}, {"44", true}};
  EXPECT_EQ(order, expected);
  // The account's own rule wins where any matches; the global table fills the rest.
  EXPECT_EQ(segment_price(a->settings, "+393471234567"), 7);
  EXPECT_EQ(segment_price(a->settings, "+393331234567"), 1);
  EXPECT_EQ(segment_price(a->settings, "+447911123456"), 5);
  EXPECT_EQ(segment_price(a->settings, "+33612345678"), 1) << "unit price";
  auto b = store->find_by_id(bob);
  EXPECT_EQ(segment_price(b->settings, "+393331234567"), 3);
  EXPECT_EQ(segment_price(b->settings, "+390612345678"), 2);

  EXPECT_EQ(store->list_prices(0).size(), 3u);
  EXPECT_EQ(store->list_prices(alice).size(), 2u);
  EXPECT_TRUE(store->delete_price(alice, "3934"));
  EXPECT_FALSE(store->delete_price(alice, "3934"));
  EXPECT_TRUE(store->last_error().empty()) << "no such rule is not a failure";
  EXPECT_EQ(store->list_prices(alice).size(), 1u);
  EXPECT_EQ(store->list_prices(bob).size(), 0u);
}

TEST_F(store_test, migrates_a_version_1_database_keeping_its_accounts) {
  // A database as the first schema left it, with one account.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  const char* v1 =
      "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT '');"
      "INSERT INTO schema_version (version) VALUES (1);"
      "CREATE TABLE accounts (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE,"
      " password_hash TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',"
      " default_originator TEXT NOT NULL DEFAULT '', allowed_originators TEXT NOT NULL DEFAULT '',"
      " max_recipients INTEGER NOT NULL DEFAULT 1000, default_country TEXT NOT NULL DEFAULT '',"
      " unit_price INTEGER NOT NULL DEFAULT 1, credit INTEGER NOT NULL DEFAULT 0,"
      " credential_generation INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL DEFAULT '');"
      "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
      "INSERT INTO accounts (username, password_hash, unit_price, credit) VALUES ('old', 'x', 2, 50);";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
  auto store = open_store();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), 5);
  auto a = store->find_by_username("old");
  ASSERT_TRUE(a.has_value()) << store->last_error();
  EXPECT_EQ(a->settings.unit_price, 2);
  EXPECT_EQ(a->credit_checkpoint, 50);
  EXPECT_EQ(a->settings.max_segments, 1u);
  EXPECT_EQ(a->settings.mms_price, 3);
  // Migration 4 (issue 13): the e-mail clean-up defaults, on for the old
  // account too, and one line saying so, from this open only.
  EXPECT_TRUE(a->settings.strip_signature);
  EXPECT_TRUE(a->settings.strip_quoted_reply);
  EXPECT_TRUE(a->settings.subject_as_text);
  ASSERT_EQ(store->migration_notes().size(), 1u);
  EXPECT_NE(store->migration_notes()[0].find("strip_signature turned on for 1 account(s)"), std::string::npos)
      << store->migration_notes()[0];
  store.reset();
  EXPECT_TRUE(open_store()->migration_notes().empty()) << "the migration and its line happen once";
}

TEST_F(store_test, migration_4_needs_no_line_when_nothing_changes) {
  EXPECT_TRUE(open_store()->migration_notes().empty()) << "a new database has no accounts to change";
}

TEST_F(store_test, reopen_keeps_data) {
  account_id id;
  {
    auto store = open_store();
    std::string error;
    id = store->add(settings("alice"), "pw", 42, error);
    ASSERT_NE(id, 0u) << error;
    ASSERT_TRUE(store->set_status(id, account_status::suspended));
  }
  auto store = open_store();
  auto a = store->find_by_username("alice");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->settings.id, id);
  EXPECT_EQ(a->credit_checkpoint, 42);
  EXPECT_EQ(a->settings.status, account_status::suspended);
  EXPECT_TRUE(verify_password(a->password_hash, "pw"));
}

TEST_F(store_test, two_connections_see_each_other) {
  auto writer = open_store();
  auto reader = open_store();
  std::string error;
  account_id id = writer->add(settings("alice"), "pw", 1, error);
  ASSERT_NE(id, 0u) << error;
  ASSERT_TRUE(writer->add_credit(id, 2));
  auto a = reader->find_by_id(id);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->credit_checkpoint, 3);
}

TEST_F(store_test, database_lock_is_exclusive_across_holders) {
  database_lock first;
  ASSERT_TRUE(first.try_acquire(path_));
  EXPECT_TRUE(first.held());
  EXPECT_TRUE(first.try_acquire(path_)) << "re-acquiring what one holds is a no-op";
  {
    database_lock second;
    EXPECT_FALSE(second.try_acquire(path_));
    EXPECT_EQ(errno, EWOULDBLOCK);
    EXPECT_FALSE(second.held());
  }
  struct stat st {};
  ASSERT_EQ(::stat((path_ + ".lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(store_test, database_lock_is_released_with_its_holder) {
  { database_lock first; ASSERT_TRUE(first.try_acquire(path_)); }
  database_lock second;
  EXPECT_TRUE(second.try_acquire(path_));
}

TEST_F(store_test, database_lock_reports_other_failures) {
  database_lock lock;
  EXPECT_FALSE(lock.try_acquire(dir_ + "/missing-dir/postino.db"));
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
}  // namespace postino::credit
