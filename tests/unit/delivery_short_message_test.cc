// submit_sm bodies for outbound segments and the text of handset messages
// (src/delivery/short_message.h): TON/NPI by originator kind, the
// destination's digits, the UDH flag, the validity left, data_coding as the
// SMSC is configured; UDH, GSM, Latin-1 and UCS-2 in inbound text.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "../../src/delivery/short_message.h"

namespace postino::delivery {
namespace {

constexpr std::uint64_t now_ms = 1'700'000'000'000;

std::shared_ptr<outbound_message> message(std::string originator, originator_kind kind,
                                          std::vector<std::string> segments) {
  auto accepted = std::make_shared<postino::message>();
  accepted->originator = std::move(originator);
  accepted->originator_type = kind;
  accepted->recipients = {"+393331234567"};
  auto m = std::make_shared<outbound_message>();
  m->source = std::move(accepted);
  m->unit_prices = {1};
  m->segments = std::move(segments);
  m->expires_unix_ms = now_ms + 3600 * 1000;
  return m;
}

TEST(delivery_short_message, addresses_by_originator_kind) {
  smsc_config c;
  const smpp::short_message_pdu alpha =
      submit_pdu(c, {message("+ACME", originator_kind::alphanumeric, {"hi"}), 0, 0, 0}, now_ms);
  EXPECT_EQ(alpha.source.value, "+ACME");  // a text originator is sent as it is
  EXPECT_EQ(alpha.source.ton, c.alphanumeric_ton);
  EXPECT_EQ(alpha.source.npi, c.alphanumeric_npi);
  const smpp::short_message_pdu numeric =
      submit_pdu(c, {message("+4915112345678", originator_kind::numeric, {"hi"}), 0, 0, 0}, now_ms);
  EXPECT_EQ(numeric.source.value, "4915112345678");
  EXPECT_EQ(numeric.source.ton, c.numeric_ton);
  EXPECT_EQ(numeric.source.npi, c.numeric_npi);
  const smpp::short_message_pdu long_numeric =
      submit_pdu(c, {message("1234567890123456", originator_kind::numeric_long, {"hi"}), 0, 0, 0}, now_ms);
  EXPECT_EQ(long_numeric.source.value, "1234567890123456");
  EXPECT_EQ(long_numeric.source.ton, c.long_numeric_ton);
  EXPECT_EQ(numeric.destination.value, "393331234567");
  EXPECT_EQ(numeric.destination.ton, c.destination_ton);
  EXPECT_EQ(numeric.destination.npi, c.destination_npi);
  EXPECT_EQ(numeric.registered_delivery, 1);
}

TEST(delivery_short_message, concatenated_segments_carry_the_udh_flag) {
  smsc_config c;
  const std::string udh("\x05\x00\x03\x2a\x02\x01", 6);
  auto m = message("ACME", originator_kind::alphanumeric, {udh + "Hello", udh + "World"});
  const smpp::short_message_pdu second = submit_pdu(c, {m, 0, 1, 0}, now_ms);
  EXPECT_EQ(second.esm_class, smpp::esm::udh_indicator);
  EXPECT_EQ(second.short_message, udh + "World");
  EXPECT_EQ(second.data_coding, 0x00);
  const smpp::short_message_pdu single =
      submit_pdu(c, {message("ACME", originator_kind::alphanumeric, {"Hello"}), 0, 0, 0}, now_ms);
  EXPECT_EQ(single.esm_class, 0);
}

TEST(delivery_short_message, the_validity_sent_is_what_is_left) {
  smsc_config c;
  auto m = message("ACME", originator_kind::alphanumeric, {"hi"});
  EXPECT_EQ(submit_pdu(c, {m, 0, 0, 0}, now_ms).validity_period, smpp::relative_time(3600));
  // Rounded up: a part of a second left is a second.
  EXPECT_EQ(submit_pdu(c, {m, 0, 0, 0}, now_ms + 1).validity_period, smpp::relative_time(3600));
  EXPECT_EQ(submit_pdu(c, {m, 0, 0, 0}, now_ms + 3600 * 1000).validity_period, smpp::relative_time(1));
}

TEST(delivery_short_message, data_coding_as_the_smsc_wants_it) {
  smsc_config latin1;
  latin1.gsm_data_coding = 0x03;
  const std::string udh("\x05\x00\x03\x2a\x02\x01", 6);
  // GSM 0x05 is e-acute, 0xE9 in Latin-1; the UDH stays as it is.
  auto gsm = message("ACME", originator_kind::alphanumeric, {udh + "caf\x05", udh + "x"});
  const smpp::short_message_pdu p = submit_pdu(latin1, {gsm, 0, 0, 0}, now_ms);
  EXPECT_EQ(p.data_coding, 0x03);
  EXPECT_EQ(p.short_message, udh + "caf\xE9");
  // GSM 0x10 is capital delta: no Latin-1 form, so it goes as GSM.
  auto greek = message("ACME", originator_kind::alphanumeric, {"\x10"});
  const smpp::short_message_pdu g = submit_pdu(latin1, {greek, 0, 0, 0}, now_ms);
  EXPECT_EQ(g.data_coding, 0x00);
  EXPECT_EQ(g.short_message, "\x10");
  auto ucs2 = message("ACME", originator_kind::alphanumeric, {std::string("\x04\x1f", 2)});
  ucs2->encoding = sms::sms_encoding::ucs2;
  const smpp::short_message_pdu u = submit_pdu(latin1, {ucs2, 0, 0, 0}, now_ms);
  EXPECT_EQ(u.data_coding, 0x08);
  EXPECT_EQ(u.short_message, std::string("\x04\x1f", 2));
}

smpp::short_message_pdu handset(std::uint8_t data_coding, std::string sm, std::uint8_t esm_class = 0) {
  smpp::short_message_pdu p;
  p.data_coding = data_coding;
  p.short_message = std::move(sm);
  p.esm_class = esm_class;
  return p;
}

TEST(delivery_short_message, inbound_text_by_data_coding) {
  EXPECT_EQ(inbound_text(handset(0x00, "caf\x05")), "caf\xC3\xA9");
  EXPECT_EQ(inbound_text(handset(0x03, "caf\xE9")), "caf\xC3\xA9");
  EXPECT_EQ(inbound_text(handset(0x08, std::string("\x00\x63\x00\xE9", 4))), "c\xC3\xA9");
  EXPECT_EQ(inbound_text(handset(0x04, "caf\xC3\xA9")), "caf\xC3\xA9");  // valid UTF-8 as it is
  EXPECT_EQ(inbound_text(handset(0x04, "caf\xE9")), "caf\xC3\xA9");      // else Latin-1
}

TEST(delivery_short_message, inbound_text_leaves_the_udh_out) {
  const std::string udh("\x05\x00\x03\x2a\x02\x01", 6);
  EXPECT_EQ(inbound_text(handset(0x00, udh + "Hi", smpp::esm::udh_indicator)), "Hi");
  // A UDH length past the end leaves nothing, never reads beyond.
  EXPECT_EQ(inbound_text(handset(0x00, "\x09\x00", smpp::esm::udh_indicator)), "");
  EXPECT_EQ(inbound_text(handset(0x00, "Hi")), "Hi");
}

}  // namespace
}  // namespace postino::delivery
