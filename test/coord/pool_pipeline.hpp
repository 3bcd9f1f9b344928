#pragma once
// The pipeline and options of the planted-bug test (simulation_planted_bug_test.cpp), shared
// with simulation_test.cpp, which checks that the same seeds pass with the real scheduler.

#include <drover/coord/simulation.hpp>

#include <chrono>

namespace drover_sim_test {

/// 150 independent modules that all need the one slot of pool "db".
inline drover::pipeline pool_pipeline(std::uint64_t seed) {
  auto p = drover::coord::simulation_pipeline(drover::coord::sim_shape::independent, 150, seed, 3);
  p.pools["db"] = 1;
  for (std::size_t i = 0; i < p.size(); ++i)
    p.edit(i).constraints().pool = "db";
  return p;
}

/// Four workers, one of which crashes and one goes silent within the first second.
inline drover::coord::simulation_options pool_options(std::uint64_t seed) {
  using namespace std::chrono_literals;
  drover::coord::simulation_options o;
  o.workers = 4;
  o.seed = seed;
  o.min_delay = 5ms;
  o.max_delay = 10ms;
  o.faults.crash_workers = 1;
  o.faults.silent_workers = 1;
  o.faults.within = 1000ms;
  o.keep_trace = true;
  return o;
}

inline constexpr std::uint64_t pool_seeds = 40;

}  // namespace drover_sim_test
