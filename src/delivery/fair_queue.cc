// Round robin over customer accounts, one segment per turn, and the backlog
// counter (fair_queue.h). Buffers: the FIFOs own their segments; the backlog
// counter is shared_state's, changed relaxed (MAIL reads it as an estimate).
#include "fair_queue.h"

namespace postino::delivery {

void fair_queue::admit(std::vector<segment_ref> segments) {
  backlog_.fetch_add(static_cast<std::int64_t>(segments.size()), std::memory_order_relaxed);
  for (auto& seg : segments) push(std::move(seg), false);
}

void fair_queue::push_front(segment_ref seg) { push(std::move(seg), true); }
void fair_queue::push_back(segment_ref seg) { push(std::move(seg), false); }

void fair_queue::push(segment_ref seg, bool front) {
  auto& fifo = fifos_[seg.account()];
  if (fifo.empty()) rotation_.push_back(seg.account());
  front ? fifo.push_front(std::move(seg)) : fifo.push_back(std::move(seg));
  ++queued_;
}

bool fair_queue::pop(segment_ref& out) {
  while (!rotation_.empty()) {
    const account_id a = rotation_.front();
    rotation_.pop_front();
    auto it = fifos_.find(a);
    if (it == fifos_.end() || it->second.empty()) continue;
    out = std::move(it->second.front());
    it->second.pop_front();
    --queued_;
    if (it->second.empty())
      fifos_.erase(it);
    else
      rotation_.push_back(a);
    return true;
  }
  return false;
}

void fair_queue::settled(std::size_t n) {
  backlog_.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
}

void fair_queue::unsettled() { backlog_.fetch_add(1, std::memory_order_relaxed); }

std::size_t fair_queue::move_out(const std::function<int(const segment_ref&)>& destination, moved_segments& moved) {
  std::size_t count = 0;
  std::deque<segment_ref> stay;
  segment_ref seg;
  while (pop(seg)) {
    const int to = destination(seg);
    if (to < 0) {
      stay.push_back(std::move(seg));
      continue;
    }
    moved[to].push_back(std::move(seg));
    ++count;
  }
  for (auto& s : stay) push(std::move(s), false);
  if (count > 0) settled(count);
  return count;
}

}  // namespace postino::delivery
