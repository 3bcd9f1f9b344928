#pragma once
// A pipeline compiled for running: validated, its matrix expanded, its dependencies resolved
// to indices, and what the scheduler reads per module packed into a small record.
//
//     drover::prepare_result prepared = drover::prepare(std::move(pipeline));
//     if (!prepared.ok()) { print(prepared.problems); return 2; }
//     engine.async_run(std::move(*prepared.plan), options, handler);
//
// Prepare once and run the plan to keep validation out of the run (drover run and
// drover-bench do). A plan is immutable; a run reads it and never copies what it holds.

#include <drover/graph.hpp>
#include <drover/pipeline.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace drover {

namespace detail {

/// What the scheduler reads of a module on every start and every end, packed so that a run of
/// a million modules touches one small record per module instead of its whole description.
struct module_record {
  std::int32_t priority = 0;
  std::uint32_t critical_path = 1;  ///< graph::critical_path
  std::uint16_t retries = 0;        ///< the module's, else the pipeline's default
  std::uint16_t flags = 0;          ///< module_flag bits

  bool has(std::uint16_t flag) const noexcept { return (flags & flag) != 0; }
};

/// Bits of module_record::flags.
namespace module_flag {
inline constexpr std::uint16_t always_run = 1 << 0;
inline constexpr std::uint16_t ignore_failure = 1 << 1;
inline constexpr std::uint16_t has_skip_if = 1 << 2;
inline constexpr std::uint16_t has_timeout = 1 << 3;      ///< its own or the default
inline constexpr std::uint16_t pin_local = 1 << 4;        ///< never on a remote worker
inline constexpr std::uint16_t requires_labels = 1 << 5;  ///< required_capabilities non-empty
inline constexpr std::uint16_t cacheable = 1 << 6;        ///< the fingerprint cache may store it
}  // namespace module_flag

}  // namespace detail

struct prepare_result;

class plan {
 public:
  using index = std::uint32_t;

  std::size_t size() const noexcept { return records_.size(); }
  const drover::pipeline& pipeline() const noexcept { return pipeline_; }
  const drover::graph& graph() const noexcept { return graph_; }

  std::string_view id(index i) const noexcept { return pipeline_.modules[i].id; }
  const module_spec& spec(index i) const noexcept { return pipeline_.modules[i]; }
  const detail::module_record& record(index i) const noexcept { return records_[i]; }
  std::span<const index> successors(index i) const noexcept { return graph_.successors(i); }
  std::span<const index> predecessors(index i) const noexcept { return graph_.predecessors(i); }
  execution_mode mode() const noexcept { return pipeline_.mode; }

  /// The module's time limit per attempt: its own, else the pipeline's default.
  std::optional<std::chrono::milliseconds> timeout(index i) const noexcept {
    const auto& m = pipeline_.modules[i];
    return m.timeout ? m.timeout : pipeline_.defaults.timeout;
  }
  /// The module's backoff between attempts: its own, else the pipeline's default.
  const backoff_policy& backoff(index i) const noexcept {
    const auto& m = pipeline_.modules[i];
    return m.backoff ? *m.backoff : pipeline_.defaults.backoff;
  }
  /// The module's constraints, or nullptr when it has none.
  const module_constraints* constraints(index i) const noexcept {
    return pipeline_.modules[i].constraints.get();
  }
  /// The index of the module with this id, or nothing. Linear: for tools, not hot paths.
  std::optional<index> find(std::string_view id) const noexcept;

  /// Takes the pipeline and its graph apart again (tools that edit a prepared pipeline).
  std::pair<drover::pipeline, drover::graph> release() && {
    return {std::move(pipeline_), std::move(graph_)};
  }

 private:
  friend prepare_result prepare(drover::pipeline p);
  plan(drover::pipeline p, drover::graph g);

  drover::pipeline pipeline_;
  drover::graph graph_;
  std::vector<detail::module_record> records_;
};

/// The name earlier versions gave a plan.
using prepared_pipeline = plan;

/// Either a plan or every problem found (never both).
struct prepare_result {
  std::optional<drover::plan> plan;
  std::vector<validation_problem> problems;
  bool ok() const noexcept { return plan.has_value(); }
};

/// expand_matrix, then build_graph, then the records.
prepare_result prepare(pipeline p);

}  // namespace drover
