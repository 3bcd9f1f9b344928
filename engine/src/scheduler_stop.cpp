// Stopping a run (fail_fast, the caller's cancel, the deadline) and the core's timers.

#include <drover/detail/scheduler_core.hpp>

namespace drover::detail {

void scheduler_core::cancel(time_point now) {
  if (finished_) return;
  stop(stop_mode::everything, now);
  if (started_) settle(now);
}

// Cancels what the mode covers: waiting modules end cancelled at once, running ones are asked
// to stop (their workers still report how they ended).
void scheduler_core::stop(stop_mode mode, time_point now) {
  if (finished_ || static_cast<int>(mode) <= static_cast<int>(stop_)) return;
  stop_ = mode;
  if (!started_) return;  // start() finds every module cancelled
  if (local_in_flight_ > 0) push({.what = action::kind::cancel, .local = true});

  std::vector<module_index> waiting = ready_.take_all();
  std::vector<module_index> parked = gate_.take_parked();
  waiting.insert(waiting.end(), parked.begin(), parked.end());
  // Modules that passed the gate and wait for a worker hold what they need: they give it back
  // and end here, or a worker freed later would still be handed them.
  std::deque<module_index> startable;
  startable.swap(startable_);
  for (module_index i : startable) {
    if (!stop_applies(i)) {
      startable_.push_back(i);
      continue;
    }
    release_constraints(i);
    finish(i, module_status::cancelled, stop_reason(), now);
  }
  for (auto& group : groups_) {
    waiting.insert(waiting.end(), group.waiting.begin(), group.waiting.end());
    group.waiting.clear();
  }
  cancel_remote_attempts(now);
  for (module_index i : waiting) {
    if (stop_applies(i)) {
      finish(i, module_status::cancelled, stop_reason(), now);
    } else {
      enqueue(i);
    }
  }
  // Modules waiting to retry that the stop covers end now, not when their backoff is over.
  for (const timer_queue::entry& e : timers_.entries()) {
    if (e.what != timer_queue::kind::backoff) continue;
    const module_index i = e.module;
    if (state_[i].where != phase::backoff || state_[i].attempts != e.attempt) continue;
    if (!stop_applies(i)) continue;
    --backing_off_;
    finish(i, module_status::cancelled, stop_reason(), now);
  }
}

void scheduler_core::release_scheduling_state() {
  if (!finished_) return;
  std::vector<std::uint32_t>().swap(pending_);
  ready_ = ready_queue{};
  gate_ = constraint_gate{};
  std::deque<module_index>().swap(startable_);
  std::vector<module_index>().swap(worklist_);
  std::vector<module_index>().swap(gate_started_);
  timers_ = timer_queue{};
}

void scheduler_core::timer_fired(time_point now) {
  armed_at_ = time_point::max();
  if (finished_) return;
  fire_due(now);
  settle(now);
}

void scheduler_core::fire_due(time_point now) {
  while (!timers_.empty() && timers_.top().at <= now && !finished_) {
    const timer_queue::entry e = timers_.pop();
    switch (e.what) {
      case timer_queue::kind::backoff:
        backoff_due(e.module, e.attempt, now);
        break;
      case timer_queue::kind::capability:
        capability_due(e.module, now);
        break;
      case timer_queue::kind::cancel_grace:
        cancel_grace_due(now);
        break;
      case timer_queue::kind::overdue:
        overdue_due(e.module, e.attempt, e.worker, now);
        break;
      case timer_queue::kind::deadline:
        if (stop_ == stop_mode::everything) break;  // the caller cancelled first
        deadline_passed_ = true;
        stop(stop_mode::everything, now);
        break;
    }
  }
}

void scheduler_core::backoff_due(module_index i, std::uint32_t attempt, time_point now) {
  if (state_[i].where != phase::backoff || state_[i].attempts != attempt) return;
  --backing_off_;
  if (stop_applies(i)) return finish(i, module_status::cancelled, stop_reason(), now);
  enqueue(i);
}

// Asks for a timer at the earliest deadline, unless one at that time or earlier is armed.
void scheduler_core::arm_earliest() {
  if (timers_.empty()) return;
  const time_point at = timers_.top().at;
  if (at >= armed_at_) return;
  armed_at_ = at;
  push({.what = action::kind::arm_timer, .at = at});
}

}  // namespace drover::detail
