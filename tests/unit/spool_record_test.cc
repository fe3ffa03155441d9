// Unit tests for the journal record format (src/spool/record_codec.*): the
// CRC32C against published vectors, the byte layout, round trips of every
// record type, and that every damaged or truncated record is refused. All
// buffers are test-owned strings.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "../../src/spool/record_codec.h"
#include "postino/spool.h"

namespace {

using namespace postino;
using namespace postino::spool;

const std::uint8_t* bytes(const std::string& s) {
  return reinterpret_cast<const std::uint8_t*>(s.data());
}

record sample_message() {
  record r;
  r.type = record_type::message;
  r.sequence = 0x1234;
  r.unix_ms = 1700000000123;
  r.tx.account = 42;
  r.tx.price = 6;
  r.tx.segments = 2;
  r.tx.originator = "ACME SHOP";
  r.tx.originator_type = smtp::originator_kind::alphanumeric;
  r.tx.recipients = {"+393331234567", "+393401234567", "+447911123456"};
  r.tx.body = "Test messaggio SMS via SMTP\r\nseconda riga \xe2\x82\xac";
  r.tx.sms_text = "Test messaggio SMS via SMTP\nseconda riga \xe2\x82\xac";
  r.tx.data_coding = 0x00;
  return r;
}

// An MM4 MMS as the content step leaves it (version 2 fields all set).
record sample_mms() {
  record r = sample_message();
  r.tx.price = 9;
  r.tx.segments = 1;
  r.tx.body = "X-Mms-Message-Type: MM4_forward.REQ\r\nMIME-Version: 1.0\r\n\r\n...";
  r.tx.sms_text = "Auguri! \xF0\x9F\x8E\x89";
  r.tx.data_coding = 0x08;
  r.tx.is_mms = true;
  r.tx.mm4_ack_owed = true;
  r.tx.mm4_message_id = "<MSG-42@mms.example.net>";
  r.tx.mm4_transaction_id = "T0001";
  r.tx.mm4_originator_system = "system-user@mms.example.net";
  return r;
}

// A message record as version 1 wrote it (before the content fields).
std::string version1_message(const smtp::transaction& tx, std::uint64_t sequence) {
  std::string payload;
  auto put = [&payload](const void* p, std::size_t n) { payload.append(static_cast<const char*>(p), n); };
  auto put_str = [&](const std::string& v) {
    std::uint32_t n = static_cast<std::uint32_t>(v.size());
    put(&n, 4);
    payload += v;
  };
  put(&tx.account, 8);
  put(&tx.price, 8);
  put(&tx.segments, 4);
  const auto kind = static_cast<std::uint8_t>(tx.originator_type);
  put(&kind, 1);
  put_str(tx.originator);
  const auto count = static_cast<std::uint32_t>(tx.recipients.size());
  put(&count, 4);
  for (const auto& r : tx.recipients) put_str(r);
  put_str(tx.body);
  std::string h(codec::header_size, '\0');
  const std::uint32_t magic = codec::record_magic, length = static_cast<std::uint32_t>(payload.size());
  std::memcpy(h.data(), &magic, 4);
  h[4] = 1;
  h[5] = static_cast<char>(record_type::message);
  std::memcpy(h.data() + 8, &length, 4);
  std::memcpy(h.data() + 16, &sequence, 8);
  std::string all = h + payload;
  std::uint32_t crc = codec::crc32c(all.data() + 4, 8);
  crc = codec::crc32c_extend(crc, all.data() + 16, all.size() - 16);
  std::memcpy(all.data() + 12, &crc, 4);
  return all;
}

void expect_same(const record& a, const record& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.sequence, b.sequence);
  EXPECT_EQ(a.unix_ms, b.unix_ms);
  EXPECT_EQ(a.tx.account, b.tx.account);
  EXPECT_EQ(a.tx.price, b.tx.price);
  EXPECT_EQ(a.tx.segments, b.tx.segments);
  EXPECT_EQ(a.tx.originator, b.tx.originator);
  EXPECT_EQ(a.tx.originator_type, b.tx.originator_type);
  EXPECT_EQ(a.tx.recipients, b.tx.recipients);
  EXPECT_EQ(a.tx.body, b.tx.body);
  EXPECT_EQ(a.tx.sms_text, b.tx.sms_text);
  EXPECT_EQ(a.tx.data_coding, b.tx.data_coding);
  EXPECT_EQ(a.tx.is_mms, b.tx.is_mms);
  EXPECT_EQ(a.tx.mm4_ack_owed, b.tx.mm4_ack_owed);
  EXPECT_EQ(a.tx.mm4_message_id, b.tx.mm4_message_id);
  EXPECT_EQ(a.tx.mm4_transaction_id, b.tx.mm4_transaction_id);
  EXPECT_EQ(a.tx.mm4_originator_system, b.tx.mm4_originator_system);
  EXPECT_EQ(a.account, b.account);
  EXPECT_EQ(a.amount, b.amount);
  EXPECT_EQ(a.sealed_segment, b.sealed_segment);
  EXPECT_EQ(a.offset, b.offset);
}

record round_trip(const std::string& encoded) {
  codec::header h;
  EXPECT_EQ(codec::check_record(bytes(encoded), encoded.size(), h), codec::check_result::ok);
  EXPECT_EQ(codec::header_size + h.length, encoded.size());
  record out;
  std::string what;
  EXPECT_TRUE(codec::decode_record(h, bytes(encoded) + codec::header_size, out, what)) << what;
  return out;
}

TEST(SpoolCrc, PublishedVectors) {
  EXPECT_EQ(codec::crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(codec::crc32c("", 0), 0u);
  std::uint8_t zeros[32] = {};
  EXPECT_EQ(codec::crc32c(zeros, sizeof zeros), 0x8A9136AAu);  // RFC 3720 B.4
  std::uint8_t ones[32];
  std::memset(ones, 0xFF, sizeof ones);
  EXPECT_EQ(codec::crc32c(ones, sizeof ones), 0x62A8AB43u);
  std::uint8_t ramp[32];
  for (int i = 0; i < 32; ++i) ramp[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(codec::crc32c(ramp, sizeof ramp), 0x46DD794Eu);
}

TEST(SpoolCrc, ExtendEqualsWhole) {
  std::string text = "The quick brown fox jumps over the lazy dog, twice over.";
  std::uint32_t whole = codec::crc32c(text.data(), text.size());
  for (std::size_t split = 0; split <= text.size(); ++split) {
    std::uint32_t a = codec::crc32c(text.data(), split);
    EXPECT_EQ(codec::crc32c_extend(a, text.data() + split, text.size() - split), whole) << split;
  }
}

TEST(SpoolRecord, HeaderLayoutIsLittleEndian) {
  record r;
  r.type = record_type::top_up;
  r.sequence = 0x0102030405060708ull;
  r.unix_ms = 0x1112131415161718ull;
  r.account = 7;
  r.amount = -3;
  std::string e = codec::encode_record(r, 0x2122232425262728ull);
  ASSERT_EQ(e.size(), codec::credit_size);
  EXPECT_EQ(e.substr(0, 4), "PSJ1");
  EXPECT_EQ(e[4], 2);                                  // version
  EXPECT_EQ(e[5], static_cast<char>(record_type::top_up));
  EXPECT_EQ(e[6], 0);
  EXPECT_EQ(e[7], 0);
  EXPECT_EQ(static_cast<unsigned char>(e[8]), 16);     // payload length, LE
  EXPECT_EQ(e[9], 0);
  EXPECT_EQ(static_cast<unsigned char>(e[16]), 0x08);  // sequence, LE
  EXPECT_EQ(static_cast<unsigned char>(e[23]), 0x01);
  EXPECT_EQ(static_cast<unsigned char>(e[24]), 0x18);  // unix_ms
  EXPECT_EQ(static_cast<unsigned char>(e[32]), 0x28);  // group offset
  EXPECT_EQ(static_cast<unsigned char>(e[40]), 7);     // account
  EXPECT_EQ(static_cast<unsigned char>(e[48]), 0xFD);  // amount -3
  EXPECT_EQ(static_cast<unsigned char>(e[55]), 0xFF);
  // The CRC covers bytes 4..11 and 16.. (everything but magic and itself).
  std::uint32_t crc = codec::crc32c_extend(0, e.data() + 4, 8);
  crc = codec::crc32c_extend(crc, e.data() + 16, e.size() - 16);
  std::uint32_t stored;
  std::memcpy(&stored, e.data() + 12, 4);
  EXPECT_EQ(stored, crc);
}

TEST(SpoolRecord, MessageRoundTrip) {
  record r = sample_message();
  std::string e = codec::encode_record(r, 4096);
  EXPECT_EQ(e.size(), codec::message_size(r.tx));
  expect_same(round_trip(e), r);
  codec::header h;
  ASSERT_EQ(codec::check_record(bytes(e), e.size(), h), codec::check_result::ok);
  EXPECT_EQ(h.group_offset, 4096u);
}

TEST(SpoolRecord, MmsContentFieldsRoundTrip) {
  const record r = sample_mms();
  expect_same(round_trip(codec::encode_record(r)), r);
}

TEST(SpoolRecord, Version1MessagesAreStillRead) {
  record r = sample_message();
  const std::string v1 = version1_message(r.tx, 77);
  codec::header h;
  ASSERT_EQ(codec::check_record(bytes(v1), v1.size(), h), codec::check_result::ok);
  EXPECT_EQ(h.version, 1);
  record out;
  std::string what;
  ASSERT_TRUE(codec::decode_record(h, bytes(v1) + codec::header_size, out, what)) << what;
  EXPECT_EQ(out.sequence, 77u);
  EXPECT_EQ(out.tx.recipients, r.tx.recipients);
  EXPECT_EQ(out.tx.body, r.tx.body);
  EXPECT_EQ(out.tx.price, r.tx.price);
  // Accepted before the content step: the body read as raw text.
  EXPECT_EQ(out.tx.sms_text, "Test messaggio SMS via SMTP\nseconda riga \xe2\x82\xac");
  EXPECT_EQ(out.tx.data_coding, 0x00);
  EXPECT_FALSE(out.tx.is_mms);
}

TEST(SpoolRecord, UnknownContentFlagsAreRefused) {
  record r = sample_mms();
  std::string e = codec::encode_record(r);
  // The flags byte follows the last recipient.
  const std::string last = r.tx.recipients.back();
  const std::size_t flags_at = e.find(last) + last.size();
  ASSERT_EQ(e[flags_at], 0x03);
  e[flags_at] = 0x07;
  std::uint32_t crc = codec::crc32c(e.data() + 4, 8);
  crc = codec::crc32c_extend(crc, e.data() + 16, e.size() - 16);
  std::memcpy(e.data() + 12, &crc, 4);
  codec::header h;
  ASSERT_EQ(codec::check_record(bytes(e), e.size(), h), codec::check_result::ok);
  record out;
  std::string what;
  EXPECT_FALSE(codec::decode_record(h, bytes(e) + codec::header_size, out, what));
  EXPECT_EQ(what, "unknown content flags");
}

TEST(SpoolRecord, MessageBodyIsWrittenSeparately) {
  // encode_message stops before the body; header + staging + body is the record.
  record r = sample_message();
  std::string staging = "prefix from an earlier record";
  std::size_t start = staging.size();
  codec::encode_message(staging, r.sequence, r.unix_ms, 0, r.tx);
  EXPECT_EQ(staging.size() - start + r.tx.body.size(), codec::message_size(r.tx));
  std::string whole = staging.substr(start) + r.tx.body;
  EXPECT_EQ(whole, codec::encode_record(r, 0));
}

TEST(SpoolRecord, EdgeMessages) {
  record r = sample_message();
  r.tx.body.clear();
  r.tx.recipients = {"+393331234567"};
  r.tx.originator = "+1234567890123456";
  r.tx.originator_type = smtp::originator_kind::numeric_long;
  expect_same(round_trip(codec::encode_record(r)), r);
  r.tx.body.assign(100000, 'x');
  r.tx.body[500] = '\0';
  expect_same(round_trip(codec::encode_record(r)), r);
}

TEST(SpoolRecord, CreditAndSealRoundTrip) {
  record refund;
  refund.type = record_type::refund;
  refund.sequence = 9;
  refund.unix_ms = 5;
  refund.account = 0xFFFFFFFFFFFFull;
  refund.amount = 1000;
  expect_same(round_trip(codec::encode_record(refund)), refund);
  record seal;
  seal.type = record_type::seal;
  seal.sequence = 10;
  seal.sealed_segment = 1;
  seal.offset = 123456;
  EXPECT_EQ(codec::encode_record(seal).size(), codec::seal_size);
  expect_same(round_trip(codec::encode_record(seal)), seal);
}

TEST(SpoolRecord, EveryFlippedByteIsRefused) {
  std::string e = codec::encode_record(sample_message());
  for (std::size_t i = 0; i < e.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80}) {
      std::string bad = e;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      codec::header h;
      EXPECT_NE(codec::check_record(bytes(bad), bad.size(), h), codec::check_result::ok)
          << "byte " << i << " mask " << int(mask);
    }
  }
}

TEST(SpoolRecord, EveryTruncationIsRefused) {
  std::string e = codec::encode_record(sample_message());
  for (std::size_t n = 1; n < e.size(); ++n) {
    codec::header h;
    EXPECT_EQ(codec::check_record(bytes(e), n, h), codec::check_result::truncated) << n;
  }
  codec::header h;
  EXPECT_EQ(codec::check_record(bytes(e), 0, h), codec::check_result::zero);
}

TEST(SpoolRecord, ZeroHeaderEndsSegment) {
  std::string zeros(200, '\0');
  codec::header h;
  EXPECT_EQ(codec::check_record(bytes(zeros), zeros.size(), h), codec::check_result::zero);
  EXPECT_EQ(codec::check_record(bytes(zeros), 10, h), codec::check_result::zero);
  zeros[20] = 1;  // not a clean end: something was written here
  EXPECT_EQ(codec::check_record(bytes(zeros), zeros.size(), h), codec::check_result::bad_magic);
}

TEST(SpoolRecord, VersionAndTypeChecked) {
  std::string e = codec::encode_record(sample_message());
  std::string v = e;
  v[4] = 3;
  codec::header h;
  EXPECT_EQ(codec::check_record(bytes(v), v.size(), h), codec::check_result::bad_version);
  v[4] = 0;
  EXPECT_EQ(codec::check_record(bytes(v), v.size(), h), codec::check_result::bad_version);
  std::string t = e;
  t[5] = 9;
  EXPECT_EQ(codec::check_record(bytes(t), t.size(), h), codec::check_result::bad_type);
}

TEST(SpoolRecord, MalformedPayloadWithGoodCrcIsRefusedByDecode) {
  // A seal payload relabelled as a message: the CRC is recomputed, so only
  // decode can tell.
  record seal;
  seal.type = record_type::seal;
  std::string e = codec::encode_record(seal);
  e[5] = static_cast<char>(record_type::message);
  std::uint32_t crc = codec::crc32c_extend(0, e.data() + 4, 8);
  crc = codec::crc32c_extend(crc, e.data() + 16, e.size() - 16);
  std::memcpy(e.data() + 12, &crc, 4);
  codec::header h;
  ASSERT_EQ(codec::check_record(bytes(e), e.size(), h), codec::check_result::ok);
  record out;
  std::string what;
  EXPECT_FALSE(codec::decode_record(h, bytes(e) + codec::header_size, out, what));
  EXPECT_FALSE(what.empty());
}

TEST(SpoolQueueId, Format) {
  EXPECT_EQ(format_queue_id(0, 0, 0), "0000000000000000");
  EXPECT_EQ(format_queue_id(1, 0x1F, 0xABCDEF), "011F000000ABCDEF");
  EXPECT_EQ(format_queue_id(255, 255, 0xFFFFFFFFFFFFull), "FFFFFFFFFFFFFFFF");
  EXPECT_EQ(format_queue_id(2, 3, 0x123456789ABCull).size(), 16u);
}

}  // namespace
