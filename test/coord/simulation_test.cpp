// Simulated distributed runs: a master, the engine and many simulated workers in one
// process over in-memory pipes, on virtual time, with seeded faults and invariants checked.

#include <drover/coord/simulation.hpp>
#include <drover/pipeline.hpp>

#define BOOST_TEST_MODULE simulation
#include <boost/test/unit_test.hpp>

#include "../common/printing.hpp"
#include "pool_pipeline.hpp"

#include <algorithm>
#include <chrono>
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

void require_no_violation(const simulation_outcome& outcome) {
  for (const auto& v : outcome.violations)
    BOOST_TEST_MESSAGE(v.describe());
  BOOST_TEST(outcome.violations.empty());
}

BOOST_AUTO_TEST_CASE(many_workers_run_a_random_dag_to_completion) {
  simulation_options options;
  options.workers = 300;
  options.slots = 2;
  options.seed = 7;
  auto outcome = simulate(simulation_pipeline(sim_shape::random, 5000, 7), options);
  require_no_violation(outcome);
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
  options.faults.fail_rate = 0.05;
  options.faults.crash_workers = 10;
  options.faults.within = 10ms;
  options.min_delay = 2ms;
  options.max_delay = 4ms;
  auto p = simulation_pipeline(sim_shape::random, 3000, 11, 8);
  // Every kill is due within 10 ms of the start, and the run needs longer than that, so all
  // ten workers die while the run is still going.
  BOOST_TEST_REQUIRE(longest_path(p) * 2 > 10u);
  auto outcome = simulate(std::move(p), options);
  require_no_violation(outcome);
  BOOST_TEST(!outcome.hit_limit);
  BOOST_TEST(outcome.workers_died == 10u);
  BOOST_TEST(outcome.report.remote.workers_lost == 10u);
  BOOST_TEST(outcome.failed_attempts > 0u);
  // Every module ends succeeded: failures were retried, a dead worker's attempts reassigned.
  BOOST_TEST(outcome.report.count(drover::module_status::succeeded) == 3000u);
  BOOST_TEST(outcome.report.status == drover::run_status::succeeded);
}

// Everything a report says about its modules, in one string.
std::string describe_modules(const drover::run_report& r) {
  std::string out;
  for (const auto& m : r.modules) {
    out += m.id + ' ' + std::string(drover::to_string(m.status)) + ' ' +
           std::to_string(m.attempts) + ' ' + std::string(r.worker_name(m)) + ' ' +
           std::to_string(m.started_at.time_since_epoch().count()) + ' ' +
           std::to_string(m.finished_at.time_since_epoch().count()) + ' ' + m.reason + '\n';
  }
  return out;
}

BOOST_AUTO_TEST_CASE(the_same_seed_gives_the_same_trace_and_report) {
  simulation_options options;
  options.workers = 40;
  options.slots = 2;
  options.seed = 5;
  options.min_delay = 0ms;
  options.max_delay = 3ms;
  options.faults = simulation_faults::all();
  options.keep_trace = true;
  auto first = simulate(simulation_pipeline(sim_shape::random, 800, 5, 4, true), options);
  auto second = simulate(simulation_pipeline(sim_shape::random, 800, 5, 4, true), options);
  require_no_violation(first);
  BOOST_TEST(first.trace.size() > 10'000u);
  BOOST_TEST(first.trace == second.trace);
  BOOST_TEST(first.trace_hash == second.trace_hash);
  BOOST_TEST((first.virtual_elapsed == second.virtual_elapsed));
  BOOST_TEST(describe_modules(first.report) == describe_modules(second.report));
  BOOST_TEST((first.report.started_at == second.report.started_at));
  BOOST_TEST((first.report.finished_at == second.report.finished_at));
  BOOST_TEST(first.assignments == second.assignments);

  options.seed = 6;
  auto other = simulate(simulation_pipeline(sim_shape::random, 800, 5, 4, true), options);
  BOOST_TEST(other.trace_hash != first.trace_hash);  // the seed decides the faults and ties
}

BOOST_AUTO_TEST_CASE(virtual_time_lets_a_long_run_finish_in_moments) {
  simulation_options options;
  options.workers = 10;
  options.seed = 3;
  options.min_delay = options.max_delay = 60s;  // a minute per attempt
  const auto wall = std::chrono::steady_clock::now();
  auto outcome = simulate(simulation_pipeline(sim_shape::chain, 60, 3), options);
  require_no_violation(outcome);
  BOOST_TEST(outcome.report.status == drover::run_status::succeeded);
  // An hour of virtual time: 60 chained attempts of a minute, plus scheduling at no cost.
  BOOST_TEST((outcome.virtual_elapsed >= 60min));
  BOOST_TEST((outcome.virtual_elapsed < 61min));
  BOOST_TEST((std::chrono::steady_clock::now() - wall < 60s));
  BOOST_TEST(outcome.critical_path.size() == 60u);  // the whole chain
  BOOST_TEST(outcome.critical_path.front() == "m59");
}

BOOST_AUTO_TEST_CASE(every_fault_kind_happens_and_no_invariant_breaks) {
  simulation_options options;
  options.workers = 30;
  options.slots = 2;
  options.seed = 21;
  options.max_delay = 3ms;
  options.faults = simulation_faults::all();
  auto outcome = simulate(simulation_pipeline(sim_shape::random, 2000, 21, 5, true), options);
  require_no_violation(outcome);
  BOOST_TEST(outcome.failed_attempts > 0u);
  BOOST_TEST(outcome.hung_attempts > 0u);
  BOOST_TEST(outcome.duplicates_sent > 0u);
  BOOST_TEST(outcome.stale_sent > 0u);
  BOOST_TEST(outcome.workers_died + outcome.workers_silent + outcome.workers_partitioned > 0u);
  BOOST_TEST(outcome.master_restarts == 1u);
  BOOST_TEST(outcome.report.remote.rejected_results > 0u);  // duplicates and stale results
  BOOST_TEST(outcome.report.reused_from_journal > 0u);      // the new master resumed
  for (const auto& m : outcome.report.modules)
    BOOST_TEST(m.status != drover::module_status::pending);
}

BOOST_AUTO_TEST_CASE(a_sweep_of_200_seeds_with_every_fault_keeps_every_invariant) {
  std::size_t runs = 0, failing = 0;
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    simulation_options options;
    options.workers = 24;
    options.slots = 2;
    options.seed = seed;
    options.max_delay = 2ms;
    options.faults = simulation_faults::all();
    auto outcome = simulate(simulation_pipeline(sim_shape::random, 300, seed, 4, true), options);
    ++runs;
    if (!outcome.violations.empty()) {
      ++failing;
      BOOST_TEST_MESSAGE("seed " << seed << ": " << outcome.violations.front().describe());
    }
  }
  BOOST_TEST(runs == 200u);
  BOOST_TEST(failing == 0u);
}

BOOST_AUTO_TEST_CASE(the_seeds_that_catch_the_planted_bug_pass_with_the_real_scheduler) {
  // simulation_planted_bug_test runs these seeds against a scheduler with a bug: the
  // violations it finds come from the bug, not from the harness.
  for (std::uint64_t seed = 1; seed <= drover_sim_test::pool_seeds; ++seed) {
    auto outcome =
        simulate(drover_sim_test::pool_pipeline(seed), drover_sim_test::pool_options(seed));
    BOOST_TEST(outcome.violations.empty(), "seed " << seed);
    BOOST_TEST(outcome.report.count(drover::module_status::succeeded) == 150u);
  }
}

// a (100 ms) -> b (200 ms), and c (50 ms) beside them.
drover::pipeline timed_pipeline() {
  auto p = simulation_pipeline(sim_shape::independent, 0, 1);
  auto body = [](drover::module_context&) -> boost::asio::awaitable<boost::json::value> {
    co_return nullptr;
  };
  p.add("a", body).kind("noop");
  p.add("b", body, {"a"}).kind("noop");
  p.add("c", body).kind("noop").constraints().required_capabilities = {"gpu"};
  return p;
}

BOOST_AUTO_TEST_CASE(a_pipeline_with_known_durations_takes_its_critical_path) {
  auto durations = std::make_shared<attempt_durations>();
  (*durations)["a"] = 100ms;
  (*durations)["b"] = 200ms;
  (*durations)["c"] = 50ms;
  simulation_options options;
  options.workers = 2;
  options.capability_mix = {{{"gpu"}, 1}};  // sim-0 has a gpu, sim-1 not
  options.durations = durations;
  auto outcome = simulate(timed_pipeline(), options);
  require_no_violation(outcome);
  BOOST_TEST(outcome.report.status == drover::run_status::succeeded);
  BOOST_TEST((outcome.virtual_elapsed >= 300ms));
  BOOST_TEST((outcome.virtual_elapsed < 310ms));
  BOOST_TEST((outcome.critical_path == std::vector<std::string>{"b", "a"}));
  const auto c = outcome.report.find("c");
  BOOST_TEST_REQUIRE(c.has_value());
  BOOST_TEST(outcome.report.worker_name(*c) == "sim-0");
  // Busy 350 ms of 2 workers x 300 ms.
  BOOST_TEST(outcome.utilisation(1) > 0.55);
  BOOST_TEST(outcome.utilisation(1) < 0.6);

  options.workers = 1;  // one worker, with the gpu: everything in a row
  outcome = simulate(timed_pipeline(), options);
  BOOST_TEST((outcome.virtual_elapsed >= 350ms));
  BOOST_TEST((outcome.virtual_elapsed < 360ms));
}

}  // namespace

// Over Redis (simulation_options::over_redis): the masters take the lease in a redis_fake,
// journal to its stream and accept workers from its join stream; a dead master's successor
// waits for the lease to lapse, in virtual time, and resumes from the journal stream.
BOOST_AUTO_TEST_CASE(over_redis_a_dead_master_is_replaced_through_the_lease_and_the_journal) {
  simulation_options options;
  options.workers = 12;
  options.slots = 2;
  options.seed = 5;
  options.max_delay = 40ms;
  options.over_redis = true;
  options.lease_ttl = 3s;
  options.faults = simulation_faults::all();
  options.faults.master_restarts = 2;
  options.keep_trace = true;
  const auto pipeline = [] { return simulation_pipeline(sim_shape::random, 400, 5, 4, true); };
  auto outcome = simulate(pipeline(), options);
  require_no_violation(outcome);
  BOOST_TEST(outcome.report.status == drover::run_status::succeeded);
  BOOST_TEST(outcome.master_restarts == 2u);
  BOOST_TEST(outcome.report.reused_from_journal > 0u);  // resumed from the journal stream
  // The lease's epoch: 3, or 2 when the second master died before the first one's lease had
  // lapsed, that is before it ever held it.
  BOOST_TEST(outcome.report.epoch >= 2u);
  BOOST_TEST(outcome.report.epoch <= 3u);
  // Each successor waited for the lease of the master before it to lapse.
  BOOST_TEST((outcome.virtual_elapsed > 2 * options.lease_ttl));
  for (const auto& m : outcome.report.modules)
    BOOST_TEST(m.status != drover::module_status::pending);
  // The same seed, the same run, byte for byte.
  auto again = simulate(pipeline(), options);
  BOOST_TEST(again.trace_hash == outcome.trace_hash);
}

// Redis restarts mid-run (its data kept, as with AOF): every pipe breaks, so the master loses
// every worker at once and the workers join again. Those losses are the master's link's, not
// the modules': with three restarts and max_worker_losses 3, no module is poison.
BOOST_AUTO_TEST_CASE(over_redis_restarts_of_redis_stall_the_run_and_lose_no_module) {
  simulation_options options;
  options.workers = 8;
  options.slots = 2;
  options.seed = 11;
  // Attempts outlast the time between restarts: the first ones are cut by all three.
  options.min_delay = 2s;
  options.max_delay = 3s;
  options.over_redis = true;
  options.faults.redis_restarts = 3;
  options.faults.within = 6s;
  options.keep_trace = true;
  const auto pipeline = [] { return simulation_pipeline(sim_shape::random, 300, 11, 0); };
  auto outcome = simulate(pipeline(), options);
  require_no_violation(outcome);
  BOOST_TEST(outcome.report.status == drover::run_status::succeeded);
  BOOST_TEST(outcome.redis_restarts == 3u);
  // Each restart broke every worker's pipe: each joined again.
  BOOST_TEST(outcome.workers_rejoined >= 3u * options.workers);
  BOOST_TEST(outcome.report.remote.workers_lost >= 3u * options.workers);
  BOOST_TEST(outcome.report.remote.reassigned > 0u);
  BOOST_TEST(outcome.report.count(drover::module_status::succeeded) == 300u);
  BOOST_TEST(outcome.trace.find("- redis restarted") != std::string::npos);
  auto again = simulate(pipeline(), options);
  BOOST_TEST(again.trace_hash == outcome.trace_hash);
}

BOOST_AUTO_TEST_CASE(over_redis_a_sweep_of_40_seeds_with_every_fault_keeps_every_invariant) {
  std::size_t failing = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    simulation_options options;
    options.workers = 12;
    options.slots = 2;
    options.seed = seed;
    options.max_delay = 5ms;
    options.over_redis = true;
    options.faults = simulation_faults::all();
    auto outcome = simulate(simulation_pipeline(sim_shape::random, 200, seed, 4, true), options);
    if (!outcome.violations.empty() || outcome.report.status != drover::run_status::succeeded) {
      ++failing;
      BOOST_TEST_MESSAGE(
          "seed " << seed << ": "
                  << (outcome.violations.empty()
                          ? "the run ended " + std::string(to_string(outcome.report.status))
                          : outcome.violations.front().describe()));
    }
  }
  BOOST_TEST(failing == 0u);
}
