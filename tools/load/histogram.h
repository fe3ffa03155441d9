// postino-load's latency histogram: log-linear buckets in the manner of
// HdrHistogram, exact below 256 and 128 buckets per power of two above, so a
// reported value is within 1/256 (0.4%) of every value recorded in its bucket.
// Recording is one bit-scan and one increment; histograms of different
// threads and processes merge by adding counts. The histogram owns its count
// array; nothing else is touched.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace postino::load {

class histogram {
 public:
  // 2^sub_bits sub-buckets per octave bound the bucket width to 1/128 of its
  // lowest value; the midpoint is then within 1/256 of anything in the bucket.
  static constexpr int sub_bits = 7;
  static constexpr std::uint64_t sub_count = std::uint64_t{1} << sub_bits;
  static constexpr std::uint64_t linear_limit = sub_count * 2;  // exact below this
  static constexpr std::size_t bucket_count = (63 - sub_bits) * sub_count + 2 * sub_count;

  histogram() : counts_(bucket_count, 0) {}

  static std::size_t index_of(std::uint64_t v) {
    if (v < linear_limit) return static_cast<std::size_t>(v);
    const int msb = 63 - std::countl_zero(v);
    const int shift = msb - sub_bits;
    return static_cast<std::size_t>(shift) * sub_count + static_cast<std::size_t>(v >> shift);
  }
  static std::uint64_t lowest_of(std::size_t i) {
    if (i < linear_limit) return i;
    const std::size_t shift = i / sub_count - 1;
    return static_cast<std::uint64_t>(i - shift * sub_count) << shift;
  }
  static std::uint64_t highest_of(std::size_t i) {
    if (i < linear_limit) return i;
    const std::size_t shift = i / sub_count - 1;
    return lowest_of(i) + ((std::uint64_t{1} << shift) - 1);
  }

  void record(std::uint64_t v, std::uint64_t n = 1) {
    if (n == 0) return;
    counts_[index_of(v)] += n;
    total_ += n;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }

  // Adds a bucket's count as read back from a serialized histogram; min and
  // max travel separately (set_extremes) because a bucket only bounds them.
  void add_bucket(std::size_t index, std::uint64_t n) {
    if (index >= bucket_count || n == 0) return;
    counts_[index] += n;
    total_ += n;
    min_ = std::min(min_, lowest_of(index));
    max_ = std::max(max_, highest_of(index));
  }
  void set_extremes(std::uint64_t lo, std::uint64_t hi) {
    if (total_ == 0) return;
    min_ = lo;
    max_ = hi;
  }

  void merge(const histogram& other) {
    if (other.total_ == 0) return;
    for (std::size_t i = 0; i < bucket_count; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  void reset() {
    if (total_ == 0) return;
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
    min_ = std::numeric_limits<std::uint64_t>::max();
    max_ = 0;
  }

  std::uint64_t count() const { return total_; }
  std::uint64_t min() const { return total_ ? min_ : 0; }
  std::uint64_t max() const { return max_; }

  // The value below which a fraction q of the recorded values fall: the
  // midpoint of the bucket holding the ceil(q*count)-th value, clamped to the
  // exact extremes so p100 is the true maximum.
  std::uint64_t value_at_quantile(double q) const {
    if (total_ == 0) return 0;
    q = std::clamp(q, 0.0, 1.0);
    if (q >= 1.0) return max_;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const std::uint64_t lo = lowest_of(i), hi = highest_of(i);
        return std::clamp(lo + (hi - lo) / 2, min_, max_);
      }
    }
    return max_;
  }

  template <class F>
  void for_each_bucket(F&& f) const {
    for (std::size_t i = 0; i < bucket_count; ++i)
      if (counts_[i] != 0) f(i, counts_[i]);
  }

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
};

}  // namespace postino::load
