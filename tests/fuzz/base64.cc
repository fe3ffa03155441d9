// libFuzzer target: the strict base64 decoder of AUTH responses
// (src/smtp/base64.h) against OpenSSL's EVP_DecodeBlock. An input the
// decoder accepts must be strict base64 (alphabet, length a multiple of 4,
// at most two '=' at the end) and decode to OpenSSL's bytes; one it refuses
// must not be strict base64; and encoding any bytes decodes back to them.
// Buffers: the input is libFuzzer's; the strings are this file's.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../../src/smtp/base64.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view in) {
  std::fprintf(stderr, "base64 invariant: %s (%zu bytes)\n", what, in.size());
  std::abort();
}

bool in_alphabet(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// RFC 4648 section 4, obviously: the definition, character by character.
bool strict(std::string_view in) {
  if (in.size() % 4 != 0) return false;
  std::size_t pad = 0;
  while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  for (std::size_t i = 0; i + pad < in.size(); ++i)
    if (!in_alphabet(in[i])) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string ours;
  const bool ok = postino::smtp::decode_base64(in, ours);
  if (ok != strict(in)) fail(ok ? "accepted what is not strict base64" : "refused strict base64", in);
  if (ok && !in.empty()) {
    std::string theirs(in.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(theirs.data()),
                                  reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    if (n < 0) fail("OpenSSL refused what we accepted", in);
    const std::size_t pad = (in.back() == '=') + (in.size() > 1 && in[in.size() - 2] == '=');
    theirs.resize(static_cast<std::size_t>(n) - pad);
    if (theirs != ours) fail("decoded bytes differ from OpenSSL's", in);
  }
  std::string back;
  if (!postino::smtp::decode_base64(postino::smtp::encode_base64(in), back) || back != in)
    fail("encode then decode is not the identity", in);
  return 0;
}
