// postino-load's latency histogram: every value is reported within 1% across
// the whole 64-bit range, buckets tile the range without gaps, quantiles of a
// known distribution come out right, and merging (threads, processes, and the
// JSON trip a worker process makes) loses nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

#include "../../tools/load/histogram.h"
#include "../../tools/load/results.h"

namespace postino::load {
namespace {

double rel_error(std::uint64_t reported, std::uint64_t actual) {
  return std::fabs(static_cast<double>(reported) - static_cast<double>(actual)) / static_cast<double>(actual);
}

TEST(load_histogram, buckets_tile_the_range) {
  for (std::size_t i = 1; i < histogram::bucket_count; ++i) {
    ASSERT_EQ(histogram::lowest_of(i), histogram::highest_of(i - 1) + 1) << "bucket " << i;
    ASSERT_EQ(histogram::index_of(histogram::lowest_of(i)), i);
    ASSERT_EQ(histogram::index_of(histogram::highest_of(i)), i);
  }
  EXPECT_EQ(histogram::index_of(UINT64_MAX), histogram::bucket_count - 1);
  EXPECT_EQ(histogram::highest_of(histogram::bucket_count - 1), UINT64_MAX);
}

TEST(load_histogram, each_bucket_is_narrower_than_one_percent) {
  for (std::size_t i = histogram::linear_limit; i < histogram::bucket_count; ++i) {
    const double lo = static_cast<double>(histogram::lowest_of(i));
    const double width = static_cast<double>(histogram::highest_of(i)) - lo + 1;
    ASSERT_LE(width / lo, 1.0 / 128 + 1e-12) << "bucket " << i;
  }
}

TEST(load_histogram, any_single_value_comes_back_within_one_percent) {
  std::mt19937_64 gen(42);
  for (int shift = 0; shift < 64; ++shift) {
    for (int k = 0; k < 50; ++k) {
      std::uint64_t v = (std::uint64_t{1} << shift) | (gen() & ((std::uint64_t{1} << shift) - 1));
      if (v == 0) v = 1;
      // Two values in one histogram so the clamp to min and max does not hide
      // the bucket's own error.
      histogram h;
      h.record(1);
      h.record(v);
      h.record(UINT64_MAX);
      const std::uint64_t mid = h.value_at_quantile(0.5);
      ASSERT_LE(rel_error(mid, v), 0.01) << "value " << v;
    }
  }
}

TEST(load_histogram, small_values_are_exact) {
  histogram h;
  for (std::uint64_t v = 0; v < histogram::linear_limit; ++v) h.record(v);
  for (std::uint64_t v = 1; v < histogram::linear_limit; ++v) {
    const double q = static_cast<double>(v + 1) / static_cast<double>(histogram::linear_limit);
    EXPECT_EQ(h.value_at_quantile(q), v);
  }
}

TEST(load_histogram, quantiles_of_a_uniform_distribution) {
  histogram h;
  for (std::uint64_t v = 1; v <= 1'000'000; ++v) h.record(v * 1000);  // 1 us .. 1 s in ns
  EXPECT_EQ(h.count(), 1'000'000u);
  EXPECT_EQ(h.min(), 1000u);
  EXPECT_EQ(h.max(), 1'000'000'000u);
  EXPECT_EQ(h.value_at_quantile(1.0), 1'000'000'000u);
  for (double q : {0.01, 0.5, 0.9, 0.99, 0.999}) {
    const auto expected = static_cast<std::uint64_t>(q * 1e6) * 1000;
    EXPECT_LE(rel_error(h.value_at_quantile(q), expected), 0.01) << "q " << q;
  }
}

TEST(load_histogram, empty_reports_zero) {
  histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.value_at_quantile(0.99), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(load_histogram, merge_equals_recording_everything_in_one) {
  std::mt19937_64 gen(7);
  std::lognormal_distribution<double> dist(13.0, 1.5);  // around 0.4 ms in ns
  histogram a, b, all;
  for (int i = 0; i < 100'000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(gen));
    (i % 3 == 0 ? a : b).record(v);
    all.record(v);
  }
  histogram merged;
  merged.merge(a);
  merged.merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  for (double q : {0.5, 0.9, 0.99, 0.999, 1.0}) EXPECT_EQ(merged.value_at_quantile(q), all.value_at_quantile(q));
}

TEST(load_histogram, survives_the_trip_through_a_worker_pipe) {
  run_results r;
  std::mt19937_64 gen(3);
  for (int i = 0; i < 10'000; ++i) r.latency.record(gen() % 50'000'000);
  r.probe.record(123456);
  const auto back = run_results::from_json(r.to_json());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->latency.count(), r.latency.count());
  EXPECT_EQ(back->latency.min(), r.latency.min());
  EXPECT_EQ(back->latency.max(), r.latency.max());
  for (double q : {0.5, 0.99, 0.999}) EXPECT_EQ(back->latency.value_at_quantile(q), r.latency.value_at_quantile(q));
  EXPECT_EQ(back->probe.value_at_quantile(0.5), 123456u);
}

TEST(load_histogram, reset_forgets_everything) {
  histogram h;
  h.record(5000);
  h.reset();
  EXPECT_EQ(h.count(), 0u);
  h.record(7);
  EXPECT_EQ(h.min(), 7u);
  EXPECT_EQ(h.max(), 7u);
}

}  // namespace
}  // namespace postino::load
