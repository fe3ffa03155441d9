// The journal: each shard's append-only, group-committed log of accepted
// messages (with their debit) and, later, top-ups, refunds and account changes.
// Files live in <data_dir>/journal-<shard>/segment-<first sequence, hex>.log,
// preallocated. Buffers: append_message() shares the message (its owner keeps
// the other reference) and reads it, its body written straight from it with
// writev, never copied, until the group holding it completes: the journal
// never reads it once on_durable has been called. Small header fields are
// encoded into a per-group staging buffer owned by the journal.
// A segment's name is the journal's next sequence number when the segment was
// created (16 hex digits), so names sort in creation order; records queued
// before a rotation may carry lower sequences than the name.
//
// Test builds (POSTINO_TEST_HOOKS) read these environment variables:
//   POSTINO_FAIL_FSYNC=<n>[@<k>]  after <k> (default 0) more successful group
//                                 fdatasyncs in this process, the next <n>
//                                 report EIO (the group gets on_durable(false)
//                                 and the journal seals its segment);
//   POSTINO_FAIL_WRITE=<n>[@<k>]  the same for the group writes;
//   POSTINO_FAIL_SEAL=<n>         the next <n> seals fail (the journal then
//                                 zeroes the failed group and refuses appends);
//   POSTINO_FSYNC_LOG=<file>      after every successful fdatasync (and when a
//                                 segment is created, sealed or opened) a line
//                                 "<segment path> <durable offset>" is appended
//                                 to <file>: a power-cut test may drop every
//                                 byte of that segment after the last offset.
// test_hooks::fail_next_syncs / fail_next_writes / fail_next_seals below arm
// the same failpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "postino/account.h"
#include "postino/message.h"
#include "postino/message_state.h"

struct io_uring;

namespace postino::core {
class shard;
class service;
}  // namespace postino::core

namespace postino::spool {

enum class record_type : std::uint8_t {
  message = 1,    // an accepted transaction and its debit
  top_up = 2,     // credit added to an account
  refund = 3,     // credit given back (delivery failure)
  seal = 4,       // a segment ends at `offset`: nothing after it is valid
  // Delivery (issue 7), written by the shard that owns the SMSC account:
  submitted = 5,  // submit_sm_resp OK: the SMSC's message id for one segment
  delivery_final = 6,  // a segment's final state; a failure carries its refund
  inbound = 7,    // a non-receipt deliver_sm (a handset's reply)
  // Retention: a message record copied forward from a segment about to be
  // deleted, because its message is not final yet. Carries no debit and no
  // index row (its original did both); only delivery's recovery reads it.
  carried = 8,
};

// Which segment of which accepted message a delivery record is about: the
// message's queue id parts and the recipient's and segment's positions
// (0-based) in it.
struct delivery_key {
  std::uint8_t node = 0;
  std::uint8_t shard = 0;
  std::uint64_t sequence = 0;
  std::uint32_t recipient = 0;
  std::uint32_t segment = 0;
  friend bool operator==(const delivery_key&, const delivery_key&) = default;
};

// Payload of `submitted` and `delivery_final`.
struct delivery_event {
  delivery_key key;
  std::string recipient;        // E.164, for the message index
  std::string smsc;             // the SMSC account's configured name
  std::string smsc_message_id;  // as submit_sm_resp gave it (may be empty for a final without one)
  message_state state = message_state::submitted;  // delivery_final: the final state
  std::uint32_t error = 0;      // SMPP status of a permanent submit error, or the receipt's err code
  account_id account = 0;       // delivery_final: who is refunded
  credit_units refund = 0;      // delivery_final: the failed segment's price, 0 when not refunded
};

// Payload of `inbound`: a handset's message as the SMSC delivered it.
struct inbound_message {
  std::string smsc;
  std::string source;           // as the SMSC gave it (no '+' added)
  std::string destination;
  std::uint8_t data_coding = 0;
  std::string text;             // converted to UTF-8 from data_coding (GSM, Latin-1, UCS-2)
};

// Where a carried record's message was accepted: its queue id's parts and
// the original record's time.
struct record_origin {
  std::uint8_t node = 0;
  std::uint8_t shard = 0;
  std::uint64_t sequence = 0;
  std::uint64_t unix_ms = 0;
};

// One record as recovery sees it. For `message` and `carried`, tx (the message) is filled
// (and origin for carried); for top_up and
// refund, account and amount; for seal, sealed_segment and offset; for
// submitted and delivery_final, delivery; for inbound, inbound.
struct record {
  record_type type = record_type::message;
  std::uint64_t sequence = 0;
  std::uint64_t unix_ms = 0;
  message tx;
  // A version 1 message, accepted before the content step existed: its
  // sms_text and data_coding are empty, and whoever sends it reads its body
  // as raw text (delivery's recovery does, with src/sms's raw-mode rules).
  bool content_unread = false;
  account_id account = 0;
  credit_units amount = 0;
  std::uint64_t sealed_segment = 0;
  std::uint64_t offset = 0;
  delivery_event delivery;
  inbound_message inbound;
  record_origin origin;  // carried only
};

struct journal_options {
  std::string dir;                         // this shard's journal directory
  unsigned node_id = 0;                    // 0-255, part of queue ids
  unsigned shard_id = 0;                   // 0-255, part of queue ids
  std::uint64_t segment_bytes = 64u << 20; // preallocated size of a segment
};

// Told when the group holding a record completes. ok=false: the write or the
// fdatasync failed, the record is not durable and must not be acknowledged.
class append_waiter {
 public:
  virtual void on_durable(bool ok) = 0;
  // The record's sequence in this journal, set when the record is queued
  // (before append_* returns, and before on_durable).
  std::uint64_t sequence = 0;

 protected:
  ~append_waiter() = default;
};

class journal {
 public:
  // Opens (creating if needed) the directory and recovers: every complete
  // record is passed to `visit` in order (it may move fields out); a torn final record of the newest
  // segment is cut; any other damage fails with the file and offset in `error`.
  static std::unique_ptr<journal> open(const journal_options& options,
                                       const std::function<void(record&)>& visit,
                                       std::string& error);
  virtual ~journal() = default;

  // Must be called once, on the owning shard's thread, before append().
  virtual void attach(io_uring& ring) = 0;

  // Queues a message record; returns its queue id now. `waiter` is told when
  // the group holding it is durable or failed; it must stay alive until then.
  virtual queue_id append_message(std::shared_ptr<const message> m, append_waiter* waiter) = 0;
  // The same for a message nobody else keeps.
  queue_id append_message(message&& m, append_waiter* waiter) {
    return append_message(std::make_shared<const message>(std::move(m)), waiter);
  }
  virtual void append_credit(record_type type, account_id account, credit_units amount,
                             append_waiter* waiter) = 0;
  // Queues a submitted / delivery_final record (from r.delivery) or an
  // inbound one (from r.inbound); r.sequence and r.unix_ms are assigned here.
  // `waiter` may be null (nobody waits: a submitted record's loss only means
  // that segment is submitted again after a restart).
  virtual void append_delivery(record_type type, const record& r, append_waiter* waiter) = 0;
  // Queues a `carried` record with `payload` (from segment_reader::carried_payload,
  // checked there); retention's, which deletes the old segment once every
  // carried record of it is durable.
  virtual void append_carried(std::string payload, append_waiter* waiter) = 0;

  // Records waiting or in flight; the shard waits for zero before exiting.
  virtual std::size_t pending() const = 0;

  // Counters for metrics and tests.
  virtual std::uint64_t groups_committed() const = 0;
  virtual std::uint64_t durable_offset() const = 0;  // of the current segment
  // The highest sequence known durable (every durable record's sequence is
  // at most this; records of failed groups are never replayed): a
  // checkpoint's position in this journal.
  virtual std::uint64_t durable_sequence() const = 0;
};

// Attaches `j` to the shard's ring (on the shard's thread) and returns the
// service through which the journal takes part in the shard's loop: the
// shard does not exit while records are pending, and the journal's group
// count is published in the shard's metrics. `j` outlives the service.
std::unique_ptr<core::service> attach_to_shard(journal& j, core::shard& shard);

// Reads a journal directory without changing it (postino-ctl's offline
// balance): every record up to each segment's first zero header or bad
// record, seals respected, passed to `visit` in order. No torn tail is cut
// and nothing is created; a directory that does not exist has no records.
// False with `error` only when a file cannot be read or a checked record
// does not decode.
bool read_journal(const std::string& dir, const std::function<void(record&)>& visit, std::string& error);

// Retention (DESIGN.md "Retention"), for the checkpoint thread: a
// journal's segment names, oldest first (empty with `error` when the
// directory cannot be listed; a missing directory has none), and a reader
// of one of them. Read only and on any thread, while the journal's shard
// goes on appending to its newest segment (a reader is only ever opened on
// an older one, which nothing writes any more).
std::vector<std::uint64_t> segment_names(const std::string& dir, std::string& error);
std::string segment_path(const std::string& dir, std::uint64_t name);

// A message or carried record in a segment: the message's queue id (as it
// was accepted) and where the record lies.
struct stored_message {
  queue_id id;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;  // header and payload
};

class segment_reader {
 public:
  // Maps segment `name` of `dir` and walks it up to `limit` (the offset a
  // later segment's seal gives it; nothing: the whole file) or its first
  // zero header. `node` and `shard` are the journal's, the queue id parts
  // of its message records. Null with `error` when a record is damaged:
  // judging that is start-up's, retention leaves such a segment alone.
  static std::unique_ptr<segment_reader> open(const std::string& dir, std::uint64_t name,
                                              std::optional<std::uint64_t> limit, unsigned node, unsigned shard,
                                              std::string& error);
  // The sealed segment and its offset when this segment's first record is a seal.
  static std::optional<std::pair<std::uint64_t, std::uint64_t>> first_seal(const std::string& dir,
                                                                            std::uint64_t name);
  virtual ~segment_reader() = default;
  virtual std::uint64_t used_bytes() const = 0;    // up to the last record
  virtual std::uint64_t max_sequence() const = 0;  // 0 when it holds none
  virtual const std::vector<stored_message>& messages() const = 0;
  // The messages its submitted and delivery_final records are about.
  virtual const std::vector<queue_id>& deliveries() const = 0;
  // The payload of a `carried` record for `m` (journal::append_carried).
  virtual std::string carried_payload(const stored_message& m) const = 0;
};

#ifdef POSTINO_TEST_HOOKS
namespace test_hooks {
// The next `count` group fdatasyncs (writes) of any journal in this process
// report EIO, after `after` more successful ones.
void fail_next_syncs(unsigned count, unsigned after = 0);
void fail_next_writes(unsigned count, unsigned after = 0);
// The next `count` seals (the new segment after a failed group) fail.
void fail_next_seals(unsigned count);
}  // namespace test_hooks
#endif

}  // namespace postino::spool
