// tbb: oneTBB's flow graph, one continue_node per module and one make_edge per dependency, with
// tbb::global_control limiting it to `threads` threads.
//
// build: creating the nodes and edges. run: try_put on the sources, then wait_for_all.

#include "common/contender.hpp"

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/version.h>

#include <deque>

namespace drover::bench {

round_figures run_tbb(const shape& s, module_work& work, std::size_t threads) {
  using tbb::flow::continue_msg;
  using module_node = tbb::flow::continue_node<continue_msg>;

  tbb::global_control limit{tbb::global_control::max_allowed_parallelism, threads};
  round_figures figures;

  const auto before_build = bench_clock::now();
  tbb::flow::graph g;
  std::deque<module_node> nodes;  // a deque: nodes cannot move once edges point at them
  for (node i = 0; i < s.size(); ++i) {
    nodes.emplace_back(g, [w = &work, i](const continue_msg&) {
      (*w)(i);
      return continue_msg{};
    });
  }
  for (node i = 0; i < s.size(); ++i) {
    for (node next : s.successors(i))
      tbb::flow::make_edge(nodes[i], nodes[next]);
  }
  const auto before_run = bench_clock::now();
  figures.build_ns = nanoseconds_between(before_build, before_run);

  for (node i : s.sources())
    nodes[i].try_put(continue_msg{});
  g.wait_for_all();
  figures.run_ns = nanoseconds_between(before_run, bench_clock::now());
  return figures;
}

std::string tbb_version() {
  return std::string(TBB_VERSION_STRING) + " (runtime " + TBB_runtime_version() + ")";
}

}  // namespace drover::bench
