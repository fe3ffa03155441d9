// SMPP 3.4 wire codec (src/delivery/smpp_codec.cc): framing, the PDUs an ESME
// client exchanges with an SMSC, delivery-receipt parsing and message-id
// matching. Debian's libsmpp34 was considered and not used: it is a
// blocking-style struct codec with global error state, copies every field
// into fixed arrays, and has no receipt parsing; what we need is small and
// fully tested here. Pure functions: encoders append to a caller-owned string,
// decoders read a caller-owned byte range and copy what they return.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "postino/message_state.h"

namespace postino::smpp {

namespace command {
inline constexpr std::uint32_t generic_nack = 0x80000000;
inline constexpr std::uint32_t bind_receiver = 0x00000001;
inline constexpr std::uint32_t bind_transmitter = 0x00000002;
inline constexpr std::uint32_t submit_sm = 0x00000004;
inline constexpr std::uint32_t deliver_sm = 0x00000005;
inline constexpr std::uint32_t unbind = 0x00000006;
inline constexpr std::uint32_t bind_transceiver = 0x00000009;
inline constexpr std::uint32_t enquire_link = 0x00000015;
inline constexpr std::uint32_t response_bit = 0x80000000;
}  // namespace command

namespace status {
inline constexpr std::uint32_t ok = 0x00;
inline constexpr std::uint32_t invalid_message_length = 0x01;
inline constexpr std::uint32_t invalid_command_length = 0x02;
inline constexpr std::uint32_t invalid_command_id = 0x03;
inline constexpr std::uint32_t incorrect_bind_status = 0x04;
inline constexpr std::uint32_t already_bound = 0x05;
inline constexpr std::uint32_t system_error = 0x08;
inline constexpr std::uint32_t invalid_source_address = 0x0A;
inline constexpr std::uint32_t invalid_dest_address = 0x0B;
inline constexpr std::uint32_t bind_failed = 0x0D;
inline constexpr std::uint32_t invalid_password = 0x0E;
inline constexpr std::uint32_t invalid_system_id = 0x0F;
inline constexpr std::uint32_t message_queue_full = 0x14;
inline constexpr std::uint32_t submit_failed = 0x45;
inline constexpr std::uint32_t throttled = 0x58;
inline constexpr std::uint32_t temporary_app_error = 0x64;  // ESME_RX_T_APPN
inline constexpr std::uint32_t permanent_app_error = 0x65;  // ESME_RX_P_APPN
}  // namespace status

inline constexpr std::size_t header_size = 16;
// Largest PDU we accept from a peer; anything longer is a framing error.
inline constexpr std::uint32_t max_pdu_length = 64 * 1024;

struct header {
  std::uint32_t length = 0;  // whole PDU, header included
  std::uint32_t command_id = 0;
  std::uint32_t status = 0;
  std::uint32_t sequence = 0;
};

enum class frame_result : std::uint8_t {
  need_more,   // fewer than header.length (or 16) bytes available
  ok,          // `h` is filled; the PDU is in[0, h.length)
  bad_length,  // length < 16 or > max_pdu_length: the connection must be dropped
};
// Looks at the start of `in` for one PDU.
frame_result next_frame(std::string_view in, header& h);

struct address {
  std::uint8_t ton = 0;
  std::uint8_t npi = 0;
  std::string value;  // at most 20 octets for source, 20 for destination
};

struct tlv {
  std::uint16_t tag = 0;
  std::string value;
};

namespace tag {
inline constexpr std::uint16_t receipted_message_id = 0x001E;
inline constexpr std::uint16_t sar_msg_ref_num = 0x020C;
inline constexpr std::uint16_t sar_total_segments = 0x020E;
inline constexpr std::uint16_t sar_segment_seqnum = 0x020F;
inline constexpr std::uint16_t message_payload = 0x0424;
inline constexpr std::uint16_t message_state = 0x0427;
inline constexpr std::uint16_t network_error_code = 0x0423;
}  // namespace tag

namespace esm {
inline constexpr std::uint8_t udh_indicator = 0x40;
inline constexpr std::uint8_t receipt_mask = 0x3C;     // message type bits 2..5
inline constexpr std::uint8_t smsc_receipt = 0x04;     // deliver_sm: SMSC delivery receipt
}  // namespace esm

// The mandatory body of submit_sm and deliver_sm (they share it) and the
// optional TLVs after it.
struct short_message_pdu {
  std::string service_type;
  address source;
  address destination;
  std::uint8_t esm_class = 0;
  std::uint8_t protocol_id = 0;
  std::uint8_t priority_flag = 0;
  std::string schedule_delivery_time;  // "" or 16-character SMPP time
  std::string validity_period;         // "" or 16-character SMPP time (absolute or relative 'R')
  std::uint8_t registered_delivery = 0;
  std::uint8_t replace_if_present = 0;
  std::uint8_t data_coding = 0;
  std::uint8_t sm_default_msg_id = 0;
  std::string short_message;           // at most 254 octets (longer goes in message_payload)
  std::vector<tlv> tlvs;
  const tlv* find(std::uint16_t t) const;
};

struct bind_request {
  std::uint32_t command_id = command::bind_transceiver;
  std::string system_id;     // at most 15 octets
  std::string password;      // at most 8 octets
  std::string system_type;   // at most 12 octets
  std::uint8_t interface_version = 0x34;
  std::uint8_t addr_ton = 0;
  std::uint8_t addr_npi = 0;
  std::string address_range;
};

// Encoders: append one whole PDU (its length field filled) to `out`.
void encode_bind(std::string& out, std::uint32_t sequence, const bind_request& b);
void encode_submit_sm(std::string& out, std::uint32_t sequence, const short_message_pdu& p);
// For the tests' SMSC side and fuzzers: deliver_sm carries the same body.
void encode_deliver_sm(std::string& out, std::uint32_t sequence, const short_message_pdu& p);
// Responses with a body of one C-string (bind_*_resp: system_id;
// submit_sm_resp: message_id; deliver_sm_resp: empty string).
void encode_response(std::string& out, std::uint32_t command_id, std::uint32_t status, std::uint32_t sequence,
                     std::string_view c_string);
// Header-only PDUs: enquire_link, enquire_link_resp, unbind, unbind_resp, generic_nack.
void encode_header_only(std::string& out, std::uint32_t command_id, std::uint32_t status, std::uint32_t sequence);

// Decoders take the PDU's body (after the 16-byte header). False when the
// body is malformed (missing NUL, truncated field, TLV overrunning the PDU);
// the caller answers generic_nack 0x02/0x01 or drops the connection.
// A response with a non-zero status may have no body: that is not an error.
bool decode_c_string_response(std::string_view body, std::string& value);
bool decode_short_message_pdu(std::string_view body, short_message_pdu& out);
bool decode_bind(std::string_view body, bind_request& out);  // for the tests' SMSC side

// What an error status means for the message (DESIGN.md "Delivery").
enum class error_class : std::uint8_t {
  ok,
  throttled,   // ESME_RTHROTTLED, ESME_RMSGQFUL: retry soon, slow the bind down
  temporary,   // retry with back-off until the validity period ends
  permanent,   // final: rejected, refunded
};
error_class classify(std::uint32_t status);
// "ESME_RTHROTTLED (0x00000058)"; unknown codes print as "0x000004A1".
std::string status_name(std::uint32_t status);

// A delivery receipt read from a deliver_sm: the TLVs receipted_message_id
// and message_state win over the text form when present; the text form
// ("id:... sub:... dlvrd:... submit date:... done date:... stat:... err:...")
// fills in what they lack. `state` enroute is not final.
struct receipt {
  std::string message_id;
  message_state state = message_state::unknown;
  bool final = false;        // DELIVRD/EXPIRED/DELETED/UNDELIV/ACCEPTD/UNKNOWN/REJECTD
  std::string error;         // the err: field ("000" when absent) or network_error_code
  std::string stat_text;     // "DELIVRD", or the TLV state's name
};
bool is_receipt(const short_message_pdu& p);  // esm_class says SMSC receipt
// False when neither form gives a message id and a state.
bool parse_receipt(const short_message_pdu& p, receipt& out);
// The receipt's error as a number, for the journal: the leading decimal
// digits of `error` ("000", "0001", "12 "), read without exceptions; nullopt
// when it does not start with a digit or does not fit 32 bits (an SMSC's
// junk, which must not wrap into some other code).
std::optional<std::uint32_t> receipt_error_code(std::string_view error);
// "DELIVRD" -> delivered etc.; ENROUTE returns submitted (not final).
std::optional<message_state> parse_stat(std::string_view stat);
// message_state TLV value (1..8) -> state; 1 (ENROUTE) returns submitted.
std::optional<message_state> state_from_tlv(std::uint8_t value);

// Message ids as submit_sm_resp gave them and as receipts print them may
// differ: hex in one, decimal in the other, leading zeros, letter case. The
// canonical key is the id lower-cased without leading zeros; a receipt is
// looked up under canonical_id() alone.
std::string canonical_id(std::string_view id);

// The key a submitted id is indexed under when the SMSC's receipts are
// known to print ids "same" (canonical_id; "auto" is the same), "hex" (the
// hex form of a decimal id) or "decimal" (the decimal form of a hex id, at
// most 16 hex digits). Falls back to canonical_id() when the id does not
// convert. There is no reading that tries both bases: with many receipts in
// flight a converted key is often exactly another segment's id ("10" is ten
// and sixteen), so the base is configured, never guessed (receipt_matcher.h).
std::string receipt_key(std::string_view submitted_id, std::string_view form);

// SMPP relative time "YYMMDDhhmmss000R" for a validity period of `seconds`.
std::string relative_time(std::uint64_t seconds);

}  // namespace postino::smpp
