// Tests for configuration loading (src/core/config.cc): defaults, the shipped
// example file, strictness (unknown keys, types, ranges, each with its line),
// the loopback rule for auth = "none", and command-line overrides.
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
  ASSERT_EQ(c->listeners.size(), 2u);
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

}  // namespace
}  // namespace postino
