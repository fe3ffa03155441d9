// The periodic checkpoint's SQL (declared in postino/credit.h): tables of its
// own in postino.db (journal positions, balance deltas, the message index,
// per-segment delivery states and inbound messages), created here with
// CREATE TABLE IF NOT EXISTS so they need no migration in the account store
// (whose schema this file never touches); columns added since the first
// version are added on open when missing. One IMMEDIATE transaction per
// checkpoint. The connection is this object's, used by one thread (the
// gateway's checkpoint thread, or start-up); WAL mode and the busy timeout
// are the account store's settings, so AUTH look-ups on the hash-pool workers
// never wait for a checkpoint. Deltas passed in are only read (SQLite binds
// their strings without copying); loaded values are copied out.
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <string_view>
#include <unordered_set>

#include "postino/core.h"
#include "postino/credit.h"

namespace postino::credit {
namespace {

// The final states' names as an SQL list, from message_state.h so the two
// never disagree: "('delivered', 'accepted', ...)".
std::string final_states_sql() {
  std::string out = "(";
  for (int i = 0; i <= static_cast<int>(message_state::rejected); ++i) {
    const auto s = static_cast<message_state>(i);
    if (!is_final(s)) continue;
    out += (out.size() > 1 ? ", '" : "'") + std::string(state_name(s)) + "'";
  }
  return out + ")";
}

const std::string& final_states() {
  static const std::string list = final_states_sql();
  return list;
}

std::string schema() {
  return "CREATE TABLE IF NOT EXISTS checkpoint_journal ("
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
         " mm4_message_id TEXT,"
         " recipient_list TEXT,"            // E.164 numbers, newline-separated
         " segments INTEGER NOT NULL DEFAULT 1);"
         "CREATE INDEX IF NOT EXISTS checkpoint_message_mm4 ON checkpoint_message (mm4_message_id)"
         " WHERE mm4_message_id IS NOT NULL;"
         "CREATE TABLE IF NOT EXISTS checkpoint_delivery ("
         " queue_id TEXT NOT NULL,"
         " recipient_index INTEGER NOT NULL,"
         " segment INTEGER NOT NULL,"
         " recipient TEXT,"
         " state TEXT NOT NULL,"            // message_state.h state_name()
         " smsc TEXT,"
         " smsc_message_id TEXT,"
         " error INTEGER NOT NULL DEFAULT 0,"
         " refund INTEGER NOT NULL DEFAULT 0,"
         " updated_ms INTEGER NOT NULL,"    // the journal record's time
         " PRIMARY KEY (queue_id, recipient_index, segment)) WITHOUT ROWID;"
         "CREATE TABLE IF NOT EXISTS checkpoint_inbound ("
         " shard INTEGER NOT NULL,"
         " sequence INTEGER NOT NULL,"
         " smsc TEXT NOT NULL,"
         " source TEXT NOT NULL,"
         " destination TEXT NOT NULL,"
         " text TEXT NOT NULL,"
         " received_ms INTEGER NOT NULL,"
         " PRIMARY KEY (shard, sequence));"
         "CREATE INDEX IF NOT EXISTS checkpoint_inbound_received ON checkpoint_inbound (received_ms);";
}

// Open messages are what start-up counts; the first version's index listed
// four final states, so it is rebuilt when it lacks the others.
std::string open_index_sql() {
  return "CREATE INDEX IF NOT EXISTS checkpoint_message_open ON checkpoint_message (state)"
         " WHERE state NOT IN " + final_states() + ";";
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
  deliveries.insert(deliveries.end(), std::make_move_iterator(later.deliveries.begin()),
                    std::make_move_iterator(later.deliveries.end()));
  inbound_messages.insert(inbound_messages.end(), std::make_move_iterator(later.inbound_messages.begin()),
                          std::make_move_iterator(later.inbound_messages.end()));
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
  bool exec(const std::string& sql, std::string& error) { return exec(sql.c_str(), error); }
  void rollback() {
    std::string ignored;
    exec("ROLLBACK", ignored);
  }
  bool create_schema(std::string& error);
};

namespace {

// Columns of `table`, by PRAGMA table_info.
bool columns_of(sqlite3* db, const char* table, std::unordered_set<std::string>& out) {
  statement info(db, (std::string("PRAGMA table_info(") + table + ")").c_str());
  if (!info.ok()) return false;
  int rc;
  while ((rc = sqlite3_step(info.get())) == SQLITE_ROW)
    out.emplace(reinterpret_cast<const char*>(sqlite3_column_text(info.get(), 1)));
  return rc == SQLITE_DONE;
}

// The text of a stored index, empty when there is none.
bool index_sql(sqlite3* db, const char* name, std::string& out) {
  statement q(db, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1");
  if (!q.ok()) return false;
  sqlite3_bind_text(q.get(), 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(q.get());
  if (rc == SQLITE_ROW && sqlite3_column_text(q.get(), 0) != nullptr)
    out = reinterpret_cast<const char*>(sqlite3_column_text(q.get(), 0));
  return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

}  // namespace

// Creates what is missing and brings a database of an earlier version
// forward (older databases exist in the field), all in one transaction.
bool checkpoint_store::impl::create_schema(std::string& error) {
  error.clear();
  if (!exec("BEGIN IMMEDIATE", error)) return false;
  auto fail = [&] {
    if (error.empty()) error = this->error();
    rollback();
    return false;
  };
  if (!exec(schema(), error)) return fail();
  std::unordered_set<std::string> columns;
  if (!columns_of(db, "checkpoint_message", columns)) return fail();
  if (!columns.contains("recipient_list") &&
      !exec("ALTER TABLE checkpoint_message ADD COLUMN recipient_list TEXT", error))
    return fail();
  if (!columns.contains("segments") &&
      !exec("ALTER TABLE checkpoint_message ADD COLUMN segments INTEGER NOT NULL DEFAULT 1", error))
    return fail();
  std::string open_index;
  if (!index_sql(db, "checkpoint_message_open", open_index)) return fail();
  if (!open_index.empty() && open_index.find("'accepted'") == std::string::npos &&
      !exec("DROP INDEX checkpoint_message_open", error))
    return fail();
  if (!exec(open_index_sql(), error)) return fail();
  if (!exec("COMMIT", error)) return fail();
  return true;
}

namespace {

// A message's state from its segments' rows: when every segment of every
// recipient is final, the worst of them (the worst of each recipient's
// segments, then the worst recipient); otherwise 'submitted' once any row
// exists. Rows outside the message's recipients x segments are not counted.
// Prepared once per checkpoint, used for each message whose rows changed.
class message_state_update {
 public:
  explicit message_state_update(sqlite3* db)
      : shape_(db, "SELECT recipients, segments FROM checkpoint_message WHERE queue_id = ?1"),
        rows_(db, "SELECT recipient_index, segment, state FROM checkpoint_delivery WHERE queue_id = ?1"),
        update_(db, "UPDATE checkpoint_message SET state = ?2 WHERE queue_id = ?1 AND state IS NOT ?2") {}
  bool ok() const { return shape_.ok() && rows_.ok() && update_.ok(); }

  // False on an SQLite error (the connection's message tells which).
  bool run(const std::string& queue_id) {
    shape_.reset();
    bind(shape_, queue_id);
    int rc = sqlite3_step(shape_.get());
    if (rc == SQLITE_DONE) return true;  // deliveries of a message not (yet) in the index
    if (rc != SQLITE_ROW) return false;
    const auto recipients = sqlite3_column_int64(shape_.get(), 0);
    const auto segments = sqlite3_column_int64(shape_.get(), 1);

    rows_.reset();
    bind(rows_, queue_id);
    std::int64_t any = 0, finals = 0;
    message_state worst = message_state::delivered;
    while ((rc = sqlite3_step(rows_.get())) == SQLITE_ROW) {
      ++any;
      const auto recipient = sqlite3_column_int64(rows_.get(), 0);
      const auto segment = sqlite3_column_int64(rows_.get(), 1);
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(rows_.get(), 2));
      const auto state = parse_state_name(text != nullptr ? text : "");
      if (!state || !is_final(*state) || recipient < 0 || recipient >= recipients || segment < 0 ||
          segment >= segments)
        continue;
      ++finals;
      worst = worse(worst, *state);
    }
    if (rc != SQLITE_DONE) return false;
    if (any == 0) return true;
    const message_state state =
        recipients > 0 && finals == recipients * segments ? worst : message_state::submitted;
    update_.reset();
    bind(update_, queue_id);
    sqlite3_bind_text(update_.get(), 2, state_name(state), -1, SQLITE_STATIC);
    return sqlite3_step(update_.get()) == SQLITE_DONE;
  }

 private:
  static void bind(statement& s, const std::string& queue_id) {
    sqlite3_bind_text(s.get(), 1, queue_id.data(), static_cast<int>(queue_id.size()), SQLITE_STATIC);
  }
  statement shape_, rows_, update_;
};

}  // namespace

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
      !p->create_schema(error)) {
    error = path + ": " + error;
    return nullptr;
  }
  return std::unique_ptr<checkpoint_store>(new checkpoint_store(std::move(p)));
}

bool checkpoint_store::load(loaded& out, std::string& error) {
  sqlite3* db = impl_->db;
  statement journals(db, "SELECT shard, sequence FROM checkpoint_journal");
  statement balances(db, "SELECT account, journal_delta FROM checkpoint_balance");
  const std::string open_sql = "SELECT count(*) FROM checkpoint_message WHERE state NOT IN " + final_states();
  statement open_messages(db, open_sql.c_str());
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

namespace {

void bind_text(sqlite3_stmt* s, int index, const std::string& text) {
  sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

// Empty strings are stored as NULL where "not known" is what they mean.
void bind_text_or_null(sqlite3_stmt* s, int index, const std::string& text) {
  if (text.empty())
    sqlite3_bind_null(s, index);
  else
    bind_text(s, index, text);
}

std::string join_lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += '\n';
    out += s;
  }
  return out;
}

}  // namespace

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
                    "recipients, accepted_ms, mm4_message_id, recipient_list, segments) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  // A final row is never replaced: not by a submitted one (a receipt may be
  // journaled on one shard before a resubmission's record on another is
  // folded), nor by a second final (the first receipt won and refunded).
  // A submitted row yields to a final or to a later submitted one (a retry).
  // What a newer record does not know (a final without the SMSC message id)
  // keeps the older row's value.
  const std::string delivery_sql =
      "INSERT INTO checkpoint_delivery (queue_id, recipient_index, segment, recipient, state, smsc, "
      "smsc_message_id, error, refund, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
      "ON CONFLICT (queue_id, recipient_index, segment) DO UPDATE SET "
      "recipient = coalesce(excluded.recipient, recipient), state = excluded.state, "
      "smsc = coalesce(excluded.smsc, smsc), smsc_message_id = coalesce(excluded.smsc_message_id, smsc_message_id), "
      "error = excluded.error, refund = excluded.refund, updated_ms = excluded.updated_ms "
      "WHERE state NOT IN " + final_states() + " AND (excluded.state IN " + final_states() +
      " OR excluded.updated_ms >= updated_ms)";
  statement delivery(db, delivery_sql.c_str());
  statement inbound(db,
                    "INSERT OR IGNORE INTO checkpoint_inbound (shard, sequence, smsc, source, destination, "
                    "text, received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  message_state_update states(db);
  if (!journal.ok() || !balance.ok() || !message.ok() || !delivery.ok() || !inbound.ok() ||
      !states.ok()) {
    error = impl_->error();
    return false;
  }
  if (!impl_->exec("BEGIN IMMEDIATE", error)) return false;
  auto fail = [&] {
    if (error.empty()) error = impl_->error();
    impl_->rollback();
    return false;
  };
  error.clear();
  const auto now = static_cast<sqlite3_int64>(core::unix_ms());
  // Every delta's messages go in before any delivery: a message accepted on
  // one shard may be submitted by another within the same checkpoint.
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
      bind_text(message.get(), 1, m.queue_id);
      sqlite3_bind_int64(message.get(), 2, static_cast<sqlite3_int64>(m.account));
      sqlite3_bind_int64(message.get(), 3, d.shard);
      sqlite3_bind_int64(message.get(), 4, static_cast<sqlite3_int64>(m.sequence));
      sqlite3_bind_int64(message.get(), 5, m.price);
      sqlite3_bind_int64(message.get(), 6, m.recipients);
      sqlite3_bind_int64(message.get(), 7, static_cast<sqlite3_int64>(m.accepted_ms));
      bind_text_or_null(message.get(), 8, m.mm4_message_id);
      const std::string recipient_list = join_lines(m.recipient_list);
      bind_text_or_null(message.get(), 9, recipient_list);
      sqlite3_bind_int64(message.get(), 10, m.segments);
      if (sqlite3_step(message.get()) != SQLITE_DONE) return fail();
    }
    journal.reset();
    sqlite3_bind_int64(journal.get(), 1, d.shard);
    sqlite3_bind_int64(journal.get(), 2, static_cast<sqlite3_int64>(d.sequence));
    sqlite3_bind_int64(journal.get(), 3, now);
    if (sqlite3_step(journal.get()) != SQLITE_DONE) return fail();
  }
  std::unordered_set<std::string> touched;
  for (const auto& d : deltas) {
    for (const auto& e : d.deliveries) {
      delivery.reset();
      bind_text(delivery.get(), 1, e.queue_id);
      sqlite3_bind_int64(delivery.get(), 2, e.recipient_index);
      sqlite3_bind_int64(delivery.get(), 3, e.segment);
      bind_text_or_null(delivery.get(), 4, e.recipient);
      sqlite3_bind_text(delivery.get(), 5, state_name(e.state), -1, SQLITE_STATIC);
      bind_text_or_null(delivery.get(), 6, e.smsc);
      bind_text_or_null(delivery.get(), 7, e.smsc_message_id);
      sqlite3_bind_int64(delivery.get(), 8, e.error);
      sqlite3_bind_int64(delivery.get(), 9, e.refund);
      sqlite3_bind_int64(delivery.get(), 10, static_cast<sqlite3_int64>(e.unix_ms));
      if (sqlite3_step(delivery.get()) != SQLITE_DONE) return fail();
      touched.insert(e.queue_id);
    }
    for (const auto& m : d.inbound_messages) {
      inbound.reset();
      sqlite3_bind_int64(inbound.get(), 1, d.shard);
      sqlite3_bind_int64(inbound.get(), 2, static_cast<sqlite3_int64>(m.sequence));
      bind_text(inbound.get(), 3, m.smsc);
      bind_text(inbound.get(), 4, m.source);
      bind_text(inbound.get(), 5, m.destination);
      bind_text(inbound.get(), 6, m.text);
      sqlite3_bind_int64(inbound.get(), 7, static_cast<sqlite3_int64>(m.unix_ms));
      if (sqlite3_step(inbound.get()) != SQLITE_DONE) return fail();
    }
  }
  for (const auto& queue_id : touched)
    if (!states.run(queue_id)) return fail();
  if (!impl_->exec("COMMIT", error)) {
    impl_->rollback();
    return false;
  }
  return true;
}

}  // namespace postino::credit
