// The unit of delivery work inside src/delivery: one segment of one
// recipient of one outbound message, as the router, the fair queue, the
// receipt matcher and the engine pass it around. Buffers: a segment_ref
// shares its message (std::shared_ptr to the immutable outbound_message) and
// owns nothing else; copying one copies a pointer and three numbers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "postino/delivery.h"

namespace postino::delivery {

struct segment_ref {
  std::shared_ptr<const outbound_message> message;
  std::uint32_t recipient = 0;
  std::uint32_t segment = 0;
  std::uint32_t attempts = 0;  // temporary failures so far

  spool::delivery_key key() const {
    spool::delivery_key k = message->key;
    k.recipient = recipient;
    k.segment = segment;
    return k;
  }
  account_id account() const { return message->source->account; }
  credit_units unit_price() const { return message->unit_prices[recipient]; }
  const std::string& number() const { return message->source->recipients[recipient]; }
};

// The digits of an E.164 number ("+393331234567" -> "393331234567"): what
// routes match and what goes out as the destination address.
inline std::string_view e164_digits(std::string_view e164) {
  if (!e164.empty() && e164.front() == '+') e164.remove_prefix(1);
  return e164;
}

}  // namespace postino::delivery
