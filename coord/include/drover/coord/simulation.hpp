#pragma once
// A whole distributed run in one process: a master, the engine and up to thousands of
// simulated workers (simulated_worker.hpp) connected through in-memory pipes, speaking the
// real protocol. Faults (failing attempts, workers that die) come from a seed, so a run can
// be repeated. `drover simulate` and the tests use it.
//
//     drover::coord::simulation_options options;
//     options.workers = 1000;
//     options.kill_workers = 10;
//     auto outcome = drover::coord::simulate(drover::coord::simulation_pipeline(
//                                                drover::coord::sim_shape::random, 100'000, 7),
//                                            options);
//     std::cout << outcome.report.count(drover::module_status::succeeded);

#include <drover/coord/simulated_worker.hpp>
#include <drover/pipeline.hpp>
#include <drover/result.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace drover::coord {

enum class sim_shape : std::uint8_t {
  random,       ///< levelled random DAG: each module after 1-3 of the 1,000 before it
  chain,        ///< each module after the previous one
  independent,  ///< no dependencies
  tree,         ///< binary fan-out: module i after (i - 1) / 2
};

std::optional<sim_shape> parse_sim_shape(std::string_view name) noexcept;

/// `modules` modules of kind "noop" in that shape, with `retries` retries each (attempts that
/// fail at random are retried). Their local bodies refuse to run: they are for remote workers.
pipeline simulation_pipeline(sim_shape shape, std::size_t modules, std::uint64_t seed,
                             int retries = 3);

struct simulation_options {
  std::size_t workers = 100;
  std::uint32_t slots = 1;  ///< per worker
  std::uint64_t seed = 1;
  double fail_rate = 0.0;                                ///< chance that an attempt fails
  std::chrono::milliseconds min_delay{0}, max_delay{0};  ///< per attempt
  std::size_t kill_workers = 0;  ///< workers that die during the run, at seeded moments
  /// Deaths happen within this long after the start.
  std::chrono::milliseconds kill_within{std::chrono::milliseconds{200}};
  std::chrono::milliseconds lost_worker_timeout{std::chrono::seconds{5}};
  /// The run is cancelled if it is not done by then (a bug, never a hang).
  std::chrono::milliseconds limit{std::chrono::minutes{10}};
};

struct simulation_outcome {
  run_report report;
  std::chrono::milliseconds elapsed{0};  ///< from async_run to completion
  std::uint64_t assignments = 0;         ///< attempts the simulated workers received
  std::uint64_t failed_attempts = 0;     ///< failures the simulated workers injected
  std::uint64_t workers_died = 0;
  bool hit_limit = false;

  /// Modules per second over `elapsed`.
  double throughput() const;
};

/// Runs `p` over simulated workers on one thread and returns when the run completed.
simulation_outcome simulate(pipeline p, const simulation_options& options);

}  // namespace drover::coord
