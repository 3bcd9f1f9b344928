#pragma once
// The worker side of remote execution: connect to a master (`drover run FILE --listen ...`),
// run the attempts it assigns, report their results, and reconnect when the connection drops.
// docs/protocol.md is the protocol this speaks; `drover worker` is this class plus a command
// line.
//
//     boost::asio::io_context io;
//     drover::modules::registry kinds = drover::modules::builtin_registry();
//
//     drover::coord::worker_options options;
//     options.host = "127.0.0.1";
//     options.port = 7700;
//     options.slots = 4;
//     options.capabilities = {"docker"};  // the OS label ("linux", ...) is always added
//
//     drover::coord::worker_client worker{
//         io.get_executor(), options,
//         [&kinds](std::string_view kind, const boost::json::value& params) -> drover::module_body
//         {
//           if (!kinds.contains(kind)) return {};  // empty body: unknown kind
//           return kinds.make(kind, params);       // throws for bad params
//         }};
//     worker.async_run([](drover::coord::worker_outcome outcome) {
//       // outcome.how: run_over, drained, gave_up, refused or stopped; outcome.reason says why
//     });
//     io.run();
//
// Each assignment runs as one attempt on a drover::attempt_runner (the engine's rules for an
// attempt, without a run per assignment), so a body sees the same module_context as in a local
// run: ctx.params(), ctx.result("dep") and ctx.status_of(dep) (the results the master sent),
// ctx.matrix_target(), ctx.log_dir(), ctx.workspace() and ctx.work_dir() all work.
// ctx.worker() is worker_options::worker_id.

#include <drover/coord/byte_stream.hpp>
#include <drover/coord/protocol.hpp>
#include <drover/module.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

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

/// Turns a module kind and its params into a body, on the worker. Returns an empty body when
/// the worker does not know the kind (the attempt fails with "unknown module kind 'x' on worker
/// NAME"); throws (any std::exception) when the params are wrong (the attempt fails with the
/// exception's message). Called on the worker's strand.
using kind_resolver =
    std::function<module_body(std::string_view kind, const boost::json::value& params)>;

/// Delays between connection attempts: initial, then times multiplier up to max, each scaled
/// by a random factor in [1 - jitter, 1 + jitter]. Back to initial after a handshake succeeded.
struct reconnect_policy {
  std::chrono::milliseconds initial{100};
  double multiplier = 2.0;
  std::chrono::milliseconds max{5000};
  double jitter = 0.2;
};

/// What a worker_client connects to and how it behaves.
struct worker_options {
  std::string host;        ///< the master's host name or address ("127.0.0.1", "::1", "ci-7")
  std::uint16_t port = 0;  ///< the master's port
  /// Opens the connection some other way than TCP to host:port, e.g. a pipe over Redis
  /// (redis_dialer in redis_join.hpp). Throws (any std::exception) when it cannot: that counts
  /// as a failed connection attempt. Bounded by connect_timeout like a TCP connection.
  std::function<boost::asio::awaitable<byte_stream>()> dial;
  std::string dial_name;  ///< names what dial reaches, in logs ("redis://HOST:PORT/DB run KEY")
  /// Attempts run at once (hello.slots, >= 1). An assign beyond them is failed, not queued.
  std::uint32_t slots = 1;
  /// Labels offered to the master besides the OS label (local_os_label()), which is always
  /// sent first.
  std::vector<std::string> capabilities;
  std::optional<std::string> token;  ///< the master's shared secret; never logged
  std::string worker_id;             ///< the name asked for; empty: default_worker_id()
  reconnect_policy reconnect;
  /// Without a completed handshake for this long (since the start, or since the last
  /// connection that had one ended), the worker stops trying: outcome gave_up.
  std::chrono::milliseconds give_up_after{60000};
  /// Longest wait for one TCP connection (name resolution included).
  std::chrono::milliseconds connect_timeout{10000};
  /// Longest wait for welcome after hello; then the connection counts as failed.
  std::chrono::milliseconds handshake_timeout = coord::handshake_timeout;
  /// Line limits until the welcome; then welcome.max_line_bytes applies both ways.
  coord::limits limits;
  std::filesystem::path log_dir;  ///< module_context::log_dir() (exec logs); empty: none
  /// Where attempts' work directories are made and their declared outputs land (the engine's
  /// run_options::workspace); empty: the current directory.
  std::filesystem::path workspace;
  bool keep_workdirs = false;  ///< run_options::keep_workdirs
  /// How long a cancelled body may take to stop before the worker abandons it (the engine's
  /// run_options::cancel_grace). Keep it above exec's kill_grace_ms (2 s by default).
  std::chrono::milliseconds cancel_grace{5000};
  std::uint64_t seed = 0;  ///< seeds the reconnect jitter; 0 picks one from the clock
  /// Called on the worker's strand with one line for people (connected, connection lost,
  /// errors the master reported, ...). Unset: silent.
  std::function<void(std::string_view)> on_log;
};

/// How a worker_client's run ended.
struct worker_outcome {
  enum class kind : std::uint8_t {
    run_over,  ///< the master said bye ("run finished"): nothing more to do
    drained,   ///< the master sent drain; the worker finished its attempts and said bye
    gave_up,   ///< no successful connection within give_up_after
    refused,   ///< the master rejected the handshake (unauthorized, version_mismatch)
    stopped,   ///< stop() or the completion handler's cancellation slot ended it
  };
  kind how = kind::gave_up;
  std::string reason;  ///< for people: the bye's reason, the last connection problem, ...

  /// run_over and drained: the master ended the work in order (`drover worker` exits 0).
  bool ok() const noexcept { return how == kind::run_over || how == kind::drained; }
};

/// "run_over", "drained", "gave_up", "refused" or "stopped".
std::string_view to_string(worker_outcome::kind how) noexcept;

/// Counters, for tests and diagnostics. Read them on the worker's executor, or after the run
/// completed.
struct worker_stats {
  std::uint64_t connection_attempts = 0;  ///< TCP connections tried
  std::uint64_t handshakes = 0;           ///< welcomes received
  std::uint64_t assignments = 0;          ///< assign messages received
  std::uint64_t results_sent = 0;
  std::uint64_t errors_received = 0;  ///< error messages from the master
  std::uint64_t errors_sent = 0;
};

/// The host name and process id, "ci-7-4242": a name unique on the network in practice.
std::string default_worker_id();

/// One worker process's connection to a master, for as long as the master has work: connects,
/// says hello, runs assignments concurrently (at most `slots`), sends heartbeats, and
/// reconnects with backoff when the connection drops. All of its state lives on one strand of
/// the executor it was given; the bodies run on that executor too.
///
/// Ending: the master's bye (run_over) or drain (drained), a refused handshake (refused),
/// give_up_after without a connection (gave_up), or stop() (stopped: running attempts are
/// cancelled without results, the master gets bye). Attempts still running when a connection
/// drops, or when the run ends, are cancelled (exec kills the process group) and the worker
/// waits for them to stop (at most cancel_grace) before it reconnects or completes.
class worker_client {
 public:
  using executor_type = boost::asio::any_io_executor;
  using run_signature = void(worker_outcome);

  /// `resolve` turns assigned kinds into bodies; it is kept for the client's lifetime.
  worker_client(executor_type executor, worker_options options, kind_resolver resolve);
  /// Stops the run if it is still going (as stop() does); the completion handler is still
  /// called, later, on its executor.
  ~worker_client();
  worker_client(const worker_client&) = delete;
  worker_client& operator=(const worker_client&) = delete;

  executor_type get_executor() const noexcept;

  /// Runs until one of the endings above; call once. Completion signature
  /// void(worker_outcome). Emitting the handler's cancellation slot is the same as stop().
  template <boost::asio::completion_token_for<run_signature> Token =
                boost::asio::default_completion_token_t<executor_type>>
  auto async_run(Token&& token = Token{}) {
    return boost::asio::async_initiate<Token, run_signature>(
        [this](boost::asio::any_completion_handler<run_signature> handler) {
          start(std::move(handler));
        },
        token);
  }

  /// Leaves: cancels running attempts (their results are not sent: the master reassigns
  /// them), says bye with `reason`, closes, and completes with `stopped`. Thread-safe.
  void stop(std::string reason = "worker stopped");

  /// The counters so far; see worker_stats for where to read them.
  worker_stats stats() const;

 private:
  struct impl;
  void start(boost::asio::any_completion_handler<run_signature> handler);
  std::shared_ptr<impl> impl_;
};

}  // namespace drover::coord
