// Receipt matching by SMSC message id, and receipts held before their
// submit_sm_resp (receipt_matcher.h). Buffers: both maps own their entries;
// keys are built per call (ids are short).
#include "receipt_matcher.h"

namespace postino::delivery {

std::string receipt_matcher::key_of_submitted(std::string_view smsc_message_id) const {
  return smpp::receipt_key(smsc_message_id, receipt_ids_);
}

std::optional<smpp::receipt> receipt_matcher::take_held(std::string_view smsc_message_id) {
  auto it = held_.find(key_of_submitted(smsc_message_id));
  if (it == held_.end()) return std::nullopt;
  smpp::receipt r = std::move(it->second.receipt);
  held_.erase(it);
  return r;
}

void receipt_matcher::await(segment_ref seg, std::string smsc_message_id) {
  // (The key first: the right side of an assignment is evaluated first.)
  std::string key = key_of_submitted(smsc_message_id);
  awaiting_[std::move(key)] = {std::move(seg), std::move(smsc_message_id)};
}

std::optional<receipt_matcher::awaiting> receipt_matcher::match(const smpp::receipt& r) {
  auto it = awaiting_.find(smpp::canonical_id(r.message_id));
  if (it == awaiting_.end()) return std::nullopt;
  awaiting a = std::move(it->second);
  awaiting_.erase(it);
  return a;
}

void receipt_matcher::hold(smpp::receipt r, std::uint64_t until_ms) {
  std::string key = smpp::canonical_id(r.message_id);
  held_[std::move(key)] = {std::move(r), until_ms};
}

std::vector<smpp::receipt> receipt_matcher::drop_expired(std::uint64_t now_ms) {
  std::vector<smpp::receipt> dropped;
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second.until_ms > now_ms) {
      ++it;
      continue;
    }
    dropped.push_back(std::move(it->second.receipt));
    it = held_.erase(it);
  }
  return dropped;
}

}  // namespace postino::delivery
