#pragma once
// What a module body sees of its run: its identity, its params and its dependencies' results.

#include <drover/module.hpp>
#include <drover/pipeline.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace drover {

class secret_masker;

namespace detail {
struct attempt_scope;
}  // namespace detail

/// Passed to a module body for one attempt: a view of that attempt. Valid until the body
/// returns.
class module_context {
 public:
  /// Made by the engine (a run's worker, or attempt_runner) for each attempt.
  explicit module_context(detail::attempt_scope& scope) noexcept : scope_(&scope) {}

  std::string_view id() const noexcept;
  std::uint32_t attempt() const noexcept;    ///< 1 for the first attempt
  std::string_view worker() const noexcept;  ///< e.g. "local-0"
  /// The module's description (its id, kind, params, io, matrix instance, ...).
  module_view spec() const noexcept;
  const boost::json::value& params() const noexcept;

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

  /// Whether work directories outlive their attempts (run_options::keep_workdirs,
  /// attempt_settings::keep_workdirs, `--keep-workdirs`): a kind that writes files of its own
  /// beside work_dir() keeps them too.
  bool keep_workdirs() const noexcept;

  /// Says that this attempt writes its files in the workspace itself rather than in its work
  /// directory (exec does so when `cwd` is set). When it succeeds, its declared outputs are
  /// then looked for in the workspace, where they already are: each literal output must exist
  /// there, and nothing is moved. Call it before the body returns.
  void writes_in_workspace() noexcept;

  /// Adds a line to the run's notes (run_report::notes; `drover run` prints each as `note:`
  /// after its summary): for what the user should know about an attempt that did not fail it,
  /// such as a log file that could not be written. Thread-safe. Under an attempt_runner the
  /// line goes to attempt_settings::note (`drover worker` logs it); without one it is dropped.
  void note(std::string text) const;

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

  /// The ids of this module's dependencies: every id result() and status_of() accept (a
  /// dependency on a matrix module is one per instance, `build[linux]`).
  std::vector<std::string_view> dependency_ids() const;

 private:
  detail::attempt_scope* scope_;
};

}  // namespace drover
