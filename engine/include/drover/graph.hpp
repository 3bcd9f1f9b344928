#pragma once
// Validation and the dense dependency graph a run executes.

#include <drover/pipeline.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace drover {

/// One thing wrong with a pipeline. `module` is empty for pipeline-level problems.
struct validation_problem {
  std::string module;
  std::string field;
  std::string message;  ///< complete sentence, e.g. "dependency cycle: a -> b -> a"
};

/// The dependency structure of a valid pipeline: module i is pipeline.modules[i]; edges are
/// stored in compressed sparse rows in both directions. Immutable once built.
class graph {
 public:
  using index = std::uint32_t;

  std::size_t size() const noexcept { return in_degree_.size(); }
  std::span<const index> successors(index i) const noexcept {
    return {succ_targets_.data() + succ_offsets_[i], succ_targets_.data() + succ_offsets_[i + 1]};
  }
  std::span<const index> predecessors(index i) const noexcept {
    return {pred_targets_.data() + pred_offsets_[i], pred_targets_.data() + pred_offsets_[i + 1]};
  }
  std::uint32_t in_degree(index i) const noexcept { return in_degree_[i]; }

  /// Modules grouped into waves: wave 0 has no dependencies, wave k depends only on earlier
  /// waves. This is the order `drover plan` shows; a run may overlap waves.
  std::vector<std::vector<index>> waves() const;

 private:
  friend struct graph_builder;
  std::vector<std::uint32_t> succ_offsets_, pred_offsets_;
  std::vector<index> succ_targets_, pred_targets_;
  std::vector<std::uint32_t> in_degree_;
};

/// Either a graph or every problem found (never both).
struct graph_result {
  std::optional<drover::graph> graph;
  std::vector<validation_problem> problems;
  bool ok() const noexcept { return graph.has_value(); }
};

/// Validates `p` and builds its graph, reporting every problem at once: empty or duplicate ids,
/// unknown dependencies, self-dependencies, cycles (printed as `a -> b -> c -> a`), a module
/// with neither body nor kind, and invalid values (negative retries, non-positive timeouts,
/// backoff multiplier below 1, jitter outside [0, 1]).
graph_result build_graph(const pipeline& p);

/// `problems` as one message per line.
std::string format_problems(const std::vector<validation_problem>& problems);

}  // namespace drover
