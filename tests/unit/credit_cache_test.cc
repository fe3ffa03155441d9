// Tests for the verified-credential cache (src/credit/credential_cache.cc):
// keys are deterministic within a process and across threads, any change of
// username or password misses, and invalidate drops every entry of an account.
#include <gtest/gtest.h>

#include <thread>

#include "postino/credit.h"

namespace postino::credit {
namespace {

account_settings account(account_id id, std::string name) {
  account_settings a;
  a.id = id;
  a.username = std::move(name);
  return a;
}

TEST(credential_cache, key_is_32_bytes_and_deterministic) {
  auto k = credential_cache::make_key("alice", "pw");
  EXPECT_EQ(k.size(), 32u);
  EXPECT_EQ(k, credential_cache::make_key("alice", "pw"));
  EXPECT_EQ(k.find("pw"), std::string::npos);
  credential_cache::key other_thread;
  std::thread t([&] { other_thread = credential_cache::make_key("alice", "pw"); });
  t.join();
  EXPECT_EQ(k, other_thread) << "one secret per process, not per thread";
}

TEST(credential_cache, separator_keeps_fields_apart) {
  EXPECT_NE(credential_cache::make_key("ab", "c"), credential_cache::make_key("a", "bc"));
  EXPECT_NE(credential_cache::make_key("alice", ""), credential_cache::make_key("alic", "e"));
}

TEST(credential_cache, wrong_password_misses) {
  credential_cache cache;
  cache.insert(credential_cache::make_key("alice", "right"), account(1, "alice"));
  const account_settings* hit = cache.find(credential_cache::make_key("alice", "right"));
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->id, 1u);
  EXPECT_EQ(cache.find(credential_cache::make_key("alice", "wrong")), nullptr);
  EXPECT_EQ(cache.find(credential_cache::make_key("alice", "righ")), nullptr);
  EXPECT_EQ(cache.find(credential_cache::make_key("Alice", "right")), nullptr);
  EXPECT_EQ(cache.find(credential_cache::make_key("bob", "right")), nullptr);
}

TEST(credential_cache, invalidate_drops_every_entry_of_the_account) {
  credential_cache cache;
  cache.insert(credential_cache::make_key("alice", "one"), account(1, "alice"));
  cache.insert(credential_cache::make_key("alice", "two"), account(1, "alice"));
  cache.insert(credential_cache::make_key("bob", "pw"), account(2, "bob"));
  EXPECT_EQ(cache.size(), 3u);
  cache.invalidate(1);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.find(credential_cache::make_key("alice", "one")), nullptr);
  EXPECT_EQ(cache.find(credential_cache::make_key("alice", "two")), nullptr);
  EXPECT_NE(cache.find(credential_cache::make_key("bob", "pw")), nullptr);
  cache.invalidate(42);  // unknown id: nothing happens
  EXPECT_EQ(cache.size(), 1u);
}

TEST(credential_cache, insert_replaces_the_snapshot) {
  credential_cache cache;
  auto k = credential_cache::make_key("alice", "pw");
  cache.insert(k, account(1, "alice"));
  auto updated = account(1, "alice");
  updated.status = account_status::suspended;
  cache.insert(k, updated);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.find(k)->status, account_status::suspended);
}

}  // namespace
}  // namespace postino::credit
