#pragma once
// What a module_context is a view of: one attempt of one module, and the environment every
// attempt of a run (or of an attempt_runner) shares. Made by the engine; bodies only see the
// module_context.

#include <drover/module.hpp>
#include <drover/pipeline.hpp>
#include <drover/status.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace drover {
class secret_masker;
}

namespace drover::detail {

/// What every attempt of one run, or of one attempt_runner, shares. Immutable while they run.
struct run_environment {
  std::filesystem::path workspace;  ///< absolute (absolute_workspace)
  std::filesystem::path log_dir;
  std::shared_ptr<const secret_masker> secrets;
  bool keep_workdirs = false;
  /// Where module_context::note() lines go; callable from any thread. Unset: dropped.
  std::function<void(std::string)> note;
};

/// Where a body's ctx.result(id) and ctx.status_of(id) look: a run's results, or the results
/// an attempt_runner was given.
class dependency_results {
 public:
  struct entry {
    module_status status = module_status::pending;
    const boost::json::value* value = nullptr;  ///< null pointer: JSON null
  };
  /// The result of dependency `id` of module `module`, or nothing when `id` is not one of its
  /// dependencies.
  virtual std::optional<entry> find(std::uint32_t module, std::string_view id) const = 0;
  /// The ids of every dependency of module `module`, in declaration order.
  virtual std::vector<std::string_view> ids(std::uint32_t module) const = 0;

 protected:
  ~dependency_results() = default;
};

/// One attempt. Lives on the stack of the worker that runs it, or with the attempt's state
/// when the body runs as a coroutine of its own, until the body returned.
struct attempt_scope {
  module_view module;       ///< what the attempt runs: a run's module, or a lone module_spec
  std::uint32_t index = 0;  ///< the run's index of the module (what `dependencies` wants)
  std::uint32_t attempt = 1;
  std::string_view worker;
  /// Where the body runs (a strand); outlives the attempt.
  const boost::asio::any_io_executor* executor = nullptr;
  const run_environment* environment = nullptr;
  const dependency_results* dependencies = nullptr;
  std::filesystem::path work_dir;  ///< empty until the body asks for it
  /// The body wrote its files in the workspace (module_context::writes_in_workspace): its
  /// outputs are checked there instead of promoted from the work directory.
  bool writes_in_workspace = false;
  /// False when the module is known to declare no inputs or outputs (a run reads that from
  /// its plan's records): settling the attempt then never looks at the module's rare fields,
  /// which for a module with other rare fields would be a cache miss per attempt.
  bool may_have_io = true;
};

}  // namespace drover::detail
