#pragma once
// One attempt of one module outside a pipeline run: what a remote worker does with each
// assignment. The attempt has the semantics it has in a run, without the run's cost (a run of
// one module costs about ten times more than the attempt itself when the body is quick).
//
//     drover::attempt_settings settings;
//     settings.workspace = "/srv/ci";
//     drover::attempt_runner runner{io.get_executor(), settings};
//
//     drover::attempt_request request;
//     request.spec.id = "test";
//     request.spec.body = kinds.make("exec", params);
//     request.spec.timeout = std::chrono::minutes{10};
//     request.dependencies.push_back({"build", drover::module_status::succeeded, build_value});
//     runner.async_run(std::move(request), [](drover::attempt_report r) {
//       // r.status: succeeded, failed, timed_out or cancelled
//     });
//
// What the body sees is the module_context of a run: ctx.id(), ctx.params(), ctx.result(dep)
// and ctx.status_of(dep) for the dependencies given in the request, ctx.matrix_target(),
// ctx.log_dir(), ctx.workspace() and ctx.work_dir(). spec.timeout ends the attempt timed_out;
// emitting the completion handler's cancellation slot ends it cancelled; a body that ignores
// either for cancel_grace is abandoned. Outputs (spec.io->outputs) are promoted from the work
// directory into the workspace when the attempt succeeds, exactly as in a run.

#include <drover/context.hpp>
#include <drover/module.hpp>
#include <drover/result.hpp>
#include <drover/status.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace drover {

class secret_masker;

namespace detail {
struct attempt_host;
}  // namespace detail

/// A dependency's outcome as the attempt's body reads it through ctx.result(id) and
/// ctx.status_of(id).
struct dependency_outcome {
  std::string id;
  module_status status = module_status::succeeded;
  /// Shared, so that many attempts read one copy. Null pointer: JSON null.
  std::shared_ptr<const boost::json::value> value;
};

/// What every attempt of an attempt_runner shares: what run_options says for a run.
struct attempt_settings {
  std::string worker_name = "local-0";  ///< module_context::worker()
  std::filesystem::path log_dir;        ///< module_context::log_dir()
  /// Where work directories are made and outputs land (run_options::workspace). Empty: the
  /// current directory when the runner is made.
  std::filesystem::path workspace;
  bool keep_workdirs = false;                    ///< run_options::keep_workdirs
  std::shared_ptr<const secret_masker> secrets;  ///< masked in the value and the error
  /// After cancelling an attempt (its timeout, or the caller's cancellation), how long to wait
  /// for the body to stop before abandoning it.
  std::chrono::milliseconds cancel_grace{5000};
  /// Where module_context::note() lines go; called from the attempt's strand. Unset: dropped.
  std::function<void(std::string)> note;
};

/// One attempt to run.
struct attempt_request {
  /// Its body, id, kind, params, timeout, io (outputs) and instance (matrix target) apply;
  /// retries, deps and the scheduling fields are the caller's business.
  module_spec spec;
  std::uint32_t attempt = 1;  ///< module_context::attempt()
  /// The dependencies whose results the body may read; any other id it asks for is an error,
  /// as in a run.
  std::vector<dependency_outcome> dependencies;
};

/// How an attempt ended.
struct attempt_report {
  module_status status = module_status::failed;  ///< succeeded, failed, timed_out or cancelled
  boost::json::value value;                      ///< the body's value when succeeded
  std::string error;                             ///< why not, when not succeeded
  wall_clock::time_point started_at{};
  wall_clock::time_point finished_at{};
};

/// Runs attempts one by one or many at once, on one strand of the executor (as a run without a
/// thread pool runs all its workers on one strand): bodies that wait run concurrently, CPU work
/// in bodies is serialized. Given a strand (boost::asio::strand<any_io_executor>), it uses that
/// one. Make one per worker and call async_run for each attempt. Thread-safe.
class attempt_runner {
 public:
  using executor_type = boost::asio::any_io_executor;
  using run_signature = void(attempt_report);

  attempt_runner(executor_type executor, attempt_settings settings);
  ~attempt_runner();
  attempt_runner(const attempt_runner&) = delete;
  attempt_runner& operator=(const attempt_runner&) = delete;

  /// Completion signature void(attempt_report). The report arrives once, after the body
  /// returned or was abandoned. Emitting the handler's cancellation slot cancels the attempt
  /// (it then ends cancelled, unless it had already ended).
  template <boost::asio::completion_token_for<run_signature> Token =
                boost::asio::default_completion_token_t<executor_type>>
  auto async_run(attempt_request request, Token&& token = Token{}) {
    return boost::asio::async_initiate<Token, run_signature>(
        [this](boost::asio::any_completion_handler<run_signature> handler,
               attempt_request request) { start(std::move(request), std::move(handler)); },
        token, std::move(request));
  }

 private:
  void start(attempt_request request, boost::asio::any_completion_handler<run_signature> handler);

  std::shared_ptr<const detail::attempt_host> host_;
};

}  // namespace drover
