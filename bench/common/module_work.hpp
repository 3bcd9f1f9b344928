#pragma once
// What every contender's module body does, so that all of them do the same work: stamp the
// module with its position in the execution order, and for independent_busy spin ~1 us.
// The stamps let the harness prove afterwards that each module ran exactly once and after all
// of its dependencies.

#include "common/shape.hpp"
#include "common/timing.hpp"

#include <atomic>
#include <string>
#include <vector>

namespace drover::bench {

class module_work {
 public:
  /// `concurrent`: bodies may run on several threads at once (then the order counter is an
  /// atomic; on one thread a plain counter keeps the body as cheap as possible).
  module_work(const shape& s, bool concurrent);

  void operator()(node i) noexcept {
    stamps_[i] = concurrent_ ? shared_next_.fetch_add(1, std::memory_order_relaxed) : local_next_++;
    if (busy_) spin_for(busy_body_time);
  }

  /// Clears the stamps for another round.
  void reset();

  /// Number of bodies that ran since the last reset.
  std::size_t executed() const noexcept {
    return concurrent_ ? shared_next_.load(std::memory_order_relaxed) : local_next_;
  }

  /// Empty when every module of `s` ran exactly once, after all of its dependencies; otherwise
  /// a sentence saying what went wrong and where.
  std::string check(const shape& s) const;

  static constexpr std::chrono::nanoseconds busy_body_time{1000};

 private:
  static constexpr node not_run = static_cast<node>(-1);

  std::vector<node> stamps_;
  std::atomic<node> shared_next_{0};
  node local_next_ = 0;
  bool concurrent_;
  bool busy_;
};

}  // namespace drover::bench
