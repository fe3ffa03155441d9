// io::tls_context and io::tls_channel against a real OpenSSL client on
// memory BIOs: handshake, data both ways, a fatal alert for garbage,
// stateless resumption (also across a certificate reload, which carries the
// ticket keys over), reload failures that keep the old certificate, file
// errors that name the file, and the TLS 1.1 opt-in. The test makes its own
// self-signed P-256 certificate in a temporary directory. Buffers: each
// pump copies between the client's memory BIOs and the channel's strings.
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "postino/tls.h"

namespace postino::io {
namespace {

namespace fs = std::filesystem;

struct ssl_free_t {
  void operator()(SSL* s) const { SSL_free(s); }
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
template <class T>
using owned = std::unique_ptr<T, ssl_free_t>;

// A self-signed certificate for "localhost" and its key, as PEM files.
struct credentials {
  fs::path dir;
  std::string certificate, private_key;

  explicit credentials(const std::string& name) {
    dir = fs::temp_directory_path() / ("postino-tls-" + name + "-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    certificate = (dir / "cert.pem").string();
    private_key = (dir / "key.pem").string();
    write(certificate, private_key);
  }
  ~credentials() { fs::remove_all(dir); }

  static void write(const std::string& cert_path, const std::string& key_path) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    FILE* f = std::fopen(cert_path.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
    f = std::fopen(key_path.c_str(), "w");
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
  }
};

// One client connection and the server channel, pumped by hand.
struct pair {
  owned<SSL> client;
  BIO* to_server = nullptr;    // client writes here (owned by the SSL)
  BIO* from_server = nullptr;  // client reads here
  tls_channel server;
  std::string received;        // plaintext the channel delivered
  tls_channel::status last = tls_channel::status::more;

  pair(SSL_CTX* client_ctx, SSL_CTX* server_ctx) : client(SSL_new(client_ctx)), server(server_ctx) {
    to_server = BIO_new(BIO_s_mem());
    from_server = BIO_new(BIO_s_mem());
    SSL_set_bio(client.get(), from_server, to_server);
    SSL_set_connect_state(client.get());
  }

  // Moves bytes both ways until neither side has anything to say.
  void pump() {
    for (int round = 0; round < 20; ++round) {
      SSL_do_handshake(client.get());
      char buf[4096];
      std::string wire;
      int n;
      while ((n = BIO_read(to_server, buf, sizeof buf)) > 0) wire.append(buf, static_cast<std::size_t>(n));
      if (!wire.empty()) {
        char scratch[16384];
        last = server.decrypt(wire, scratch, sizeof scratch, [this](std::string_view plain) {
          received.append(plain);
          return true;
        });
      }
      const bool answered = !server.pending().empty();
      if (answered) {
        BIO_write(from_server, server.pending().data(), static_cast<int>(server.pending().size()));
        server.pending().clear();
      }
      if (wire.empty() && !answered) return;
    }
  }

  std::string client_read() {
    std::string out;
    char buf[4096];
    int n;
    while ((n = SSL_read(client.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }
};

owned<SSL_CTX> client_context(int max_version = 0, bool seclevel0 = false) {
  owned<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()));
  if (max_version != 0) {
    SSL_CTX_set_min_proto_version(ctx.get(), max_version);
    SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  }
  if (seclevel0) SSL_CTX_set_security_level(ctx.get(), 0);
  return ctx;
}

std::unique_ptr<tls_context> server_context(const credentials& c, tls_version min = tls_version::tls1_2) {
  std::string error;
  auto ctx = tls_context::load({c.certificate, c.private_key, min}, error);
  EXPECT_TRUE(ctx) << error;
  return ctx;
}

TEST(io_tls, handshake_then_data_both_ways) {
  credentials c("data");
  auto server = server_context(c);
  auto client = client_context();
  pair p(client.get(), server->current());
  p.pump();
  ASSERT_TRUE(p.server.established());
  EXPECT_EQ(p.server.version(), "TLSv1.3");
  EXPECT_FALSE(p.server.resumed());

  ASSERT_EQ(SSL_write(p.client.get(), "EHLO client\r\n", 13), 13);
  p.pump();
  EXPECT_EQ(p.received, "EHLO client\r\n");

  ASSERT_TRUE(p.server.write("250 OK\r\n"));
  BIO_write(p.from_server, p.server.pending().data(), static_cast<int>(p.server.pending().size()));
  p.server.pending().clear();
  EXPECT_EQ(p.client_read(), "250 OK\r\n");
}

TEST(io_tls, bytes_that_are_no_tls_fail_and_deliver_nothing) {
  credentials c("garbage");
  auto server = server_context(c);
  tls_channel channel(server->current());
  char scratch[16384];
  const std::string junk = "RSET\r\nQUIT\r\n";
  bool delivered = false;
  const auto status = channel.decrypt(junk, scratch, sizeof scratch, [&](std::string_view) {
    delivered = true;
    return true;
  });
  EXPECT_FALSE(delivered);
  EXPECT_EQ(status, tls_channel::status::failed);
  EXPECT_FALSE(channel.failure().empty());
  EXPECT_FALSE(channel.established());
  // Nothing was delivered as plaintext; and bytes that are no TLS record at
  // all get no alert (OpenSSL cannot tell which version to answer in).
}

// The session a client keeps after its first connection: in TLS 1.3 the
// ticket comes after the handshake, so the client reads once to take it.
owned<SSL_SESSION> first_session(SSL_CTX* client, SSL_CTX* server) {
  pair p(client, server);
  p.pump();
  EXPECT_TRUE(p.server.established());
  p.client_read();
  // A client that closes without close_notify leaves its session marked
  // not resumable (OpenSSL's ssl_clear_bad_session), so close cleanly.
  SSL_shutdown(p.client.get());
  return owned<SSL_SESSION>(SSL_get1_session(p.client.get()));
}

TEST(io_tls, a_ticket_resumes_also_after_a_reload) {
  credentials c("resume");
  auto server = server_context(c);
  auto client = client_context();
  owned<SSL_SESSION> session = first_session(client.get(), server->current());
  ASSERT_TRUE(session);
  ASSERT_TRUE(SSL_SESSION_is_resumable(session.get()));

  pair again(client.get(), server->current());
  SSL_set_session(again.client.get(), session.get());
  again.pump();
  ASSERT_TRUE(again.server.established());
  EXPECT_TRUE(again.server.resumed());

  SSL_CTX* before = server->current();
  std::string error;
  ASSERT_TRUE(server->reload(error)) << error;
  EXPECT_NE(server->current(), before);
  pair after_reload(client.get(), server->current());
  SSL_set_session(after_reload.client.get(), session.get());
  after_reload.pump();
  ASSERT_TRUE(after_reload.server.established());
  EXPECT_TRUE(after_reload.server.resumed()) << "ticket keys carried over to the reloaded context";
}

TEST(io_tls, a_reload_that_fails_keeps_the_current_certificate) {
  credentials c("reload");
  auto server = server_context(c);
  SSL_CTX* before = server->current();
  { FILE* f = std::fopen(c.certificate.c_str(), "w"); std::fputs("not a certificate\n", f); std::fclose(f); }
  std::string error;
  EXPECT_FALSE(server->reload(error));
  EXPECT_NE(error.find(c.certificate), std::string::npos) << error;
  EXPECT_EQ(server->current(), before);
  auto client = client_context();
  pair p(client.get(), server->current());
  p.pump();
  EXPECT_TRUE(p.server.established());
}

TEST(io_tls, load_errors_name_the_file) {
  credentials c("errors");
  std::string error;
  EXPECT_FALSE(tls_context::load({(c.dir / "missing.pem").string(), c.private_key, tls_version::tls1_2}, error));
  EXPECT_NE(error.find("missing.pem"), std::string::npos) << error;
  EXPECT_NE(error.find("certificate"), std::string::npos) << error;

  const std::string other_key = (c.dir / "other-key.pem").string();
  const std::string other_cert = (c.dir / "other-cert.pem").string();
  credentials::write(other_cert, other_key);
  error.clear();
  EXPECT_FALSE(tls_context::load({c.certificate, other_key, tls_version::tls1_2}, error));
  EXPECT_NE(error.find("other-key.pem"), std::string::npos) << error;
  EXPECT_NE(error.find("mismatch"), std::string::npos) << error;
}

TEST(io_tls, tls_1_1_only_when_the_listener_asks) {
  credentials c("v11");
  auto old_client = client_context(TLS1_1_VERSION, true);
  auto strict = server_context(c);
  pair refused(old_client.get(), strict->current());
  refused.pump();
  EXPECT_FALSE(refused.server.established());

  auto lenient = server_context(c, tls_version::tls1_1);
  pair accepted(old_client.get(), lenient->current());
  accepted.pump();
  ASSERT_TRUE(accepted.server.established()) << accepted.server.failure();
  EXPECT_EQ(accepted.server.version(), "TLSv1.1");
}

}  // namespace
}  // namespace postino::io
