#pragma once
// What a module body sees of its run: its identity, its params and its dependencies' results.

#include <drover/module.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>

#include <cstdint>
#include <filesystem>
#include <string_view>

namespace drover {

class secret_masker;

namespace detail {
struct run_state;
struct worker;
struct attempt_files;
struct lone_attempt;
}  // namespace detail

/// Passed to a module body for one attempt. Valid until the body returns.
class module_context {
 public:
  /// Made by the engine for each attempt.
  module_context(detail::run_state& run, std::uint32_t index, std::uint32_t attempt,
                 const detail::worker& worker) noexcept
      : run_(&run), worker_(&worker), index_(index), attempt_(attempt) {}
  /// Made by drover::attempt_runner for an attempt outside a run.
  explicit module_context(const detail::lone_attempt& attempt) noexcept;

  std::string_view id() const noexcept;
  std::uint32_t attempt() const noexcept { return attempt_; }  ///< 1 for the first attempt
  std::string_view worker() const noexcept;                    ///< e.g. "local-0"
  const module_spec& spec() const noexcept;
  const boost::json::value& params() const noexcept { return spec().params; }

  /// For an instance of a matrix module: its target, what is between the brackets of its id
  /// ("linux" for `build[linux]`, "os=linux,compiler=gcc" for named axes). Empty otherwise.
  std::string_view matrix_target() const noexcept;
  /// For an instance of a matrix module: its value on `axis` ("" names the list form's axis).
  /// Empty when the module has no such axis.
  std::string_view matrix_value(std::string_view axis) const noexcept;

  /// Directory for per-module log files (run_options::log_dir); empty if none was set.
  const std::filesystem::path& log_dir() const noexcept;

  /// The run's secrets (run_options::secrets), or nullptr: a kind that writes logs of its own
  /// masks them with these.
  const secret_masker* secrets() const noexcept;

  /// The run's workspace (run_options::workspace) as an absolute path: where declared outputs
  /// land and what a kind resolves relative paths against (exec's `cwd`).
  const std::filesystem::path& workspace() const noexcept;

  /// This attempt's scratch directory, `<workspace>/.drover/work/<owner>/<id>.<attempt>.<random>`
  /// (`<owner>` is this process's directory, see docs/workspace.md),
  /// created empty on the first call; later calls return the same path. Files the module
  /// declares as outputs are moved from here into the workspace when the attempt succeeds,
  /// and the directory is removed when the attempt ends (unless run_options::keep_workdirs).
  /// An attempt that never calls it costs nothing. Throws std::runtime_error naming the path
  /// and the OS error when the directory cannot be created.
  ///
  ///     std::ofstream{ctx.work_dir() / "report.txt"} << "all good\n";  // outputs: report.txt
  const std::filesystem::path& work_dir();

  /// Says that this attempt writes its files in the workspace itself rather than in its work
  /// directory (exec does so when `cwd` is set). When it succeeds, its declared outputs are
  /// then looked for in the workspace, where they already are: each literal output must exist
  /// there, and nothing is moved. Call it before the body returns.
  void writes_in_workspace() noexcept { writes_in_workspace_ = true; }

  /// The worker's executor (a strand): where the body runs.
  boost::asio::any_io_executor get_executor() const noexcept;

  /// The value of dependency `dep`, which must be one of this module's declared deps
  /// (std::invalid_argument otherwise). Null when that dependency did not succeed, which an
  /// always_run module can see.
  const boost::json::value& result(std::string_view dep) const;

  /// The dependency's value converted with boost::json::value_to<T>:
  ///
  ///     auto files = ctx.result<std::vector<std::string>>("list_files");
  template <class T>
  T result(std::string_view dep) const {
    return boost::json::value_to<T>(result(dep));
  }

  /// Terminal status of dependency `dep` (std::invalid_argument if not a declared dep).
  module_status status_of(std::string_view dep) const;

 private:
  std::uint32_t dep_index(std::string_view dep) const;
  bool keep_workdirs() const noexcept;
  friend struct detail::attempt_files;

  detail::run_state* run_ = nullptr;
  const detail::worker* worker_ = nullptr;
  const detail::lone_attempt* lone_ = nullptr;  // instead of run_ and worker_, outside a run
  std::uint32_t index_;
  std::uint32_t attempt_;
  std::filesystem::path work_dir_;  // empty until work_dir() is called
  bool writes_in_workspace_ = false;
};

}  // namespace drover
