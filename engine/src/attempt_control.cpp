#include "attempt_control.hpp"

#include "attempt_failure.hpp"
#include "work_dir.hpp"

#include <drover/context.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>

namespace drover::detail {

namespace asio = boost::asio;

attempt_control::attempt_control(attempt_scope scope,
                                 std::optional<std::chrono::milliseconds> timeout,
                                 std::chrono::milliseconds grace,
                                 std::shared_ptr<const void> keepalive)
    : scope_(std::move(scope)),
      timeout_(timeout),
      grace_(grace),
      keepalive_(std::move(keepalive)) {}

void attempt_control::start(handler_type handler) {
  handler_.emplace(std::move(handler));  // Boost 1.81's move assignment recurses
  ctx_.emplace(scope_);
  // Armed first: a body that returns at once, inline, cancels it again.
  if (timeout_) {
    timer().expires_after(*timeout_);
    timer().async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->stop(module_status::timed_out);
    });
  }
  try {
    asio::co_spawn(*scope_.executor, scope_.module.body()(*ctx_),
                   asio::bind_cancellation_slot(
                       signal_.slot(), [self = shared_from_this()](std::exception_ptr thrown,
                                                                   boost::json::value value) {
                         self->body_returned(thrown, std::move(value));
                       }));
  } catch (...) {
    // The body threw before its coroutine started (an empty body, a factory that throws).
    body_returned(std::current_exception(), nullptr);
  }
}

void attempt_control::body_returned(std::exception_ptr thrown, boost::json::value value) {
  attempt_outcome outcome;
  outcome.status = module_status::succeeded;
  if (thrown) classify_failure(thrown, outcome.status, outcome.error);
  switch (phase_) {
    case phase::running:
      if (timer_) timer_->cancel();
      // Nobody stopped it: an abort it met was its own doing.
      if (outcome.status == module_status::cancelled) outcome.status = module_status::failed;
      attempt_files::settle(scope_, outcome.status, outcome.error);
      if (outcome.status == module_status::succeeded) outcome.value = std::move(value);
      return finish(std::move(outcome), false);
    case phase::stopping: {
      // It stopped within the grace: it ends as it was stopped, and nothing is promoted.
      timer().cancel();
      attempt_files::discard(scope_);
      attempt_outcome stopped;
      stopped.status = stop_status_;
      stopped.error = stop_text();
      add_stop_detail(stopped.error, false, grace_, outcome.status, outcome.error);
      return finish(std::move(stopped), false);
    }
    case phase::reported:
      attempt_files::discard(scope_);  // abandoned earlier; it has finally returned
      return;
  }
}

void attempt_control::stop(module_status why) {
  if (phase_ != phase::running) return;
  phase_ = phase::stopping;
  stop_status_ = why;
  signal_.emit(asio::cancellation_type::terminal);
  if (phase_ != phase::stopping) return;  // it returned inline (and finished)
  timer().expires_after(grace_);
  timer().async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->phase_ != phase::stopping) return;
    attempt_outcome abandoned;
    abandoned.status = self->stop_status_;
    abandoned.error = self->stop_text();
    add_stop_detail(abandoned.error, true, self->grace_, module_status::cancelled, {});
    self->finish(std::move(abandoned), true);
  });
}

asio::steady_timer& attempt_control::timer() {
  if (!timer_) timer_.emplace(*scope_.executor);
  return *timer_;
}

std::string attempt_control::stop_text() const {
  const bool timed_out = stop_status_ == module_status::timed_out;
  return stop_error(timed_out, timed_out ? *timeout_ : std::chrono::milliseconds{});
}

void attempt_control::finish(attempt_outcome outcome, bool abandoned) {
  phase_ = phase::reported;
  auto executor = asio::get_associated_executor(*handler_, *scope_.executor);
  asio::dispatch(executor, [handler = std::move(*handler_),
                            result = supervised_result{std::move(outcome), abandoned}]() mutable {
    std::move(handler)(std::move(result));
  });
}

}  // namespace drover::detail
