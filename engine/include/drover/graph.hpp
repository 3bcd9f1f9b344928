#pragma once
// Validation and the dense dependency graph a run executes.

#include <drover/pipeline.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace drover {

/// What kind of thing is wrong: lets a tool place a problem (a file position, a dependency
/// entry) without reading its message.
enum class problem_kind : std::uint8_t {
  other,
  empty_id,            ///< `index` names the module (its id is empty)
  invalid_id,          ///< whitespace or control characters in the id
  duplicate_id,        ///< ids: {the id}; `index` is the later module
  unknown_dependency,  ///< ids: {the dependency named}
  self_dependency,     ///< ids: {the module's id}
  dependency_cycle,    ///< ids: the cycle, a -> b -> ... -> a, `module` first (a needs b)
  missing_body,        ///< neither a body nor a kind
  unresolved_kind,     ///< a kind no registry turned into a body
  invalid_value,       ///< a policy's value (retries, timeout, backoff, pools) is out of range
  invalid_constraint,  ///< a capability, key, claim or pool setting
  invalid_matrix,      ///< a matrix that cannot be expanded, or was not
  invalid_io,          ///< an input, output or input_env entry
  output_conflict,     ///< ids: {the other module}: two unordered modules may write one output
  too_many_modules,
};

/// One thing wrong with a pipeline, as data: what (`kind`), where (`module`, `index`, `field`)
/// and whom it involves (`ids`). `message` says it all in a sentence for logs; a tool that
/// shows problems in a file places them by the fields, not by the message.
struct validation_problem {
  std::string module;   ///< the module's id; empty for pipeline-level problems
  std::string field;    ///< "deps", "retries", "backoff.jitter", "outputs[2]", ...
  std::string message;  ///< complete sentence, e.g. "dependency cycle: a -> b -> a"
  problem_kind kind = problem_kind::other;
  /// The module's position in the pipeline that was checked (after matrix expansion: the
  /// instance's), or npos for pipeline-level problems.
  std::uint32_t index = npos;
  /// The ids involved, as the kind says.
  std::vector<std::string> ids{};

  static constexpr std::uint32_t npos = static_cast<std::uint32_t>(-1);
};

/// The dependency structure of a valid pipeline: module i is the pipeline's module i; edges
/// are stored in compressed sparse rows in both directions. Immutable once built. A plan's
/// graph reads its predecessors from the plan's pipeline, where prepare() resolved them, so
/// that no edge is stored three times.
class graph {
 public:
  using index = std::uint32_t;

  graph() = default;
  graph(graph&&) noexcept = default;
  graph& operator=(graph&&) noexcept = default;
  graph(const graph& other);
  graph& operator=(const graph& other);

  std::size_t size() const noexcept { return critical_path_.size(); }
  std::span<const index> successors(index i) const noexcept {
    return {succ_targets_.data() + succ_offsets_[i], succ_targets_.data() + succ_offsets_[i + 1]};
  }
  std::span<const index> predecessors(index i) const noexcept {
    return {pred_targets_.data() + pred_offsets_[i], pred_targets_.data() + pred_offsets_[i + 1]};
  }
  std::uint32_t in_degree(index i) const noexcept {
    return pred_offsets_[i + 1] - pred_offsets_[i];
  }
  /// How many modules the longest chain from i to a module nothing depends on has, i
  /// included: the work that cannot start before i finishes. Among ready modules of equal
  /// priority, the run starts the one with the longest chain first.
  std::uint32_t critical_path(index i) const noexcept { return critical_path_[i]; }

  /// Modules grouped into waves: wave 0 has no dependencies, wave k depends only on earlier
  /// waves. This is the order `drover plan` shows; a run may overlap waves.
  std::vector<std::vector<index>> waves() const;

 private:
  friend struct graph_builder;
  // The predecessors: spans over own_pred_* for a graph of its own (build_graph), over the
  // pipeline's resolved dependencies for a plan's.
  std::vector<std::uint32_t> own_pred_offsets_, own_pred_targets_;
  std::span<const std::uint32_t> pred_offsets_, pred_targets_;
  std::vector<std::uint32_t> succ_offsets_;
  std::vector<index> succ_targets_;
  std::vector<std::uint32_t> critical_path_;
};

/// Either a graph or every problem found (never both).
struct graph_result {
  std::optional<drover::graph> graph;
  std::vector<validation_problem> problems;
  bool ok() const noexcept { return graph.has_value(); }
};

/// Validates `p` and builds its graph, reporting every problem at once: empty or duplicate ids,
/// unknown dependencies, self-dependencies, cycles (printed as `a -> b -> c -> a`), a module
/// with neither body nor kind, invalid values (negative retries, non-positive timeouts,
/// backoff multiplier below 1, jitter outside [0, 1]) and invalid constraints (an unknown
/// pool, pool_slots of 0 or above the pool's size, a malformed claim glob, an empty
/// capability or not_in_parallel key, a matrix that was not expanded), invalid module_io
/// entries (a malformed input or output glob, an output that is absolute or has a '..'
/// segment, an input_env entry that is not a variable name), and two modules that can write
/// the same output while neither depends on the other and their claims do not conflict
/// (docs/workspace.md).
graph_result build_graph(const pipeline& p);

/// Replaces every module that has a matrix by its instances (see matrix_spec), in place and in
/// order, and points dependencies on such a module at all of its instances (a dependency on one
/// instance, `build[linux]`, stays). Each instance copies the module, has `instance` set and
/// `matrix` reset, and requires its values on the requires axes as capabilities.
///
/// Returns every problem found, each naming its module and field (`matrix.axes`,
/// `matrix.include`, ...): a matrix on a module whose id is empty, has brackets or is shared
/// with another module; no axes, an axis without values, an empty or repeated value, a repeated
/// axis, the list form mixed with named axes; a name or value containing '[', ']', ',', '=' or
/// whitespace; an exclude or requires_axes entry naming an unknown axis; an empty include or
/// exclude entry; no instance or more than 65,536; two instances, or an instance and a module,
/// with the same id. When it returns problems, the content of `p` is unspecified: do not run
/// it. A pipeline without any matrix is left untouched at the cost of one scan.
std::vector<validation_problem> expand_matrix(pipeline& p);

/// `problems` as one message per line.
std::string format_problems(const std::vector<validation_problem>& problems);

}  // namespace drover
