// The flow of one module through the core: ready, dispatched, ended, retried or finished, and
// what its end releases. Stops and timers are in scheduler_stop.cpp, remote workers and
// placement in scheduler_remote.cpp.

#include <drover/detail/scheduler_core.hpp>

#include <drover/secrets.hpp>
#include "text.hpp"

#include <algorithm>
#include <cmath>

namespace drover::detail {

namespace {

constexpr std::uint32_t no_outcome = static_cast<std::uint32_t>(-1);

std::string lower_case(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string describe_blocker(module_status status) {
  switch (status) {
    case module_status::failed:
      return "failed";
    case module_status::timed_out:
      return "timed out";
    case module_status::cancelled:
      return "was cancelled";
    case module_status::skipped:
      return "was skipped";
    default:
      return "did not succeed";
  }
}

}  // namespace

std::string_view to_string(rejection r) noexcept {
  switch (r) {
    case rejection::unknown_module:
      return "unknown_module";
    case rejection::duplicate:
      return "duplicate_result";
    case rejection::other_epoch:
    case rejection::given_up:
    case rejection::unconfirmed:
    case rejection::not_running:
      return "stale_result";
  }
  return "stale_result";
}

scheduler_core::scheduler_core(const plan& p, core_settings settings)
    : plan_(p),
      settings_(std::move(settings)),
      local_workers_(static_cast<worker_number>(settings_.local_workers)),
      rng_(settings_.seed) {
  const std::size_t n = plan_.size();
  state_.resize(n);
  pending_.resize(n);
  for (module_index i = 0; i < n; ++i)
    pending_[i] = static_cast<std::uint32_t>(plan_.predecessors(i).size());
  worker_.assign(n, no_worker);
  times_.assign(2 * n, 0);
  outcome_of_.assign(n, no_outcome);
  ready_.resize(n);
  gate_ =
      constraint_gate(plan_.constraint_table(), [this](module_index i) { return ready_key(i); });
  remaining_ = n;
  for (auto& label : settings_.local_labels)
    label = lower_case(label);
  for (worker_number w = 0; w < local_workers_; ++w)
    worker_names_.push_back("local-" + std::to_string(w));
  settings_.local_capacity = std::max(settings_.local_capacity, settings_.local_workers);
  if (settings_.remote) setup_groups();
}

void scheduler_core::start(time_point now) {
  if (started_) return;
  started_ = true;
  start_time_ = now;
  emit(event_type::run_started, no_module, 0, no_worker, module_status::pending, {}, now);
  if (settings_.deadline) timers_.push(now + *settings_.deadline, timer_queue::kind::deadline);
  for (module_index i = 0; i < plan_.size(); ++i) {
    if (pending_[i] == 0) worklist_.push_back(i);
  }
  settle(now);
}

// Processes modules whose dependencies all ended, then reacts to what that changed: fail_fast,
// completion, more work for the workers. Modules released together are taken in the order
// they were released (first come, first served), which for one completion is file order.
void scheduler_core::settle(time_point now) {
  if (settling_ || finished_) return;
  settling_ = true;
  for (;;) {
    while (worklist_head_ < worklist_.size())
      became_ready(worklist_[worklist_head_++], now);
    worklist_.clear();
    worklist_head_ = 0;
    if (fail_fast_cause_ != no_module && stop_ == stop_mode::none) {
      stop(stop_mode::unless_always_run, now);
      continue;
    }
    if (remaining_ == 0) {
      complete(now);
      break;
    }
    pump(now);
    if (!worklist_.empty()) continue;
    // The gate's waits always end when what they wait for is released, so this never fires;
    // it is the guarantee that a bug there fails the waiting modules instead of hanging.
    if (local_in_flight_ == 0 && remote_in_flight_ == 0 && ready_.empty() && startable_.empty() &&
        backing_off_ == 0 && awaiting_records_ == 0 && gate_.parked() > 0) {
      for (module_index i : gate_.take_parked()) {
        finish(i, module_status::failed,
               "internal error: waited for a constraint that nothing running could release", now);
      }
      continue;
    }
    break;
  }
  settling_ = false;
  if (!finished_) arm_earliest();
}

void scheduler_core::became_ready(module_index i, time_point now) {
  const module_record& rec = plan_.record(i);
  if (stop_ == stop_mode::everything)
    return finish(i, module_status::cancelled, stop_reason(), now);
  if (state_[i].blocked && !rec.has(module_flag::always_run)) {
    module_status status = module_status::skipped;
    std::string why = blocked_reason(i, status);
    return finish(i, status, std::move(why), now);
  }
  if (stop_ == stop_mode::unless_always_run && !rec.has(module_flag::always_run)) {
    return finish(i, module_status::cancelled, stop_reason(), now);
  }
  if (rec.has(module_flag::has_skip_if)) {
    std::optional<std::string> reason;
    try {
      reason = (*plan_.module(i).skip_if())();
    } catch (const std::exception& e) {
      return finish(i, module_status::failed, std::string("skip condition threw: ") + e.what(),
                    now);
    }
    if (reason) return finish(i, module_status::skipped, std::move(*reason), now);
  }
  if (!settings_.remote) {
    // Every worker of a local run is known: a module none of them can run is skipped.
    if (rec.has(module_flag::requires_labels)) {
      if (auto missing = missing_local_labels(i)) {
        return finish(i, module_status::skipped, std::move(*missing), now);
      }
    }
  } else if (local_workers_ == 0 && rec.has(module_flag::pin_local)) {
    return finish(i, module_status::failed,
                  "pin_local, but the run has no local workers (workers = 0)", now);
  }
  if (settings_.check_reuse) {
    state_[i].where = phase::checking;
    return push({.what = action::kind::check_reuse, .module = i});
  }
  enqueue(i);
  emit(event_type::module_ready, i, 0, no_worker, module_status::pending, {}, now);
}

// The dependency to blame: a failed, timed-out or skipped one before a cancelled one, each in
// declaration order. The module is cancelled only when every blocking dependency was.
std::string scheduler_core::blocked_reason(module_index i, module_status& status) const {
  module_index cancelled = no_module;
  for (module_index d : plan_.predecessors(i)) {
    const module_status ds = state_[d].status;
    if (lets_dependents_run(ds)) continue;
    if (ds == module_status::cancelled) {
      if (cancelled == no_module) cancelled = d;
      continue;
    }
    status = module_status::skipped;
    return "dependency " + std::string(plan_.id(d)) + " " + describe_blocker(ds);
  }
  status = module_status::cancelled;
  if (cancelled == no_module) return "dependency did not succeed";
  return "dependency " + std::string(plan_.id(cancelled)) + " was cancelled";
}

// For a module with required capabilities (module_flag::requires_labels).
std::optional<std::string> scheduler_core::missing_local_labels(module_index i) const {
  std::string missing;
  for (const auto& label : plan_.constraints(i)->required_capabilities) {
    const std::string wanted = lower_case(label);
    if (std::find(settings_.local_labels.begin(), settings_.local_labels.end(), wanted) !=
        settings_.local_labels.end())
      continue;
    missing += (missing.empty() ? "" : ", ") + label;
  }
  if (missing.empty()) return std::nullopt;
  std::string have;
  for (const auto& label : settings_.local_labels)
    have += (have.empty() ? "" : ", ") + label;
  return "no worker has the capabilities it requires: " + missing +
         " (local workers have: " + have + ")";
}

void scheduler_core::enqueue(module_index i) {
  state_[i].where = phase::ready;
  ready_.push(ready_key(i), i);
}

ready_queue::key_type scheduler_core::ready_key(module_index i) const noexcept {
  const module_record& rec = plan_.record(i);
  return ready_queue::make_key(rec.priority,
                               settings_.order_by_critical_path ? plan_.critical_path(i) : 0);
}

// Hands ready modules to the local workers while they have room; the rest wait in priority
// order. A module governed by constraints passes the gate first; one that may not start yet
// is parked there and comes back through startable_ when what it waits for is released.
void scheduler_core::pump(time_point now) {
  if (settings_.remote) return pump_distributed(now);
  while (local_in_flight_ < settings_.local_capacity) {
    module_index i = no_module;
    if (!startable_.empty()) {
      i = startable_.front();
      startable_.pop_front();
    } else if (!ready_.empty()) {
      i = ready_.pop();
      if (gate_.governs(i) && !gate_.try_start(i)) {
        state_[i].where = phase::parked;
        continue;
      }
    } else {
      return;
    }
    dispatch_local(i, now);
  }
}

void scheduler_core::dispatch_local(module_index i, time_point) {
  module_state& st = state_[i];
  st.where = phase::dispatched;
  ++st.attempts;
  ++local_in_flight_;
  push({.what = action::kind::dispatch, .module = i, .attempt = st.attempts, .local = true});
}

void scheduler_core::attempt_started(module_index i, std::uint32_t attempt, worker_number w,
                                     time_point now) {
  if (state_[i].where != phase::dispatched || attempt != state_[i].attempts) return;
  worker_[i] = w;
  if (attempt == 1) times_[2 * i] = ms_since_start(now);
  emit(event_type::module_started, i, attempt, w, module_status::pending, {}, now);
}

void scheduler_core::attempt_not_started(module_index i, std::uint32_t attempt, time_point now) {
  --local_in_flight_;
  release_constraints(i);
  if (state_[i].where == phase::dispatched && attempt == state_[i].attempts) {
    --state_[i].attempts;  // it never began
    finish(i, module_status::cancelled, stop_reason(), now);
  }
  settle(now);
}

void scheduler_core::attempt_ended(module_index i, std::uint32_t attempt, worker_number w,
                                   time_point started, attempt_outcome&& outcome, time_point now) {
  --local_in_flight_;
  release_constraints(i);
  if (state_[i].where == phase::dispatched && attempt == state_[i].attempts) {
    worker_[i] = w;
    if (attempt == 1) times_[2 * i] = ms_since_start(started);
    attempt_done(i, attempt, outcome, now);
  }
  settle(now);
}

// An attempt ended with the core still waiting for it: succeed, retry, or end the module.
void scheduler_core::attempt_done(module_index i, std::uint32_t attempt, attempt_outcome& outcome,
                                  time_point now) {
  if (outcome.status == module_status::succeeded) {
    if (!outcome.value.is_null()) slot(i).value = std::move(outcome.value);
    return finish(i, module_status::succeeded, {}, now);
  }
  std::string& error = outcome.error;
  if (stop_applies(i) && outcome.status != module_status::timed_out) {
    return finish(i, module_status::cancelled,
                  stop_reason() + (error.empty() ? "" : " (" + error + ")"), now);
  }
  if (outcome.status == module_status::cancelled) {
    return finish(i, module_status::cancelled, std::move(error), now);
  }
  const module_record& rec = plan_.record(i);
  const std::uint32_t counted = attempt - uncounted_attempts(i);
  if (counted <= rec.retries && !stop_applies(i)) {
    set_reason(i, std::move(error));
    return schedule_retry(i, attempt, now);
  }
  if (rec.has(module_flag::ignore_failure)) {
    return finish(i, module_status::ignored_failure, std::move(error), now);
  }
  finish(i, outcome.status, std::move(error), now);
}

bool scheduler_core::triggers_fail_fast(const plan& p, module_index i,
                                        std::uint32_t counted_attempt,
                                        module_status status) noexcept {
  if (p.mode() != execution_mode::fail_fast) return false;
  if (status != module_status::failed && status != module_status::timed_out) return false;
  const module_record& rec = p.record(i);
  return !rec.has(module_flag::ignore_failure) && counted_attempt > rec.retries;
}

void scheduler_core::schedule_retry(module_index i, std::uint32_t attempt, time_point now) {
  const backoff_policy& b = plan_.backoff(i);
  // Retry k waits initial * multiplier^(k-1): attempts that ended with their worker are not
  // retries and do not lengthen the wait.
  const std::uint32_t retry = attempt - uncounted_attempts(i);
  double delay_ms = static_cast<double>(b.initial.count()) *
                    std::pow(b.multiplier, static_cast<double>(retry - 1));
  delay_ms = std::min(delay_ms, static_cast<double>(b.max.count()));
  if (b.jitter > 0) {
    std::uniform_real_distribution<double> factor(1.0 - b.jitter, 1.0 + b.jitter);
    delay_ms *= factor(rng_);
  }
  const auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(delay_ms)));
  emit(event_type::module_retrying, i, attempt, worker_[i], module_status::pending, reason(i), now,
       delay);
  state_[i].where = phase::backoff;
  ++backing_off_;
  timers_.push(now + delay, timer_queue::kind::backoff, i, attempt);
}

// Records a terminal state and releases dependents. Successors whose last dependency this was
// go on worklist_ for settle(), so a long chain of skips cannot recurse.
void scheduler_core::finish(module_index i, module_status status, std::string reason,
                            time_point now) {
  module_state& st = state_[i];
  st.status = status;
  st.where = phase::done;
  if (!reason.empty() || outcome_of_[i] != no_outcome) set_reason(i, std::move(reason));
  if (outcome_of_[i] != no_outcome) {
    outcome_slot& s = outcomes_[outcome_of_[i]];
    if (status != module_status::succeeded && status != module_status::cached) s.value = nullptr;
    if (settings_.secrets && !settings_.secrets->empty()) {
      // Before anything reads them: events, the journal, the cache, dependents, the report.
      settings_.secrets->mask_in_place(s.reason);
      settings_.secrets->mask_in_place(s.value);
    }
  }
  times_[2 * i + 1] = ms_since_start(now);
  if (st.attempts == 0) times_[2 * i] = times_[2 * i + 1];
  --remaining_;
  emit(event_type::module_finished, i, st.attempts, worker_[i], status, this->reason(i), now);
  if (is_failure(status) && status != module_status::cancelled &&
      plan_.mode() == execution_mode::fail_fast && fail_fast_cause_ == no_module) {
    fail_fast_cause_ = i;
  }
  if (settings_.record) {
    push({.what = action::kind::record, .module = i});
    if (settings_.wait_for_records && !plan_.successors(i).empty()) {
      st.where = phase::recording;
      ++awaiting_records_;
      return;
    }
  }
  release_dependents(i);
}

void scheduler_core::recorded(module_index i, time_point now) {
  if (state_[i].where != phase::recording) return;
  state_[i].where = phase::done;
  --awaiting_records_;
  release_dependents(i);
  settle(now);
}

void scheduler_core::release_dependents(module_index i) {
  const bool ok = lets_dependents_run(state_[i].status);
  for (module_index s : plan_.successors(i)) {
    if (!ok) state_[s].blocked = true;
    if (--pending_[s] == 0) worklist_.push_back(s);
  }
}

void scheduler_core::release_constraints(module_index i) {
  if (!gate_.governs(i)) return;
  gate_started_.clear();
  gate_.release(i, gate_started_);
  for (module_index s : gate_started_)
    state_[s].where = phase::ready;
  startable_.insert(startable_.end(), gate_started_.begin(), gate_started_.end());
}

void scheduler_core::reuse_checked(module_index i, std::optional<boost::json::value> value,
                                   reuse_source source, std::string error, time_point now) {
  if (state_[i].where != phase::checking) return;
  if (!error.empty()) {
    finish(i, module_status::failed, std::move(error), now);
  } else if (value && source != reuse_source::none) {
    if (!value->is_null()) slot(i).value = std::move(*value);
    if (source == reuse_source::journal) {
      ++from_journal_;
      finish(i, module_status::cached, "reused from the journal of an earlier run", now);
    } else {
      ++from_cache_;
      finish(i, module_status::cached, "reused from the cache", now);
    }
  } else if (stop_applies(i)) {
    // A stop came while it was looked up: it ends like the ready modules the stop found.
    finish(i, module_status::cancelled, stop_reason(), now);
  } else {
    enqueue(i);
    emit(event_type::module_ready, i, 0, no_worker, module_status::pending, {}, now);
  }
  settle(now);
}

void scheduler_core::complete(time_point now) {
  finished_ = true;
  emit(event_type::run_finished, no_module, 0, no_worker, module_status::pending,
       to_string(result()), now);
  for (worker_number w = local_workers_; w < local_workers_ + remotes_.size(); ++w) {
    if (remote(w).alive) push({.what = action::kind::release_worker, .worker = w});
  }
  push({.what = action::kind::complete});
}

run_status scheduler_core::result() const noexcept {
  if (!finished_) return run_status::invalid;
  if (stop_ == stop_mode::everything && !deadline_passed_) return run_status::cancelled;
  for (const module_state& st : state_) {
    if (is_failure(st.status)) return run_status::failed;
  }
  return run_status::succeeded;
}

bool scheduler_core::stop_applies(module_index i) const noexcept {
  switch (stop_) {
    case stop_mode::none:
      return false;
    case stop_mode::unless_always_run:
      return !plan_.record(i).has(module_flag::always_run);
    case stop_mode::everything:
      return true;
  }
  return false;
}

std::string scheduler_core::stop_reason() const {
  if (stop_ == stop_mode::everything) {
    return deadline_passed_ ? "deadline exceeded" : "run cancelled";
  }
  if (fail_fast_cause_ != no_module) {
    return "cancelled by fail_fast after " + in_quotes(plan_.id(fail_fast_cause_)) + " " +
           describe_blocker(state_[fail_fast_cause_].status);
  }
  return "cancelled";
}

void scheduler_core::emit(event_type type, module_index i, std::uint32_t attempt, worker_number w,
                          module_status status, std::string_view message, time_point now,
                          std::chrono::milliseconds delay) {
  if (!settings_.on_event) return;
  core_event e;
  e.type = type;
  e.module = i;
  e.attempt = attempt;
  e.worker = w;
  e.status = status;
  e.message = message;
  e.delay = delay;
  e.at = now;
  settings_.on_event(e);
}

scheduler_core::outcome_slot& scheduler_core::slot(module_index i) {
  if (outcome_of_[i] == no_outcome) {
    outcome_of_[i] = static_cast<std::uint32_t>(outcomes_.size());
    outcomes_.emplace_back();
  }
  return outcomes_[outcome_of_[i]];
}

void scheduler_core::set_reason(module_index i, std::string reason) {
  if (reason.empty() && outcome_of_[i] == no_outcome) return;
  slot(i).reason = std::move(reason);
}

const boost::json::value& scheduler_core::value(module_index i) const noexcept {
  static const boost::json::value null_value;
  return outcome_of_[i] == no_outcome ? null_value : outcomes_[outcome_of_[i]].value;
}

std::string_view scheduler_core::reason(module_index i) const noexcept {
  return outcome_of_[i] == no_outcome ? std::string_view{} : outcomes_[outcome_of_[i]].reason;
}

std::chrono::milliseconds scheduler_core::started_at(module_index i) const noexcept {
  return std::chrono::milliseconds{times_[2 * i]};
}

std::chrono::milliseconds scheduler_core::finished_at(module_index i) const noexcept {
  return std::chrono::milliseconds{times_[2 * i + 1]};
}

std::uint32_t scheduler_core::ms_since_start(time_point now) const noexcept {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - start_time_).count();
  if (ms <= 0) return 0;
  return ms >= 0xffffffffLL ? 0xffffffffu : static_cast<std::uint32_t>(ms);
}

}  // namespace drover::detail
