// The journal's on-disk record format (version 3; versions 1 and 2 are still
// read) and its CRC32C: encoders that append a record's fixed header and
// payload to a caller-owned staging string (a message's body is NOT copied:
// the caller writes it from the transaction right after the encoded bytes,
// and the CRC already covers it), and checkers/decoders that read records
// from a caller-owned byte range.
//
// Layout, little-endian, no padding:
//   0 magic u32 "PSJ1"   4 version u8   5 type u8   6 flags u16 (0)
//   8 length u32 (payload bytes)        12 crc32c u32
//  16 sequence u64      24 unix_ms u64  32 group_offset u64
//  40 payload
// The CRC covers bytes 4..11, 16..39 and the payload: everything but the
// magic and the CRC itself. group_offset is the segment offset at which the
// write group holding the record starts; recovery uses it to tell a torn
// final group (cut) from damage to an earlier, acknowledged one (fatal).
// Every record type is written with the current version; the delivery types
// (5, 6, 7) exist only from version 3 on. A "string" is u32 length + bytes.
// Payloads:
//   message, version 3: account u64, price i64, segments u32, originator
//            kind u8, originator string, recipient count u32, each recipient
//            string, content flags u8 (bit 0 MMS, bit 1 MM4_forward.RES
//            owed), data_coding u8, SMS text, MM4 message id, MM4
//            transaction id, MM4 originator system (strings), unit price
//            count u32, each unit price i64 (parallel to the recipients),
//            body length u32, body bytes (last).
//            The unit price count is the recipient count, or 0: then the
//            decoder derives them as for version 2, so a decoded message
//            always has one unit price per recipient. Encoders write 0 when
//            that derivation gives exactly the transaction's list (uniform
//            prices, the usual case: the record stays as small as a version
//            2 one, 4 bytes apart) and when the transaction's list is
//            missing or not parallel to the recipients.
//   message, version 2: the same without the unit prices. The decoder gives
//            every recipient price / (recipients x segments) (an MMS: price /
//            recipients). That is exact only for uniform prices, which is all
//            version 2 (and 1) could have: per-prefix prices came with v3.
//   message, version 1: version 2 without the fields from content flags to
//            the originator system. Such records were accepted before the
//            content step existed, as raw text: the decoder marks them
//            (record::content_unread) for their reader to apply the
//            raw-mode rules (src/sms, which spool may not use), and gives
//            unit prices as for version 2.
//   top_up, refund: account u64, amount i64
//   seal: sealed segment (its name) u64, offset u64
//   submitted: node u8, shard u8, sequence u64, recipient u32, segment u32
//            (the delivery_key), recipient string, smsc string,
//            smsc_message_id string. Decoded with state `submitted`.
//   delivery_final: the same as submitted, then state u8 (message_state, at
//            most `rejected`), error u32, account u64, refund i64
//   inbound: smsc, source, destination strings, data_coding u8, text string
//   carried (retention, type 8, written as version 3; a reader from before
//            it stops at one with "unknown record type"): origin node u8,
//            origin shard u8, origin version u8 (1..3), origin sequence u64,
//            origin unix_ms u64, then the original message payload exactly
//            as that version wrote it (body last). Carrying a carried record
//            again copies its payload as it is, so the origin never changes.
// The decoder range-checks what our encoders can never write, and refuses
// the record (start-up then stops naming the file and offset): a negative
// price, amount, refund or unit price, a unit price above the message's
// price, more than 255 segments, a delivery key past 255 segments or 2^30
// recipients. Counts are bounded by the bytes the payload has left before
// anything is allocated for them. Prices and amounts up to the int64 maximum
// are read as they are: data written before max_balance holds top-ups of
// 9223372036854775807, and start-up sums them exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "postino/spool.h"

namespace postino::spool::codec {

inline constexpr std::uint32_t record_magic = 0x314A5350;  // bytes "PSJ1"
inline constexpr std::uint8_t record_version = 3;         // what encoders write
inline constexpr std::uint8_t oldest_record_version = 1;  // what decoders still read
inline constexpr std::size_t header_size = 40;

// CRC32C (Castagnoli) with the SSE4.2 instruction. `crc` is a finished CRC
// of earlier bytes (0 for none), so extend(extend(0, a), b) == crc of a+b.
std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size);
inline std::uint32_t crc32c(const void* data, std::size_t size) {
  return crc32c_extend(0, data, size);
}

struct header {
  std::uint32_t magic = 0;
  std::uint8_t version = 0;
  std::uint8_t type = 0;
  std::uint16_t flags = 0;
  std::uint32_t length = 0;  // payload bytes
  std::uint32_t crc = 0;
  std::uint64_t sequence = 0;
  std::uint64_t unix_ms = 0;
  std::uint64_t group_offset = 0;
};

// Bytes a message record occupies on disk (header, payload, body).
std::size_t message_size(const message& tx);
inline constexpr std::size_t credit_size = header_size + 16;
inline constexpr std::size_t seal_size = header_size + 16;
// Bytes a submitted / delivery_final record occupies (`type` says which).
std::size_t delivery_size(record_type type, const delivery_event& e);
// Bytes an inbound record occupies.
std::size_t inbound_size(const inbound_message& m);
// Largest record sequence (and segment name): a queue id has 12 hex digits
// for it, and one past the largest u64 would wrap the next sequence to 0.
inline constexpr std::uint64_t max_sequence = (std::uint64_t{1} << 48) - 1;
// Largest payload the u32 length field (and the body length) can carry.
inline constexpr std::size_t max_payload = 0xFFFFFFFFu;

// Append header + payload to `out`; for a message everything but the body,
// which the caller writes next (from tx.body). The payload must not exceed
// max_payload (callers check message_size first).
void encode_message(std::string& out, std::uint64_t sequence, std::uint64_t unix_ms,
                    std::uint64_t group_offset, const message& tx);
void encode_credit(std::string& out, record_type type, std::uint64_t sequence,
                   std::uint64_t unix_ms, std::uint64_t group_offset, account_id account,
                   credit_units amount);
void encode_seal(std::string& out, std::uint64_t sequence, std::uint64_t unix_ms,
                 std::uint64_t group_offset, std::uint64_t sealed_segment, std::uint64_t offset);
// `type` is submitted or delivery_final; a submitted record carries no
// state, error, account or refund.
void encode_delivery(std::string& out, record_type type, std::uint64_t sequence, std::uint64_t unix_ms,
                     std::uint64_t group_offset, const delivery_event& e);
void encode_inbound(std::string& out, std::uint64_t sequence, std::uint64_t unix_ms,
                    std::uint64_t group_offset, const inbound_message& m);

// A carried record's payload for the checked record at `data` (header
// `h`): a message record of journal (node, shard) gets the origin prefix,
// a carried one is copied as it is. Empty for any other type.
std::string carried_payload(const header& h, const std::uint8_t* data, std::uint8_t node, std::uint8_t shard);
inline constexpr std::size_t carried_prefix = 19;
// The message a checked carried, submitted or delivery_final record is
// about (its origin or delivery key), from its payload's first bytes
// without decoding the rest; false for other types or a short payload.
bool named_message(const header& h, const std::uint8_t* payload, std::uint8_t& node, std::uint8_t& shard,
                   std::uint64_t& sequence);
void encode_carried(std::string& out, std::uint64_t sequence, std::uint64_t unix_ms, std::uint64_t group_offset,
                    std::string_view payload);

// A whole record (body included) as one string: for tests and tools.
std::string encode_record(const record& r, std::uint64_t group_offset = 0);

enum class check_result : std::uint8_t {
  ok,
  zero,          // an all-zero header: preallocated space, the segment's end
  truncated,     // the header or payload runs past the available bytes
  bad_magic,
  bad_version,
  bad_type,
  bad_crc,
};
const char* describe(check_result r);

// Checks the record starting at data[0] with `available` bytes readable:
// header fields, length and CRC. On ok, `h` is filled and the record is
// header_size + h.length bytes long.
check_result check_record(const std::uint8_t* data, std::size_t available, header& h);

// Decodes a checked record's payload into `out` (sequence and time from the
// header). False, with `what`, when the payload does not match its type.
bool decode_record(const header& h, const std::uint8_t* payload, record& out, std::string& what);

}  // namespace postino::spool::codec
