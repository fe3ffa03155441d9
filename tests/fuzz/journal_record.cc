// libFuzzer target: the journal record decoder as recovery runs it on what
// it finds on disk. The header check runs on the raw input; then the input
// (after two bytes choosing version and type) is decoded as a checked
// record's payload, as a record whose CRC matched would be (any known
// version and type: what check_record lets through). A refused
// payload must say why; an accepted one must encode again and decode to the
// same record (the second encoding equals the first).
// Buffers: the input is libFuzzer's; the records and strings are this file's.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../../src/spool/record_codec.h"

namespace {

using namespace postino::spool;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "journal_record invariant: %s %s\n", what, detail.c_str());
  std::abort();
}

bool decode(const std::string& bytes, record& out, std::string& what) {
  codec::header h;
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  if (codec::check_record(p, bytes.size(), h) != codec::check_result::ok) return what = "check", false;
  return codec::decode_record(h, p + codec::header_size, out, what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  codec::header raw;
  (void)codec::check_record(data, size, raw);
  if (size < 2) return 0;
  codec::header h;
  h.magic = codec::record_magic;
  // What check_record lets through: a known version and type.
  constexpr unsigned versions = codec::record_version - codec::oldest_record_version + 1;
  h.version = static_cast<std::uint8_t>(codec::oldest_record_version + data[0] % versions);
  h.type = static_cast<std::uint8_t>(1 + data[1] % static_cast<unsigned>(record_type::carried));
  h.length = static_cast<std::uint32_t>(size - 2);
  h.sequence = 42;
  h.unix_ms = 1'700'000'000'000;
  record r;
  std::string what;
  if (!codec::decode_record(h, data + 2, r, what)) {
    if (what.empty()) fail("a refusal without a reason", "");
    return 0;
  }
  const std::string first = codec::encode_record(r);
  record again;
  std::string why;
  if (!decode(first, again, why)) fail("an accepted record does not decode once encoded:", why);
  if (codec::encode_record(again) != first) fail("decode(encode(r)) differs from r", "");
  return 0;
}
