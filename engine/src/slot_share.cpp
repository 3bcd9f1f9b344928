#include <drover/slot_share.hpp>

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace drover {

slot_share::slot_share(std::size_t slots) : slots_(slots), free_(slots) {
  if (slots == 0) throw std::invalid_argument("a slot_share needs at least one slot");
}

std::size_t slot_share::busy() const {
  std::lock_guard lock(mutex_);
  return slots_ - free_;
}

slot_share::member_id slot_share::join() {
  std::lock_guard lock(mutex_);
  member_id m = 0;
  if (!unused_.empty()) {
    m = unused_.back();
    unused_.pop_back();
  } else {
    m = static_cast<member_id>(members_.size());
    members_.emplace_back();
  }
  member_state& state = members_[m];
  state.held = 0;
  state.demand = 0;
  state.active = true;
  return m;
}

void slot_share::leave(member_id m) {
  std::vector<std::shared_ptr<waiter>> woken;
  {
    std::lock_guard lock(mutex_);
    member_state& state = members_.at(m);
    if (!state.active) return;
    // What it still holds or waits for goes back, so that a run that ended abruptly cannot
    // keep slots from the others.
    std::erase_if(queue_, [&](const std::shared_ptr<waiter>& w) {
      if (w->member != m) return false;
      w->queued = false;
      return true;
    });
    free_ += state.held;
    state.held = 0;
    state.active = false;
    unused_.push_back(m);
    while (free_ > 0) {
      auto next = grant_locked();
      if (!next) break;
      --free_;
      woken.push_back(std::move(next));
    }
  }
  for (auto& w : woken)
    w->wake();
}

void slot_share::set_demand(member_id m, std::size_t modules) {
  std::lock_guard lock(mutex_);
  members_.at(m).demand = modules;
}

bool slot_share::try_acquire(member_id m) {
  std::lock_guard lock(mutex_);
  // A slot is free only while nobody waits (release hands it straight to a waiter), so taking
  // it jumps no queue.
  if (free_ == 0) return false;
  --free_;
  ++members_.at(m).held;
  return true;
}

std::shared_ptr<slot_share::waiter> slot_share::wait(member_id m, std::function<void()> wake) {
  auto w = std::make_shared<waiter>();
  w->member = m;
  w->wake = std::move(wake);
  {
    std::lock_guard lock(mutex_);
    if (free_ == 0) {
      w->queued = true;
      queue_.push_back(w);
      return w;
    }
    --free_;
    ++members_.at(m).held;
    w->granted = true;
  }
  w->wake();
  return w;
}

bool slot_share::granted(const std::shared_ptr<waiter>& w) const {
  std::lock_guard lock(mutex_);
  return w->granted;
}

bool slot_share::withdraw(const std::shared_ptr<waiter>& w) {
  std::lock_guard lock(mutex_);
  if (w->granted) return false;
  if (w->queued) {
    std::erase(queue_, w);
    w->queued = false;
  }
  return true;
}

void slot_share::release(member_id m) {
  std::shared_ptr<waiter> next;
  {
    std::lock_guard lock(mutex_);
    member_state& state = members_.at(m);
    if (state.held == 0) return;  // it left, and gave everything back then
    --state.held;
    next = grant_locked();
    if (!next) {
      ++free_;
      return;
    }
  }
  next->wake();
}

// Gives a slot to the waiter next_waiter_locked() picks, if any; the caller took the slot from
// wherever it came and wakes the waiter after unlocking.
std::shared_ptr<slot_share::waiter> slot_share::grant_locked() {
  auto next = next_waiter_locked();
  if (!next) return nullptr;
  ++members_[next->member].held;
  next->granted = true;
  next->queued = false;
  return next;
}

// The first waiter of the member with the fewest held slots per unit of demand; among equals,
// the one that has waited longest. A waiting member has a demand of at least its waiters, so a
// member whose demand lags behind still counts.
std::shared_ptr<slot_share::waiter> slot_share::next_waiter_locked() {
  auto best = queue_.end();
  std::size_t best_held = 0, best_demand = 1;
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    const member_state& state = members_[(*it)->member];
    const std::size_t demand = std::max<std::size_t>(state.demand, 1);
    // held / demand < best_held / best_demand, without division.
    if (best == queue_.end() || state.held * best_demand < best_held * demand) {
      best = it;
      best_held = state.held;
      best_demand = demand;
    }
  }
  if (best == queue_.end()) return nullptr;
  auto chosen = std::move(*best);
  queue_.erase(best);
  return chosen;
}

}  // namespace drover
