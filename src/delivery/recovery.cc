// Start-up recovery of delivery work (include/delivery/postino/delivery.h): while
// main replays every journal, this collects each SMS message record (or its
// carried copy) and every submitted / delivery_final record (which may sit
// in another shard's journal, before or after the message's own record),
// then says, per owning shard, which segments must be submitted and which
// wait for a receipt. Journal retention deletes a segment once the
// checkpoint covers it, so for covered messages the message index's rows
// (use_index) stand for the records that went with it.
// Only use_index(), visit() and finish() touch the maps; all run on the main thread.
#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "postino/delivery.h"
#include "postino/smpp.h"

namespace postino::delivery {
namespace {

struct message_key {
  std::uint8_t node = 0;
  std::uint8_t shard = 0;
  std::uint64_t sequence = 0;
  auto operator<=>(const message_key&) const = default;
};

struct segment_key {
  std::uint32_t recipient = 0;
  std::uint32_t segment = 0;
  auto operator<=>(const segment_key&) const = default;
};

struct segment_news {
  bool final = false;
  std::string smsc;  // submitted to
  std::string smsc_message_id;
  std::uint64_t unix_ms = 0;  // of the submitted record that said so
};

// An SMS message record as replayed, encoded only in finish() and only if
// some segment of it is not final yet: most of a long history is.
struct journaled_sms {
  std::shared_ptr<const message> msg;  // without its body: the text that goes out is sms_text
  queue_id id;
  std::uint64_t unix_ms = 0;
};

// The message of a record, without its body. A version 1 record was
// accepted before the content step: its body is read as raw text here, as
// it was when it was accepted.
std::shared_ptr<const message> sendable(spool::record& r) {
  if (r.content_unread) {
    r.tx.sms_text = sms::clean_raw_text(r.tx.body).utf8;
    r.tx.data_coding = sms::smpp_data_coding(sms::count_segments(r.tx.sms_text).encoding);
  }
  std::string().swap(r.tx.body);
  return std::make_shared<const message>(std::move(r.tx));
}

std::size_t finals(const std::map<segment_key, segment_news>& known) {
  std::size_t n = 0;
  for (const auto& [_, news] : known) n += news.final ? 1 : 0;
  return n;
}

}  // namespace

struct recovery::impl {
  const gateway_config& config;
  std::map<message_key, journaled_sms> messages;
  std::map<message_key, std::map<segment_key, segment_news>> news;
  std::set<message_key> mms;  // a carried copy and its original count once
  // use_index's: positions per shard and the open messages among them.
  unsigned node = 0;
  std::unordered_map<unsigned, std::uint64_t> covered;
  std::set<message_key> open;

  // A covered message the index says is final: nothing left to do.
  bool final_in_index(const message_key& key) const {
    if (key.node != node) return false;
    const auto position = covered.find(key.shard);
    return position != covered.end() && key.sequence <= position->second && !open.contains(key);
  }

  void learn(const message_key& key, const segment_key& part, bool final, const std::string& smsc,
             const std::string& smsc_message_id, std::uint64_t unix_ms) {
    segment_news& n = news[key][part];
    if (final) {
      n.final = true;
    } else if (!n.final && unix_ms >= n.unix_ms) {  // the latest submission wins
      n.smsc = smsc;
      n.smsc_message_id = smsc_message_id;
      n.unix_ms = unix_ms;
    }
  }
};

recovery::recovery(const gateway_config& config) : impl_(std::make_unique<impl>(impl{config, {}, {}, {}, 0, {}, {}})) {}
recovery::~recovery() = default;

void recovery::use_index(credit::checkpoint_store::open_messages open,
                         std::unordered_map<unsigned, std::uint64_t> covered, unsigned node) {
  impl_->node = node;
  impl_->covered = std::move(covered);
  for (auto& [text, rows] : open) {
    const std::optional<queue_id> id = queue_id::parse(text);
    if (!id) continue;
    const message_key key{id->node, id->shard, id->sequence};
    impl_->open.insert(key);
    for (const auto& row : rows)
      impl_->learn(key, {row.recipient_index, row.segment}, is_final(row.state), row.smsc, row.smsc_message_id,
                   row.updated_ms);
  }
}

void recovery::visit(const spool::record& r, unsigned node, unsigned shard) {
  spool::record copy = r;
  visit(std::move(copy), node, shard);
}

void recovery::visit(spool::record&& r, unsigned node, unsigned shard) {
  switch (r.type) {
    case spool::record_type::message:
      // Its id: the journal's node and shard, the record's sequence.
      r.origin = {static_cast<std::uint8_t>(node), static_cast<std::uint8_t>(shard), r.sequence, r.unix_ms};
      [[fallthrough]];
    case spool::record_type::carried: {
      const message_key key{r.origin.node, r.origin.shard, r.origin.sequence};
      if (impl_->final_in_index(key)) return;
      if (r.tx.is_mms) {
        impl_->mms.insert(key);
        return;
      }
      journaled_sms& m = impl_->messages[key];
      m.msg = sendable(r);
      m.id = queue_id{key.node, key.shard, key.sequence};
      m.unix_ms = r.origin.unix_ms;
      return;
    }
    case spool::record_type::submitted:
    case spool::record_type::delivery_final: {
      const auto& d = r.delivery;
      impl_->learn({d.key.node, d.key.shard, d.key.sequence}, {d.key.recipient, d.key.segment},
                   r.type == spool::record_type::delivery_final, d.smsc, d.smsc_message_id, r.unix_ms);
      return;
    }
    default: return;
  }
}

recovery::result recovery::finish(unsigned shards) {
  result out;
  out.per_shard.resize(shards);
  out.mms_left_queued = impl_->mms.size();
  const auto& smscs = impl_->config.smscs;
  std::unordered_map<std::string, int> smsc_index;
  for (std::size_t i = 0; i < smscs.size(); ++i) smsc_index[smscs[i].name] = static_cast<int>(i);
  for (auto& [key, journaled] : impl_->messages) {
    auto found = impl_->news.find(key);
    const std::map<segment_key, segment_news>* known = found == impl_->news.end() ? nullptr : &found->second;
    // Every segment of every recipient final: nothing to encode or do.
    const std::size_t parts = journaled.msg->recipients.size() * std::max<std::uint32_t>(1, journaled.msg->segments);
    if (known != nullptr && finals(*known) >= parts) continue;
    auto message = make_outbound(std::move(journaled.msg), journaled.id, journaled.unix_ms,
                                 impl_->config.delivery.validity_s);
    for (std::uint32_t r = 0; r < message->source->recipients.size(); ++r) {
      for (std::uint32_t s = 0; s < message->segments.size(); ++s) {
        const segment_news* n = nullptr;
        if (known != nullptr) {
          auto it = known->find({r, s});
          if (it != known->end()) n = &it->second;
        }
        if (n != nullptr && n->final) continue;
        recovered_segment seg{message, r, s, -1, {}};
        if (n != nullptr && !n->smsc_message_id.empty()) {
          auto idx = smsc_index.find(n->smsc);
          if (idx != smsc_index.end()) {
            // Submitted to an SMSC we still have: its receipt will come.
            seg.smsc = idx->second;
            seg.smsc_message_id = n->smsc_message_id;
            ++out.awaiting_receipt;
            out.per_shard[smsc_home_shard(smscs[idx->second], shards)].push_back(std::move(seg));
            continue;
          }
        }
        // Never confirmed by an SMSC (or by one no longer configured): the
        // accepting shard's engine routes it again at start.
        ++out.to_submit;
        out.per_shard[message->key.shard % shards].push_back(std::move(seg));
      }
    }
  }
  impl_->messages.clear();
  impl_->news.clear();
  return out;
}

}  // namespace postino::delivery
