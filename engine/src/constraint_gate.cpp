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

constraint_gate::constraint_gate(const pipeline& p, key_function key_of)
    : key_of_(std::move(key_of)) {
  std::unordered_map<std::string, std::uint32_t> pool_ids, key_ids;
  for (const auto& [name, slots] : p.pools) {
    pool_ids.emplace(name, static_cast<std::uint32_t>(pools_.size()));
    pools_.emplace_back().capacity = slots;
  }
  const std::size_t n = p.size();
  for (std::size_t i = 0; i < n; ++i) {
    const module_constraints* c = p.module(i).constraints();
    if (c == nullptr) continue;
    const bool exclusive =
        !c->pool.empty() || !c->not_in_parallel.empty() || !c->claims.empty() || c->run_alone;
    if (!exclusive) continue;
    if (needs_of_.empty()) needs_of_.assign(n, no_needs);
    needs_of_[i] = static_cast<std::uint32_t>(needs_.size());
    needs& m = needs_.emplace_back();
    if (!c->pool.empty()) {
      // Validation rejected unknown pools; a pool missing here would be a bug, so treat it as
      // unlimited rather than blocking forever.
      if (auto it = pool_ids.find(c->pool); it != pool_ids.end()) {
        m.pool = it->second;
        m.slots = c->pool_slots;
      }
    }
    m.keys_begin = static_cast<std::uint32_t>(keys_used_.size());
    for (const auto& key : c->not_in_parallel) {
      auto [it, added] = key_ids.emplace(key, static_cast<std::uint32_t>(keys_.size()));
      if (added) keys_.emplace_back();
      const auto mine = keys_used_.begin() + m.keys_begin;
      if (std::find(mine, keys_used_.end(), it->second) == keys_used_.end())
        keys_used_.push_back(it->second);
    }
    m.keys_end = static_cast<std::uint32_t>(keys_used_.size());
    m.claims_begin = static_cast<std::uint32_t>(claims_used_.size());
    for (const auto& claim : c->claims) {
      claims_used_.push_back({&claim.resource, claim.mode == claim_mode::write,
                              resource_glob_is_literal(claim.resource)});
    }
    m.claims_end = static_cast<std::uint32_t>(claims_used_.size());
    m.alone = c->run_alone;
    every_start_ = every_start_ || m.alone;
  }
  active_ = !needs_.empty();
  if (active_) tickets_.assign(n, 0);
}

bool constraint_gate::claims_conflict(const claim_ref& a, const claim_ref& b) const {
  if (!a.write && !b.write) return false;
  if (a.literal && b.literal) return *a.resource == *b.resource;
  return resource_globs_overlap(*a.resource, *b.resource);
}

constraint_gate::index constraint_gate::holder_in_conflict(const claim_ref& c) const {
  if (c.literal) {
    if (auto it = held_literal_.find(*c.resource); it != held_literal_.end()) {
      if (it->second.writer != nobody) return it->second.writer;
      if (c.write && !it->second.readers.empty()) return it->second.readers.front();
    }
  } else {
    for (const auto& [resource, holders] : held_literal_) {
      if (!resource_globs_overlap(*c.resource, resource)) continue;
      if (holders.writer != nobody) return holders.writer;
      if (c.write && !holders.readers.empty()) return holders.readers.front();
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
  tickets_[i] = next_ticket_++;
  scratch_.clear();
  attempt(i, scratch_);
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
    if (m->pool != no_needs) {
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
          waiters_on_[holder].push_back(i);
          reserved_.push_back(i);
          ++parked_;
          return;
        }
      }
      for (index r : reserved_) {
        if (r != i && better(entry(r), me()) && conflicts(*m, *needs_for(r))) {
          waiters_on_[r].push_back(i);
          reserved_.push_back(i);
          ++parked_;
          return;
        }
      }
    }
    // Everything is free: take it all at once.
    if (m->pool != no_needs) pools_[m->pool].used += m->slots;
    for (std::uint32_t k : keys(*m))
      keys_[k].holder = i;
    for (const auto& claim : claims(*m)) {
      if (!claim.literal) {
        held_glob_.push_back({i, claim});
      } else if (claim.write) {
        held_literal_[*claim.resource].writer = i;
      } else {
        held_literal_[*claim.resource].readers.push_back(i);
      }
    }
    if (m->alone) alone_running_ = true;
  }
  ++running_;
  started.push_back(i);
}

void constraint_gate::leave_reservations(index i) {
  auto it = std::find(reserved_.begin(), reserved_.end(), i);
  if (it != reserved_.end()) reserved_.erase(it);
}

void constraint_gate::release(index i, std::vector<index>& started) {
  --running_;
  if (const needs* m = needs_for(i)) {
    if (m->pool != no_needs) {
      pools_[m->pool].used -= m->slots;
      mark_dirty(pools_[m->pool], dirty_pools_, m->pool);
    }
    for (std::uint32_t k : keys(*m)) {
      if (keys_[k].holder == i) keys_[k].holder = nobody;
      mark_dirty(keys_[k], dirty_keys_, k);
    }
    for (const auto& claim : claims(*m)) {
      if (!claim.literal) continue;
      auto it = held_literal_.find(*claim.resource);
      if (it == held_literal_.end()) continue;
      if (it->second.writer == i) it->second.writer = nobody;
      std::erase(it->second.readers, i);
      if (it->second.writer == nobody && it->second.readers.empty()) held_literal_.erase(it);
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
