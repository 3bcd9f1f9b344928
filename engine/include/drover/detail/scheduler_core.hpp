#pragma once
// The scheduler, without I/O: inputs in, actions out. It reads no clock, owns no executor,
// starts no thread and touches no file; drivers (the local driver on Asio, the remote bridge,
// a simulation on a virtual clock) feed it what happened and carry out what it asks. Every
// policy of a run lives here once: dependency order, the skip cascade, always_run,
// ignore_failure, skip_if, fail_fast and keep_going, retries with seeded backoff, the
// constraint gate, capability routing and its timeout, remote fencing, reassignment and poison,
// overdue remote attempts, cancellation and the run deadline.
//
//     scheduler_core core{plan, settings};
//     core.start(now());
//     for (action a; core.next_action(a);) carry_out(a);  // dispatch, cancel, arm_timer, ...
//     ...
//     core.attempt_ended(i, attempt, worker, started, std::move(outcome), now());
//     for (action a; core.next_action(a);) carry_out(a);
//
// Not thread-safe: one driver calls it from one strand. Inputs never call back into the
// driver, except the event sink, which must not call the core.

#include <drover/constraints.hpp>
#include <drover/detail/constraint_gate.hpp>
#include <drover/detail/core_types.hpp>
#include <drover/detail/ready_queue.hpp>
#include <drover/detail/timer_queue.hpp>
#include <drover/plan.hpp>
#include <drover/remote.hpp>

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace drover {
class secret_masker;
}

namespace drover::detail {

/// Where a reused result came from (reuse_checked).
enum class reuse_source : std::uint8_t { none, journal, cache };

struct core_settings {
  /// In-process workers, named local-0, local-1, ...; 0 only when remote workers may attach.
  std::size_t local_workers = 1;
  /// How many local dispatches may be outstanding (handed over and not yet ended): the
  /// driver's hand-over buffer. At least local_workers.
  std::size_t local_capacity = 1;
  /// Labels of the local workers, the OS label first; compared case-insensitively.
  std::vector<std::string> local_labels;
  bool order_by_critical_path = true;  ///< else first come, first served among equal priority
  std::uint64_t seed = 1;              ///< backoff jitter; the same seed, the same delays

  /// Remote workers may attach: a module no worker can run yet waits for one (up to
  /// capability_timeout) instead of being skipped.
  bool remote = false;
  std::uint64_t epoch = 0;  ///< stamped on remote attempts; a completion of another is stale
  std::chrono::milliseconds capability_timeout{30000};
  std::uint32_t max_worker_losses = 3;
  std::chrono::milliseconds overdue_grace{5000};
  /// How long a remote cancellation may go unconfirmed before the core gives up on it.
  std::chrono::milliseconds cancel_grace{5000};
  /// The run is cancelled this long after start; reason "deadline exceeded".
  std::optional<std::chrono::milliseconds> deadline;

  bool check_reuse = false;                ///< ask (check_reuse) before running a ready module
  bool record = false;                     ///< ask to record every terminal state
  bool wait_for_records = false;           ///< dependents wait for recorded(): durable journals
  const secret_masker* secrets = nullptr;  ///< masked in values and reasons before use
  std::function<void(const core_event&)> on_event;  ///< unset: no event is built
};

class scheduler_core {
 public:
  scheduler_core(const plan& p, core_settings settings);
  scheduler_core(const scheduler_core&) = delete;
  scheduler_core& operator=(const scheduler_core&) = delete;

  // --- inputs ------------------------------------------------------------------------------

  void start(time_point now);
  /// A local worker began an attempt it was dispatched (events and times only: it pushes no
  /// action, so a driver need not process() after it).
  void attempt_started(module_index i, std::uint32_t attempt, worker_number w, time_point now);
  /// A local worker took a dispatched attempt but did not start it (a stop covered it).
  void attempt_not_started(module_index i, std::uint32_t attempt, time_point now);
  /// A local attempt ended. `started` is when the worker began it.
  void attempt_ended(module_index i, std::uint32_t attempt, worker_number w, time_point started,
                     attempt_outcome&& outcome, time_point now);

  /// A remote worker joined; returns its number. Labels are compared case-insensitively.
  worker_number worker_attached(std::string name, std::vector<std::string> labels,
                                std::uint32_t slots, time_point now);
  /// A remote worker is gone: its attempts without a result are reassigned. With
  /// `blames_attempts` false (the master's own link to it failed), the loss does not count
  /// toward their max_worker_losses.
  void worker_lost(worker_number w, std::string_view reason, time_point now,
                   bool blames_attempts = true);
  /// The remote worker gets no new attempts; the ones it runs finish normally.
  void worker_draining(worker_number w, std::string reason, time_point now);
  /// A remote worker reports an attempt. `i` is no_module when the id names no module.
  void remote_ended(worker_number w, module_index i, std::uint64_t epoch, std::uint32_t attempt,
                    attempt_outcome&& outcome, time_point now);

  /// The answer to check_reuse: a value to reuse (from `source`), nothing (run it), or an
  /// error that fails the module (its fingerprint could not be computed).
  void reuse_checked(module_index i, std::optional<boost::json::value> value, reuse_source source,
                     std::string error, time_point now);
  /// The answer to record when wait_for_records: the record is durable.
  void recorded(module_index i, time_point now);
  /// The time asked for by arm_timer has come.
  void timer_fired(time_point now);
  /// The caller cancels the run.
  void cancel(time_point now);

  // --- actions -----------------------------------------------------------------------------

  bool next_action(action& out) {
    if (action_head_ == actions_.size()) return false;
    out = actions_[action_head_++];
    if (action_head_ == actions_.size()) {
      actions_.clear();
      action_head_ = 0;
    }
    return true;
  }

  // --- state, for drivers and the report ------------------------------------------------------

  /// Once finished(): frees what only scheduling needed (dependency counts, queues, the
  /// constraint gate), keeping what a report reads. Later inputs are ignored as before.
  void release_scheduling_state();

  bool started() const noexcept { return started_; }
  bool finished() const noexcept { return finished_; }
  stop_mode stopping() const noexcept { return stop_; }
  /// True when a stop in force covers module i: it must not start.
  bool stop_applies(module_index i) const noexcept;
  /// Whether an attempt of module i ending with `status` makes fail_fast stop the run. Pure:
  /// pool workers use it to hold back starts before the core hears of the failure.
  static bool triggers_fail_fast(const plan& p, module_index i, std::uint32_t counted_attempt,
                                 module_status status) noexcept;
  /// Why the run stopped ("run cancelled", "deadline exceeded", ...); empty when it did not.
  std::string stop_reason() const;
  bool deadline_passed() const noexcept { return deadline_passed_; }
  /// How the run ended: cancelled (by the caller), failed (a module failed, timed out or was
  /// cancelled; a passed deadline included) or succeeded. `invalid` until finished().
  run_status result() const noexcept;

  const plan& modules() const noexcept { return plan_; }
  module_status status(module_index i) const noexcept { return state_[i].status; }
  std::uint32_t attempts(module_index i) const noexcept { return state_[i].attempts; }
  /// The worker of the last attempt, or no_worker.
  worker_number worker_of(module_index i) const noexcept { return worker_[i]; }
  /// Null unless the module succeeded (or was reused) with a non-null value.
  const boost::json::value& value(module_index i) const noexcept;
  std::string_view reason(module_index i) const noexcept;
  /// Offsets from start(): the first attempt's start, and when the module became terminal.
  std::chrono::milliseconds started_at(module_index i) const noexcept;
  std::chrono::milliseconds finished_at(module_index i) const noexcept;
  const std::vector<std::string>& worker_names() const noexcept { return worker_names_; }
  bool is_remote(worker_number w) const noexcept { return w >= local_workers_ && w != no_worker; }
  std::size_t reused_from_journal() const noexcept { return from_journal_; }
  std::size_t reused_from_cache() const noexcept { return from_cache_; }
  const remote_stats& remote_counters() const noexcept { return remote_stats_; }
  /// Modules in-process workers could run now: ready, plus handed out to them and not ended.
  std::size_t local_demand() const noexcept { return ready_.size() + local_in_flight_; }
  /// Remote workers that are attached, not lost and not drained.
  std::size_t live_remote_workers() const noexcept { return live_remotes_; }
  /// Why remote worker `w` was drained.
  std::string_view drain_reason(worker_number w) const noexcept { return remote(w).drain_reason; }

 private:
  enum class phase : std::uint8_t {
    waiting,     // dependencies not all terminal
    checking,    // asked check_reuse
    ready,       // in the ready queue
    parked,      // waiting in the constraint gate
    placing,     // waiting in its placement group for a capable worker
    dispatched,  // handed to a worker, no end reported yet
    backoff,     // waiting to retry
    recording,   // terminal, its record not yet durable: dependents wait
    done,
  };
  struct module_state {
    phase where = phase::waiting;
    module_status status = module_status::pending;
    std::uint16_t attempts = 0;
    bool blocked = false;     // a dependency ended without letting dependents run
    std::uint8_t losses = 0;  // attempts that ended with their worker, not on their own
    bool answered = false;    // the current remote attempt's result passed the fence
    // Attempts that ended because the master's link to their worker failed: not retries, and
    // not losses either (saturates at 255).
    std::uint8_t link_failures = 0;
  };
  struct outcome_slot {
    boost::json::value value;
    std::string reason;
  };
  struct remote_entry {
    std::vector<std::string> labels;  // lower case
    std::uint32_t slots = 1;
    bool alive = true;
    bool draining = false;
    std::string drain_reason;
    std::vector<std::pair<module_index, std::uint32_t>> running;  // (module, attempt)
    // Attempts the core gave up on (overdue, or a cancellation not confirmed in time): each
    // still holds a slot until the worker answers.
    std::vector<std::pair<module_index, std::uint32_t>> overdue;
    // Attempts whose cancellation it did not confirm in time: likewise, each holds a slot.
    std::vector<std::pair<module_index, std::uint32_t>> unconfirmed;
    std::size_t free_position = no_position;
  };
  struct placement_group {
    bool pin_local = false;
    std::vector<std::string> labels;  // lower case, sorted, unique
    std::deque<module_index> waiting;
    bool clock_running = false;
    time_point clock_started{};
  };
  static constexpr std::size_t no_position = static_cast<std::size_t>(-1);

  // scheduler_core.cpp: the flow of one module
  void push(action a) { actions_.push_back(a); }
  void settle(time_point now);
  void became_ready(module_index i, time_point now);
  void enqueue(module_index i);
  ready_queue::key_type ready_key(module_index i) const noexcept;
  void pump(time_point now);
  void dispatch_local(module_index i, time_point now);
  void attempt_done(module_index i, std::uint32_t attempt, attempt_outcome& outcome,
                    time_point now);
  void finish(module_index i, module_status status, std::string reason, time_point now);
  void release_dependents(module_index i);
  void release_constraints(module_index i);
  void schedule_retry(module_index i, std::uint32_t attempt, time_point now);
  std::optional<std::string> missing_local_labels(module_index i) const;
  std::string blocked_reason(module_index i, module_status& status) const;
  void complete(time_point now);
  void emit(event_type type, module_index i, std::uint32_t attempt, worker_number w,
            module_status status, std::string_view message, time_point now,
            std::chrono::milliseconds delay = {});
  outcome_slot& slot(module_index i);
  void set_reason(module_index i, std::string reason);
  std::uint32_t ms_since_start(time_point now) const noexcept;

  // scheduler_stop.cpp: stops, timers, the deadline
  void stop(stop_mode mode, time_point now);
  void arm_earliest();
  void fire_due(time_point now);
  void backoff_due(module_index i, std::uint32_t attempt, time_point now);

  // scheduler_remote.cpp: remote workers and placement
  void setup_groups();
  void pump_distributed(time_point now);
  struct target {
    bool local = false;
    worker_number remote = no_worker;
    bool found() const noexcept { return local || remote != no_worker; }
  };
  target find_target(module_index i) const;
  bool group_fits(const placement_group& g, const std::vector<std::string>& labels) const;
  bool group_has_capable_worker(const placement_group& g) const;
  void send(module_index i, const target& t, time_point now);
  void dispatch_remote(module_index i, worker_number w, time_point now);
  void update_free(worker_number w, std::size_t free_before);
  std::size_t free_slots(worker_number w) const;
  void give_back(module_index i, std::uint32_t attempt, worker_number w, std::string why,
                 time_point now, bool blames_attempt = true);
  // Attempts of module i that do not count as retries: those that ended with their worker.
  std::uint32_t uncounted_attempts(module_index i) const noexcept {
    return std::uint32_t{state_[i].losses} + state_[i].link_failures;
  }
  void drain(worker_number w, std::string reason, time_point now);
  void check_capability_clocks(time_point now);
  void capability_due(std::uint32_t group, time_point now);
  void cancel_remote_attempts(time_point now);
  void cancel_grace_due(time_point now);
  void overdue_due(module_index i, std::uint32_t attempt, worker_number w, time_point now);
  remote_entry& remote(worker_number w) { return remotes_[w - local_workers_]; }
  const remote_entry& remote(worker_number w) const { return remotes_[w - local_workers_]; }

  const plan& plan_;
  core_settings settings_;
  worker_number local_workers_ = 0;

  // per module
  std::vector<module_state> state_;
  std::vector<std::uint32_t> pending_;  // dependencies not yet terminal (or not yet released)
  std::vector<worker_number> worker_;
  std::vector<std::uint32_t> times_;       // [2i]: first start, [2i+1]: end; ms since start
  std::vector<std::uint32_t> outcome_of_;  // index into outcomes_, or none
  std::vector<outcome_slot> outcomes_;

  ready_queue ready_;
  constraint_gate gate_;
  std::deque<module_index> startable_;  // passed the gate, hold what they need: go out first
  std::vector<module_index> gate_started_;
  std::vector<module_index> worklist_;  // dependencies just became all terminal, FIFO
  std::size_t worklist_head_ = 0;
  std::vector<action> actions_;
  std::size_t action_head_ = 0;
  timer_queue timers_;
  time_point armed_at_ = time_point::max();
  std::mt19937_64 rng_;

  std::size_t remaining_ = 0;
  std::size_t local_in_flight_ = 0;
  std::size_t backing_off_ = 0;
  std::size_t awaiting_records_ = 0;
  module_index fail_fast_cause_ = no_module;
  stop_mode stop_ = stop_mode::none;
  bool deadline_passed_ = false;
  bool started_ = false;
  bool settling_ = false;
  bool finished_ = false;
  time_point start_time_{};
  std::size_t from_journal_ = 0, from_cache_ = 0;

  std::vector<std::string> worker_names_;
  // remote workers, numbered from local_workers_
  std::vector<remote_entry> remotes_;
  std::vector<placement_group> groups_;
  std::vector<std::uint32_t> group_of_;  // per module, when settings_.remote
  std::vector<worker_number> free_remotes_;
  std::size_t remote_in_flight_ = 0;
  std::size_t remote_free_slots_ = 0;
  std::size_t live_remotes_ = 0;
  time_point cancel_grace_from_{};
  remote_stats remote_stats_;
};

}  // namespace drover::detail
