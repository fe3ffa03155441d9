// Password hashing for account credentials: Argon2id (libargon2) with the
// OWASP minimum parameters and a random salt from OpenSSL. These calls are
// slow on purpose (tens of milliseconds, ~19 MiB of memory each), so shard
// threads never call them; hash_pool workers and postino-ctl do. The password
// buffers belong to the caller and are only read; the encoded string returned
// is a fresh std::string owned by the caller.
#include <argon2.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>
#include <string>

#include "postino/credit.h"

namespace postino::credit {
namespace {

// OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1.
constexpr std::uint32_t time_cost = 2;
constexpr std::uint32_t memory_kib = 19456;
constexpr std::uint32_t parallelism = 1;
constexpr std::size_t salt_bytes = 16;
constexpr std::size_t hash_bytes = 32;

}  // namespace

std::string hash_password(std::string_view password) {
  std::array<unsigned char, salt_bytes> salt{};
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1)
    throw std::runtime_error("hash_password: RAND_bytes failed to produce a salt");

  std::string encoded(argon2_encodedlen(time_cost, memory_kib, parallelism, salt_bytes,
                                        hash_bytes, Argon2_id),
                      '\0');
  int rc = argon2id_hash_encoded(time_cost, memory_kib, parallelism, password.data(),
                                 password.size(), salt.data(), salt.size(), hash_bytes,
                                 encoded.data(), encoded.size());
  if (rc != ARGON2_OK)
    throw std::runtime_error(std::string("hash_password: ") + argon2_error_message(rc));
  // argon2_encodedlen counts the terminating NUL; the library writes a C string.
  encoded.resize(encoded.find('\0'));
  return encoded;
}

bool verify_password(std::string_view encoded, std::string_view password) {
  // The library parses a NUL-terminated string; an embedded NUL is malformed.
  if (encoded.empty() || encoded.find('\0') != std::string_view::npos) return false;
  std::string c_encoded(encoded);
  return argon2id_verify(c_encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

}  // namespace postino::credit
