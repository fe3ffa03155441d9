// submit_sm bodies for outbound segments and the text of inbound deliver_sm
// (short_message.h). Buffers: everything built here is returned by value.
#include "short_message.h"

#include <algorithm>
#include <string_view>

namespace postino::delivery {
namespace {

// A GSM segment as Latin-1 octets (the UDH, when there is one, unchanged);
// false when a character has no Latin-1 form: it then goes as GSM.
bool latin1_segment(const std::string& sm, bool has_udh, std::string& out) {
  const std::size_t udh = has_udh && !sm.empty() ? static_cast<unsigned char>(sm[0]) + 1u : 0;
  std::string text;
  if (!sms::gsm7_to_latin1(std::string_view(sm).substr(std::min(udh, sm.size())), text)) return false;
  out = sm.substr(0, udh) + text;
  return true;
}

smpp::address source_address(const smsc_config& c, const message& m) {
  smpp::address a;
  a.value = m.originator;
  switch (m.originator_type) {
    case originator_kind::alphanumeric:
      a.ton = c.alphanumeric_ton;
      a.npi = c.alphanumeric_npi;
      break;
    case originator_kind::numeric:
      a.ton = c.numeric_ton;
      a.npi = c.numeric_npi;
      break;
    case originator_kind::numeric_long:
      a.ton = c.long_numeric_ton;
      a.npi = c.long_numeric_npi;
      break;
  }
  if (m.originator_type != originator_kind::alphanumeric && !a.value.empty() && a.value.front() == '+')
    a.value.erase(0, 1);
  return a;
}

}  // namespace

smpp::short_message_pdu submit_pdu(const smsc_config& c, const segment_ref& seg, std::uint64_t now_unix_ms) {
  const outbound_message& m = *seg.message;
  smpp::short_message_pdu p;
  p.source = source_address(c, *m.source);
  p.destination = {c.destination_ton, c.destination_npi, std::string(e164_digits(seg.number()))};
  const bool concatenated = m.segments.size() > 1;
  p.esm_class = concatenated ? smpp::esm::udh_indicator : 0;
  p.registered_delivery = 1;
  const std::uint64_t left_s =
      m.expires_unix_ms > now_unix_ms ? (m.expires_unix_ms - now_unix_ms + 999) / 1000 : 1;
  p.validity_period = smpp::relative_time(left_s);
  const std::string& sm = m.segments[seg.segment];
  if (m.encoding == sms::sms_encoding::ucs2) {
    p.data_coding = 0x08;
    p.short_message = sm;
  } else if (c.gsm_data_coding == 0x03 && latin1_segment(sm, concatenated, p.short_message)) {
    p.data_coding = 0x03;
  } else {
    p.data_coding = 0x00;
    p.short_message = sm;
  }
  return p;
}

std::string inbound_text(const smpp::short_message_pdu& pdu) {
  std::string_view sm = pdu.short_message;
  if ((pdu.esm_class & smpp::esm::udh_indicator) != 0 && !sm.empty())
    sm.remove_prefix(std::min<std::size_t>(sm.size(), static_cast<unsigned char>(sm[0]) + 1u));
  switch (pdu.data_coding) {
    case 0x00: return sms::gsm7_to_utf8(sm);
    case 0x03: return sms::latin1_to_utf8(sm);
    case 0x08: return sms::utf16be_to_utf8(sm);
    default: return sms::is_valid_utf8(sm) ? std::string(sm) : sms::latin1_to_utf8(sm);
  }
}

}  // namespace postino::delivery
