// Matches one SMSC account's delivery receipts to the segments it took: the
// id each submit_sm_resp gave indexes its segment (queue id, recipient and
// segment) until the final receipt for that id comes; a receipt that comes
// before its submit_sm_resp (SMSCs do send them first) is held until the
// submit_sm_resp, or until its hold time ends (receipt_hold_s).
// Ids are compared canonically (letter case and leading zeros aside, see
// smpp::canonical_id); the account's receipt_ids setting says whether its
// receipts print the submitted id in the other base: "hex" (submit_sm_resp
// gave decimal) or "decimal" (it gave hex) convert the submitted id once,
// "same" and "auto" (the default) do not convert. Nothing is guessed: an id
// read in the other base is often exactly another segment's id (sequential
// ids: receipt "26" is 0x26, and also the decimal reading of 0x1A), and a
// wrong match would finalize, and refund, the wrong segment.
// Pure (the caller passes the times); one per SMSC account on its shard.
// Buffers: the matcher owns the segments and receipts moved into it; the
// receipt_ids text is a view that must outlive it (the smsc_config's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "postino/smpp.h"
#include "segment.h"

namespace postino::delivery {

class receipt_matcher {
 public:
  // A submitted segment waiting for its final receipt.
  struct awaiting {
    segment_ref seg;
    std::string smsc_message_id;  // as submit_sm_resp gave it
  };

  explicit receipt_matcher(std::string_view receipt_ids) : receipt_ids_(receipt_ids) {}

  // submit_sm_resp gave `smsc_message_id` (not empty): the receipt held
  // for it, taken out, if it came first; otherwise nothing, and the caller
  // gives the segment to await().
  std::optional<smpp::receipt> take_held(std::string_view smsc_message_id);
  // The segment waits for the receipt of `smsc_message_id` (also at
  // start-up, and again when its final record could not be written). A
  // second segment under the same id replaces the first.
  void await(segment_ref seg, std::string smsc_message_id);

  // A final receipt: the segment it is for, taken out, or nothing (then the
  // caller holds it, or drops it).
  std::optional<awaiting> match(const smpp::receipt& r);
  // Keeps a receipt that matched nothing until `until_ms` (a second receipt
  // for the same id replaces the first).
  void hold(smpp::receipt r, std::uint64_t until_ms);
  // Drops the held receipts whose time ended at `now_ms` and returns them
  // (for the log and the unmatched counter).
  std::vector<smpp::receipt> drop_expired(std::uint64_t now_ms);

  std::size_t awaiting_count() const { return awaiting_.size(); }
  std::size_t held_count() const { return held_.size(); }

 private:
  struct held {
    smpp::receipt receipt;
    std::uint64_t until_ms = 0;
  };
  // The key a submitted id is indexed under (smpp::receipt_key): what this
  // SMSC's receipts print for it, canonically.
  std::string key_of_submitted(std::string_view smsc_message_id) const;

  std::string_view receipt_ids_;
  std::unordered_map<std::string, awaiting> awaiting_;  // by key_of_submitted
  std::unordered_map<std::string, held> held_;          // by the receipt's canonical id
};

}  // namespace postino::delivery
