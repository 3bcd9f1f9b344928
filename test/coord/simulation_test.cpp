// Simulated distributed runs: a master, the engine and many simulated workers in one
// process over in-memory pipes, with seeded faults.

#include <drover/coord/simulation.hpp>

#define BOOST_TEST_MODULE simulation
#include <boost/test/unit_test.hpp>

#include "../common/printing.hpp"

namespace {

using namespace drover::coord;
using namespace std::chrono_literals;

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
  options.min_delay = 1ms;
  options.max_delay = 3ms;
  options.kill_within = 100ms;
  options.limit = 60s;
  auto outcome = simulate(simulation_pipeline(sim_shape::random, 3000, 11, 8), options);
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
