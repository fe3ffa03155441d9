// Builds the outbound form of an accepted SMS (include/delivery/postino/delivery.h):
// the exact short_message of every segment, encoded once on the accepting
// shard (or at start-up) and then shared read-only by the shards whose SMSCs
// deliver its recipients. Shares the caller's message; owns what it builds.
// The refunds its unit prices allow never add up to more than the price.
#include "postino/delivery.h"

#include <algorithm>

namespace postino::delivery {
namespace {

// A failed segment is refunded its unit price, so every segment failing
// must not give back more than the message cost. It could: a version 1
// record was charged one segment whatever its text, which may encode to
// more, and a record's unit prices are only checked one by one. Then each
// segment gets an even share of the price instead. Summed in 128 bits: a
// unit price may be near the int64 maximum.
void bound_refunds(outbound_message& m, credit_units price) {
  __int128 total = 0;
  for (credit_units u : m.unit_prices) total += __int128{std::max<credit_units>(u, 0)} * m.segments.size();
  if (total <= price) return;
  const std::size_t recipients = m.unit_prices.size();
  const auto parts = static_cast<credit_units>(std::max<std::size_t>(1, recipients) *
                                               std::max<std::size_t>(1, m.segments.size()));
  m.unit_prices.assign(recipients, std::max<credit_units>(price, 0) / parts);
}

}  // namespace

std::shared_ptr<const outbound_message> make_outbound(std::shared_ptr<const message> source, const queue_id& id,
                                                      std::uint64_t accepted_unix_ms, unsigned validity_s) {
  if (source->is_mms) return nullptr;
  auto m = std::make_shared<outbound_message>();
  m->key = spool::delivery_key{id.node, id.shard, id.sequence, 0, 0};
  m->queue_id = id.format();
  m->unit_prices.reserve(source->recipients.size());
  for (std::size_t i = 0; i < source->recipients.size(); ++i) m->unit_prices.push_back(source->unit_price(i));
  // The content step stored exactly the text that goes out (transliterated
  // already when the account asked for it), so it is encoded as it is.
  sms::encoded_sms encoded = sms::encode_sms(source->sms_text, static_cast<std::uint8_t>(id.sequence & 0xFF));
  m->encoding = encoded.encoding;
  m->segments = std::move(encoded.segments);
  bound_refunds(*m, source->price);
  m->expires_unix_ms = accepted_unix_ms + std::uint64_t{validity_s} * 1000;
  m->source = std::move(source);
  return m;
}

}  // namespace postino::delivery
