// Simulated distributed runs: a master, the engine and many simulated workers in one
// process over in-memory pipes, with seeded faults.

#include <drover/coord/simulation.hpp>
#include <drover/pipeline.hpp>

#define BOOST_TEST_MODULE simulation
#include <boost/test/unit_test.hpp>

#include "../common/printing.hpp"

#include <algorithm>
#include <string_view>
#include <vector>

namespace {

using namespace drover::coord;
using namespace std::chrono_literals;

// The number of modules on the longest dependency path: a run whose attempts each take at
// least d cannot end before depth * d after its first assignment.
std::size_t longest_path(const drover::pipeline& p) {
  std::vector<std::size_t> depth(p.size(), 1);
  std::size_t longest = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {  // simulation pipelines list deps first
    for (std::string_view dep : p.module(i).deps())
      depth[i] = std::max(depth[i], depth[*p.find(dep)] + 1);
    longest = std::max(longest, depth[i]);
  }
  return longest;
}

BOOST_AUTO_TEST_CASE(many_workers_run_a_random_dag_to_completion) {
  simulation_options options;
  options.workers = 300;
  options.slots = 2;
  options.seed = 7;
  options.limit = 60s;
  auto outcome = simulate(simulation_pipeline(sim_shape::random, 5000, 7), options);
  BOOST_TEST(!outcome.hit_limit);
  BOOST_TEST(outcome.report.status == drover::run_status::succeeded);
  BOOST_TEST(outcome.report.count(drover::module_status::succeeded) == 5000u);
  BOOST_TEST(outcome.report.remote.workers_attached == 300u);
  BOOST_TEST(outcome.assignments == 5000u);  // no fault: every module assigned once
}

BOOST_AUTO_TEST_CASE(failures_and_dying_workers_lose_no_module) {
  simulation_options options;
  options.workers = 100;
  options.slots = 2;
  options.seed = 11;
  options.fail_rate = 0.05;
  options.kill_workers = 10;
  options.min_delay = 2ms;
  options.max_delay = 4ms;
  options.kill_within = 10ms;
  options.limit = 60s;
  auto p = simulation_pipeline(sim_shape::random, 3000, 11, 8);
  // Every kill is due within 10 ms of a worker's welcome, and the run needs longer than that
  // however fast the engine is, so all ten workers die while the run is still going.
  BOOST_TEST_REQUIRE(longest_path(p) * 2 > 10u);
  auto outcome = simulate(std::move(p), options);
  BOOST_TEST(!outcome.hit_limit);
  BOOST_TEST(outcome.workers_died == 10u);
  BOOST_TEST(outcome.report.remote.workers_lost == 10u);
  BOOST_TEST(outcome.failed_attempts > 0u);
  // Every module ends succeeded: failures were retried, a dead worker's attempts reassigned.
  BOOST_TEST(outcome.report.count(drover::module_status::succeeded) == 3000u);
  BOOST_TEST(outcome.report.status == drover::run_status::succeeded);
}

BOOST_AUTO_TEST_CASE(the_same_seed_injects_the_same_faults) {
  simulation_options options;
  options.workers = 20;
  options.seed = 5;
  options.fail_rate = 0.1;
  options.limit = 60s;
  auto first = simulate(simulation_pipeline(sim_shape::chain, 300, 5, 10), options);
  auto second = simulate(simulation_pipeline(sim_shape::chain, 300, 5, 10), options);
  BOOST_TEST(first.report.count(drover::module_status::succeeded) == 300u);
  // A chain runs one module at a time, so the same seed gives the same failures.
  BOOST_TEST(first.failed_attempts == second.failed_attempts);
  BOOST_TEST(first.assignments == second.assignments);
}

}  // namespace
