// SMPP 3.4 wire codec (include/delivery/postino/smpp.h): PDU framing, the encoders and
// decoders of the PDUs an ESME exchanges with an SMSC (and the SMSC side the
// tests need), the command_status table and its retry classification,
// delivery-receipt parsing (TLVs and the text form of SMPP 3.4 Appendix B, with
// the variants SMSCs actually print) and the message-id keys that match a
// receipt to its submit_sm_resp across zero padding, letter case and the
// configured hex/decimal difference.
// Buffers: encoders only append to the caller's string; decoders only read
// the caller's byte range and copy what they return into caller-owned
// structs; nothing is kept between calls and nothing throws.
#include "postino/smpp.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include "postino/ascii.h"

namespace postino::smpp {
namespace {

// SMPP 3.4 5.2.18: short_message holds at most 254 octets; longer text
// goes in message_payload.
constexpr std::size_t max_short_message = 254;
constexpr std::size_t max_tlv_value = std::numeric_limits<std::uint16_t>::max();

// ---- encoding -------------------------------------------------------------

void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }

void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}

void put_u32(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>((v >> 16) & 0xFF));
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
  out.push_back(static_cast<char>(v & 0xFF));
}

// A C-Octet string ends at its first NUL: anything after an embedded NUL
// would be read by the peer as the next field, so it is never written.
void put_c_string(std::string& out, std::string_view s) {
  out.append(s.substr(0, s.find('\0')));
  out.push_back('\0');
}

// A TLV length is 16 bits; longer values cannot be represented and are cut
// (no caller builds one: an SMS segment is at most 140 octets).
void put_tlv(std::string& out, std::uint16_t t, std::string_view value) {
  value = value.substr(0, max_tlv_value);
  put_u16(out, t);
  put_u16(out, static_cast<std::uint16_t>(value.size()));
  out.append(value);
}

// Writes a header with a zero length; finish_pdu patches it once the body
// is known, so each encoder appends in one pass.
std::size_t begin_pdu(std::string& out, std::uint32_t command_id, std::uint32_t status, std::uint32_t sequence) {
  std::size_t start = out.size();
  put_u32(out, 0);
  put_u32(out, command_id);
  put_u32(out, status);
  put_u32(out, sequence);
  return start;
}

void finish_pdu(std::string& out, std::size_t start) {
  auto length = static_cast<std::uint32_t>(out.size() - start);
  out[start] = static_cast<char>(length >> 24);
  out[start + 1] = static_cast<char>((length >> 16) & 0xFF);
  out[start + 2] = static_cast<char>((length >> 8) & 0xFF);
  out[start + 3] = static_cast<char>(length & 0xFF);
}

void put_address(std::string& out, const address& a) {
  put_u8(out, a.ton);
  put_u8(out, a.npi);
  put_c_string(out, a.value);
}

void encode_short_message(std::string& out, std::uint32_t command_id, std::uint32_t sequence,
                          const short_message_pdu& p) {
  std::size_t start = begin_pdu(out, command_id, status::ok, sequence);
  put_c_string(out, p.service_type);
  put_address(out, p.source);
  put_address(out, p.destination);
  put_u8(out, p.esm_class);
  put_u8(out, p.protocol_id);
  put_u8(out, p.priority_flag);
  put_c_string(out, p.schedule_delivery_time);
  put_c_string(out, p.validity_period);
  put_u8(out, p.registered_delivery);
  put_u8(out, p.replace_if_present);
  put_u8(out, p.data_coding);
  put_u8(out, p.sm_default_msg_id);
  // The spec forbids short_message and message_payload together, so the
  // text goes once: in short_message up to 254 octets, else only in the TLV.
  // A message_payload among the caller's TLVs is dropped whenever there is a
  // text, which it would send a second time: a decoded PDU carries the
  // payload its text was read from (the smpp_pdu fuzz target found a short
  // text re-encoded next to its payload). Only a PDU whose short_message is
  // empty sends the caller's own.
  const bool payload = p.short_message.size() > max_short_message;
  if (payload) {
    put_u8(out, 0);
    put_tlv(out, tag::message_payload, p.short_message);
  } else {
    put_u8(out, static_cast<std::uint8_t>(p.short_message.size()));
    out.append(p.short_message);
  }
  for (const tlv& t : p.tlvs)
    if (p.short_message.empty() || t.tag != tag::message_payload) put_tlv(out, t.tag, t.value);
  finish_pdu(out, start);
}

// ---- decoding -------------------------------------------------------------

// Reads fields from a body; every read fails (and leaves the reader failed)
// rather than run past the end.
class reader {
 public:
  explicit reader(std::string_view in) : in_(in) {}

  std::size_t remaining() const { return in_.size() - pos_; }

  bool u8(std::uint8_t& v) {
    if (remaining() < 1) return false;
    v = byte(pos_++);
    return true;
  }

  bool u16(std::uint16_t& v) {
    if (remaining() < 2) return false;
    v = static_cast<std::uint16_t>((byte(pos_) << 8) | byte(pos_ + 1));
    pos_ += 2;
    return true;
  }

  // The spec gives each C-Octet string a maximum size (NUL included); SMSCs
  // exceed them in practice (long service_type, 21+ digit addresses), so
  // only the NUL before the end of the body is required.
  bool c_string(std::string& v) {
    std::size_t nul = in_.find('\0', pos_);
    if (nul == std::string_view::npos) return false;
    v.assign(in_.substr(pos_, nul - pos_));
    pos_ = nul + 1;
    return true;
  }

  bool octets(std::size_t n, std::string& v) {
    if (remaining() < n) return false;
    v.assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }

  bool address(smpp::address& a) { return u8(a.ton) && u8(a.npi) && c_string(a.value); }

 private:
  std::uint8_t byte(std::size_t i) const { return static_cast<std::uint8_t>(in_[i]); }

  std::string_view in_;
  std::size_t pos_ = 0;
};

// Optional parameters run to the end of the body; a partial TLV header or a
// length past the end means the PDU is corrupt.
bool read_tlvs(reader& r, std::vector<tlv>& out) {
  out.clear();
  while (r.remaining() > 0) {
    tlv t;
    std::uint16_t length = 0;
    if (!r.u16(t.tag) || !r.u16(length) || !r.octets(length, t.value)) return false;
    out.push_back(std::move(t));
  }
  return true;
}

// ---- command_status -------------------------------------------------------

struct status_entry {
  std::uint32_t code;
  const char* name;
};

// SMPP 3.4 table 5-2, complete. Codes 0x100-0x3FF are reserved for SMPP
// extensions (SMPP 5.0 put ESME_RINVDCS at 0x104, among others) and
// 0x400-0x4FF for SMSC vendors: they print as bare hex.
constexpr status_entry status_table[] = {
    {0x00, "ESME_ROK"},
    {0x01, "ESME_RINVMSGLEN"},
    {0x02, "ESME_RINVCMDLEN"},
    {0x03, "ESME_RINVCMDID"},
    {0x04, "ESME_RINVBNDSTS"},
    {0x05, "ESME_RALYBND"},
    {0x06, "ESME_RINVPRTFLG"},
    {0x07, "ESME_RINVREGDLVFLG"},
    {0x08, "ESME_RSYSERR"},
    {0x0A, "ESME_RINVSRCADR"},
    {0x0B, "ESME_RINVDSTADR"},
    {0x0C, "ESME_RINVMSGID"},
    {0x0D, "ESME_RBINDFAIL"},
    {0x0E, "ESME_RINVPASWD"},
    {0x0F, "ESME_RINVSYSID"},
    {0x11, "ESME_RCANCELFAIL"},
    {0x13, "ESME_RREPLACEFAIL"},
    {0x14, "ESME_RMSGQFUL"},
    {0x15, "ESME_RINVSERTYP"},
    {0x33, "ESME_RINVNUMDESTS"},
    {0x34, "ESME_RINVDLNAME"},
    {0x40, "ESME_RINVDESTFLAG"},
    {0x42, "ESME_RINVSUBREP"},
    {0x43, "ESME_RINVESMCLASS"},
    {0x44, "ESME_RCNTSUBDL"},
    {0x45, "ESME_RSUBMITFAIL"},
    {0x48, "ESME_RINVSRCTON"},
    {0x49, "ESME_RINVSRCNPI"},
    {0x50, "ESME_RINVDSTTON"},
    {0x51, "ESME_RINVDSTNPI"},
    {0x53, "ESME_RINVSYSTYP"},
    {0x54, "ESME_RINVREPFLAG"},
    {0x55, "ESME_RINVNUMMSGS"},
    {0x58, "ESME_RTHROTTLED"},
    {0x61, "ESME_RINVSCHED"},
    {0x62, "ESME_RINVEXPIRY"},
    {0x63, "ESME_RINVDFTMSGID"},
    {0x64, "ESME_RX_T_APPN"},
    {0x65, "ESME_RX_P_APPN"},
    {0x66, "ESME_RX_R_APPN"},
    {0x67, "ESME_RQUERYFAIL"},
    {0xC0, "ESME_RINVOPTPARSTREAM"},
    {0xC1, "ESME_ROPTPARNOTALLWD"},
    {0xC2, "ESME_RINVPARLEN"},
    {0xC3, "ESME_RMISSINGOPTPARAM"},
    {0xC4, "ESME_RINVOPTPARAMVAL"},
    {0xFE, "ESME_RDELIVERYFAILURE"},
    {0xFF, "ESME_RUNKNOWNERR"},
};

const char* find_status_name(std::uint32_t code) {
  for (const status_entry& e : status_table)
    if (e.code == code) return e.name;
  return nullptr;
}

// ---- receipts -------------------------------------------------------------

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

enum class receipt_key : std::uint8_t { id, sub, dlvrd, submit_date, done_date, stat, err, text };

struct key_spelling {
  std::string_view text;  // lower case
  receipt_key key;
};

// Appendix B spells the dates "submit date:" and "done date:"; some SMSCs
// print an underscore instead of the space.
constexpr std::array<key_spelling, 10> key_spellings{{
    {"id:", receipt_key::id},
    {"sub:", receipt_key::sub},
    {"dlvrd:", receipt_key::dlvrd},
    {"submit date:", receipt_key::submit_date},
    {"submit_date:", receipt_key::submit_date},
    {"done date:", receipt_key::done_date},
    {"done_date:", receipt_key::done_date},
    {"stat:", receipt_key::stat},
    {"err:", receipt_key::err},
    {"text:", receipt_key::text},
}};

const key_spelling* key_at(std::string_view s) {
  for (const key_spelling& k : key_spellings)
    if (istarts_with(s, k.text)) return &k;
  return nullptr;
}

struct receipt_text {
  std::optional<std::string> id;
  std::optional<std::string> stat;
  std::optional<std::string> err;
};

std::size_t skip_spaces(std::string_view s, std::size_t pos) {
  while (pos < s.size() && is_space(s[pos])) ++pos;
  return pos;
}

std::size_t token_end(std::string_view s, std::size_t pos) {
  while (pos < s.size() && !is_space(s[pos])) ++pos;
  return pos;
}

// Reads "key:value" tokens left to right. Keys match case-insensitively at
// the start of a token; a value may follow its colon after spaces ("stat:
// DELIVRD") but is empty when the next token is itself a key ("err: text:").
// "text:" ends the scan: what follows is the message's own text and may
// contain anything, "id:" included.
receipt_text scan_receipt_text(std::string_view s) {
  receipt_text r;
  std::size_t pos = 0;
  while ((pos = skip_spaces(s, pos)) < s.size()) {
    const key_spelling* k = key_at(s.substr(pos));
    if (k == nullptr) {
      pos = token_end(s, pos);
      continue;
    }
    if (k->key == receipt_key::text) break;
    std::size_t start = pos + k->text.size();
    std::size_t value_start = skip_spaces(s, start);
    if (value_start > start && value_start < s.size() && key_at(s.substr(value_start)) != nullptr)
      value_start = start;
    std::size_t end = token_end(s, value_start);
    std::string value(s.substr(value_start, end - value_start));
    pos = end;
    switch (k->key) {
      case receipt_key::id: r.id = std::move(value); break;
      case receipt_key::stat: r.stat = std::move(value); break;
      case receipt_key::err: r.err = std::move(value); break;
      default: break;  // counts and dates: the receipt struct does not keep them
    }
  }
  return r;
}

// Some SMSCs send the receipt text as UCS-2 (data_coding 8). A receipt is
// ASCII, so when every high octet is zero the low octets are the text.
std::string receipt_text_bytes(const short_message_pdu& p) {
  std::string_view text = p.short_message;
  if (text.empty())
    if (const tlv* payload = p.find(tag::message_payload)) text = payload->value;
  if (p.data_coding != 0x08 || text.size() % 2 != 0 || text.empty()) return std::string(text);
  std::string narrow;
  narrow.reserve(text.size() / 2);
  for (std::size_t i = 0; i < text.size(); i += 2) {
    if (text[i] != '\0') return std::string(text);
    narrow.push_back(text[i + 1]);
  }
  return narrow;
}

// The stat text SMPP 3.4 Appendix B prints for a message_state value.
const char* stat_name(std::uint8_t v) {
  switch (v) {
    case 1: return "ENROUTE";
    case 2: return "DELIVRD";
    case 3: return "EXPIRED";
    case 4: return "DELETED";
    case 5: return "UNDELIV";
    case 6: return "ACCEPTD";
    case 7: return "UNKNOWN";
    case 8: return "REJECTD";
  }
  return "";
}

// receipted_message_id is a C-Octet string, but SMSCs differ on whether
// the NUL is inside the TLV value.
std::string tlv_c_string(std::string_view v) { return std::string(v.substr(0, v.find('\0'))); }

// network_error_code (5.3.2.31): network type octet, then a 16-bit error
// code; the code prints like err: does, as three decimal digits.
std::optional<std::string> network_error(const tlv* t) {
  if (t == nullptr || t->value.size() != 3) return std::nullopt;
  auto hi = static_cast<std::uint8_t>(t->value[1]);
  auto lo = static_cast<std::uint8_t>(t->value[2]);
  return fmt::format("{:03}", (hi << 8) | lo);
}

// ---- message ids ----------------------------------------------------------

bool is_hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool is_dec_digit(char c) { return c >= '0' && c <= '9'; }

// `canonical` is lower case without leading zeros; at most 16 hex digits
// always fit 64 bits.
std::optional<std::string> hex_to_decimal(std::string_view canonical) {
  if (canonical.empty() || canonical.size() > 16 || !std::all_of(canonical.begin(), canonical.end(), is_hex_digit))
    return std::nullopt;
  std::uint64_t v = 0;
  std::from_chars(canonical.data(), canonical.data() + canonical.size(), v, 16);
  return fmt::format("{}", v);
}

std::optional<std::string> decimal_to_hex(std::string_view canonical) {
  if (canonical.empty() || !std::all_of(canonical.begin(), canonical.end(), is_dec_digit)) return std::nullopt;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(canonical.data(), canonical.data() + canonical.size(), v, 10);
  if (ec != std::errc() || end != canonical.data() + canonical.size()) return std::nullopt;  // past 64 bits
  return fmt::format("{:x}", v);
}

}  // namespace

// ---- framing --------------------------------------------------------------

frame_result next_frame(std::string_view in, header& h) {
  if (in.size() < header_size) return frame_result::need_more;
  auto u32_at = [&](std::size_t i) {
    auto b = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<std::uint8_t>(in[i + k])); };
    return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
  };
  h.length = u32_at(0);
  h.command_id = u32_at(4);
  h.status = u32_at(8);
  h.sequence = u32_at(12);
  if (h.length < header_size || h.length > max_pdu_length) return frame_result::bad_length;
  if (in.size() < h.length) return frame_result::need_more;
  return frame_result::ok;
}

const tlv* short_message_pdu::find(std::uint16_t t) const {
  for (const tlv& x : tlvs)
    if (x.tag == t) return &x;
  return nullptr;
}

// ---- encoders -------------------------------------------------------------

void encode_bind(std::string& out, std::uint32_t sequence, const bind_request& b) {
  std::size_t start = begin_pdu(out, b.command_id, status::ok, sequence);
  put_c_string(out, b.system_id);
  put_c_string(out, b.password);
  put_c_string(out, b.system_type);
  put_u8(out, b.interface_version);
  put_u8(out, b.addr_ton);
  put_u8(out, b.addr_npi);
  put_c_string(out, b.address_range);
  finish_pdu(out, start);
}

void encode_submit_sm(std::string& out, std::uint32_t sequence, const short_message_pdu& p) {
  encode_short_message(out, command::submit_sm, sequence, p);
}

void encode_deliver_sm(std::string& out, std::uint32_t sequence, const short_message_pdu& p) {
  encode_short_message(out, command::deliver_sm, sequence, p);
}

void encode_response(std::string& out, std::uint32_t command_id, std::uint32_t status, std::uint32_t sequence,
                     std::string_view c_string) {
  std::size_t start = begin_pdu(out, command_id, status, sequence);
  put_c_string(out, c_string);
  finish_pdu(out, start);
}

void encode_header_only(std::string& out, std::uint32_t command_id, std::uint32_t status, std::uint32_t sequence) {
  finish_pdu(out, begin_pdu(out, command_id, status, sequence));
}

// ---- decoders -------------------------------------------------------------

// What follows the C-string (bind_resp's sc_interface_version TLV) is not
// needed and not checked.
bool decode_c_string_response(std::string_view body, std::string& value) {
  if (body.empty()) {
    value.clear();
    return true;
  }
  reader r(body);
  return r.c_string(value);
}

bool decode_short_message_pdu(std::string_view body, short_message_pdu& out) {
  reader r(body);
  std::uint8_t sm_length = 0;
  // Spec maxima, NUL included: service_type 6, addresses 21, times 17.
  bool ok = r.c_string(out.service_type) && r.address(out.source) && r.address(out.destination) &&
            r.u8(out.esm_class) && r.u8(out.protocol_id) && r.u8(out.priority_flag) &&
            r.c_string(out.schedule_delivery_time) && r.c_string(out.validity_period) &&
            r.u8(out.registered_delivery) && r.u8(out.replace_if_present) && r.u8(out.data_coding) &&
            r.u8(out.sm_default_msg_id) && r.u8(sm_length) && r.octets(sm_length, out.short_message) &&
            read_tlvs(r, out.tlvs);
  if (!ok) return false;
  if (sm_length == 0)
    if (const tlv* payload = out.find(tag::message_payload)) out.short_message = payload->value;
  return true;
}

bool decode_bind(std::string_view body, bind_request& out) {
  reader r(body);
  // Spec maxima, NUL included: system_id 16, password 9, system_type 13,
  // address_range 41.
  return r.c_string(out.system_id) && r.c_string(out.password) && r.c_string(out.system_type) &&
         r.u8(out.interface_version) && r.u8(out.addr_ton) && r.u8(out.addr_npi) && r.c_string(out.address_range);
}

// ---- command_status -------------------------------------------------------

// Temporary: the SMSC's own trouble (ESME_RSYSERR), an explicitly temporary
// application error, ESME_RSUBMITFAIL (many SMSCs answer it for transient
// routing failures; a retry that never succeeds ends in EXPIRED, which is
// refunded anyway), ESME_RINVBNDSTS (it describes the bind's state, not the
// message: the message is fine on a bind that is bound) and the vendor range,
// whose meaning we cannot know. Everything else describes the message itself
// (bad address, length, coding...) and would fail again.
error_class classify(std::uint32_t code) {
  switch (code) {
    case status::ok: return error_class::ok;
    case status::throttled:
    case status::message_queue_full: return error_class::throttled;
    case status::system_error:
    case status::temporary_app_error:
    case status::submit_failed:
    case status::incorrect_bind_status: return error_class::temporary;
  }
  if (code >= 0x400 && code <= 0x4FF) return error_class::temporary;
  return error_class::permanent;
}

std::string status_name(std::uint32_t code) {
  if (const char* name = find_status_name(code)) return fmt::format("{} (0x{:08X})", name, code);
  return fmt::format("0x{:08X}", code);
}

// ---- receipts -------------------------------------------------------------

// Only esm_class message type 0x04 is an SMSC delivery receipt; 0x08 (SME
// delivery acknowledgement), 0x10 (manual/user acknowledgement) and 0x20
// (intermediate notification) come from the handset or are not final
// receipts, so they go to the owner as ordinary deliver_sm.
bool is_receipt(const short_message_pdu& p) { return (p.esm_class & esm::receipt_mask) == esm::smsc_receipt; }

std::optional<message_state> parse_stat(std::string_view stat) {
  struct stat_word {
    std::string_view word;  // lower case
    message_state state;
  };
  // Appendix B's seven-letter forms, then the full words some SMSCs print.
  static constexpr stat_word words[] = {
      {"delivrd", message_state::delivered},
      {"expired", message_state::expired},
      {"deleted", message_state::deleted},
      {"undeliv", message_state::undeliverable},
      {"acceptd", message_state::accepted},
      {"unknown", message_state::unknown},
      {"rejectd", message_state::rejected},
      {"enroute", message_state::submitted},
      {"delivered", message_state::delivered},
      {"undeliverable", message_state::undeliverable},
      {"rejected", message_state::rejected},
      {"accepted", message_state::accepted},
      {"undelivered", message_state::undeliverable},
  };
  for (const stat_word& w : words)
    if (iequals(stat, w.word)) return w.state;
  return std::nullopt;
}

std::optional<message_state> state_from_tlv(std::uint8_t value) {
  switch (value) {
    case 1: return message_state::submitted;
    case 2: return message_state::delivered;
    case 3: return message_state::expired;
    case 4: return message_state::deleted;
    case 5: return message_state::undeliverable;
    case 6: return message_state::accepted;
    case 7: return message_state::unknown;
    case 8: return message_state::rejected;
  }
  return std::nullopt;
}

bool parse_receipt(const short_message_pdu& p, receipt& out) {
  receipt_text text = scan_receipt_text(receipt_text_bytes(p));

  std::string id;
  if (const tlv* t = p.find(tag::receipted_message_id)) id = tlv_c_string(t->value);
  if (id.empty() && text.id) id = *text.id;

  std::optional<message_state> state;
  std::string stat_text;
  if (const tlv* t = p.find(tag::message_state); t != nullptr && t->value.size() == 1) {
    auto v = static_cast<std::uint8_t>(t->value[0]);
    state = state_from_tlv(v);
    if (state) stat_text = stat_name(v);
  }
  if (!state && text.stat) {
    state = parse_stat(*text.stat);
    if (state) stat_text = to_upper(*text.stat);
  }
  if (id.empty() || !state) return false;

  out.message_id = std::move(id);
  out.state = *state;
  out.final = is_final(*state);
  out.stat_text = std::move(stat_text);
  if (text.err && !text.err->empty())
    out.error = *text.err;
  else
    out.error = network_error(p.find(tag::network_error_code)).value_or("000");
  return true;
}

std::optional<std::uint32_t> receipt_error_code(std::string_view error) {
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(error.data(), error.data() + error.size(), v, 10);
  if (ec != std::errc() || end == error.data()) return std::nullopt;
  return v;
}

// ---- message ids ----------------------------------------------------------

std::string canonical_id(std::string_view id) {
  std::size_t first = id.find_first_not_of('0');
  if (first == std::string_view::npos) return id.empty() ? std::string() : std::string("0");
  std::string o(id.substr(first));
  for (char& c : o) c = ascii_lower(c);
  return o;
}

std::string receipt_key(std::string_view submitted_id, std::string_view form) {
  std::string key = canonical_id(submitted_id);
  std::optional<std::string> converted;
  if (form == "hex") converted = decimal_to_hex(key);
  if (form == "decimal") converted = hex_to_decimal(key);
  return converted ? *converted : key;
}

// ---- validity -------------------------------------------------------------

// Years and months have no fixed length in seconds, so the period is written
// in days (YY and MM stay 00); SMSCs cap validity at days anyway, so past 99
// days it is capped at 99 days 23:59:59.
std::string relative_time(std::uint64_t seconds) {
  constexpr std::uint64_t max_seconds = 99 * 86400ULL + 23 * 3600 + 59 * 60 + 59;
  seconds = std::min(seconds, max_seconds);
  return fmt::format("0000{:02}{:02}{:02}{:02}000R", seconds / 86400, seconds / 3600 % 24, seconds / 60 % 60,
                     seconds % 60);
}

}  // namespace postino::smpp
