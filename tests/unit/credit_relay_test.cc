// Tests for relay rules (src/credit/relay.cc and the relays table of
// account_store.cc): CIDR parsing and canonical text, IPv4, IPv6 and
// IPv4-mapped clients, domain checks, the store's set/list round trip and
// relay_directory's choice (longest network, then lowest id). Each store
// test owns a fresh temp dir.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "postino/credit.h"

namespace postino::credit {
namespace {

ip_network net(const std::string& text) {
  std::string why;
  auto n = parse_network(text, why);
  EXPECT_TRUE(n.has_value()) << text << ": " << why;
  return n.value_or(ip_network{});
}

TEST(relay_network, parses_and_prints_canonically) {
  EXPECT_EQ(network_text(net("192.0.2.0/24")), "192.0.2.0/24");
  EXPECT_EQ(network_text(net("2001:DB8:0::/48")), "2001:db8::/48");
  EXPECT_EQ(network_text(net("192.0.2.7")), "192.0.2.7/32");
  EXPECT_EQ(network_text(net("::1")), "::1/128");
  EXPECT_EQ(network_text(net("0.0.0.0/0")), "0.0.0.0/0");
  std::string why;
  for (const char* bad : {"", "/24", "192.0.2.0/", "192.0.2.0/33", "2001:db8::/129", "192.0.2.0/2x", "300.0.0.0/8",
                          "example.com", "192.0.2.0/-1", "192.0.2.0/ 24"})
    EXPECT_FALSE(parse_network(bad, why).has_value()) << bad;
  EXPECT_FALSE(parse_network("192.0.2.1/24", why).has_value());
  EXPECT_NE(why.find("did you mean 192.0.2.0/24?"), std::string::npos) << why;
}

TEST(relay_network, contains_v4_v6_and_mapped_clients) {
  const ip_network v4 = net("192.0.2.0/23"), v6 = net("2001:db8::/48"), all4 = net("0.0.0.0/0");
  EXPECT_TRUE(network_contains(v4, "192.0.3.255"));
  EXPECT_FALSE(network_contains(v4, "192.0.4.0"));
  EXPECT_TRUE(network_contains(v4, "::ffff:192.0.2.9")) << "a dual-stack listener's IPv4 client";
  EXPECT_FALSE(network_contains(v4, "2001:db8::1"));
  EXPECT_TRUE(network_contains(v6, "2001:db8:0:ffff::1"));
  EXPECT_FALSE(network_contains(v6, "2001:db9::1"));
  EXPECT_FALSE(network_contains(v6, "192.0.2.1"));
  EXPECT_TRUE(network_contains(all4, "203.0.113.5"));
  EXPECT_FALSE(network_contains(v4, "not an address"));
}

TEST(relay_domains, are_checked_and_lowered) {
  std::vector<std::string> out;
  std::string why;
  EXPECT_TRUE(canonical_domains({"Example.COM", "mail-1.example.org"}, out, why));
  EXPECT_EQ(out, (std::vector<std::string>{"example.com", "mail-1.example.org"}));
  for (const char* bad : {"exa mple.com", "-a.com", "a-.com", "a..com", ".com", "a@b.com", ""})
    EXPECT_FALSE(canonical_domains({bad}, out, why)) << bad;
}

class relay_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/postino-relay-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::string error;
    store_ = account_store::open(dir_ + "/postino.db", error);
    ASSERT_NE(store_, nullptr) << error;
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  account_id add(const std::string& name) {
    account_settings s;
    s.username = name;
    std::string error;
    const account_id id = store_->add(s, "pw", 0, error);
    EXPECT_NE(id, 0u) << error;
    return id;
  }
  std::string dir_;
  std::unique_ptr<account_store> store_;
};

TEST_F(relay_store_test, rules_round_trip_and_empty_lists_remove_them) {
  EXPECT_EQ(store_->schema_version(), 5);
  const account_id a = add("office");
  EXPECT_TRUE(store_->relay_of(a)->networks.empty());
  ASSERT_TRUE(store_->set_relay(a, {"192.0.2.0/24", "2001:db8::/48"}, {"example.com"})) << store_->last_error();
  auto rule = store_->relay_of(a);
  ASSERT_TRUE(rule.has_value());
  EXPECT_EQ(rule->networks, (std::vector<std::string>{"192.0.2.0/24", "2001:db8::/48"}));
  EXPECT_EQ(rule->domains, (std::vector<std::string>{"example.com"}));
  ASSERT_TRUE(store_->set_relay(a, {"198.51.100.0/24"}, {"example.com"}));
  EXPECT_EQ(store_->list_relays().size(), 1u);
  ASSERT_TRUE(store_->set_relay(a, {}, {}));
  EXPECT_TRUE(store_->list_relays().empty());
  EXPECT_FALSE(store_->set_relay(999, {"192.0.2.0/24"}, {"example.com"}));
  EXPECT_NE(store_->last_error().find("no account with id 999"), std::string::npos) << store_->last_error();
}

TEST_F(relay_store_test, the_directory_picks_the_longest_network_then_the_lowest_id) {
  const account_id wide = add("wide"), narrow = add("narrow"), other = add("other");
  ASSERT_TRUE(store_->set_relay(wide, {"10.0.0.0/8"}, {"example.com"}));
  ASSERT_TRUE(store_->set_relay(narrow, {"10.1.0.0/16"}, {"example.com"}));
  ASSERT_TRUE(store_->set_relay(other, {"10.1.0.0/16"}, {"example.com", "example.org"}));
  std::string error;
  auto d = relay_directory::load(*store_, error);
  ASSERT_NE(d, nullptr) << error;
  EXPECT_EQ(d->size(), 3u);
  auto who = [&](const char* ip, const char* domain) {
    const account_settings* a = d->find(ip, domain);
    return a == nullptr ? std::string("-") : a->username;
  };
  EXPECT_EQ(who("10.2.3.4", "example.com"), "wide");
  EXPECT_EQ(who("10.1.3.4", "EXAMPLE.com"), "narrow");  // longest, then lowest id
  EXPECT_EQ(who("10.1.3.4", "example.org"), "other");
  EXPECT_EQ(who("10.2.3.4", "example.org"), "-");
  EXPECT_EQ(who("11.0.0.1", "example.com"), "-");
  EXPECT_EQ(who("10.1.3.4", ""), "-");
  EXPECT_EQ(who("10.1.3.4", "sub.example.com"), "-") << "no subdomains";
}

}  // namespace
}  // namespace postino::credit
