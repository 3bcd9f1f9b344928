#include <drover/detail/constraint_gate.hpp>

#include "resource_glob.hpp"

#include <algorithm>
#include <optional>

namespace drover::detail {

// std heap functions keep the greatest on top, so their "less" is "the other is better".
void constraint_gate::wait_queue::push(waiting w) {
  heap.push_back(w);
  std::push_heap(heap.begin(), heap.end(),
                 [](const waiting& a, const waiting& b) { return better(b, a); });
}

constraint_gate::index constraint_gate::wait_queue::pop() {
  std::pop_heap(heap.begin(), heap.end(),
                [](const waiting& a, const waiting& b) { return better(b, a); });
  const index module = heap.back().module;
  heap.pop_back();
  return module;
}

constraint_gate::constraint_gate(const constraint_table& table, key_function key_of)
    : active_(!table.empty()),
      every_start_(table.every_start),
      table_(&table),
      key_of_(std::move(key_of)) {
  if (!active_) return;
  pools_.resize(table.pool_capacity.size());
  for (std::size_t p = 0; p < pools_.size(); ++p)
    pools_[p].capacity = table.pool_capacity[p];
  keys_.resize(table.key_count);
  held_.resize(table.literal_count);
  tickets_.assign(table.needs_of.size(), 0);
}

bool constraint_gate::claims_conflict(const claim_ref& a, const claim_ref& b) const {
  if (!a.write && !b.write) return false;
  if (a.literal && b.literal) return a.resource == b.resource;
  return resource_globs_overlap(table_->text(a), table_->text(b));
}

constraint_gate::index constraint_gate::holder_in_conflict(const claim_ref& c) const {
  const auto holder_of = [&c](const literal_holders& holders) {
    if (holders.writer != nobody) return holders.writer;
    if (c.write && !holders.readers.empty()) return holders.readers.front();
    return nobody;
  };
  if (c.literal) {
    if (const index holder = holder_of(held_[c.resource]); holder != nobody) return holder;
  } else {
    const std::string_view glob = table_->text(c);
    for (std::uint32_t resource : held_literals_) {
      if (!resource_globs_overlap(glob, *table_->literals[resource])) continue;
      if (const index holder = holder_of(held_[resource]); holder != nobody) return holder;
    }
  }
  for (const held_claim& h : held_glob_) {
    if (claims_conflict(c, h.claim)) return h.module;
  }
  return nobody;
}

bool constraint_gate::conflicts(const needs& a, const needs& b) const {
  for (const auto& x : claims(a)) {
    for (const auto& y : claims(b)) {
      if (claims_conflict(x, y)) return true;
    }
  }
  return false;
}

bool constraint_gate::try_start(index i) {
  // The ticket is stored only if i parks (keep_ticket): most starts never wait, and the
  // per-module array is cold memory.
  trying_ = i;
  trying_ticket_ = next_ticket_++;
  scratch_.clear();
  attempt(i, scratch_);
  trying_ = nobody;
  return !scratch_.empty();
}

// Tries to start i. On success i holds what it needs and is appended to `started`; otherwise
// it is parked on the first thing that stops it.
void constraint_gate::attempt(index i, std::vector<index>& started) {
  const needs* m = needs_for(i);
  // Where i stands among waiting modules; computed only when something waits (it calls the
  // key function), so an uncontended start costs no more than its lookups.
  std::optional<waiting> my_entry;
  const auto me = [&]() -> const waiting& {
    if (!my_entry) my_entry = entry(i);
    return *my_entry;
  };
  const auto park = [&](wait_queue& queue) {
    keep_ticket(i);
    queue.push(me());
    ++parked_;
  };

  if (alone_running_ || (!alone_waiting_.empty() && !(m != nullptr && m->alone) &&
                         better(alone_waiting_.top(), me()))) {
    return park(barrier_);
  }
  if (m != nullptr) {
    if (m->alone &&
        (running_ > 0 || (!alone_waiting_.empty() && better(alone_waiting_.top(), me())))) {
      return park(alone_waiting_);
    }
    if (m->pool != constraint_table::none) {
      pool_state& pool = pools_[m->pool];
      if (pool.used + m->slots > pool.capacity ||
          (!pool.waiting.empty() && better(pool.waiting.top(), me()))) {
        return park(pool.waiting);
      }
    }
    for (std::uint32_t k : keys(*m)) {
      key_state& key = keys_[k];
      if (key.holder != nobody || (!key.waiting.empty() && better(key.waiting.top(), me()))) {
        return park(key.waiting);
      }
    }
    if (!claims(*m).empty()) {
      for (const auto& mine : claims(*m)) {
        if (const index holder = holder_in_conflict(mine); holder != nobody) {
          keep_ticket(i);
          waiters_on_[holder].push_back(i);
          reserved_.push_back(i);
          ++parked_;
          return;
        }
      }
      for (index r : reserved_) {
        if (r != i && better(entry(r), me()) && conflicts(*m, *needs_for(r))) {
          keep_ticket(i);
          waiters_on_[r].push_back(i);
          reserved_.push_back(i);
          ++parked_;
          return;
        }
      }
    }
    // Everything is free: take it all at once.
    if (m->pool != constraint_table::none) pools_[m->pool].used += m->slots;
    for (std::uint32_t k : keys(*m))
      keys_[k].holder = i;
    for (const auto& claim : claims(*m)) {
      if (claim.literal) {
        take(claim, i);
      } else {
        held_glob_.push_back({i, claim});
      }
    }
    if (m->alone) alone_running_ = true;
  }
  ++running_;
  started.push_back(i);
}

void constraint_gate::take(const claim_ref& c, index i) {
  literal_holders& holders = held_[c.resource];
  if (table_->has_globs() && holders.listed_at == nobody) {
    // Listed for glob claims to find it.
    holders.listed_at = static_cast<std::uint32_t>(held_literals_.size());
    held_literals_.push_back(c.resource);
  }
  if (c.write) {
    holders.writer = i;
  } else {
    holders.readers.push_back(i);
  }
}

void constraint_gate::give_back(const claim_ref& c, index i) {
  literal_holders& holders = held_[c.resource];
  if (holders.writer == i) holders.writer = nobody;
  if (!holders.readers.empty()) std::erase(holders.readers, i);
  if (holders.listed_at == nobody || holders.held()) return;
  const std::uint32_t last = held_literals_.back();  // unlisted: the last takes its place
  held_literals_[holders.listed_at] = last;
  held_[last].listed_at = holders.listed_at;
  held_literals_.pop_back();
  holders.listed_at = nobody;
}

void constraint_gate::leave_reservations(index i) {
  auto it = std::find(reserved_.begin(), reserved_.end(), i);
  if (it != reserved_.end()) reserved_.erase(it);
}

void constraint_gate::release(index i, std::vector<index>& started) {
  --running_;
  if (const needs* m = needs_for(i)) {
    if (m->pool != constraint_table::none) {
      pools_[m->pool].used -= m->slots;
      mark_dirty(pools_[m->pool], dirty_pools_, m->pool);
    }
    for (std::uint32_t k : keys(*m)) {
      if (keys_[k].holder == i) keys_[k].holder = nobody;
      mark_dirty(keys_[k], dirty_keys_, k);
    }
    for (const auto& claim : claims(*m)) {
      if (claim.literal) give_back(claim, i);
    }
    if (!held_glob_.empty()) {
      std::erase_if(held_glob_, [i](const held_claim& h) { return h.module == i; });
    }
    if (m->alone) {
      alone_running_ = false;
      std::vector<waiting> all = std::move(barrier_.heap);
      barrier_.heap.clear();
      std::sort(all.begin(), all.end(),
                [](const waiting& a, const waiting& b) { return better(a, b); });
      for (const waiting& w : all) {
        retry_.push_back(w.module);
        --parked_;
      }
    }
  }
  if (auto it = waiters_on_.find(i); it != waiters_on_.end()) {
    // Retried best first, and none of them still reserving: otherwise one that arrived
    // earlier but is worse ordered would take the claim ahead of a better one.
    std::vector<index> waiters = std::move(it->second);
    waiters_on_.erase(it);
    for (index w : waiters)
      leave_reservations(w);
    std::sort(waiters.begin(), waiters.end(),
              [this](index a, index b) { return better(entry(a), entry(b)); });
    for (index w : waiters) {
      retry_.push_back(w);
      --parked_;
    }
  }
  alone_dirty_ = true;
  settle(started);
}

// Retries what the release made possible until nothing more can start.
void constraint_gate::settle(std::vector<index>& started) {
  for (;;) {
    while (!retry_.empty()) {
      const index next = retry_.front();
      retry_.pop_front();
      attempt(next, started);
    }
    // Only the pools and keys a release touched are looked at, not all of them.
    bool progress = false;
    settling_.clear();
    settling_.swap(dirty_pools_);  // swapping keeps both buffers: no allocation per release
    for (std::uint32_t id : settling_) {
      pool_state& pool = pools_[id];
      pool.dirty = false;
      if (!pool.waiting.empty() &&
          pool.used + needs_for(pool.waiting.top().module)->slots <= pool.capacity) {
        // One at a time: it takes its slots (or parks elsewhere) before the next is offered.
        retry_.push_back(pool.waiting.pop());
        --parked_;
        mark_dirty(pool, dirty_pools_, id);
        progress = true;
      }
    }
    settling_.clear();
    settling_.swap(dirty_keys_);
    for (std::uint32_t id : settling_) {
      key_state& key = keys_[id];
      key.dirty = false;
      if (key.holder == nobody && !key.waiting.empty()) {
        retry_.push_back(key.waiting.pop());
        --parked_;
        mark_dirty(key, dirty_keys_, id);
        progress = true;
      }
    }
    if (alone_dirty_) {
      alone_dirty_ = false;
      if (running_ == 0 && !alone_running_ && !alone_waiting_.empty()) {
        retry_.push_back(alone_waiting_.pop());
        --parked_;
        alone_dirty_ = true;
        progress = true;
      }
    }
    if (!progress && retry_.empty()) return;
  }
}

std::vector<constraint_gate::index> constraint_gate::take_parked() {
  std::vector<index> out;
  const auto drain = [&out](wait_queue& q) {
    for (const waiting& w : q.heap)
      out.push_back(w.module);
    q.heap.clear();
  };
  for (auto& pool : pools_)
    drain(pool.waiting);
  for (auto& key : keys_)
    drain(key.waiting);
  drain(alone_waiting_);
  drain(barrier_);
  for (auto& [holder, waiters] : waiters_on_)
    out.insert(out.end(), waiters.begin(), waiters.end());
  waiters_on_.clear();
  reserved_.clear();
  out.insert(out.end(), retry_.begin(), retry_.end());
  retry_.clear();
  parked_ = 0;
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace drover::detail
