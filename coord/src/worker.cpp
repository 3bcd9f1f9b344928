#include <drover/coord/worker.hpp>

#include "worker_attempt.hpp"

#include <drover/attempt.hpp>
#include <drover/coord/framing.hpp>
#include <drover/engine.hpp>  // local_os_label

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <random>
#include <utility>

namespace drover::coord {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string_view to_string(worker_outcome::kind how) noexcept {
  switch (how) {
    case worker_outcome::kind::run_over:
      return "run_over";
    case worker_outcome::kind::drained:
      return "drained";
    case worker_outcome::kind::gave_up:
      return "gave_up";
    case worker_outcome::kind::refused:
      return "refused";
    case worker_outcome::kind::stopped:
      return "stopped";
  }
  return "unknown";
}

std::string default_worker_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
    return "worker-" + std::to_string(::getpid());
  }
  return std::string{host} + "-" + std::to_string(::getpid());
}

namespace {

// How long a connection that is ending may take to write its last lines (a bye, a fatal
// error) before it is closed anyway.
constexpr auto final_write_grace = 2s;

std::string host_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) return {};
  return host;
}

std::string endpoint_text(const std::string& host, std::uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// `line` quoted for an error message: at most 60 bytes of it, control characters as '?'.
std::string excerpt(std::string_view line) {
  constexpr std::size_t max_shown = 60;
  std::string out = "\"";
  for (std::size_t i = 0; i < std::min(line.size(), max_shown); ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    out += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
  }
  return out + (line.size() > max_shown ? "\"..." : "\"");
}

std::string milliseconds_text(steady::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

// Waits until cancel() is called on the timer (used as a signal on the strand) or `deadline`.
// Callers check their condition before waiting, so a cancel with nobody waiting is not lost.
asio::awaitable<void> wait_for_signal(asio::steady_timer& timer, steady::time_point deadline) {
  timer.expires_at(deadline);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

// One assignment while it runs.
struct running_attempt_state {
  assign_message assign;  ///< its params were moved into the pipeline
  asio::cancellation_signal signal;
  std::optional<std::string> cancel_reason;  ///< set when the master cancelled it
  bool abandoned = false;                    ///< the connection ended: send no result
};

// How a connection ended.
struct session_end {
  enum class how : std::uint8_t { lost, refused, run_over, drained, stopped };
  how what = how::lost;
  std::string reason;
};

// One connection to the master (a TCP socket, or what worker_options::dial opened) and
// everything that lives as long as it: the result cache, the running attempts, the liveness
// clock. Owned by the worker's strand.
struct connection : std::enable_shared_from_this<connection> {
  connection(byte_stream s, std::size_t max_line_bytes, const asio::any_io_executor& strand)
      : stream(std::move(s)),
        splitter(max_line_bytes),
        writer(stream),
        ticker(strand),
        idle(strand),
        writer_done_signal(strand) {}

  byte_stream stream;
  line_splitter splitter;
  line_writer<byte_stream> writer;
  asio::steady_timer ticker;              ///< heartbeats and liveness
  asio::steady_timer idle;                ///< signalled when the last attempt ended
  asio::steady_timer writer_done_signal;  ///< signalled when the writer stopped
  line_decoder decoder;     ///< keeps its parser's memory from line to line; holds the limits
  std::string result_line;  ///< where a result is encoded before it is queued
  std::size_t send_limit = default_max_line_bytes;

  bool welcomed = false;
  welcome_message welcome;
  bool draining = false;
  bool rejoin = false;    ///< the drain said to come back (a service moves this worker)
  bool finished = false;  ///< the session is over: the ticker stops
  bool writer_done = false;
  std::optional<session_end> end;

  steady::time_point handshake_deadline;
  steady::time_point last_received;
  steady::time_point next_heartbeat;

  std::vector<std::shared_ptr<running_attempt_state>> running;  ///< in the order assigned
  detail::dependency_cache cache;
};

attempt_settings attempt_settings_from(const worker_options& options) {
  attempt_settings settings;
  settings.worker_name = options.worker_id.empty() ? default_worker_id() : options.worker_id;
  settings.log_dir = options.log_dir;
  settings.workspace = options.workspace;
  settings.keep_workdirs = options.keep_workdirs;
  settings.cancel_grace = options.cancel_grace;
  // A body's notes (a log file it could not write, say) have no place in the protocol's
  // result: the worker's own log says them.
  if (options.on_log) {
    settings.note = [log = options.on_log](std::string line) { log("note: " + line); };
  }
  return settings;
}

}  // namespace

struct worker_client::impl : std::enable_shared_from_this<worker_client::impl> {
  impl(executor_type ex, worker_options opts, kind_resolver r)
      : executor(ex),
        strand(asio::make_strand(ex)),
        options(std::move(opts)),
        resolve(std::move(r)),
        runner(strand, attempt_settings_from(options)),
        wait_timer(strand) {
    if (options.worker_id.empty()) options.worker_id = default_worker_id();
    if (options.slots == 0) options.slots = 1;
    rng.seed(options.seed != 0
                 ? options.seed
                 : static_cast<std::uint64_t>(steady::now().time_since_epoch().count()));
    hello.versions.assign(std::begin(supported_protocol_versions),
                          std::end(supported_protocol_versions));
    hello.worker_id = options.worker_id;
    hello.capabilities.emplace_back(local_os_label());
    for (const auto& label : options.capabilities) {
      if (label != local_os_label()) hello.capabilities.push_back(label);
    }
    hello.slots = options.slots;
    hello.token = options.token;
    hello.pid = static_cast<std::uint64_t>(::getpid());
    if (auto host = host_name(); !host.empty()) hello.host = std::move(host);
  }

  executor_type executor;
  asio::strand<executor_type> strand;
  worker_options options;
  kind_resolver resolve;
  drover::attempt_runner runner;  ///< runs each attempt as a run would, without a run
  hello_message hello;
  std::mt19937_64 rng;

  // Everything below is owned by the strand.
  asio::steady_timer wait_timer;  ///< connect timeout and backoff; stop() cancels it
  std::shared_ptr<connection> current;
  bool stopping = false;
  std::string stop_reason;
  worker_stats counters;

  void log(std::string_view line) const {
    if (!options.on_log) return;
    try {
      options.on_log(line);
    } catch (...) {
      // A logger's failure must not end the worker.
    }
  }

  std::string peer() const {
    if (options.dial) return options.dial_name.empty() ? "the master" : options.dial_name;
    return endpoint_text(options.host, options.port);
  }

  // --- the connection loop ----------------------------------------------------------------

  asio::awaitable<worker_outcome> run() {
    auto give_up_at = steady::now() + options.give_up_after;
    auto delay = std::chrono::duration<double, std::milli>(options.reconnect.initial);
    std::string last_problem;
    for (;;) {
      if (stopping) co_return worker_outcome{worker_outcome::kind::stopped, stop_reason};
      ++counters.connection_attempts;
      std::optional<byte_stream> stream = co_await connect(last_problem);
      if (stopping) co_return worker_outcome{worker_outcome::kind::stopped, stop_reason};
      if (stream) {
        auto c =
            std::make_shared<connection>(std::move(*stream), options.limits.max_line_bytes, strand);
        c->decoder.set_limits(options.limits);
        c->send_limit = options.limits.max_line_bytes;
        const session_end end = co_await run_session(c);
        switch (end.what) {
          case session_end::how::refused:
            co_return worker_outcome{worker_outcome::kind::refused, end.reason};
          case session_end::how::run_over:
            // A service's worker (welcome.stay) stays for the next run.
            if (!c->welcome.stay) {
              co_return worker_outcome{worker_outcome::kind::run_over, end.reason};
            }
            break;
          case session_end::how::drained:
            if (!c->welcome.stay || !c->rejoin) {
              co_return worker_outcome{worker_outcome::kind::drained, end.reason};
            }
            break;
          case session_end::how::stopped:
            co_return worker_outcome{worker_outcome::kind::stopped, end.reason};
          case session_end::how::lost:
            break;
        }
        last_problem = end.reason;
        if (c->welcomed) {
          give_up_at = steady::now() + options.give_up_after;
          delay = options.reconnect.initial;
        }
      }
      if (stopping) co_return worker_outcome{worker_outcome::kind::stopped, stop_reason};
      const auto now = steady::now();
      if (now >= give_up_at) {
        co_return worker_outcome{worker_outcome::kind::gave_up,
                                 "no connection to the master at " + peer() + " for " +
                                     milliseconds_text(options.give_up_after) +
                                     "; last problem: " + last_problem};
      }
      auto wait = std::chrono::duration_cast<steady::duration>(jittered(delay));
      wait = std::min(wait, give_up_at - now);
      log(last_problem + "; connecting again in " + milliseconds_text(wait));
      wait_timer.expires_after(wait);
      co_await wait_timer.async_wait(asio::as_tuple(asio::use_awaitable));
      delay = std::min(delay * options.reconnect.multiplier,
                       std::chrono::duration<double, std::milli>(options.reconnect.max));
    }
  }

  std::chrono::duration<double, std::milli> jittered(std::chrono::duration<double, std::milli> d) {
    const double jitter = std::clamp(options.reconnect.jitter, 0.0, 1.0);
    if (jitter == 0) return d;
    std::uniform_real_distribution<double> factor(1.0 - jitter, 1.0 + jitter);
    return d * factor(rng);
  }

  // A connected stream, or nothing with `problem` saying why. Bounded by connect_timeout;
  // stop() cuts it short.
  asio::awaitable<std::optional<byte_stream>> connect(std::string& problem) {
    using asio::experimental::make_parallel_group;
    using asio::experimental::wait_for_one;
    wait_timer.expires_after(options.connect_timeout);
    const auto timed_out = [&] {
      problem = stopping ? "stopped"
                         : "connecting to " + peer() + " timed out after " +
                               milliseconds_text(options.connect_timeout);
    };
    if (options.dial) co_return co_await dial(problem, timed_out);

    tcp::resolver resolver(strand);
    auto [resolve_order, resolve_error, endpoints, resolve_timer_error] =
        co_await make_parallel_group(
            resolver.async_resolve(options.host, std::to_string(options.port), asio::deferred),
            wait_timer.async_wait(asio::deferred))
            .async_wait(wait_for_one(), asio::use_awaitable);
    (void)resolve_timer_error;
    if (resolve_order[0] != 0) {
      timed_out();
      co_return std::nullopt;
    }
    if (resolve_error) {
      problem = "cannot resolve '" + options.host + "': " + resolve_error.message();
      co_return std::nullopt;
    }

    tcp::socket socket(strand);
    auto [connect_order, connect_error, endpoint, connect_timer_error] =
        co_await make_parallel_group(asio::async_connect(socket, endpoints, asio::deferred),
                                     wait_timer.async_wait(asio::deferred))
            .async_wait(wait_for_one(), asio::use_awaitable);
    (void)endpoint;
    (void)connect_timer_error;
    if (connect_order[0] != 0) {
      timed_out();
      co_return std::nullopt;
    }
    if (connect_error) {
      problem = "cannot connect to " + peer() + ": " + connect_error.message();
      co_return std::nullopt;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    co_return byte_stream{std::move(socket)};
  }

  // co_spawn and parallel groups need a result that can be default-constructed.
  static asio::awaitable<std::optional<byte_stream>> dial_once(
      std::function<asio::awaitable<byte_stream>()> dial) {
    co_return co_await dial();
  }

  // Through options.dial, bounded by the wait_timer connect() armed.
  template <typename TimedOut>
  asio::awaitable<std::optional<byte_stream>> dial(std::string& problem,
                                                   const TimedOut& timed_out) {
    using asio::experimental::make_parallel_group;
    using asio::experimental::wait_for_one;
    auto [order, failure, stream, timer_error] =
        co_await make_parallel_group(
            asio::co_spawn(strand, dial_once(options.dial), asio::deferred),
            wait_timer.async_wait(asio::deferred))
            .async_wait(wait_for_one(), asio::use_awaitable);
    (void)timer_error;
    if (order[0] != 0) {
      timed_out();
      co_return std::nullopt;
    }
    if (failure) {
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        problem = "cannot reach " + peer() + ": " + e.what();
      } catch (...) {
        problem = "cannot reach " + peer() + ": unknown error";
      }
      co_return std::nullopt;
    }
    co_return std::move(stream);  // a structured binding is not moved from implicitly
  }

  // --- one connection ---------------------------------------------------------------------

  asio::awaitable<session_end> run_session(std::shared_ptr<connection> c) {
    current = c;
    const auto now = steady::now();
    c->handshake_deadline = now + options.handshake_timeout;
    c->last_received = now;
    asio::co_spawn(strand, write_lines(c), asio::detached);
    asio::co_spawn(strand, keep_alive(shared_from_this(), c), asio::detached);
    c->writer.send(encode(hello));

    co_await read_lines(*c);

    // The connection is over: stop what runs on it, flush the last lines, close.
    if (!c->end) c->end = session_end{session_end::how::lost, "the connection ended"};
    c->finished = true;
    c->ticker.cancel();
    for (auto& attempt : c->running) {
      attempt->abandoned = true;
      attempt->signal.emit(asio::cancellation_type::terminal);
    }
    c->writer.close();
    if (!c->writer_done)
      co_await wait_for_signal(c->writer_done_signal, steady::now() + final_write_grace);
    c->stream.close();
    // Bounded: the engine abandons a body that ignores cancellation after cancel_grace.
    while (!c->running.empty())
      co_await wait_for_signal(c->idle, steady::time_point::max());
    current.reset();
    co_return *c->end;
  }

  static asio::awaitable<void> write_lines(std::shared_ptr<connection> c) {
    const boost::system::error_code failure = co_await c->writer.run();
    c->writer_done = true;
    c->writer_done_signal.cancel();
    // A failed write ends the connection; after a graceful close the reader stops too.
    end_session(
        *c, session_end::how::lost,
        failure ? "writing to the master failed: " + failure.message() : "the connection ended");
  }

  // Ends the session with `what` unless it already ended; interrupts the pending read.
  static void end_session(connection& c, session_end::how what, std::string reason) {
    if (!c.end) c.end = session_end{what, std::move(reason)};
    c.stream.cancel();
  }

  void send(connection& c, const message& m) {
    if (std::holds_alternative<error_message>(m)) ++counters.errors_sent;
    c.writer.send(encode(m));
  }

  // Heartbeats, the handshake timeout and the master's silence.
  static asio::awaitable<void> keep_alive(std::shared_ptr<impl> self,
                                          std::shared_ptr<connection> c) {
    while (!c->finished && !c->end) {
      const auto now = steady::now();
      steady::time_point wake;
      if (!c->welcomed) {
        if (now >= c->handshake_deadline) {
          end_session(*c, session_end::how::lost,
                      "no welcome from the master within " +
                          milliseconds_text(self->options.handshake_timeout));
          break;
        }
        wake = c->handshake_deadline;
      } else {
        const auto lost_after = std::chrono::milliseconds(c->welcome.lost_after_ms);
        if (now - c->last_received >= lost_after) {
          end_session(*c, session_end::how::lost,
                      "the master was silent for " + milliseconds_text(lost_after));
          break;
        }
        if (now >= c->next_heartbeat) {
          heartbeat_message beat;
          beat.running.reserve(c->running.size());
          for (const auto& attempt : c->running)
            beat.running.push_back({attempt->assign.module, attempt->assign.attempt});
          self->send(*c, beat);
          c->next_heartbeat = now + std::chrono::milliseconds(c->welcome.heartbeat_ms);
        }
        wake = std::min(c->next_heartbeat, c->last_received + lost_after);
      }
      c->ticker.expires_at(wake);
      co_await c->ticker.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  asio::awaitable<void> read_lines(connection& c) {
    while (!c.end) {
      read_outcome in = co_await read_line(c.stream, c.splitter);
      if (c.end) break;
      if (in.status == read_status::line_too_long) {
        send(c, make_error_message(error_code::line_too_long,
                                   "line exceeds the limit of " +
                                       std::to_string(c.splitter.max_line_bytes()) + " bytes",
                                   true));
        end_session(c, session_end::how::lost,
                    "the master sent a line over " + std::to_string(c.splitter.max_line_bytes()) +
                        " bytes");
        break;
      }
      if (!in.ok()) {
        end_session(c, session_end::how::lost,
                    in.error == asio::error::eof
                        ? "the master closed the connection"
                        : "the connection to the master failed: " + in.error.message());
        break;
      }
      c.last_received = steady::now();
      decode_result decoded = c.decoder.decode(in.line);
      if (!c.welcomed) {
        handle_handshake_reply(c, std::move(decoded));
      } else {
        handle_line(c, in.line, std::move(decoded));
      }
    }
  }

  void handle_handshake_reply(connection& c, decode_result decoded) {
    if (!decoded.ok()) {
      const protocol_error& e = decoded.error();
      if (e.type != "error") {
        error_message reply = to_error_message(e);
        reply.fatal = true;  // before the handshake, every problem ends the connection
        send(c, reply);
      }
      end_session(c, session_end::how::lost,
                  "the master's answer to hello is not valid: " + e.message);
      return;
    }
    message& m = decoded.value();
    if (auto* welcome = std::get_if<welcome_message>(&m)) {
      c.welcomed = true;
      c.welcome = std::move(*welcome);
      limits announced = c.decoder.receiver_limits();
      announced.max_line_bytes =
          static_cast<std::size_t>(std::min<std::uint64_t>(c.welcome.max_line_bytes, SIZE_MAX - 1));
      c.splitter.set_max_line_bytes(announced.max_line_bytes);
      c.decoder.set_limits(announced);
      c.send_limit = announced.max_line_bytes;
      c.next_heartbeat = steady::now() + std::chrono::milliseconds(c.welcome.heartbeat_ms);
      c.ticker.cancel();  // the keep-alive loop switches to heartbeats
      ++counters.handshakes;
      log("connected to " + peer() + " as " + c.welcome.worker + " (run " + c.welcome.run + ")");
      return;
    }
    if (auto* error = std::get_if<error_message>(&m)) {
      ++counters.errors_received;
      const std::string why = "the master refused the connection: " + error->code +
                              (error->message.empty() ? std::string{} : ": " + error->message);
      const auto code = parse_error_code(error->code);
      const bool hopeless =
          code == error_code::unauthorized || code == error_code::version_mismatch;
      end_session(c, hopeless ? session_end::how::refused : session_end::how::lost, why);
      return;
    }
    send(c, make_error_message(error_code::handshake_required,
                               "expected welcome, got " + std::string{type_name(m)}, true));
    end_session(c, session_end::how::lost,
                "the master sent " + std::string{type_name(m)} + " instead of welcome");
  }

  void handle_line(connection& c, std::string_view line, decode_result decoded) {
    if (!decoded.ok()) {
      const protocol_error& e = decoded.error();
      if (e.code == error_code::unknown_type) {
        // A newer master's message: answered, and otherwise ignored.
        send(c, to_error_message(e));
        log("ignored a message from the master: " + e.message);
        return;
      }
      if (e.type == "error") {
        // An error is never answered, and it assigns nothing: logged, ignored.
        log("ignored a malformed error from the master: " + e.message);
        return;
      }
      // The line may have been an assign: ignoring it would leave its module without a result
      // until the master gave up on it. Closing makes the master reassign at once.
      error_message reply = to_error_message(e);
      reply.fatal = true;
      reply.message += "; the line: " + excerpt(line);
      send(c, reply);
      end_session(c, session_end::how::lost,
                  "the master sent a line that does not decode (" + e.message + ")");
      return;
    }
    message& m = decoded.value();
    if (auto* assign = std::get_if<assign_message>(&m)) return handle_assign(c, std::move(*assign));
    if (auto* cancel = std::get_if<cancel_message>(&m)) return handle_cancel(c, *cancel);
    if (std::holds_alternative<heartbeat_message>(m)) return;
    if (auto* drain = std::get_if<drain_message>(&m)) {
      log("the master drains this worker" +
          (drain->reason.empty() ? std::string{} : ": " + drain->reason));
      c.draining = true;
      c.rejoin = drain->rejoin;
      return finish_drain_if_idle(c);
    }
    if (auto* bye = std::get_if<bye_message>(&m)) {
      return end_session(c, session_end::how::run_over,
                         bye->reason.empty() ? "the master said bye" : bye->reason);
    }
    if (auto* error = std::get_if<error_message>(&m)) {
      ++counters.errors_received;
      std::string text = "the master reported " + error->code;
      if (error->module) text += " about '" + *error->module + "'";
      if (error->attempt) text += " attempt " + std::to_string(*error->attempt);
      if (!error->message.empty()) text += ": " + error->message;
      log(text);
      if (error->fatal) {
        const auto code = parse_error_code(error->code);
        const bool hopeless =
            code == error_code::unauthorized || code == error_code::version_mismatch;
        end_session(c, hopeless ? session_end::how::refused : session_end::how::lost, text);
      }
      return;
    }
    // hello, welcome, result: messages a master does not send.
    send(c, make_error_message(
                error_code::unknown_type,
                "a worker does not accept '" + std::string{type_name(m)} + "' from the master"));
  }

  // --- assignments ------------------------------------------------------------------------

  void handle_assign(connection& c, assign_message assign) {
    ++counters.assignments;
    // Only an assign that cannot run needs the time (its result starts and ends now).
    const auto now = [] { return wall_clock::now(); };
    if (assign.run != c.welcome.run) {
      return send_result(c, detail::make_attempt_result(assign, module_status::failed, nullptr,
                                                        "assigned for run '" + assign.run +
                                                            "', but this connection serves run '" +
                                                            c.welcome.run + "'",
                                                        now(), now()));
    }
    // The master sends each result once per connection: keep it before anything can fail.
    for (dependency_result& r : assign.results) {
      detail::cached_dependency cached;
      cached.status = r.status;
      if (!r.value.is_null()) {
        cached.value = std::make_shared<const boost::json::value>(std::move(r.value));
      }
      c.cache.insert_or_assign(std::move(r.module), std::move(cached));
    }
    assign.results.clear();

    const auto same_attempt = [&](const auto& running) {
      return running->assign.module == assign.module && running->assign.attempt == assign.attempt;
    };
    if (std::any_of(c.running.begin(), c.running.end(), same_attempt)) {
      // Its result comes from the attempt already running; a second one would be a duplicate.
      error_message e = make_error_message(
          error_code::internal, "'" + assign.module + "' attempt " +
                                    std::to_string(assign.attempt) + " is already running here");
      e.module = assign.module;
      e.attempt = assign.attempt;
      return send(c, e);
    }
    if (c.draining) {
      return send_result(c, detail::make_attempt_result(assign, module_status::failed, nullptr,
                                                        "worker " + c.welcome.worker +
                                                            " is draining: the master said no more "
                                                            "assignments would come",
                                                        now(), now()));
    }
    if (c.running.size() >= options.slots) {
      const std::string why = "worker " + c.welcome.worker + " runs at most " +
                              std::to_string(options.slots) +
                              " attempts at once, and all its slots were busy";
      error_message e = make_error_message(error_code::internal, "over capacity: " + why);
      e.module = assign.module;
      e.attempt = assign.attempt;
      send(c, e);
      return send_result(c, detail::make_attempt_result(assign, module_status::failed, nullptr, why,
                                                        now(), now()));
    }

    detail::attempt_plan plan = detail::plan_attempt(assign, c.cache, resolve, c.welcome.worker);
    if (!plan.request) {
      return send_result(c, detail::make_attempt_result(assign, module_status::failed, nullptr,
                                                        std::move(plan.error), now(), now()));
    }

    auto attempt = std::make_shared<running_attempt_state>();
    attempt->assign = std::move(assign);
    c.running.push_back(attempt);

    runner.async_run(
        std::move(*plan.request),
        asio::bind_cancellation_slot(
            attempt->signal.slot(),
            asio::bind_executor(strand, [self = shared_from_this(), c = c.shared_from_this(),
                                         attempt](attempt_report report) {
              self->attempt_finished(*c, *attempt, report);
            })));
  }

  void attempt_finished(connection& c, running_attempt_state& attempt, attempt_report& report) {
    auto it = std::find_if(c.running.begin(), c.running.end(),
                           [&](const auto& running) { return running.get() == &attempt; });
    if (it != c.running.end()) c.running.erase(it);
    if (!attempt.abandoned && !c.end) {
      send_result(c, detail::result_from_report(attempt.assign, report, attempt.cancel_reason));
    }
    if (c.running.empty()) {
      c.idle.cancel();
      finish_drain_if_idle(c);
    }
  }

  void handle_cancel(connection& c, const cancel_message& cancel) {
    for (auto& attempt : c.running) {
      const assign_message& a = attempt->assign;
      if (a.module != cancel.module || a.attempt != cancel.attempt || a.run != cancel.run ||
          a.epoch != cancel.epoch) {
        continue;
      }
      if (attempt->cancel_reason) return;  // already on its way out
      attempt->cancel_reason = cancel.reason;
      log("cancelling '" + a.module + "' attempt " + std::to_string(a.attempt) +
          (cancel.reason.empty() ? std::string{} : ": " + cancel.reason));
      attempt->signal.emit(asio::cancellation_type::terminal);
      return;
    }
    // Not running (its result is on the way, or the ids do not match): ignored, as specified.
  }

  void finish_drain_if_idle(connection& c) {
    if (!c.draining || !c.running.empty() || c.end) return;
    send(c, bye_message{"drained"});
    end_session(c, session_end::how::drained, "drained by the master");
  }

  void send_result(connection& c, result_message result) {
    c.result_line.clear();
    if (const std::size_t size = encode_to(c.result_line, result) - 1; size > c.send_limit) {
      result.status = module_status::failed;
      result.value = nullptr;
      result.error = "result too large: " + std::to_string(size) + " bytes, the limit is " +
                     std::to_string(c.send_limit);
      c.result_line.clear();
      encode_to(c.result_line, result);
    }
    ++counters.results_sent;
    c.writer.send(c.result_line);
  }

  // --- stopping ---------------------------------------------------------------------------

  void stop_now(std::string reason) {
    if (stopping) return;
    stopping = true;
    stop_reason = std::move(reason);
    wait_timer.cancel();
    if (auto c = current) {
      if (c->welcomed && !c->end) send(*c, bye_message{stop_reason});
      end_session(*c, session_end::how::stopped, stop_reason);
    }
  }
};

worker_client::worker_client(executor_type executor, worker_options options, kind_resolver resolve)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(options), std::move(resolve))) {}

worker_client::~worker_client() {
  stop("worker destroyed");
}

worker_client::executor_type worker_client::get_executor() const noexcept {
  return impl_->executor;
}

void worker_client::stop(std::string reason) {
  asio::post(impl_->strand, [self = impl_, reason = std::move(reason)]() mutable {
    self->stop_now(std::move(reason));
  });
}

worker_stats worker_client::stats() const {
  return impl_->counters;
}

void worker_client::start(asio::any_completion_handler<run_signature> handler) {
  auto slot = asio::get_associated_cancellation_slot(handler);
  if (slot.is_connected()) {
    slot.assign([self = impl_](asio::cancellation_type) {
      asio::post(self->strand, [self] { self->stop_now("cancelled"); });
    });
  }
  asio::co_spawn(impl_->strand, impl_->run(),
                 [self = impl_, handler = std::move(handler)](std::exception_ptr failure,
                                                              worker_outcome outcome) mutable {
                   if (failure) {
                     outcome.how = worker_outcome::kind::gave_up;
                     try {
                       std::rethrow_exception(failure);
                     } catch (const std::exception& e) {
                       outcome.reason = std::string{"internal error: "} + e.what();
                     } catch (...) {
                       outcome.reason = "internal error: unknown exception";
                     }
                   }
                   auto slot = asio::get_associated_cancellation_slot(handler);
                   if (slot.is_connected()) slot.clear();
                   auto ex = asio::get_associated_executor(handler, self->strand);
                   asio::dispatch(
                       ex, [handler = std::move(handler), outcome = std::move(outcome)]() mutable {
                         std::move(handler)(std::move(outcome));
                       });
                 });
}

}  // namespace drover::coord
