// Encoding, checking and decoding of journal records (format in
// record_codec.h) and the SSE4.2 CRC32C they are protected by. Encoders only
// append to the caller's staging string and read the transaction (its body is
// read for the CRC, never copied); decoders only read the caller's bytes and
// copy what they return into the caller's record.
#include "record_codec.h"

#include <nmmintrin.h>

#include <algorithm>
#include <bit>
#include <cstring>


namespace postino::spool::codec {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the journal format is little-endian and written with memcpy");

constexpr std::size_t crc_field = 12;
constexpr std::size_t crc_covered_after = 16;

template <typename T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

template <typename T>
T get(const std::uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

// Writes the header for a payload of `length` bytes, leaving the CRC zero;
// returns the header's position in `out`.
std::size_t put_header(std::string& out, record_type type, std::uint32_t length,
                       std::uint64_t sequence, std::uint64_t unix_ms, std::uint64_t group_offset) {
  std::size_t start = out.size();
  put<std::uint32_t>(out, record_magic);
  put<std::uint8_t>(out, record_version);
  put<std::uint8_t>(out, static_cast<std::uint8_t>(type));
  put<std::uint16_t>(out, 0);
  put<std::uint32_t>(out, length);
  put<std::uint32_t>(out, 0);
  put<std::uint64_t>(out, sequence);
  put<std::uint64_t>(out, unix_ms);
  put<std::uint64_t>(out, group_offset);
  return start;
}

// CRC over the covered header bytes and `tail` more bytes of `out` after the
// header, extended by `extra` (the body kept outside the staging buffer).
void seal_crc(std::string& out, std::size_t start, std::string_view extra) {
  const char* h = out.data() + start;
  std::uint32_t crc = crc32c_extend(0, h + 4, crc_field - 4);
  crc = crc32c_extend(crc, h + crc_covered_after, out.size() - start - crc_covered_after);
  crc = crc32c_extend(crc, extra.data(), extra.size());
  std::memcpy(out.data() + start + crc_field, &crc, sizeof crc);
}

constexpr std::uint8_t flag_mms = 0x01;
constexpr std::uint8_t flag_ack_owed = 0x02;

// Versions 1 and 2 carried no unit prices, and version 3 writes none when
// they are the even share (message::even_unit_price): the decoder fills the
// list from it, exact for the uniform prices those versions could have.
void derive_unit_prices(message& tx) {
  tx.unit_prices.assign(tx.recipients.size(), tx.even_unit_price());
}

// How many unit prices a message record carries: none (count 0) when the
// decoder's derivation gives exactly the same list (uniform prices, the
// usual case: 4 bytes instead of 8 per recipient), and when the list is not
// parallel to the recipients (a mismatched count on disk would make an
// acknowledged record undecodable; the decoder derives one instead).
std::size_t written_unit_prices(const message& tx) {
  if (tx.unit_prices.size() != tx.recipients.size() || tx.recipients.empty()) return 0;
  const credit_units derived = tx.even_unit_price();
  for (credit_units u : tx.unit_prices)
    if (u != derived) return tx.unit_prices.size();
  return 0;
}

std::size_t message_payload_prefix(const message& tx) {
  std::size_t n = 8 + 8 + 4 + 1 + 4 + tx.originator.size() + 4;
  for (const auto& r : tx.recipients) n += 4 + r.size();
  n += 1 + 1 + 4 + tx.sms_text.size() + 4 + tx.mm4_message_id.size() + 4 + tx.mm4_transaction_id.size() + 4 +
       tx.mm4_originator_system.size();
  n += 4 + 8 * written_unit_prices(tx);
  return n + 4;  // body length
}

constexpr std::size_t delivery_key_size = 1 + 1 + 8 + 4 + 4;
constexpr std::size_t final_fields_size = 1 + 4 + 8 + 8;

std::size_t delivery_payload(record_type type, const delivery_event& e) {
  std::size_t n = delivery_key_size + 4 + e.recipient.size() + 4 + e.smsc.size() + 4 + e.smsc_message_id.size();
  return type == record_type::delivery_final ? n + final_fields_size : n;
}

std::size_t inbound_payload(const inbound_message& m) {
  return 4 + m.smsc.size() + 4 + m.source.size() + 4 + m.destination.size() + 1 + 4 + m.text.size();
}

// The delivery types came with version 3: an older record claiming one is
// damage, not a record.
bool valid_type(std::uint8_t t, std::uint8_t version) {
  const auto newest = version >= 3 ? record_type::carried : record_type::seal;
  return t >= static_cast<std::uint8_t>(record_type::message) && t <= static_cast<std::uint8_t>(newest);
}

// Bounded reader over a payload.
struct reader {
  const std::uint8_t* p;
  std::size_t left;
  bool ok = true;

  template <typename T>
  T take() {
    if (left < sizeof(T)) {
      ok = false;
      return T{};
    }
    T v = get<T>(p);
    p += sizeof(T);
    left -= sizeof(T);
    return v;
  }
  std::string take_string() {
    auto n = take<std::uint32_t>();
    if (!ok || left < n) {
      ok = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    left -= n;
    return s;
  }
};

}  // namespace

std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size) {
  auto p = static_cast<const std::uint8_t*>(data);
  std::uint64_t c = ~crc;
  while (size >= 8) {
    c = _mm_crc32_u64(c, get<std::uint64_t>(p));
    p += 8;
    size -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (size > 0) {
    c32 = _mm_crc32_u8(c32, *p++);
    --size;
  }
  return ~c32;
}

std::size_t message_size(const message& tx) {
  return header_size + message_payload_prefix(tx) + tx.body.size();
}

void encode_message(std::string& out, std::uint64_t sequence, std::uint64_t unix_ms,
                    std::uint64_t group_offset, const message& tx) {
  auto length = static_cast<std::uint32_t>(message_payload_prefix(tx) + tx.body.size());
  std::size_t start =
      put_header(out, record_type::message, length, sequence, unix_ms, group_offset);
  put<std::uint64_t>(out, tx.account);
  put<std::int64_t>(out, tx.price);
  put<std::uint32_t>(out, tx.segments);
  put<std::uint8_t>(out, static_cast<std::uint8_t>(tx.originator_type));
  put_string(out, tx.originator);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(tx.recipients.size()));
  for (const auto& r : tx.recipients) put_string(out, r);
  put<std::uint8_t>(out, static_cast<std::uint8_t>((tx.is_mms ? flag_mms : 0) | (tx.mm4_ack_owed ? flag_ack_owed : 0)));
  put<std::uint8_t>(out, tx.data_coding);
  put_string(out, tx.sms_text);
  put_string(out, tx.mm4_message_id);
  put_string(out, tx.mm4_transaction_id);
  put_string(out, tx.mm4_originator_system);
  const std::size_t units = written_unit_prices(tx);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(units));
  for (std::size_t i = 0; i < units; ++i) put<std::int64_t>(out, tx.unit_prices[i]);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(tx.body.size()));
  seal_crc(out, start, tx.body);
}

void encode_credit(std::string& out, record_type type, std::uint64_t sequence,
                   std::uint64_t unix_ms, std::uint64_t group_offset, account_id account,
                   credit_units amount) {
  std::size_t start = put_header(out, type, 16, sequence, unix_ms, group_offset);
  put<std::uint64_t>(out, account);
  put<std::int64_t>(out, amount);
  seal_crc(out, start, {});
}

void encode_seal(std::string& out, std::uint64_t sequence, std::uint64_t unix_ms,
                 std::uint64_t group_offset, std::uint64_t sealed_segment, std::uint64_t offset) {
  std::size_t start = put_header(out, record_type::seal, 16, sequence, unix_ms, group_offset);
  put<std::uint64_t>(out, sealed_segment);
  put<std::uint64_t>(out, offset);
  seal_crc(out, start, {});
}

std::size_t delivery_size(record_type type, const delivery_event& e) {
  return header_size + delivery_payload(type, e);
}

std::size_t inbound_size(const inbound_message& m) { return header_size + inbound_payload(m); }

void encode_delivery(std::string& out, record_type type, std::uint64_t sequence, std::uint64_t unix_ms,
                     std::uint64_t group_offset, const delivery_event& e) {
  auto length = static_cast<std::uint32_t>(delivery_payload(type, e));
  std::size_t start = put_header(out, type, length, sequence, unix_ms, group_offset);
  put<std::uint8_t>(out, e.key.node);
  put<std::uint8_t>(out, e.key.shard);
  put<std::uint64_t>(out, e.key.sequence);
  put<std::uint32_t>(out, e.key.recipient);
  put<std::uint32_t>(out, e.key.segment);
  put_string(out, e.recipient);
  put_string(out, e.smsc);
  put_string(out, e.smsc_message_id);
  if (type == record_type::delivery_final) {
    put<std::uint8_t>(out, static_cast<std::uint8_t>(e.state));
    put<std::uint32_t>(out, e.error);
    put<std::uint64_t>(out, e.account);
    put<std::int64_t>(out, e.refund);
  }
  seal_crc(out, start, {});
}

void encode_inbound(std::string& out, std::uint64_t sequence, std::uint64_t unix_ms,
                    std::uint64_t group_offset, const inbound_message& m) {
  auto length = static_cast<std::uint32_t>(inbound_payload(m));
  std::size_t start = put_header(out, record_type::inbound, length, sequence, unix_ms, group_offset);
  put_string(out, m.smsc);
  put_string(out, m.source);
  put_string(out, m.destination);
  put<std::uint8_t>(out, m.data_coding);
  put_string(out, m.text);
  seal_crc(out, start, {});
}

std::string carried_payload(const header& h, const std::uint8_t* data, std::uint8_t node, std::uint8_t shard) {
  const auto* payload = reinterpret_cast<const char*>(data + header_size);
  if (h.type == static_cast<std::uint8_t>(record_type::carried)) return std::string(payload, h.length);
  if (h.type != static_cast<std::uint8_t>(record_type::message)) return {};
  std::string out;
  out.reserve(carried_prefix + h.length);
  put<std::uint8_t>(out, node);
  put<std::uint8_t>(out, shard);
  put<std::uint8_t>(out, h.version);
  put<std::uint64_t>(out, h.sequence);
  put<std::uint64_t>(out, h.unix_ms);
  out.append(payload, h.length);
  return out;
}

bool named_message(const header& h, const std::uint8_t* payload, std::uint8_t& node, std::uint8_t& shard,
                   std::uint64_t& sequence) {
  const auto type = static_cast<record_type>(h.type);
  const bool carried = type == record_type::carried;
  if (!carried && type != record_type::submitted && type != record_type::delivery_final) return false;
  // carried: node, shard, version, sequence; delivery: node, shard, sequence.
  const std::size_t at = carried ? 3 : 2;
  if (h.length < at + 8) return false;
  node = payload[0];
  shard = payload[1];
  sequence = get<std::uint64_t>(payload + at);
  return true;
}

void encode_carried(std::string& out, std::uint64_t sequence, std::uint64_t unix_ms, std::uint64_t group_offset,
                    std::string_view payload) {
  std::size_t start = put_header(out, record_type::carried, static_cast<std::uint32_t>(payload.size()), sequence,
                                 unix_ms, group_offset);
  out.append(payload);
  seal_crc(out, start, {});
}

std::string encode_record(const record& r, std::uint64_t group_offset) {
  std::string out;
  switch (r.type) {
    case record_type::message:
      encode_message(out, r.sequence, r.unix_ms, group_offset, r.tx);
      out.append(r.tx.body);
      break;
    case record_type::top_up:
    case record_type::refund:
      encode_credit(out, r.type, r.sequence, r.unix_ms, group_offset, r.account, r.amount);
      break;
    case record_type::seal:
      encode_seal(out, r.sequence, r.unix_ms, group_offset, r.sealed_segment, r.offset);
      break;
    case record_type::submitted:
    case record_type::delivery_final:
      encode_delivery(out, r.type, r.sequence, r.unix_ms, group_offset, r.delivery);
      break;
    case record_type::inbound:
      encode_inbound(out, r.sequence, r.unix_ms, group_offset, r.inbound);
      break;
    case record_type::carried: {
      // The original message record (as version 3 writes it), then carried.
      record original = r;
      original.type = record_type::message;
      original.sequence = r.origin.sequence;
      original.unix_ms = r.origin.unix_ms;
      const std::string bytes = encode_record(original, 0);
      header h;
      check_record(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), h);
      encode_carried(out, r.sequence, r.unix_ms, group_offset,
                     carried_payload(h, reinterpret_cast<const std::uint8_t*>(bytes.data()), r.origin.node,
                                     r.origin.shard));
      break;
    }
  }
  return out;
}

const char* describe(check_result r) {
  switch (r) {
    case check_result::ok: return "ok";
    case check_result::zero: return "zero header";
    case check_result::truncated: return "record runs past the end of the segment";
    case check_result::bad_magic: return "bad magic";
    case check_result::bad_version: return "unsupported record version";
    case check_result::bad_type: return "unknown record type";
    case check_result::bad_crc: return "checksum mismatch";
  }
  return "?";
}

check_result check_record(const std::uint8_t* data, std::size_t available, header& h) {
  if (available < header_size) {
    for (std::size_t i = 0; i < available; ++i)
      if (data[i] != 0) return check_result::truncated;
    return check_result::zero;
  }
  h.magic = get<std::uint32_t>(data);
  h.version = data[4];
  h.type = data[5];
  h.flags = get<std::uint16_t>(data + 6);
  h.length = get<std::uint32_t>(data + 8);
  h.crc = get<std::uint32_t>(data + crc_field);
  h.sequence = get<std::uint64_t>(data + 16);
  h.unix_ms = get<std::uint64_t>(data + 24);
  h.group_offset = get<std::uint64_t>(data + 32);
  if (h.magic != record_magic) {
    for (std::size_t i = 0; i < header_size; ++i)
      if (data[i] != 0) return check_result::bad_magic;
    return check_result::zero;
  }
  if (h.version < oldest_record_version || h.version > record_version) return check_result::bad_version;
  if (!valid_type(h.type, h.version)) return check_result::bad_type;
  if (h.length > available - header_size) return check_result::truncated;
  std::uint32_t crc = crc32c_extend(0, data + 4, crc_field - 4);
  crc = crc32c_extend(crc, data + crc_covered_after,
                      header_size - crc_covered_after + static_cast<std::size_t>(h.length));
  return crc == h.crc ? check_result::ok : check_result::bad_crc;
}

namespace {

// Range checks of decoded values: what our encoders can never have written
// is damage (or a hostile file), refused with the value named rather than
// passed on to arithmetic or allocations downstream. Prices and amounts up
// to the int64 maximum are kept: data written before max_balance holds them,
// and start-up sums them exactly.
bool refuse(std::string& what, std::string text) {
  what = std::move(text);
  return false;
}

// A recipient takes at least its 4-byte length in a payload below 4 GiB.
constexpr std::uint32_t max_recipient_index = 0x3FFFFFFF;

// Reserving for a count read from the file is bounded by what the payload
// can hold (one element per `per_item` bytes left) and by a fixed cap: the
// count may still lie, and a vector of strings costs more than the bytes.
constexpr std::size_t max_reserve = 4096;

bool decode_recipients(reader& in, message& tx) {
  const auto count = in.take<std::uint32_t>();
  if (!in.ok || count > in.left / 4) {
    in.ok = false;
    return false;
  }
  tx.recipients.reserve(std::min<std::size_t>(count, max_reserve));
  for (std::uint32_t i = 0; i < count && in.ok; ++i) tx.recipients.push_back(in.take_string());
  return in.ok;
}

bool decode_content_fields(reader& in, message& tx, std::string& what) {
  const auto flags = in.take<std::uint8_t>();
  if (in.ok && (flags & ~(flag_mms | flag_ack_owed)) != 0) return refuse(what, "unknown content flags");
  tx.is_mms = (flags & flag_mms) != 0;
  tx.mm4_ack_owed = (flags & flag_ack_owed) != 0;
  tx.data_coding = in.take<std::uint8_t>();
  tx.sms_text = in.take_string();
  tx.mm4_message_id = in.take_string();
  tx.mm4_transaction_id = in.take_string();
  tx.mm4_originator_system = in.take_string();
  return true;
}

// Version 3's unit prices; `units` is how many were written (0: derived).
bool decode_unit_prices(reader& in, message& tx, std::uint32_t& units, std::string& what) {
  units = in.take<std::uint32_t>();
  if (in.ok && units != 0 && units != tx.recipients.size())
    return refuse(what, "unit price count does not match the recipients");
  if (!in.ok || units > in.left / 8) {
    in.ok = false;  // the payload is short: decode_record says so
    return true;
  }
  tx.unit_prices.reserve(units);  // == recipients.size(): already allocated once
  for (std::uint32_t i = 0; i < units && in.ok; ++i) {
    const auto u = in.take<std::int64_t>();
    if (in.ok && (u < 0 || u > tx.price))
      return refuse(what, "unit price " + std::to_string(u) + " is outside 0..the price " + std::to_string(tx.price));
    tx.unit_prices.push_back(u);
  }
  return true;
}

bool decode_message(const header& h, reader& in, message& tx, std::string& what) {
  tx.account = in.take<std::uint64_t>();
  tx.price = in.take<std::int64_t>();
  tx.segments = in.take<std::uint32_t>();
  if (in.ok && tx.price < 0) return refuse(what, "negative price " + std::to_string(tx.price));
  if (in.ok && tx.segments > max_message_segments)
    return refuse(what, "segment count " + std::to_string(tx.segments) + " is outside 0.." +
                            std::to_string(max_message_segments));
  const auto kind = in.take<std::uint8_t>();
  if (kind > static_cast<std::uint8_t>(originator_kind::numeric_long))
    return refuse(what, "unknown originator kind");
  tx.originator_type = static_cast<originator_kind>(kind);
  tx.originator = in.take_string();
  if (!decode_recipients(in, tx)) return true;  // in.ok says the payload is short
  if (h.version >= 2 && !decode_content_fields(in, tx, what)) return false;
  std::uint32_t units = 0;
  if (h.version >= 3 && !decode_unit_prices(in, tx, units, what)) return false;
  tx.body = in.take_string();
  if (units == 0 && in.ok) derive_unit_prices(tx);
  return true;
}

bool decode_delivery(record_type type, reader& in, delivery_event& e, std::string& what) {
  e.key.node = in.take<std::uint8_t>();
  e.key.shard = in.take<std::uint8_t>();
  e.key.sequence = in.take<std::uint64_t>();
  e.key.recipient = in.take<std::uint32_t>();
  e.key.segment = in.take<std::uint32_t>();
  if (in.ok && (e.key.recipient > max_recipient_index || e.key.segment >= max_message_segments))
    return refuse(what, "recipient " + std::to_string(e.key.recipient) + " segment " +
                            std::to_string(e.key.segment) + " cannot be part of a message");
  e.recipient = in.take_string();
  e.smsc = in.take_string();
  e.smsc_message_id = in.take_string();
  e.state = message_state::submitted;
  if (type != record_type::delivery_final) return true;
  const auto state = in.take<std::uint8_t>();
  if (in.ok && state > static_cast<std::uint8_t>(message_state::rejected))
    return refuse(what, "unknown delivery state");
  e.state = static_cast<message_state>(state);
  e.error = in.take<std::uint32_t>();
  e.account = in.take<std::uint64_t>();
  e.refund = in.take<std::int64_t>();
  if (in.ok && e.refund < 0) return refuse(what, "negative refund " + std::to_string(e.refund));
  return true;
}

// A carried record: its origin, then the original message payload decoded
// by the original's version.
bool decode_carried(reader& in, record& out, std::string& what) {
  out.origin.node = in.take<std::uint8_t>();
  out.origin.shard = in.take<std::uint8_t>();
  header original;
  original.version = in.take<std::uint8_t>();
  out.origin.sequence = in.take<std::uint64_t>();
  out.origin.unix_ms = in.take<std::uint64_t>();
  if (!in.ok) return true;
  if (original.version < oldest_record_version || original.version > record_version)
    return refuse(what, "carried message of unknown version " + std::to_string(original.version));
  if (out.origin.sequence > max_sequence) return refuse(what, "carried message sequence past the largest");
  if (!decode_message(original, in, out.tx, what)) return false;
  out.content_unread = original.version == 1;
  return true;
}

}  // namespace

bool decode_record(const header& h, const std::uint8_t* payload, record& out, std::string& what) {
  out = record{};
  out.type = static_cast<record_type>(h.type);
  out.sequence = h.sequence;
  out.unix_ms = h.unix_ms;
  reader in{payload, h.length};
  switch (out.type) {
    case record_type::message:
      if (!decode_message(h, in, out.tx, what)) return false;
      out.content_unread = h.version == 1;
      break;
    case record_type::top_up:
    case record_type::refund:
      out.account = in.take<std::uint64_t>();
      out.amount = in.take<std::int64_t>();
      if (in.ok && out.amount < 0) return refuse(what, "negative amount " + std::to_string(out.amount));
      break;
    case record_type::seal:
      out.sealed_segment = in.take<std::uint64_t>();
      out.offset = in.take<std::uint64_t>();
      break;
    case record_type::submitted:
    case record_type::delivery_final:
      if (!decode_delivery(out.type, in, out.delivery, what)) return false;
      break;
    case record_type::inbound:
      out.inbound.smsc = in.take_string();
      out.inbound.source = in.take_string();
      out.inbound.destination = in.take_string();
      out.inbound.data_coding = in.take<std::uint8_t>();
      out.inbound.text = in.take_string();
      break;
    case record_type::carried:
      if (!decode_carried(in, out, what)) return false;
      break;
  }
  if (!in.ok) return refuse(what, "payload shorter than its fields");
  if (in.left != 0) return refuse(what, "payload longer than its fields");
  return true;
}

}  // namespace postino::spool::codec
