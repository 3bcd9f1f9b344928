#pragma once
// The state of one run and the coroutines that drive it. Internal to the engine.
//
// Ownership: everything marked [run strand] is touched only on strand_. A module that has been
// handed to a worker through the ready channel belongs to that worker until its completion is
// posted back: the worker writes its result slot's attempt fields, nothing else does. Fields
// of a worker marked [worker strand] are touched only on that worker's strand, which is
// strand_ itself unless the engine has a worker pool.

#include "constraint_gate.hpp"
#include "fingerprint.hpp"
#include "ready_queue.hpp"

#include <drover/engine.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <unordered_map>
#include <unordered_set>

namespace drover::detail {

using index = std::uint32_t;
inline constexpr index no_module = static_cast<index>(-1);

/// What a timed attempt (run_timed) produced. The worker then stores value and error in the
/// module's result slot, which it owns while the module is dispatched, and reports only the
/// status.
struct attempt_outcome {
  module_status status = module_status::failed;
  boost::json::value value;
  std::string error;
};

/// A message from a worker to the run strand: handled inline when the worker runs on the run
/// strand, queued in the outbox when it runs on a pool.
struct worker_report {
  enum class kind : std::uint8_t { started, finished, not_started };
  kind what;
  module_status status;
  std::uint32_t worker;
  index module;
  std::uint32_t attempt;
};

/// Which running modules a cancellation applies to. Read by workers without the strand, so
/// atomic; only ever raised.
enum class stop_mode : std::uint8_t {
  none,
  unless_always_run,  ///< fail_fast: cancel everything but always_run modules
  everything,         ///< the caller cancelled the run
};

struct worker {
  worker(std::uint32_t index, boost::asio::strand<boost::asio::any_io_executor> strand)
      : index(index),
        name("local-" + std::to_string(index)),
        strand(std::move(strand)),
        grace_timer(this->strand) {}

  const std::uint32_t index;
  const std::string name;
  boost::asio::strand<boost::asio::any_io_executor> strand;
  // [worker strand]
  boost::asio::cancellation_signal signal;  // cancels the body the worker is awaiting
  boost::asio::steady_timer grace_timer;    // abandons a body that ignores cancellation
  detail::index current = no_module;
  std::uint32_t current_attempt = 0;
  bool current_is_timed = false;
  bool cancel_sent = false;
  bool retired = false;  // its body was abandoned: exit once it returns
};

struct run_state : std::enable_shared_from_this<run_state> {
  using channel_type =
      boost::asio::experimental::concurrent_channel<void(boost::system::error_code, index)>;
  using handler_type = boost::asio::any_completion_handler<void(run_report)>;

  run_state(boost::asio::any_io_executor run_executor, boost::asio::any_io_executor worker_executor,
            pipeline p, run_options options, handler_type handler);
  /// For a prepared pipeline: `g` is its graph, so the run does not validate.
  run_state(boost::asio::any_io_executor run_executor, boost::asio::any_io_executor worker_executor,
            pipeline p, drover::graph g, run_options options, handler_type handler);

  /// Entry point: validates and starts the run on the strand.
  void start();

  // Remote workers, through worker_hub; on the run strand.
  void on_remote_attach(worker_hub::worker_id id, std::shared_ptr<remote_worker> link,
                        std::string name, std::vector<std::string> capabilities,
                        std::uint32_t slots);
  void on_remote_detach(worker_hub::worker_id id, std::string reason);
  void on_remote_complete(worker_hub::worker_id id, remote_completion completion);
  void on_remote_rejected(worker_hub::worker_id id, rejected_result rejected);
  void on_remote_drain(worker_hub::worker_id id, std::string reason);

  // Immutable once the run has started.
  pipeline pipeline_;
  run_options options_;
  std::filesystem::path workspace_;  // options_.workspace made absolute (work_dir.hpp)
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::any_io_executor worker_pool_;  // null: workers run on strand_
  drover::graph graph_;
  bool prepared_ = false;  // graph_ came with the pipeline: no validation at begin()
  std::size_t channel_capacity_;
  std::size_t handoff_limit_ = 0;          // modules in flight pump allows; see begin()
  std::vector<std::string> capabilities_;  // the local workers' labels, lower case

  // [run strand] per module, indexed like pipeline_.modules
  std::vector<std::uint32_t> pending_deps_;
  std::vector<index> blocker_;          // first dependency that did not succeed
  std::vector<module_result> results_;  // see the ownership note above

  // [run strand]
  ready_queue ready_;
  constraint_gate gate_;
  std::deque<index> startable_;      // passed the gate and hold what they need; go out first
  std::vector<index> gate_started_;  // scratch for gate_.release
  std::size_t in_flight_ = 0;        // handed to the channel and not yet reported back
  std::vector<index> worklist_;      // modules whose dependencies just became all terminal
  channel_type channel_;
  std::deque<worker> workers_;
  std::vector<std::string> worker_names_;  // copies of workers_[i].name for events
  std::unordered_map<index, std::unique_ptr<boost::asio::steady_timer>> backoff_timers_;
  std::size_t remaining_ = 0;
  std::size_t abandoned_ = 0;
  std::size_t live_workers_ = 0;  // worker loops the run waits for before delivering
  std::optional<run_report> pending_report_;
  index fail_fast_cause_ = no_module;
  std::uint64_t next_seq_ = 0;
  std::mt19937_64 rng_;
  wall_clock::time_point started_at_{};
  bool finished_ = false;
  handler_type handler_;
  boost::asio::any_completion_executor handler_work_;  // keeps the handler's executor busy

  std::atomic<stop_mode> stop_{stop_mode::none};
  /// Raised by a worker whose module's failure will trigger fail_fast, before the strand knows.
  std::atomic<bool> fail_fast_pending_{false};

  // [run strand] remote workers; empty without a hub.
  struct remote_entry {
    worker_hub::worker_id id = 0;
    std::shared_ptr<remote_worker> link;
    std::uint32_t number = 0;               // index into worker_names_
    std::vector<std::string> capabilities;  // lower case
    std::uint32_t slots = 1;
    bool alive = true;
    // Gets nothing more (drained, or it gave an attempt back); its free slots and itself are
    // out of remote_free_slots_ and live_remotes_.
    bool draining = false;
    std::vector<std::pair<index, std::uint32_t>> running;  // (module, attempt)
    // Attempts that ran past their deadline: already ended timed_out, each still holding a
    // slot until the worker answers (its answer is then ignored).
    std::vector<std::pair<index, std::uint32_t>> overdue;
    std::unordered_set<index> sent;  // dependency results it has been sent
    std::size_t free_position = static_cast<std::size_t>(-1);  // in free_remotes_, if free
  };
  static constexpr std::size_t no_position = static_cast<std::size_t>(-1);
  // Modules waiting for a worker that can run them, grouped by what they require.
  struct placement_group {
    bool pin_local = false;
    std::vector<std::string> capabilities;  // lower case, sorted
    std::deque<index> waiting;
    std::unique_ptr<boost::asio::steady_timer> capability_timer;
  };
  std::shared_ptr<worker_hub> hub_;
  std::vector<remote_entry> remotes_;
  std::unordered_map<worker_hub::worker_id, std::size_t> remote_of_;
  std::vector<placement_group> groups_;
  std::vector<std::uint32_t> group_of_;  // per module, when hub_
  std::vector<std::uint8_t> losses_;     // per module, when hub_: attempts lost with a worker
  std::size_t remote_in_flight_ = 0;
  std::size_t remote_free_slots_ = 0;      // over live remote workers
  std::vector<std::size_t> free_remotes_;  // live remote workers with a free slot
  std::size_t live_remotes_ = 0;           // attached, not detached, not draining
  // Module ids to indices, built when a result for an id never assigned to its worker needs
  // to know whether the run has that module.
  std::unordered_map<std::string_view, index> module_ids_;
  std::size_t local_workers_ = 0;
  remote_stats remote_stats_;
  std::unique_ptr<boost::asio::steady_timer> remote_cancel_timer_;
  // Deadlines of remote attempts with a timeout (timeout + overdue_grace), earliest first;
  // entries whose attempt already ended are dropped when they come up.
  struct remote_deadline {
    std::chrono::steady_clock::time_point at;
    index module;
    std::uint32_t attempt;
    std::size_t remote;
    bool operator>(const remote_deadline& other) const noexcept { return at > other.at; }
  };
  std::priority_queue<remote_deadline, std::vector<remote_deadline>, std::greater<>>
      remote_deadlines_;
  std::unique_ptr<boost::asio::steady_timer> overdue_timer_;
  std::chrono::steady_clock::time_point overdue_timer_at_ =
      std::chrono::steady_clock::time_point::max();

  // [run strand] journal and cache; fingerprints_ is set when either is.
  std::unique_ptr<fingerprinter> fingerprints_;
  // Finished modules whose dependents wait until their journal record is durable, in
  // the order of their records.
  struct durable_wait {
    std::uint64_t seq;
    index module;
  };
  std::deque<durable_wait> awaiting_durable_;
  bool durable_wait_requested_ = false;
  std::vector<std::string> notes_;  // for run_report::notes
  std::size_t from_journal_ = 0, from_cache_ = 0;

  // Workers report here and the strand drains the whole batch in one handler: one post per
  // batch instead of one per module. Guarded by outbox_mutex_.
  std::mutex outbox_mutex_;
  std::vector<worker_report> outbox_;
  bool drain_posted_ = false;

 private:
  void begin();
  void spawn_worker();
  boost::asio::awaitable<void> worker_loop(worker& w);
  boost::asio::awaitable<attempt_outcome> run_timed(worker& w, index i, std::uint32_t attempt,
                                                    std::chrono::milliseconds timeout);

  void pump();
  ready_queue::key_type ready_key(index i) const;
  void push_ready(index i) { ready_.push(ready_key(i), i); }
  void release_constraints(index i);
  std::optional<std::string> missing_capabilities(index i) const;
  void fail_stuck_waiters();
  void setup_remote();
  void bind_hub();
  void pump_distributed();
  enum class target_kind : std::uint8_t { none, local, remote };
  struct target {
    target_kind kind = target_kind::none;
    std::size_t remote = 0;
  };
  target find_target(index i) const;
  bool group_fits(const placement_group& g, const std::vector<std::string>& capabilities) const;
  bool group_has_capable_worker(const placement_group& g) const;
  void send(index i, const target& t);
  void send_remote(index i, remote_entry& r);
  void check_capability_timers();
  void update_free(std::size_t remote);
  void cancel_remote_attempts();
  void drain_remote(remote_entry& r, std::string_view reason);
  void reassign_lost(index i, std::uint32_t attempt, const std::string& why);
  bool has_module(std::string_view id);
  void watch_remote_deadline(index i, std::uint32_t attempt, std::size_t remote,
                             std::chrono::milliseconds timeout);
  void arm_overdue_timer(std::chrono::steady_clock::time_point at);
  void end_overdue_remote_attempts();
  std::uint32_t counted_attempt(index i, std::uint32_t attempt) const {
    return losses_.empty() ? attempt : attempt - losses_[i];
  }
  void became_ready(index i);
  bool reuse_earlier_result(index i);
  bool cacheable(index i) const;
  void finish(index i, module_status status, std::string reason);
  bool record_terminal(index i);
  // The files module i's last attempt promoted into the workspace (workspace-relative).
  std::vector<std::string> promoted_outputs(index i) const;
  void release_dependents(index i);
  void request_durable();
  void on_durable(std::uint64_t seq);
  void settle();
  void report_to_strand(const worker_report& report);
  void drain_outbox();
  void handle(const worker_report& report);
  void on_attempt_done(index i, std::uint32_t attempt, module_status status);
  void on_not_started(index i);
  void on_abandoned(std::uint32_t worker, index i, std::uint32_t attempt);
  void schedule_retry(index i, std::uint32_t attempt, const std::string& error);
  void stop(stop_mode mode);
  void cancel_on_worker(worker& w, stop_mode mode);
  void complete();
  void complete_invalid(std::vector<validation_problem> problems);
  void deliver(run_report report);
  void on_worker_exit();

  std::string stop_reason() const;
  bool stop_applies(index i) const;
  std::optional<std::chrono::milliseconds> timeout_of(index i) const;
  bool ends_in_fail_fast(index i, std::uint32_t attempt, module_status status) const;

  bool is_done(index i) const noexcept { return results_[i].status != module_status::pending; }
  void emit(event_type type, index i = no_module, std::uint32_t attempt = 0,
            std::int32_t worker = -1, module_status status = module_status::pending,
            std::string_view message = {}, std::chrono::milliseconds delay = {});
};

}  // namespace drover::detail
