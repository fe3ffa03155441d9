// The SQLite account store (postino.db): accounts with their Argon2id hashes,
// settings (migration 2 adds the message-content ones of issue 4, migration 3
// the per-account rate limit of issue 5, migration 4 issue 13's e-mail
// clean-up defaults, migration 5 the relay rules of issue 17), the
// destination price tables, and the credit checkpoint column. A look-up
// returns the account with its price table resolved: its own rules, then the
// global ones, longest prefix first, shared immutably by every copy. One sqlite3 connection per
// object, used by one thread at a time; its prepared statements are prepared
// once on open and reset after every use. The schema is versioned by the
// schema_version table and migrated forward on open, each migration in its
// own IMMEDIATE transaction so that two processes opening a fresh database do
// not both apply it. Strings passed in are read only; rows are copied out
// into stored_account values owned by the caller.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <climits>
#include <cstdio>
#include <exception>
#include <limits>
#include <thread>

#include "postino/ascii.h"
#include "postino/credit.h"

namespace postino::credit {
namespace {

// Forward migrations, applied in order. A new schema change is one more entry
// here with the next version; never edit an entry that has shipped.
struct migration {
  int version;
  const char* sql;
};

constexpr migration migrations[] = {
    {1, R"sql(
CREATE TABLE accounts (
  id                    INTEGER PRIMARY KEY,
  username              TEXT    NOT NULL UNIQUE,
  password_hash         TEXT    NOT NULL,
  status                TEXT    NOT NULL DEFAULT 'active'
                                CHECK (status IN ('active', 'suspended')),
  default_originator    TEXT    NOT NULL DEFAULT '',
  allowed_originators   TEXT    NOT NULL DEFAULT '',   -- comma-separated
  max_recipients        INTEGER NOT NULL DEFAULT 1000 CHECK (max_recipients > 0),
  default_country       TEXT    NOT NULL DEFAULT '',
  unit_price            INTEGER NOT NULL DEFAULT 1 CHECK (unit_price >= 0),
  credit                INTEGER NOT NULL DEFAULT 0,    -- checkpoint; the journal is the truth
  credential_generation INTEGER NOT NULL DEFAULT 0,
  created_at            TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
)sql"},
    // Issue 4: message content settings and the destination price tables.
    // account_id NULL is the global table; coalesce(account_id, 0) in the key
    // makes one global rule per prefix (NULLs are distinct in a UNIQUE index).
    {2, R"sql(
ALTER TABLE accounts ADD COLUMN content_mode TEXT NOT NULL DEFAULT 'auto'
  CHECK (content_mode IN ('auto', 'raw', 'email'));
ALTER TABLE accounts ADD COLUMN max_segments INTEGER NOT NULL DEFAULT 1
  CHECK (max_segments BETWEEN 1 AND 255);
ALTER TABLE accounts ADD COLUMN subject_prefix INTEGER NOT NULL DEFAULT 0 CHECK (subject_prefix IN (0, 1));
ALTER TABLE accounts ADD COLUMN strip_signature INTEGER NOT NULL DEFAULT 0 CHECK (strip_signature IN (0, 1));
ALTER TABLE accounts ADD COLUMN transliterate INTEGER NOT NULL DEFAULT 0 CHECK (transliterate IN (0, 1));
ALTER TABLE accounts ADD COLUMN mms_enabled INTEGER NOT NULL DEFAULT 0 CHECK (mms_enabled IN (0, 1));
ALTER TABLE accounts ADD COLUMN max_mms_bytes INTEGER NOT NULL DEFAULT 1048576 CHECK (max_mms_bytes > 0);
ALTER TABLE accounts ADD COLUMN mms_price INTEGER NOT NULL DEFAULT 3 CHECK (mms_price >= 0);
CREATE TABLE prices (
  account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
  prefix     TEXT    NOT NULL CHECK (length(prefix) BETWEEN 1 AND 15 AND prefix NOT GLOB '*[^0-9]*'),
  price      INTEGER NOT NULL CHECK (price >= 0)
);
CREATE UNIQUE INDEX prices_key ON prices (coalesce(account_id, 0), prefix);
)sql"},
    // Issue 5: MAIL commands per second per account; 0 is unlimited.
    {3, R"sql(
ALTER TABLE accounts ADD COLUMN max_messages_per_second INTEGER NOT NULL DEFAULT 0
  CHECK (max_messages_per_second BETWEEN 0 AND 1000000);
)sql"},
    // Issue 13: the quoted-reply cut and the Subject as the text of an empty
    // body, on by default; strip_signature's old default (off) was the
    // defect, and a row cannot tell "never set" from "set to no", so every
    // existing account gets the new default (logged: migration_notes).
    // Column defaults cannot change without rebuilding the table: the
    // store always writes strip_signature, so its DEFAULT 0 is never used.
    {4, R"sql(
ALTER TABLE accounts ADD COLUMN strip_quoted_reply INTEGER NOT NULL DEFAULT 1 CHECK (strip_quoted_reply IN (0, 1));
ALTER TABLE accounts ADD COLUMN subject_as_text INTEGER NOT NULL DEFAULT 1 CHECK (subject_as_text IN (0, 1));
UPDATE accounts SET strip_signature = 1 WHERE strip_signature = 0;
)sql"},
    // Issue 17: relay accounts (PROTOCOL.md 5a). One row per account that
    // relays; the lists are comma-separated canonical text (relay.cc).
    {5, R"sql(
CREATE TABLE relays (
  account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
  networks   TEXT NOT NULL DEFAULT '',
  domains    TEXT NOT NULL DEFAULT ''
);
)sql"},
};

// What a migration changed that an operator should hear of, counted inside
// its transaction before it runs; empty when nothing is worth a line.
std::string migration_note(int version, std::int64_t counted) {
  if (version != 4 || counted == 0) return {};
  return "schema 4: strip_signature turned on for " + std::to_string(counted) +
         " account(s) (the new default; `postino-ctl account set NAME --strip-signature no` keeps a "
         "signature); strip_quoted_reply and subject_as_text added, on";
}

const char* migration_count_sql(int version) {
  return version == 4 ? "SELECT count(*) FROM accounts WHERE strip_signature = 0" : nullptr;
}

constexpr int latest_version = migrations[std::size(migrations) - 1].version;

constexpr const char* account_columns =
    "id, username, password_hash, status, default_originator, allowed_originators, "
    "max_recipients, default_country, unit_price, credit, credential_generation, "
    "content_mode, max_segments, subject_prefix, strip_signature, transliterate, mms_enabled, "
    "max_mms_bytes, mms_price, max_messages_per_second, strip_quoted_reply, subject_as_text";

enum stmt_id : std::size_t {
  s_by_username,
  s_by_id,
  s_list,
  s_insert,
  s_set_password,
  s_set_status,
  s_get_credit,
  s_set_credit,
  s_update,
  s_prices_for,
  s_prices_of,
  s_price_set,
  s_price_delete,
  s_begin,
  s_commit,
  s_rollback,
  s_count
};

std::string select_sql(const char* where) {
  return std::string("SELECT ") + account_columns + " FROM accounts " + where;
}

const char* status_text(account_status s) {
  return s == account_status::active ? "active" : "suspended";
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = text.substr(0, comma);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::string column_text(sqlite3_stmt* s, int col) {
  auto* p = sqlite3_column_text(s, col);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p),
                                                    sqlite3_column_bytes(s, col));
}

stored_account read_row(sqlite3_stmt* s) {
  stored_account a;
  a.settings.id = static_cast<account_id>(sqlite3_column_int64(s, 0));
  a.settings.username = column_text(s, 1);
  a.password_hash = column_text(s, 2);
  // Anything but 'active' is treated as suspended: fail closed.
  a.settings.status =
      column_text(s, 3) == "active" ? account_status::active : account_status::suspended;
  a.settings.default_originator = column_text(s, 4);
  a.settings.allowed_originators = split(column_text(s, 5));
  a.settings.max_recipients = static_cast<std::uint32_t>(sqlite3_column_int64(s, 6));
  a.settings.default_country = column_text(s, 7);
  a.settings.unit_price = sqlite3_column_int64(s, 8);
  a.credit_checkpoint = sqlite3_column_int64(s, 9);
  a.credential_generation = static_cast<std::uint64_t>(sqlite3_column_int64(s, 10));
  a.settings.content = parse_content_mode(column_text(s, 11)).value_or(content_mode::automatic);
  a.settings.max_segments = static_cast<std::uint32_t>(sqlite3_column_int64(s, 12));
  a.settings.subject_prefix = sqlite3_column_int64(s, 13) != 0;
  a.settings.strip_signature = sqlite3_column_int64(s, 14) != 0;
  a.settings.transliterate = sqlite3_column_int64(s, 15) != 0;
  a.settings.mms_enabled = sqlite3_column_int64(s, 16) != 0;
  a.settings.max_mms_bytes = static_cast<std::uint64_t>(sqlite3_column_int64(s, 17));
  a.settings.mms_price = sqlite3_column_int64(s, 18);
  a.settings.max_messages_per_second = static_cast<std::uint32_t>(sqlite3_column_int64(s, 19));
  a.settings.strip_quoted_reply = sqlite3_column_int64(s, 20) != 0;
  a.settings.subject_as_text = sqlite3_column_int64(s, 21) != 0;
  return a;
}

// Resets a cached statement however the call that used it returns.
class stmt_use {
 public:
  explicit stmt_use(sqlite3_stmt* s) : s_(s) {}
  ~stmt_use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  stmt_use(const stmt_use&) = delete;
  stmt_use& operator=(const stmt_use&) = delete;
  sqlite3_stmt* get() const { return s_; }
  void text(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void int64(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }

 private:
  sqlite3_stmt* s_;
};

// The settings of what an account may send, columns first..first+4 of both
// the INSERT and the UPDATE.
void bind_sending_settings(stmt_use& s, int first, const account_settings& a) {
  s.text(first, a.default_originator);
  s.text(first + 1, join(a.allowed_originators, ","));
  s.int64(first + 2, a.max_recipients);
  s.text(first + 3, a.default_country);
  s.int64(first + 4, a.unit_price);
}

void bind_content_settings(stmt_use& s, int first, const account_settings& a) {
  s.text(first, content_mode_name(a.content));
  s.int64(first + 1, a.max_segments);
  s.int64(first + 2, a.subject_prefix ? 1 : 0);
  s.int64(first + 3, a.strip_signature ? 1 : 0);
  s.int64(first + 4, a.transliterate ? 1 : 0);
  s.int64(first + 5, a.mms_enabled ? 1 : 0);
  s.int64(first + 6, static_cast<std::int64_t>(a.max_mms_bytes));
  s.int64(first + 7, a.mms_price);
  s.int64(first + 8, a.max_messages_per_second);
  s.int64(first + 9, a.strip_quoted_reply ? 1 : 0);
  s.int64(first + 10, a.subject_as_text ? 1 : 0);
}

// Usernames arrive in SMTP AUTH: bytes, but no control characters, and the
// '\0' of AUTH PLAIN and of the credential cache key can never be part of one.
bool valid_username(std::string_view u) {
  if (u.empty() || u.size() > 255) return false;
  for (unsigned char c : u)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

bool valid_originator_list(const std::vector<std::string>& list) {
  for (const auto& o : list)
    if (o.empty() || o.find(',') != std::string::npos) return false;
  return true;
}

// What is wrong with the sending settings, or null; add() says which,
// update_settings() only that they are invalid.
const char* sending_settings_problem(const account_settings& s) {
  if (s.unit_price < 0) return "unit price must not be negative";
  if (s.max_recipients == 0) return "max recipients must be at least 1";
  if (s.default_originator.find(',') != std::string::npos || !valid_originator_list(s.allowed_originators))
    return "originators must be non-empty and contain no comma";
  return nullptr;
}

// The content settings the schema's CHECKs also enforce, checked first so
// the caller gets a sentence rather than "CHECK constraint failed".
const char* content_settings_problem(const account_settings& s) {
  if (s.max_segments < 1 || s.max_segments > 255) return "max segments must be 1 to 255";
  if (s.mms_price < 0) return "MMS price must not be negative";
  if (s.max_mms_bytes == 0 || s.max_mms_bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return "max MMS bytes must be positive";
  if (s.max_messages_per_second > 1000000) return "max messages per second must be 0 to 1000000";
  return nullptr;
}

bool valid_prefix(std::string_view p) {
  if (p.empty() || p.size() > 15) return false;
  for (char c : p)
    if (c < '0' || c > '9') return false;
  return true;
}

// Rows of (prefix, price, is_global) in precedence order.
std::vector<price_rule> read_prices(sqlite3_stmt* s, int& rc) {
  std::vector<price_rule> out;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    out.push_back({column_text(s, 0), sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2) != 0});
  return out;
}

}  // namespace

struct account_store::impl {
  sqlite3* db = nullptr;
  std::string path;
  std::string last_error;
  std::array<sqlite3_stmt*, s_count> stmts{};
  std::vector<std::string> notes;  // what this connection's migrations changed
  std::string pending_note;        // the running migration's, until it commits

  ~impl() {
    for (auto* s : stmts) sqlite3_finalize(s);
    if (db != nullptr) sqlite3_close_v2(db);
  }

  bool fail(const std::string& what) {
    last_error = what + ": " + sqlite3_errmsg(db);
    return false;
  }

  bool exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      last_error = msg != nullptr ? msg : sqlite3_errmsg(db);
      sqlite3_free(msg);
      return false;
    }
    return true;
  }

  // Runs a statement that returns at most one integer; nullopt on error.
  std::optional<std::int64_t> query_int(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
      fail(sql);
      return std::nullopt;
    }
    std::optional<std::int64_t> out;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
      out = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
      out = 0;
    else
      fail(sql);
    sqlite3_finalize(s);
    return out;
  }

  std::optional<int> current_version() {
    auto exists = query_int(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'");
    if (!exists) return std::nullopt;
    if (*exists == 0) return 0;
    auto v = query_int("SELECT coalesce(max(version), 0) FROM schema_version");
    if (!v) return std::nullopt;
    return static_cast<int>(*v);
  }

  bool migrate() {
    auto version = current_version();
    if (!version) return false;
    if (*version > latest_version) {
      last_error = "database schema version " + std::to_string(*version) +
                   " is newer than this program knows (" + std::to_string(latest_version) + ")";
      return false;
    }
    if (*version == latest_version) return true;  // the common case writes nothing
    for (const auto& m : migrations) {
      if (!exec("BEGIN IMMEDIATE")) return false;
      // Re-read inside the write lock: another process may have migrated.
      bool ok = exec(
          "CREATE TABLE IF NOT EXISTS schema_version ("
          " version INTEGER PRIMARY KEY,"
          " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')))");
      auto now = ok ? current_version() : std::nullopt;
      ok = ok && now.has_value();
      if (ok && *now < m.version) {
        std::optional<std::int64_t> counted = 0;
        if (const char* count = migration_count_sql(m.version)) counted = query_int(count);
        ok = counted.has_value() && exec(m.sql) &&
             exec(("INSERT INTO schema_version (version) VALUES (" + std::to_string(m.version) +
                   ")").c_str());
        if (!ok) last_error = "migration " + std::to_string(m.version) + ": " + last_error;
        if (ok) pending_note = migration_note(m.version, counted.value_or(0));
      }
      if (!ok) {
        std::string saved = last_error;
        exec("ROLLBACK");
        last_error = saved;
        return false;
      }
      if (!exec("COMMIT")) return false;
      if (!pending_note.empty()) notes.push_back(std::move(pending_note));
      pending_note.clear();
    }
    return true;
  }

  bool prepare_all() {
    const std::string sqls[s_count] = {
        select_sql("WHERE username = ?1"),
        select_sql("WHERE id = ?1"),
        select_sql("ORDER BY id"),
        "INSERT INTO accounts (username, password_hash, status, default_originator, "
        "allowed_originators, max_recipients, default_country, unit_price, credit, content_mode, "
        "max_segments, subject_prefix, strip_signature, transliterate, mms_enabled, max_mms_bytes, "
        "mms_price, max_messages_per_second, strip_quoted_reply, subject_as_text) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        "UPDATE accounts SET password_hash = ?1, "
        "credential_generation = credential_generation + 1 WHERE id = ?2",
        // Any change of status drops cached credentials: suspend must stop
        // cached logins, and resume must not leave 'suspended' snapshots.
        "UPDATE accounts SET credential_generation = credential_generation + (status <> ?1), "
        "status = ?1 WHERE id = ?2",
        "SELECT credit FROM accounts WHERE id = ?1",
        "UPDATE accounts SET credit = ?1 WHERE id = ?2",
        "UPDATE accounts SET "
        "credential_generation = credential_generation + (username <> ?1 OR status <> ?2), "
        "username = ?1, status = ?2, default_originator = ?3, allowed_originators = ?4, "
        "max_recipients = ?5, default_country = ?6, unit_price = ?7, content_mode = ?9, "
        "max_segments = ?10, subject_prefix = ?11, strip_signature = ?12, transliterate = ?13, "
        "mms_enabled = ?14, max_mms_bytes = ?15, mms_price = ?16, max_messages_per_second = ?17, "
        "strip_quoted_reply = ?18, subject_as_text = ?19 "
        "WHERE id = ?8",
        // The account's rules, then the global ones; longest prefix first.
        "SELECT prefix, price, account_id IS NULL FROM prices WHERE account_id = ?1 OR account_id IS NULL "
        "ORDER BY account_id IS NULL, length(prefix) DESC, prefix",
        // One table only (?1 NULL: the global one), for listing.
        "SELECT prefix, price, account_id IS NULL FROM prices WHERE account_id IS ?1 ORDER BY prefix",
        "INSERT INTO prices (account_id, prefix, price) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (coalesce(account_id, 0), prefix) DO UPDATE SET price = excluded.price",
        "DELETE FROM prices WHERE account_id IS ?1 AND prefix = ?2",
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
    };
    for (std::size_t i = 0; i < s_count; ++i) {
      if (sqlite3_prepare_v3(db, sqls[i].c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmts[i],
                             nullptr) != SQLITE_OK)
        return fail("preparing \"" + sqls[i] + "\"");
    }
    return true;
  }

  bool step_done(stmt_use& s, const char* what) {
    int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) return fail(what);
    last_error.clear();
    return true;
  }

  // The account's resolved price table; false when the database failed.
  bool attach_prices(stored_account& a) {
    stmt_use s(stmts[s_prices_for]);
    s.int64(1, static_cast<std::int64_t>(a.settings.id));
    int rc = SQLITE_DONE;
    auto rules = read_prices(s.get(), rc);
    if (rc != SQLITE_DONE) return fail("reading the price table");
    if (!rules.empty()) a.settings.prices = std::make_shared<const price_table>(std::move(rules));
    return true;
  }

  std::optional<stored_account> find_one(stmt_use& s) {
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
      stored_account a = read_row(s.get());
      sqlite3_reset(s.get());
      if (!attach_prices(a)) return std::nullopt;
      last_error.clear();
      return a;
    }
    if (rc == SQLITE_DONE)
      last_error.clear();
    else
      fail("account look-up");
    return std::nullopt;
  }

  void run(stmt_id id) {
    stmt_use s(stmts[id]);
    sqlite3_step(s.get());
  }
};

account_store::account_store(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
account_store::~account_store() = default;

namespace {

// "PRAGMA journal_mode = WAL", the mode it reports. Switching a new file to
// WAL takes an exclusive lock that SQLite's busy handler does not wait for,
// so connections opened at the same moment (the gateway's auth workers at
// start-up) retry for a while instead of failing.
std::string enable_wal(sqlite3* db, std::string& error) {
  for (int attempt = 0;; ++attempt) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, nullptr);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    std::string mode;
    if (rc == SQLITE_ROW) mode = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    else error = sqlite3_errmsg(db);
    sqlite3_finalize(s);
    if (rc == SQLITE_ROW || (rc & 0xff) != SQLITE_BUSY || attempt == 200) return mode;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

std::unique_ptr<account_store> account_store::open(const std::string& path, std::string& error) {
  auto p = std::make_unique<impl>();
  p->path = path;
  // The file holds password hashes: create it private. SQLite gives its -wal
  // and -shm files the database's permissions.
  if (!path.empty() && path != ":memory:" && !path.starts_with("file:")) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
  }
  int rc = sqlite3_open_v2(path.c_str(), &p->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    error = "cannot open database " + path + ": " +
            (p->db != nullptr ? sqlite3_errmsg(p->db) : sqlite3_errstr(rc));
    return nullptr;
  }
  sqlite3_extended_result_codes(p->db, 1);
  // A gateway checkpoint and a postino-ctl read may meet; wait, don't fail.
  sqlite3_busy_timeout(p->db, 5000);

  auto bad = [&](const std::string& what) {
    error = "database " + path + ": " + what + ": " + p->last_error;
    return nullptr;
  };
  const std::string mode = enable_wal(p->db, p->last_error);
  if (mode != "wal" && !(path == ":memory:" && mode == "memory")) {
    if (!mode.empty()) p->last_error = "journal_mode is '" + mode + "'";
    return bad("cannot enable WAL mode");
  }
  if (!p->exec("PRAGMA synchronous = FULL") || !p->exec("PRAGMA foreign_keys = ON"))
    return bad("setting pragmas");
  if (!p->migrate()) return bad("schema migration failed");
  if (!p->prepare_all()) return bad("preparing statements");
  p->last_error.clear();
  return std::unique_ptr<account_store>(new account_store(std::move(p)));
}

const std::string& account_store::last_error() const { return impl_->last_error; }

std::optional<stored_account> account_store::find_by_username(std::string_view username) {
  stmt_use s(impl_->stmts[s_by_username]);
  s.text(1, username);
  return impl_->find_one(s);
}

std::optional<stored_account> account_store::find_by_id(account_id id) {
  if (id > static_cast<account_id>(std::numeric_limits<std::int64_t>::max())) {
    impl_->last_error.clear();
    return std::nullopt;
  }
  stmt_use s(impl_->stmts[s_by_id]);
  s.int64(1, static_cast<std::int64_t>(id));
  return impl_->find_one(s);
}

std::vector<stored_account> account_store::list() {
  std::vector<stored_account> out;
  stmt_use s(impl_->stmts[s_list]);
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(read_row(s.get()));
  if (rc != SQLITE_DONE)
    impl_->fail("listing accounts");
  else
    impl_->last_error.clear();
  return out;
}

account_id account_store::add(const account_settings& settings, std::string_view password,
                              credit_units credit, std::string& error) {
  auto refuse = [&](std::string why) {
    error = std::move(why);
    impl_->last_error = error;
    return account_id{0};
  };
  if (!valid_username(settings.username))
    return refuse("invalid username (1 to 255 bytes, no control characters)");
  if (password.empty()) return refuse("the password must not be empty");
  if (credit < 0 || credit > max_balance)
    return refuse("initial credit must be 0 to " + std::to_string(max_balance) + " (the maximum balance)");
  if (const char* problem = sending_settings_problem(settings)) return refuse(problem);
  if (const char* problem = content_settings_problem(settings)) return refuse(problem);

  std::string hash;
  try {
    hash = hash_password(password);
  } catch (const std::exception& e) {
    return refuse(e.what());
  }
  stmt_use s(impl_->stmts[s_insert]);
  s.text(1, settings.username);
  s.text(2, hash);
  s.text(3, status_text(settings.status));
  bind_sending_settings(s, 4, settings);
  s.int64(9, credit);
  bind_content_settings(s, 10, settings);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_CONSTRAINT_UNIQUE)
    return refuse("account '" + settings.username + "' already exists");
  if (rc != SQLITE_DONE) {
    impl_->fail("adding account '" + settings.username + "'");
    return refuse(impl_->last_error);
  }
  impl_->last_error.clear();
  return static_cast<account_id>(sqlite3_last_insert_rowid(impl_->db));
}

bool account_store::set_password(account_id id, std::string_view password) {
  if (password.empty()) {
    impl_->last_error = "the password must not be empty";
    return false;
  }
  std::string hash;
  try {
    hash = hash_password(password);
  } catch (const std::exception& e) {
    impl_->last_error = e.what();
    return false;
  }
  stmt_use s(impl_->stmts[s_set_password]);
  s.text(1, hash);
  s.int64(2, static_cast<std::int64_t>(id));
  return impl_->step_done(s, "setting password") && sqlite3_changes(impl_->db) == 1;
}

bool account_store::set_status(account_id id, account_status status) {
  stmt_use s(impl_->stmts[s_set_status]);
  s.text(1, status_text(status));
  s.int64(2, static_cast<std::int64_t>(id));
  return impl_->step_done(s, "setting status") && sqlite3_changes(impl_->db) == 1;
}

// Read, check and write in one IMMEDIATE transaction: the column must stay
// within 0..max_balance, which SQLite's own arithmetic would not guarantee
// (it turns an overflowing sum into a REAL). The column is not the whole
// balance (the checkpoint and the journals add to it), so a balance may
// still end up past the maximum; start-up cuts it and says so.
bool account_store::add_credit(account_id id, credit_units amount) {
  {
    stmt_use begin(impl_->stmts[s_begin]);
    if (!impl_->step_done(begin, "beginning credit transaction")) return false;
  }
  bool ok = false;
  {
    stmt_use get(impl_->stmts[s_get_credit]);
    get.int64(1, static_cast<std::int64_t>(id));
    int rc = sqlite3_step(get.get());
    credit_units balance = 0;
    if (rc == SQLITE_ROW) {
      const credit_units before = sqlite3_column_int64(get.get(), 0);
      if (__builtin_add_overflow(before, amount, &balance) || balance < 0 || balance > max_balance) {
        impl_->last_error = "the credit " + std::to_string(before) + (amount < 0 ? " minus " : " plus ") +
                            (amount < 0 ? std::to_string(amount).substr(1) : std::to_string(amount)) +
                            " would leave the range 0.." + std::to_string(max_balance) + " (the maximum balance)";
      } else {
        stmt_use set(impl_->stmts[s_set_credit]);
        set.int64(1, balance);
        set.int64(2, static_cast<std::int64_t>(id));
        ok = impl_->step_done(set, "updating credit");
      }
    } else if (rc == SQLITE_DONE) {
      impl_->last_error = "no account with id " + std::to_string(id);
    } else {
      impl_->fail("reading credit");
    }
  }
  if (ok) {
    stmt_use commit(impl_->stmts[s_commit]);
    if (impl_->step_done(commit, "committing credit")) return true;
  }
  std::string saved = impl_->last_error;
  impl_->run(s_rollback);
  impl_->last_error = saved;
  return false;
}

bool account_store::update_settings(const account_settings& settings) {
  if (!valid_username(settings.username)) {
    impl_->last_error = "invalid username";
    return false;
  }
  if (sending_settings_problem(settings)) {
    impl_->last_error = "invalid account settings";
    return false;
  }
  if (const char* problem = content_settings_problem(settings)) {
    impl_->last_error = problem;
    return false;
  }
  stmt_use s(impl_->stmts[s_update]);
  s.text(1, settings.username);
  s.text(2, status_text(settings.status));
  bind_sending_settings(s, 3, settings);
  s.int64(8, static_cast<std::int64_t>(settings.id));
  bind_content_settings(s, 9, settings);
  return impl_->step_done(s, "updating account settings") && sqlite3_changes(impl_->db) == 1;
}

namespace {
// Binds the account id of a price table: 0 means the global one (NULL).
void bind_table(stmt_use& s, int i, account_id account) {
  if (account == 0) sqlite3_bind_null(s.get(), i);
  else s.int64(i, static_cast<std::int64_t>(account));
}
}  // namespace

bool account_store::set_price(account_id account, std::string_view prefix, credit_units price) {
  if (!valid_prefix(prefix)) {
    impl_->last_error = "a prefix is 1 to 15 digits (the E.164 number's start, without '+')";
    return false;
  }
  if (price < 0) {
    impl_->last_error = "a price must not be negative";
    return false;
  }
  stmt_use s(impl_->stmts[s_price_set]);
  bind_table(s, 1, account);
  s.text(2, prefix);
  s.int64(3, price);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
    impl_->last_error = "no account with id " + std::to_string(account);
    return false;
  }
  if (rc != SQLITE_DONE) return impl_->fail("setting a price");
  impl_->last_error.clear();
  return true;
}

bool account_store::delete_price(account_id account, std::string_view prefix) {
  stmt_use s(impl_->stmts[s_price_delete]);
  bind_table(s, 1, account);
  s.text(2, prefix);
  return impl_->step_done(s, "deleting a price") && sqlite3_changes(impl_->db) == 1;
}

std::vector<price_rule> account_store::list_prices(account_id account) {
  stmt_use s(impl_->stmts[s_prices_of]);
  bind_table(s, 1, account);
  int rc = SQLITE_DONE;
  auto rules = read_prices(s.get(), rc);
  if (rc != SQLITE_DONE) impl_->fail("listing prices");
  else impl_->last_error.clear();
  return rules;
}

const std::vector<std::string>& account_store::migration_notes() const { return impl_->notes; }

int account_store::schema_version() {
  auto v = impl_->current_version();
  return v ? *v : -1;
}

// ------------------------------------------------------------ relay rules
// Rare (postino-ctl, the relay poller): statements prepared per call.

namespace {
struct prepared {
  sqlite3_stmt* s = nullptr;
  ~prepared() { sqlite3_finalize(s); }
};
}  // namespace

bool account_store::set_relay(account_id id, const std::vector<std::string>& networks,
                              const std::vector<std::string>& domains) {
  const bool remove = networks.empty() && domains.empty();
  prepared p;
  const char* sql = remove ? "DELETE FROM relays WHERE account_id = ?1"
                           : "INSERT INTO relays (account_id, networks, domains) VALUES (?1, ?2, ?3) "
                             "ON CONFLICT (account_id) DO UPDATE SET networks = ?2, domains = ?3";
  if (sqlite3_prepare_v2(impl_->db, sql, -1, &p.s, nullptr) != SQLITE_OK) return impl_->fail("setting a relay rule");
  stmt_use s(p.s);
  s.int64(1, static_cast<std::int64_t>(id));
  if (!remove) {
    s.text(2, join(networks, ","));
    s.text(3, join(domains, ","));
  }
  const int rc = sqlite3_step(p.s);
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
    impl_->last_error = "no account with id " + std::to_string(id);
    return false;
  }
  if (rc != SQLITE_DONE) return impl_->fail("setting a relay rule");
  impl_->last_error.clear();
  return true;
}

std::vector<relay_rule> account_store::list_relays() {
  std::vector<relay_rule> out;
  prepared p;
  if (sqlite3_prepare_v2(impl_->db, "SELECT account_id, networks, domains FROM relays ORDER BY account_id", -1, &p.s,
                         nullptr) != SQLITE_OK) {
    impl_->fail("listing relay rules");
    return out;
  }
  int rc = SQLITE_DONE;
  while ((rc = sqlite3_step(p.s)) == SQLITE_ROW)
    out.push_back({static_cast<account_id>(sqlite3_column_int64(p.s, 0)), split(column_text(p.s, 1)),
                   split(column_text(p.s, 2))});
  if (rc != SQLITE_DONE) impl_->fail("listing relay rules");
  else impl_->last_error.clear();
  return out;
}

std::optional<relay_rule> account_store::relay_of(account_id id) {
  auto all = list_relays();
  if (!impl_->last_error.empty()) return std::nullopt;
  for (relay_rule& r : all)
    if (r.account == id) return std::move(r);
  return relay_rule{id, {}, {}};
}

std::optional<std::int64_t> account_store::data_version() { return impl_->query_int("PRAGMA data_version"); }

}  // namespace postino::credit
