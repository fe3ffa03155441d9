// The distinct-recipient check of a transaction (src/smtp/session.cc): E.164
// numbers as integer keys in an open-addressing set. Owns its slot array;
// reads the caller's number only during a call.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace postino::smtp {

// An E.164 number has at most 15 digits, so "+<digits>" maps exactly onto a
// 64-bit value (the digit count is folded in so leading zeros cannot collide,
// and no key is 0).
inline std::optional<std::uint64_t> recipient_key(std::string_view e164) {
  if (e164.size() < 2 || e164.size() > 18 || e164.front() != '+') return std::nullopt;
  std::uint64_t v = 0;
  for (char c : e164.substr(1)) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v * 32 + (e164.size() - 1);
}

// The keys of a transaction's recipients: open addressing with linear
// probing, at most half full, 0 marking a free slot. Each RCPT is O(1); the
// sorted vector this replaces moved half its keys on every insert, which is
// quadratic in the recipient count (2 KB copied per RCPT at 1,000, and
// max_recipients has no upper bound).
class key_set {
 public:
  bool contains(std::uint64_t key) const {
    if (slots_.empty()) return false;
    for (std::size_t i = slot_of(key);; i = (i + 1) & mask()) {
      if (slots_[i] == key) return true;
      if (slots_[i] == 0) return false;
    }
  }
  void insert(std::uint64_t key) {  // not already present
    if ((size_ + 1) * 2 > slots_.size()) grow();
    place(key);
    ++size_;
  }
  void clear() {
    std::fill(slots_.begin(), slots_.end(), 0);
    size_ = 0;
  }
  void release() {
    std::vector<std::uint64_t>().swap(slots_);
    bits_ = 0;
    size_ = 0;
  }
  std::size_t capacity() const { return slots_.size() / 2; }

 private:
  std::size_t mask() const { return slots_.size() - 1; }
  std::size_t slot_of(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> (64 - bits_));  // Fibonacci hashing
  }
  void place(std::uint64_t key) {
    std::size_t i = slot_of(key);
    while (slots_[i] != 0) i = (i + 1) & mask();
    slots_[i] = key;
  }
  void grow() {
    std::vector<std::uint64_t> old = std::move(slots_);
    bits_ = old.empty() ? 4 : bits_ + 1;
    slots_.assign(std::size_t{1} << bits_, 0);
    for (std::uint64_t k : old)
      if (k != 0) place(k);
  }

  std::vector<std::uint64_t> slots_;
  unsigned bits_ = 0;
  std::size_t size_ = 0;
};

}  // namespace postino::smtp
