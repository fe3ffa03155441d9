// A shard's cache of credentials that Argon2id has already verified, so a
// client that authenticates on every connection costs one HMAC instead of one
// Argon2id run. The key is HMAC-SHA256 under a secret drawn once per process,
// over username || '\0' || password: the cache never stores a password, a
// wrong password cannot match, and keys are useless outside this process. The
// username and password are read from the caller's buffers and never copied;
// the cache owns copies of the account snapshots it returns pointers to
// (valid until the next insert or invalidate).
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "postino/credit.h"

namespace postino::credit {
namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "postino: credential_cache: %s\n", what);
  std::abort();
}

const std::array<unsigned char, 32>& process_secret() {
  static const std::array<unsigned char, 32> secret = [] {
    std::array<unsigned char, 32> s{};
    if (RAND_bytes(s.data(), static_cast<int>(s.size())) != 1) die("RAND_bytes failed");
    return s;
  }();
  return secret;
}

// One keyed HMAC context per thread, re-initialised (same key) per call: the
// fetch and key schedule are paid once per thread, not once per AUTH.
class mac_context {
 public:
  mac_context() {
    mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac_ == nullptr) die("EVP_MAC_fetch(HMAC) failed");
    ctx_ = EVP_MAC_CTX_new(mac_);
    if (ctx_ == nullptr) die("EVP_MAC_CTX_new failed");
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end()};
    const auto& secret = process_secret();
    if (EVP_MAC_init(ctx_, secret.data(), secret.size(), params) != 1)
      die("EVP_MAC_init failed");
  }
  ~mac_context() {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
  }
  mac_context(const mac_context&) = delete;
  mac_context& operator=(const mac_context&) = delete;

  credential_cache::key digest(std::string_view username, std::string_view password) {
    // A null key re-initialises with the key already set.
    if (EVP_MAC_init(ctx_, nullptr, 0, nullptr) != 1) die("EVP_MAC_init (reuse) failed");
    const unsigned char separator = 0;
    if (EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(username.data()),
                       username.size()) != 1 ||
        EVP_MAC_update(ctx_, &separator, 1) != 1 ||
        EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(password.data()),
                       password.size()) != 1)
      die("EVP_MAC_update failed");
    credential_cache::key out(32, '\0');
    std::size_t len = 0;
    if (EVP_MAC_final(ctx_, reinterpret_cast<unsigned char*>(out.data()), &len, out.size()) != 1 ||
        len != out.size())
      die("EVP_MAC_final failed");
    return out;
  }

 private:
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
};

}  // namespace

credential_cache::key credential_cache::make_key(std::string_view username,
                                                 std::string_view password) {
  thread_local mac_context ctx;
  return ctx.digest(username, password);
}

const account_settings* credential_cache::find(const key& k) const {
  auto it = entries_.find(k);
  return it == entries_.end() ? nullptr : &it->second;
}

void credential_cache::insert(const key& k, const account_settings& account) {
  entries_.insert_or_assign(k, account);
}

void credential_cache::invalidate(account_id id) {
  std::erase_if(entries_, [id](const auto& entry) { return entry.second.id == id; });
}

}  // namespace postino::credit
