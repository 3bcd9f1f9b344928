#pragma once
// The workloads: dependency graphs as plain compressed rows, built once per (workload, size) and
// shared by every contender, so that each one runs exactly the same shape.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace drover::bench {

using node = std::uint32_t;

enum class workload : std::uint8_t {
  linear_chain,      ///< 0 -> 1 -> 2 -> ...: no parallelism, pure hand-off latency
  binary_tree,       ///< node i releases 2i+1 and 2i+2: fan-out, widening ready set
  wavefront,         ///< grid, each cell after its left and upper neighbour: fan-in of 2
  independent,       ///< no edges: raw dispatch throughput
  independent_busy,  ///< no edges, each body spins ~1 us: overhead next to real work
  random_dag,        ///< levels of ~sqrt(n) nodes, 1-4 edges into the next level, fixed seed
};

inline constexpr std::array all_workloads = {
    workload::linear_chain, workload::binary_tree,      workload::wavefront,
    workload::independent,  workload::independent_busy, workload::random_dag,
};

std::string_view to_string(workload w) noexcept;
std::optional<workload> parse_workload(std::string_view name) noexcept;
/// One line on what the workload measures, for --help and the docs.
std::string_view what_it_stresses(workload w) noexcept;

/// A dependency graph on nodes 0..size()-1. Every edge goes from a lower to a higher index, so
/// index order is a valid execution order.
class shape {
 public:
  shape(workload kind, std::size_t nodes);

  workload kind() const noexcept { return kind_; }
  std::size_t size() const noexcept { return succ_offsets_.size() - 1; }
  std::size_t edge_count() const noexcept { return succ_targets_.size(); }
  bool busy_bodies() const noexcept { return kind_ == workload::independent_busy; }

  std::span<const node> successors(node i) const noexcept {
    return {succ_targets_.data() + succ_offsets_[i], succ_targets_.data() + succ_offsets_[i + 1]};
  }
  std::span<const node> predecessors(node i) const noexcept {
    return {pred_targets_.data() + pred_offsets_[i], pred_targets_.data() + pred_offsets_[i + 1]};
  }
  std::uint32_t in_degree(node i) const noexcept { return pred_offsets_[i + 1] - pred_offsets_[i]; }
  /// Nodes without predecessors, in index order.
  const std::vector<node>& sources() const noexcept { return sources_; }

 private:
  workload kind_;
  std::vector<std::uint32_t> succ_offsets_, pred_offsets_;
  std::vector<node> succ_targets_, pred_targets_;
  std::vector<node> sources_;
};

}  // namespace drover::bench
