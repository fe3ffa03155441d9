// Tests for Argon2id hashing (src/credit/password.cc). Each hash or verify
// costs tens of milliseconds and 19 MiB, so the cases are few and share one
// hash.
#include <gtest/gtest.h>

#include "postino/credit.h"

namespace postino::credit {
namespace {

TEST(password, hash_verifies_only_the_right_password) {
  const std::string encoded = hash_password("correct horse");
  EXPECT_TRUE(encoded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")) << encoded;
  EXPECT_EQ(encoded.find('\0'), std::string::npos);
  EXPECT_TRUE(verify_password(encoded, "correct horse"));
  EXPECT_FALSE(verify_password(encoded, "correct horsE"));
  EXPECT_FALSE(verify_password(encoded, ""));
  EXPECT_FALSE(verify_password(encoded, std::string("correct horse\0", 14)));
}

TEST(password, salts_differ) {
  // Same password, two hashes: a random salt makes them different, and each
  // verifies on its own. Uses a short password to keep the cost to two runs.
  const std::string a = hash_password("pw");
  const std::string b = hash_password("pw");
  EXPECT_NE(a, b);
  EXPECT_TRUE(verify_password(b, "pw"));
}

TEST(password, malformed_encodings_never_verify) {
  EXPECT_FALSE(verify_password("", "pw"));
  EXPECT_FALSE(verify_password("not a hash", "pw"));
  EXPECT_FALSE(verify_password("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", "pw"));
  EXPECT_FALSE(verify_password(std::string("$argon2id$\0", 11), "pw"));
}

}  // namespace
}  // namespace postino::credit
