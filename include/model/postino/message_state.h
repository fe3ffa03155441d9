// Delivery states shared by the components that record, store and show them
// (SMPP receipts in src/delivery, journal records in src/spool, the message
// index in src/credit, postino-ctl). Plain values, no buffers. The numbers
// are written to the journal and the message index: never renumber them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace postino {

enum class message_state : std::uint8_t {
  queued = 0,         // accepted, not yet taken by an SMSC
  submitted = 1,      // submit_sm_resp OK: the SMSC has it, no final receipt yet
  delivered = 2,      // DELIVRD
  accepted = 3,       // ACCEPTD: final, read by the SMSC operator
  unknown = 4,        // UNKNOWN: final, no refund (the SMSC cannot tell)
  expired = 5,        // EXPIRED, or our validity period ran out before any SMSC took it
  deleted = 6,        // DELETED
  undeliverable = 7,  // UNDELIV
  rejected = 8,       // REJECTD, or a permanent submit_sm error
};

inline constexpr bool is_final(message_state s) { return s >= message_state::delivered; }
// Final failures refund the failed segments' price, exactly once.
inline constexpr bool is_refunded(message_state s) { return s >= message_state::expired; }

// "The worst of its segments": a failed segment makes the recipient failed;
// otherwise a segment still under way makes it under way; all delivered is
// delivered. The rank orders states for that max().
inline constexpr int severity(message_state s) {
  switch (s) {
    case message_state::delivered: return 0;
    case message_state::accepted: return 1;
    case message_state::unknown: return 2;
    case message_state::submitted: return 3;
    case message_state::queued: return 4;
    case message_state::expired: return 5;
    case message_state::deleted: return 6;
    case message_state::undeliverable: return 7;
    case message_state::rejected: return 8;
  }
  return 8;
}
inline constexpr message_state worse(message_state a, message_state b) {
  return severity(a) >= severity(b) ? a : b;
}

inline constexpr const char* state_name(message_state s) {
  switch (s) {
    case message_state::queued: return "queued";
    case message_state::submitted: return "submitted";
    case message_state::delivered: return "delivered";
    case message_state::accepted: return "accepted";
    case message_state::unknown: return "unknown";
    case message_state::expired: return "expired";
    case message_state::deleted: return "deleted";
    case message_state::undeliverable: return "undeliverable";
    case message_state::rejected: return "rejected";
  }
  return "?";
}

inline std::optional<message_state> parse_state_name(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(message_state::rejected); ++i)
    if (name == state_name(static_cast<message_state>(i))) return static_cast<message_state>(i);
  return std::nullopt;
}

}  // namespace postino
