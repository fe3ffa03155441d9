// What waits for one SMSC account, fair between customer accounts: per
// account a FIFO of segments and a rotation over the accounts that have one,
// taking one segment per turn, so a million-segment campaign never starves a
// one-message sender (DESIGN.md "Delivery"). It also keeps the gateway's
// backlog counter (shared_state::backlog, what MAIL's queue_limit is checked
// against): a segment counts from admit() until the driver says it settled
// (the SMSC took it, it became final, it moved to another SMSC), including
// the time it spends out of the queue (in flight, waiting for a retry).
// One per SMSC account on its owning shard; single-threaded.
// Buffers: the queue owns the segments it holds (each shares its message);
// the backlog counter belongs to shared_state and must outlive the queue.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>
#include <vector>

#include "segment.h"

namespace postino::delivery {

class fair_queue {
 public:
  explicit fair_queue(std::atomic<std::int64_t>& backlog) : backlog_(backlog) {}

  // Segments new to this SMSC: counted in the backlog, queued behind their
  // accounts' others.
  void admit(std::vector<segment_ref> segments);
  // A segment already counted goes back in: at the front of its account's
  // FIFO (it keeps its turn: throttled, or unanswered when a bind was lost)
  // or at the back (a retry that is due).
  void push_front(segment_ref seg);
  void push_back(segment_ref seg);
  // The next segment in turn; false when nothing is queued.
  bool pop(segment_ref& out);

  // `n` counted segments left the backlog (taken by the SMSC, final, moved).
  void settled(std::size_t n = 1);
  // A segment that had settled is owed again (its final record did not
  // become durable, so it will be retried).
  void unsettled();

  // Failover: every queued segment for which `destination` names an SMSC
  // (>= 0) is taken out and settled here, grouped by that SMSC; the others
  // stay, queued again in their turn order. Returns how many moved.
  using moved_segments = std::unordered_map<int, std::vector<segment_ref>>;
  std::size_t move_out(const std::function<int(const segment_ref&)>& destination, moved_segments& moved);

  std::size_t size() const { return queued_; }
  bool empty() const { return queued_ == 0; }

 private:
  void push(segment_ref seg, bool front);

  std::unordered_map<account_id, std::deque<segment_ref>> fifos_;
  std::deque<account_id> rotation_;  // accounts whose FIFO is not empty, each once
  std::size_t queued_ = 0;
  std::atomic<std::int64_t>& backlog_;
};

}  // namespace postino::delivery
