#pragma once
// The dispatcher's constraint check: decides whether a ready module may start now given what
// the modules already started hold (pool slots, not_in_parallel keys, resource claims, a
// module running alone), and parks it until it may. Owned by the run's strand.
//
// Rules (docs/scheduling.md):
// - A module takes everything it needs at once or nothing, and holds it from dispatch until
//   its attempt ends. Nothing is held while waiting, so waits can never form a cycle: no
//   deadlock.
// - Waiting modules are ordered by (ready key, ticket): priority and critical path first,
//   then who asked first. A module never overtakes a better-ordered one waiting for the same
//   pool, key or alone slot, nor one whose claims conflict with its own and that waits on a
//   claim (a reservation): a writer is not starved by a stream of readers.
// - A module parks on exactly one thing (a pool, a key, a module holding a conflicting claim
//   or reserving one, the alone slot, the barrier of a module running alone) and is tried
//   again when that thing is released, so a release costs only the waiters it concerns.

#include <drover/detail/constraint_table.hpp>
#include <drover/detail/ready_queue.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace drover::detail {

class constraint_gate {
 public:
  using index = std::uint32_t;
  using key_type = ready_queue::key_type;
  using key_function = std::function<key_type(index)>;

  constraint_gate() = default;
  /// `table` (the plan's, compiled by prepare()) must outlive the gate; `key_of` gives a
  /// module's ready key (higher starts first).
  constraint_gate(const constraint_table& table, key_function key_of);

  /// False when no module has a pool, key, claim or run_alone: then nothing needs the gate.
  bool active() const noexcept { return active_; }
  /// Whether module i must pass try_start: it has exclusive constraints, or some module runs
  /// alone (which every start must respect).
  bool governs(index i) const noexcept {
    return every_start_ || (active_ && table_->needs_of[i] != constraint_table::none);
  }

  /// Takes what i needs and returns true, or parks i and returns false.
  bool try_start(index i);
  /// i's attempt ended (or never ran): releases what it holds and appends the parked modules
  /// that could start because of it (they hold what they need now) to `started`.
  void release(index i, std::vector<index>& started);
  /// Removes and returns every parked module (the run is being cancelled).
  std::vector<index> take_parked();
  std::size_t parked() const noexcept { return parked_; }

 private:
  static constexpr std::uint32_t nobody = static_cast<std::uint32_t>(-1);
  using needs = constraint_table::needs;
  using claim_ref = constraint_table::claim;

  struct waiting {
    key_type key;
    std::uint64_t ticket;
    index module;
  };
  // A max-heap of waiting modules: best (highest key, then lowest ticket) on top.
  struct wait_queue {
    std::vector<waiting> heap;
    bool empty() const noexcept { return heap.empty(); }
    const waiting& top() const noexcept { return heap.front(); }
    void push(waiting w);
    index pop();
  };
  struct pool_state {
    std::uint32_t capacity = 0, used = 0;
    wait_queue waiting;
    bool dirty = false;
  };
  struct key_state {
    index holder = nobody;
    wait_queue waiting;
    bool dirty = false;
  };
  struct held_claim {
    index module;
    claim_ref claim;
  };

  const needs* needs_for(index i) const noexcept { return table_->needs_for(i); }
  std::span<const std::uint32_t> keys(const needs& m) const noexcept { return table_->keys(m); }
  std::span<const claim_ref> claims(const needs& m) const noexcept { return table_->claims(m); }
  std::uint64_t ticket(index i) const noexcept {
    return i == trying_ ? trying_ticket_ : tickets_[i];
  }
  waiting entry(index i) const { return {key_of_(i), ticket(i), i}; }
  void keep_ticket(index i) noexcept {
    if (i == trying_) tickets_[i] = trying_ticket_;
  }
  static bool better(const waiting& a, const waiting& b) noexcept {
    return a.key != b.key ? a.key > b.key : a.ticket < b.ticket;
  }
  bool conflicts(const needs& a, const needs& b) const;
  bool claims_conflict(const claim_ref& a, const claim_ref& b) const;
  void attempt(index i, std::vector<index>& started);
  void settle(std::vector<index>& started);
  void leave_reservations(index i);

  bool active_ = false;
  bool every_start_ = false;  // some module runs alone
  const constraint_table* table_ = nullptr;
  key_function key_of_;
  std::vector<std::uint64_t> tickets_;  // per parked module: order of its first try_start
  index trying_ = nobody;               // the module in try_start, and its ticket
  std::uint64_t trying_ticket_ = 0;
  std::uint64_t next_ticket_ = 1;
  std::vector<pool_state> pools_;
  std::vector<key_state> keys_;
  // Claims held by started modules: literal ones by resource number (a start looks up its own
  // literal claims instead of scanning), glob ones in a list every start scans.
  struct literal_holders {
    index writer = nobody;
    std::uint32_t listed_at = nobody;  // where in held_literals_ (kept only with globs)
    std::vector<index> readers;
    bool held() const noexcept { return writer != nobody || !readers.empty(); }
  };
  std::vector<literal_holders> held_;  // per literal resource number
  // The literal resources held now, for a glob claim to compare itself with; kept only when
  // the plan has glob claims.
  std::vector<std::uint32_t> held_literals_;
  void take(const claim_ref& c, index i);
  void give_back(const claim_ref& c, index i);
  std::vector<held_claim> held_glob_;
  /// A module holding a claim that conflicts with `c`, or nobody.
  index holder_in_conflict(const claim_ref& c) const;
  std::vector<index> reserved_;  // parked on a claim conflict; their claims block later modules
  std::unordered_map<index, std::vector<index>> waiters_on_;  // parked behind a module
  wait_queue alone_waiting_;  // run_alone modules waiting for nothing else to run
  wait_queue barrier_;        // modules waiting for a module that runs alone
  bool alone_running_ = false;
  bool alone_dirty_ = false;
  std::size_t running_ = 0;  // started through the gate and not released
  std::size_t parked_ = 0;
  std::deque<index> retry_;
  std::vector<index> scratch_;
  std::vector<std::uint32_t> dirty_pools_, dirty_keys_;  // released since the last settle
  std::vector<std::uint32_t> settling_;
  template <class State>
  static void mark_dirty(State& state, std::vector<std::uint32_t>& list, std::uint32_t id) {
    if (state.dirty) return;
    state.dirty = true;
    list.push_back(id);
  }  // try_start's result, kept to avoid an allocation per start
};

}  // namespace drover::detail
