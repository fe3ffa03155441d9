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
// The one write outside its own tables: a start-up repair of an
// accounts.credit value outside 0..max_balance, in the same transaction as
// the checkpoint row that keeps the balance, so the two never disagree.
// Also here: the start-up balance sum (128-bit, then cut to 0..max_balance)
// and the lines that say what was cut.
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <limits>
#include <string_view>
#include <unordered_set>

#include "postino/ascii.h"
#include "postino/core.h"
#include "postino/credit.h"

namespace postino::credit {
namespace {

// Whether `column` holds a final state, as SQL built from message_state.h so
// the two never disagree: "(state = 'delivered' OR state = 'accepted' ...)",
// or with `final` false "(state <> 'delivered' AND ...)". Comparisons, not
// IN: SQLite evaluates `IN (list)` through an ephemeral table it builds at
// every execution, and the open-messages index's condition is evaluated at
// every insert (perf, W1: a fifth of the checkpointer's time opening and
// closing those tables).
std::string state_test_sql(std::string_view column, bool final) {
  std::string out;
  for (int i = 0; i <= static_cast<int>(message_state::rejected); ++i) {
    const auto s = static_cast<message_state>(i);
    if (!is_final(s)) continue;
    if (!out.empty()) out += final ? " OR " : " AND ";
    out += std::string(column) + (final ? " = '" : " <> '") + std::string(state_name(s)) + "'";
  }
  return "(" + out + ")";
}

// The condition of the open-messages index, and of the queries that use it
// (SQLite matches a partial index by its terms).
const std::string& open_state() {
  static const std::string sql = state_test_sql("state", false);
  return sql;
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
         " segments INTEGER NOT NULL DEFAULT 1,"
         " originator TEXT,"
         " text TEXT,"                      // NULL once the retention sweep cleared it
         " text_cleared INTEGER NOT NULL DEFAULT 0,"
         " data_coding INTEGER,"
         " parts TEXT,"                     // an MMS: "<type> <bytes>" per leaf part
         " unit_prices TEXT);"              // per recipient, newline-separated; NULL: all alike
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
// four final states, so it is rebuilt when it lacks the others. The MM4 id
// index comes after the columns are complete: the first version's message
// table had no mm4_message_id.
std::string index_sql() {
  return "CREATE INDEX IF NOT EXISTS checkpoint_message_mm4 ON checkpoint_message (mm4_message_id)"
         " WHERE mm4_message_id IS NOT NULL;"
         "CREATE INDEX IF NOT EXISTS checkpoint_message_open ON checkpoint_message (state)"
         " WHERE " + open_state() + ";"
         // The retention sweep's: only rows that still hold a text.
         "CREATE INDEX IF NOT EXISTS checkpoint_message_text ON checkpoint_message (accepted_ms)"
         " WHERE text IS NOT NULL;";
}

// Columns added to checkpoint_message since its first version, in order.
struct added_column {
  const char* name;
  const char* sql;
};
constexpr added_column added_message_columns[] = {
    {"mm4_message_id", "ALTER TABLE checkpoint_message ADD COLUMN mm4_message_id TEXT"},
    {"recipient_list", "ALTER TABLE checkpoint_message ADD COLUMN recipient_list TEXT"},
    {"segments", "ALTER TABLE checkpoint_message ADD COLUMN segments INTEGER NOT NULL DEFAULT 1"},
    {"originator", "ALTER TABLE checkpoint_message ADD COLUMN originator TEXT"},
    {"text", "ALTER TABLE checkpoint_message ADD COLUMN text TEXT"},
    {"text_cleared", "ALTER TABLE checkpoint_message ADD COLUMN text_cleared INTEGER NOT NULL DEFAULT 0"},
    {"data_coding", "ALTER TABLE checkpoint_message ADD COLUMN data_coding INTEGER"},
    {"parts", "ALTER TABLE checkpoint_message ADD COLUMN parts TEXT"},
    {"unit_prices", "ALTER TABLE checkpoint_message ADD COLUMN unit_prices TEXT"},
};

// Credit sums that cannot overflow: stored deltas saturate at the int64
// limits (start-up then cuts the balance to 0..max_balance and says so).
credit_units saturating_add(credit_units a, credit_units b) {
  credit_units r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? std::numeric_limits<credit_units>::max() : std::numeric_limits<credit_units>::min();
  return r;
}

// Text stored as NULL when it is empty, where "not known" is what empty means.
struct text_or_null {
  const std::string& text;
};

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

  // Resets and binds `values` to ?1, ?2, ... in order: integers as INTEGER,
  // strings as TEXT. Text is bound without a copy, so it must outlive the
  // step that reads it (callers bind their own fields and locals).
  template <class... V>
  void bind_all(const V&... values) {
    reset();
    int index = 0;
    (bind(++index, values), ...);
  }
  // bind_all, then one step; true when the statement completed.
  template <class... V>
  bool run(const V&... values) {
    bind_all(values...);
    return sqlite3_step(s_) == SQLITE_DONE;
  }

 private:
  template <std::integral T>
  void bind(int index, T v) {
    sqlite3_bind_int64(s_, index, static_cast<sqlite3_int64>(v));
  }
  void bind(int index, const std::string& text) {
    sqlite3_bind_text(s_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  }
  void bind(int index, const char* text) { sqlite3_bind_text(s_, index, text, -1, SQLITE_STATIC); }
  void bind(int index, text_or_null v) {
    if (v.text.empty())
      sqlite3_bind_null(s_, index);
    else
      bind(index, v.text);
  }

  sqlite3_stmt* s_ = nullptr;
  bool ok_ = false;
};

}  // namespace

void journal_delta::add_message(std::string queue_id, std::uint64_t sequence, std::uint64_t accepted_ms,
                                std::shared_ptr<const postino::message> m) {
  // Prices are never negative (the journal's decoder refuses them): -price fits.
  add_credit(m->account, -m->price);
  ++messages[m->account];
  accepted.push_back({std::move(queue_id), sequence, accepted_ms, std::move(m), {}, {}});
}

void journal_delta::add_credit(account_id account, credit_units amount) {
  credit_units& v = balance[account];
  v = saturating_add(v, amount);
}

void journal_delta::merge(journal_delta&& later) {
  sequence = std::max(sequence, later.sequence);
  for (const auto& [id, amount] : later.balance) balance[id] = saturating_add(balance[id], amount);
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
  // Queue ids whose delivery rows were written before their message was:
  // its state is folded when it comes (checkpoint_store::write).
  std::unordered_set<std::string> orphans;
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
bool stored_index_sql(sqlite3* db, const char* name, std::string& out) {
  statement q(db, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1");
  if (!q.ok()) return false;
  q.bind_all(name);
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
  for (const added_column& c : added_message_columns)
    if (!columns.contains(c.name) && !exec(c.sql, error)) return fail();
  std::string open_index;
  if (!stored_index_sql(db, "checkpoint_message_open", open_index)) return fail();
  // Rebuilt when written by an older version: one that lacked some final
  // states, or tested them with NOT IN (costly at every insert).
  if (!open_index.empty() && open_index.find(open_state()) == std::string::npos &&
      !exec("DROP INDEX checkpoint_message_open", error))
    return fail();
  if (!exec(index_sql(), error)) return fail();
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
  message_state_update(sqlite3* db, std::unordered_set<std::string>& orphans)
      : orphans_(orphans),
        shape_(db, "SELECT recipients, segments FROM checkpoint_message WHERE queue_id = ?1"),
        rows_(db, "SELECT recipient_index, segment, state FROM checkpoint_delivery WHERE queue_id = ?1"),
        update_(db, "UPDATE checkpoint_message SET state = ?2 WHERE queue_id = ?1 AND state IS NOT ?2") {}
  bool ok() const { return shape_.ok() && rows_.ok() && update_.ok(); }

  // False on an SQLite error (the connection's message tells which).
  bool run(const std::string& queue_id) {
    shape_.bind_all(queue_id);
    int rc = sqlite3_step(shape_.get());
    if (rc == SQLITE_DONE) {  // deliveries of a message not (yet) in the index
      orphans_.insert(queue_id);
      return true;
    }
    if (rc != SQLITE_ROW) return false;
    const auto recipients = sqlite3_column_int64(shape_.get(), 0);
    const auto segments = sqlite3_column_int64(shape_.get(), 1);

    rows_.bind_all(queue_id);
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
    return update_.run(queue_id, state_name(state));
  }

 private:
  std::unordered_set<std::string>& orphans_;
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
  const std::string open_sql = "SELECT count(*) FROM checkpoint_message WHERE " + open_state();
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

// The statements of one checkpoint, prepared together.
struct checkpoint_statements {
  checkpoint_statements(sqlite3* db, std::unordered_set<std::string>& orphans)
      : journal(db,
                "INSERT INTO checkpoint_journal (shard, sequence, updated_ms) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (shard) DO UPDATE SET sequence = max(sequence, excluded.sequence), "
                "updated_ms = excluded.updated_ms"),
        // SQLite turns an overflowing integer sum into a REAL; the sum is cut
        // to the int64 range instead (only data from before max_balance can
        // get there, and start-up repairs what it finds).
        balance(db,
                "INSERT INTO checkpoint_balance (account, journal_delta, messages) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (account) DO UPDATE SET journal_delta = "
                "max(-9223372036854775807 - 1, min(9223372036854775807, journal_delta + excluded.journal_delta)), "
                "messages = messages + excluded.messages"),
        balance_set(db,
                    "INSERT INTO checkpoint_balance (account, journal_delta, messages) VALUES (?1, ?2, 0) "
                    "ON CONFLICT (account) DO UPDATE SET journal_delta = excluded.journal_delta"),
        credit_column(db, "UPDATE accounts SET credit = ?2 WHERE id = ?1"),
        // Queue ids are unique and each record is folded once, so a row exists
        // already only if something replayed a journal twice; keep the first row
        // then (delivery may have moved its state on).
        message(db,
                "INSERT OR IGNORE INTO checkpoint_message (queue_id, account, shard, sequence, price, "
                "recipients, accepted_ms, mm4_message_id, recipient_list, segments, originator, text, "
                "data_coding, parts, unit_prices) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
        delivery(db, delivery_sql().c_str()),
        inbound(db,
                "INSERT OR IGNORE INTO checkpoint_inbound (shard, sequence, smsc, source, destination, "
                "text, received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        states(db, orphans) {}
  bool ok() const {
    return journal.ok() && balance.ok() && balance_set.ok() && message.ok() && delivery.ok() && inbound.ok() &&
           states.ok();
  }

  // A final row is never replaced: not by a submitted one (a receipt may be
  // journaled on one shard before a resubmission's record on another is
  // folded), nor by a second final (the first receipt won and refunded).
  // A submitted row yields to a final or to a later submitted one (a retry).
  // What a newer record does not know (a final without the SMSC message id)
  // keeps the older row's value.
  static std::string delivery_sql() {
    return "INSERT INTO checkpoint_delivery (queue_id, recipient_index, segment, recipient, state, smsc, "
           "smsc_message_id, error, refund, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
           "ON CONFLICT (queue_id, recipient_index, segment) DO UPDATE SET "
           "recipient = coalesce(excluded.recipient, recipient), state = excluded.state, "
           "smsc = coalesce(excluded.smsc, smsc), smsc_message_id = coalesce(excluded.smsc_message_id, "
           "smsc_message_id), error = excluded.error, refund = excluded.refund, updated_ms = excluded.updated_ms "
           "WHERE " + open_state() + " AND (" + state_test_sql("excluded.state", true) +
           " OR excluded.updated_ms >= updated_ms)";
  }

  statement journal, balance, balance_set, credit_column, message, delivery, inbound;
  message_state_update states;
};

// The per-recipient segment prices as the index stores them: one line per
// recipient, or empty (NULL) when they are all alike, the even share.
std::string distinct_unit_prices(const postino::message& m) {
  if (m.unit_prices.size() != m.recipients.size() || m.unit_prices.empty()) return {};
  if (std::all_of(m.unit_prices.begin(), m.unit_prices.end(), [&](credit_units p) { return p == m.unit_prices[0]; }))
    return {};
  std::string out;
  for (credit_units p : m.unit_prices) out += (out.empty() ? "" : "\n") + std::to_string(p);
  return out;
}

// One delta's balances, accepted messages and journal position.
bool write_accepted(checkpoint_statements& st, const journal_delta& d, sqlite3_int64 now) {
  for (const auto& [id, amount] : d.balance) {
    auto m = d.messages.find(id);
    if (!st.balance.run(id, amount, m == d.messages.end() ? 0 : m->second)) return false;
  }
  for (const auto& m : d.accepted) {
    const postino::message& accepted = *m.accepted;
    static const std::string none;
    const std::string recipient_list = join(accepted.recipients, "\n");
    const std::string unit_prices = distinct_unit_prices(accepted);
    if (!st.message.run(m.queue_id, accepted.account, d.shard, m.sequence, accepted.price,
                        accepted.recipients.size(), m.accepted_ms,
                        text_or_null{accepted.is_mms ? accepted.mm4_message_id : none}, text_or_null{recipient_list},
                        accepted.segments, text_or_null{accepted.originator}, accepted.sms_text,
                        accepted.data_coding, text_or_null{m.parts}, text_or_null{unit_prices}))
      return false;
  }
  return st.journal.run(d.shard, d.sequence, now);
}

// One delta's delivery rows and inbound messages; `touched` collects the
// queue ids whose message state must be folded again.
bool write_delivered(checkpoint_statements& st, const journal_delta& d, std::unordered_set<std::string>& touched) {
  for (const auto& e : d.deliveries) {
    if (!st.delivery.run(e.queue_id, e.recipient_index, e.segment, text_or_null{e.recipient}, state_name(e.state),
                         text_or_null{e.smsc}, text_or_null{e.smsc_message_id}, e.error, e.refund, e.unix_ms))
      return false;
    touched.insert(e.queue_id);
  }
  for (const auto& m : d.inbound_messages)
    if (!st.inbound.run(d.shard, m.sequence, m.smsc, m.source, m.destination, m.text, m.unix_ms)) return false;
  return true;
}

// Messages whose state must be folded although no row of theirs came with
// them: those whose rows came first (orphans, forgotten once the write
// has committed) and every message of start-up's replay.
std::unordered_set<std::string> late_messages(const std::vector<journal_delta>& deltas,
                                              const std::unordered_set<std::string>& orphans) {
  std::unordered_set<std::string> late;
  for (const auto& d : deltas) {
    if (!d.replayed && orphans.empty()) continue;
    for (const auto& m : d.accepted)
      if (d.replayed || orphans.contains(m.queue_id)) late.insert(m.queue_id);
  }
  return late;
}

// Rows set to a value, after every delta's adds, so they win.
bool write_rows(checkpoint_statements& st, const std::vector<balance_row>& rows, std::string& error) {
  for (const balance_row& r : rows) {
    if (!st.balance_set.run(r.account, r.journal_delta)) return false;
    if (!r.credit_column) continue;
    if (!st.credit_column.ok()) {
      error = "account " + std::to_string(r.account) + ": no accounts table to store the repaired credit in";
      return false;
    }
    if (!st.credit_column.run(r.account, *r.credit_column)) return false;
  }
  return true;
}

}  // namespace

bool checkpoint_store::write(const std::vector<journal_delta>& deltas, const std::vector<balance_row>& rows,
                             std::string& error) {
  checkpoint_statements st(impl_->db, impl_->orphans);
  if (!st.ok()) {
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
  for (const auto& d : deltas)
    if (!write_accepted(st, d, now)) return fail();
  std::unordered_set<std::string> touched = late_messages(deltas, impl_->orphans);
  for (const auto& d : deltas)
    if (!write_delivered(st, d, touched)) return fail();
  for (const auto& queue_id : touched)
    if (!st.states.run(queue_id)) return fail();
  if (!write_rows(st, rows, error)) return fail();
  if (!impl_->exec("COMMIT", error)) {
    impl_->rollback();
    return false;
  }
  if (!impl_->orphans.empty())
    for (const auto& d : deltas)
      for (const auto& m : d.accepted) impl_->orphans.erase(m.queue_id);
  return true;
}

bool checkpoint_store::message_states(const std::vector<std::string>& queue_ids, std::vector<indexed>& out,
                                      std::string& error) {
  out.assign(queue_ids.size(), indexed::absent);
  const std::string sql = "SELECT " + state_test_sql("state", true) + " FROM checkpoint_message WHERE queue_id = ?1";
  statement lookup(impl_->db, sql.c_str());
  if (!lookup.ok()) return error = impl_->error(), false;
  // One read transaction for all the look-ups, not one per statement.
  if (!impl_->exec("BEGIN", error)) return false;
  for (std::size_t i = 0; i < queue_ids.size(); ++i) {
    lookup.bind_all(queue_ids[i]);
    const int rc = sqlite3_step(lookup.get());
    if (rc == SQLITE_ROW)
      out[i] = sqlite3_column_int(lookup.get(), 0) != 0 ? indexed::final : indexed::open;
    else if (rc != SQLITE_DONE)
      return error = impl_->error(), impl_->rollback(), false;
  }
  return impl_->exec("COMMIT", error);
}

bool checkpoint_store::load_open_messages(open_messages& out, std::string& error) {
  // The open messages through their partial index, then each one's rows.
  const std::string sql =
      "SELECT o.queue_id, d.recipient_index, d.segment, d.state, d.smsc, d.smsc_message_id, d.updated_ms "
      "FROM (SELECT queue_id FROM checkpoint_message WHERE " + open_state() + ") o "
      "LEFT JOIN checkpoint_delivery d ON d.queue_id = o.queue_id";
  statement rows(impl_->db, sql.c_str());
  if (!rows.ok()) return error = impl_->error(), false;
  auto text = [&](int column) {
    const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(rows.get(), column));
    return t != nullptr ? std::string(t) : std::string();
  };
  int rc;
  while ((rc = sqlite3_step(rows.get())) == SQLITE_ROW) {
    std::vector<delivery_row>& known = out[text(0)];
    if (sqlite3_column_type(rows.get(), 1) == SQLITE_NULL) continue;  // queued: no row yet
    const auto state = parse_state_name(text(3));
    if (!state) continue;
    known.push_back({static_cast<std::uint32_t>(sqlite3_column_int64(rows.get(), 1)),
                     static_cast<std::uint32_t>(sqlite3_column_int64(rows.get(), 2)), *state, text(4), text(5),
                     static_cast<std::uint64_t>(sqlite3_column_int64(rows.get(), 6))});
  }
  if (rc != SQLITE_DONE) return error = impl_->error(), false;
  return true;
}

bool checkpoint_store::clear_texts(std::uint64_t accepted_before_ms, unsigned max_rows, unsigned& cleared,
                                   std::string& error) {
  cleared = 0;
  // One statement, one implicit transaction, bounded by max_rows: the
  // partial index finds the oldest texts without a scan.
  statement sweep(impl_->db,
                  "UPDATE checkpoint_message SET text = NULL, text_cleared = 1 WHERE queue_id IN ("
                  " SELECT queue_id FROM checkpoint_message WHERE text IS NOT NULL AND accepted_ms < ?1"
                  " ORDER BY accepted_ms LIMIT ?2)");
  if (!sweep.ok() || !sweep.run(static_cast<sqlite3_int64>(std::min<std::uint64_t>(accepted_before_ms, INT64_MAX)),
                                max_rows)) {
    error = impl_->error();
    return false;
  }
  cleared = static_cast<unsigned>(sqlite3_changes(impl_->db));
  return true;
}

// ------------------------------------------------------------ start-up sums

std::string to_string(wide_credit v) {
  if (v == 0) return "0";
  const bool negative = v < 0;
  // Digits of the magnitude, taken from the negative side so that the
  // smallest value needs no negation that would overflow.
  std::string digits;
  for (wide_credit n = negative ? v : -v; n != 0; n /= 10) digits += static_cast<char>('0' - n % 10);
  if (negative) digits += '-';
  return std::string(digits.rbegin(), digits.rend());
}

start_balance resolve_start_balance(account_id id, credit_units credit_column, credit_units checkpoint_delta,
                                    wide_credit replayed) {
  auto cut = [](wide_credit v) {
    return static_cast<credit_units>(std::clamp<wide_credit>(v, 0, max_balance));
  };
  start_balance b;
  b.account = id;
  // Each term is within 64 bits (the replayed sum is one record per term,
  // far fewer than 2^63 of them), so the 128-bit sum cannot overflow.
  b.found = wide_credit{credit_column} + checkpoint_delta + replayed;
  b.balance = cut(b.found);
  b.column_found = credit_column;
  b.credit_column = cut(credit_column);
  b.journal_delta = b.balance - b.credit_column;  // both in 0..max_balance
  return b;
}

std::vector<std::string> describe_repairs(const start_balance& b, std::string_view username) {
  std::vector<std::string> out;
  const std::string who = "account " + std::to_string(b.account) + " (" + std::string(username) + "): ";
  const std::string maximum = std::to_string(max_balance);
  if (b.column_repaired())
    out.push_back(who + "accounts.credit " + std::to_string(b.column_found) +
                  (b.column_found < 0 ? " is below zero; storing 0" : " is past the maximum " + maximum +
                                                                       "; storing the maximum") +
                  " (the checkpoint delta takes the difference)");
  if (b.balance_repaired())
    out.push_back(who + "balance " + to_string(b.found) +
                  (b.found < 0 ? " is below zero; using 0" : " is past the maximum " + maximum +
                                                               "; using the maximum"));
  return out;
}

}  // namespace postino::credit
