#pragma once
// The I/O around one run's scheduler_core: in-process workers on Asio, the remote workers of a
// worker_hub, the timer, the journal and the cache, events and the report. It decides nothing:
// every decision is the core's; the driver feeds it what happened and carries out its actions.
//
// Threads. The core, and every member marked [run strand], live on strand_. Without a worker
// pool every worker loop runs on strand_ too: a worker then reports inline and the ready
// channel needs no lock. With a pool each worker has a strand there and reports through the
// outbox, one post per batch; the channel is the concurrent one.

#include "attempt_control.hpp"
#include "fingerprint.hpp"

#include <drover/detail/attempt_scope.hpp>
#include <drover/detail/scheduler_core.hpp>
#include <drover/engine.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace drover::detail {

/// A dispatched attempt as it travels to a local worker: module in the low half, attempt in
/// the high half.
using ticket = std::uint64_t;
inline ticket make_ticket(module_index i, std::uint32_t attempt) noexcept {
  return (static_cast<ticket>(attempt) << 32) | i;
}

/// The ready channel: the unlocked Asio channel when every worker shares the run's strand, the
/// concurrent one when workers run on a pool.
class ready_channel {
 public:
  using signature = void(boost::system::error_code, ticket);
  ready_channel(const boost::asio::any_io_executor& executor, std::size_t capacity, bool locked);

  bool try_send(ticket t);
  /// True when it took something: a ticket, or (`closed` set) the end.
  bool try_receive(ticket& t, bool& closed);
  /// Waits for a ticket; nothing when the channel closed.
  boost::asio::awaitable<std::optional<ticket>> receive();
  void close();

 private:
  std::optional<boost::asio::experimental::channel<signature>> unlocked_;
  std::optional<boost::asio::experimental::concurrent_channel<signature>> locked_;
};

struct local_worker {
  local_worker(worker_number number, std::string name,
               boost::asio::strand<boost::asio::any_io_executor> strand)
      : number(number),
        name(std::move(name)),
        strand(std::move(strand)),
        executor(this->strand),
        grace_timer(this->strand),
        slot_timer(this->strand) {}

  const worker_number number;
  const std::string name;
  boost::asio::strand<boost::asio::any_io_executor> strand;
  const boost::asio::any_io_executor executor;  // the strand, as bodies see it
  // [worker strand]
  boost::asio::cancellation_signal signal;  // cancels the body (or attempt) being awaited
  boost::asio::steady_timer grace_timer;    // abandons a body that ignores cancellation
  module_index current = no_module;
  std::uint32_t current_attempt = 0;
  time_point current_started{};
  bool current_is_supervised = false;  // an attempt_control runs it and keeps its own grace
  bool cancel_sent = false;
  bool retired = false;  // its body was abandoned: it exits once the body returns
  // With run_options::shared_slots: the wait for a slot, and whether the worker holds one.
  boost::asio::steady_timer slot_timer;
  bool holds_slot = false;
  // [run strand, workers on strand_ only] dispatched to this worker while it reported
  std::optional<ticket> next;
};

/// What a pool worker reports to the run strand.
struct worker_report {
  enum class kind : std::uint8_t { started, ended, not_started, abandoned };
  kind what = kind::ended;
  worker_number worker = 0;
  module_index module = 0;
  std::uint32_t attempt = 0;
  time_point started{};
  time_point at{};
  attempt_outcome outcome;
};

/// What a run's report reads once the run is over: the plan (ids) and the core (statuses,
/// values, reasons, times), kept as they were, compact. Shared by the driver and the report.
struct run_tables final : result_source {
  std::optional<drover::plan> plan;
  std::optional<scheduler_core> core;
  wall_clock::time_point wall_start{};

  std::size_t size() const noexcept override { return plan ? plan->size() : 0; }
  module_result get(std::size_t i) const override;
};

class run_driver final : public std::enable_shared_from_this<run_driver>,
                         private dependency_results {
 public:
  using handler_type = boost::asio::any_completion_handler<void(run_report)>;

  run_driver(boost::asio::any_io_executor run_executor, boost::asio::any_io_executor worker_pool,
             pipeline p, run_options options, handler_type handler);
  /// For a plan: the run does not validate.
  run_driver(boost::asio::any_io_executor run_executor, boost::asio::any_io_executor worker_pool,
             plan p, run_options options, handler_type handler);
  ~run_driver();
  run_driver(const run_driver&) = delete;
  run_driver& operator=(const run_driver&) = delete;

  /// Starts the run on the strand.
  void start();

  // From the worker_hub, on the run strand.
  void on_remote_attach(worker_hub::worker_id id, std::shared_ptr<remote_worker> link,
                        std::string name, std::vector<std::string> capabilities,
                        std::uint32_t slots);
  void on_remote_detach(worker_hub::worker_id id, std::string reason, bool blames_attempts);
  void on_remote_complete(worker_hub::worker_id id, remote_completion completion);
  void on_remote_rejected(worker_hub::worker_id id, rejected_result rejected);
  void on_remote_drain(worker_hub::worker_id id, std::string reason);

 private:
  // run_driver.cpp: setup, the action loop, timer, journal and cache, events, the report
  void begin();
  core_settings make_settings();
  void process();
  void carry_out(const action& a);
  void arm_timer(time_point at);
  void check_reuse(module_index i);
  void record(module_index i);
  void request_durable();
  void on_durable(std::uint64_t seq);
  void forward_event(const core_event& e);
  void deliver_event(const core_event& e, event& out);
  void call_subscriber(const event& out);
  void fill_run_fields(event& out) const;
  void complete();
  void complete_invalid(std::vector<validation_problem> problems);
  void deliver(run_report report);
  run_report make_report();
  std::optional<entry> find(std::uint32_t module, std::string_view id) const override;
  std::vector<std::string_view> ids(std::uint32_t module) const override;

  // local_workers.cpp: worker loops and how they report
  void spawn_worker();
  boost::asio::awaitable<void> worker_loop(local_worker& w);
  boost::asio::awaitable<attempt_outcome> run_supervised(attempt_scope& scope,
                                                         std::chrono::milliseconds timeout);
  bool may_start(module_index i) const;
  void began(local_worker& w, module_index i, std::uint32_t attempt, time_point at);
  void not_started(local_worker& w, module_index i, std::uint32_t attempt);
  void ended(local_worker& w, module_index i, std::uint32_t attempt, time_point started,
             attempt_outcome& outcome, time_point at);
  void post_report(worker_report r);
  void handle(worker_report& r);
  void drain_outbox();
  void hand_out(ticket t);
  void cancel_local_attempts();
  void cancel_on_worker(local_worker& w, stop_mode mode);
  void on_worker_exit();
  void mirror_stop();

  // shared_slots.cpp: run_options::shared_slots
  boost::asio::awaitable<bool> take_shared_slot(local_worker& w, module_index i);
  void release_shared_slot(local_worker& w);
  void wake_slot_waiters();
  void publish_demand();

  // remote_bridge.cpp: the worker_hub's workers
  void bind_hub();
  void assign_remote(module_index i, std::uint32_t attempt, worker_number w);
  void cancel_remote(module_index i, std::uint32_t attempt, worker_number w);
  void reject_remote(module_index i, std::uint32_t attempt, worker_number w, rejection code,
                     std::uint64_t epoch);
  void release_remote(worker_number w);
  void drain_remote(worker_number w);
  module_index module_named(std::string_view id);

  // Immutable once the run has started. plan_ and core_ live in tables_, which the report
  // shares.
  std::shared_ptr<run_tables> tables_ = std::make_shared<run_tables>();
  drover::plan* plan_ = nullptr;
  pipeline unprepared_;  // until begin() prepares it, when not given a plan
  run_options options_;
  run_environment environment_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::any_io_executor worker_pool_;  // null: workers run on strand_
  std::size_t local_workers_ = 0;
  std::size_t capacity_ = 1;  // local attempts handed out at most (channel + running)
  std::chrono::system_clock::time_point wall_start_{};
  time_point steady_start_{};

  // [run strand]
  scheduler_core* core_ = nullptr;
  ready_channel channel_;
  std::deque<local_worker> workers_;
  local_worker* taking_for_ = nullptr;  // the worker reporting inline: it takes the next dispatch
  run_timer timer_;                     // virtual in a simulation (drover/clock.hpp)
  bool processing_ = false;
  bool finished_ = false;
  std::size_t live_workers_ = 0;  // worker loops the run waits for before delivering
  std::size_t abandoned_ = 0;
  std::optional<run_report> pending_report_;
  std::uint64_t next_seq_ = 0;
  event event_{};            // filled anew for each event but total and run (forward_event)
  bool delivering_ = false;  // the subscriber is being called with event_
  std::vector<std::string> notes_;
  /// What bodies add with module_context::note, from any thread; shared with the attempts,
  /// since an abandoned body may outlive the run.
  struct body_notes {
    std::mutex mutex;
    std::vector<std::string> lines;
  };
  std::shared_ptr<body_notes> body_notes_ = std::make_shared<body_notes>();
  handler_type handler_;
  boost::asio::any_completion_executor handler_work_;  // keeps the handler's executor busy

  // Read by pool workers: the core's stop mode, and a failure that will make fail_fast stop the
  // run before the strand has heard of it. Only ever raised.
  std::atomic<stop_mode> stop_mirror_{stop_mode::none};
  std::atomic<bool> fail_fast_pending_{false};

  // [run strand] journal and cache; fingerprints_ is set when either is.
  std::unique_ptr<fingerprinter> fingerprints_;
  struct durable_wait {
    std::uint64_t seq;
    module_index module;
  };
  std::deque<durable_wait> awaiting_durable_;
  bool durable_wait_requested_ = false;

  // run_options::shared_slots: this run's membership, the demand it last told the share, and
  // whether the run is over (waiting workers then give up).
  std::optional<slot_share::member_id> slot_member_;
  std::size_t published_demand_ = 0;
  std::atomic<bool> slots_closed_{false};

  // Pool workers report here; the strand drains the whole batch in one handler.
  std::mutex outbox_mutex_;
  std::vector<worker_report> outbox_;
  bool drain_posted_ = false;

  // [run strand] remote workers
  struct remote_link {
    worker_hub::worker_id id = 0;
    std::shared_ptr<remote_worker> link;
    std::unordered_set<module_index> sent;  // dependency results it has been sent
    bool alive = true;
  };
  std::shared_ptr<worker_hub> hub_;
  std::vector<remote_link> remotes_;  // by worker number - local_workers_
  std::unordered_map<worker_hub::worker_id, worker_number> remote_number_;
  std::uint64_t dependency_results_sent_ = 0;
  std::uint64_t transport_rejections_ = 0;  // results the transport refused (worker_hub::reject)
  std::unordered_map<std::string_view, module_index> module_ids_;  // made on first use
};

}  // namespace drover::detail
