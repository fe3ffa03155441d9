// TLS for connections on the shards' rings (DESIGN.md "TLS"): OpenSSL 3 works
// on bytes the ring has already read and produces bytes the ring will send;
// no OpenSSL call touches the socket, blocks, or runs on another thread.
//
// tls_context: one listener's SSL_CTX, shared by every shard (SSL_new is
// thread-safe on a shared context), so one session-ticket key set serves all
// shards and a reconnect that lands on another shard still resumes. reload()
// (main thread, SIGHUP) builds a new context from the files and carries the
// ticket keys over.
//
// tls_channel: one connection's SSL object between two small custom BIOs
// instead of memory BIOs: the read BIO reads straight from the received ring
// buffer the connection lends it for one call, the write BIO appends to the
// channel's pending string, which the connection swaps into its send buffer.
// So ciphertext is never copied into a BIO's own buffer, and an idle channel
// holds no buffer at all (SSL_MODE_RELEASE_BUFFERS frees OpenSSL's record
// buffers between records). A kernel with the `tls` ULP could take the
// records over after the handshake (kTLS); this one has none, so that seam
// is only this class's boundary.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct bio_st BIO;

namespace postino::io {

enum class tls_mode : std::uint8_t { none, starttls, implicit };
enum class tls_version : std::uint8_t { tls1_1, tls1_2, tls1_3 };

struct tls_settings {
  std::string certificate;  // PEM file: the certificate, then its chain
  std::string private_key;  // PEM file
  // TLS 1.1 is refused by OpenSSL 3 at its default security level, so asking
  // for it also sets security level 0 on this listener (old MM4 peers).
  tls_version min_version = tls_version::tls1_2;
};

class tls_context {
 public:
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  // Reads the certificate and key; null with the reason (naming the file) in
  // `error` when they cannot be used.
  static std::unique_ptr<tls_context> load(const tls_settings& settings, std::string& error);
  // Reads the files again. On success new handshakes use them and tickets
  // issued before still resume; on failure the current ones stay and `error`
  // says why. Main thread only.
  bool reload(std::string& error);
  // The context new connections use.
  SSL_CTX* current() const { return current_.load(std::memory_order_acquire); }
  const tls_settings& settings() const { return settings_; }

 private:
  explicit tls_context(tls_settings settings) : settings_(std::move(settings)) {}
  tls_settings settings_;
  std::atomic<SSL_CTX*> current_{nullptr};
  // Every context made: a shard may be inside SSL_new with an older one, and
  // reloads are rare, so they are freed only with the listener.
  std::vector<SSL_CTX*> contexts_;
};

class tls_channel {
 public:
  enum class status : std::uint8_t {
    more,    // everything given was taken; waiting for the peer's next bytes
    closed,  // the peer sent close_notify
    failed,  // a fatal error: the alert, if any, is in pending()
  };

  explicit tls_channel(SSL_CTX* context);  // a server; valid() false when OpenSSL cannot make one
  ~tls_channel();
  tls_channel(const tls_channel&) = delete;
  tls_channel& operator=(const tls_channel&) = delete;

  bool valid() const { return ssl_ != nullptr; }
  // Decrypts `ciphertext` (a received buffer, read only during the call):
  // handshake records advance the handshake, whose answers go to pending();
  // each record's plaintext is decrypted into `scratch` and handed to
  // `sink(std::string_view)`, which returns false to stop early (its session
  // closed: the rest is dropped). Returns more once everything is consumed.
  template <class Sink>
  status decrypt(std::string_view ciphertext, char* scratch, std::size_t capacity, Sink&& sink) {
    input_ = ciphertext;
    std::size_t produced = 0;
    status s;
    while ((s = read_record(scratch, capacity, produced)) == status::more && produced > 0)
      if (!sink(std::string_view(scratch, produced))) break;
    input_ = {};
    return s;
  }
  // Encrypts `plain` into pending(); only once established(). False on an
  // OpenSSL error.
  bool write(std::string_view plain);
  // Queues a close_notify alert in pending().
  void close_notify();
  // Ciphertext to send; the owner takes it (swap) and sends it in order.
  std::string& pending() { return pending_; }

  bool established() const;
  bool resumed() const;
  std::string_view version() const;
  // Why the last call failed (OpenSSL's reason), for logs.
  const std::string& failure() const { return failure_; }

 private:
  static int bio_read(BIO* bio, char* out, int length);
  static int bio_write(BIO* bio, const char* in, int length);
  status read_record(char* plain, std::size_t capacity, std::size_t& produced);
  status classify(int result);

  SSL* ssl_ = nullptr;
  std::string_view input_;  // lent by read(); empty outside it
  std::string pending_;
  std::string failure_;
};

}  // namespace postino::io
