// postino-load over TLS against the real gateway (issue 17): implicit TLS
// with resumption on (churn: one message per connection, so every connection
// but each thread's first few offers a ticket) and STARTTLS with resumption
// off, a few seconds each. The generator's own counts must agree with the
// gateway: messages it saw accepted are the messages the journals hold, its
// handshakes are counted in postino_tls_handshakes_total, and resumed > 0
// only with --tls-resume on. Counts, never times, are asserted; the handshake
// rates are printed. Processes belong to the harness; buffers to the test.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

const account_spec kAccount{"bulk", "s3cret-pass", 1'000'000, {}};

bool make_certificate(const std::string& dir, std::string& error) {
  const command_result r = run_command(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
       dir + "/key.pem", "-out", dir + "/cert.pem", "-days", "2", "-subj", "/CN=localhost", "-addext",
       "subjectAltName=DNS:localhost,IP:127.0.0.1"},
      "", std::chrono::seconds(30));
  error = r.err;
  return r.exit_code == 0;
}

std::string listener(const std::string& dir, const std::string& tls) {
  return "[[listener]]\naddress = \"127.0.0.1\"\nport = 0\ntls = \"" + tls + "\"\ncertificate = \"" + dir +
         "/cert.pem\"\nprivate_key = \"" + dir + "/key.pem\"\nrequire_tls_for_auth = true\n";
}

nlohmann::json run_load(std::uint16_t port, const std::vector<std::string>& extra, const std::string& dir,
                        const std::string& name) {
  const std::string json = dir + "/" + name + ".json";
  std::vector<std::string> argv = {binary_path("postino-load"), "--server", "127.0.0.1", "--port",
                                   std::to_string(port), "--auth", "plain", "--user", kAccount.username,
                                   "--password", kAccount.password, "--from", "ACME", "--threads", "1",
                                   "--sessions", "4", "--duration", "3", "--json", json, "--no-progress"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const command_result r = run_command(argv, "", std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::cout << r.out;
  std::ifstream in(json);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str(), nullptr, false);
}

TEST(load_tls, counts_agree_with_the_gateway_over_implicit_tls_and_starttls) {
  if (!have_program("openssl")) GTEST_SKIP() << "openssl not installed (scripts/deps installs it)";
  temp_dir certs;
  std::string error;
  ASSERT_TRUE(make_certificate(certs.path(), error)) << error;
  gateway gw({kAccount}, listener(certs.path(), "implicit") + listener(certs.path(), "starttls"));
  ASSERT_TRUE(gw.start()) << gw.last_log();

  const auto implicit = run_load(gw.smtp_port(0),
                                 {"--tls", "implicit", "--tls-ca", certs.path() + "/cert.pem", "--tls-resume", "on",
                                  "--churn"},
                                 certs.path(), "implicit");
  ASSERT_TRUE(implicit.is_object());
  const auto& t1 = implicit["tls"];
  EXPECT_GT(implicit.value("messages", 0), 0);
  EXPECT_GT(t1.value("handshakes", 0), 0);
  EXPECT_GT(t1.value("resumed", 0), 0) << "churn with --tls-resume on resumes";
  EXPECT_EQ(t1.value("failures", -1), 0);
  EXPECT_EQ(implicit.value("errors", -1), 0);

  const auto starttls = run_load(gw.smtp_port(1),
                                 {"--tls", "starttls", "--tls-insecure", "--tls-resume", "off", "--churn"},
                                 certs.path(), "starttls");
  ASSERT_TRUE(starttls.is_object());
  const auto& t2 = starttls["tls"];
  EXPECT_GT(starttls.value("messages", 0), 0);
  EXPECT_GT(t2.value("handshakes", 0), 0);
  EXPECT_EQ(t2.value("resumed", -1), 0) << "--tls-resume off offers no ticket";
  EXPECT_EQ(t2.value("offered", -1), 0);
  EXPECT_EQ(starttls.value("errors", -1), 0);

  const auto m = gw.metrics();
  const auto metric = [&m](const std::string& name) {
    double sum = 0;  // over labels (listener), if any
    for (const auto& [k, v] : m)
      if (k == name || k.rfind(name + "{", 0) == 0) sum += v;
    return sum;
  };
  const std::uint64_t handshakes = t1.value("handshakes", 0ull) + t2.value("handshakes", 0ull);
  // The gateway may count a handshake the generator dropped at its end.
  EXPECT_GE(metric("postino_tls_handshakes_total"), static_cast<double>(handshakes));
  EXPECT_GE(metric("postino_tls_resumed_total"), t1.value("resumed", 0.0));
  std::cout << "implicit+resume: " << t1.dump() << "\nstarttls, no resume: " << t2.dump() << "\n";

  const std::uint64_t accepted = implicit.value("messages", 0ull) + starttls.value("messages", 0ull);
  const std::uint64_t in_flight = implicit.value("inflight", 0ull) + starttls.value("inflight", 0ull);
  ASSERT_EQ(gw.stop(), 0) << gw.last_log();
  const std::size_t stored = messages_in(read_journals(gw.data_dir())).size();
  EXPECT_GE(stored, accepted);
  EXPECT_LE(stored, accepted + in_flight) << "only messages the generator lost track of may be extra";
}

// Polls /metrics until `sessions` are live, each past its handshake, and the
// heap has stopped moving (no AUTH or handshake left in flight); returns the
// allocator's live bytes then, or -1 after `limit`.
double settled_heap(const gateway& gw, double sessions, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  double last = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = gw.metrics();
    const double heap = m["postino_heap_allocated_bytes"];
    const bool all_in = m["postino_sessions_active"] == sessions && m["postino_tls_handshakes_total"] >= sessions;
    if (all_in && last > 0 && std::abs(heap - last) < 0.002 * heap) return heap;
    last = all_in ? heap : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
  }
  return -1;
}

// The budget for an idle TLS session (SSL_MODE_RELEASE_BUFFERS, no
// record buffer kept while idle): at most 16 KiB. Asserted on the
// allocator's live bytes, which do not depend on the machine's load; RSS
// adds the fixed receive-buffer rings (bench/tls_compare reports both).
TEST(load_tls, an_idle_tls_session_holds_at_most_16_kib) {
  if (!have_program("openssl")) GTEST_SKIP() << "openssl not installed (scripts/deps installs it)";
  constexpr int kSessions = 1000;
  temp_dir certs;
  std::string error;
  ASSERT_TRUE(make_certificate(certs.path(), error)) << error;
  gateway gw({kAccount}, listener(certs.path(), "implicit"), 1);
  ASSERT_TRUE(gw.start()) << gw.last_log();
  const double before = gw.metrics()["postino_heap_allocated_bytes"];
  ASSERT_GT(before, 0) << "no postino_heap_allocated_bytes in /metrics";

  const std::vector<std::string> argv = {
      binary_path("postino-load"), "--server", "127.0.0.1", "--port", std::to_string(gw.smtp_port(0)), "--auth",
      "plain", "--user", kAccount.username, "--password", kAccount.password, "--tls", "implicit", "--tls-insecure",
      "--idle", std::to_string(kSessions), "--probe-interval", "60", "--duration", "10", "--threads", "1",
      "--no-progress"};
  command_result load;
  std::thread holder([&] { load = run_command(argv, "", std::chrono::seconds(90)); });
  const double held = settled_heap(gw, kSessions, std::chrono::seconds(60));
  holder.join();
  ASSERT_GT(held, 0) << "the sessions were not all held at once\n" << load.out << load.err << gw.last_log();
  const double per_session = (held - before) / kSessions;
  std::cout << "heap allocated per idle TLS session: " << per_session << " bytes (" << kSessions << " sessions)\n";
  EXPECT_LE(per_session, 16 * 1024.0);
  EXPECT_EQ(load.exit_code, 0) << load.out << load.err;
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
}

}  // namespace
}  // namespace postino::test
