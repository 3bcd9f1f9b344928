#pragma once
// The state behind run_service: the runs it knows, its queue, its counters. Everything here is
// guarded by state::mutex. Nothing calls into the engine while holding it: the engine may
// call back (events, completions) inline, and those take the mutex too.

#include <drover/coord/master.hpp>
#include <drover/coord/service.hpp>
#include <drover/engine.hpp>

#include "connection_gate.hpp"

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace drover::coord {

// The service's own types live apart: drover::coord has other headers whose names (such as
// running_attempt) must never meet these in one program.
namespace service_detail {

/// Where one module of a run stands, as the service shows it.
enum class module_phase : std::uint8_t { pending, ready, running, finished };

struct module_view {
  std::string id;
  std::vector<std::uint32_t> deps;
  std::vector<std::string> labels;  ///< capabilities it requires, lower case
  module_phase phase = module_phase::pending;
  module_status status = module_status::pending;  ///< once finished
  std::uint32_t attempts = 0;
  std::string worker;
  std::string reason;
  std::chrono::steady_clock::time_point ready_at{};
};

/// A fixed-bucket Prometheus histogram of seconds.
struct histogram {
  explicit histogram(std::vector<double> bounds) : bounds(std::move(bounds)) {
    counts.assign(this->bounds.size(), 0);
  }
  void observe(double seconds);
  std::vector<double> bounds;
  std::vector<std::uint64_t> counts;  ///< per bound, not cumulative
  std::uint64_t count = 0;
  double sum = 0;
};

struct service_run {
  std::string id;
  std::string name;
  std::string text;              ///< the submitted pipeline file
  std::string phase = "queued";  ///< queued, running, succeeded, failed, cancelled
  wall_clock::time_point submitted_at{}, started_at{}, finished_at{};
  std::optional<plan> prepared;  ///< until it starts
  bool resume = false;           ///< found unfinished in the state directory
  std::filesystem::path dir;     ///< its files; empty without a state directory
  std::vector<module_view> modules;
  std::size_t unfinished = 0;  ///< modules not finished, counted in waiting_modules
  std::deque<std::string> events;
  std::uint64_t first_seq = 0;  ///< seq of events.front()
  std::uint64_t next_seq = 0;
  std::uint64_t persisted = 0;  ///< events already in the events file when it was found
  std::uint64_t seq_base = 0;   ///< the stream's seq of the engine's seq 0 in this life
  std::optional<boost::json::object> report;
  /// With a state directory: every event, one JSON line each, as `drover run --events` writes
  /// them (appended to by a resumed run). Open while the run runs.
  std::unique_ptr<std::ofstream> events_file;
  boost::asio::cancellation_signal cancel;
  bool cancel_requested = false;
  // Remote workers, with a worker port: the run's own master, to which the service hands the
  // connections it routes to the run.
  std::shared_ptr<worker_hub> hub;
  std::shared_ptr<master> remote;
  std::size_t arriving = 0;      ///< connections routed here since the last rebalance
  std::set<std::string> moving;  ///< workers drained to go to another run

  bool finished() const { return phase != "queued" && phase != "running"; }
};

/// One attempt running on an in-process worker, for /api/workers.
struct busy_slot {
  std::string run;
  std::string module;
  std::uint32_t attempt = 0;
  std::string worker;
};

}  // namespace service_detail

using namespace service_detail;

// Connections to the worker port that may be waiting for their hello at once, in all.
constexpr std::size_t max_greeting = 256;

struct run_service::state : std::enable_shared_from_this<run_service::state> {
  state(boost::asio::any_io_executor ex, service_options o)
      : executor(std::move(ex)),
        options(std::move(o)),
        engine(executor),
        worker_acceptor(executor),
        greeting({0, options.max_handshakes_per_address, max_greeting}),
        rebalance_timer(executor) {}

  boost::asio::any_io_executor executor;
  service_options options;
  drover::engine engine;
  std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();

  // The worker port (service_workers.cpp): workers no run needs wait at the idle master.
  boost::asio::ip::tcp::acceptor worker_acceptor;
  std::shared_ptr<master> idle;
  std::size_t idle_routed = 0;  ///< connections routed to `idle` since it was made
  /// Connections whose hello is being read, per IP address (options.max_handshakes_per_address)
  /// and in all (max_greeting); guarded by `mutex`.
  detail::connection_gate greeting;
  boost::asio::steady_timer rebalance_timer;

  mutable std::mutex mutex;
  bool started = false;
  bool stopping = false;
  std::map<std::string, std::shared_ptr<service_run>, std::less<>> runs;
  std::vector<std::shared_ptr<service_run>> order;  ///< submission order
  std::deque<std::shared_ptr<service_run>> queue;
  std::size_t running = 0;
  std::size_t waiting_modules = 0;  ///< unfinished modules of queued and running runs
  std::size_t ready_modules = 0;    ///< ready and not started, across runs
  std::vector<busy_slot> attempts;
  double busy_slot_seconds = 0;  ///< integral of in-process attempts over time
  std::chrono::steady_clock::time_point busy_since = created;

  // Counters for /metrics.
  std::uint64_t runs_submitted = 0;
  std::map<std::string, std::uint64_t, std::less<>> runs_finished;        ///< by status
  std::map<std::string, std::uint64_t, std::less<>> submissions_refused;  ///< by reason
  std::array<std::uint64_t, module_status_count> modules_finished{};
  std::uint64_t attempts_started = 0;
  std::uint64_t retries = 0;
  std::uint64_t stale_results = 0;
  std::uint64_t worker_losses = 0;
  histogram assignment_latency{{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60}};
  histogram run_duration{{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}};

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }
  bool remote_workers() const { return options.worker_address.has_value(); }
  /// The in-process slots every run shares by demand; null with options.workers == 0.
  std::shared_ptr<drover::slot_share> local_slots;
  /// Adds the busy time since the last change of attempts.size().
  void account_busy(std::chrono::steady_clock::time_point now);
};

namespace service_detail {

/// Files of the state directory (service_store.cpp).
namespace store {
/// Writes the run's pipeline and metadata under its directory. Throws std::runtime_error.
void save_submission(const service_run& run);
void save_report(const service_run& run);
/// Every run directory under `<state_dir>/runs`, oldest submission first.
/// Each run's events file is read back: its last `kept_events` events are in memory again.
std::vector<std::shared_ptr<service_run>> load_runs(const std::filesystem::path& state_dir,
                                                    std::size_t kept_events,
                                                    const std::function<void(std::string)>& log);
}  // namespace store

/// Remote workers (service_workers.cpp).
/// Binds the worker port and starts accepting. Throws std::runtime_error naming the address.
void open_worker_port(const std::shared_ptr<run_service::state>& s);
/// Gives the run a master of its own and points run_options::remote at its hub.
void attach_remote(run_service::state& s, service_run& run, run_options& options);
/// Stops the run's master: its workers are told the run finished and connect again.
void detach_remote(service_run& run);
/// Stops the worker port and the idle master.
void close_worker_port(run_service::state& s);
/// The remote workers, for /api/workers; under the mutex.
void list_remote_workers(const run_service::state& s, boost::json::array& out);
/// Connected remote workers and their slots; under the mutex.
std::pair<std::size_t, std::size_t> remote_worker_count(const run_service::state& s);

/// The summary of a run as /api/runs lists it.
boost::json::object run_summary(const service_run& run);
std::string_view phase_name(const module_view& m);

}  // namespace service_detail
}  // namespace drover::coord
