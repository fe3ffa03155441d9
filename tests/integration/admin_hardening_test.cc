// Regression tests for the admin endpoint's hardening, against the real
// gateway: a top-up amount past int64 is a 400 and the gateway lives on; no
// top-up can take a balance past max_balance, and the gateway restarts on
// its data dir after SIGTERM and after SIGKILL; every request needs the
// bearer token of <data-dir>/admin-token (mode 0600, repaired when looser),
// a foreign Origin or Host is refused, postino-ctl goes through the token;
// a non-loopback [admin] address is refused at start; and more drip-feeding
// connections than the endpoint has workers do not hold /metrics back.
// Each test owns its gateway and sockets; every wait is bounded.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "harness.h"
#include "postino/account.h"

namespace postino::test {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

std::int64_t balance_in(const http_reply& r) {
  const auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("balance") || !j["balance"].is_number_integer()) return -1;
  return j["balance"].get<std::int64_t>();
}

std::string error_in(const http_reply& r) {
  const auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_string()) return "";
  return j["error"].get<std::string>();
}

http_reply top_up(const gateway& gw, const std::string& amount) {
  return gw.admin("POST", "/accounts/op/credit?amount=" + amount);
}

// One message through SMTP: the gateway still accepts and journals.
void expect_smtp_serves(const gateway& gw) {
  raw_client c(gw.smtp_port());
  ASSERT_NE(login_ok(c, "op", "pw-op"), "") << gw.last_log();
  c.send("MAIL FROM:<ACME>\r\nRCPT TO:<+393331000001>\r\nDATA\r\nstill here\r\n.\r\n");
  for (int i = 0; i < 3; ++i) c.reply();
  EXPECT_EQ(c.reply().rfind("250 2.0.0 Message accepted", 0), 0u);
}

TEST(admin_hardening, an_amount_past_int64_is_a_400_and_the_gateway_keeps_serving) {
  gateway gw({{"op", "pw-op", 10, {}}});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  const http_reply r = top_up(gw, "9999999999999999999");
  EXPECT_EQ(r.status, 400) << r.headers << r.body << gw.last_log();
  EXPECT_NE(error_in(r), "") << r.body;
  expect_smtp_serves(gw);
  const auto m = gw.metrics();
  EXPECT_EQ(m.count("postino_shards"), 1u) << gw.last_log();
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

std::int64_t credit_at_login(const gateway& gw) {
  raw_client c(gw.smtp_port());
  return credit_in(login_ok(c, "op", "pw-op"));
}

TEST(admin_hardening, no_top_up_passes_the_maximum_balance_and_restarts_work) {
  gateway gw({{"op", "pw-op", 1000, {}}});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  EXPECT_EQ(top_up(gw, "9223372036854775807").status, 400);
  // Two top-ups that each fit in int64 but together (and alone) pass the maximum.
  EXPECT_EQ(top_up(gw, "5000000000000000000").status, 400);
  EXPECT_EQ(top_up(gw, "5000000000000000000").status, 400);
  EXPECT_EQ(balance_in(gw.admin("GET", "/accounts/op")), 1000);

  const http_reply to_max = top_up(gw, std::to_string(max_balance - 1000));
  EXPECT_EQ(to_max.status, 200) << to_max.body;
  EXPECT_EQ(balance_in(to_max), max_balance) << to_max.body;
  const http_reply one_more = top_up(gw, "1");
  EXPECT_EQ(one_more.status, 400) << one_more.body;
  EXPECT_NE(error_in(one_more).find("maximum"), std::string::npos) << one_more.body;
  EXPECT_EQ(balance_in(gw.admin("GET", "/accounts/op")), max_balance);

  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  ASSERT_TRUE(gw.start()) << "after SIGTERM: " << gw.last_log();
  EXPECT_EQ(credit_at_login(gw), max_balance);
  gw.kill_hard();
  ASSERT_TRUE(gw.start()) << "after SIGKILL: " << gw.last_log();
  EXPECT_EQ(credit_at_login(gw), max_balance);
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

unsigned file_mode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<unsigned>(st.st_mode & 07777) : 0u;
}

void expect_refusals(const gateway& gw) {
  const std::string token = gw.admin_token();
  for (const char* target : {"/metrics", "/accounts/op", "/nowhere"}) {
    const http_reply none = http_exchange(gw.admin_port(), "GET", target);
    EXPECT_EQ(none.status, 401) << target << ": " << none.headers << none.body;
    EXPECT_EQ(none.header("WWW-Authenticate").rfind("Bearer", 0), 0u) << none.headers;
  }
  const http_reply wrong = http_exchange(gw.admin_port(), "POST", "/accounts/op/credit?amount=5",
                                         "Authorization: Bearer " + std::string(token.size(), 'a') + "\r\n");
  EXPECT_EQ(wrong.status, 401) << wrong.headers << wrong.body;
  EXPECT_EQ(wrong.header("WWW-Authenticate").rfind("Bearer", 0), 0u) << wrong.headers;
  const http_reply evil = gw.admin("POST", "/accounts/op/credit?amount=5", "Origin: http://evil.example\r\n");
  EXPECT_EQ(evil.status, 403) << evil.headers << evil.body;
  const http_reply rebound = gw.admin("GET", "/metrics", "Host: evil.example:" + std::to_string(gw.admin_port()) + "\r\n");
  EXPECT_EQ(rebound.status, 403) << rebound.headers << rebound.body;
  const std::string own = "http://127.0.0.1:" + std::to_string(gw.admin_port());
  EXPECT_EQ(gw.admin("GET", "/metrics", "Origin: " + own + "\r\n").status, 200);
  EXPECT_EQ(balance_in(gw.admin("GET", "/accounts/op")), 10) << "a refused top-up changed the balance";
}

TEST(admin_hardening, requests_need_the_token_and_no_foreign_origin_or_host) {
  gateway gw({{"op", "pw-op", 10, {}}});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  const std::string token_path = gw.data_dir() + "/admin-token";
  EXPECT_EQ(file_mode(token_path), 0600u);
  const std::string token = gw.admin_token();
  EXPECT_EQ(token.size(), 64u) << token;
  EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos) << token;
  expect_refusals(gw);

  // postino-ctl reads the token from the data dir (that of --database here).
  const std::string admin = "127.0.0.1:" + std::to_string(gw.admin_port());
  auto added = gw.ctl({"--admin", admin, "credit", "add", "op", "5"});
  EXPECT_EQ(added.exit_code, 0) << added.out << added.err;
  EXPECT_NE(added.out.find("credit of op is now 15"), std::string::npos) << added.out;
  std::error_code ec;
  std::filesystem::rename(token_path, token_path + ".away", ec);
  auto no_token = gw.ctl({"--admin", admin, "credit", "add", "op", "5"});
  std::filesystem::rename(token_path + ".away", token_path, ec);
  EXPECT_EQ(no_token.exit_code, 1) << no_token.out << no_token.err;
  EXPECT_NE(no_token.err.find(token_path), std::string::npos) << no_token.err;

  // A token file others may read is set back to 0600 at the next start, and
  // the token is kept.
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  ASSERT_EQ(::chmod(token_path.c_str(), 0644), 0);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  EXPECT_EQ(file_mode(token_path), 0600u);
  EXPECT_NE(gw.last_log().find("set to 0600"), std::string::npos) << gw.last_log();
  EXPECT_EQ(gw.admin_token(), token);
  EXPECT_EQ(gw.admin("GET", "/metrics").status, 200);
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

TEST(admin_hardening, a_non_loopback_admin_address_is_refused_at_start) {
  gateway gw({}, "[admin]\naddress = \"0.0.0.0\"\nport = 0\n");
  EXPECT_FALSE(gw.start()) << "the gateway started with [admin] address = \"0.0.0.0\"";
  const std::string log = gw.last_log();
  EXPECT_NE(log.find("postino.toml:"), std::string::npos) << log;
  EXPECT_NE(log.find("admin.address"), std::string::npos) << log;
  EXPECT_NE(log.find("0.0.0.0"), std::string::npos) << log;
}

// A connection that sends a request line one byte at a time and never ends it.
class drip_feeder {
 public:
  explicit drip_feeder(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~drip_feeder() {
    if (fd_ >= 0) ::close(fd_);
  }
  drip_feeder(const drip_feeder&) = delete;
  drip_feeder& operator=(const drip_feeder&) = delete;
  bool connected() const { return fd_ >= 0; }
  // One more byte; false once the server has closed the connection.
  bool drip() {
    static const std::string line = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n";
    const char byte = line[sent_++ % line.size()];
    return fd_ >= 0 && ::send(fd_, &byte, 1, MSG_NOSIGNAL) == 1;
  }

 private:
  int fd_ = -1;
  std::size_t sent_ = 0;
};

// The deadline bounds time; a header line that never ends is bounded in
// bytes too (httplib would grow it until its LF, before any check runs).
TEST(admin_hardening, a_header_line_that_never_ends_is_cut_off_at_its_byte_bound) {
  gateway gw({});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  const std::int64_t before = rss_bytes(gw.pid());
  raw_client c(gw.admin_port());
  const std::string endless = "GET /metrics HTTP/1.1\r\nX-Pad: " + std::string(32u << 20, 'a');
  const std::size_t sent = c.send_for(endless, std::chrono::seconds(10));
  const std::int64_t grown = rss_bytes(gw.pid()) - before;
  std::printf("admin: a 32 MiB header line: %zu bytes taken, RSS +%lld KiB\n", sent, static_cast<long long>(grown / 1024));
  EXPECT_LT(sent, endless.size());
  EXPECT_LT(grown, 16ll << 20);
  EXPECT_FALSE(gw.metrics().empty());
}

TEST(admin_hardening, drip_feeding_connections_do_not_hold_back_metrics) {
  gateway gw({});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  ASSERT_NE(gw.admin_port(), 0);
  // More than twice the workers (4): the old one-at-a-time endpoint gave
  // each 2 s, so /metrics waited 20 s behind them; the drip-feeders stay
  // open for 12 s, and /metrics must be answered within that time.
  constexpr int feeders = 10;
  std::vector<std::unique_ptr<drip_feeder>> open;
  for (int i = 0; i < feeders; ++i) {
    open.push_back(std::make_unique<drip_feeder>(gw.admin_port()));
    ASSERT_TRUE(open.back()->connected());
  }
  const auto hold_until = clock_type::now() + 12s;
  std::atomic<int> closed_by_server{0};
  std::thread dripping([&] {
    std::vector<bool> alive(feeders, true);
    while (clock_type::now() < hold_until) {
      for (int i = 0; i < feeders; ++i)
        if (alive[i] && !open[i]->drip()) {
          alive[i] = false;
          ++closed_by_server;
        }
      std::this_thread::sleep_for(500ms);
    }
  });
  std::this_thread::sleep_for(300ms);  // every feeder has sent its first byte

  const auto asked = clock_type::now();
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(hold_until - asked);
  const http_reply m = http_exchange(gw.admin_port(), "GET", "/metrics",
                                     "Authorization: Bearer " + gw.admin_token() + "\r\n", "", left);
  const double latency_s = std::chrono::duration<double>(clock_type::now() - asked).count();
  dripping.join();
  std::printf("/metrics behind %d drip-feeding connections: %s after %.2f s (%d of them closed by the server "
              "within the 12 s)\n",
              feeders, m.status == 200 ? "answered" : "NOT answered", latency_s, closed_by_server.load());
  EXPECT_EQ(m.status, 200) << "no answer while the drip-feeders were open\n" << gw.last_log();
  EXPECT_NE(m.body.find("postino_shards"), std::string::npos) << m.body;
  open.clear();
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

}  // namespace
}  // namespace postino::test
