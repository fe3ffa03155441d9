// The domain's message: what an accepted SMS or MMS is, whichever protocol
// brought it in (SMTP fills one today) and whichever part keeps or sends it
// (the journal stores it, delivery encodes and submits it, the checkpoint
// indexes it). And the queue id that names it: node, shard and the journal
// sequence of its record. Part "model": depends on nothing but the standard
// library. Buffers: plain values; whoever holds a message owns its strings.
// After acceptance one message is shared read-only (std::shared_ptr<const
// message>) by the journal until its group is durable, by delivery and by the
// message index: its recipients are stored once and moved, never copied.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "postino/account.h"

namespace postino {

// "NNSSQQQQQQQQQQQQ": node and shard (two upper-case hex digits each) and the
// record's sequence (twelve or more), as the 250 reply, the message index and
// postino-ctl show it.
struct queue_id {
  std::uint8_t node = 0;
  std::uint8_t shard = 0;
  std::uint64_t sequence = 0;

  // The text form in a fixed buffer: no allocation on the 250 line's path.
  struct text {
    char chars[20];
    std::uint8_t size = 0;
    std::string_view view() const { return {chars, size}; }
  };

  text to_text() const {
    static constexpr char digits[] = "0123456789ABCDEF";
    text t;
    for (std::uint8_t byte : {node, shard}) {
      t.chars[t.size++] = digits[byte >> 4];
      t.chars[t.size++] = digits[byte & 0xF];
    }
    std::size_t hex_digits = 12;  // 16 characters, more for sequences of 2^48 and up
    while (hex_digits < 16 && (sequence >> (4 * hex_digits)) != 0) ++hex_digits;
    for (std::size_t i = hex_digits; i-- > 0;) t.chars[t.size++] = digits[(sequence >> (4 * i)) & 0xF];
    return t;
  }

  std::string format() const { return std::string(to_text().view()); }

  // The inverse of format(), either case; nullopt for anything else.
  static std::optional<queue_id> parse(std::string_view text) {
    if (text.size() < 16 || text.size() > 20) return std::nullopt;
    unsigned node = 0, shard = 0;
    queue_id id;
    if (!hex_field(text.substr(0, 2), node) || !hex_field(text.substr(2, 2), shard) ||
        !hex_field(text.substr(4), id.sequence))
      return std::nullopt;
    id.node = static_cast<std::uint8_t>(node);
    id.shard = static_cast<std::uint8_t>(shard);
    return id;
  }

  friend bool operator==(const queue_id&, const queue_id&) = default;

 private:
  template <class Number>
  static bool hex_field(std::string_view text, Number& out) {
    const char* end = text.data() + text.size();
    auto [at, error] = std::from_chars(text.data(), end, out, 16);
    return error == std::errc() && at == end && text.front() != '+' && text.front() != '-';
  }
};

// A concatenated SMS counts its parts in one UDH byte.
inline constexpr std::uint32_t max_message_segments = 255;

// One accepted message: who sends it, to whom, what it costs, what goes out.
struct message {
  account_id account = 0;
  std::string originator;               // the sender that goes out
  originator_kind originator_type = originator_kind::numeric;
  std::vector<std::string> recipients;  // E.164 with '+', distinct, in order
  std::string body;                     // unstuffed text, CRLF line ends, no terminator (an
                                        // MMS keeps its whole MIME body here)
  credit_units price = 0;               // what acceptance debits, all or nothing
  // Per recipient (parallel to `recipients`), the price of one of its SMS
  // segments, so a failed segment is refunded exactly what it cost when
  // prefix prices differ. The sum over recipients of segments x unit price
  // is `price`. Empty when every recipient pays the same (an MMS always):
  // then unit_price() gives each the even share. Computed in src/sms/pricing.cc.
  std::vector<credit_units> unit_prices;
  std::uint32_t segments = 1;           // SMS segments per recipient; 1 for an MMS
  // What the content step found (src/mime, PROTOCOL.md 3).
  std::string sms_text;                 // the SMS text, UTF-8 (an MMS: its text part, may be empty)
  std::uint8_t data_coding = 0;         // SMPP data_coding of sms_text: 0x00 GSM 03.38, 0x08 UCS-2
  // MMS facts (MM4, PROTOCOL.md 3).
  bool is_mms = false;
  bool mm4_ack_owed = false;            // X-Mms-Ack-Request: Yes: an MM4_forward.RES is owed
  std::string mm4_message_id;           // X-Mms-Message-ID, else Message-ID, without <> (MMS only)
  std::string mm4_transaction_id;       // X-Mms-Transaction-ID, echoed in the MM4_forward.RES
  std::string mm4_originator_system;    // X-Mms-Originator-System: where the RES goes

  // Segments each recipient is charged: an MMS counts as one.
  std::uint32_t charged_segments() const { return is_mms ? 1 : std::max<std::uint32_t>(segments, 1); }

  // The even share of the price per recipient and segment: every unit price
  // when unit_prices is empty. Zero without recipients.
  credit_units even_unit_price() const {
    if (recipients.empty()) return 0;
    // recipients < 2^30 (the journal bounds them) and segments < 2^32.
    return price / (static_cast<credit_units>(recipients.size()) * charged_segments());
  }

  // What one segment to recipient `i` cost (the refund of one failed segment).
  credit_units unit_price(std::size_t i) const {
    return unit_prices.size() == recipients.size() && i < unit_prices.size() ? unit_prices[i] : even_unit_price();
  }
};

}  // namespace postino
