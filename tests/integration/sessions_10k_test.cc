// Ten thousand SMTP sessions open at once against the running gateway. Every
// session connects, says EHLO and authenticates; only when all of them are
// authenticated (a barrier, checked against the gateway's own live-session
// count) does each one send MAIL, RCPT, DATA and its text, pipelined, then
// QUIT. Every message must be acknowledged and journaled. One epoll loop
// drives all the client sockets; the test stops itself after its deadline.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "harness.h"

namespace postino::test {
namespace {

constexpr int kSessions = 10000;
constexpr auto kDeadline = std::chrono::seconds(240);

enum class stage { greeting, ehlo, auth, authed, mail, rcpt, data, queued, quit, done, failed };

struct client {
  int fd = -1;
  stage at = stage::greeting;
  std::string in;
  std::string last_reply;
};

// Pops one complete (possibly multi-line) reply off `buf`.
bool pop_reply(std::string& buf, std::string& reply) {
  std::size_t pos = 0;
  while (true) {
    auto lf = buf.find('\n', pos);
    if (lf == std::string::npos) return false;
    if (lf - pos < 4 || buf[pos + 3] != '-') {
      reply = buf.substr(0, lf + 1);
      buf.erase(0, lf + 1);
      return true;
    }
    pos = lf + 1;
  }
}

void send_all(client& c, const std::string& bytes) {
  // Loopback sockets with tiny dialogues never fill the send buffer.
  if (::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
    c.at = stage::failed;
}

class ten_thousand : public ::testing::Test {
 protected:
  void SetUp() override {
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < kSessions + 200) GTEST_SKIP() << "needs " << kSessions + 200 << " open files";
  }
};

TEST_F(ten_thousand, all_connected_and_authenticated_then_all_send) {
  gateway gw({{"load", "load-pass", kSessions * 2, {}}});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  const std::string auth = "AUTH PLAIN " + base64(std::string("\0load\0load-pass", 15)) + "\r\n";
  auto deadline = std::chrono::steady_clock::now() + kDeadline;

  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<client> clients(kSessions);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(gw.smtp_port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < kSessions; ++i) {
    client& c = clients[i];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(c.fd, 0) << strerror(errno);
    int rc = connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << strerror(errno);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }

  int authed = 0, finished = 0, failed = 0;
  bool released = false;
  std::vector<std::string> failures;
  auto advance = [&](int i, const std::string& reply) {
    client& c = clients[i];
    auto code = reply.substr(0, 3);
    auto expect = [&](const char* want) {
      if (code == want) return true;
      c.at = stage::failed;
      ++failed;
      if (failures.size() < 5) failures.push_back("session " + std::to_string(i) + ": " + reply);
      return false;
    };
    switch (c.at) {
      case stage::greeting:
        if (expect("220")) { send_all(c, "EHLO load" + std::to_string(i) + "\r\n"); c.at = stage::ehlo; }
        break;
      case stage::ehlo:
        if (expect("250")) { send_all(c, auth); c.at = stage::auth; }
        break;
      case stage::auth:
        if (expect("235")) { c.at = stage::authed; ++authed; }
        break;
      case stage::mail: if (expect("250")) c.at = stage::rcpt; break;
      case stage::rcpt: if (expect("250")) c.at = stage::data; break;
      case stage::data:
        if (expect("354")) { send_all(c, "message " + std::to_string(i) + "\r\n.\r\n"); c.at = stage::queued; }
        break;
      case stage::queued:
        if (expect("250")) { c.last_reply = reply; send_all(c, "QUIT\r\n"); c.at = stage::quit; }
        break;
      case stage::quit:
        if (expect("221")) { c.at = stage::done; ++finished; }
        break;
      default:
        expect("---");
    }
  };

  std::vector<epoll_event> events(1024);
  while (finished + failed < kSessions && std::chrono::steady_clock::now() < deadline) {
    if (!released && authed + failed == kSessions) {
      // The barrier: everyone is in; the gateway must see them all live.
      auto m = gw.metrics();
      EXPECT_EQ(m["postino_sessions_active"], kSessions);
      released = true;
      for (int i = 0; i < kSessions; ++i) {
        if (clients[i].at != stage::authed) continue;
        // SIZE= as mail libraries send it: an undeclared DATA would reserve
        // the listener's maximum against max_body_memory (PROTOCOL.md 5).
        send_all(clients[i], "MAIL FROM:<ACME> SIZE=64\r\nRCPT TO:<+39333" + std::to_string(1000000 + i) +
                                 ">\r\nDATA\r\n");
        clients[i].at = stage::mail;
      }
    }
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
    for (int k = 0; k < n; ++k) {
      int i = static_cast<int>(events[k].data.u32);
      client& c = clients[i];
      char buf[4096];
      ssize_t got = recv(c.fd, buf, sizeof buf, 0);
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN) continue;
        if (c.at != stage::done && c.at != stage::failed) {
          c.at = stage::failed;
          ++failed;
          if (failures.size() < 5) failures.push_back("session " + std::to_string(i) + " closed");
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        continue;
      }
      c.in.append(buf, got);
      std::string reply;
      while (pop_reply(c.in, reply)) advance(i, reply);
    }
  }
  EXPECT_TRUE(released) << "only " << authed << " of " << kSessions << " sessions authenticated";
  EXPECT_EQ(finished, kSessions) << "failed " << failed << (failures.empty() ? "" : "; first: " + failures[0]);
  for (auto& c : clients) close(c.fd);
  close(ep);
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  EXPECT_EQ(messages_in(read_journals(gw.data_dir())).size(), static_cast<std::size_t>(finished));
}

}  // namespace
}  // namespace postino::test
