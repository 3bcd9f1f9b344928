#pragma once
// Workers outside the run's process: the engine's side of remote execution.
//
// The engine decides what every worker runs; it knows nothing of sockets. A transport (coord/:
// TCP connections, or in-memory peers for simulation) implements remote_worker for each
// connected worker and reports to the run through a worker_hub:
//
//     auto hub = std::make_shared<drover::worker_hub>();
//     run_options options;
//     options.remote = hub;                       // this run dispatches to hub's workers too
//     coord_master.serve(hub);                    // the transport attaches workers as they join
//     engine.async_run(std::move(prepared), options, handler);
//
// Workers may attach before the run starts, while it runs, and after it finished (they are
// told at once that it is over). Every assignment carries (epoch, module, attempt); the run
// accepts exactly one completion per attempt and only from the worker it assigned it to.

#include <drover/status.hpp>

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace drover {

/// A dependency's outcome that a remote worker has not been sent yet in this run. A worker
/// keeps what it was sent for the rest of the run, so each result crosses once per worker.
struct dependency_result {
  std::string_view id;
  module_status status;
  const boost::json::value* value;  ///< null JSON unless the dependency succeeded
};

/// One attempt handed to a remote worker. Views are valid only during remote_worker::assign.
struct assignment {
  std::uint64_t epoch = 0;
  std::uint32_t module = 0;  ///< the run's index of the module: echo it in remote_completion
  std::string_view id;
  std::uint32_t attempt = 0;  ///< 1, 2, ... across retries and reassignments
  std::string_view kind;      ///< resolved by the worker's own module registry
  const boost::json::value* params = nullptr;
  std::optional<std::chrono::milliseconds> timeout;  ///< the worker enforces it
  std::vector<std::string_view> deps;                ///< ids whose results the module may read
  std::vector<dependency_result> new_results;        ///< those of deps not sent to it before
  std::string_view matrix_target;
  /// module_io::outputs: the worker promotes these from the attempt's work directory into its
  /// own workspace when the attempt succeeds.
  std::span<const std::string> outputs;
};

/// The run's handle on one remote worker. The run calls these on its strand; they must not
/// block (queue the message and return).
class remote_worker {
 public:
  virtual ~remote_worker() = default;
  virtual void assign(const assignment& a) = 0;
  /// Stop this attempt; the worker still reports it (as cancelled).
  virtual void cancel(std::uint32_t module, std::string_view id, std::uint32_t attempt,
                      std::string_view reason) = 0;
  /// A completion the run did not accept, or one the transport handed to worker_hub::reject().
  /// `code` is "unknown_module" (no module of the run has that id), "duplicate_result" (a
  /// repeat of a result already received for that attempt) or "stale_result" (any other
  /// mismatch: not the current attempt, never assigned to this worker, given up on).
  virtual void rejected(std::string_view id, std::uint32_t attempt, std::string_view code,
                        std::string_view reason) = 0;
  /// The run is over (or does not want this worker any more): say goodbye and close.
  virtual void run_finished(std::string_view reason) = 0;
  /// The run assigns this worker nothing more (worker_hub::drain(), or it gave an attempt
  /// back); the attempts it runs still count. Tell the worker to finish them and leave.
  /// Called after the last assign() to it.
  virtual void drain(std::string_view reason) { (void)reason; }
};

/// A result the transport refused before it reached the run (today: it names another run; a
/// repeat, a stale attempt or an unknown module is the run's own decision): the run counts it
/// in remote_stats::rejected_results and answers through remote_worker::rejected().
struct rejected_result {
  std::string module;  ///< the module id as the worker sent it
  std::uint32_t attempt = 0;
  /// "stale_result" as the transport chose it; empty: the run picks "unknown_module" when no
  /// module of the run has that id, else "stale_result" (and the reason).
  std::string code;
  std::string reason;  ///< for people
};

/// What a remote worker reports for one attempt.
struct remote_completion {
  /// module: not known to the transport; `id` names it.
  static constexpr std::uint32_t unknown_module = static_cast<std::uint32_t>(-1);
  std::uint32_t module = 0;  ///< as in the assignment, or unknown_module
  std::string id;            ///< the module id as the worker sent it, when module is unknown
  std::uint64_t epoch = 0;
  std::uint32_t attempt = 0;
  module_status status = module_status::failed;  ///< succeeded, failed, timed_out, cancelled
  boost::json::value value;                      ///< when succeeded
  std::string error;                             ///< when not
};

/// Counters a run keeps about its remote workers, for reports and tests.
struct remote_stats {
  std::uint64_t workers_attached = 0;
  std::uint64_t workers_lost = 0;
  std::uint64_t reassigned = 0;  ///< attempts moved off a lost worker, or given back by theirs
  /// Every result refused: by the run, or by the transport (worker_hub::reject()).
  std::uint64_t rejected_results = 0;
  std::uint64_t overdue = 0;  ///< attempts that ran past timeout + overdue_grace: timed_out
  std::uint64_t dependency_results_sent = 0;
};

namespace detail {
class run_driver;
}

/// Where remote workers meet a run. Thread-safe: the transport calls it from any thread and
/// the calls reach the run's strand in order. One hub serves one run.
class worker_hub : public std::enable_shared_from_this<worker_hub> {
 public:
  using worker_id = std::uint64_t;

  struct settings {
    std::uint64_t epoch = 1;  ///< stamped on every assignment; a resumed run uses a new one
    /// How long a module that only absent workers could run waits for one to join.
    std::chrono::milliseconds capability_timeout{std::chrono::seconds{30}};
    /// A module whose attempts were on this many lost workers (or were given back by their
    /// worker) fails as poison. At most 255: larger values act as 255.
    std::uint32_t max_worker_losses = 3;
    /// A remote attempt of a module with a timeout that has not reported this long after its
    /// timeout passed (its worker heartbeats but never answers) is cancelled on the worker and
    /// ends timed_out; the module's retries apply. The worker's slot stays taken until it
    /// answers. coord's master passes its lost_worker_timeout.
    std::chrono::milliseconds overdue_grace{std::chrono::seconds{5}};
  };

  worker_hub() = default;
  explicit worker_hub(settings s) : settings_(std::move(s)) {}

  const settings& config() const noexcept { return settings_; }

  /// A worker completed its handshake. `capabilities` are compared case-insensitively;
  /// `slots` (>= 1) is how many attempts it may run at once.
  worker_id attach(std::shared_ptr<remote_worker> worker, std::string name,
                   std::vector<std::string> capabilities, std::uint32_t slots);
  /// Why a worker is detached.
  enum class detach_cause {
    worker_lost,         ///< it went away: its connection closed, its heartbeats stopped
    master_link_failed,  ///< the master's own link to it failed (its connection to Redis)
  };
  /// The worker is gone: its attempts are reassigned, and none of them counts as a retry. A
  /// loss counts toward a module's max_worker_losses (poison) unless `cause` says the master's
  /// link failed: a Redis restart loses every worker at once and is no sign against a module.
  void detach(worker_id id, std::string reason, detach_cause cause = detach_cause::worker_lost);
  /// The worker reports an attempt.
  void complete(worker_id id, remote_completion completion);
  /// The worker reports several attempts, in this order: one hop to the run for all of them.
  void complete(worker_id id, std::vector<remote_completion> completions);
  /// The transport refused a result of this worker; the run counts it and answers it.
  void reject(worker_id id, rejected_result rejected);
  /// Assign this worker nothing more: its running attempts finish and count, and the run calls
  /// remote_worker::drain() on it. When it then leaves, only what it did not report is
  /// reassigned. Draining an unknown or detached worker does nothing.
  void drain(worker_id id, std::string reason);

  /// Whether the run this hub serves has finished.
  bool finished() const;
  /// Whether a run is bound to the hub and has not finished: a drain reaches a run then.
  bool bound() const;

  /// Called by the run: binds the hub to it and replays what arrived before. Internal.
  void bind(std::function<void(std::function<void(detail::run_driver&)>)> post_to_run);
  /// Called by the run when it is over: later attaches are told at once. Internal.
  void unbind();

 private:
  using call = std::function<void(detail::run_driver&)>;
  void deliver(call c);

  settings settings_;
  mutable std::mutex mutex_;
  worker_id next_id_ = 1;
  std::vector<call> early_;  // before the run bound the hub
  std::function<void(call)> post_;
  bool finished_ = false;
};

}  // namespace drover
