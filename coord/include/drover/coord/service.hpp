#pragma once
// A long-running coordinator: takes pipeline submissions, queues them within bounds, runs
// several at once, and keeps each run's state, events and report where clients can ask for
// them. `drover serve` is this class behind the HTTP API of http_service.hpp.
//
//     boost::asio::io_context io;
//     drover::coord::service_options options;
//     options.parse = [](std::string_view text, const std::string& name) { ... };
//     options.state_dir = "/var/lib/drover";      // runs survive a restart
//     drover::coord::run_service service{io.get_executor(), std::move(options)};
//     service.start();                            // resumes what the state dir left unfinished
//     auto submitted = service.submit(text, "ci.json");
//     io.run();
//
// Every member function is thread-safe. Runs execute on the executor given to the
// constructor; a run's module bodies on in-process workers (service_options::workers).
//
// Back-pressure: at most max_queued_runs runs wait to start and at most max_waiting_modules
// modules of queued and running runs are not finished. A submission past either bound is
// refused with submit_error::queue_full; what was accepted is never dropped.

#include <drover/journal.hpp>
#include <drover/pipeline.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace drover::coord {

/// A pipeline read from submitted text, or why it could not be.
struct parsed_pipeline {
  std::optional<drover::pipeline> pipeline;
  /// One problem per line, each naming where (`ci.json:12:7: ...`), when `pipeline` is empty.
  std::string problems;
};

/// Reads a submitted pipeline file's text; `name` is the file name the client gave.
using pipeline_parser =
    std::function<parsed_pipeline(std::string_view text, const std::string& name)>;

struct service_options {
  pipeline_parser parse;  ///< required
  /// In-process worker slots, shared by the running runs by demand (drover/slot_share.hpp):
  /// together they never run more than `workers` attempts, and a run alone may use them all.
  /// 0 (only with worker_address): runs use remote workers only.
  std::size_t workers = 2;
  std::vector<std::string> capabilities;  ///< labels of the in-process workers
  std::size_t max_running_runs = 4;       ///< runs executing at once; the rest wait
  std::size_t max_queued_runs = 100;      ///< runs waiting to start
  /// Modules of queued and running runs that have not finished, across runs.
  std::size_t max_waiting_modules = 100'000;
  /// Every run's pipeline, journal, logs and report live under `<state_dir>/runs/<id>`. A
  /// restarted service finds the runs that did not finish there and resumes them from their
  /// journals. Empty: runs live in memory only and their logs under `workspace`.
  std::filesystem::path state_dir;
  std::filesystem::path workspace;  ///< where modules read inputs and write outputs
  durability journal_durability = durability::fsync;
  std::chrono::milliseconds cancel_grace{5000};  ///< run_options::cancel_grace
  std::size_t events_kept_per_run = 100'000;     ///< older events are dropped from memory
  /// Finished runs kept in memory (and listed); the oldest are forgotten first. Their files
  /// stay in the state directory.
  std::size_t finished_runs_kept = 1000;
  /// Remote workers (`drover worker --connect`) attach at this address and port when set
  /// (port 0: an ephemeral one, see run_service::worker_endpoint()). Anything but loopback
  /// needs `worker_token`. The service moves them between runs (docs/service.md).
  std::optional<std::string> worker_address;
  std::uint16_t worker_port = 0;
  std::optional<std::string> worker_token;  ///< workers present it in hello
  /// Connections to the worker port from one IP address that may be waiting for their hello
  /// at once (besides 256 in all); more are closed at once. 0: no limit per address.
  std::size_t max_handshakes_per_address = 64;
  std::chrono::milliseconds heartbeat{1000};             ///< master_options::heartbeat_interval
  std::chrono::milliseconds lost_worker_timeout{5000};   ///< master_options::lost_worker_timeout
  std::chrono::milliseconds capability_timeout{30'000};  ///< worker_hub::settings
  /// Where the service reports what happened to runs, one line per call. Unset: silent.
  std::function<void(std::string_view)> log;
};

enum class submit_error : std::uint8_t {
  none,
  invalid,     ///< the pipeline has problems (message lists them)
  queue_full,  ///< max_queued_runs or max_waiting_modules reached: try again later
  stopping,    ///< the service is shutting down
};

struct submit_result {
  submit_error error = submit_error::none;
  std::string run;                      ///< the new run's id, when accepted
  std::string message;                  ///< why not, when refused
  std::chrono::seconds retry_after{0};  ///< for queue_full
};

/// Events of one run after a sequence number, for a Server-Sent Events stream.
struct event_batch {
  std::vector<std::string> events;  ///< JSON objects (drover::event_to_json), in order
  std::uint64_t first_seq = 0;      ///< the seq of events.front()
  bool skipped = false;             ///< events between `after` and first_seq were dropped
  bool finished = false;            ///< the run is over and this is its last batch
};

class run_service {
 public:
  run_service(boost::asio::any_io_executor executor, service_options options);
  ~run_service();
  run_service(const run_service&) = delete;
  run_service& operator=(const run_service&) = delete;

  /// Creates the state directory, opens the worker port (when asked for) and resumes the runs
  /// the directory holds that did not finish. Throws std::runtime_error naming the directory
  /// or address that cannot be used.
  void start();
  /// Cancels the running runs without marking them finished: a service started later on the
  /// same state directory resumes them. Refuses submissions from now on.
  void stop();

  submit_result submit(std::string text, std::string name);
  /// Cancels a queued or running run. False when there is no such run or it already finished.
  bool cancel(std::string_view run);
  /// Drains the remote worker named `worker`: it finishes its attempts, gets nothing new,
  /// and leaves (it does not come back). False when no connected worker has that name.
  bool drain_worker(std::string_view worker);
  /// Where remote workers connect; only with service_options::worker_address, after start().
  boost::asio::ip::tcp::endpoint worker_endpoint() const;

  /// {"runs": [summary...], "queue": {...}} in submission order.
  boost::json::object runs_json() const;
  /// A run's summary with its modules (id, deps, status, attempts, worker, reason) and, once
  /// finished, its report. Nothing when no such run is known.
  std::optional<boost::json::object> run_json(std::string_view run) const;
  /// {"workers": [...]}: the in-process worker pool with its load.
  boost::json::object workers_json() const;
  /// Up to `limit` events with seq > after (after == -1: from the first). Nothing when no
  /// such run is known.
  std::optional<event_batch> events_after(std::string_view run, std::int64_t after,
                                          std::size_t limit) const;
  /// The run's status, or nothing: queued, running, succeeded, failed, cancelled.
  std::optional<std::string> run_status(std::string_view run) const;
  /// Whether the service accepts submissions (started and not stopping).
  bool ready() const;
  /// The metrics in the Prometheus text exposition format (version 0.0.4).
  std::string metrics_text() const;

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace drover::coord
