// Safe operations (issue 17): a second gateway on an address another one
// already serves must not start (with SO_REUSEPORT it would silently take
// part of the connections), and says which address; the first keeps serving.
// Processes are bounded in time and stopped by the test's objects.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "harness.h"

namespace postino::test {
namespace {

// A loopback port nobody listens on now (the kernel's choice, released).
std::uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(a.sin_port);
}

// Runs a second postino, in its own data directory, on `listener_toml`.
command_result second_gateway(const temp_dir& dir, const std::string& listener_toml) {
  const std::string config = dir.path() + "/postino.toml";
  std::ofstream(config) << "data_dir = \"" << dir.path() << "/data\"\nshards = 1\n" << listener_toml;
  return run_command({binary_path("postino"), "--config", config}, "", std::chrono::seconds(30));
}

TEST(safe_ops_test, a_second_gateway_on_the_same_address_refuses_to_start) {
  const std::uint16_t port = free_port();
  ASSERT_NE(port, 0);
  const std::string listener =
      "[[listener]]\naddress = \"127.0.0.1\"\nport = " + std::to_string(port) + "\n";
  gateway first({{"myuserid", "mypassword", 10, {}}}, listener);
  ASSERT_TRUE(first.start()) << first.last_log();

  temp_dir dir;
  auto second = second_gateway(dir, listener);
  EXPECT_FALSE(second.timed_out) << "the second gateway started and shared the port";
  EXPECT_NE(second.exit_code, 0);
  const std::string where = "127.0.0.1:" + std::to_string(port);
  EXPECT_NE(second.err.find("cannot listen on " + where + ": another process already listens there"),
            std::string::npos)
      << second.err;

  // A wildcard address covers the loopback one.
  auto wildcard = second_gateway(dir, "[[listener]]\naddress = \"0.0.0.0\"\nport = " + std::to_string(port) +
                                          "\nrequire_tls_for_auth = false\n");
  EXPECT_NE(wildcard.exit_code, 0) << wildcard.err;
  EXPECT_NE(wildcard.err.find("already listens there"), std::string::npos) << wildcard.err;

  // The first still answers every connection.
  for (int i = 0; i < 8; ++i) {
    raw_client c(first.smtp_port());
    ASSERT_TRUE(c.connected());
    EXPECT_EQ(c.reply().substr(0, 4), "220 ");
  }
  EXPECT_EQ(first.stop(), 0) << first.last_log();

  // Once it has gone the port is free again: a restart is not refused (its
  // connections' TIME_WAIT does not count).
  gateway again({{"myuserid", "mypassword", 10, {}}}, listener);
  EXPECT_TRUE(again.start()) << again.last_log();
}

}  // namespace
}  // namespace postino::test
