// Integration-test harness: runs the real `postino` and `postino-ctl`
// binaries and real clients (swaks, curl, python3) as child processes on
// loopback, each bounded in time, and reads the journals back after the
// gateway stops. Calls to the gateway's admin endpoint (gateway::admin,
// gateway::metrics) carry the bearer token from its data dir; the plain
// http_request carries none (the SMSC simulator needs none). Every process it starts is killed by the destructor of the
// object that started it, so a failing test leaves nothing running.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "postino/spool.h"

namespace postino::test {

std::string binary_path(const std::string& name);  // in POSTINO_BINARY_DIR
// CI=true: a test that cannot run its real client fails instead of skipping,
// so that CI cannot pass having tested none.
bool under_ci();
#define SKIP_OR_FAIL(reason)                             \
  do {                                                   \
    if (::postino::test::under_ci()) FAIL() << (reason); \
    GTEST_SKIP() << (reason);                            \
  } while (0)
std::string source_path(const std::string& rel);   // in POSTINO_SOURCE_DIR
bool have_program(const std::string& name);

struct command_result {
  int exit_code = -1;      // -1 when killed on timeout or by a signal
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Runs argv to completion (killing it after `timeout`), feeding `input` on stdin.
command_result run_command(const std::vector<std::string>& argv, const std::string& input = "",
                           std::chrono::seconds timeout = std::chrono::seconds(60));

class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct http_reply;

struct account_spec {
  std::string username;
  std::string password;
  std::int64_t credit = 1000;
  std::vector<std::string> extra_flags;  // e.g. {"--default-originator", "ACME"}
};

// One running gateway on ephemeral loopback ports, in its own data dir.
class gateway {
 public:
  // `extra_toml` is appended to a generated config (may hold [[listener]] tables;
  // without any, one auth-required listener on 127.0.0.1:0 is used).
  explicit gateway(const std::vector<account_spec>& accounts, const std::string& extra_toml = "",
                   unsigned shards = 2);
  // A gateway on a copy of the data directory `data_dir` (tests/fixtures/...),
  // copied into its own temporary one (the source is never written); no
  // accounts are added. A factory, not a constructor: a second constructor
  // would make gateway({...}, "...") calls ambiguous.
  static std::unique_ptr<gateway> on_copy_of(const std::string& data_dir, const std::string& extra_toml = "",
                                             unsigned shards = 2);
  ~gateway();

  bool start();              // false (with the log in last_log()) when it fails
  int stop(std::chrono::seconds grace = std::chrono::seconds(30));  // SIGTERM; exit code
  void kill_hard();          // SIGKILL
  bool running() const { return pid_ > 0; }
  int pid() const { return pid_; }

  std::uint16_t smtp_port(unsigned listener = 0) const;
  std::uint16_t admin_port() const { return admin_port_; }
  const std::string& data_dir() const { return dir_.path(); }
  std::string database() const { return dir_.path() + "/postino.db"; }
  std::string last_log() const;
  // Where later starts append the gateway's output (default <data_dir>/postino.log):
  // a test that puts the data dir on a filesystem of its own keeps the log off it.
  void log_to(const std::string& path) { log_path_ = path; }
  // What the log gained after byte `from` (last_log().size() before a restart).
  std::string log_since(std::size_t from) const { return last_log().substr(std::min(from, last_log().size())); }

  // The admin endpoint's bearer token (<data_dir>/admin-token, written at
  // start), "" when there is none (an older build, which needs none).
  std::string admin_token() const;
  // One request to the admin endpoint, with the token.
  http_reply admin(const std::string& method, const std::string& target,
                          const std::string& header_lines = "") const;
  // GET /metrics (with the token), parsed into name -> value (labels kept in the name).
  std::map<std::string, double> metrics() const;
  // postino-ctl against this gateway's database.
  command_result ctl(const std::vector<std::string>& args) const;

 private:
  temp_dir dir_;
  std::string config_path_;
  std::string ports_path_;
  std::string log_path_;
  int pid_ = -1;
  std::vector<std::uint16_t> smtp_ports_;
  std::uint16_t admin_port_ = 0;
};

// Every record of every shard journal under data_dir (gateway stopped).
std::vector<spool::record> read_journals(const std::string& data_dir);
std::vector<spool::record> messages_in(const std::vector<spool::record>& records);
// The queue ids of every message record (node 0), sorted.
std::vector<std::string> journal_queue_ids(const std::string& data_dir);

// A blocking loopback SMTP connection for hand-written dialogues.
class raw_client {
 public:
  // `source`: the local IPv4 address to connect from (127.0.0.2 ... stand
  // for other clients); empty: the kernel's choice.
  explicit raw_client(std::uint16_t port, const std::string& source = "");
  ~raw_client();
  bool connected() const { return fd_ >= 0; }
  void send(const std::string& bytes);
  // shutdown(SHUT_WR): the client has sent everything and still reads.
  void finish_sending();
  // Sends what the socket takes within `timeout` without blocking beyond it
  // (the peer may stop reading); returns how many bytes went.
  std::size_t send_for(const std::string& bytes, std::chrono::milliseconds timeout);
  // Reads one whole reply (all continuation lines), or "" on timeout/close.
  std::string reply(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  // Reads until the peer closes; returns what came.
  std::string until_close(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

 private:
  int fd_ = -1;
  std::string buffer_;
};

std::string base64(const std::string& in);

// "AUTH PLAIN <user/password>\r\n".
std::string auth_plain(const std::string& user, const std::string& pass);
// Reads the greeting, sends EHLO and AUTH PLAIN; returns the AUTH reply,
// whatever it is ("" when the greeting or EHLO went wrong).
std::string login(raw_client& c, const std::string& user, const std::string& pass);
// The same, but "" unless the reply is 235.
std::string login_ok(raw_client& c, const std::string& user, const std::string& pass);
// Logs in on new connections, held open until every shard has one (so every
// shard's credential cache is asked, and that is checked), and expects each
// to say STATUS: SUSPENDED and refuse MAIL with 550.
void expect_suspended_on_every_shard(const gateway& gw, const std::string& user, const std::string& pass);
// Resident memory (VmRSS) and CPU seconds used (user + system) of a process.
std::int64_t rss_bytes(int pid);
double cpu_seconds(int pid);
// The CREDIT figure of a 235 line, or -1.
std::int64_t credit_in(const std::string& line235);
// Milliseconds since `t` (steady clock), and the p-quantile (0..1) of samples.
double ms_since(std::chrono::steady_clock::time_point t);
double percentile(std::vector<double> samples, double p);
// The first column of a query's first row on a database (read only), as a
// number; -1 when there is no row or the query fails.
std::int64_t query_number(const std::string& db_path, const std::string& sql);
// Stops `gw` cleanly and returns the one message its journals hold (an empty
// record, and a test failure, when there is not exactly one).
spool::record only_message(gateway& gw);

// One HTTP/1.0 exchange on loopback, read until the server closes.
struct http_reply {
  int status = 0;       // 0 when there was no answer
  std::string headers;  // the status line and header lines, as sent
  std::string body;
  // The value of header `name` (case-insensitive), "" when absent.
  std::string header(const std::string& name) const;
};
// `header_lines` ("Name: value\r\n" each) follow "Host: localhost" (or
// replace it when they hold a Host line).
http_reply http_exchange(std::uint16_t port, const std::string& method, const std::string& target,
                         const std::string& header_lines = "", const std::string& body = "",
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));
// The same without extra headers (the SMSC simulator's control port); the
// body ("" when it fails).
std::string http_request(std::uint16_t port, const std::string& method, const std::string& target,
                         const std::string& body = "");
// The number at "key": in a JSON text (the first occurrence), or -1.
double json_number(const std::string& json, const std::string& key);

// The test SMSC (tests/smsc/simulator.js, npm `smpp`) on loopback.
class smsc_simulator {
 public:
  // `rules_json`: the simulator's behaviour file (tests/smsc/README.md).
  explicit smsc_simulator(const std::string& rules_json = "{}");
  ~smsc_simulator();
  // False when node or the simulator's npm packages are missing (`why` says which).
  static bool available(std::string& why);
  bool start();
  void stop();
  std::uint16_t smpp_port() const { return smpp_port_; }
  std::string stats() const { return http_request(control_port_, "GET", "/stats"); }
  double stat(const std::string& key) const { return json_number(stats(), key); }
  std::string post(const std::string& target, const std::string& body = "") const {
    return http_request(control_port_, "POST", target, body);
  }
  std::string get(const std::string& target) const { return http_request(control_port_, "GET", target); }
  std::string last_log() const;

 private:
  temp_dir dir_;
  int pid_ = -1;
  std::uint16_t smpp_port_ = 0;
  std::uint16_t control_port_ = 0;
};

}  // namespace postino::test
