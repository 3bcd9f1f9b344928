#pragma once
// The simulated workers of a simulation: what each one does wrong, drawn from the seed before
// anything runs, and the options each of its connections starts with.

#include <drover/coord/simulated_worker.hpp>
#include <drover/coord/simulation.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace drover::coord::detail {

class sim_worker_plans {
 public:
  /// Draws every worker's faults from `rng`, at moments within `within` of the start.
  sim_worker_plans(const simulation_options& options, std::chrono::milliseconds within,
                   std::mt19937_64& rng);

  /// Worker w's options for its join-th connection (0 first) to master k, `elapsed` after the
  /// start, or nothing when it is gone by then. Fault times count from the start of the
  /// simulation: a worker that connects again does what is still ahead of it. One that crashed
  /// or went silent is gone.
  std::optional<simulated_worker_options> options(std::size_t w, std::size_t k, std::size_t join,
                                                  std::chrono::nanoseconds elapsed) const;

 private:
  // What one worker does wrong.
  struct plan {
    std::optional<std::chrono::milliseconds> dies, goes_silent, partitioned;
    std::chrono::milliseconds partition_for{0};
    double slowness = 1.0;
  };

  const simulation_options& options_;
  std::vector<plan> plans_;
  std::vector<std::vector<std::string>> labels_;  // in capability_mix's order
};

}  // namespace drover::coord::detail
