#pragma once
// The master's endpoint: listens for workers, runs the handshake of docs/protocol.md with
// each, and joins every accepted worker to a run through the run's drover::worker_hub.
//
//     boost::asio::io_context io;
//     auto hub = std::make_shared<drover::worker_hub>();
//     drover::coord::master_options options;
//     options.port = 7700;                       // 0 picks a free port
//     options.log = [](std::string_view line) { std::cerr << line << '\n'; };
//     drover::coord::master master{io.get_executor(), hub, options};
//     auto where = master.listen();              // throws master_error, naming the address
//
//     drover::run_options run;
//     run.workers = 0;                           // remote workers only
//     run.remote = hub;
//     drover::engine engine{io.get_executor()};
//     engine.async_run(std::move(pipeline), run, [&](drover::run_report r) {
//       master.stop();                           // the workers were told "run finished"
//     });
//     io.run();                                  // returns once every connection closed
//
// Each connection is a session on its own strand: a reader and a writer coroutine over the
// stream, plus a ticker for the handshake timeout, heartbeats and loss. Sessions are
// templates on the stream type (detail/master_session.hpp), so accept() takes any connected
// Asio stream: a tcp::socket from listen(), one end of a local socket pair, or an in-memory
// stream in a simulation. What one connection does (garbage, silence, a wrong token) never
// affects another.
//
// The master never logs or echoes the token, and compares it in constant time.

#include <drover/coord/detail/master_session.hpp>
#include <drover/coord/protocol.hpp>
#include <drover/remote.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace drover::coord {

/// How a master listens and treats its connections.
struct master_options {
  /// An IP address, or "localhost". Anything but a loopback address needs a `token`.
  std::string listen_address = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: an ephemeral port; listen() returns the one bound
  /// The shared secret workers must present in hello (already read from its file by the
  /// caller). Unset: no token required, which is allowed only on a loopback address.
  std::optional<std::string> token;
  std::string run_id;                  ///< sent in welcome and assign; empty: one is made up
  std::optional<std::uint64_t> epoch;  ///< announced in welcome; unset: the hub's epoch
  /// How often the master sends a heartbeat; workers are told to use the same interval.
  std::chrono::milliseconds heartbeat_interval = default_heartbeat_interval;
  /// A worker from which no complete line arrived for this long is lost: detached (its
  /// attempts are reassigned) and disconnected.
  std::chrono::milliseconds lost_worker_timeout = default_lost_after;
  /// A connection that has not sent a valid hello this long after it opened is closed.
  std::chrono::milliseconds handshake_timeout = coord::handshake_timeout;
  /// Connections from one IP address that may be open at once, attached workers included.
  /// Past it a new connection from that address is closed at once, before it is read. 0: no
  /// limit.
  std::size_t max_connections_per_address = 1024;
  /// Connections from one IP address that may be in their handshake at once (open, no valid
  /// hello yet). Past it a new connection from that address is closed at once, so that slow
  /// or garbage connections from one host cannot take the master's sockets and memory; a
  /// worker refused this way connects again with its backoff. 0: no limit.
  std::size_t max_handshakes_per_address = 64;
  /// Connections in their handshake at once, from all addresses together. 0: no limit.
  std::size_t max_handshakes = 1024;
  /// How long a closing connection may take to deliver its last lines (an error, a bye)
  /// before it is cut.
  std::chrono::milliseconds close_timeout{1000};
  /// Bytes the master may queue for one connection behind a write that has not finished: a
  /// worker that stops reading fills its socket's buffers, then this queue. Past it the worker
  /// is lost (disconnected at once, its attempts reassigned), so a stuck reader cannot make the
  /// master buffer without bound. Lines handed to an idle connection go to its write at once
  /// and do not count; lines sent while that write is unfinished do, so keep the limit well
  /// above what a worker's slots can be sent at once (slots * the largest assign). Raised to
  /// 2 * line_limits.max_line_bytes if lower.
  std::size_t max_send_queue_bytes = std::size_t{64} << 20;
  /// Line length and nesting limits; max_line_bytes is announced in welcome.
  limits line_limits;
  /// Announced in welcome (docs/protocol.md): a worker stays after the run ends, or after a
  /// drain with rejoin, and connects again. drover serve's masters set it.
  bool stay = false;
  /// Where the master reports connections, handshakes, losses and rejected lines, one line
  /// per call, each naming the peer's address. May be called from any thread the io_context
  /// runs on, never concurrently. Unset: silent.
  std::function<void(std::string_view)> log;
};

/// What a master counted since it started. A snapshot: read it with master::stats().
struct master_stats {
  std::uint64_t connections = 0;  ///< accepted, whatever became of them
  /// Closed at once for a connection or handshake limit (master_options), never read.
  std::uint64_t connections_refused = 0;
  std::uint64_t workers_welcomed = 0;   ///< handshakes completed
  std::uint64_t handshakes_failed = 0;  ///< connections refused or closed before welcome
  std::uint64_t workers_silent = 0;     ///< connections lost to silence after the handshake
  std::uint64_t workers_stalled = 0;    ///< connections lost because they stopped reading
  std::uint64_t workers_left = 0;       ///< workers detached for any reason before the run ended
  std::uint64_t results_forwarded = 0;  ///< results handed to the run (it may still reject them)
  /// Results refused, by the master or the run: one per stale_result, duplicate_result or
  /// unknown_module error sent.
  std::uint64_t results_rejected = 0;
  std::uint64_t errors_received = 0;  ///< error messages workers sent
  /// Error messages sent, by wire code ("malformed_json", "stale_result", ...): one per
  /// rejected line, refused handshake or result the run did not accept.
  std::map<std::string, std::uint64_t, std::less<>> errors_sent;

  /// errors_sent for one code, 0 when none was sent.
  std::uint64_t errors(error_code code) const;
};

/// A worker connected to a master, as its hello described it.
struct connected_worker {
  std::string name;  ///< welcome.worker
  std::vector<std::string> capabilities;
  std::uint32_t slots = 1;
};

/// The master cannot start: the address is not valid, not loopback without a token, or
/// cannot be bound. what() names the address.
class master_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
class master_state;
struct master_listener;
}  // namespace detail

/// Accepts worker connections for one run. accept(), stop(), stats() and open_connections()
/// may be called from any thread; listen() once, from the thread that owns the master. The
/// destructor stops it; connections still open finish on the io_context afterwards.
class master {
 public:
  master(boost::asio::any_io_executor executor, std::shared_ptr<worker_hub> hub,
         master_options options = {});
  ~master();
  master(const master&) = delete;
  master& operator=(const master&) = delete;

  /// Checks the options, binds, and starts accepting. Returns the bound endpoint (its port
  /// is the ephemeral one when the options asked for port 0). Throws master_error.
  boost::asio::ip::tcp::endpoint listen();

  /// Serves a connected stream as a worker connection; `peer` names it in logs. Stream needs
  /// async_read_some, async_write_some, get_executor and close(error_code&) or close(), and
  /// is half-closed with shutdown(shutdown_send, error_code&) when it has one (a socket), so
  /// that the last lines reach the peer before the connection closes. Once stop() has closed
  /// the port (see stop()) the connection is closed at once; before, its hello is answered
  /// with welcome and bye.
  template <typename Stream>
  void accept(Stream stream, std::string peer) {
    auto s = std::make_shared<detail::session<Stream>>(state_, std::move(stream), std::move(peer));
    const bool open = enroll(s);
    s->start();
    if (!open) s->post_stop();
  }

  /// A TCP connection, named by its remote endpoint.
  void accept(boost::asio::ip::tcp::socket socket);

  /// Ends the master: workers still attached get a bye ("run finished" once the hub's run
  /// finished, else "master stopping") and are detached. After listen(), the port stays open
  /// for close_timeout more: a worker whose hello arrives meanwhile (connected before or
  /// after) gets welcome and at once that bye, so it exits as the others do; then the port
  /// closes, and so do connections still waiting for a hello. Without listen() that happens
  /// at once. Each connection closes once its last line is written and the peer closed its
  /// end, or after close_timeout, so an io_context with nothing else to do returns from run()
  /// within about twice close_timeout. Calling it again changes nothing.
  void stop();

  /// Drains the connected worker named `worker` (its welcome.worker name, as logs show it):
  /// the run assigns it nothing more, then the master sends it `drain` with `reason`. Its
  /// running attempts finish and their results count; when it then says bye and closes, only
  /// what it did not report is reassigned. Returns false when no connected worker has that
  /// name. With `rejoin`, a worker that was welcomed with stay connects again after its bye.
  /// Thread-safe.
  bool drain(std::string_view worker, std::string reason = "drained by an operator",
             bool rejoin = false);
  /// Says bye (`reason`) to the connected worker named `worker` at once and closes its
  /// connection. Only for a worker with nothing to lose: one attached to a hub that no run
  /// has bound (a service's idle workers). False when no connected worker has that name.
  bool release(std::string_view worker, std::string reason);

  /// The bound endpoint; only after listen().
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  const std::string& run_id() const noexcept;
  master_stats stats() const;
  /// Connections not yet closed.
  std::size_t open_connections() const;
  /// The workers that completed the handshake and are still connected. Thread-safe.
  std::vector<connected_worker> workers() const;

 private:
  /// Registers a new session; false once stopped (then the session must be stopped too).
  bool enroll(const std::shared_ptr<detail::session_core>& s);

  boost::asio::any_io_executor executor_;
  std::shared_ptr<detail::master_state> state_;
  std::shared_ptr<detail::master_listener> listener_;
};

}  // namespace drover::coord
