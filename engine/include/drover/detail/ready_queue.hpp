#pragma once
// Ready modules waiting for a worker: highest key first and FIFO among equal keys. Owned by
// the run's strand.
//
// A key is a module's priority and then, under ready_order::critical_path, the length of its
// critical path. Pipelines have few distinct keys among the modules ready at one time, so the
// queue keeps a short sorted vector of buckets, each a FIFO threaded through `next_`, one slot
// per module: no allocation per push, O(1) for the common case of a single key.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace drover::detail {

class ready_queue {
 public:
  using index = std::uint32_t;
  using key_type = std::uint64_t;

  /// Orders by priority, then by `rank` (higher first in both).
  static key_type make_key(int priority, std::uint32_t rank) noexcept {
    const auto biased = static_cast<std::uint32_t>(static_cast<std::int64_t>(priority) -
                                                   std::numeric_limits<std::int32_t>::min());
    return (static_cast<key_type>(biased) << 32) | rank;
  }

  /// For modules 0 .. modules - 1.
  explicit ready_queue(std::size_t modules = 0) : next_(modules, none) {}
  void resize(std::size_t modules) { next_.assign(modules, none); }

  bool empty() const noexcept { return size_ == 0; }
  /// How many different keys the queued modules have.
  std::size_t distinct_keys() const noexcept {
    return static_cast<std::size_t>(std::count_if(buckets_.begin(), buckets_.end(),
                                                  [](const bucket& b) { return b.head != none; }));
  }
  std::size_t size() const noexcept { return size_; }

  /// Precondition: `module` is not queued already.
  void push(key_type key, index module) {
    // Buckets are sorted by ascending key, so the best is at the back and popping it is cheap.
    // Most pipelines have one key: its bucket stays, empty or not, and is found first.
    auto it = buckets_.end() - (buckets_.empty() ? 0 : 1);
    if (size_ == 0 && !buckets_.empty()) {
      // Every bucket left is empty (pop() keeps the last one): one of them takes the new key,
      // so a queue that empties between pushes (a chain, whose every module has its own
      // critical-path key) never inserts or erases a bucket.
      buckets_.erase(buckets_.begin() + 1, buckets_.end());
      it = buckets_.begin();
      *it = bucket{key, none, none};
    } else if (buckets_.empty() || it->key != key) {
      it = std::lower_bound(buckets_.begin(), buckets_.end(), key,
                            [](const bucket& b, key_type k) { return b.key < k; });
      if (it == buckets_.end() || it->key != key) it = buckets_.insert(it, bucket{key, none, none});
    }
    next_[module] = none;
    if (it->tail == none) {
      it->head = module;
    } else {
      next_[it->tail] = module;
    }
    it->tail = module;
    ++size_;
  }

  /// Precondition: !empty().
  index pop() {
    while (buckets_.back().head == none)
      buckets_.pop_back();  // emptied earlier and kept while it was the only one
    bucket& best = buckets_.back();
    const index module = best.head;
    best.head = next_[module];
    if (best.head == none) {
      best.tail = none;
      if (buckets_.size() > 1) buckets_.pop_back();
    }
    --size_;
    return module;
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
  static constexpr index none = std::numeric_limits<index>::max();
  struct bucket {
    key_type key;
    index head, tail;
  };
  std::vector<bucket> buckets_;  // ascending key
  std::vector<index> next_;      // per module: the next one in its bucket
  std::size_t size_ = 0;
};

}  // namespace drover::detail
