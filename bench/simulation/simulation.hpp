#pragma once
// The simulation benchmark (drover-bench --simulation): what `drover simulate` costs in wall
// time and memory, beside the engine alone on the same DAG, measured in the same run.
//
// simulate rows: the `drover` binary (the one users run, with its allocator) as a child
// process: `drover simulate --workers W --modules M --shape random --seed 7 --fail-rate 0.01
// --kill-workers K --delay-ms 0..2`. Time is the binary's own "ms wall" (from the start of
// the simulation to its end, the pipeline's generation excluded), peak RSS the child's
// ru_maxrss. Every round must keep every invariant, with every module succeeded.
//
// engine rows (the baseline): the same random DAG, generated from the same seed, run by the
// engine in this process on one thread with noop bodies and no workers at all: what the
// scheduling costs without the protocol, the master, 10,000 connections and the checks.
//
// sweep row: `drover simulate --seeds 1..S --jobs 2 --workers 50 --modules 1000 --faults all
// --constrained`: wall time of the whole child, which must report no broken invariant.

#include <boost/json/object.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace drover::bench {

/// Whether this drover-bench knows the drover binary to run (CMake passes its path).
bool simulation_rows_available();

struct simulation_settings {
  std::size_t workers = 10'000;
  std::size_t modules = 100'000;
  std::size_t kill_workers = 50;
  std::size_t sweep_seeds = 1'000;
  std::size_t rounds = 3;
};

struct simulation_measurement {
  std::vector<std::int64_t> simulate_ms;  ///< the binary's "ms wall", per round
  std::vector<std::int64_t> peak_rss_kb;  ///< the child's ru_maxrss, per round
  std::vector<std::int64_t> engine_ms;    ///< the baseline, per round
  std::vector<std::int64_t> sweep_ms;     ///< the whole sweep child, per round
  std::string error;                      ///< empty when every round ran and held
  bool ok() const noexcept { return error.empty(); }
};

/// Runs every row `rounds` times, alternating. Progress goes to `progress`.
simulation_measurement measure_simulation(const simulation_settings& settings,
                                          std::ostream& progress);

void print_simulation_table(std::ostream& out, const simulation_settings& settings,
                            const simulation_measurement& m, bool markdown);

boost::json::object simulation_to_json(const simulation_settings& settings,
                                       const simulation_measurement& m);

}  // namespace drover::bench
