// Delivery to the mobile network (issue 7, DESIGN.md "Delivery"): every
// accepted SMS goes out as submit_sm to an SMSC, routed by destination prefix
// with failover, fair between accounts, windowed and throttled per bind,
// retried on temporary errors until its validity period ends; receipts are
// matched to queue id, recipient and segment, final failures refunded once.
// One `engine` per shard, created on the shard's thread by the gateway's
// request handler: it drives the binds of the SMSC accounts that shard owns
// and hands the recipients of messages accepted on it to the owning shards.
// Buffers: an accepted message becomes one immutable outbound_message shared
// (std::shared_ptr, atomically counted) by the shards that deliver its
// recipients; it shares in turn the accepted message itself (recipients,
// originator: never copied) with the message index. Everything else an
// engine holds is its own.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "postino/account.h"
#include "postino/config.h"
#include "postino/credit.h"
#include "postino/message.h"
#include "postino/sms.h"
#include "postino/spool.h"

namespace postino::core {
class shard;
}

namespace postino::delivery {

// What delivery needs of an accepted SMS, built once (on the accepting shard
// or at start-up from its journal record) and never changed.
struct outbound_message {
  spool::delivery_key key;           // node, shard, sequence (recipient, segment unused)
  std::string queue_id;              // key's text form, for logs and the message index
  // The accepted message, without its body: account, originator, recipients.
  std::shared_ptr<const message> source;
  std::vector<credit_units> unit_prices;   // per recipient, one segment's price (bounded: see outbound.cc)
  sms::sms_encoding encoding = sms::sms_encoding::gsm7;
  std::vector<std::string> segments;       // exact short_message of each segment (UDH included)
  std::uint64_t expires_unix_ms = 0;       // accepted + validity period
};

// Builds the outbound form of a committed SMS (whose body the caller has
// dropped: delivery never reads it); nullptr for an MMS (MMS goes out over
// MM4/MM7, not SMPP: not built yet, such messages stay queued). The
// concatenation reference is the low byte of the record's sequence, so a
// segment submitted again after a restart carries the same reference.
std::shared_ptr<const outbound_message> make_outbound(std::shared_ptr<const message> m, const queue_id& id,
                                                      std::uint64_t accepted_unix_ms, unsigned validity_s);

// The message-index rows of delivery's journal records, folded into a
// checkpoint delta: the one place a `submitted` or `delivery_final` record
// (with a final's refund, a credit) and an `inbound` record enter a delta,
// live (the engine, once the record is durable) and at start-up replay.
void add_delivery_row(credit::journal_delta& d, spool::delivery_event event, std::uint64_t unix_ms);
void add_inbound_row(credit::journal_delta& d, std::uint64_t sequence, spool::inbound_message m,
                     std::uint64_t unix_ms);

// Per-shard counters for /metrics, written only by the owning shard.
struct alignas(64) delivery_metrics {
  std::atomic<std::uint64_t> submits{0};            // submit_sm sent
  std::atomic<std::uint64_t> submitted_ok{0};       // submit_sm_resp OK
  std::atomic<std::uint64_t> throttled{0};          // ESME_RTHROTTLED / ESME_RMSGQFUL answers
  std::atomic<std::uint64_t> temporary_errors{0};
  std::atomic<std::uint64_t> permanent_errors{0};
  std::atomic<std::uint64_t> resubmitted{0};        // outstanding at a disconnect, sent again: possible duplicates
  std::atomic<std::uint64_t> receipts{0};           // receipts received
  std::atomic<std::uint64_t> receipts_matched{0};
  std::atomic<std::uint64_t> receipts_held{0};      // arrived before their submit_sm_resp
  std::atomic<std::uint64_t> receipts_unmatched{0}; // held too long, dropped
  std::atomic<std::uint64_t> finals{0};             // segments that reached a final state
  std::atomic<std::uint64_t> refunds{0};            // refunded segments
  std::atomic<std::uint64_t> refunded_units{0};
  std::atomic<std::uint64_t> expired{0};            // validity ended before an SMSC took it
  std::atomic<std::uint64_t> inbound{0};            // handset messages stored
  std::atomic<std::uint64_t> binds_up{0};           // gauge
  std::atomic<std::uint64_t> failovers{0};          // segments moved to another SMSC
};

// A segment to deliver that start-up found in the journals.
struct recovered_segment {
  std::shared_ptr<const outbound_message> message;
  std::uint32_t recipient = 0;
  std::uint32_t segment = 0;
  int smsc = -1;                 // submitted to this SMSC (index in config.smscs) ...
  std::string smsc_message_id;   // ... with this id: wait for its receipt. Empty: submit.
};

// Collects, during start-up replay, every journal's message and delivery
// records, and then says what is still to do. Memory: each SMS message
// (moved out of its record, without its body) until finish(), which encodes
// only those with a segment not final yet.
class recovery {
 public:
  recovery(const gateway_config& config);
  ~recovery();
  // Before any visit: what the message index says of the messages the
  // checkpoint covers (`covered`: per accepting shard, the position), which
  // journal retention may have left without some of their records. Of
  // those, a message not in `open` is final (its record is only there until
  // its segment goes); an open one's segments start from the index's rows.
  void use_index(credit::checkpoint_store::open_messages open, std::unordered_map<unsigned, std::uint64_t> covered,
                 unsigned node);
  // Every record of every journal; `node` and `shard` are the journal's
  // (a message record's queue id parts). A message record's message is
  // moved out of `r`; the const form copies it.
  void visit(spool::record&& r, unsigned node, unsigned shard);
  void visit(const spool::record& r, unsigned node, unsigned shard);
  // Per owning shard, what to submit or wait for; counts for the log.
  struct result {
    std::vector<std::vector<recovered_segment>> per_shard;
    std::uint64_t to_submit = 0;
    std::uint64_t awaiting_receipt = 0;
    std::uint64_t mms_left_queued = 0;
  };
  result finish(unsigned shards);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

class engine;

// Shared by all shards; built by main before the runtime starts.
struct shared_state {
  const gateway_config* config = nullptr;   // outlives the runtime
  std::vector<unsigned> smsc_shard;         // owning shard of each SMSC account
  std::unique_ptr<std::atomic<std::uint64_t>[]> smsc_down_since_ms;  // 0: some bind is up
  std::atomic<std::int64_t> backlog{0};     // segments waiting for an SMSC to take them
  std::unique_ptr<delivery_metrics[]> metrics;  // per shard
  std::vector<std::vector<recovered_segment>> recovered;  // per shard, taken at start
  // Each shard's engine, set by the shard during its set-up (before any
  // mailbox message runs) and read only by that shard afterwards.
  std::vector<engine*> engines;
  bool enabled() const { return config != nullptr && !config->smscs.empty(); }
};
std::shared_ptr<shared_state> make_shared_state(const gateway_config& config, unsigned shards);
// The shard an SMSC account's binds live on: its configured shard, else a
// hash of its name.
unsigned smsc_home_shard(const smsc_config& smsc, unsigned shards);

// What the engine needs from the gateway on its shard.
class host {
 public:
  // A refund record is durable on this shard's journal: credit the account
  // at its home (add_delivery_row folded it into this shard's delta already).
  virtual void refund_durable(account_id account, credit_units amount) = 0;
  // Message-index rows (this shard's checkpoint delta).
  virtual credit::journal_delta& delta() = 0;
  // This shard's journal (delivery records); null: none (tests).
  virtual spool::journal* journal() = 0;

 protected:
  ~host() = default;
};

class engine {
 public:
  // On the shard's thread, once its ring exists (from the handler's constructor).
  engine(core::shard& shard, std::shared_ptr<shared_state> shared, host& h);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // A message accepted on this shard is durable: route its recipients.
  void hand_off(std::shared_ptr<const outbound_message> message);
  // Shutdown: stop submitting, unbind every bind. drained() once all closed.
  void stop();
  bool drained() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace postino::delivery
