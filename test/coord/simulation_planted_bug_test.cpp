// The simulation finds real bugs. This test is linked with a scheduler that has one planted on
// purpose (test/coord/CMakeLists.txt): when a worker is lost, the pool slots of its attempts
// are never given back. A seed sweep must catch it, name the failing seeds, and a replay of a
// failing seed must fail the same way, step for step.

#include <drover/coord/simulation.hpp>
#include <drover/pipeline.hpp>

#include "pool_pipeline.hpp"

#define BOOST_TEST_MODULE simulation_planted_bug
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

namespace {

using namespace drover::coord;
using namespace std::chrono_literals;

using drover_sim_test::pool_options;
using drover_sim_test::pool_pipeline;

BOOST_AUTO_TEST_CASE(a_seed_sweep_catches_the_planted_bug_and_a_replay_reproduces_it) {
  std::vector<std::uint64_t> failing;
  for (std::uint64_t seed = 1; seed <= drover_sim_test::pool_seeds; ++seed) {
    auto outcome = simulate(pool_pipeline(seed), pool_options(seed));
    if (!outcome.violations.empty()) failing.push_back(seed);
  }
  BOOST_TEST_MESSAGE(failing.size()
                     << " of " << drover_sim_test::pool_seeds << " seeds caught the bug");
  BOOST_TEST_REQUIRE(!failing.empty());

  // Replaying a failing seed fails again, with the same violations and the same trace.
  const std::uint64_t seed = failing.front();
  auto first = simulate(pool_pipeline(seed), pool_options(seed));
  auto replay = simulate(pool_pipeline(seed), pool_options(seed));
  BOOST_TEST_REQUIRE(!first.violations.empty());
  BOOST_TEST_MESSAGE("seed " << seed << ": " << first.violations.front().describe());
  BOOST_TEST(replay.trace == first.trace);
  BOOST_TEST_REQUIRE(replay.violations.size() == first.violations.size());
  for (std::size_t i = 0; i < first.violations.size(); ++i)
    BOOST_TEST(replay.violations[i].describe() == first.violations[i].describe());
  // The engine noticed that nothing running could release the leaked slot and failed the
  // waiting modules with an internal error, which no fault explains: the checker names it.
  BOOST_TEST(first.violations.front().invariant == "no internal error");
  BOOST_TEST(first.report.count(drover::module_status::failed) > 0u);
}

}  // namespace
