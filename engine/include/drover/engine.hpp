#pragma once
// The embedding API: run a pipeline on an executor the caller owns.

#include <drover/context.hpp>
#include <drover/event.hpp>
#include <drover/graph.hpp>
#include <drover/pipeline.hpp>
#include <drover/plan.hpp>
#include <drover/remote.hpp>
#include <drover/result.hpp>
#include <drover/slot_share.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace drover {

class secret_masker;
class run_journal;
class result_cache;

/// How the run orders ready modules of equal priority.
enum class ready_order : std::uint8_t {
  critical_path,  ///< longest remaining chain of dependent work first (graph::critical_path)
  fifo,           ///< in the order they became ready
};

/// The capability label of the OS this process runs on: "linux", "windows", "macos" or
/// "unknown".
std::string_view local_os_label() noexcept;

/// Every label local_os_label() may return, in the order docs list them: "linux", "macos",
/// "windows", "unknown". A remote worker must offer one of them (docs/protocol.md, hello).
std::span<const std::string_view> os_labels() noexcept;

/// Settings for one run.
struct run_options {
  /// In-process workers: modules that run at once in this process. May be 0 when `remote`
  /// is set: then only remote workers run modules.
  std::size_t workers = 1;
  /// In-process slots this run shares with other runs (drover/slot_share.hpp): each of its
  /// `workers` starts an attempt only while holding one of them. Unset: the run's workers are
  /// its own.
  std::shared_ptr<slot_share> shared_slots;
  std::filesystem::path log_dir;  ///< handed to bodies through module_context::log_dir()
  event_sink on_event;            ///< progress events; none are built when unset
  /// After cancelling an attempt (timeout, fail_fast, cancelled run), how long to wait for the
  /// body to stop before abandoning it. An abandoned body can never hold up the run. Keep it
  /// above the time bodies need to clean up (exec's kill_grace_ms, 2 s by default).
  std::chrono::milliseconds cancel_grace{5000};
  std::uint64_t seed = 0;  ///< seeds backoff jitter; 0 picks one from the clock
  /// Capability labels of the in-process workers, beside their OS label (local_os_label()).
  /// A module that requires a label no worker has is skipped, with the missing labels as
  /// the reason.
  std::vector<std::string> capabilities;
  /// Among ready modules of equal priority, which starts first.
  ready_order order = ready_order::critical_path;
  /// Workers in other processes (see drover/remote.hpp). Unset: only in-process workers.
  std::shared_ptr<worker_hub> remote;

  /// Where modules read their declared inputs and where their declared outputs land. Each
  /// attempt that asks for module_context::work_dir() gets a fresh directory under
  /// `<workspace>/.drover/work`, on the same file system so outputs move with one rename.
  /// Empty: the current directory.
  std::filesystem::path workspace;
  /// Leave attempts' work directories in place instead of removing them (for debugging).
  bool keep_workdirs = false;
  /// Secrets masked in module values, reasons, events and the report (drover/secrets.hpp).
  std::shared_ptr<const secret_masker> secrets;
  /// Records terminal states durably and, when opened for resume, supplies the values of
  /// modules that succeeded in an earlier run (drover/journal.hpp).
  std::shared_ptr<run_journal> journal;
  /// Supplies and stores results by fingerprint (drover/cache.hpp).
  std::shared_ptr<result_cache> cache;
  /// The whole run's time limit, counted from its start. When it passes, the run is cancelled:
  /// running attempts are stopped (always_run ones included) and unstarted modules end
  /// cancelled, each with the reason "deadline exceeded"; the run ends failed, not cancelled.
  std::optional<std::chrono::milliseconds> deadline;
  /// Names the run in every event (event::run), so that events of several runs can be told
  /// apart. Empty: one is made up (16 hex digits). `drover run --listen` uses its master's.
  std::string run_id;
};

/// Settings for an engine.
struct engine_options {
  /// 0: workers run on the caller's executor, on the run's strand, and the engine starts no
  /// threads; bodies that wait run concurrently, CPU work in bodies is serialized. N > 0: the
  /// engine owns a pool of N threads and gives each worker its own strand there (run state
  /// stays on the caller's executor). Destroy the engine only after its runs completed.
  std::size_t worker_threads = 0;
};

/// Runs pipelines. Holds no run state: several runs may proceed at once.
///
///     boost::asio::io_context io;
///     drover::engine engine{io.get_executor()};
///     engine.async_run(std::move(p), [](drover::run_report r) { ... });
///     io.run();
///
/// The completion signature is void(run_report); a run never completes with an error code:
/// validation problems come back as run_status::invalid with report.problems filled in.
/// Cancelling through the completion handler's cancellation slot cancels the whole run; it
/// ends promptly with status cancelled.
class engine {
 public:
  using executor_type = boost::asio::any_io_executor;
  using run_signature = void(run_report);

  explicit engine(executor_type executor, engine_options options = {});
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  executor_type get_executor() const noexcept { return executor_; }

  template <boost::asio::completion_token_for<run_signature> Token =
                boost::asio::default_completion_token_t<executor_type>>
  auto async_run(pipeline p, run_options options, Token&& token = Token{}) {
    return boost::asio::async_initiate<Token, run_signature>(
        [this](boost::asio::any_completion_handler<run_signature> handler, pipeline p,
               run_options options) {
          start(std::move(p), std::move(options), std::move(handler));
        },
        token, std::move(p), std::move(options));
  }

  template <boost::asio::completion_token_for<run_signature> Token =
                boost::asio::default_completion_token_t<executor_type>>
  auto async_run(pipeline p, Token&& token = Token{}) {
    return async_run(std::move(p), run_options{}, std::forward<Token>(token));
  }

  /// Runs a plan prepared (validated, expanded, compiled) beforehand, so the run does no
  /// validation of its own.
  template <boost::asio::completion_token_for<run_signature> Token =
                boost::asio::default_completion_token_t<executor_type>>
  auto async_run(prepared_pipeline p, run_options options, Token&& token = Token{}) {
    return boost::asio::async_initiate<Token, run_signature>(
        [this](boost::asio::any_completion_handler<run_signature> handler, prepared_pipeline p,
               run_options options) {
          start(std::move(p), std::move(options), std::move(handler));
        },
        token, std::move(p), std::move(options));
  }

 private:
  void start(pipeline p, run_options options,
             boost::asio::any_completion_handler<run_signature> handler);
  void start(prepared_pipeline p, run_options options,
             boost::asio::any_completion_handler<run_signature> handler);

  executor_type executor_;
  struct thread_pool_holder;
  std::unique_ptr<thread_pool_holder> pool_;
};

}  // namespace drover
