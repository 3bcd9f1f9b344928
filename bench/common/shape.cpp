#include "common/shape.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace drover::bench {

namespace {

using edge_list = std::vector<std::pair<node, node>>;

// Rows of a near-square grid that holds `n` cells; the last row may be partial, so any n works.
std::size_t grid_rows(std::size_t n) {
  auto rows = static_cast<std::size_t>(std::sqrt(static_cast<double>(n)));
  while (rows * rows > n)
    --rows;
  while ((rows + 1) * (rows + 1) <= n)
    ++rows;
  return std::max<std::size_t>(rows, 1);
}

// splitmix64: a fixed, portable sequence, so random_dag is the same graph on every machine and
// standard library (std::uniform_int_distribution is not).
class fixed_random {
 public:
  explicit fixed_random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t bound) noexcept { return next() % bound; }

 private:
  std::uint64_t state_;
};

edge_list make_edges(workload kind, std::size_t n) {
  edge_list edges;
  switch (kind) {
    case workload::linear_chain:
      edges.reserve(n);
      for (std::size_t i = 1; i < n; ++i)
        edges.emplace_back(node(i - 1), node(i));
      break;
    case workload::binary_tree:
      edges.reserve(n);
      for (std::size_t i = 1; i < n; ++i)
        edges.emplace_back(node((i - 1) / 2), node(i));
      break;
    case workload::wavefront: {
      const std::size_t rows = grid_rows(n);
      const std::size_t cols = (n + rows - 1) / rows;
      edges.reserve(2 * n);
      for (std::size_t i = 0; i < n; ++i) {
        if (i % cols != 0) edges.emplace_back(node(i - 1), node(i));
        if (i >= cols) edges.emplace_back(node(i - cols), node(i));
      }
      break;
    }
    case workload::independent:
    case workload::independent_busy:
      break;
    case workload::random_dag: {
      const std::size_t width = grid_rows(n);
      fixed_random random{20240601};
      edges.reserve(n * 5 / 2);
      for (std::size_t level = 0; level + width < n; level += width) {
        const std::size_t next = level + width;
        const std::size_t next_width = std::min(width, n - next);
        for (std::size_t u = level; u < next; ++u) {
          const std::size_t out = std::min<std::size_t>(1 + random.below(4), next_width);
          std::array<node, 4> picked{};
          for (std::size_t k = 0; k < out;) {
            const auto v = static_cast<node>(next + random.below(next_width));
            if (std::find(picked.begin(), picked.begin() + k, v) != picked.begin() + k) continue;
            picked[k++] = v;
            edges.emplace_back(node(u), v);
          }
        }
      }
      break;
    }
  }
  return edges;
}

// Counting sort of the edges into rows keyed by `key`, listing `value`; stable, so rows keep
// the generation order.
template <class Key, class Value>
void fill_rows(const edge_list& edges, std::size_t n, Key key, Value value,
               std::vector<std::uint32_t>& offsets, std::vector<node>& targets) {
  offsets.assign(n + 1, 0);
  for (const auto& e : edges)
    ++offsets[key(e) + 1];
  for (std::size_t i = 0; i < n; ++i)
    offsets[i + 1] += offsets[i];
  targets.resize(edges.size());
  std::vector<std::uint32_t> cursor(offsets.begin(), offsets.end() - 1);
  for (const auto& e : edges)
    targets[cursor[key(e)]++] = value(e);
}

}  // namespace

std::string_view to_string(workload w) noexcept {
  switch (w) {
    case workload::linear_chain:
      return "linear_chain";
    case workload::binary_tree:
      return "binary_tree";
    case workload::wavefront:
      return "wavefront";
    case workload::independent:
      return "independent";
    case workload::independent_busy:
      return "independent_busy";
    case workload::random_dag:
      return "random_dag";
  }
  return "unknown";
}

std::optional<workload> parse_workload(std::string_view name) noexcept {
  for (workload w : all_workloads) {
    if (to_string(w) == name) return w;
  }
  return std::nullopt;
}

std::string_view what_it_stresses(workload w) noexcept {
  switch (w) {
    case workload::linear_chain:
      return "one module ready at a time: the latency of a completion releasing the next module";
    case workload::binary_tree:
      return "fan-out of 2: the ready set grows level by level, completions release two modules";
    case workload::wavefront:
      return "fan-in of 2 on a grid: dependency counting, a ready diagonal of ~sqrt(n) modules";
    case workload::independent:
      return "no edges, every module ready at once: raw dispatch throughput and the ready queue";
    case workload::independent_busy:
      return "no edges, each body spins ~1 us: what the engine costs next to (tiny) real work";
    case workload::random_dag:
      return "levelled random graph, 1-4 out-edges per module: irregular fan-in and fan-out";
  }
  return {};
}

shape::shape(workload kind, std::size_t nodes) : kind_(kind) {
  if (nodes == 0 || nodes > (std::size_t{1} << 28)) {
    throw std::invalid_argument("a shape needs between 1 and 2^28 nodes, not " +
                                std::to_string(nodes));
  }
  const edge_list edges = make_edges(kind, nodes);
  fill_rows(
      edges, nodes, [](const auto& e) { return e.first; }, [](const auto& e) { return e.second; },
      succ_offsets_, succ_targets_);
  fill_rows(
      edges, nodes, [](const auto& e) { return e.second; }, [](const auto& e) { return e.first; },
      pred_offsets_, pred_targets_);
  for (std::size_t i = 0; i < nodes; ++i) {
    if (pred_offsets_[i] == pred_offsets_[i + 1]) sources_.push_back(node(i));
  }
}

}  // namespace drover::bench
