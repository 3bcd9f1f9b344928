// Remote workers in the core: placement by capability, slots, fencing of completions (the only
// place a remote result is checked), reassignment after a loss, poison, overdue attempts and
// unconfirmed cancellations.

#include <drover/detail/scheduler_core.hpp>

#include "text.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>

namespace drover::detail {

namespace {

// How many fitting free workers find_target compares at most.
constexpr std::size_t best_fit_candidates = 32;

}  // namespace

namespace {

std::string lower_case(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

// One placement group per distinct set of requirements: a module waiting for a Windows worker
// does not hold up modules any worker can run. Group 0 requires nothing.
void scheduler_core::setup_groups() {
  const std::size_t n = plan_.size();
  group_of_.assign(n, 0);
  groups_.emplace_back();
  std::unordered_map<std::string, std::uint32_t> group_by_signature;
  for (module_index i = 0; i < n; ++i) {
    const module_record& rec = plan_.record(i);
    if (!rec.has(module_flag::requires_labels) && !rec.has(module_flag::pin_local)) continue;
    std::vector<std::string> labels;
    if (const module_constraints* c = plan_.constraints(i)) {
      for (const auto& label : c->required_capabilities)
        labels.push_back(lower_case(label));
    }
    std::sort(labels.begin(), labels.end());
    labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
    std::string signature = rec.has(module_flag::pin_local) ? "local:" : "any:";
    for (const auto& label : labels)
      signature += label + ',';
    auto [it, added] =
        group_by_signature.emplace(signature, static_cast<std::uint32_t>(groups_.size()));
    if (added) {
      placement_group& g = groups_.emplace_back();
      g.pin_local = rec.has(module_flag::pin_local);
      g.labels = std::move(labels);
    }
    group_of_[i] = it->second;
  }
}

bool scheduler_core::group_fits(const placement_group& g,
                                const std::vector<std::string>& labels) const {
  return std::all_of(g.labels.begin(), g.labels.end(), [&](const std::string& label) {
    return std::find(labels.begin(), labels.end(), label) != labels.end();
  });
}

bool scheduler_core::group_has_capable_worker(const placement_group& g) const {
  if (local_workers_ > 0 && group_fits(g, settings_.local_labels)) return true;
  if (g.pin_local) return false;
  return std::any_of(remotes_.begin(), remotes_.end(), [&](const remote_entry& r) {
    return r.alive && !r.draining && group_fits(g, r.labels);
  });
}

// The worker for module i now: a free local worker first (no network hop), else a capable
// remote worker with a free slot. A retry avoids the remote worker its last attempt ran on
// whenever another capable one is free.
scheduler_core::target scheduler_core::find_target(module_index i) const {
  const placement_group& g = groups_[group_of_[i]];
  if (local_workers_ > 0 && local_in_flight_ < settings_.local_capacity &&
      group_fits(g, settings_.local_labels)) {
    return {.local = true};
  }
  if (g.pin_local) return {};
  const worker_number avoid =
      state_[i].attempts > 0 && is_remote(worker_[i]) ? worker_[i] : no_worker;
  // Best fit: of the free workers that fit, the one with the fewest labels beyond those the
  // module needs, so that a worker with rare labels (a gpu) stays free for the modules that
  // need them. A worker with nothing extra (its OS label only) ends the search; otherwise at
  // most best_fit_candidates fitting workers are compared, so that placement stays cheap with
  // thousands of workers.
  const std::size_t perfect = g.labels.size() + 1;
  worker_number best = no_worker, fallback = no_worker;
  std::size_t compared = 0;
  for (auto it = free_remotes_.rbegin(); it != free_remotes_.rend(); ++it) {
    const auto& labels = remote(*it).labels;
    if (!g.labels.empty() && !group_fits(g, labels)) continue;
    if (*it == avoid) {
      fallback = *it;
      continue;
    }
    if (best == no_worker || labels.size() < remote(best).labels.size()) best = *it;
    if (labels.size() <= perfect || ++compared >= best_fit_candidates) break;
  }
  return {.remote = best != no_worker ? best : fallback};
}

namespace {

std::size_t free_slots_of(bool alive, bool draining, std::uint32_t slots, std::size_t used) {
  if (!alive || draining || used >= slots) return 0;
  return slots - used;
}

}  // namespace

// Keeps free_remotes_ listing exactly the live, undrained remote workers with a free slot, and
// remote_free_slots_ their sum. `before` is the worker's free slots before the change.
void scheduler_core::update_free(worker_number w, std::size_t before) {
  remote_entry& r = remote(w);
  const std::size_t now_free = free_slots_of(
      r.alive, r.draining, r.slots, r.running.size() + r.overdue.size() + r.unconfirmed.size());
  remote_free_slots_ = remote_free_slots_ + now_free - before;
  const bool free = now_free > 0;
  if (free && r.free_position == no_position) {
    r.free_position = free_remotes_.size();
    free_remotes_.push_back(w);
  } else if (!free && r.free_position != no_position) {
    const worker_number last = free_remotes_.back();
    free_remotes_[r.free_position] = last;
    remote(last).free_position = r.free_position;
    free_remotes_.pop_back();
    r.free_position = no_position;
  }
}

std::size_t scheduler_core::free_slots(worker_number w) const {
  const remote_entry& r = remote(w);
  return free_slots_of(r.alive, r.draining, r.slots,
                       r.running.size() + r.overdue.size() + r.unconfirmed.size());
}

void scheduler_core::send(module_index i, const target& t, time_point now) {
  if (t.local) return dispatch_local(i, now);
  dispatch_remote(i, t.remote, now);
}

// Like pump(), but each module goes to a particular worker that can run it. A module no free
// worker can take waits in its placement group.
void scheduler_core::pump_distributed(time_point now) {
  for (auto it = startable_.begin(); it != startable_.end();) {
    const target t = find_target(*it);
    if (!t.found()) {
      ++it;
      continue;
    }
    const module_index i = *it;
    it = startable_.erase(it);
    send(i, t, now);
  }
  for (auto& g : groups_) {
    while (!g.waiting.empty()) {
      const module_index i = g.waiting.front();
      const target t = find_target(i);
      if (!t.found()) break;
      g.waiting.pop_front();
      if (gate_.governs(i) && !gate_.try_start(i)) {
        state_[i].where = phase::parked;
        continue;
      }
      send(i, t, now);
    }
  }
  // Leave modules in the ready queue, in key order, while no worker has room at all. With no
  // worker connected at all they move on too, so that the capability clock runs.
  const bool no_worker_at_all = local_workers_ == 0 && live_remotes_ == 0;
  while (!ready_.empty() && ((local_workers_ > 0 && local_in_flight_ < settings_.local_capacity) ||
                             remote_free_slots_ > 0 || no_worker_at_all)) {
    const module_index i = ready_.pop();
    placement_group& g = groups_[group_of_[i]];
    const target t = g.waiting.empty() ? find_target(i) : target{};
    if (!t.found()) {
      state_[i].where = phase::placing;
      g.waiting.push_back(i);
      if (g.waiting.size() == 1) check_capability_clocks(now);
      continue;
    }
    if (gate_.governs(i) && !gate_.try_start(i)) {
      state_[i].where = phase::parked;
      continue;
    }
    send(i, t, now);
  }
}

void scheduler_core::dispatch_remote(module_index i, worker_number w, time_point now) {
  module_state& st = state_[i];
  remote_entry& r = remote(w);
  const std::size_t before = free_slots(w);
  st.where = phase::dispatched;
  ++st.attempts;
  st.answered = false;
  if (st.attempts == 1) times_[2 * i] = ms_since_start(now);
  worker_[i] = w;
  r.running.emplace_back(i, st.attempts);
  ++remote_in_flight_;
  update_free(w, before);
  emit(event_type::module_started, i, st.attempts, w, module_status::pending, {}, now);
  push({.what = action::kind::dispatch, .module = i, .attempt = st.attempts, .worker = w});
  if (auto timeout = plan_.timeout(i)) {
    timers_.push(now + *timeout + settings_.overdue_grace, timer_queue::kind::overdue, i,
                 st.attempts, w);
  }
}

// A group whose modules no connected worker can run waits capability_timeout for one to join,
// then fails them; a worker joining in time stops the clock.
void scheduler_core::check_capability_clocks(time_point now) {
  for (std::uint32_t gi = 0; gi < groups_.size(); ++gi) {
    placement_group& g = groups_[gi];
    if (g.waiting.empty() || group_has_capable_worker(g)) {
      g.clock_running = false;
      continue;
    }
    if (g.clock_running) continue;
    g.clock_running = true;
    g.clock_started = now;
    timers_.push(now + settings_.capability_timeout, timer_queue::kind::capability, gi);
  }
}

void scheduler_core::capability_due(std::uint32_t gi, time_point now) {
  placement_group& g = groups_[gi];
  if (!g.clock_running || now < g.clock_started + settings_.capability_timeout) return;
  g.clock_running = false;
  if (group_has_capable_worker(g)) return;
  std::string labels;
  for (const auto& label : g.labels)
    labels += (labels.empty() ? "" : ", ") + label;
  const std::string reason =
      (g.pin_local        ? std::string("pin_local, and no local worker")
       : g.labels.empty() ? std::string("no worker connected")
                          : "no connected worker has the capabilities it requires: " + labels) +
      " (waited " + std::to_string(settings_.capability_timeout.count()) + " ms)";
  std::deque<module_index> waiting;
  waiting.swap(g.waiting);
  for (module_index i : waiting)
    finish(i, module_status::failed, reason, now);
}

void scheduler_core::cancel_remote_attempts(time_point now) {
  bool any = false;
  for (worker_number w = local_workers_; w < local_workers_ + remotes_.size(); ++w) {
    const remote_entry& r = remote(w);
    if (!r.alive) continue;
    for (auto [i, attempt] : r.running) {
      if (!stop_applies(i)) continue;
      push({.what = action::kind::cancel, .module = i, .attempt = attempt, .worker = w});
      any = true;
    }
  }
  if (!any) return;
  // A worker that does not confirm within cancel_grace is not waited for. A later stop
  // restarts the wait for everything it covers.
  cancel_grace_from_ = now;
  timers_.push(now + settings_.cancel_grace, timer_queue::kind::cancel_grace);
}

void scheduler_core::cancel_grace_due(time_point now) {
  if (now < cancel_grace_from_ + settings_.cancel_grace) return;  // a later stop restarted it
  for (worker_number w = local_workers_; w < local_workers_ + remotes_.size(); ++w) {
    remote_entry& r = remote(w);
    const std::size_t before = free_slots(w);
    std::erase_if(r.running, [&](const std::pair<module_index, std::uint32_t>& running) {
      const module_index i = running.first;
      if (!stop_applies(i) || state_[i].where != phase::dispatched) return false;
      --remote_in_flight_;
      release_constraints(i);
      r.unconfirmed.push_back(running);  // the worker may still run it: its slot stays taken
      finish(i, module_status::cancelled,
             stop_reason() + "; " + worker_names_[w] + " did not confirm the cancellation within " +
                 std::to_string(settings_.cancel_grace.count()) + " ms",
             now);
      return true;
    });
    update_free(w, before);
  }
}

// An attempt past its deadline is cancelled on its worker and ends timed_out; its slot stays
// taken until the worker answers, so the worker never gets more than its slots.
void scheduler_core::overdue_due(module_index i, std::uint32_t attempt, worker_number w,
                                 time_point now) {
  remote_entry& r = remote(w);
  const std::pair<module_index, std::uint32_t> key{i, attempt};
  auto running = std::find(r.running.begin(), r.running.end(), key);
  if (!r.alive || running == r.running.end() || state_[i].where != phase::dispatched ||
      attempt != state_[i].attempts || stop_applies(i)) {
    return;  // it ended, moved on, or the run's own cancellation deals with it
  }
  const std::size_t before = free_slots(w);
  r.running.erase(running);
  r.overdue.push_back(key);
  --remote_in_flight_;
  update_free(w, before);
  ++remote_stats_.overdue;
  const auto timeout = plan_.timeout(i).value_or(std::chrono::milliseconds{0});
  std::string why = "no result from worker " + worker_names_[w] + " within the timeout of " +
                    std::to_string(timeout.count()) + " ms and " +
                    std::to_string(settings_.overdue_grace.count()) +
                    " ms more; cancelled it there";
  push({.what = action::kind::cancel, .module = i, .attempt = attempt, .worker = w});
  release_constraints(i);
  attempt_outcome outcome{.status = module_status::timed_out, .value = {}, .error = std::move(why)};
  attempt_done(i, attempt, outcome, now);
}

worker_number scheduler_core::worker_attached(std::string name, std::vector<std::string> labels,
                                              std::uint32_t slots, time_point now) {
  const auto w = static_cast<worker_number>(local_workers_ + remotes_.size());
  worker_names_.push_back(std::move(name));
  remote_entry& r = remotes_.emplace_back();
  for (auto& label : labels)
    r.labels.push_back(lower_case(label));
  r.slots = std::max<std::uint32_t>(slots, 1);
  ++live_remotes_;
  update_free(w, 0);
  ++remote_stats_.workers_attached;
  emit(event_type::worker_joined, no_module, 0, w, module_status::pending, {}, now);
  if (finished_) {
    push({.what = action::kind::release_worker, .worker = w});
    return w;
  }
  if (!started_) return w;
  check_capability_clocks(now);
  settle(now);
  return w;
}

void scheduler_core::worker_draining(worker_number w, std::string reason, time_point now) {
  if (finished_) return;
  drain(w, std::move(reason), now);
  if (started_) settle(now);
}

// The worker gets nothing more; what it runs still counts. Its free slots leave the pool now,
// and the ones its attempts free later never join it.
void scheduler_core::drain(worker_number w, std::string reason, time_point now) {
  remote_entry& r = remote(w);
  if (!r.alive || r.draining) return;
  const std::size_t before = free_slots(w);
  r.draining = true;
  r.drain_reason = std::move(reason);
  --live_remotes_;
  update_free(w, before);
  emit(event_type::worker_drained, no_module, 0, w, module_status::pending, r.drain_reason, now);
  push({.what = action::kind::drain_worker, .worker = w});
  if (started_) check_capability_clocks(now);
}

void scheduler_core::worker_lost(worker_number w, std::string_view reason, time_point now,
                                 bool blames_attempts) {
  remote_entry& r = remote(w);
  if (!r.alive) return;
  const std::size_t before = free_slots(w);
  r.alive = false;
  if (!r.draining) --live_remotes_;
  ++remote_stats_.workers_lost;
  r.overdue.clear();
  r.unconfirmed.clear();
  std::vector<std::pair<module_index, std::uint32_t>> running;
  running.swap(r.running);
  update_free(w, before);
  emit(event_type::worker_lost, no_module, 0, w, module_status::pending, reason, now);
  if (finished_) return;
  for (auto [i, attempt] : running) {
    --remote_in_flight_;
#ifndef DROVER_PLANTED_BUG_LOST_WORKER_KEEPS_ITS_SLOTS
    release_constraints(i);
#endif
    // (simulation_planted_bug_test compiles this file with that macro: a scheduler that keeps
    // a lost worker's pool slots, which the simulation's seed sweep must catch.)
    if (state_[i].where != phase::dispatched || attempt != state_[i].attempts) continue;
    give_back(i, attempt, w, "worker " + worker_names_[w] + " was lost: " + std::string(reason),
              now, blames_attempts);
  }
  if (!started_) return;
  check_capability_clocks(now);
  settle(now);
}

// An attempt that ended with its worker rather than on its own (the worker was lost, or gave
// it back when it left): it runs again elsewhere, without counting against retries, unless it
// has now cost max_worker_losses workers (poison). A loss the master's own link caused
// (`blames_attempt` false: its connection to Redis broke) is no sign against the module.
void scheduler_core::give_back(module_index i, std::uint32_t attempt, worker_number w,
                               std::string why, time_point now, bool blames_attempt) {
  module_state& st = state_[i];
  if (stop_applies(i)) {
    return finish(i, module_status::cancelled, stop_reason() + "; " + why, now);
  }
  if (!blames_attempt) {
    if (st.link_failures < UINT8_MAX) ++st.link_failures;
  } else if (++st.losses >= std::min<std::uint32_t>(settings_.max_worker_losses, UINT8_MAX)) {
    return finish(
        i, module_status::failed,
        "poison: " + std::to_string(st.losses) +
            " of its attempts ended with their worker lost or giving it back (last: " + why + ")",
        now);
  }
  ++remote_stats_.reassigned;
  set_reason(i, std::move(why));
  emit(event_type::module_reassigned, i, attempt, w, module_status::pending, reason(i), now);
  enqueue(i);
}

// The fence: a completion is accepted only for an attempt this worker runs now, in this epoch.
// The checks, and their order, are docs/protocol.md's table of rejections.
void scheduler_core::remote_ended(worker_number w, module_index i, std::uint64_t epoch,
                                  std::uint32_t attempt, attempt_outcome&& outcome,
                                  time_point now) {
  if (finished_) return;  // the workers were told the run is over
  remote_entry& r = remote(w);
  const auto reject = [&](rejection why) {
    ++remote_stats_.rejected_results;
    if (r.alive) {
      push({.what = action::kind::reject,
            .module = i,
            .attempt = attempt,
            .worker = w,
            .code = why,
            .epoch = epoch});
    }
  };
  if (i == no_module || i >= plan_.size()) return reject(rejection::unknown_module);
  if (epoch != settings_.epoch) return reject(rejection::other_epoch);
  const std::pair<module_index, std::uint32_t> key{i, attempt};
  const std::size_t before = free_slots(w);
  if (auto late = std::find(r.overdue.begin(), r.overdue.end(), key); late != r.overdue.end()) {
    // The answer to an attempt the core gave up on: its slot is free again.
    r.overdue.erase(late);
    update_free(w, before);
    reject(rejection::given_up);
    return settle(now);
  }
  if (auto late = std::find(r.unconfirmed.begin(), r.unconfirmed.end(), key);
      late != r.unconfirmed.end()) {
    r.unconfirmed.erase(late);
    update_free(w, before);
    reject(rejection::unconfirmed);
    return settle(now);
  }
  auto running = std::find(r.running.begin(), r.running.end(), key);
  if (!r.alive || running == r.running.end()) {
    const bool repeat =
        r.alive && worker_[i] == w && attempt == state_[i].attempts && state_[i].answered;
    return reject(repeat ? rejection::duplicate : rejection::not_running);
  }
  r.running.erase(running);
  --remote_in_flight_;
  update_free(w, before);
  release_constraints(i);
  if (state_[i].where != phase::dispatched || attempt != state_[i].attempts) return settle(now);
  state_[i].answered = true;
  switch (outcome.status) {
    case module_status::succeeded:
    case module_status::failed:
    case module_status::timed_out:
      break;
    case module_status::cancelled:
      if (!stop_applies(i)) {
        // Nobody asked it to stop: the worker gave the attempt back, as one that is shutting
        // down may. It is taken to be leaving, so it gets nothing more (else the module could
        // go straight back to it), and the attempt moves on like a lost worker's.
        drain(w, "it gave back " + in_quotes(plan_.id(i)) + " attempt " + std::to_string(attempt),
              now);
        give_back(i, attempt, w,
                  "worker " + worker_names_[w] + " gave the attempt back" +
                      (outcome.error.empty() ? "" : ": " + outcome.error),
                  now);
        return settle(now);
      }
      break;
    default:
      outcome.error =
          "worker reported status " + std::string(to_string(outcome.status)) + " for an attempt";
      outcome.status = module_status::failed;
      break;
  }
  attempt_done(i, attempt, outcome, now);
  settle(now);
}

}  // namespace drover::detail
