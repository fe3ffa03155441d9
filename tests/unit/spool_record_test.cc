// Unit tests for the journal record format (src/spool/record_codec.*): the
// CRC32C against published vectors, the byte layout, round trips of every
// record type (the delivery types and version 3 unit prices included), that
// version 1 and 2 messages still decode, and that every damaged or truncated
// record is refused. All buffers are test-owned strings.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <limits>
#include <string>
#include <vector>

#include "../../src/spool/record_codec.h"
#include "../fixtures/old_records.h"
#include "postino/spool.h"

// Counts the largest single allocation (SpoolRecordHostile below).
namespace { std::size_t* allocation_watch = nullptr; }
void* operator new(std::size_t n) {
  if (allocation_watch != nullptr && n > *allocation_watch) *allocation_watch = n;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

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
  r.tx.originator_type = originator_kind::alphanumeric;
  r.tx.recipients = {"+393331234567", "+393401234567", "+447911123456"};
  r.tx.unit_prices = {1, 1, 1};
  r.tx.body = "Test messaggio SMS via SMTP\r\nseconda riga \xe2\x82\xac";
  r.tx.sms_text = "Test messaggio SMS via SMTP\nseconda riga \xe2\x82\xac";
  r.tx.data_coding = 0x00;
  return r;
}

// An MM4 MMS as the content step leaves it (version 2 fields all set).
record sample_mms() {
  record r = sample_message();
  r.tx.price = 9;
  r.tx.unit_prices = {3, 3, 3};
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

using test::old_records::finish_record;
using test::old_records::old_payload;
using test::old_records::version1_message;
using test::old_records::version2_message;

// Recomputes the CRC after a test edited a record's bytes.
void reseal(std::string& e) {
  std::uint32_t crc = codec::crc32c(e.data() + 4, 8);
  crc = codec::crc32c_extend(crc, e.data() + 16, e.size() - 16);
  std::memcpy(e.data() + 12, &crc, 4);
}

record sample_submitted() {
  record r;
  r.type = record_type::submitted;
  r.sequence = 0x2000;
  r.unix_ms = 1700000000456;
  r.delivery.key = {1, 3, 0x1234, 2, 1};
  r.delivery.recipient = "+447911123456";
  r.delivery.smsc = "smsc-a";
  r.delivery.smsc_message_id = "0A1B2C3D";
  return r;
}

record sample_final() {
  record r = sample_submitted();
  r.type = record_type::delivery_final;
  r.sequence = 0x2001;
  r.delivery.state = message_state::undeliverable;
  r.delivery.error = 0x0B;
  r.delivery.account = 42;
  r.delivery.refund = 7;
  return r;
}

record sample_inbound() {
  record r;
  r.type = record_type::inbound;
  r.sequence = 0x2002;
  r.unix_ms = 1700000000789;
  r.inbound.smsc = "smsc-b";
  r.inbound.source = "393331234567";
  r.inbound.destination = "ACME";
  r.inbound.data_coding = 0x08;
  r.inbound.text = "Grazie! \xe2\x82\xac";
  return r;
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
  EXPECT_EQ(a.tx.unit_prices, b.tx.unit_prices);
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
  EXPECT_EQ(a.delivery.key, b.delivery.key);
  EXPECT_EQ(a.delivery.recipient, b.delivery.recipient);
  EXPECT_EQ(a.delivery.smsc, b.delivery.smsc);
  EXPECT_EQ(a.delivery.smsc_message_id, b.delivery.smsc_message_id);
  EXPECT_EQ(a.delivery.state, b.delivery.state);
  EXPECT_EQ(a.delivery.error, b.delivery.error);
  EXPECT_EQ(a.delivery.account, b.delivery.account);
  EXPECT_EQ(a.delivery.refund, b.delivery.refund);
  EXPECT_EQ(a.inbound.smsc, b.inbound.smsc);
  EXPECT_EQ(a.inbound.source, b.inbound.source);
  EXPECT_EQ(a.inbound.destination, b.inbound.destination);
  EXPECT_EQ(a.inbound.data_coding, b.inbound.data_coding);
  EXPECT_EQ(a.inbound.text, b.inbound.text);
}

// Decodes a record whose CRC is good; false with `what` when decode refuses.
bool decodes(const std::string& e, std::string& what) {
  codec::header h;
  EXPECT_EQ(codec::check_record(bytes(e), e.size(), h), codec::check_result::ok);
  record out;
  return codec::decode_record(h, bytes(e) + codec::header_size, out, what);
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
  EXPECT_EQ(e[4], 3);                                  // version
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
  // Accepted before the content step: marked for its reader (delivery's
  // recovery) to read the body as raw text; spool does not know the rules.
  EXPECT_TRUE(out.content_unread);
  EXPECT_TRUE(out.tx.sms_text.empty());
  EXPECT_FALSE(out.tx.is_mms);
  // price 6 over 3 recipients x 2 segments.
  EXPECT_EQ(out.tx.unit_prices, (std::vector<credit_units>{1, 1, 1}));
}

TEST(SpoolRecord, Version2MessagesAreStillRead) {
  record r = sample_message();
  r.tx.price = 30;  // 3 recipients x 2 segments x 5
  const std::string v2 = version2_message(r.tx, 78);
  codec::header h;
  ASSERT_EQ(codec::check_record(bytes(v2), v2.size(), h), codec::check_result::ok);
  EXPECT_EQ(h.version, 2);
  record out;
  std::string what;
  ASSERT_TRUE(codec::decode_record(h, bytes(v2) + codec::header_size, out, what)) << what;
  r.sequence = 78;
  r.unix_ms = 0;
  r.tx.unit_prices = {5, 5, 5};
  expect_same(out, r);

  // An MMS: mms_price per recipient, whatever `segments` says.
  record m = sample_mms();
  m.tx.price = 12;
  m.tx.segments = 1;
  const std::string v2m = version2_message(m.tx, 79);
  ASSERT_EQ(codec::check_record(bytes(v2m), v2m.size(), h), codec::check_result::ok);
  ASSERT_TRUE(codec::decode_record(h, bytes(v2m) + codec::header_size, out, what)) << what;
  EXPECT_TRUE(out.tx.is_mms);
  EXPECT_EQ(out.tx.mm4_originator_system, m.tx.mm4_originator_system);
  EXPECT_EQ(out.tx.unit_prices, (std::vector<credit_units>{4, 4, 4}));
}

TEST(SpoolRecord, UnitPricesRoundTripPerRecipient) {
  record r = sample_message();
  r.tx.unit_prices = {1, 4, 7};
  r.tx.price = 2 * (1 + 4 + 7);
  std::string e = codec::encode_record(r);
  EXPECT_EQ(e.size(), codec::message_size(r.tx));
  // The version 2 layout plus the count and one i64 per recipient.
  EXPECT_EQ(e.size(), version2_message(r.tx, r.sequence).size() + 4 + 8 * 3);
  expect_same(round_trip(e), r);
}

TEST(SpoolRecord, UniformUnitPricesTakeFourBytes) {
  // What the decoder would derive is not written: only the count 0.
  record r = sample_message();
  r.tx.unit_prices = {4, 4, 4};
  r.tx.price = 2 * 3 * 4;
  std::string e = codec::encode_record(r);
  EXPECT_EQ(e.size(), codec::message_size(r.tx));
  EXPECT_EQ(e.size(), version2_message(r.tx, r.sequence).size() + 4);
  expect_same(round_trip(e), r);
  // A price the derivation does not give back (a saturated one): the list
  // is written.
  r.tx.price = std::numeric_limits<credit_units>::max();
  e = codec::encode_record(r);
  EXPECT_EQ(e.size(), version2_message(r.tx, r.sequence).size() + 4 + 8 * 3);
  expect_same(round_trip(e), r);
  // An MMS: mms_price per recipient whatever `segments` holds.
  record m = sample_mms();
  m.tx.segments = 5;
  e = codec::encode_record(m);
  EXPECT_EQ(e.size(), version2_message(m.tx, m.sequence).size() + 4);
  expect_same(round_trip(e), m);
}

TEST(SpoolRecord, MissingOrMismatchedUnitPricesAreDerived) {
  // A transaction without a parallel unit price list is written with none
  // (count 0) and read back with derived prices, never as an undecodable record.
  for (std::vector<credit_units> given : {std::vector<credit_units>{}, std::vector<credit_units>{2, 2}}) {
    record r = sample_message();
    r.tx.price = 12;
    r.tx.unit_prices = given;
    std::string e = codec::encode_record(r);
    EXPECT_EQ(e.size(), codec::message_size(r.tx));
    record out = round_trip(e);
    EXPECT_EQ(out.tx.unit_prices, (std::vector<credit_units>{2, 2, 2}));
  }
  record none = sample_message();
  none.tx.recipients.clear();
  none.tx.unit_prices.clear();
  EXPECT_TRUE(round_trip(codec::encode_record(none)).tx.unit_prices.empty());
}

TEST(SpoolRecord, UnitPriceCountNotMatchingRecipientsIsRefused) {
  record r = sample_message();
  r.tx.unit_prices = {1, 2, 3};
  std::string e = codec::encode_record(r);
  // The count follows the flags, data_coding, the SMS text and the three
  // (here empty) MM4 strings.
  const std::string last = r.tx.recipients.back();
  const std::size_t count_at = e.find(last) + last.size() + 1 + 1 + 4 + r.tx.sms_text.size() + 4 + 4 + 4;
  std::uint32_t count;
  std::memcpy(&count, e.data() + count_at, 4);
  ASSERT_EQ(count, 3u);
  count = 2;
  std::memcpy(e.data() + count_at, &count, 4);
  reseal(e);
  std::string what;
  EXPECT_FALSE(decodes(e, what));
  EXPECT_EQ(what, "unit price count does not match the recipients");
}

TEST(SpoolRecord, DeliveryRecordsRoundTrip) {
  for (const record& r : {sample_submitted(), sample_final(), sample_inbound()}) {
    std::string e = codec::encode_record(r, 512);
    if (r.type == record_type::inbound)
      EXPECT_EQ(e.size(), codec::inbound_size(r.inbound));
    else
      EXPECT_EQ(e.size(), codec::delivery_size(r.type, r.delivery));
    EXPECT_EQ(e[4], 3);
    expect_same(round_trip(e), r);
  }
  // Every final state, and empty strings (a final without an SMSC id).
  for (int s = 0; s <= static_cast<int>(message_state::rejected); ++s) {
    record r = sample_final();
    r.delivery.state = static_cast<message_state>(s);
    r.delivery.smsc_message_id.clear();
    r.delivery.refund = std::numeric_limits<credit_units>::max();  // negative ones are refused
    r.delivery.account = ~0ull;
    expect_same(round_trip(codec::encode_record(r)), r);
  }
  record empty;
  empty.type = record_type::inbound;
  expect_same(round_trip(codec::encode_record(empty)), empty);
}

TEST(SpoolRecord, SubmittedCarriesNoFinalFields) {
  record r = sample_final();
  r.type = record_type::submitted;
  std::string e = codec::encode_record(r);
  EXPECT_EQ(e.size() + 1 + 4 + 8 + 8, codec::encode_record(sample_final()).size());
  record out = round_trip(e);
  EXPECT_EQ(out.delivery.state, message_state::submitted);
  EXPECT_EQ(out.delivery.error, 0u);
  EXPECT_EQ(out.delivery.account, 0u);
  EXPECT_EQ(out.delivery.refund, 0);
  EXPECT_EQ(out.delivery.key, r.delivery.key);
  EXPECT_EQ(out.delivery.smsc_message_id, r.delivery.smsc_message_id);
}

TEST(SpoolRecord, DeliveryByteLayout) {
  record r = sample_final();
  std::string e = codec::encode_record(r);
  const std::string p = e.substr(codec::header_size);
  EXPECT_EQ(p[0], 1);                                   // node
  EXPECT_EQ(p[1], 3);                                   // shard
  EXPECT_EQ(static_cast<unsigned char>(p[2]), 0x34);    // sequence, LE
  EXPECT_EQ(static_cast<unsigned char>(p[3]), 0x12);
  EXPECT_EQ(p[10], 2);                                  // recipient index
  EXPECT_EQ(p[14], 1);                                  // segment
  EXPECT_EQ(p[18], static_cast<char>(r.delivery.recipient.size()));
  EXPECT_EQ(p.substr(22, r.delivery.recipient.size()), r.delivery.recipient);
  // The final fields are the last 21 bytes: state, error, account, refund.
  const std::string tail = p.substr(p.size() - 21);
  EXPECT_EQ(tail[0], static_cast<char>(message_state::undeliverable));
  EXPECT_EQ(tail[1], 0x0B);
  EXPECT_EQ(tail[5], 42);
  EXPECT_EQ(tail[13], 7);
}

TEST(SpoolRecord, CorruptedDeliveryRecordsAreRefused) {
  // Unknown final state.
  std::string e = codec::encode_record(sample_final());
  const std::size_t state_at = e.size() - 21;
  ASSERT_EQ(e[state_at], static_cast<char>(message_state::undeliverable));
  e[state_at] = static_cast<char>(static_cast<int>(message_state::rejected) + 1);
  reseal(e);
  std::string what;
  EXPECT_FALSE(decodes(e, what));
  EXPECT_EQ(what, "unknown delivery state");

  // Trailing garbage and short payloads, for each delivery type: the length
  // field changed and the CRC recomputed, so only decode can tell.
  for (const record& r : {sample_submitted(), sample_final(), sample_inbound()}) {
    std::string longer = codec::encode_record(r);
    longer.push_back('\x55');
    std::uint32_t length = static_cast<std::uint32_t>(longer.size() - codec::header_size);
    std::memcpy(longer.data() + 8, &length, 4);
    reseal(longer);
    what.clear();
    EXPECT_FALSE(decodes(longer, what)) << int(r.type);
    EXPECT_EQ(what, "payload longer than its fields");

    const std::string whole = codec::encode_record(r);
    for (std::size_t cut = 1; cut <= whole.size() - codec::header_size; ++cut) {
      std::string shorter = whole.substr(0, whole.size() - cut);
      length = static_cast<std::uint32_t>(shorter.size() - codec::header_size);
      std::memcpy(shorter.data() + 8, &length, 4);
      reseal(shorter);
      what.clear();
      EXPECT_FALSE(decodes(shorter, what)) << int(r.type) << " cut " << cut;
    }
  }

  // A string length running past the payload.
  std::string inbound = codec::encode_record(sample_inbound());
  const std::uint32_t huge = 0x7FFFFFFF;
  std::memcpy(inbound.data() + codec::header_size, &huge, 4);
  reseal(inbound);
  EXPECT_FALSE(decodes(inbound, what));
  EXPECT_EQ(what, "payload shorter than its fields");
}

TEST(SpoolRecord, DeliveryTypesNeedVersion3) {
  // Versions 1 and 2 had no delivery records: such a header is damage.
  for (const record& r : {sample_submitted(), sample_final(), sample_inbound()}) {
    std::string e = codec::encode_record(r);
    e[4] = 2;
    reseal(e);
    codec::header h;
    EXPECT_EQ(codec::check_record(bytes(e), e.size(), h), codec::check_result::bad_type);
  }
}

TEST(SpoolRecord, EveryFlippedByteOfADeliveryRecordIsRefused) {
  for (const record& r : {sample_final(), sample_inbound()}) {
    std::string e = codec::encode_record(r);
    for (std::size_t i = 0; i < e.size(); ++i) {
      std::string bad = e;
      bad[i] = static_cast<char>(bad[i] ^ 0x10);
      codec::header h;
      EXPECT_NE(codec::check_record(bytes(bad), bad.size(), h), codec::check_result::ok) << i;
    }
  }
}

TEST(SpoolRecord, UnknownContentFlagsAreRefused) {
  record r = sample_mms();
  std::string e = codec::encode_record(r);
  // The flags byte follows the last recipient.
  const std::string last = r.tx.recipients.back();
  const std::size_t flags_at = e.find(last) + last.size();
  ASSERT_EQ(e[flags_at], 0x03);
  e[flags_at] = 0x07;
  reseal(e);
  std::string what;
  EXPECT_FALSE(decodes(e, what));
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
  r.tx.unit_prices = {6};
  r.tx.originator = "+1234567890123456";
  r.tx.originator_type = originator_kind::numeric_long;
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
  v[4] = 4;
  codec::header h;
  EXPECT_EQ(codec::check_record(bytes(v), v.size(), h), codec::check_result::bad_version);
  v[4] = 0;
  EXPECT_EQ(codec::check_record(bytes(v), v.size(), h), codec::check_result::bad_version);
  std::string t = e;
  t[5] = 9;  // past the newest type, carried (8)
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

// ---- hostile values with a good CRC ----------------------------------------

// The largest single allocation since reset: the decoder must not size a
// reservation from a count in the file beyond what the bytes can hold.
std::size_t largest_allocation = 0;
[[maybe_unused]] const bool watching = (allocation_watch = &largest_allocation, true);

// Decodes `e` (its CRC good); the refusal's text, or "" when it decoded.
std::string refusal(const std::string& e) {
  std::string what;
  return decodes(e, what) ? std::string() : what;
}

TEST(SpoolRecordHostile, NegativeAndOutOfRangeValuesAreRefused) {
  record r = sample_message();
  r.tx.price = -6;
  EXPECT_EQ(refusal(codec::encode_record(r)), "negative price -6");
  r = sample_message();
  for (std::uint32_t segments : {256u, 0xFFFFFFFFu}) {
    r.tx.segments = segments;
    EXPECT_EQ(refusal(codec::encode_record(r)), "segment count " + std::to_string(segments) + " is outside 0..255");
  }
  r = sample_message();
  r.tx.unit_prices = {1, 7, 1};  // non-uniform, so written; 7 > the price 6
  EXPECT_EQ(refusal(codec::encode_record(r)), "unit price 7 is outside 0..the price 6");
  r.tx.unit_prices = {1, -1, 1};
  EXPECT_EQ(refusal(codec::encode_record(r)), "unit price -1 is outside 0..the price 6");

  record credit;
  credit.type = record_type::top_up;
  credit.account = 1;
  credit.amount = std::numeric_limits<credit_units>::min();
  EXPECT_EQ(refusal(codec::encode_record(credit)), "negative amount -9223372036854775808");
  credit.type = record_type::refund;
  credit.amount = -1;
  EXPECT_EQ(refusal(codec::encode_record(credit)), "negative amount -1");

  record f = sample_final();
  f.delivery.refund = -7;
  EXPECT_EQ(refusal(codec::encode_record(f)), "negative refund -7");
  f = sample_final();
  f.delivery.key.segment = 255;
  EXPECT_NE(refusal(codec::encode_record(f)).find("cannot be part of a message"), std::string::npos);
  record sub = sample_submitted();
  sub.delivery.key.recipient = 0x40000000;
  EXPECT_NE(refusal(codec::encode_record(sub)).find("recipient 1073741824"), std::string::npos);
  sub.delivery.key.recipient = 0x3FFFFFFF;
  sub.delivery.key.segment = 254;
  EXPECT_EQ(refusal(codec::encode_record(sub)), "") << "the largest key that can be part of a message";
}

// Data written before max_balance existed: top-ups of 2^63 - 1, and a price
// that saturated there. They decode as they are (start-up sums them exactly).
TEST(SpoolRecordHostile, SaturatedAmountsAndPricesStillDecode) {
  record credit;
  credit.type = record_type::top_up;
  credit.account = 1;
  credit.amount = std::numeric_limits<credit_units>::max();
  expect_same(round_trip(codec::encode_record(credit)), credit);
  record r = sample_message();
  r.tx.price = std::numeric_limits<credit_units>::max();
  r.tx.unit_prices = {std::numeric_limits<credit_units>::max(), 1, 1};
  expect_same(round_trip(codec::encode_record(r)), r);
  r.tx.unit_prices.clear();  // uniform: derived from the saturated price
  record out = round_trip(codec::encode_record(r));
  EXPECT_EQ(out.tx.unit_prices.size(), 3u);
  EXPECT_GE(out.tx.unit_prices[0], 0);
}

// A recipient count as large as the bound allows (a quarter of the bytes
// left), but only one recipient really there: refused, and no reservation
// sized from the count.
TEST(SpoolRecordHostile, AHugeRecipientCountAllocatesNothingLarge) {
  old_payload p;
  message tx;
  tx.account = 1;
  tx.price = 1;
  tx.segments = 1;
  tx.originator = "A";
  p.put_envelope(tx);  // zero recipients; the count is patched below
  const std::size_t count_at = p.bytes.size() - 4;
  p.put_str("");                           // one empty recipient
  p.bytes.append(8u << 20, '\xFF');        // then a length no payload has
  const auto count = static_cast<std::uint32_t>((p.bytes.size() - count_at - 4) / 4);
  std::memcpy(p.bytes.data() + count_at, &count, 4);
  const std::string e = finish_record(3, record_type::message, 1, p.bytes);
  codec::header h;
  ASSERT_EQ(codec::check_record(bytes(e), e.size(), h), codec::check_result::ok);
  record out;
  std::string what;
  largest_allocation = 0;
  EXPECT_FALSE(codec::decode_record(h, bytes(e) + codec::header_size, out, what));
  EXPECT_EQ(what, "payload shorter than its fields");
  EXPECT_LT(largest_allocation, std::size_t{1} << 20) << "count " << count;
}

}  // namespace

namespace {

// A carried record (retention) holds the original message record's payload
// behind its origin: it decodes to the same message, names its message
// without a full decode, and carrying it again copies it as it is.
TEST(SpoolRecord, CarriedMessagesKeepTheirOriginAndTheirBytes) {
  const record original = sample_mms();
  const std::string message_bytes = codec::encode_record(original);
  codec::header h;
  ASSERT_EQ(codec::check_record(bytes(message_bytes), message_bytes.size(), h), codec::check_result::ok);
  const std::string payload = codec::carried_payload(h, bytes(message_bytes), 2, 5);
  ASSERT_EQ(payload.size(), codec::carried_prefix + h.length);

  std::string carried;
  codec::encode_carried(carried, 900, 1700000009999, 0, payload);
  const record out = round_trip(carried);
  EXPECT_EQ(out.type, record_type::carried);
  EXPECT_EQ(out.sequence, 900u);
  EXPECT_EQ(out.origin.node, 2u);
  EXPECT_EQ(out.origin.shard, 5u);
  EXPECT_EQ(out.origin.sequence, original.sequence);
  EXPECT_EQ(out.origin.unix_ms, original.unix_ms);
  record same = out;
  same.type = original.type;
  same.sequence = original.sequence;
  same.unix_ms = original.unix_ms;
  expect_same(same, original);

  codec::header ch;
  ASSERT_EQ(codec::check_record(bytes(carried), carried.size(), ch), codec::check_result::ok);
  std::uint8_t node = 0, shard = 0;
  std::uint64_t sequence = 0;
  ASSERT_TRUE(codec::named_message(ch, bytes(carried) + codec::header_size, node, shard, sequence));
  EXPECT_EQ(std::tuple(node, shard, sequence), std::tuple(std::uint8_t{2}, std::uint8_t{5}, original.sequence));
  EXPECT_EQ(codec::carried_payload(ch, bytes(carried), 7, 7), payload) << "the origin never changes";
  EXPECT_EQ(codec::encode_record(out), carried) << "the tools' encoder writes the same bytes";
  const std::string submitted = codec::encode_record(sample_submitted());
  codec::header sh;
  ASSERT_EQ(codec::check_record(bytes(submitted), submitted.size(), sh), codec::check_result::ok);
  EXPECT_TRUE(codec::carried_payload(sh, bytes(submitted), 0, 0).empty()) << "only messages are carried";
}

TEST(SpoolRecord, ACarriedMessageOfAnUnknownVersionIsRefused) {
  const std::string message_bytes = codec::encode_record(sample_message());
  codec::header h;
  ASSERT_EQ(codec::check_record(bytes(message_bytes), message_bytes.size(), h), codec::check_result::ok);
  std::string payload = codec::carried_payload(h, bytes(message_bytes), 0, 0);
  payload[2] = 9;  // the origin version
  std::string carried;
  codec::encode_carried(carried, 1, 1, 0, payload);
  std::string what;
  EXPECT_FALSE(decodes(carried, what));
  EXPECT_NE(what.find("unknown version 9"), std::string::npos) << what;
}

}  // namespace
