// Accounts and credit. The account store is the SQLite database (postino.db):
// accounts, password hashes, settings, and the credit checkpoint column. The
// ledger is a home shard's in-memory table of balances (the journal is the
// truth; the column is only a checkpoint). Passwords are Argon2id, verified on
// a small worker pool so shard threads never hash. Every object here is owned
// by one thread at a time except hash_pool, which is built for handing work
// across threads.
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
#include <vector>

#include "postino/account.h"

namespace postino::credit {

struct stored_account {
  account_settings settings;
  std::string password_hash;        // Argon2id encoded string
  credit_units credit_checkpoint = 0;
  std::uint64_t credential_generation = 0;  // bumped on password change / suspend
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
  bool add_credit(account_id id, credit_units amount);
  bool update_settings(const account_settings& settings);

  int schema_version();
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

// A home shard's balances for the accounts it owns. Single-threaded.
class ledger {
 public:
  void set_balance(account_id id, credit_units balance);
  credit_units available(account_id id) const;  // 0 for unknown accounts
  // All or nothing: debits and returns true only when balance >= amount.
  bool try_debit(account_id id, credit_units amount);
  void credit(account_id id, credit_units amount);

 private:
  std::unordered_map<account_id, credit_units> balances_;
};

// Which shard owns an account's balance.
inline unsigned home_shard(account_id id, unsigned shards) {
  return static_cast<unsigned>(id % shards);
}

}  // namespace postino::credit
