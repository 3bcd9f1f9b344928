#include <drover/attempt.hpp>

#include <drover/secrets.hpp>
#include "attempt_control.hpp"
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
    : executor(std::move(ex)), strand(serialized(executor)), settings(std::move(s)) {
  environment.workspace = absolute_workspace(settings.workspace);
  environment.log_dir = settings.log_dir;
  environment.secrets = settings.secrets;
  environment.keep_workdirs = settings.keep_workdirs;
  environment.note = settings.note;
}

std::optional<dependency_results::entry> lone_attempt::find(std::uint32_t,
                                                            std::string_view id) const {
  // An attempt has few dependencies: a scan is what a run does too.
  for (const dependency_outcome& d : dependencies) {
    if (d.id == id) return entry{d.status, d.value.get()};
  }
  return std::nullopt;
}

std::vector<std::string_view> lone_attempt::ids(std::uint32_t) const {
  std::vector<std::string_view> out;
  out.reserve(dependencies.size());
  for (const dependency_outcome& d : dependencies)
    out.emplace_back(d.id);
  return out;
}

namespace {

using handler_type = asio::any_completion_handler<attempt_runner::run_signature>;

// One attempt from start to report, on the runner's strand: the attempt_control a run uses for
// its timed attempts, plus what only a lone attempt needs (checking its outputs, its times,
// masking its report).
class attempt_state : public std::enable_shared_from_this<attempt_state> {
 public:
  attempt_state(std::shared_ptr<const attempt_host> host, attempt_request request,
                handler_type handler)
      : host_(std::move(host)), handler_(std::move(handler)) {
    attempt_.spec = std::move(request.spec);
    attempt_.dependencies = std::move(request.dependencies);
    attempt_number_ = request.attempt;
  }

  void start() {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) {
      // The slot's handler runs wherever the caller emits; hop onto the strand.
      slot.assign([weak = weak_from_this()](asio::cancellation_type) {
        if (auto self = weak.lock()) {
          asio::post(self->host_->strand, [self] {
            self->stop_requested_ = true;  // before run(): run() stops it at once
            if (auto control = self->control_.lock()) control->stop(module_status::cancelled);
          });
        }
      });
    }
    asio::dispatch(host_->strand, [self = shared_from_this()] { self->run(); });
  }

 private:
  void run() {
    report_.started_at = wall_clock::now();
    if (attempt_.spec.io) {
      // As a run validates it: declared outputs must stay inside the work directory.
      std::vector<validation_problem> problems;
      check_module_io(module_view{attempt_.spec}, problems);
      if (!problems.empty()) {
        report_.status = module_status::failed;
        report_.error = "the attempt cannot run: " + format_problems(problems);
        return finish();
      }
    }
    attempt_scope scope;
    scope.module = module_view{attempt_.spec};
    scope.attempt = attempt_number_;
    scope.worker = host_->settings.worker_name;
    scope.executor = &host_->strand;
    scope.environment = &host_->environment;
    scope.dependencies = &attempt_;
    auto control = std::make_shared<attempt_control>(
        std::move(scope), attempt_.spec.timeout, host_->settings.cancel_grace, shared_from_this());
    control_ = control;
    control->start([self = shared_from_this()](supervised_result result) {
      self->report_.status = result.outcome.status;
      self->report_.value = std::move(result.outcome.value);
      self->report_.error = std::move(result.outcome.error);
      self->finish();
    });
    if (stop_requested_) control->stop(module_status::cancelled);
  }

  void finish() {
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
  std::uint32_t attempt_number_ = 1;
  // Weak: the control keeps this state alive until the body has returned (its keepalive), so
  // a strong reference back would be a cycle that leaks every attempt a worker runs.
  std::weak_ptr<attempt_control> control_;
  bool stop_requested_ = false;
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
