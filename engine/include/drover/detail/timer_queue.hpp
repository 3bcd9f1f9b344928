#pragma once
// The scheduler core's deadlines: one min-heap for every kind (retry backoff, capability
// waits, cancel confirmations, overdue remote attempts, the run deadline), so a driver needs a
// single timer armed at the earliest. Entries are never removed early: when one comes due, the
// core checks whether it still applies. Ties come out in the order they were added, so a
// simulation that passes the same times gets the same order.

#include <drover/detail/core_types.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace drover::detail {

class timer_queue {
 public:
  enum class kind : std::uint8_t {
    backoff,       ///< module, attempt: the retry may go ahead
    capability,    ///< group: give up waiting for a capable worker
    cancel_grace,  ///< remote cancellations not confirmed in time are given up
    overdue,       ///< module, attempt, worker: a remote attempt past timeout + grace
    deadline,      ///< the run's deadline
  };
  struct entry {
    time_point at;
    std::uint64_t seq;
    kind what;
    std::uint32_t module;
    std::uint32_t attempt;
    std::uint32_t worker;
  };

  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  /// The earliest entry. Precondition: !empty().
  const entry& top() const noexcept { return heap_.front(); }

  void push(time_point at, kind what, std::uint32_t module = 0, std::uint32_t attempt = 0,
            std::uint32_t worker = 0) {
    heap_.push_back({at, next_seq_++, what, module, attempt, worker});
    std::push_heap(heap_.begin(), heap_.end(), later);
  }

  entry pop() {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    entry e = heap_.back();
    heap_.pop_back();
    return e;
  }

  /// Every entry, in no particular order (the core scans them when a stop covers backoffs).
  const std::vector<entry>& entries() const noexcept { return heap_; }

 private:
  static bool later(const entry& a, const entry& b) noexcept {
    return a.at != b.at ? a.at > b.at : a.seq > b.seq;
  }
  std::vector<entry> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace drover::detail
