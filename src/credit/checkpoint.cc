// The periodic checkpoint's SQL (declared in postino/credit.h): three tables
// of its own in postino.db, created here with CREATE TABLE IF NOT EXISTS so
// they need no migration in the account store (whose schema this file never
// touches), and one IMMEDIATE transaction per checkpoint. The connection is
// this object's, used by one thread (the gateway's checkpoint thread, or
// start-up); WAL mode and the busy timeout are the account store's settings,
// so AUTH look-ups on the hash-pool workers never wait for a checkpoint.
// Deltas passed in are only read; loaded values are copied out.
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <iterator>

#include "postino/credit.h"

namespace postino::credit {
namespace {

constexpr const char* schema =
    "CREATE TABLE IF NOT EXISTS checkpoint_journal ("
    " shard INTEGER PRIMARY KEY,"
    " sequence INTEGER NOT NULL,"      // every durable record up to this one is folded in
    " updated_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS checkpoint_balance ("
    " account INTEGER PRIMARY KEY,"
    " journal_delta INTEGER NOT NULL," // credits minus debits of the folded records
    " messages INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS checkpoint_message ("
    " queue_id TEXT PRIMARY KEY,"
    " account INTEGER NOT NULL,"
    " shard INTEGER NOT NULL,"
    " sequence INTEGER NOT NULL,"
    " price INTEGER NOT NULL,"
    " recipients INTEGER NOT NULL,"
    " accepted_ms INTEGER NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'queued',"
    " mm4_message_id TEXT);"
    "CREATE INDEX IF NOT EXISTS checkpoint_message_mm4 ON checkpoint_message (mm4_message_id)"
    " WHERE mm4_message_id IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS checkpoint_message_open ON checkpoint_message (state)"
    " WHERE state NOT IN ('delivered', 'expired', 'undeliverable', 'rejected');";

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// A prepared statement, finalized on scope exit.
class statement {
 public:
  statement(sqlite3* db, const char* sql) { ok_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) == SQLITE_OK; }
  ~statement() { sqlite3_finalize(s_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  bool ok() const { return ok_; }
  sqlite3_stmt* get() { return s_; }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  bool ok_ = false;
};

}  // namespace

void journal_delta::merge(journal_delta&& later) {
  sequence = std::max(sequence, later.sequence);
  for (const auto& [id, amount] : later.balance) balance[id] += amount;
  for (const auto& [id, count] : later.messages) messages[id] += count;
  accepted.insert(accepted.end(), std::make_move_iterator(later.accepted.begin()),
                  std::make_move_iterator(later.accepted.end()));
}

struct checkpoint_store::impl {
  sqlite3* db = nullptr;
  ~impl() {
    if (db != nullptr) sqlite3_close(db);
  }
  std::string error() const { return db != nullptr ? sqlite3_errmsg(db) : "out of memory"; }
  bool exec(const char* sql, std::string& error) {
    char* msg = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) == SQLITE_OK) return true;
    error = msg != nullptr ? msg : this->error();
    sqlite3_free(msg);
    return false;
  }
};

checkpoint_store::checkpoint_store(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
checkpoint_store::~checkpoint_store() = default;

std::unique_ptr<checkpoint_store> checkpoint_store::open(const std::string& path, std::string& error) {
  auto p = std::make_unique<impl>();
  if (sqlite3_open_v2(path.c_str(), &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    error = path + ": " + p->error();
    return nullptr;
  }
  sqlite3_busy_timeout(p->db, 5000);
  if (!p->exec("PRAGMA journal_mode = WAL", error) || !p->exec("PRAGMA synchronous = FULL", error) ||
      !p->exec(schema, error)) {
    error = path + ": " + error;
    return nullptr;
  }
  return std::unique_ptr<checkpoint_store>(new checkpoint_store(std::move(p)));
}

bool checkpoint_store::load(loaded& out, std::string& error) {
  sqlite3* db = impl_->db;
  statement journals(db, "SELECT shard, sequence FROM checkpoint_journal");
  statement balances(db, "SELECT account, journal_delta FROM checkpoint_balance");
  statement open_messages(db,
                          "SELECT count(*) FROM checkpoint_message WHERE state NOT IN "
                          "('delivered', 'expired', 'undeliverable', 'rejected')");
  if (!journals.ok() || !balances.ok() || !open_messages.ok()) {
    error = impl_->error();
    return false;
  }
  int rc;
  while ((rc = sqlite3_step(journals.get())) == SQLITE_ROW)
    out.sequence[static_cast<unsigned>(sqlite3_column_int64(journals.get(), 0))] =
        static_cast<std::uint64_t>(sqlite3_column_int64(journals.get(), 1));
  if (rc != SQLITE_DONE) return error = impl_->error(), false;
  while ((rc = sqlite3_step(balances.get())) == SQLITE_ROW)
    out.balance[static_cast<account_id>(sqlite3_column_int64(balances.get(), 0))] =
        sqlite3_column_int64(balances.get(), 1);
  if (rc != SQLITE_DONE) return error = impl_->error(), false;
  if (sqlite3_step(open_messages.get()) != SQLITE_ROW) return error = impl_->error(), false;
  out.messages_to_deliver = static_cast<std::uint64_t>(sqlite3_column_int64(open_messages.get(), 0));
  return true;
}

bool checkpoint_store::write(const std::vector<journal_delta>& deltas, std::string& error) {
  sqlite3* db = impl_->db;
  statement journal(db,
                    "INSERT INTO checkpoint_journal (shard, sequence, updated_ms) VALUES (?1, ?2, ?3) "
                    "ON CONFLICT (shard) DO UPDATE SET sequence = max(sequence, excluded.sequence), "
                    "updated_ms = excluded.updated_ms");
  statement balance(db,
                    "INSERT INTO checkpoint_balance (account, journal_delta, messages) VALUES (?1, ?2, ?3) "
                    "ON CONFLICT (account) DO UPDATE SET journal_delta = journal_delta + excluded.journal_delta, "
                    "messages = messages + excluded.messages");
  // Queue ids are unique and each record is folded once, so a row exists
  // already only if something replayed a journal twice; keep the first row
  // then (delivery may have moved its state on).
  statement message(db,
                    "INSERT OR IGNORE INTO checkpoint_message (queue_id, account, shard, sequence, price, "
                    "recipients, accepted_ms, mm4_message_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  if (!journal.ok() || !balance.ok() || !message.ok()) {
    error = impl_->error();
    return false;
  }
  if (!impl_->exec("BEGIN IMMEDIATE", error)) return false;
  auto fail = [&] {
    error = impl_->error();
    std::string ignored;
    impl_->exec("ROLLBACK", ignored);
    return false;
  };
  const auto now = static_cast<sqlite3_int64>(wall_ms());
  for (const auto& d : deltas) {
    for (const auto& [id, amount] : d.balance) {
      balance.reset();
      sqlite3_bind_int64(balance.get(), 1, static_cast<sqlite3_int64>(id));
      sqlite3_bind_int64(balance.get(), 2, amount);
      auto m = d.messages.find(id);
      sqlite3_bind_int64(balance.get(), 3, m == d.messages.end() ? 0 : static_cast<sqlite3_int64>(m->second));
      if (sqlite3_step(balance.get()) != SQLITE_DONE) return fail();
    }
    for (const auto& m : d.accepted) {
      message.reset();
      sqlite3_bind_text(message.get(), 1, m.queue_id.data(), static_cast<int>(m.queue_id.size()), SQLITE_STATIC);
      sqlite3_bind_int64(message.get(), 2, static_cast<sqlite3_int64>(m.account));
      sqlite3_bind_int64(message.get(), 3, d.shard);
      sqlite3_bind_int64(message.get(), 4, static_cast<sqlite3_int64>(m.sequence));
      sqlite3_bind_int64(message.get(), 5, m.price);
      sqlite3_bind_int64(message.get(), 6, m.recipients);
      sqlite3_bind_int64(message.get(), 7, static_cast<sqlite3_int64>(m.accepted_ms));
      if (m.mm4_message_id.empty())
        sqlite3_bind_null(message.get(), 8);
      else
        sqlite3_bind_text(message.get(), 8, m.mm4_message_id.data(), static_cast<int>(m.mm4_message_id.size()),
                          SQLITE_STATIC);
      if (sqlite3_step(message.get()) != SQLITE_DONE) return fail();
    }
    journal.reset();
    sqlite3_bind_int64(journal.get(), 1, d.shard);
    sqlite3_bind_int64(journal.get(), 2, static_cast<sqlite3_int64>(d.sequence));
    sqlite3_bind_int64(journal.get(), 3, now);
    if (sqlite3_step(journal.get()) != SQLITE_DONE) return fail();
  }
  if (!impl_->exec("COMMIT", error)) {
    std::string ignored;
    impl_->exec("ROLLBACK", ignored);
    return false;
  }
  return true;
}

}  // namespace postino::credit
