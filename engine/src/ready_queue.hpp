#pragma once
// Ready modules waiting for a worker, highest priority first and FIFO among equals.
// Owned by the run's strand.

#include <cstdint>
#include <deque>
#include <vector>

namespace drover::detail {

class ready_queue {
 public:
  using index = std::uint32_t;

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  void push(int priority, index module) {
    // Pipelines use a handful of distinct priorities, so a short sorted list of FIFO buckets
    // beats a heap: O(1) for the common single-priority case and stable among equals.
    auto it = buckets_.begin();
    while (it != buckets_.end() && it->priority > priority)
      ++it;
    if (it == buckets_.end() || it->priority != priority) {
      it = buckets_.insert(it, bucket{priority, {}});
    }
    it->items.push_back(module);
    ++size_;
  }

  /// Precondition: !empty().
  index pop() {
    for (auto& b : buckets_) {
      if (!b.items.empty()) {
        const index module = b.items.front();
        b.items.pop_front();
        --size_;
        return module;
      }
    }
    return static_cast<index>(-1);
  }

  /// Removes and returns everything, in pop order.
  std::vector<index> take_all() {
    std::vector<index> out;
    out.reserve(size_);
    while (!empty())
      out.push_back(pop());
    return out;
  }

 private:
  struct bucket {
    int priority;
    std::deque<index> items;
  };
  std::vector<bucket> buckets_;  // sorted by priority, highest first
  std::size_t size_ = 0;
};

}  // namespace drover::detail
