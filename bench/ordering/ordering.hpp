#pragma once
// The ordering benchmark (drover-bench --ordering): whether starting the module with the longest
// chain of work below it first (run_options::order = ready_order::critical_path) finishes a run
// sooner than starting ready modules in the order they became ready (ready_order::fifo).
//
// The shape: `side` independent modules listed first, then a chain of `chain` modules. Every
// body waits on a boost::asio::steady_timer, so `workers` bodies really wait at once, without
// busy threads. FIFO starts the side modules first and runs the chain alone at the end; critical
// path starts the chain's head first and runs the side modules beside the chain.

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace drover::bench {

struct ordering_scenario {
  std::string name;
  std::size_t side = 0;   ///< independent modules, listed before the chain
  std::size_t chain = 0;  ///< modules in the chain
  std::chrono::microseconds side_body{0}, chain_body{0};
  std::size_t workers = 2;

  /// What each order would take if a worker always took the best ready module the moment it
  /// became free: FIFO runs all side modules, then the chain alone; critical path runs the
  /// chain while the side modules fill the other workers.
  std::chrono::microseconds model_fifo() const;
  std::chrono::microseconds model_critical_path() const;
};

/// The scenarios drover-bench --ordering runs; `quick` divides every body by 10.
std::vector<ordering_scenario> ordering_scenarios(bool quick);

/// One scenario in one order: every round's run time, or what went wrong.
struct ordering_measurement {
  ordering_scenario scenario;
  bool critical_path = true;  ///< false: FIFO
  std::vector<std::int64_t> run_ns;
  std::string error;  ///< empty when every round ran correctly

  bool ok() const noexcept { return error.empty(); }
  std::int64_t median_run_ns() const;
};

/// Runs every scenario `rounds` times in each order, the two orders alternating round by round
/// so that a change in the machine's load affects both alike. After each round it checks that
/// the run succeeded, that every module ran exactly once, that each chain module started after
/// its predecessor finished, and that the first module started was the chain's head (critical
/// path) or the first side module (FIFO). Progress goes to `progress`.
std::vector<ordering_measurement> measure_ordering(const std::vector<ordering_scenario>& scenarios,
                                                   std::size_t rounds, std::ostream& progress);

/// The table: per scenario and order the median, fastest and slowest round, the model's time,
/// and FIFO's median over this row's.
void print_ordering_table(std::ostream& out, const std::vector<ordering_measurement>& results,
                          std::size_t rounds, bool markdown);

boost::json::object ordering_to_json(const std::vector<ordering_measurement>& results,
                                     std::size_t rounds);

}  // namespace drover::bench
