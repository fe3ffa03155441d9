// Safe operations (issue 17): a second gateway on an address another one
// already serves must not start (with SO_REUSEPORT it would silently take
// part of the connections), and says which address; the first keeps serving.
// The admin endpoint off loopback speaks only HTTPS (curl and postino-ctl
// with --admin-ca), its bearer token still required; SIGHUP reloads its
// certificate. Processes are bounded in time and stopped by the test's
// objects.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

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

// A self-signed certificate for 127.0.0.1 (as tests/integration/tls_test.cc).
bool make_certificate(const std::string& dir, std::string& error) {
  auto r = run_command({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", dir + "/admin-key.pem", "-out", dir + "/admin.pem", "-days", "2", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"},
                       "", std::chrono::seconds(30));
  error = r.err;
  return r.exit_code == 0;
}

TEST(safe_ops_test, the_admin_endpoint_off_loopback_speaks_only_https) {
  if (!have_program("openssl") || !have_program("curl")) GTEST_SKIP() << "openssl or curl not installed";
  temp_dir certs;
  std::string error;
  ASSERT_TRUE(make_certificate(certs.path(), error)) << error;
  const std::string cert = certs.path() + "/admin.pem";
  gateway gw({{"office", "office-pw", 42, {}}},
             "[admin]\naddress = \"0.0.0.0\"\ncertificate = \"" + cert + "\"\nprivate_key = \"" + certs.path() +
                 "/admin-key.pem\"\n");
  ASSERT_TRUE(gw.start()) << gw.last_log();
  ASSERT_NE(gw.admin_port(), 0);
  const std::string url = "https://127.0.0.1:" + std::to_string(gw.admin_port()) + "/metrics";

  auto ok = run_command({"curl", "-sS", "--max-time", "10", "--cacert", cert, "-o", "/dev/null", "-w", "%{http_code}",
                         "-H", "Authorization: Bearer " + gw.admin_token(), url});
  EXPECT_EQ(ok.out, "200") << ok.err;
  auto no_token = run_command({"curl", "-sS", "--max-time", "10", "--cacert", cert, "-o", "/dev/null", "-w",
                               "%{http_code}", url});
  EXPECT_EQ(no_token.out, "401") << no_token.err;
  auto untrusted = run_command({"curl", "-sS", "--max-time", "10", "-o", "/dev/null", url});
  EXPECT_NE(untrusted.exit_code, 0) << "a certificate nobody was told to trust";
  // Plain HTTP gets no answer: the token is never read in clear.
  EXPECT_EQ(http_exchange(gw.admin_port(), "GET", "/metrics", "Authorization: Bearer " + gw.admin_token() + "\r\n",
                          "", std::chrono::milliseconds(10000))
                .status,
            0);

  // postino-ctl over HTTPS: the live balance comes from the endpoint.
  const std::string admin = "127.0.0.1:" + std::to_string(gw.admin_port());
  auto ctl = [&](const std::string& trust) {
    return run_command({binary_path("postino-ctl"), "--data-dir", gw.data_dir(), "--admin", admin, "--admin-ca", trust,
                        "account", "show", "office"});
  };
  auto show = ctl(cert);
  EXPECT_EQ(show.exit_code, 0) << show.out << show.err;
  EXPECT_NE(show.out.find("balance: 42\n"), std::string::npos) << show.out;
  // Without the certificate to trust it refuses rather than sending the token.
  temp_dir other;
  ASSERT_TRUE(make_certificate(other.path(), error)) << error;
  auto wrong = ctl(other.path() + "/admin.pem");
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("certificate is not trusted"), std::string::npos) << wrong.err;

  // SIGHUP: the endpoint serves a renewed certificate (the old one is no
  // longer trusted for it), as the SMTP listeners do.
  std::filesystem::copy_file(other.path() + "/admin.pem", cert, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(other.path() + "/admin-key.pem", certs.path() + "/admin-key.pem",
                             std::filesystem::copy_options::overwrite_existing);
  const std::size_t log_size = gw.last_log().size();
  ASSERT_EQ(::kill(gw.pid(), SIGHUP), 0);
  for (int i = 0; i < 100 && gw.log_since(log_size).find("admin endpoint: certificate") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(gw.log_since(log_size).find("admin endpoint: certificate reloaded"), std::string::npos) << gw.last_log();
  auto renewed = run_command({"curl", "-sS", "--max-time", "10", "--cacert", other.path() + "/admin.pem", "-o",
                              "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer " + gw.admin_token(), url});
  EXPECT_EQ(renewed.out, "200") << renewed.err;
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

}  // namespace
}  // namespace postino::test
