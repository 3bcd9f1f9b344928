// The generated pipelines of `drover simulate`, the fault presets, and what a simulation's
// outcome says about a pipeline's workers.

#include <drover/coord/simulation.hpp>

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <random>
#include <set>
#include <stdexcept>

namespace drover::coord {

namespace asio = boost::asio;

std::optional<sim_shape> parse_sim_shape(std::string_view name) noexcept {
  if (name == "random") return sim_shape::random;
  if (name == "chain") return sim_shape::chain;
  if (name == "independent") return sim_shape::independent;
  if (name == "tree") return sim_shape::tree;
  return std::nullopt;
}

namespace {

asio::awaitable<boost::json::value> refuse_local_run(module_context&) {
  throw std::logic_error("simulated modules run only on simulated workers");
  co_return nullptr;
}

}  // namespace

pipeline simulation_pipeline(sim_shape shape, std::size_t modules, std::uint64_t seed, int retries,
                             bool constrained) {
  pipeline p;
  p.name = "simulation";
  p.mode = execution_mode::keep_going;
  p.defaults.retries = retries;
  p.defaults.backoff =
      backoff_policy{std::chrono::milliseconds{1}, 1.0, std::chrono::milliseconds{1}, 0.0};
  if (constrained) p.pools["db"] = 2;
  p.reserve(modules, 3 * modules);
  std::mt19937_64 rng{seed};
  const auto id = [](std::size_t i) { return "m" + std::to_string(i); };
  for (std::size_t i = 0; i < modules; ++i) {
    std::vector<std::string> deps;
    switch (shape) {
      case sim_shape::chain:
        if (i > 0) deps.push_back(id(i - 1));
        break;
      case sim_shape::independent:
        break;
      case sim_shape::tree:
        if (i > 0) deps.push_back(id((i - 1) / 2));
        break;
      case sim_shape::random:
        if (i > 0) {
          const std::size_t window = std::min<std::size_t>(i, 1000);
          const int count = std::uniform_int_distribution<int>{1, 3}(rng);
          std::set<std::size_t> chosen;
          for (int k = 0; k < count; ++k)
            chosen.insert(i - 1 - std::uniform_int_distribution<std::size_t>{0, window - 1}(rng));
          for (std::size_t d : chosen)
            deps.push_back(id(d));
        }
        break;
    }
    auto m = p.add(id(i), refuse_local_run, deps);
    m.kind("noop");
    if (constrained && i % 8 == 3) m.constraints().pool = "db";
    if (constrained && i % 16 == 5) m.constraints().not_in_parallel = {"deploy"};
  }
  return p;
}

simulation_faults simulation_faults::all() {
  simulation_faults f;
  f.fail_rate = 0.02;
  f.hang_rate = 0.01;
  f.duplicate_rate = 0.02;
  f.stale_rate = 0.02;
  f.crash_workers = 2;
  f.silent_workers = 1;
  f.slow_workers = 2;
  f.partitioned_workers = 2;
  f.max_message_delay = std::chrono::milliseconds{3};
  f.master_restarts = 1;
  f.redis_restarts = 2;
  return f;
}

double simulation_outcome::throughput() const {
  const double seconds = static_cast<double>(elapsed.count()) / 1000.0;
  return seconds > 0 ? static_cast<double>(report.modules.size()) / seconds : 0.0;
}

double simulation_outcome::utilisation(std::uint32_t slots) const {
  if (workers.empty() || virtual_elapsed.count() <= 0) return 0.0;
  std::chrono::nanoseconds busy{0};
  for (const worker_usage& w : workers)
    busy += w.busy;
  const double capacity = static_cast<double>(virtual_elapsed.count()) *
                          static_cast<double>(workers.size()) * std::max<std::uint32_t>(slots, 1);
  return std::min(1.0, static_cast<double>(busy.count()) / capacity);
}

}  // namespace drover::coord
