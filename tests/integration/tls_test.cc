// TLS with real clients (issue 17, PROTOCOL.md 1 and 5a): a gateway with a
// STARTTLS listener that requires TLS for AUTH, an implicit-TLS listener and
// one that also takes TLS 1.1; each client sends one message and every
// message must be stored. Then the STARTTLS injection test (CVE-2011-0411),
// session resumption through tickets, SIGHUP certificate reloads (a good
// file is served, a bad one keeps the old) and TLS 1.1 only where asked.
// neomutt runs with its default TLS settings (it needs STARTTLS, as the
// issue found). The certificate is made per test with the openssl command;
// clients verify it where they can. A missing client skips with the reason (fails under
// CI=true). Processes are the harness's; buffers are the test's strings.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "harness.h"

namespace postino::test {
namespace {

const account_spec kAccount{"bulk", "s3cret-pass", 1000, {}};

// A self-signed P-256 certificate for 127.0.0.1 and localhost.
bool make_certificate(const std::string& dir, const std::string& name, std::string& error) {
  const command_result r = run_command(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
       dir + "/" + name + "-key.pem", "-out", dir + "/" + name + ".pem", "-days", "2", "-subj", "/CN=" + name,
       "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"},
      "", std::chrono::seconds(30));
  error = r.err;
  return r.exit_code == 0;
}

std::string listener_toml(const std::string& cert, const std::string& key, const std::string& tls,
                          const std::string& more = "") {
  return "[[listener]]\naddress = \"127.0.0.1\"\nport = 0\ntls = \"" + tls + "\"\ncertificate = \"" + cert +
         "\"\nprivate_key = \"" + key + "\"\n" + more;
}

class tls : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("openssl")) SKIP_OR_FAIL("openssl not installed (scripts/deps installs it)");
    std::string error;
    ASSERT_TRUE(make_certificate(certs_.path(), "gateway", error)) << error;
    cert_ = certs_.path() + "/gateway.pem";
    key_ = certs_.path() + "/gateway-key.pem";
    gw_ = std::make_unique<gateway>(std::vector<account_spec>{kAccount},
                                    listener_toml(cert_, key_, "starttls", "require_tls_for_auth = true\n") +
                                        listener_toml(cert_, key_, "implicit") +
                                        listener_toml(cert_, key_, "implicit", "tls_min_version = \"1.1\"\n"));
    ASSERT_TRUE(gw_->start()) << gw_->last_log();
  }

  std::string port(unsigned listener) const { return std::to_string(gw_->smtp_port(listener)); }
  std::string starttls_port() const { return port(0); }
  std::string implicit_port() const { return port(1); }

  nlohmann::json python(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"python3", source_path("tests/integration/tls_clients.py")};
    argv.insert(argv.end(), args.begin(), args.end());
    const command_result r = run_command(argv, "", std::chrono::seconds(90));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto out = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_TRUE(out.is_object() && !out.contains("error")) << r.out << r.err;
    return out.is_object() ? out : nlohmann::json::object();
  }

  // An SMTP dialogue through `openssl s_client`, pipelined in one go (the
  // gateway serves a client that does not wait for 354).
  command_result s_client(const std::vector<std::string>& mode) {
    std::vector<std::string> argv{"openssl", "s_client", "-quiet", "-crlf", "-ign_eof", "-CAfile", cert_,
                                  "-verify_return_error"};
    argv.insert(argv.end(), mode.begin(), mode.end());
    const std::string dialogue = "EHLO client\nAUTH PLAIN " + base64(std::string(1, '\0') + kAccount.username +
                                 '\0' + kAccount.password) +
                                 "\nMAIL FROM:<ACME>\nRCPT TO:<+393331234567>\nDATA\nHello over TLS\n.\nQUIT\n";
    return run_command(argv, dialogue, std::chrono::seconds(30));
  }

  std::size_t stored_messages() {
    EXPECT_EQ(gw_->stop(), 0) << gw_->last_log();
    return messages_in(read_journals(gw_->data_dir())).size();
  }

  temp_dir certs_;
  std::string cert_, key_;
  std::unique_ptr<gateway> gw_;
};

TEST_F(tls, real_clients_send_over_starttls_and_implicit_tls) {
  std::size_t sent = 0;
  const std::string user = kAccount.username, pass = kAccount.password;

  auto out = python({"smtplib-starttls", starttls_port(), user, pass, cert_});
  EXPECT_EQ(out.value("refused", nlohmann::json::array()), nlohmann::json::array()) << out;
  EXPECT_FALSE(out.value("auth_offered_before_tls", true)) << "require_tls_for_auth: no AUTH in EHLO before TLS";
  EXPECT_TRUE(out.value("auth_offered_after_tls", false));
  std::cout << "smtplib starttls: " << out << "\n";
  ++sent;
  out = python({"smtplib-ssl", implicit_port(), user, pass, cert_});
  EXPECT_EQ(out.value("version", ""), "TLSv1.3") << out;
  std::cout << "smtplib SMTP_SSL: " << out << "\n";
  ++sent;

  command_result r = s_client({"-starttls", "smtp", "-connect", "127.0.0.1:" + starttls_port()});
  EXPECT_NE(r.out.find("queued as"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("221 2.0.0"), std::string::npos) << r.out;
  ++sent;
  r = s_client({"-connect", "127.0.0.1:" + implicit_port()});
  EXPECT_NE(r.out.find("220 "), std::string::npos) << "the greeting comes inside TLS\n" << r.out << r.err;
  EXPECT_NE(r.out.find("queued as"), std::string::npos) << r.out << r.err;
  ++sent;

  if (!have_program("swaks")) SKIP_OR_FAIL("swaks not installed (scripts/deps installs it)");
  for (const auto& [flag, p] : {std::pair<std::string, std::string>{"--tls", starttls_port()}, {"--tlsc", implicit_port()}}) {
    r = run_command({"swaks", "--server", "127.0.0.1:" + p, flag, "--auth", "PLAIN", "--auth-user", user,
                     "--auth-password", pass, "-f", "ACME", "-t", "00393331234567", "--data", "Hello over TLS\n"},
                    "", std::chrono::seconds(30));
    EXPECT_EQ(r.exit_code, 0) << flag << "\n" << r.out << r.err;
    EXPECT_NE(r.out.find("TLS started"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("queued as"), std::string::npos) << r.out;
    ++sent;
  }

  if (!have_program("curl")) SKIP_OR_FAIL("curl not installed (scripts/deps installs it)");
  temp_dir dir;
  const std::string file = dir.path() + "/sms.txt";
  std::ofstream(file) << "Hello over TLS\n";
  for (const auto& url : {"smtps://127.0.0.1:" + implicit_port(), "smtp://127.0.0.1:" + starttls_port()}) {
    r = run_command({"curl", "-sS", "-v", "--max-time", "30", "--ssl-reqd", "--cacert", cert_, url, "--mail-from",
                     "ACME", "--mail-rcpt", "+393331234567", "--user", user + ":" + pass, "--upload-file", file});
    EXPECT_EQ(r.exit_code, 0) << url << "\n" << r.err;
    EXPECT_NE(r.err.find("queued as"), std::string::npos) << r.err;
    ++sent;
  }

  if (!have_program("msmtp")) SKIP_OR_FAIL("msmtp not installed (scripts/deps installs it)");
  for (const auto& [p, starttls] : {std::pair<std::string, std::string>{starttls_port(), "on"}, {implicit_port(), "off"}}) {
    const std::string config = dir.path() + "/msmtprc-" + starttls;
    std::ofstream(config) << "account default\nhost 127.0.0.1\nport " << p << "\nauth plain\nuser " << user
                          << "\npassword " << pass << "\ntls on\ntls_starttls " << starttls << "\ntls_trust_file "
                          << cert_ << "\nfrom ACME\n";
    ::chmod(config.c_str(), 0600);
    r = run_command({"msmtp", "-C", config, "00393331234567"}, "Subject: x\n\nHello over TLS\n",
                    std::chrono::seconds(30));
    EXPECT_EQ(r.exit_code, 0) << "msmtp tls_starttls " << starttls << "\n" << r.out << r.err;
    ++sent;
  }
  EXPECT_EQ(stored_messages(), sent);
}

// The report: mutt and neomutt need STARTTLS with their default
// settings (ssl_starttls = yes). Only the certificate store is ours, so that
// batch mode does not ask whether to trust the self-signed certificate.
TEST_F(tls, neomutt_with_its_default_tls_settings) {
  if (!have_program("neomutt")) SKIP_OR_FAIL("neomutt not installed (scripts/deps installs it)");
  temp_dir home;
  const std::string rc = home.path() + "/muttrc";
  std::ofstream(rc) << "set smtp_url = \"smtp://" << kAccount.username << "@127.0.0.1:" << starttls_port()
                    << "/\"\nset smtp_pass = \"" << kAccount.password
                    << "\"\nset from = \"ACME@example.com\"\nset certificate_file = \"" << cert_ << "\"\n";
  const command_result r = run_command({"env", "HOME=" + home.path(), "neomutt", "-n", "-F", rc, "-s", "prova",
                                        "00393331234567@example.com"},
                                       "Ciao da neomutt\n", std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto m = gw_->metrics();
  EXPECT_EQ(m.at("postino_tls_handshakes_total"), 1) << "neomutt used STARTTLS";
  EXPECT_EQ(stored_messages(), 1u);
}

TEST_F(tls, bytes_pipelined_after_starttls_never_run) {
  const auto out = python({"injection", starttls_port(), cert_});
  std::cout << "injection: " << out << "\n";
  const auto clear = out.value("clear", nlohmann::json::array());
  ASSERT_FALSE(clear.empty()) << out;
  EXPECT_EQ(clear.back(), "220 2.0.0 Ready to start TLS") << out;
  EXPECT_EQ(out.value("clear_extra", "?"), "") << "nothing answered the injected RSET in the clear";
  const auto inside = out.value("inside", nlohmann::json::array());
  ASSERT_FALSE(inside.empty()) << "the handshake completed and the session answered";
  EXPECT_EQ(inside.front(), "250-postino.test Requested okay, completed")
      << "the first reply inside TLS is the one to the new EHLO\n" << out;
  for (const auto& line : clear) EXPECT_NE(line, "250 2.0.0 OK") << out;
  for (const auto& line : inside) EXPECT_NE(line, "250 2.0.0 OK") << out;
}

TEST_F(tls, auth_before_starttls_is_refused_where_tls_is_required) {
  raw_client c(gw_->smtp_port(0));
  ASSERT_TRUE(c.connected());
  c.reply();
  c.send("EHLO client\r\n");
  const std::string ehlo = c.reply();
  EXPECT_NE(ehlo.find("250 STARTTLS"), std::string::npos) << ehlo;
  EXPECT_EQ(ehlo.find("AUTH"), std::string::npos) << ehlo;
  c.send(auth_plain(kAccount.username, kAccount.password));
  EXPECT_EQ(c.reply(), "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
}

TEST_F(tls, tickets_resume_sessions_on_any_shard) {
  constexpr int connections = 10;
  const auto out = python({"resume", implicit_port(), kAccount.username, kAccount.password, cert_,
                           std::to_string(connections)});
  std::cout << "resumption: " << out << "\n";
  EXPECT_EQ(out.value("resumed", -1), connections - 1) << "every connection after the first resumes\n" << out;
  const auto m = gw_->metrics();
  EXPECT_GE(m.at("postino_tls_handshakes_total"), connections);
  EXPECT_GE(m.at("postino_tls_resumed_total"), connections - 1);
}

// The SHA-256 fingerprint of the certificate the implicit listener serves.
std::string served_fingerprint(const std::string& port) {
  const command_result r =
      run_command({"sh", "-c",
                   "openssl s_client -connect 127.0.0.1:" + port +
                       " </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"},
                  "", std::chrono::seconds(30));
  return r.out;
}

TEST_F(tls, sighup_reloads_a_good_certificate_and_keeps_the_old_one_for_a_bad_file) {
  const std::string before = served_fingerprint(implicit_port());
  ASSERT_NE(before.find("Fingerprint"), std::string::npos) << before;
  std::string error;
  ASSERT_TRUE(make_certificate(certs_.path(), "renewed", error)) << error;
  std::filesystem::rename(certs_.path() + "/renewed.pem", cert_);
  std::filesystem::rename(certs_.path() + "/renewed-key.pem", key_);
  std::size_t log_size = gw_->last_log().size();
  ASSERT_EQ(::kill(gw_->pid(), SIGHUP), 0);
  for (int i = 0; i < 100 && gw_->log_since(log_size).find("reloaded") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(gw_->log_since(log_size).find("certificate reloaded"), std::string::npos) << gw_->last_log();
  const std::string renewed = served_fingerprint(implicit_port());
  EXPECT_NE(renewed, before) << "new connections get the new certificate";

  std::ofstream(cert_) << "not a certificate\n";
  log_size = gw_->last_log().size();
  ASSERT_EQ(::kill(gw_->pid(), SIGHUP), 0);
  for (int i = 0; i < 100 && gw_->log_since(log_size).find("reloaded") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::string said = gw_->log_since(log_size);
  EXPECT_NE(said.find("not reloaded, keeping the current one"), std::string::npos) << said;
  EXPECT_NE(said.find(cert_), std::string::npos) << "the message names the file\n" << said;
  EXPECT_EQ(served_fingerprint(implicit_port()), renewed) << "a bad file keeps the certificate in use";
  EXPECT_EQ(gw_->stop(), 0) << gw_->last_log();
}

TEST_F(tls, tls_1_1_only_on_the_listener_that_asks_for_it) {
  const auto old_client = [&](const std::string& port) {
    return run_command({"openssl", "s_client", "-connect", "127.0.0.1:" + port, "-tls1_1", "-cipher",
                        "DEFAULT@SECLEVEL=0"},
                       "", std::chrono::seconds(30));
  };
  const command_result refused = old_client(implicit_port());
  EXPECT_NE(refused.out.find("Cipher is (NONE)"), std::string::npos) << "no TLS 1.1 handshake\n" << refused.out;
  const command_result accepted = old_client(port(2));
  EXPECT_EQ(accepted.out.find("Cipher is (NONE)"), std::string::npos) << accepted.out << accepted.err;
  EXPECT_NE(accepted.out.find("Protocol  : TLSv1.1"), std::string::npos) << accepted.out << accepted.err;
}

}  // namespace
}  // namespace postino::test
