// Delivery's journal records folded into a checkpoint delta (see
// include/delivery/postino/delivery.h): the one place a `submitted` or
// `delivery_final` record, and an `inbound` record, become message-index
// rows, used live by the engine once the record is durable and by start-up
// replay in src/app/main.cc. Takes the record's fields by value and moves
// them into the delta, which owns its rows until the checkpoint writes them.
#include "postino/delivery.h"

namespace postino::delivery {

void add_delivery_row(credit::journal_delta& d, spool::delivery_event event, std::uint64_t unix_ms) {
  // A failed segment's refund is a credit like a refund record's.
  if (event.refund != 0) d.add_credit(event.account, event.refund);
  // The message's queue id, whichever shard's journal accepted it.
  const spool::delivery_key& key = event.key;
  d.deliveries.push_back({queue_id{key.node, key.shard, key.sequence}.format(), key.recipient, key.segment,
                          std::move(event.recipient), event.state, std::move(event.smsc),
                          std::move(event.smsc_message_id), event.error, event.refund, unix_ms});
}

void add_inbound_row(credit::journal_delta& d, std::uint64_t sequence, spool::inbound_message m,
                     std::uint64_t unix_ms) {
  d.inbound_messages.push_back(
      {sequence, std::move(m.smsc), std::move(m.source), std::move(m.destination), std::move(m.text), unix_ms});
}

}  // namespace postino::delivery
