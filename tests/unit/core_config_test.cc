// Tests for configuration loading (src/core/config.cc): defaults, the shipped
// example file, strictness (unknown keys, types, ranges, each with its line),
// the loopback rule for auth = "none", SMPP delivery ([[smsc]], [[route]],
// [delivery]) and command-line overrides.
#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "postino/config.h"

namespace postino {
namespace {

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  gethostname(buf, sizeof buf - 1);
  return buf[0] != '\0' ? buf : "localhost";
}

std::optional<gateway_config> parse(const std::string& text, std::string& error) {
  return parse_config_text(text, "test.toml", error);
}

// Expects parsing to fail with an error containing every fragment.
void expect_error(const std::string& text, std::initializer_list<std::string> fragments) {
  std::string error;
  auto c = parse(text, error);
  EXPECT_FALSE(c.has_value()) << text;
  for (const auto& f : fragments) EXPECT_NE(error.find(f), std::string::npos) << "error: " << error;
}

TEST(config, defaults) {
  std::string error;
  auto c = parse("", error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->hostname, host_name());
  EXPECT_EQ(c->shards, 0u);
  EXPECT_EQ(c->node_id, 0u);
  EXPECT_EQ(c->data_dir, "./postino-data");
  EXPECT_EQ(c->database, "./postino-data/postino.db");
  EXPECT_EQ(c->idle_timeout_s, 300u);
  EXPECT_EQ(c->data_timeout_s, 180u);
  EXPECT_EQ(c->shutdown_grace_s, 30u);
  EXPECT_EQ(c->auth_workers, 2u);
  EXPECT_EQ(c->auth_queue, 4096u);
  EXPECT_EQ(c->journal_segment_bytes, 64u << 20);
  EXPECT_EQ(c->index_text_retention_days, 7u);
  EXPECT_TRUE(c->create_demo_account);
  EXPECT_EQ(c->admin_address, "127.0.0.1");
  EXPECT_EQ(c->admin_port, 0);
  EXPECT_EQ(c->ports_file, "");
  ASSERT_EQ(c->listeners.size(), 1u);
  const auto& l = c->listeners[0];
  EXPECT_EQ(l.address, "127.0.0.1");
  EXPECT_EQ(l.port, 2525);
  EXPECT_TRUE(l.auth_required);
  EXPECT_EQ(l.session.hostname, host_name());
  EXPECT_EQ(l.session.max_message_size, 10485760u);
  EXPECT_EQ(l.session.bare_newline, bare_newline_policy::normalize);
  EXPECT_EQ(l.session.max_errors, 10u);
  EXPECT_EQ(l.session.max_auth_failures, 3u);
}

TEST(config, shipped_example_parses) {
  const std::string path = std::string(POSTINO_SOURCE_DIR) + "/docs/config.example.toml";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string error;
  auto c = parse_config_text(text, path, error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->hostname, "mx.example");
  EXPECT_EQ(c->shards, 2u);
  EXPECT_EQ(c->journal_segment_bytes, 67108864u);
  EXPECT_EQ(c->index_text_retention_days, 7u);
  ASSERT_EQ(c->listeners.size(), 3u);
  EXPECT_TRUE(c->listeners[2].relay);
  EXPECT_EQ(c->listeners[0].address, "0.0.0.0");
  EXPECT_EQ(c->listeners[0].session.hostname, "smtp.mx.example");
  EXPECT_FALSE(c->listeners[1].auth_required);
  EXPECT_EQ(c->listeners[1].account, "demo");
  EXPECT_EQ(c->listeners[1].session.hostname, "mx.example");
}

TEST(config, full_document) {
  std::string error;
  auto c = parse(R"(
hostname = "gw.example"
shards = 4
node_id = 7
data_dir = "/var/lib/postino"
idle_timeout = 60
data_timeout = 90
shutdown_grace = 5
auth_workers = 3
auth_queue = 100
create_demo_account = false
ports_file = "/run/postino.ports"
[admin]
address = "::1"
port = 8025
[journal]
segment_bytes = 1048576
[[listener]]
address = "::"
port = 0
require_tls_for_auth = false
max_message_size = 2000000
bare_newline = "reject"
max_errors = 5
max_auth_failures = 1
[[listener]]
address = "127.0.0.2"
port = 2526
auth = "none"
account = "batch"
hostname = "batch.example"
)",
                 error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->shards, 4u);
  EXPECT_EQ(c->node_id, 7u);
  EXPECT_EQ(c->database, "/var/lib/postino/postino.db");
  EXPECT_EQ(c->idle_timeout_s, 60u);
  EXPECT_EQ(c->data_timeout_s, 90u);
  EXPECT_EQ(c->shutdown_grace_s, 5u);
  EXPECT_EQ(c->auth_workers, 3u);
  EXPECT_EQ(c->auth_queue, 100u);
  EXPECT_FALSE(c->create_demo_account);
  EXPECT_EQ(c->ports_file, "/run/postino.ports");
  EXPECT_EQ(c->admin_address, "::1");
  EXPECT_EQ(c->admin_port, 8025);
  EXPECT_EQ(c->journal_segment_bytes, 1048576u);
  ASSERT_EQ(c->listeners.size(), 2u);
  const auto& a = c->listeners[0];
  EXPECT_EQ(a.address, "::");
  EXPECT_EQ(a.port, 0) << "port 0 means an ephemeral port";
  EXPECT_TRUE(a.auth_required);
  EXPECT_EQ(a.session.max_message_size, 2000000u);
  EXPECT_EQ(a.session.bare_newline, bare_newline_policy::reject);
  EXPECT_EQ(a.session.max_errors, 5u);
  EXPECT_EQ(a.session.max_auth_failures, 1u);
  EXPECT_EQ(a.session.hostname, "gw.example");
  const auto& b = c->listeners[1];
  EXPECT_FALSE(b.auth_required);
  EXPECT_EQ(b.account, "batch");
  EXPECT_EQ(b.session.hostname, "batch.example");
}

TEST(config, explicit_database_is_kept) {
  std::string error;
  auto c = parse("data_dir = \"/d/\"\n", error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->database, "/d/postino.db");
  c = parse("database = \"/elsewhere/x.db\"\n", error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->database, "/elsewhere/x.db");
}

TEST(config, unknown_key_names_key_and_line) {
  expect_error("hostname = \"a\"\n\nmax_mesage_size = 5\n", {"test.toml:3: unknown key 'max_mesage_size'"});
  expect_error("[admin]\nport = 1\nadress = \"::1\"\n", {"test.toml:3: unknown key 'admin.adress'"});
  expect_error("[[listener]]\nport = 1\n[[listener]]\nprot = 2\n",
               {"test.toml:4: unknown key 'listener[1].prot'"});
  expect_error("[tls]\ncert = \"x\"\n", {"test.toml:1: unknown key 'tls'"});
}

TEST(config, wrong_types) {
  expect_error("shards = \"two\"\n", {"test.toml:1:", "shards", "expected an integer, got a string"});
  expect_error("\ncreate_demo_account = 1\n", {"test.toml:2:", "create_demo_account", "boolean"});
  expect_error("hostname = 5\n", {"test.toml:1:", "hostname", "expected a string"});
  expect_error("admin = 5\n", {"admin", "expected a table"});
  expect_error("[listener]\nport = 1\n", {"listener", "array of tables"});
  expect_error("[[listener]]\nport = 25.0\n", {"test.toml:2:", "listener[0].port", "float"});
}

// Without TLS the admin endpoint's address must be loopback, and the
// refusal names the file, the line and the key; with a certificate and key
// any address is allowed.
TEST(config, admin_address_must_be_loopback) {
  for (const char* address : {"0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "2001:db8::1", "::ffff:127.0.0.1"})
    expect_error(std::string("[admin]\nport = 8025\naddress = \"") + address + "\"\n",
                 {"test.toml:3: admin.address: '", address, "not a loopback address"});
  expect_error("[admin]\naddress = \"admin.example\"\n", {"test.toml:2: admin.address:", "not an IPv4 or IPv6"});
  for (const char* address : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) {
    std::string error;
    auto c = parse(std::string("[admin]\naddress = \"") + address + "\"\n", error);
    ASSERT_TRUE(c.has_value()) << address << ": " << error;
    EXPECT_EQ(c->admin_address, address);
  }
  std::string error;
  auto tls = parse("[admin]\naddress = \"0.0.0.0\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\n", error);
  ASSERT_TRUE(tls.has_value()) << error;
  EXPECT_EQ(tls->admin_certificate, "c.pem");
  EXPECT_EQ(tls->admin_private_key, "k.pem");
  expect_error("[admin]\naddress = \"0.0.0.0\"\ncertificate = \"c.pem\"\n", {"admin", "both `certificate` and `private_key`"});
}

TEST(config, out_of_range_values) {
  expect_error("[[listener]]\nport = 65536\n", {"test.toml:2:", "listener[0].port", "65536", "0..65535"});
  expect_error("[[listener]]\nport = -1\n", {"listener[0].port"});
  expect_error("shards = 257\n", {"shards", "0..256"});
  expect_error("node_id = 256\n", {"node_id", "0..255"});
  expect_error("[admin]\nport = 70000\n", {"test.toml:2:", "admin.port"});
  expect_error("[[listener]]\nauth = \"maybe\"\n", {"listener[0].auth", "maybe"});
  expect_error("[[listener]]\nbare_newline = \"keep\"\n", {"listener[0].bare_newline"});
  expect_error("[[listener]]\naddress = \"localhost\"\n", {"listener[0].address", "not an IPv4 or IPv6"});
  expect_error("hostname = \"has space\"\n", {"hostname"});
  expect_error("[[listener]]\nport = 2600\n[[listener]]\nport = 2600\n", {"listener[1]", "twice"});
}

// Numbers no key can hold: past the int64 range (toml++ refuses those while
// parsing), negative for unsigned keys, past the narrow types the values are
// stored in (a port in 16 bits, a shard count in 32), in other bases and
// as floats. Each names the file, the line and the key.
TEST(config, hostile_numbers_name_file_line_and_key) {
  expect_error("\nshards = 99999999999999999999\n", {"test.toml:2:"});
  expect_error("shards = -9223372036854775808\n", {"test.toml:1: shards:", "out of range 0..256"});
  expect_error("shards = 4294967297\n", {"test.toml:1: shards:", "4294967297 is out of range 0..256"});
  expect_error("[[listener]]\nport = 0x10000\n", {"test.toml:2: listener[0].port:", "65536 is out of range"});
  expect_error("[[listener]]\nport = 4294967296\n", {"test.toml:2: listener[0].port:", "out of range 0..65535"});
  expect_error("[admin]\nport = -65535\n", {"test.toml:2: admin.port:", "out of range"});
  expect_error("[[listener]]\nmax_message_size = 4294967296\n",
               {"test.toml:2: listener[0].max_message_size:", "out of range 1..4294967295"});
  expect_error("[[listener]]\nmax_errors = 1e3\n", {"test.toml:2: listener[0].max_errors:", "got a float"});
  expect_error("[journal]\nsegment_bytes = 1099511627777\n", {"test.toml:2: journal.segment_bytes:", "out of range"});
  expect_error("auth_queue = 16777217\n", {"test.toml:1: auth_queue:", "out of range"});
  expect_error("idle_timeout = 0\n", {"test.toml:1: idle_timeout:", "out of range 1..86400"});
  expect_error("node_id = -1\n", {"test.toml:1: node_id:", "out of range 0..255"});
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\nport = 0\n", {"test.toml:4: smsc[0].port:"});
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\nwindow = 4294967297\n",
               {"test.toml:4: smsc[0].window:", "out of range 1..1000"});
  expect_error("[delivery]\nqueue_limit = -1\n", {"test.toml:2: delivery.queue_limit:"});
  expect_error("[delivery]\nvalidity_s = inf\n", {"test.toml:2: delivery.validity_s:", "got a float"});
  expect_error("[delivery]\nvalidity_s = nan\n", {"test.toml:2: delivery.validity_s:", "got a float"});
  expect_error("[limits]\nmime_max_parts = 4294967297\n", {"test.toml:2: limits.mime_max_parts:", "out of range"});
  expect_error("[limits]\nmax_pending_output = -1\n", {"test.toml:2: limits.max_pending_output:", "out of range"});
  expect_error("[index]\n\ntext_retention_days = -1\n", {"test.toml:3: index.text_retention_days:", "out of range 0..36500"});
  expect_error("[index]\ntext_retention_days = 36501\n", {"test.toml:2: index.text_retention_days:", "out of range"});
  expect_error("[index]\ntext_retention_days = \"7\"\n", {"test.toml:2: index.text_retention_days:"});
  expect_error("[index]\ntext_retention = 7\n", {"test.toml:2:", "index.text_retention"});
}

TEST(config, index_text_retention) {
  std::string error;
  auto c = parse("[index]\ntext_retention_days = 0\n", error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->index_text_retention_days, 0u);
  c = parse("[index]\ntext_retention_days = 36500\n", error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->index_text_retention_days, 36500u);
}

TEST(config, boundary_values_are_accepted) {
  std::string error;
  auto c = parse("shards = 256\nnode_id = 255\n[[listener]]\nport = 65535\n", error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->shards, 256u);
  EXPECT_EQ(c->node_id, 255u);
  EXPECT_EQ(c->listeners[0].port, 65535);
  // Two ephemeral listeners on one address never collide.
  c = parse("[[listener]]\nport = 0\n[[listener]]\nport = 0\n", error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->listeners.size(), 2u);
}

TEST(config, syntax_error_reports_line_and_column) {
  std::string error;
  auto c = parse("shards = 2\nhostname = \"unterminated\n", error);
  ASSERT_FALSE(c.has_value());
  EXPECT_TRUE(error.starts_with("test.toml:2:")) << error;
  // "<file>:<line>:<col>: <description>"
  auto rest = error.substr(std::string("test.toml:2:").size());
  ASSERT_FALSE(rest.empty());
  EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(rest[0]))) << error;
}

TEST(config, auth_none_needs_loopback_and_account) {
  expect_error("[[listener]]\naddress = \"0.0.0.0\"\nauth = \"none\"\naccount = \"demo\"\n",
               {"test.toml:3:", "listener[0].auth", "loopback", "0.0.0.0"});
  expect_error("[[listener]]\naddress = \"192.168.1.1\"\nauth = \"none\"\naccount = \"demo\"\n",
               {"loopback"});
  expect_error("[[listener]]\naddress = \"::\"\nauth = \"none\"\naccount = \"demo\"\n", {"loopback"});
  expect_error("[[listener]]\nauth = \"none\"\n", {"listener[0].auth", "account"});
  std::string error;
  for (const char* addr : {"127.0.0.1", "127.1.2.3", "::1"}) {
    auto c = parse(std::string("[[listener]]\naddress = \"") + addr +
                       "\"\nauth = \"none\"\naccount = \"demo\"\n",
                   error);
    EXPECT_TRUE(c.has_value()) << addr << ": " << error;
  }
}

TEST(config, auth_relay_listener) {
  std::string error;
  // Off loopback and without TLS: a relay listener offers no AUTH, so
  // require_tls_for_auth has nothing to refuse.
  auto c = parse("[[listener]]\naddress = \"0.0.0.0\"\nport = 25\nauth = \"relay\"\n", error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_TRUE(c->listeners[0].relay);
  EXPECT_FALSE(c->listeners[0].auth_required);
  expect_error("[[listener]]\nauth = \"relay\"\naccount = \"demo\"\n", {"test.toml:2:", "listener[0].auth", "no `account`"});
  expect_error("[[listener]]\nauth = \"open\"\n", {"listener[0].auth", "\"relay\""});
}

// ---- SMPP delivery (issue 7): [[smsc]], [[route]], [delivery] ----

TEST(config, listener_tls_keys) {
  std::string error;
  auto c = parse(
      "[[listener]]\naddress = \"0.0.0.0\"\nport = 587\ntls = \"starttls\"\n"
      "certificate = \"/etc/postino/cert.pem\"\nprivate_key = \"/etc/postino/key.pem\"\n"
      "[[listener]]\naddress = \"127.0.0.1\"\nport = 2465\ntls = \"implicit\"\n"
      "certificate = \"c.pem\"\nprivate_key = \"k.pem\"\ntls_min_version = \"1.1\"\n"
      "[[listener]]\naddress = \"0.0.0.0\"\nport = 2525\nrequire_tls_for_auth = false\n",
      error);
  ASSERT_TRUE(c.has_value()) << error;
  ASSERT_EQ(c->listeners.size(), 3u);
  const auto& public_587 = c->listeners[0].tls;
  EXPECT_EQ(public_587.mode, listener_tls::starttls);
  EXPECT_EQ(public_587.certificate, "/etc/postino/cert.pem");
  EXPECT_EQ(public_587.private_key, "/etc/postino/key.pem");
  EXPECT_EQ(public_587.min_version, "1.2");
  EXPECT_TRUE(public_587.require_for_auth) << "the default off loopback";
  const auto& loopback_2465 = c->listeners[1].tls;
  EXPECT_EQ(loopback_2465.mode, listener_tls::implicit);
  EXPECT_EQ(loopback_2465.min_version, "1.1");
  EXPECT_FALSE(loopback_2465.require_for_auth) << "the default on loopback";
  EXPECT_EQ(c->listeners[2].tls.mode, listener_tls::none);
  EXPECT_FALSE(c->listeners[2].tls.require_for_auth);
}

TEST(config, listener_tls_errors) {
  expect_error("[[listener]]\ntls = \"ssl\"\n", {"test.toml:2", "listener[0].tls", "'ssl'"});
  expect_error("[[listener]]\ntls = \"starttls\"\ncertificate = \"c.pem\"\n",
               {"test.toml:2", "listener[0].tls", "private_key"});
  expect_error("[[listener]]\ntls = \"implicit\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\n"
               "tls_min_version = \"1.0\"\n",
               {"test.toml:5", "listener[0].tls_min_version", "'1.0'"});
  expect_error("[[listener]]\naddress = \"0.0.0.0\"\n", {"listener[0].tls", "would refuse every AUTH"});
  expect_error("[[listener]]\naddress = \"0.0.0.0\"\nrequire_tls_for_auth = true\n",
               {"test.toml:3", "would refuse every AUTH"});
}

TEST(config, delivery_defaults) {
  std::string error;
  auto c = parse("", error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_TRUE(c->smscs.empty());
  EXPECT_TRUE(c->routes.empty());
  EXPECT_EQ(c->delivery.validity_s, 172800u);
  EXPECT_EQ(c->delivery.retry_min_ms, 1000u);
  EXPECT_EQ(c->delivery.retry_max_ms, 300000u);
  EXPECT_EQ(c->delivery.queue_limit, 1000000u);
  EXPECT_EQ(c->delivery.receipt_hold_s, 600u);
  EXPECT_EQ(c->delivery.failover_after_s, 10u);
}

TEST(config, full_delivery_document) {
  std::string error;
  auto c = parse(R"(
shards = 4
[[smsc]]
name = "it-main_1.a"
host = "smsc.example"
port = 2776
system_id = "postino-account"
password = "secret12"
system_type = "VMA-abcdefg"
binds = 64
window = 1000
max_submits_per_second = 0
gsm_data_coding = 3
alphanumeric_ton = 6
alphanumeric_npi = 18
numeric_ton = 2
numeric_npi = 9
long_numeric_ton = 4
long_numeric_npi = 8
destination_ton = 0
destination_npi = 0
enquire_link_s = 3600
response_timeout_s = 600
reconnect_min_ms = 10
reconnect_max_ms = 3600000
shard = 3
[[smsc]]
name = "backup"
system_id = "b"
[[route]]
prefix = "39"
smscs = ["it-main_1.a", "backup"]
[[route]]
prefix = ""
smscs = ["backup"]
[delivery]
validity_s = 1
retry_min_ms = 10
retry_max_ms = 10
queue_limit = 1
receipt_hold_s = 86400
failover_after_s = 3600
)",
                 error);
  ASSERT_TRUE(c.has_value()) << error;
  ASSERT_EQ(c->smscs.size(), 2u);
  const auto& a = c->smscs[0];
  EXPECT_EQ(a.name, "it-main_1.a");
  EXPECT_EQ(a.host, "smsc.example");
  EXPECT_EQ(a.port, 2776);
  EXPECT_EQ(a.system_id, "postino-account");
  EXPECT_EQ(a.password, "secret12");
  EXPECT_EQ(a.system_type, "VMA-abcdefg");
  EXPECT_EQ(a.binds, 64u);
  EXPECT_EQ(a.window, 1000u);
  EXPECT_EQ(a.max_submits_per_second, 0u);
  EXPECT_EQ(a.gsm_data_coding, 3);
  EXPECT_EQ(a.alphanumeric_ton, 6);
  EXPECT_EQ(a.alphanumeric_npi, 18);
  EXPECT_EQ(a.numeric_ton, 2);
  EXPECT_EQ(a.numeric_npi, 9);
  EXPECT_EQ(a.long_numeric_ton, 4);
  EXPECT_EQ(a.long_numeric_npi, 8);
  EXPECT_EQ(a.destination_ton, 0);
  EXPECT_EQ(a.destination_npi, 0);
  EXPECT_EQ(a.enquire_link_s, 3600u);
  EXPECT_EQ(a.response_timeout_s, 600u);
  EXPECT_EQ(a.reconnect_min_ms, 10u);
  EXPECT_EQ(a.reconnect_max_ms, 3600000u);
  EXPECT_EQ(a.shard, 3);
  // The second keeps every default but what it names.
  const auto& b = c->smscs[1];
  const smsc_config d;
  EXPECT_EQ(b.name, "backup");
  EXPECT_EQ(b.system_id, "b");
  EXPECT_EQ(b.host, d.host);
  EXPECT_EQ(b.port, d.port);
  EXPECT_EQ(b.password, "");
  EXPECT_EQ(b.binds, d.binds);
  EXPECT_EQ(b.window, d.window);
  EXPECT_EQ(b.max_submits_per_second, d.max_submits_per_second);
  EXPECT_EQ(b.gsm_data_coding, 0);
  EXPECT_EQ(b.alphanumeric_ton, 5);
  EXPECT_EQ(b.numeric_ton, 1);
  EXPECT_EQ(b.long_numeric_ton, 0);
  EXPECT_EQ(b.enquire_link_s, 30u);
  EXPECT_EQ(b.reconnect_min_ms, 500u);
  EXPECT_EQ(b.reconnect_max_ms, 30000u);
  EXPECT_EQ(b.shard, -1);
  ASSERT_EQ(c->routes.size(), 2u);
  EXPECT_EQ(c->routes[0].prefix, "39");
  EXPECT_EQ(c->routes[0].smscs, (std::vector<std::string>{"it-main_1.a", "backup"}));
  EXPECT_EQ(c->routes[1].prefix, "");
  EXPECT_EQ(c->routes[1].smscs, (std::vector<std::string>{"backup"}));
  EXPECT_EQ(c->delivery.validity_s, 1u);
  EXPECT_EQ(c->delivery.retry_min_ms, 10u);
  EXPECT_EQ(c->delivery.retry_max_ms, 10u);
  EXPECT_EQ(c->delivery.queue_limit, 1u);
  EXPECT_EQ(c->delivery.receipt_hold_s, 86400u);
  EXPECT_EQ(c->delivery.failover_after_s, 3600u);
}

TEST(config, smscs_without_routes_and_a_route_before_its_smsc) {
  std::string error;
  auto c = parse("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\n", error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_TRUE(c->routes.empty());
  // Order in the file does not matter: a route may come first.
  c = parse("[[route]]\nsmscs = [\"late\"]\n[[smsc]]\nname = \"late\"\nsystem_id = \"x\"\n", error);
  ASSERT_TRUE(c.has_value()) << error;
  ASSERT_EQ(c->routes.size(), 1u);
  EXPECT_EQ(c->routes[0].prefix, "") << "no prefix: the default route";
}

TEST(config, delivery_unknown_keys) {
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\nwindw = 5\n",
               {"test.toml:4: unknown key 'smsc[0].windw'"});
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\n[[route]]\nsmscs = [\"a\"]\nprefx = \"3\"\n",
               {"test.toml:6: unknown key 'route[0].prefx'"});
  expect_error("[delivery]\nvalidity = 5\n", {"test.toml:2: unknown key 'delivery.validity'"});
}

TEST(config, delivery_wrong_types) {
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\nport = \"2775\"\n",
               {"test.toml:4:", "smsc[0].port", "expected an integer, got a string"});
  expect_error("[[smsc]]\nname = 5\nsystem_id = \"x\"\n", {"test.toml:2:", "smsc[0].name", "expected a string"});
  expect_error("[smsc]\nname = \"a\"\n", {"test.toml:1:", "smsc", "array of tables"});
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\n[[route]]\nsmscs = \"a\"\n",
               {"test.toml:5:", "route[0].smscs", "expected an array"});
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\n[[route]]\nsmscs = [1]\n",
               {"test.toml:5:", "route[0].smscs", "expected a string"});
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\n[[route]]\nprefix = 39\nsmscs = [\"a\"]\n",
               {"test.toml:5:", "route[0].prefix", "expected a string"});
  expect_error("delivery = 5\n", {"test.toml:1:", "delivery", "expected a table"});
  expect_error("[delivery]\nqueue_limit = 1.5\n", {"test.toml:2:", "delivery.queue_limit", "float"});
}

TEST(config, smsc_out_of_range_values) {
  const std::string head = "[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\n";  // lines 1-3
  struct bad {
    std::string line;
    std::string fragment;
  };
  const bad cases[] = {
      {"port = 0", "1..65535"},
      {"port = 65536", "1..65535"},
      {"host = \"\"", "must not be empty"},
      {"system_id = \"sixteen-chars-id\"", "longer than 15"},
      {"password = \"ninechars\"", "longer than 8"},
      {"system_type = \"thirteen-char\"", "longer than 12"},
      {"password = \"tab\\there\"", "printable ASCII"},
      {"binds = 0", "1..64"},
      {"binds = 65", "1..64"},
      {"window = 0", "1..1000"},
      {"window = 1001", "1..1000"},
      {"max_submits_per_second = -1", "0..100000"},
      {"max_submits_per_second = 100001", "0..100000"},
      {"gsm_data_coding = 1", "not 0"},
      {"gsm_data_coding = 8", "0..3"},
      {"alphanumeric_ton = 7", "0..6"},
      {"numeric_ton = 7", "0..6"},
      {"long_numeric_ton = 7", "0..6"},
      {"destination_ton = -1", "0..6"},
      {"alphanumeric_npi = 19", "0..18"},
      {"numeric_npi = 19", "0..18"},
      {"long_numeric_npi = 19", "0..18"},
      {"destination_npi = 19", "0..18"},
      {"enquire_link_s = 0", "1..3600"},
      {"enquire_link_s = 3601", "1..3600"},
      {"response_timeout_s = 0", "1..600"},
      {"response_timeout_s = 601", "1..600"},
      {"reconnect_min_ms = 9", "10..600000"},
      {"reconnect_min_ms = 600001", "10..600000"},
      {"reconnect_max_ms = 3600001", "10..3600000"},
      {"reconnect_max_ms = 499", "must not be below reconnect_min_ms"},
      {"shard = -2", "-1..255"},
      {"shard = 256", "-1..255"},
  };
  for (const auto& b : cases) {
    const std::string key = b.line.substr(0, b.line.find(' '));
    // The bad line is line 3; system_id (required) follows unless it is the one.
    const std::string text = "[[smsc]]\nname = \"a\"\n" + b.line + "\n" +
                             (key == "system_id" ? "" : "system_id = \"x\"\n");
    expect_error(text, {"test.toml:3: smsc[0]." + key + ": ", b.fragment});
  }
  // reconnect_min_ms above the default maximum is named at its own line.
  expect_error(head + "reconnect_min_ms = 40000\n", {"test.toml:4: smsc[0].reconnect_min_ms:", "below"});
  std::string error;
  EXPECT_TRUE(parse(head + "reconnect_min_ms = 40000\nreconnect_max_ms = 40000\n", error)) << error;
}

TEST(config, smsc_names_and_required_keys) {
  expect_error("[[smsc]]\nsystem_id = \"x\"\n", {"test.toml:1: smsc[0].name: required"});
  expect_error("[[smsc]]\nname = \"a\"\n", {"test.toml:1: smsc[0].system_id: required"});
  expect_error("[[smsc]]\nname = \"\"\nsystem_id = \"x\"\n", {"test.toml:2: smsc[0].name:", "not a name"});
  expect_error("[[smsc]]\nname = \"it main\"\nsystem_id = \"x\"\n", {"test.toml:2: smsc[0].name:", "not a name"});
  expect_error("[[smsc]]\nname = \"a/b\"\nsystem_id = \"x\"\n", {"test.toml:2:", "not a name"});
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"\"\n", {"test.toml:3: smsc[0].system_id:", "empty"});
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\n[[smsc]]\nname = \"a\"\nsystem_id = \"y\"\n",
               {"test.toml:5: smsc[1].name:", "'a' is configured twice"});
  // The second [[smsc]] header sits on line 4.
  expect_error("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\n[[smsc]]\nname = \"b\"\n",
               {"test.toml:4: smsc[1].system_id: required"});
}

// Found only once every listener is read, still with the file, line and
// key (the fuzz target config found it naming none: tests/fuzz/corpus/
// config/ keeps the input).
TEST(config, a_listener_address_and_port_twice_names_the_line) {
  expect_error("[[listener]]\nport = 2600\n[[listener]]\nport = 2600\n",
               {"test.toml:4: listener[1].port: 127.0.0.1 port 2600 is configured twice (also listener[0])"});
  // Without a port key: the [[listener]] line; addresses compare canonically.
  expect_error("[[listener]]\naddress = \"::1\"\n\n[[listener]]\naddress = \"0:0::1\"\n",
               {"test.toml:4: listener[1].port: 0:0::1 port 2525 is configured twice (also listener[0])"});
  std::string error;
  EXPECT_TRUE(parse("[[listener]]\nport = 0\n[[listener]]\nport = 0\n", error)) << error;
}

TEST(config, smsc_shard_against_shard_count) {
  const std::string text = "shards = 2\n[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\nshard = 2\n";
  expect_error(text, {"test.toml:5: smsc[0].shard:", "not below the shard count 2"});
  std::string error;
  // Unknown shard count (0: one per core): the gateway checks later.
  EXPECT_TRUE(parse("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\nshard = 200\n", error)) << error;
  EXPECT_TRUE(parse("shards = 3\n[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\nshard = 2\n", error)) << error;
}

TEST(config, route_errors) {
  const std::string smsc = "[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\n";  // lines 1-3
  expect_error(smsc + "[[route]]\nprefix = \"+39\"\nsmscs = [\"a\"]\n",
               {"test.toml:5: route[0].prefix:", "not a prefix"});
  expect_error(smsc + "[[route]]\nprefix = \"3 9\"\nsmscs = [\"a\"]\n", {"test.toml:5: route[0].prefix:"});
  expect_error(smsc + "[[route]]\nprefix = \"39\"\nsmscs = [\"a\"]\n[[route]]\nprefix = \"39\"\nsmscs = [\"a\"]\n",
               {"test.toml:8: route[1].prefix:", "routed twice"});
  expect_error(smsc + "[[route]]\nsmscs = [\"a\"]\n[[route]]\nsmscs = [\"a\"]\n",
               {"route[1].prefix:", "routed twice"});
  expect_error(smsc + "[[route]]\nprefix = \"39\"\nsmscs = []\n",
               {"test.toml:6: route[0].smscs:", "at least one"});
  expect_error(smsc + "[[route]]\nprefix = \"39\"\n", {"test.toml:4: route[0].smscs: required"});
  expect_error(smsc + "[[route]]\nprefix = \"39\"\nsmscs = [\"a\", \"b\"]\n",
               {"test.toml:6: route[0].smscs:", "no [[smsc]] is named 'b'"});
  expect_error(smsc + "[[route]]\nprefix = \"39\"\nsmscs = [\"a\", \"a\"]\n",
               {"test.toml:6: route[0].smscs:", "named twice"});
  expect_error("\n[[route]]\nprefix = \"39\"\nsmscs = [\"a\"]\n",
               {"test.toml:2: route[0]:", "route needs an [[smsc]]"});
}

TEST(config, delivery_out_of_range_values) {
  struct bad {
    std::string line;
    std::string fragment;
  };
  const bad cases[] = {
      {"validity_s = 0", "1..2592000"},
      {"validity_s = 2592001", "1..2592000"},
      {"retry_min_ms = 9", "10.."},
      {"retry_max_ms = 999", "must not be below retry_min_ms"},
      {"queue_limit = 0", "out of range 1.."},
      {"receipt_hold_s = 0", "1..86400"},
      {"receipt_hold_s = 86401", "1..86400"},
      {"failover_after_s = 0", "1..3600"},
      {"failover_after_s = 3601", "1..3600"},
  };
  for (const auto& b : cases) {
    const std::string key = b.line.substr(0, b.line.find(' '));
    expect_error("\n[delivery]\n" + b.line + "\n", {"test.toml:3: delivery." + key + ": ", b.fragment});
  }
  expect_error("[delivery]\nretry_min_ms = 400000\n", {"test.toml:2: delivery.retry_min_ms:", "below"});
}

// Runs load_config over a fake command line.
std::optional<gateway_config> load(std::vector<std::string> args, std::string& error, int& code) {
  args.insert(args.begin(), "postino");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return load_config(static_cast<int>(args.size()), argv.data(), error, code);
}

class config_cli : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/postino-config-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& text) {
    std::string path = dir_ + "/postino.toml";
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(config_cli, no_arguments_gives_defaults) {
  std::string error;
  int code = -1;
  auto c = load({}, error, code);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(code, 0);
  EXPECT_EQ(c->listeners.size(), 1u);
}

TEST_F(config_cli, flags_override_the_file) {
  auto path = write(R"(
hostname = "file.example"
shards = 2
data_dir = "/from/file"
[[listener]]
port = 2600
[[listener]]
port = 2601
hostname = "own.example"
)");
  std::string error;
  int code = -1;
  auto c = load({"-c", path, "--shards", "8", "--data-dir", dir_, "--node-id", "3",
                 "--admin-port", "8080", "--ports-file", dir_ + "/ports"},
                error, code);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->shards, 8u);
  EXPECT_EQ(c->data_dir, dir_);
  EXPECT_EQ(c->database, dir_ + "/postino.db");
  EXPECT_EQ(c->node_id, 3u);
  EXPECT_EQ(c->admin_port, 8080);
  EXPECT_EQ(c->ports_file, dir_ + "/ports");
  ASSERT_EQ(c->listeners.size(), 2u) << "no --listen: the file's listeners stay";
  EXPECT_EQ(c->listeners[0].session.hostname, "file.example");

  // --hostname reaches listeners that did not name their own.
  c = load({"--config", path, "--hostname", "flag.example"}, error, code);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->hostname, "flag.example");
  EXPECT_EQ(c->listeners[0].session.hostname, "flag.example");
  EXPECT_EQ(c->listeners[1].session.hostname, "own.example");
}

TEST_F(config_cli, a_listen_flag_twice_is_named) {
  std::string error;
  int code = -1;
  EXPECT_FALSE(load({"--listen", "127.0.0.1:2600", "--listen", "127.0.0.1:2600"}, error, code).has_value());
  EXPECT_EQ(error, "--listen 127.0.0.1:2600: 127.0.0.1 port 2600 is configured twice (also listener[0])");
  EXPECT_EQ(code, 2);
}

TEST_F(config_cli, listen_replaces_listeners) {
  auto path = write("[[listener]]\naddress = \"127.0.0.1\"\nport = 2600\nauth = \"none\"\naccount = \"x\"\n");
  std::string error;
  int code = -1;
  auto c = load({"-c", path, "--listen", "127.0.0.1:0", "--listen", "[::1]:2525"}, error, code);
  ASSERT_TRUE(c.has_value()) << error;
  ASSERT_EQ(c->listeners.size(), 2u);
  EXPECT_EQ(c->listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c->listeners[0].port, 0);
  EXPECT_TRUE(c->listeners[0].auth_required);
  EXPECT_EQ(c->listeners[1].address, "::1");
  EXPECT_EQ(c->listeners[1].port, 2525);
  EXPECT_TRUE(c->listeners[1].auth_required);
}

TEST_F(config_cli, bad_flags_are_errors) {
  std::string error;
  int code = 0;
  EXPECT_FALSE(load({"--listen", "nonsense"}, error, code));
  EXPECT_NE(code, 0);
  EXPECT_NE(error.find("--listen"), std::string::npos) << error;
  EXPECT_FALSE(load({"--listen", "127.0.0.1:99999"}, error, code));
  EXPECT_FALSE(load({"--listen", "::1:25"}, error, code));
  // Ports the old std::stoul path would have thrown on or wrapped.
  for (const char* port : {"65536", "99999999999999999999", "18446744073709551616", "-1", "+25", " 25", "25 ",
                           "0x19", "", "2.5"}) {
    EXPECT_FALSE(load({"--listen", std::string("127.0.0.1:") + port}, error, code)) << port;
    EXPECT_EQ(code, 2) << port;
    EXPECT_NE(error.find("the port must be a number 0..65535"), std::string::npos) << port << ": " << error;
  }
  auto c = load({"--listen", "127.0.0.1:000025"}, error, code);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->listeners[0].port, 25);
  for (std::vector<std::string> flags : {std::vector<std::string>{"--admin-port", "65536"}, {"--admin-port", "-1"},
                                         {"--shards", "-1"}, {"--shards", "4294967296"}, {"--node-id", "256"},
                                         {"--node-id", "99999999999999999999"}}) {
    EXPECT_FALSE(load(flags, error, code)) << flags[0] << " " << flags[1];
    EXPECT_EQ(code, 2) << flags[0] << " " << flags[1];
  }
  EXPECT_FALSE(load({"--shards", "300"}, error, code));
  EXPECT_NE(code, 0);
  EXPECT_FALSE(load({"--no-such-flag"}, error, code));
  EXPECT_NE(code, 0);
  EXPECT_FALSE(load({"-c", dir_ + "/missing.toml"}, error, code));
  EXPECT_NE(error.find("missing.toml"), std::string::npos) << error;
  EXPECT_NE(code, 0);
}

TEST_F(config_cli, file_errors_name_the_file) {
  auto path = write("port = 1\n");
  std::string error;
  int code = 0;
  EXPECT_FALSE(load({"-c", path}, error, code));
  EXPECT_EQ(error, path + ":1: unknown key 'port'");
  EXPECT_NE(code, 0);
}

TEST_F(config_cli, shards_flag_checks_smsc_shards) {
  auto path = write("[[smsc]]\nname = \"a\"\nsystem_id = \"x\"\nshard = 3\n");
  std::string error;
  int code = 0;
  EXPECT_TRUE(load({"-c", path}, error, code)) << error;
  EXPECT_FALSE(load({"-c", path, "--shards", "2"}, error, code));
  EXPECT_NE(code, 0);
  EXPECT_NE(error.find(path + ":4: smsc[0].shard:"), std::string::npos) << error;
  EXPECT_TRUE(load({"-c", path, "--shards", "4"}, error, code)) << error;
}

TEST_F(config_cli, help_exits_zero) {
  std::string error = "unchanged";
  int code = -1;
  testing::internal::CaptureStdout();
  auto c = load({"--help"}, error, code);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_FALSE(c.has_value());
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(error.empty());
  EXPECT_NE(out.find("--listen"), std::string::npos) << out;
}

// log_level: "info" (the default) or "debug" (SMTP phase traces), in the
// file or as --log-level, which wins.
TEST_F(config_cli, log_level_in_the_file_and_as_a_flag) {
  std::string error;
  int code = -1;
  auto c = load({}, error, code);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->log_level, verbosity::info);
  const std::string path = write("hostname = \"mx.example\"\nlog_level = \"debug\"\n");
  c = load({"-c", path}, error, code);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->log_level, verbosity::debug);
  c = load({"-c", path, "--log-level", "info"}, error, code);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->log_level, verbosity::info);
  EXPECT_FALSE(load({"--log-level", "loud"}, error, code).has_value());
  EXPECT_EQ(code, 2);
  EXPECT_FALSE(load({"-c", write("\nlog_level = \"trace\"\n")}, error, code).has_value());
  EXPECT_NE(error.find(":2: log_level: 'trace' is not one of \"info\", \"debug\""), std::string::npos) << error;
}

}  // namespace
}  // namespace postino

namespace postino {
namespace {

TEST(config, connection_and_body_limits) {
  std::string error;
  auto c = parse_config_text(
      "[limits]\nconnections_per_ip = 5\nconnections_per_account = 2\nconnection_limit_exempt = [\"10.0.0.0/8\", "
      "\"2001:db8::/32\"]\ndata_total_timeout = 3\nmax_body_memory = 67108864\n",
      "test.toml", error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->limits.connections_per_ip, 5u);
  EXPECT_EQ(c->limits.connections_per_account, 2u);
  EXPECT_EQ(c->limits.connection_limit_exempt, (std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32"}));
  EXPECT_EQ(c->limits.data_total_timeout_s, 3u);
  EXPECT_EQ(c->limits.max_body_memory, 64u << 20);
  auto d = parse_config_text("", "test.toml", error);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->limits.connections_per_ip, 50u);
  EXPECT_EQ(d->limits.connection_limit_exempt, (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  EXPECT_EQ(d->limits.max_body_memory, 256u << 20);
  EXPECT_FALSE(parse_config_text("[limits]\n\nconnection_limit_exempt = [\"10.0.0.0/33\"]\n", "test.toml", error));
  EXPECT_EQ(error, "test.toml:3: limits.connection_limit_exempt: '10.0.0.0/33': the prefix length must be 0 to 32");
  EXPECT_FALSE(parse_config_text("[limits]\nconnection_limit_exempt = \"10.0.0.0/8\"\n", "test.toml", error));
  EXPECT_NE(error.find("test.toml:2: limits.connection_limit_exempt: expected an array"), std::string::npos) << error;
}

}  // namespace
}  // namespace postino
