#include <drover/coord/master.hpp>
#include <drover/coord/memory_stream.hpp>
#include <drover/coord/simulation.hpp>
#include <drover/engine.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <numeric>
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

pipeline simulation_pipeline(sim_shape shape, std::size_t modules, std::uint64_t seed,
                             int retries) {
  pipeline p;
  p.name = "simulation";
  p.mode = execution_mode::keep_going;
  p.defaults.retries = retries;
  p.defaults.backoff =
      backoff_policy{std::chrono::milliseconds{1}, 1.0, std::chrono::milliseconds{1}, 0.0};
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
    p.add(id(i), refuse_local_run, deps).kind("noop");
  }
  return p;
}

double simulation_outcome::throughput() const {
  const double seconds = static_cast<double>(elapsed.count()) / 1000.0;
  return seconds > 0 ? static_cast<double>(report.modules.size()) / seconds : 0.0;
}

simulation_outcome simulate(pipeline p, const simulation_options& options) {
  asio::io_context io{1};
  worker_hub::settings hub_settings;
  hub_settings.overdue_grace = options.lost_worker_timeout;
  auto hub = std::make_shared<worker_hub>(hub_settings);
  master_options master_settings;
  master_settings.run_id = "simulation";
  master_settings.lost_worker_timeout = options.lost_worker_timeout;
  master master{io.get_executor(), hub, master_settings};

  // Which workers die, and when: drawn from the seed before anything runs.
  std::mt19937_64 rng{options.seed};
  std::vector<std::size_t> order(options.workers);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<std::optional<std::chrono::milliseconds>> death(options.workers);
  for (std::size_t k = 0; k < std::min(options.kill_workers, options.workers); ++k) {
    death[order[k]] = std::chrono::milliseconds{std::uniform_int_distribution<std::int64_t>{
        0, std::max<std::int64_t>(options.kill_within.count(), 0)}(rng)};
  }

  simulation_counters counters;
  for (std::size_t w = 0; w < options.workers; ++w) {
    auto [master_end, worker_end] = make_memory_pipe(io.get_executor());
    simulated_worker_options sw;
    sw.name = "sim-" + std::to_string(w);
    sw.slots = options.slots;
    sw.min_delay = options.min_delay;
    sw.max_delay = std::max(options.min_delay, options.max_delay);
    sw.fail_rate = options.fail_rate;
    sw.die_after = death[w];
    sw.seed = options.seed * 1'000'003 + w;
    master.accept(std::move(master_end), sw.name);
    asio::co_spawn(io, run_simulated_worker(std::move(worker_end), std::move(sw), counters),
                   asio::detached);
  }

  run_options run;
  run.workers = 0;
  run.remote = hub;
  run.seed = options.seed;
  engine engine{io.get_executor()};
  simulation_outcome outcome;
  asio::cancellation_signal cancel;
  asio::steady_timer limit{io, options.limit};
  limit.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    outcome.hit_limit = true;
    cancel.emit(asio::cancellation_type::terminal);
  });
  const auto started = std::chrono::steady_clock::now();
  engine.async_run(std::move(p), std::move(run),
                   asio::bind_cancellation_slot(cancel.slot(), [&](run_report report) {
                     outcome.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - started);
                     outcome.report = std::move(report);
                     limit.cancel();
                     master.stop();
                   }));
  io.run();
  outcome.assignments = counters.assignments.load();
  outcome.failed_attempts = counters.failed.load();
  outcome.workers_died = counters.died.load();
  return outcome;
}

}  // namespace drover::coord
