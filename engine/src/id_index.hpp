#pragma once
// Maps module ids to dense indices while a graph is built. An open-addressing table of
// (hash, index) pairs: no node per id, one cache line per probe, ids compared only on a full
// hash match. std::unordered_map cost a heap node and a cache miss per module here.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace drover::detail {

class id_index {
 public:
  static constexpr std::uint32_t npos = static_cast<std::uint32_t>(-1);

  /// Room for `count` ids. Lookups take `id_of(i)`, the id of module i, to compare ids.
  explicit id_index(std::size_t count) {
    std::size_t capacity = 16;
    while (capacity < count * 2)
      capacity *= 2;
    slots_.assign(capacity, slot{0, npos});
    mask_ = capacity - 1;
  }

  static std::uint64_t hash(std::string_view id) noexcept {
    return std::hash<std::string_view>{}(id);
  }

  /// Starts loading the slot a later insert or find of hash `h` will probe first. Building a
  /// large graph is bound by these cache misses; issuing them ahead overlaps them.
  void prefetch(std::uint64_t h) const noexcept { __builtin_prefetch(&slots_[h & mask_]); }

  /// Inserts module `i` with id `id` (whose hash is `h`); returns the index already holding
  /// that id, or npos.
  template <class IdOf>
  std::uint32_t insert(std::uint64_t h, std::string_view id, std::uint32_t i, IdOf id_of) {
    for (std::size_t pos = h & mask_;; pos = (pos + 1) & mask_) {
      slot& s = slots_[pos];
      if (s.index == npos) {
        s = slot{h, i};
        return npos;
      }
      if (s.hash == h && id_of(s.index) == id) return s.index;
    }
  }

  /// The index of the module with id `id` (whose hash is `h`), or npos.
  template <class IdOf>
  std::uint32_t find(std::uint64_t h, std::string_view id, IdOf id_of) const {
    for (std::size_t pos = h & mask_;; pos = (pos + 1) & mask_) {
      const slot& s = slots_[pos];
      if (s.index == npos) return npos;
      if (s.hash == h && id_of(s.index) == id) return s.index;
    }
  }

 private:
  struct slot {
    std::uint64_t hash;
    std::uint32_t index;
  };
  std::vector<slot> slots_;
  std::size_t mask_ = 0;
};

/// Hashes of a sequence of ids, computed a few ids ahead of their use so that their slots in
/// an id_index can be prefetched, without an array of hashes for the whole sequence.
/// `next_id()` returns a pointer to the next id of the sequence, or nullptr after the last.
template <class NextId>
class hash_lookahead {
 public:
  hash_lookahead(const id_index& index, NextId next_id)
      : index_(index), next_id_(std::move(next_id)) {
    for (std::uint64_t& h : ring_)
      load(h);
  }

  /// The hash of the next id of the sequence.
  std::uint64_t next() {
    const std::uint64_t h = ring_[pos_];
    load(ring_[pos_]);
    pos_ = (pos_ + 1) % distance;
    return h;
  }

 private:
  static constexpr std::size_t distance = 16;

  void load(std::uint64_t& h) {
    if (const std::string* id = next_id_()) {
      h = id_index::hash(*id);
      index_.prefetch(h);
    }
  }

  const id_index& index_;
  NextId next_id_;
  std::uint64_t ring_[distance] = {};
  std::size_t pos_ = 0;
};

}  // namespace drover::detail
