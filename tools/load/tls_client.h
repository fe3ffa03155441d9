// postino-load's TLS client: OpenSSL 3 on two memory BIOs per connection.
// Why memory BIOs and not SSL on the socket: the worker drives its sockets
// through io_uring with direct (registered) descriptors, so there is no fd
// OpenSSL could read or write, and every byte already arrives in, or leaves
// from, a buffer the ring owns. The ring's receive buffer is copied into the
// read BIO and handed back at once; what OpenSSL writes into the write BIO is
// moved into the connection's send buffer, which the kernel reads. Nothing
// blocks and no thread is added. One tls_client_context per worker thread
// owns its SSL_CTX and the last session ticket it received (for --tls-resume
// on); a tls_connection owns its SSL object and both BIOs. Tools may not use
// the io part, so none of src/io/tls.cc is shared: this is a client.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <array>
#include <memory>
#include <string>
#include <string_view>

namespace postino::load {

enum class tls_mode { none, implicit, starttls };

inline const char* tls_mode_name(tls_mode m) {
  switch (m) {
    case tls_mode::none: return "none";
    case tls_mode::implicit: return "implicit";
    case tls_mode::starttls: return "starttls";
  }
  return "?";
}

// OpenSSL's error queue as text (and emptied), for a message that names why.
inline std::string openssl_errors(std::string_view what) {
  std::string text(what);
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    text += ": ";
    text += buf.data();
  }
  return text;
}

class tls_client_context {
 public:
  tls_client_context(const tls_client_context&) = delete;
  tls_client_context& operator=(const tls_client_context&) = delete;
  ~tls_client_context() {
    if (last_ != nullptr) SSL_SESSION_free(last_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }

  // ca_file empty with insecure: no verification (for load only). With a CA
  // file the server's certificate must chain to it and name verify_ip.
  static std::unique_ptr<tls_client_context> make(const std::string& ca_file, bool insecure, bool resume,
                                                  const std::string& verify_ip, std::string& error) {
    std::unique_ptr<tls_client_context> c(new tls_client_context);
    c->ctx_ = SSL_CTX_new(TLS_client_method());
    if (c->ctx_ == nullptr) {
      error = openssl_errors("SSL_CTX_new");
      return nullptr;
    }
    SSL_CTX_set_min_proto_version(c->ctx_, TLS1_2_VERSION);
    // Idle sessions keep no 17 KiB record buffers, on this side either.
    SSL_CTX_set_mode(c->ctx_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!insecure) {
      if (SSL_CTX_load_verify_locations(c->ctx_, ca_file.c_str(), nullptr) != 1) {
        error = openssl_errors("--tls-ca " + ca_file);
        return nullptr;
      }
      SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
      c->verify_ip_ = verify_ip;
    }
    c->resume_ = resume;
    if (resume) {
      // The client cache only hands us each new session (TLS 1.3 tickets
      // arrive after the handshake); the context keeps the latest.
      SSL_CTX_set_session_cache_mode(c->ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_set_app_data(c->ctx_, c.get());
      SSL_CTX_sess_set_new_cb(c->ctx_, &tls_client_context::on_new_session);
    } else {
      SSL_CTX_set_session_cache_mode(c->ctx_, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(c->ctx_, SSL_OP_NO_TICKET);
    }
    return c;
  }

  SSL_CTX* ctx() const { return ctx_; }
  bool resume() const { return resume_; }
  const std::string& verify_ip() const { return verify_ip_; }
  // The session the next connection offers; nullptr: a full handshake.
  SSL_SESSION* resume_session() const { return resume_ ? last_ : nullptr; }
  std::uint64_t tickets_received() const { return tickets_; }

 private:
  tls_client_context() = default;

  static int on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* self = static_cast<tls_client_context*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    if (self == nullptr) return 0;
    if (self->last_ != nullptr) SSL_SESSION_free(self->last_);
    self->last_ = session;  // returning 1 keeps OpenSSL's reference for us
    ++self->tickets_;
    return 1;
  }

  SSL_CTX* ctx_ = nullptr;
  SSL_SESSION* last_ = nullptr;
  std::string verify_ip_;
  bool resume_ = false;
  std::uint64_t tickets_ = 0;
};

enum class tls_status { ok, closed, failed };

class tls_connection {
 public:
  tls_connection() = default;
  tls_connection(const tls_connection&) = delete;
  tls_connection& operator=(const tls_connection&) = delete;
  ~tls_connection() {
    if (ssl_ == nullptr) return;
    // Marked as shut down so that OpenSSL does not void the session (and
    // its ticket) of a connection that ended after QUIT without close_notify.
    SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(ssl_);  // frees both BIOs
  }

  // Creates the SSL object, offers the context's last session when resuming
  // and writes the ClientHello (take it with take_cipher).
  bool start(const tls_client_context& c) {
    ssl_ = SSL_new(c.ctx());
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    if (ssl_ == nullptr || rbio == nullptr || wbio == nullptr) {
      BIO_free(rbio);
      BIO_free(wbio);
      error_ = openssl_errors("SSL_new");
      return false;
    }
    BIO_set_mem_eof_return(rbio, -1);  // empty means "wait for more", not EOF
    rbio_ = rbio;
    wbio_ = wbio;
    SSL_set_bio(ssl_, rbio, wbio);
    if (!c.verify_ip().empty()) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), c.verify_ip().c_str());
    if (SSL_SESSION* s = c.resume_session(); s != nullptr) {
      // A copy per connection: with one SSL_SESSION shared by 50 concurrent
      // connections OpenSSL marked it not resumable through one of them
      // (seen as 45% resumed instead of 100%), and every later offer of it
      // became a full handshake.
      SSL_SESSION* copy = SSL_SESSION_dup(s);
      if (copy != nullptr && SSL_set_session(ssl_, copy) == 1) offered_ = true;
      SSL_SESSION_free(copy);
    }
    SSL_set_connect_state(ssl_);
    return step_handshake() != tls_status::failed;
  }

  // Ciphertext from the server; the application bytes it carries are
  // appended to plain. closed: the server sent close_notify.
  tls_status on_cipher(std::string_view in, std::string& plain) {
    if (!in.empty() && BIO_write(rbio_, in.data(), static_cast<int>(in.size())) != static_cast<int>(in.size())) {
      error_ = openssl_errors("BIO_write");
      return tls_status::failed;
    }
    if (!done_) {
      const tls_status s = step_handshake();
      if (s != tls_status::ok || !done_) return s;
    }
    std::array<char, 16384> buf;
    for (;;) {
      std::size_t n = 0;
      if (SSL_read_ex(ssl_, buf.data(), buf.size(), &n) == 1) {
        plain.append(buf.data(), n);
        continue;
      }
      const int err = SSL_get_error(ssl_, 0);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return tls_status::ok;
      if (err == SSL_ERROR_ZERO_RETURN) return tls_status::closed;
      error_ = openssl_errors("SSL_read");
      return tls_status::failed;
    }
  }

  // Encrypts application bytes (after the handshake; memory BIOs take all).
  bool write_plain(std::string_view data) {
    std::size_t n = 0;
    if (!data.empty() && SSL_write_ex(ssl_, data.data(), data.size(), &n) != 1) {
      error_ = openssl_errors("SSL_write");
      return false;
    }
    return true;
  }

  // Moves what OpenSSL wrote (handshake records, tickets' replies, data)
  // to the end of out.
  void take_cipher(std::string& out) {
    char* p = nullptr;
    const long n = BIO_get_mem_data(wbio_, &p);
    if (n <= 0) return;
    out.append(p, static_cast<std::size_t>(n));
    (void)BIO_reset(wbio_);
  }

  bool handshake_done() const { return done_; }
  bool resumed() const { return done_ && SSL_session_reused(ssl_) == 1; }
  bool offered_session() const { return offered_; }
  const std::string& error() const { return error_; }
  SSL* ssl() const { return ssl_; }

 private:
  tls_status step_handshake() {
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      done_ = true;
      return tls_status::ok;
    }
    const int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return tls_status::ok;
    error_ = openssl_errors("TLS handshake");
    const long v = SSL_get_verify_result(ssl_);
    if (v != X509_V_OK) error_ += std::string(" (certificate: ") + X509_verify_cert_error_string(v) + ")";
    return tls_status::failed;
  }

  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // owned by ssl_
  BIO* wbio_ = nullptr;  // owned by ssl_
  bool done_ = false;
  bool offered_ = false;
  std::string error_;
};

}  // namespace postino::load
