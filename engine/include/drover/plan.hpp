#pragma once
// A pipeline compiled for running: validated, its matrix expanded, its dependencies resolved
// to indices, what the scheduler reads per module in a small record.
//
//     drover::prepare_result prepared = drover::prepare(std::move(pipeline));
//     if (!prepared.ok()) { print(prepared.problems); return 2; }
//     engine.async_run(std::move(*prepared.plan), options, handler);
//
// Prepare once and run the plan to keep validation out of the run (drover run and
// drover-bench do). A plan owns the pipeline it was made from, whose storage it reuses: the
// resolved dependencies are the graph's predecessors. Nothing per module is stored twice.

#include <drover/detail/constraint_table.hpp>
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

struct prepare_result;

class plan {
 public:
  using index = std::uint32_t;

  plan(plan&&) noexcept = default;
  plan& operator=(plan&&) noexcept = default;

  std::size_t size() const noexcept { return pipeline_.size(); }
  const drover::pipeline& pipeline() const noexcept { return pipeline_; }
  const drover::graph& graph() const noexcept { return graph_; }

  std::string_view id(index i) const noexcept { return pipeline_.id(i); }
  module_view module(index i) const noexcept { return pipeline_.module(i); }
  const module_body& body(index i) const noexcept { return pipeline_.bodies_[i]; }
  /// What the scheduler reads on every start and end; retries and the timeout flag resolved
  /// against the pipeline's defaults.
  const detail::module_record& record(index i) const noexcept { return pipeline_.records_[i]; }
  std::span<const index> successors(index i) const noexcept { return graph_.successors(i); }
  std::span<const index> predecessors(index i) const noexcept { return graph_.predecessors(i); }
  std::uint32_t critical_path(index i) const noexcept { return graph_.critical_path(i); }
  execution_mode mode() const noexcept { return pipeline_.mode; }

  /// The module's time limit per attempt: its own, else the pipeline's default.
  std::optional<std::chrono::milliseconds> timeout(index i) const noexcept {
    if (const auto* e = pipeline_.extras(i); e && e->timeout) return e->timeout;
    return pipeline_.defaults.timeout;
  }
  /// The module's backoff between attempts: its own, else the pipeline's default.
  const backoff_policy& backoff(index i) const noexcept {
    if (const auto* e = pipeline_.extras(i); e && e->backoff) return *e->backoff;
    return pipeline_.defaults.backoff;
  }
  /// The module's constraints, or nullptr when it has none.
  const module_constraints* constraints(index i) const noexcept {
    const auto* e = pipeline_.extras(i);
    return e ? e->constraints.get() : nullptr;
  }
  /// The exclusive constraints (pools, keys, claims, run_alone) compiled to numbers, for the
  /// run's constraint gate.
  const detail::constraint_table& constraint_table() const noexcept { return constraints_; }
  /// The index of the module with this id, or nothing.
  std::optional<index> find(std::string_view id) const noexcept;

 private:
  friend prepare_result prepare(drover::pipeline p);
  plan(drover::pipeline p, drover::graph g, std::vector<index> module_of);

  drover::pipeline pipeline_;
  drover::graph graph_;
  std::vector<index> module_of_;  // per name symbol: the module with that id
  detail::constraint_table constraints_;
};

/// The name earlier versions gave a plan.
using prepared_pipeline = plan;

/// Either a plan or every problem found (never both).
struct prepare_result {
  std::optional<drover::plan> plan;
  std::vector<validation_problem> problems;
  bool ok() const noexcept { return plan.has_value(); }
};

/// expand_matrix, then validation, then the graph: the pipeline's storage becomes the plan's.
prepare_result prepare(pipeline p);

}  // namespace drover
