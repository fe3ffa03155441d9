// libFuzzer target: the SMPP 3.4 codec (src/delivery/smpp_codec.cc) fed
// what a hostile SMSC may send on a bind: a byte stream cut into PDUs by
// next_frame, each PDU's body decoded as the bind decodes it (deliver_sm and
// submit_sm, the binds, the C-string responses, the header-only PDUs), and
// receipts read from every short message PDU. For every decoded PDU of a
// type the codec encodes, encoding it and decoding again gives the same
// value and the same bytes once more:
//  - a short message PDU's value is its mandatory fields, its text
//    (short_message, which the decoder fills from message_payload when
//    sm_length is 0) and its other TLVs in order; message_payload is the
//    text's carrier, not part of the value;
//  - the encoding carries the text once: never a short_message and a
//    message_payload together (SMPP 3.4 5.3.2.32), and never a field that
//    overruns the PDU (next_frame accepts it, its length is its size).
// A receipt that parses has an id and a state, final exactly when the state
// is; its error code reads without exceptions.
// Buffers: the input is libFuzzer's; everything else is this file's.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "postino/message_state.h"
#include "postino/smpp.h"

namespace {

using namespace postino;
using namespace postino::smpp;

[[noreturn]] void fail(const char* what, const header& h) {
  std::fprintf(stderr, "smpp_pdu invariant: %s (command 0x%08X, %u octets)\n", what, h.command_id, h.length);
  std::abort();
}

// The PDU `out` holds must frame as one whole PDU with this command and
// sequence; returns its body.
std::string_view framed(const std::string& out, std::uint32_t command_id, std::uint32_t sequence, const header& at) {
  header h;
  if (next_frame(out, h) != frame_result::ok || h.length != out.size()) fail("an encoding that does not frame", at);
  if (h.command_id != command_id || h.sequence != sequence) fail("an encoding with another header", at);
  return std::string_view(out).substr(header_size);
}

std::vector<tlv> without_payload(const std::vector<tlv>& tlvs) {
  std::vector<tlv> out;
  for (const tlv& t : tlvs)
    if (t.tag != tag::message_payload) out.push_back(t);
  return out;
}

bool same_value(const short_message_pdu& a, const short_message_pdu& b) {
  const auto same_address = [](const address& x, const address& y) {
    return x.ton == y.ton && x.npi == y.npi && x.value == y.value;
  };
  const auto same_tlvs = [](const std::vector<tlv>& x, const std::vector<tlv>& y) {
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (x[i].tag != y[i].tag || x[i].value != y[i].value) return false;
    return true;
  };
  return a.service_type == b.service_type && same_address(a.source, b.source) &&
         same_address(a.destination, b.destination) && a.esm_class == b.esm_class &&
         a.protocol_id == b.protocol_id && a.priority_flag == b.priority_flag &&
         a.schedule_delivery_time == b.schedule_delivery_time && a.validity_period == b.validity_period &&
         a.registered_delivery == b.registered_delivery && a.replace_if_present == b.replace_if_present &&
         a.data_coding == b.data_coding && a.sm_default_msg_id == b.sm_default_msg_id &&
         a.short_message == b.short_message && same_tlvs(without_payload(a.tlvs), without_payload(b.tlvs));
}

// Where the encoder put sm_length: after the mandatory fields, whose
// C-strings (decoded, so without a NUL) it wrote with one NUL each.
std::size_t sm_length_offset(const short_message_pdu& p) {
  return p.service_type.size() + 1 + 2 + p.source.value.size() + 1 + 2 + p.destination.value.size() + 1 + 3 +
         p.schedule_delivery_time.size() + 1 + p.validity_period.size() + 1 + 4;
}

void check_receipt(const short_message_pdu& p, const header& h) {
  (void)is_receipt(p);
  receipt r;
  if (!parse_receipt(p, r)) return;
  if (r.message_id.empty()) fail("a receipt without an id", h);
  if (r.final != is_final(r.state)) fail("a receipt final and its state not, or the reverse", h);
  (void)receipt_error_code(r.error);
  (void)receipt_key(r.message_id, "hex");
  (void)receipt_key(r.message_id, "decimal");
  if (canonical_id(r.message_id).empty()) fail("a receipt id with no key", h);
}

void short_message(const header& h, std::string_view body) {
  short_message_pdu p;
  if (!decode_short_message_pdu(body, p)) return;
  check_receipt(p, h);
  std::string once;
  if (h.command_id == command::submit_sm) encode_submit_sm(once, h.sequence, p);
  else encode_deliver_sm(once, h.sequence, p);
  const std::string_view again = framed(once, h.command_id, h.sequence, h);
  const std::size_t at = sm_length_offset(p);
  if (at >= again.size()) fail("an encoding shorter than its mandatory fields", h);
  const auto sm_length = static_cast<unsigned char>(again[at]);
  short_message_pdu q;
  if (!decode_short_message_pdu(again, q)) fail("an encoded short message PDU does not decode", h);
  if (!same_value(p, q)) fail("decode(encode(pdu)) differs from pdu", h);
  if (sm_length > 0 && q.find(tag::message_payload) != nullptr) fail("short_message and message_payload together", h);
  std::string twice;
  if (h.command_id == command::submit_sm) encode_submit_sm(twice, h.sequence, q);
  else encode_deliver_sm(twice, h.sequence, q);
  if (twice != once) fail("a second encoding differs from the first", h);
}

void bind(const header& h, std::string_view body) {
  bind_request b;
  if (!decode_bind(body, b)) return;
  b.command_id = h.command_id;
  std::string out;
  encode_bind(out, h.sequence, b);
  bind_request c;
  if (!decode_bind(framed(out, h.command_id, h.sequence, h), c)) fail("an encoded bind does not decode", h);
  if (c.system_id != b.system_id || c.password != b.password || c.system_type != b.system_type ||
      c.interface_version != b.interface_version || c.addr_ton != b.addr_ton || c.addr_npi != b.addr_npi ||
      c.address_range != b.address_range)
    fail("decode(encode(bind)) differs from bind", h);
}

void c_string_response(const header& h, std::string_view body) {
  std::string value;
  if (!decode_c_string_response(body, value)) return;
  if (value.find('\0') != std::string::npos) fail("a C-string with a NUL inside", h);
  std::string out;
  encode_response(out, h.command_id, h.status, h.sequence, value);
  std::string back;
  if (!decode_c_string_response(framed(out, h.command_id, h.sequence, h), back) || back != value)
    fail("decode(encode(response)) differs from response", h);
}

void header_only(const header& h) {
  std::string out;
  encode_header_only(out, h.command_id, h.status, h.sequence);
  header again;
  if (next_frame(out, again) != frame_result::ok || again.length != header_size || again.status != h.status ||
      again.command_id != h.command_id || again.sequence != h.sequence)
    fail("a header-only PDU does not come back", h);
}

void one_pdu(const header& h, std::string_view body) {
  (void)classify(h.status);
  if (status_name(h.status).empty()) fail("a status without a name", h);
  using namespace command;
  switch (h.command_id) {
    case submit_sm:
    case deliver_sm: return short_message(h, body);
    case bind_receiver:
    case bind_transmitter:
    case bind_transceiver: return bind(h, body);
    case bind_receiver | response_bit:
    case bind_transmitter | response_bit:
    case bind_transceiver | response_bit:
    case submit_sm | response_bit:
    case deliver_sm | response_bit: return c_string_response(h, body);
    case enquire_link:
    case enquire_link | response_bit:
    case unbind:
    case unbind | response_bit:
    case generic_nack: return header_only(h);
    default: return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  header h;
  while (next_frame(in, h) == frame_result::ok) {
    if (h.length < header_size || h.length > in.size() || h.length > max_pdu_length) fail("a frame past its bounds", h);
    one_pdu(h, in.substr(header_size, h.length - header_size));
    in.remove_prefix(h.length);
  }
  return 0;
}
