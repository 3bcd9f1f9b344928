// Simulating a pipeline from C++: how long would it take with 2 or 4 workers, which modules
// hold it back, and does it keep every invariant when workers crash, go silent and results
// arrive twice? The same harness as `drover simulate` (docs/simulation.md): virtual time, so a
// run of minutes takes milliseconds, and the same seed gives the same run.

#include <drover/coord/simulation.hpp>
#include <drover/drover.hpp>

#include <chrono>
#include <iostream>
#include <memory>

using namespace std::chrono_literals;

namespace {

boost::asio::awaitable<boost::json::value> not_run_here(drover::module_context&) {
  co_return nullptr;  // simulated workers only wait for the module's duration
}

// checkout -> build -> three test shards -> package.
drover::pipeline ci() {
  drover::pipeline p;
  p.name = "ci";
  p.add("checkout", not_run_here).kind("noop");
  p.add("build", not_run_here, {"checkout"}).kind("noop");
  for (const char* shard : {"test-1", "test-2", "test-3"})
    p.add(shard, not_run_here, {"build"}).kind("noop");
  p.add("package", not_run_here, {"test-1", "test-2", "test-3"}).kind("noop");
  return p;
}

}  // namespace

int main() {
  auto durations = std::make_shared<drover::coord::attempt_durations>();
  *durations = {{"checkout", 20s}, {"build", 3min},  {"test-1", 3min},
                {"test-2", 4min},  {"test-3", 2min}, {"package", 30s}};

  for (std::size_t workers : {2, 4}) {
    drover::coord::simulation_options options;
    options.workers = workers;
    options.durations = durations;
    const auto outcome = drover::coord::simulate(ci(), options);
    std::cout << workers << " workers: "
              << std::chrono::duration_cast<std::chrono::seconds>(outcome.virtual_elapsed).count()
              << " s, critical path";
    for (const auto& id : outcome.critical_path)
      std::cout << ' ' << id;
    std::cout << '\n';
  }

  // Every fault at once, over 20 seeds: no seed may break an invariant.
  std::size_t broken = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    drover::coord::simulation_options options;
    options.workers = 4;
    options.seed = seed;
    options.durations = durations;
    options.faults = drover::coord::simulation_faults::all();
    const auto outcome = drover::coord::simulate(ci(), options);
    for (const auto& v : outcome.violations)
      std::cout << "seed " << seed << ": " << v.describe() << '\n';
    broken += outcome.violations.empty() ? 0 : 1;
  }
  std::cout << "seeds that broke an invariant: " << broken << '\n';
  return broken == 0 ? 0 : 1;
}
