#include <drover/attempt.hpp>

#include <drover/secrets.hpp>
#include "attempt_failure.hpp"
#include "io_validation.hpp"
#include "lone_attempt.hpp"
#include "work_dir.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

#include <optional>
#include <stdexcept>
#include <utility>

namespace drover {
namespace detail {

namespace asio = boost::asio;

void classify_failure(std::exception_ptr thrown, module_status& status, std::string& error) {
  status = module_status::failed;
  try {
    std::rethrow_exception(thrown);
  } catch (const timeout_error& e) {
    status = module_status::timed_out;
    error = e.what();
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted) status = module_status::cancelled;
    error = e.what();
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }
}

std::string stop_error(bool timed_out, std::chrono::milliseconds timeout) {
  return timed_out ? "timed out after " + std::to_string(timeout.count()) + " ms" : "cancelled";
}

void add_stop_detail(std::string& error, bool abandoned, std::chrono::milliseconds grace,
                     module_status body_status, const std::string& body_error) {
  if (abandoned) {
    error += "; the body ignored cancellation for " + std::to_string(grace.count()) +
             " ms and was abandoned";
  } else if (!body_error.empty() && body_status != module_status::cancelled) {
    error += ": " + body_error;
  }
}

namespace {

// A strand already serializes; a strand of a strand would only cost more per handler.
asio::any_io_executor serialized(const asio::any_io_executor& ex) {
  if (ex.target<asio::strand<asio::any_io_executor>>() != nullptr) return ex;
  return asio::make_strand(ex);
}

}  // namespace

attempt_host::attempt_host(asio::any_io_executor ex, attempt_settings s)
    : executor(std::move(ex)),
      strand(serialized(executor)),
      settings(std::move(s)),
      workspace(absolute_workspace(settings.workspace)) {}

const dependency_outcome& lone_attempt::dependency(std::string_view id) const {
  // An attempt has few dependencies: a scan is what a run does too.
  for (const dependency_outcome& d : dependencies) {
    if (d.id == id) return d;
  }
  throw std::invalid_argument("module '" + spec.id + "' asked for the result of '" +
                              std::string(id) + "', which is not one of its dependencies");
}

namespace {

using handler_type = asio::any_completion_handler<attempt_runner::run_signature>;

// One attempt from start to report, on the runner's strand. The body runs as a coroutine of its
// own with a cancellation signal of ours, so that a timeout and the caller's cancellation can
// both stop it, and a body that ignores them can be abandoned: the same rules as a run's
// timed attempts (run_state::run_timed).
class attempt_state : public std::enable_shared_from_this<attempt_state> {
 public:
  attempt_state(std::shared_ptr<const attempt_host> host, attempt_request request,
                handler_type handler)
      : host_(std::move(host)), handler_(std::move(handler)) {
    attempt_.host = host_.get();
    attempt_.spec = std::move(request.spec);
    attempt_.attempt = request.attempt;
    attempt_.dependencies = std::move(request.dependencies);
  }

  void start() {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) {
      // The slot's handler runs wherever the caller emits; hop onto the strand.
      slot.assign([weak = weak_from_this()](asio::cancellation_type) {
        if (auto self = weak.lock()) {
          asio::post(self->host_->strand, [self] { self->stop(module_status::cancelled); });
        }
      });
    }
    asio::dispatch(host_->strand, [self = shared_from_this()] { self->run(); });
  }

 private:
  enum class phase : std::uint8_t { running, stopping, reported };

  void run() {
    report_.started_at = wall_clock::now();
    ctx_.emplace(attempt_);
    if (attempt_.spec.io) {
      // As a run validates it: declared outputs must stay inside the work directory.
      std::vector<validation_problem> problems;
      check_module_io(attempt_.spec, problems);
      if (!problems.empty()) {
        report_.status = module_status::failed;
        report_.error = "the attempt cannot run: " + format_problems(problems);
        return finish();
      }
    }
    // Armed first: a body that returns at once, inline, cancels it again.
    if (attempt_.spec.timeout) {
      timer().expires_after(*attempt_.spec.timeout);
      timer().async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->stop(module_status::timed_out);
      });
    }
    try {
      asio::co_spawn(host_->strand, attempt_.spec.body(*ctx_),
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

  void body_returned(std::exception_ptr thrown, boost::json::value value) {
    module_status status = module_status::succeeded;
    std::string error;
    if (thrown) classify_failure(thrown, status, error);
    switch (phase_) {
      case phase::running:
        if (timer_) timer_->cancel();
        // Nobody cancelled it: an abort it met was its own doing.
        if (status == module_status::cancelled) status = module_status::failed;
        attempt_files::settle(*ctx_, attempt_.spec, status, error);
        report_.status = status;
        if (status == module_status::succeeded) {
          report_.value = std::move(value);
        } else {
          report_.error = std::move(error);
        }
        return finish();
      case phase::stopping:
        // It stopped within the grace: it ends as it was stopped, and nothing is promoted.
        timer().cancel();
        attempt_files::discard(*ctx_);
        report_.status = stop_status_;
        report_.error = stop_text();
        add_stop_detail(report_.error, false, host_->settings.cancel_grace, status, error);
        return finish();
      case phase::reported:
        attempt_files::discard(*ctx_);  // abandoned earlier; it has finally returned
        return;
    }
  }

  void stop(module_status why) {
    if (phase_ != phase::running) return;
    phase_ = phase::stopping;
    stop_status_ = why;
    signal_.emit(asio::cancellation_type::terminal);
    if (phase_ != phase::stopping) return;  // it returned inline (and finished)
    timer().expires_after(host_->settings.cancel_grace);
    timer().async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->phase_ != phase::stopping) return;
      self->report_.status = self->stop_status_;
      self->report_.error = self->stop_text();
      add_stop_detail(self->report_.error, true, self->host_->settings.cancel_grace,
                      module_status::cancelled, {});
      self->finish();
    });
  }

  // Made when first needed: most attempts have no timeout and are never stopped.
  asio::steady_timer& timer() {
    if (!timer_) timer_.emplace(host_->strand);
    return *timer_;
  }

  std::string stop_text() const {
    const bool timed_out = stop_status_ == module_status::timed_out;
    return stop_error(timed_out, timed_out ? *attempt_.spec.timeout : std::chrono::milliseconds{});
  }

  void finish() {
    phase_ = phase::reported;
    report_.finished_at = wall_clock::now();
    if (const auto& secrets = host_->settings.secrets; secrets && !secrets->empty()) {
      secrets->mask_in_place(report_.error);
      secrets->mask_in_place(report_.value);
    }
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    auto executor = asio::get_associated_executor(handler_, host_->executor);
    asio::dispatch(executor,
                   [handler = std::move(handler_), report = std::move(report_)]() mutable {
                     std::move(handler)(std::move(report));
                   });
  }

  std::shared_ptr<const attempt_host> host_;
  handler_type handler_;
  lone_attempt attempt_;
  std::optional<asio::steady_timer> timer_;  // the timeout, then the cancel grace
  std::optional<module_context> ctx_;        // made on the strand, lives as long as the body may
  asio::cancellation_signal signal_;
  phase phase_ = phase::running;
  module_status stop_status_ = module_status::cancelled;
  attempt_report report_;
};

}  // namespace
}  // namespace detail

attempt_runner::attempt_runner(executor_type executor, attempt_settings settings)
    : host_(
          std::make_shared<const detail::attempt_host>(std::move(executor), std::move(settings))) {}

attempt_runner::~attempt_runner() = default;

void attempt_runner::start(attempt_request request,
                           boost::asio::any_completion_handler<run_signature> handler) {
  std::make_shared<detail::attempt_state>(host_, std::move(request), std::move(handler))->start();
}

}  // namespace drover
