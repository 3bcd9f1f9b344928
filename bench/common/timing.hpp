#pragma once
// Clocks and small statistics shared by the harness and the contenders.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace drover::bench {

using bench_clock = std::chrono::steady_clock;

inline std::int64_t nanoseconds_between(bench_clock::time_point from, bench_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count();
}

/// Busy-waits (never sleeps) for about `d`: a body that occupies its thread like real work.
inline void spin_for(std::chrono::nanoseconds d) noexcept {
  const auto until = bench_clock::now() + d;
  while (bench_clock::now() < until) {
  }
}

/// Median of `samples` (mean of the middle two for an even count); 0 when empty.
inline std::int64_t median_of(std::vector<std::int64_t> samples) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const std::size_t mid = samples.size() / 2;
  return samples.size() % 2 == 1 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
}

}  // namespace drover::bench
