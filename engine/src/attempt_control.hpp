#pragma once
// One attempt whose body runs as a coroutine of its own: the rules for a time limit, a stop
// from outside with a grace period, abandoning a body that ignores both, and settling the
// attempt's files. A run uses it for modules with a timeout; attempt_runner (what a remote
// worker runs assignments with) for every attempt. A run's modules without a timeout skip it
// and await their body on the worker's own stack: no co_spawn per module (local_workers.cpp).

#include <drover/context.hpp>
#include <drover/detail/attempt_scope.hpp>
#include <drover/detail/core_types.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <optional>

namespace drover::detail {

/// How a supervised attempt ended.
struct supervised_result {
  attempt_outcome outcome;
  /// The body ignored the stop for the whole grace period: the attempt ended without it and
  /// the body still runs; its files are discarded when it returns.
  bool abandoned = false;
};

class attempt_control : public std::enable_shared_from_this<attempt_control> {
 public:
  using handler_type = boost::asio::any_completion_handler<void(supervised_result)>;

  /// `scope.executor` is the strand the body, the timers and the handler's hand-off run on.
  /// `keepalive` keeps what the scope points into alive for as long as the body may run.
  attempt_control(attempt_scope scope, std::optional<std::chrono::milliseconds> timeout,
                  std::chrono::milliseconds grace, std::shared_ptr<const void> keepalive);

  /// Starts the body on the strand; `handler` gets the result exactly once. Call on the strand.
  void start(handler_type handler);
  /// Ends the attempt from outside as `why` (cancelled or timed_out): the body is cancelled and
  /// given `grace` to return. Call on the strand; does nothing once the attempt ended.
  void stop(module_status why);

 private:
  enum class phase : std::uint8_t { running, stopping, reported };

  void body_returned(std::exception_ptr thrown, boost::json::value value);
  void finish(attempt_outcome outcome, bool abandoned);
  std::string stop_text() const;
  boost::asio::steady_timer& timer();

  attempt_scope scope_;
  std::optional<std::chrono::milliseconds> timeout_;
  std::chrono::milliseconds grace_;
  std::shared_ptr<const void> keepalive_;
  std::optional<handler_type> handler_;
  std::optional<module_context> ctx_;  // lives as long as the body may
  boost::asio::cancellation_signal signal_;
  std::optional<boost::asio::steady_timer> timer_;  // the time limit, then the grace
  phase phase_ = phase::running;
  module_status stop_status_ = module_status::cancelled;
};

}  // namespace drover::detail
