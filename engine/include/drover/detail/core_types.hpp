#pragma once
// The vocabulary of the sans-I/O scheduler (scheduler_core.hpp): time, attempt outcomes, the
// actions the core asks its driver to carry out, and the events it reports.

#include <drover/clock.hpp>
#include <drover/event.hpp>
#include <drover/status.hpp>

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace drover::detail {

using module_index = std::uint32_t;
inline constexpr module_index no_module = std::numeric_limits<module_index>::max();

/// A worker as the core numbers them: local workers first (0 .. local_workers - 1), then
/// remote workers in the order they attached. The same numbers index run_report::workers.
using worker_number = std::uint32_t;
inline constexpr worker_number no_worker = std::numeric_limits<worker_number>::max();

/// The core's clock. Drivers pass the current time with every input; the core never reads a
/// clock. A simulation passes virtual time.
using core_clock = run_clock;
using time_point = core_clock::time_point;

/// How one attempt ended, as the worker that ran it reports it.
struct attempt_outcome {
  module_status status = module_status::failed;  ///< succeeded, failed, timed_out, cancelled
  boost::json::value value;                      ///< when succeeded
  std::string error;                             ///< when not
};

/// Which running attempts a stop covers. Only ever raised during a run.
enum class stop_mode : std::uint8_t {
  none,
  unless_always_run,  ///< fail_fast: everything but always_run modules
  everything,         ///< the caller cancelled the run, or its deadline passed
};

/// Why a remote completion was not accepted, in the order the core checks.
enum class rejection : std::uint8_t {
  unknown_module,  ///< no module of the run has that id
  other_epoch,     ///< it names another epoch
  given_up,        ///< the core gave up on the attempt (overdue) before it answered
  unconfirmed,     ///< the core gave up waiting for the attempt to confirm its cancellation
  duplicate,       ///< the result of the current attempt, from its worker, arrived already
  not_running,     ///< any other: not an attempt this worker runs now
};

/// The wire code of docs/protocol.md: unknown_module, duplicate_result or stale_result.
std::string_view to_string(rejection r) noexcept;

/// What the core asks its driver to do. The driver takes actions with
/// scheduler_core::next_action and carries each out; some are answered by an input.
struct action {
  enum class kind : std::uint8_t {
    /// Run attempt `attempt` of `module` on `worker`: a local worker (any of them; the driver
    /// hands it to whichever is free) or the remote worker numbered `worker`.
    dispatch,
    /// Stop attempt `attempt` of `module` on `worker`; the worker still reports how it ended.
    cancel,
    /// Tell remote `worker` its completion for `module` (`attempt`) was not accepted (`code`).
    reject,
    /// Look `module` up in the journal and the cache; answer with reuse_checked.
    check_reuse,
    /// `module` reached its terminal state: journal it, store it in the cache. When the core
    /// was set to wait for records, answer with recorded once it is durable.
    record,
    /// Call timer_fired at `at` (or later); replaces any earlier arm_timer.
    arm_timer,
    /// Remote `worker` is drained: it gets nothing more, its running attempts still count.
    /// Tell it to finish them and leave (scheduler_core::drain_reason says why).
    drain_worker,
    /// Remote `worker` will get nothing more: say goodbye ("run finished") and close.
    release_worker,
    /// The run is over: every module is terminal. The last action of a run.
    complete,
  };
  kind what = kind::complete;
  module_index module = no_module;
  std::uint32_t attempt = 0;
  worker_number worker = no_worker;
  bool local = false;                       ///< dispatch, cancel: to the local workers
  rejection code = rejection::not_running;  ///< reject
  std::uint64_t epoch = 0;                  ///< reject: the epoch the completion named
  time_point at{};                          ///< arm_timer
};

/// One event, as the core reports it to its event sink; the driver adds the wall-clock time,
/// sequence number and names. `message` is valid only during the call.
struct core_event {
  event_type type = event_type::run_started;
  module_index module = no_module;
  std::uint32_t attempt = 0;
  worker_number worker = no_worker;
  module_status status = module_status::pending;
  std::string_view message;
  std::chrono::milliseconds delay{0};
  time_point at{};
};

}  // namespace drover::detail
