// Accounts and credit. The account store is the SQLite database (postino.db):
// accounts, password hashes, settings, and the credit column (initial credit
// plus offline top-ups). Balances live in memory on each account's home shard
// (lease_authority) and are spent through per-shard leases (lease_wallet);
// the journal is the truth and checkpoint_store its periodic fold in SQLite.
// Passwords are Argon2id, verified on a small worker pool so shard threads never hash.
// Every object here is owned by one thread at a time except hash_pool, which
// is built for handing work across threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "postino/account.h"
#include "postino/message.h"
#include "postino/message_state.h"
#include "postino/network.h"

namespace postino::credit {

struct stored_account {
  account_settings settings;
  std::string password_hash;        // Argon2id encoded string
  credit_units credit_checkpoint = 0;
  std::uint64_t credential_generation = 0;  // bumped on password change / suspend
};

// An account's relay rule (PROTOCOL.md 5a, auth = "relay" listeners): the
// client networks (CIDR, IPv4 or IPv6, canonical text) and envelope-sender
// domains (lower case) it relays for without AUTH. Both must match.
struct relay_rule {
  account_id account = 0;
  std::vector<std::string> networks;
  std::vector<std::string> domains;
};

// The SQLite account store. One connection per object; not thread-safe, so
// each worker thread opens its own. The schema carries a version and migrates
// forward on open.
class account_store {
 public:
  // Opens or creates the database. `error` names what failed.
  static std::unique_ptr<account_store> open(const std::string& path, std::string& error);
  ~account_store();

  std::optional<stored_account> find_by_username(std::string_view username);
  std::optional<stored_account> find_by_id(account_id id);
  std::vector<stored_account> list();

  // Returns the new id; `error` set and 0 returned when the username exists.
  account_id add(const account_settings& settings, std::string_view password,
                 credit_units credit, std::string& error);
  bool set_password(account_id id, std::string_view password);
  bool set_status(account_id id, account_status status);
  // An offline top-up (or, negative, a correction) of the credit column:
  // refused, with last_error() saying why, when the column would leave
  // 0..max_balance. `add` refuses an initial credit outside that range too.
  bool add_credit(account_id id, credit_units amount);
  bool update_settings(const account_settings& settings);

  // Destination price tables (issue 4). `account` 0 is the global table.
  // A prefix is 1 to 15 digits (the E.164 number without '+'). set_price
  // adds or replaces; delete_price is false with an empty last_error() when
  // there was no such rule; list_prices gives one table, by prefix. The
  // tables reach sessions through find_by_*: settings.prices.
  bool set_price(account_id account, std::string_view prefix, credit_units price);
  bool delete_price(account_id account, std::string_view prefix);
  std::vector<price_rule> list_prices(account_id account);

  // Relay rules (relay.cc checks and canonicalizes the lists first; both
  // empty removes the rule). relay_of is an empty rule when none is set.
  bool set_relay(account_id id, const std::vector<std::string>& networks, const std::vector<std::string>& domains);
  std::optional<relay_rule> relay_of(account_id id);
  std::vector<relay_rule> list_relays();
  // SQLite's PRAGMA data_version: changes when another connection commits,
  // so a poller reloads only after a change; nullopt on error.
  std::optional<std::int64_t> data_version();

  int schema_version();
  // One line per change this connection's migrations made to existing rows
  // that an operator should hear of (migration 4: strip_signature turned on),
  // for the opener to log; a migration runs once, so the line is logged once.
  const std::vector<std::string>& migration_notes() const;
  // Why the last call failed (SQLite's text, or the refused value); empty
  // after a success, so a nullopt from find_* with an empty error means
  // "no such account" rather than "the database failed".
  const std::string& last_error() const;

 private:
  struct impl;
  explicit account_store(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

// Argon2id, encoded form ("$argon2id$v=19$m=...,t=...,p=...$salt$hash").
std::string hash_password(std::string_view password);
bool verify_password(std::string_view encoded, std::string_view password);

// A relay rule's networks (core/network.h: CIDR, a bare address is a /32 or
// /128, host bits must be zero).
using core::ip_network;
using core::network_contains;
using core::network_text;
using core::parse_network;
// Canonical forms of a relay rule's lists, or false with `why` naming the
// first bad item.
bool canonical_networks(const std::vector<std::string>& in, std::vector<std::string>& out, std::string& why);
bool canonical_domains(const std::vector<std::string>& in, std::vector<std::string>& out, std::string& why);

// Every relay rule with its account's settings, built off the shards (from
// their own store connection) and shared immutably by them: a relay MAIL is
// a look-up in memory, never SQLite on a shard's thread.
class relay_directory {
 public:
  static std::shared_ptr<const relay_directory> load(account_store& store, std::string& error);
  // The account that relays for (ip, domain): the longest matching network
  // wins, then the lowest id; null when none does. Domains compare
  // case-insensitively and exactly (no subdomains).
  const account_settings* find(std::string_view ip, std::string_view domain) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct entry {
    std::vector<ip_network> networks;
    std::vector<std::string> domains;
    account_settings account;
  };
  std::vector<entry> entries_;
};

// A holder of the database lock: the gateway takes it for its lifetime;
// postino-ctl refuses to write the database while another process holds it.
class database_lock {
 public:
  database_lock() = default;
  database_lock(const database_lock&) = delete;
  database_lock& operator=(const database_lock&) = delete;
  // Tries to take the lock on `db_path` + ".lock"; false if another holds it.
  bool try_acquire(const std::string& db_path);
  bool held() const { return fd_ >= 0; }
  ~database_lock();

 private:
  int fd_ = -1;
};

// A bounded queue of jobs run on a few worker threads (Argon2id verification
// and the store look-up that goes with it). submit() returns false when the
// queue is full: the caller answers 454 4.7.0 instead of queueing unboundedly.
class hash_pool {
 public:
  hash_pool(unsigned threads, std::size_t max_queued);
  ~hash_pool();
  bool submit(std::function<void()> job);

 private:
  void run();
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t max_queued_;
  bool stopping_ = false;
};

// Failed AUTH per source address (PROTOCOL.md section 5: 30 a minute by
// default, across shards, no address exempt). The home shard of an address
// (auth_home_shard) keeps its bucket: `per_minute` tokens, refilled evenly
// over a minute; a check may start only while fewer checks of that address
// are under way than whole tokens are left, and each one that fails takes a
// token. So no address gets more password checks (Argon2id) than its
// failures allow, however many connections it opens at once. Pure,
// single-threaded: the gateway carries the calls through the mailboxes.
class auth_limiter {
 public:
  explicit auth_limiter(std::uint32_t per_minute) : per_minute_(per_minute == 0 ? 1 : per_minute) {}
  // True: a check may run (it is now under way); false: over the limit.
  bool try_begin(const std::string& address, std::uint64_t now_ms);
  // A check begun with try_begin is over; `failed`: the credentials were wrong.
  void end(const std::string& address, bool failed, std::uint64_t now_ms);
  // True once per stretch of refusals, for one log line per address.
  bool first_refusal(const std::string& address);
  std::size_t tracked() const { return buckets_.size(); }

 private:
  struct bucket {
    double tokens = 0;
    std::uint64_t refilled_ms = 0;
    std::uint32_t under_way = 0;
    bool refusing = false;  // a refusal was logged and no check began since
  };
  bucket& refill(const std::string& address, std::uint64_t now_ms);
  void forget_idle(std::uint64_t now_ms);

  std::uint32_t per_minute_;
  std::unordered_map<std::string, bucket> buckets_;
};

// The shard whose auth_limiter keeps `address` (FNV-1a: the same on every
// shard and every start).
unsigned auth_home_shard(std::string_view address, unsigned shards);

// A shard's cache of verified credentials. The key is a keyed hash of
// (username, password) under a per-process random secret, so a wrong
// password never matches and the cache never holds a password.
class credential_cache {
 public:
  using key = std::string;  // 32 raw bytes
  static key make_key(std::string_view username, std::string_view password);

  const account_settings* find(const key& k) const;
  void insert(const key& k, const account_settings& account);
  // Password change or suspend: every entry of that account goes.
  void invalidate(account_id id);
  std::size_t size() const { return entries_.size(); }

 private:
  std::unordered_map<key, account_settings> entries_;
};

// ---------------------------------------------------------------------------
// The periodic checkpoint (src/credit/checkpoint.cc). A shard folds each of
// its durable journal records into a journal_delta; a background thread
// collects every shard's delta and writes them to SQLite in one transaction:
// per account the sum of journal effects folded so far, per shard the
// journal sequence folded up to, and one row per accepted message. Start-up
// is then: accounts.credit (initial credit plus offline top-ups, the store's
// column) + the checkpoint's delta + the records after each shard's position,
// summed in 128 bits and cut to 0..max_balance (resolve_start_balance below).
// Tables (created here with CREATE TABLE IF NOT EXISTS, beside the account
// store's own schema, which this file does not touch):
//   checkpoint_journal(shard PK, sequence, updated_ms)
//   checkpoint_balance(account PK, journal_delta, messages)
//   checkpoint_message(queue_id PK, account, shard, sequence, price,
//                      recipients, accepted_ms, state, mm4_message_id)
// The message table is the message index: queue id -> state, and for an
// MMS the MM4 message id (indexed, so an MM4 peer's id finds our queue id).
// `state` is 'queued' until delivery exists; final states are 'delivered',
// 'expired', 'undeliverable', 'rejected'.
// Delivery (issue 7) adds, also with CREATE TABLE IF NOT EXISTS:
//   checkpoint_delivery(queue_id, recipient_index, segment, recipient, state,
//                       smsc, smsc_message_id, error, refund, updated_ms;
//                       PK (queue_id, recipient_index, segment)): one row
//                       per segment once it was submitted or failed; a row
//                       never moves from a final state back to submitted
//   checkpoint_inbound(shard, sequence PK together, smsc, source,
//                      destination, text, received_ms)
// and checkpoint_message gains `recipient_list` (newline-separated E.164
// numbers) and `segments` columns, added to older databases when missing.
// What was sent (issue 13) adds, the same way: `originator`, `text` (the SMS
// text, or an MMS's text part; NULL once the retention sweep cleared it),
// `text_cleared` (1 after the sweep: "gone", not "never stored"),
// `data_coding`, `parts` (an MMS's leaf parts, "<type> <bytes>" per line)
// and `unit_prices` (newline-separated per-recipient segment prices, NULL
// when every recipient paid the same). The text is kept in the index only,
// never again in the journal, whose segments go once messages are final.
struct journal_delta {
  struct message {
    std::string queue_id;
    std::uint64_t sequence = 0;
    std::uint64_t accepted_ms = 0;
    // The accepted message (shared with delivery, never copied): account,
    // price, recipients in order (postino-ctl message show), segments, and
    // for an MMS its MM4 message id. Its body is not read.
    std::shared_ptr<const postino::message> accepted;
    // An MMS's parts as the index stores them ("<type> <bytes>" lines),
    // filled off the acknowledgement path (the checkpoint thread, or
    // start-up) from the body; empty for an SMS.
    std::string parts;
    // An MMS's MIME body, moved here when its record became durable (the
    // message itself drops it then) and kept only until the checkpoint
    // thread has listed its parts; empty otherwise.
    std::string mms_body;
  };
  // One segment's delivery state changed (issue 7): a submitted or
  // delivery_final record became durable on this shard's journal.
  struct delivery {
    std::string queue_id;
    std::uint32_t recipient_index = 0;
    std::uint32_t segment = 0;
    std::string recipient;        // E.164
    message_state state = message_state::submitted;
    std::string smsc;
    std::string smsc_message_id;
    std::uint32_t error = 0;
    credit_units refund = 0;
    std::uint64_t unix_ms = 0;
  };
  // A handset's message (an `inbound` record).
  struct inbound {
    std::uint64_t sequence = 0;   // the record's, on this shard's journal
    std::string smsc;
    std::string source;
    std::string destination;
    std::string text;
    std::uint64_t unix_ms = 0;
  };
  unsigned shard = 0;
  std::uint64_t sequence = 0;  // every durable record up to here is folded in
  std::unordered_map<account_id, credit_units> balance;  // credits minus debits
  std::unordered_map<account_id, std::uint64_t> messages;
  std::vector<message> accepted;
  std::vector<delivery> deliveries;
  std::vector<inbound> inbound_messages;

  // Start-up's replay: its messages' delivery rows may have been folded by
  // an earlier checkpoint (a delivering shard's delta can get there before
  // the accepting shard's), so each message's state is folded again.
  bool replayed = false;

  bool empty() const {
    return balance.empty() && accepted.empty() && deliveries.empty() && inbound_messages.empty();
  }
  // The one way each kind of durable journal record enters a delta, live
  // (the gateway, as each group becomes durable) and at start-up replay.
  // Balance sums saturate at the int64 limits rather than overflow (start-up
  // recomputes balances exactly anyway).
  void add_message(std::string queue_id, std::uint64_t sequence, std::uint64_t accepted_ms,
                   std::shared_ptr<const postino::message> accepted);
  void add_credit(account_id account, credit_units amount);
  // Appends a later delta of the same shard (a write that failed is retried
  // with what came after it). Balance sums saturate at the int64 limits
  // rather than overflow (start-up recomputes balances exactly anyway).
  void merge(journal_delta&& later);
};

// An account's checkpoint row set to a value rather than added to: start-up
// stores every balance it recomputed this way (exact even where the adds of
// old, saturated data would overflow), and with `credit_column` it also
// rewrites accounts.credit, in the same transaction, when that column was
// outside 0..max_balance.
struct balance_row {
  account_id account = 0;
  credit_units journal_delta = 0;
  std::optional<credit_units> credit_column;
};

// Start-up balances (checkpoint.cc). Data written before max_balance
// existed may hold values near the int64 limits (an accounts.credit column,
// a checkpoint row, journaled top-ups of 9223372036854775807), whose int64
// sum overflows; so the sum is taken in 128 bits, exactly, and then cut to
// 0..max_balance. The lease authority only ever sees the cut value.
using wide_credit = __int128;

struct start_balance {
  account_id account = 0;
  wide_credit found = 0;            // column + checkpoint delta + replayed effects
  credit_units balance = 0;         // found cut to 0..max_balance: the home shard's start
  credit_units column_found = 0;    // accounts.credit as stored
  credit_units credit_column = 0;   // column_found cut to 0..max_balance: what is kept
  credit_units journal_delta = 0;   // balance - credit_column: the checkpoint row to store
  bool balance_repaired() const { return found != balance; }
  bool column_repaired() const { return column_found != credit_column; }
  bool repaired() const { return balance_repaired() || column_repaired(); }
  balance_row row() const {
    return {account, journal_delta, column_repaired() ? std::optional<credit_units>(credit_column) : std::nullopt};
  }
};
start_balance resolve_start_balance(account_id id, credit_units credit_column, credit_units checkpoint_delta,
                                    wide_credit replayed);
// One line per cut value, for the log ("account 1 (demo): balance
// 18446744073709551614 is past the maximum 1000000000000000; using the
// maximum"); none when nothing was cut.
std::vector<std::string> describe_repairs(const start_balance& b, std::string_view username);
std::string to_string(wide_credit v);

class checkpoint_store {
 public:
  struct loaded {
    std::unordered_map<unsigned, std::uint64_t> sequence;   // per shard
    std::unordered_map<account_id, credit_units> balance;   // journal delta per account
    std::uint64_t messages_to_deliver = 0;                  // not in a final state
  };

  static std::unique_ptr<checkpoint_store> open(const std::string& path, std::string& error);
  ~checkpoint_store();
  checkpoint_store(const checkpoint_store&) = delete;
  checkpoint_store& operator=(const checkpoint_store&) = delete;

  // Stored values SQLite's own overflow turned into REALs load saturated
  // at the int64 limits.
  bool load(loaded& out, std::string& error);
  // One transaction for every delta, then the rows set to a value; on
  // failure nothing is written.
  bool write(const std::vector<journal_delta>& deltas, std::string& error) { return write(deltas, {}, error); }
  bool write(const std::vector<journal_delta>& deltas, const std::vector<balance_row>& rows, std::string& error);
  // Journal retention: each queue id's message in the index, as of the
  // last write. absent: not folded (yet); open: not in a final state.
  enum class indexed : std::uint8_t { absent, open, final };
  bool message_states(const std::vector<std::string>& queue_ids, std::vector<indexed>& out, std::string& error);
  // Start-up: every open message of the index with its segments' rows, so
  // delivery's recovery knows what a deleted journal segment told.
  struct delivery_row {
    std::uint32_t recipient_index = 0;
    std::uint32_t segment = 0;
    message_state state = message_state::submitted;
    std::string smsc;
    std::string smsc_message_id;
    std::uint64_t updated_ms = 0;
  };
  using open_messages = std::unordered_map<std::string, std::vector<delivery_row>>;
  bool load_open_messages(open_messages& out, std::string& error);

  // The text retention sweep: clears the text of at most `max_rows`
  // messages accepted before `accepted_before_ms` (oldest first; states and
  // the rest of the row stay). `cleared` says how many; fewer than
  // max_rows means none is left for now.
  bool clear_texts(std::uint64_t accepted_before_ms, unsigned max_rows, unsigned& cleared, std::string& error);

 private:
  struct impl;
  explicit checkpoint_store(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

// Which shard owns an account's balance.
inline unsigned home_shard(account_id id, unsigned shards) {
  return static_cast<unsigned>(id % shards);
}

// ---------------------------------------------------------------------------
// Credit leases (src/credit/lease.cc; DESIGN.md "Durability and credit").
// The home shard's lease_authority owns an account's balance and grants other
// shards (itself included) slices of it; every shard's lease_wallet debits
// within its slice with no lock and no atomic, reports durable debits back in
// batches, returns an idle slice, and gives it up when the home recalls it.
// Before any refusal the home recalls every other slice, so a refusal means
// the account as a whole cannot pay. Both classes are pure, single-threaded
// logic: they never send anything themselves but fill an outbox that the
// owner delivers through the shard mailboxes (per-pair FIFO order is all
// they rely on), so they are tested without threads.

// Shard -> home: credit for the head of the shard's wait queue.
struct lease_request {
  enum class kind : std::uint8_t {
    grant,  // a debit waits: add at least `need` to my lease
    check,  // a RCPT check waits: is `need` more than my lease available?
  };
  account_id account = 0;
  unsigned shard = 0;
  kind what = kind::grant;
  credit_units need = 0;  // what the waiter lacks beyond the asker's lease
  credit_units want = 0;  // grant only: what the recent spend rate asks for (>= need)
};

// Home -> shard: the answer to the shard's one outstanding request.
struct lease_answer {
  account_id account = 0;
  bool refused = false;       // `need` exceeds the account's unleased credit,
                              // after every other lease was recalled
  credit_units granted = 0;   // added to the asker's lease (grant requests)
  credit_units unleased = 0;  // the home's unleased credit when it answered
};

// Shard -> home: durable debits and returned credit, batched; also the
// answer to a recall (which carries the shard's outstanding need, if any,
// restated now that its lease is gone).
struct lease_report {
  account_id account = 0;
  unsigned shard = 0;
  credit_units spent = 0;       // durable debits since the last report
  credit_units returned = 0;    // unspent lease handed back
  std::uint64_t messages = 0;   // durable messages since the last report
  bool recall_answer = false;
  credit_units need = 0;        // recall answers: the pending request's need now
};

class lease_authority {
 public:
  struct outbox {
    std::vector<std::pair<unsigned, lease_answer>> answers;  // (to shard, answer)
    std::vector<std::pair<unsigned, account_id>> recalls;    // (to shard, account)
  };
  struct account_view {
    credit_units balance = 0;    // balance minus every reported debit
    credit_units leased = 0;     // granted and not yet reported spent or returned
    unsigned lease_holders = 0;  // shards holding some of it
    std::uint64_t messages = 0;  // durable messages reported since start
    bool recalling = false;
  };

  explicit lease_authority(unsigned shards) : shards_(shards == 0 ? 1 : shards) {}

  void set_balance(account_id id, credit_units balance);
  // A top-up or refund that is durable: it is unleased credit at once.
  // Returns what the balance actually gained: less than `amount` when the
  // maximum balance (or the credit leased out) cut it.
  credit_units credit(account_id id, credit_units amount, outbox& out);
  credit_units balance(account_id id) const;
  credit_units unleased(account_id id) const;
  account_view view(account_id id) const;

  void on_request(const lease_request& r, outbox& out);
  void on_report(const lease_report& r, outbox& out);

 private:
  struct account_state {
    credit_units balance = 0;
    credit_units leased = 0;
    std::vector<credit_units> granted;  // per shard
    std::uint64_t messages = 0;
    unsigned recalls_pending = 0;
    std::vector<lease_request> queued;  // requests that arrived during a recall
  };
  account_state& state(account_id id);
  void decide(account_state& a, const lease_request& r, bool after_recall, outbox& out);
  void answer(account_state& a, const lease_request& r, credit_units granted, bool refused,
              outbox& out);

  unsigned shards_;
  std::unordered_map<account_id, account_state> accounts_;
};

class lease_wallet {
 public:
  enum class use : std::uint8_t {
    check,  // RCPT: is `amount` available? Nothing is taken.
    debit,  // end of DATA: take `amount` (it stays in flight until settle())
  };
  struct waiter {
    void* token = nullptr;  // the owner's handle, returned in the result
    use kind = use::debit;
    credit_units amount = 0;
  };
  struct result {
    void* token = nullptr;
    use kind = use::debit;
    bool ok = false;
    credit_units amount = 0;
    credit_units available = 0;  // ok: at least amount; refused: the account's available credit
  };
  struct outbox {
    std::vector<lease_request> requests;  // to the account's home
    std::vector<lease_report> reports;    // to the account's home
    std::vector<result> results;          // to the waiters, in order
    bool empty() const { return requests.empty() && reports.empty() && results.empty(); }
  };
  struct tuning {
    std::uint64_t horizon_ms = 250;  // a grant aims to last this long at the recent rate
    std::uint64_t idle_ms = 1000;    // a lease unused this long goes home
  };

  explicit lease_wallet(unsigned shard) : lease_wallet(shard, tuning{}) {}
  lease_wallet(unsigned shard, tuning t) : shard_(shard), tuning_(t) {}

  // The per-message path. True when the lease answers at once (a debit is
  // then taken); false means the caller must wait().
  bool try_take(account_id id, use kind, credit_units amount, std::uint64_t now_ms,
                credit_units& available);
  // Queues a waiter (after try_take said no); its result comes from a later
  // on_answer/on_recall/settle, never from this call.
  void wait(account_id id, const waiter& w, std::uint64_t now_ms, outbox& out);
  void on_answer(const lease_answer& a, std::uint64_t now_ms, outbox& out);
  void on_recall(account_id id, outbox& out);
  // The journal's verdict on a debit taken earlier: durable debits are
  // reported home, failed ones go back into the lease.
  void settle(account_id id, credit_units amount, bool durable, std::uint64_t now_ms,
              outbox& out);
  // Reports of durable debits (cheap: only accounts that changed). Called at
  // the end of every batch, so a debit is reported before its 250 is sent.
  void flush(outbox& out);
  // Returns idle leases and ages the spend rates. Called from a timer.
  void tick(std::uint64_t now_ms, outbox& out);
  // Nothing leased, in flight, unreported or waiting: the timer may stop.
  bool idle() const { return accounts_.empty(); }

  credit_units lease(account_id id) const;
  credit_units in_flight(account_id id) const;

 private:
  struct account_state {
    credit_units lease = 0;
    credit_units in_flight = 0;
    credit_units spent = 0;            // durable, not yet reported
    std::uint64_t messages = 0;        // durable, not yet reported
    std::vector<waiter> waiting;       // FIFO; head first
    std::size_t head = 0;              // index of the head in `waiting`
    bool requesting = false;           // one request outstanding at a time
    void* asked_for = nullptr;         // the head waiter that request was for
    bool dirty = false;                // listed in dirty_
    std::uint64_t last_take_ms = 0;
    std::uint64_t last_request_ms = 0;
    credit_units taken_since_request = 0;
    double rate = 0;                   // units per second, smoothed
  };
  bool has_waiters(const account_state& a) const { return a.head < a.waiting.size(); }
  void serve(account_id id, account_state& a, std::uint64_t now_ms, outbox& out);
  void request(account_id id, account_state& a, std::uint64_t now_ms, outbox& out);
  void take(account_state& a, credit_units amount, std::uint64_t now_ms);
  void mark_dirty(account_id id, account_state& a);
  // The report of what `a` has not yet told its home (and, with_lease, the
  // unspent lease going back); those counters restart at zero.
  lease_report take_report(account_id id, account_state& a, bool with_lease);

  unsigned shard_;
  tuning tuning_;
  std::unordered_map<account_id, account_state> accounts_;
  std::vector<account_id> dirty_;
};

}  // namespace postino::credit
