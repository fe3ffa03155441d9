// The shard's clocks and its hashed timing wheel (see runtime.h). Each slot is a circular
// doubly linked list with a sentinel, so a node unlinks itself without knowing
// which list it is on: cancelling a node that a firing pass has already moved
// to its private list works the same way. The wheel owns only its sentinels;
// nodes belong to whoever embeds them.
#include <time.h>

#include <bit>

#include "postino/runtime.h"

namespace postino::core {

std::uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000u;
}

std::uint64_t unix_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000u;
}

timer_wheel::timer_wheel(std::uint64_t now_ms, std::uint32_t tick_ms, std::uint32_t slots)
    : tick_ms_(tick_ms == 0 ? 1 : tick_ms),
      mask_(std::bit_ceil(slots < 2 ? 2u : slots) - 1),
      current_(now_ms / tick_ms_),
      slots_(new sentinel[mask_ + 1]) {
  for (std::uint32_t i = 0; i <= mask_; ++i) slots_[i].prev_ = slots_[i].next_ = &slots_[i];
}

timer_wheel::~timer_wheel() {
  // Leave armed nodes unlinked so their owners see armed() == false.
  for (std::uint32_t i = 0; i <= mask_; ++i) {
    timer_node* s = &slots_[i];
    for (timer_node* n = s->next_; n != s;) {
      timer_node* next = n->next_;
      n->prev_ = n->next_ = nullptr;
      n = next;
    }
  }
}

void timer_wheel::link_before(timer_node& anchor, timer_node& node) {
  node.prev_ = anchor.prev_;
  node.next_ = &anchor;
  anchor.prev_->next_ = &node;
  anchor.prev_ = &node;
}

void timer_wheel::unlink(timer_node& node) {
  node.prev_->next_ = node.next_;
  node.next_->prev_ = node.prev_;
  node.prev_ = node.next_ = nullptr;
}

void timer_wheel::schedule(timer_node& node, std::uint64_t now_ms, std::uint64_t delay_ms) {
  if (node.armed()) {
    unlink(node);
    --size_;
  }
  std::uint64_t due = (now_ms + delay_ms + tick_ms_ - 1) / tick_ms_;
  if (due <= current_) due = current_ + 1;
  node.due_ = due;
  link_before(slots_[due & mask_], node);
  ++size_;
}

void timer_wheel::cancel(timer_node& node) {
  if (!node.armed()) return;
  unlink(node);
  --size_;
}

void timer_wheel::fire_slot(std::uint64_t tick) {
  sentinel& slot = slots_[tick & mask_];
  if (slot.next_ == &slot) return;
  // Move the slot aside so callbacks that re-arm into this slot (a later
  // revolution) are not seen again in this pass.
  sentinel pending;
  pending.prev_ = slot.prev_;
  pending.next_ = slot.next_;
  pending.prev_->next_ = &pending;
  pending.next_->prev_ = &pending;
  slot.prev_ = slot.next_ = &slot;
  while (pending.next_ != &pending) {
    timer_node* n = pending.next_;
    unlink(*n);
    if (n->due_ > tick) {
      link_before(slot, *n);  // a later revolution
      continue;
    }
    --size_;
    n->on_timer();
  }
}

void timer_wheel::advance(std::uint64_t now_ms) {
  std::uint64_t target = now_ms / tick_ms_;
  // Tick by tick keeps deadline order even after a stall; an empty slot
  // costs one comparison, and an empty wheel skips ahead at once.
  while (current_ < target) {
    if (size_ == 0) {
      current_ = target;
      break;
    }
    ++current_;
    fire_slot(current_);
  }
}

std::uint64_t timer_wheel::next_deadline_ms() const {
  if (size_ == 0) return 0;
  for (std::uint64_t t = current_ + 1; t <= current_ + mask_ + 1; ++t) {
    const sentinel& slot = slots_[t & mask_];
    if (slot.next_ != &slot) return t * tick_ms_;
  }
  return (current_ + 1) * tick_ms_;  // unreachable while size_ > 0
}

}  // namespace postino::core
