// postino-load's TLS client (tools/load/tls_client.h) against an OpenSSL
// server in the same process, bytes handed across by hand as the worker's
// ring would: the handshake, data both ways, resumption from the thread's
// last ticket (and none with resumption off), certificate verification
// against --tls-ca (the right CA, a wrong one, the wrong IP), and the TLS
// counters' way through the worker-to-parent JSON. The certificate is made in
// memory; the server's SSL objects and buffers are the test's.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "../../tools/load/results.h"
#include "../../tools/load/tls_client.h"

namespace postino::load {
namespace {

// A self-signed P-256 certificate for IP 127.0.0.1, written as PEM to path.
struct test_certificate {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  std::string path;

  explicit test_certificate(const std::string& file) : path(file) {
    key = EVP_EC_gen("P-256");
    cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("test"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "IP:127.0.0.1");
    X509_add_ext(cert, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(cert, key, EVP_sha256());
    FILE* f = std::fopen(path.c_str(), "w");
    PEM_write_X509(f, cert);
    std::fclose(f);
  }
  ~test_certificate() {
    X509_free(cert);
    EVP_PKEY_free(key);
    std::remove(path.c_str());
  }
};

std::string temp_name(const char* tag) {
  return (std::filesystem::temp_directory_path() / (std::string("load_tls_test-") + tag + "-" +
                                                    std::to_string(::getpid()) + ".pem"))
      .string();
}

// A server SSL_CTX with stateless tickets, as the gateway's.
SSL_CTX* server_context(const test_certificate& c) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate(ctx, c.cert);
  SSL_CTX_use_PrivateKey(ctx, c.key);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);
  return ctx;
}

// One server connection on memory BIOs, and the pump between it and a client.
struct server_end {
  SSL* ssl;
  BIO* in;
  BIO* out;
  explicit server_end(SSL_CTX* ctx) : ssl(SSL_new(ctx)), in(BIO_new(BIO_s_mem())), out(BIO_new(BIO_s_mem())) {
    BIO_set_mem_eof_return(in, -1);
    SSL_set_bio(ssl, in, out);
    SSL_set_accept_state(ssl);
  }
  ~server_end() { SSL_free(ssl); }

  // Runs both sides until neither has bytes for the other; returns what the
  // client decrypted. The server answers every line it reads with "ok\n".
  std::string pump(tls_connection& client, tls_status& last) {
    std::string plain;
    last = tls_status::ok;
    for (int round = 0; round < 20; ++round) {
      std::string to_server;
      client.take_cipher(to_server);
      if (!to_server.empty()) BIO_write(in, to_server.data(), static_cast<int>(to_server.size()));
      if (!SSL_is_init_finished(ssl)) SSL_do_handshake(ssl);
      char buf[4096];
      std::size_t n = 0;
      while (SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) SSL_write_ex(ssl, "ok\n", 3, &n);
      char* p = nullptr;
      const long pending = BIO_get_mem_data(out, &p);
      if (pending <= 0 && to_server.empty()) break;
      std::string to_client(p, static_cast<std::size_t>(pending > 0 ? pending : 0));
      (void)BIO_reset(out);
      last = client.on_cipher(to_client, plain);
      if (last == tls_status::failed) break;
    }
    return plain;
  }
};

struct load_tls : ::testing::Test {
  test_certificate cert{temp_name("cert")};
  SSL_CTX* server = server_context(cert);
  ~load_tls() override { SSL_CTX_free(server); }

  std::unique_ptr<tls_client_context> client(bool resume, bool insecure = false, const std::string& ip = "127.0.0.1") {
    std::string error;
    auto c = tls_client_context::make(insecure ? "" : cert.path, insecure, resume, ip, error);
    EXPECT_TRUE(c) << error;
    return c;
  }
};

TEST_F(load_tls, handshake_and_data_over_memory_bios) {
  auto ctx = client(false);
  tls_connection conn;
  ASSERT_TRUE(conn.start(*ctx)) << conn.error();
  EXPECT_FALSE(conn.offered_session());
  server_end srv(server);
  tls_status st;
  srv.pump(conn, st);
  ASSERT_EQ(st, tls_status::ok) << conn.error();
  ASSERT_TRUE(conn.handshake_done());
  EXPECT_FALSE(conn.resumed());
  ASSERT_TRUE(conn.write_plain("EHLO me\n"));
  EXPECT_EQ(srv.pump(conn, st), "ok\n");
}

TEST_F(load_tls, the_next_connection_resumes_from_the_last_ticket) {
  auto ctx = client(true);
  for (int i = 0; i < 3; ++i) {
    tls_connection conn;
    ASSERT_TRUE(conn.start(*ctx));
    EXPECT_EQ(conn.offered_session(), i > 0);
    server_end srv(server);
    tls_status st;
    srv.pump(conn, st);
    ASSERT_TRUE(conn.handshake_done()) << conn.error();
    // TLS 1.3 tickets come after the handshake, with the first data.
    ASSERT_TRUE(conn.write_plain("NOOP\n"));
    EXPECT_EQ(srv.pump(conn, st), "ok\n");
    EXPECT_EQ(conn.resumed(), i > 0) << "connection " << i;
  }
  EXPECT_GE(ctx->tickets_received(), 3u);
}

TEST_F(load_tls, resumption_off_offers_nothing) {
  auto ctx = client(false);
  for (int i = 0; i < 2; ++i) {
    tls_connection conn;
    ASSERT_TRUE(conn.start(*ctx));
    EXPECT_FALSE(conn.offered_session());
    server_end srv(server);
    tls_status st;
    srv.pump(conn, st);
    ASSERT_TRUE(conn.write_plain("NOOP\n"));
    srv.pump(conn, st);
    EXPECT_FALSE(conn.resumed());
  }
  EXPECT_EQ(ctx->tickets_received(), 0u);
}

TEST_F(load_tls, verification_fails_for_a_wrong_ca_or_address_and_not_when_insecure) {
  test_certificate other{temp_name("other")};
  std::string error;
  auto wrong_ca = tls_client_context::make(other.path, false, false, "127.0.0.1", error);
  ASSERT_TRUE(wrong_ca) << error;
  auto wrong_ip = client(false, false, "127.0.0.2");
  for (auto* ctx : {wrong_ca.get(), wrong_ip.get()}) {
    tls_connection conn;
    ASSERT_TRUE(conn.start(*ctx));
    server_end srv(server);
    tls_status st;
    srv.pump(conn, st);
    EXPECT_EQ(st, tls_status::failed);
    EXPECT_FALSE(conn.handshake_done());
    EXPECT_NE(conn.error().find("certificate"), std::string::npos) << conn.error();
  }
  auto insecure = client(false, true);
  tls_connection conn;
  ASSERT_TRUE(conn.start(*insecure));
  server_end srv(server);
  tls_status st;
  srv.pump(conn, st);
  EXPECT_TRUE(conn.handshake_done()) << conn.error();
}

TEST_F(load_tls, a_missing_ca_file_is_named) {
  std::string error;
  EXPECT_FALSE(tls_client_context::make("/nonexistent/ca.pem", false, true, "127.0.0.1", error));
  EXPECT_NE(error.find("--tls-ca /nonexistent/ca.pem"), std::string::npos) << error;
}

TEST(load_tls_results, tls_counters_and_latency_survive_the_json_line_and_merge) {
  run_results a;
  a.tls_handshakes = 10;
  a.tls_resumed = 7;
  a.tls_offered = 8;
  a.tls_failures = 1;
  a.tls_handshake.record(2'000'000);
  const auto b = run_results::from_json(a.to_json());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->tls_handshakes, 10u);
  EXPECT_EQ(b->tls_resumed, 7u);
  EXPECT_EQ(b->tls_offered, 8u);
  EXPECT_EQ(b->tls_failures, 1u);
  EXPECT_EQ(b->tls_handshake.count(), 1u);
  run_results sum = *b;
  sum.merge(a);
  EXPECT_EQ(sum.tls_handshakes, 20u);
  EXPECT_EQ(sum.tls_handshake.count(), 2u);
}

}  // namespace
}  // namespace postino::load
