#include "simulation/simulation.hpp"

#include "common/process.hpp"
#include "common/timing.hpp"

#include <drover/coord/simulation.hpp>
#include <drover/engine.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/array.hpp>

#include <algorithm>
#include <iomanip>
#include <optional>
#include <ostream>
#include <regex>
#include <stdexcept>

namespace drover::bench {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

const char* const drover_binary = drover_binary_path();

// `drover` with `args`, timed as a whole process.
struct binary_run {
  child_outcome outcome;
  std::int64_t wall_ms = 0;
};

binary_run run_drover(const std::vector<std::string>& args) {
  const auto started = bench_clock::now();
  binary_run run{run_program(drover_binary, args)};
  run.wall_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(bench_clock::now() - started).count();
  return run;
}

asio::awaitable<json::value> noop(module_context&) {
  co_return nullptr;
}

// The simulation's random DAG, with bodies that do nothing, for the engine alone.
std::int64_t run_engine_alone(std::size_t modules) {
  const pipeline shape = coord::simulation_pipeline(coord::sim_shape::random, modules, 7);
  pipeline p;
  p.name = "engine-alone";
  p.reserve(modules, 3 * modules);
  for (std::size_t i = 0; i < shape.size(); ++i) {
    std::vector<std::string> deps;
    for (std::string_view d : shape.module(i).deps())
      deps.emplace_back(d);
    p.add(shape.id(i), noop, deps);
  }
  prepare_result prepared = prepare(std::move(p));
  if (!prepared.ok()) throw std::runtime_error("the engine rejected the simulation's DAG");
  asio::io_context io{1};
  engine runner{io.get_executor()};
  run_options options;
  options.workers = 1;
  std::optional<run_report> report;
  const auto started = bench_clock::now();
  bench_clock::time_point finished{};
  runner.async_run(std::move(*prepared.plan), std::move(options), [&](run_report r) {
    finished = bench_clock::now();
    report = std::move(r);
  });
  io.run();
  if (!report || report->count(module_status::succeeded) != modules)
    throw std::runtime_error("the engine-alone run did not succeed with every module");
  return std::chrono::duration_cast<std::chrono::milliseconds>(finished - started).count();
}

std::int64_t median(std::vector<std::int64_t> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string range(const std::vector<std::int64_t>& v) {
  if (v.empty()) return "-";
  const auto [low, high] = std::minmax_element(v.begin(), v.end());
  return std::to_string(*low) + "-" + std::to_string(*high);
}

}  // namespace

bool simulation_rows_available() {
  return drover_binary != nullptr;
}

simulation_measurement measure_simulation(const simulation_settings& s, std::ostream& progress) {
  simulation_measurement m;
  static const std::regex wall{"\\(([0-9]+) ms wall"};
  const std::vector<std::string> simulate_args{"simulate",
                                               "--workers",
                                               std::to_string(s.workers),
                                               "--modules",
                                               std::to_string(s.modules),
                                               "--shape",
                                               "random",
                                               "--seed",
                                               "7",
                                               "--fail-rate",
                                               "0.01",
                                               "--kill-workers",
                                               std::to_string(s.kill_workers),
                                               "--delay-ms",
                                               "0..2"};
  const std::vector<std::string> sweep_args{"simulate",
                                            "--seeds",
                                            "1.." + std::to_string(s.sweep_seeds),
                                            "--jobs",
                                            "2",
                                            "--workers",
                                            "50",
                                            "--modules",
                                            "1000",
                                            "--delay-ms",
                                            "0..2",
                                            "--faults",
                                            "all",
                                            "--constrained"};
  try {
    for (std::size_t round = 1; round <= s.rounds; ++round) {
      progress << "simulation round " << round << "/" << s.rounds << ": simulate" << std::flush;
      const binary_run sim = run_drover(simulate_args);
      std::smatch match;
      if (sim.outcome.exit_code != 0 || !std::regex_search(sim.outcome.output, match, wall) ||
          sim.outcome.output.find("invariants: all held") == std::string::npos) {
        throw std::runtime_error("drover simulate exited " + std::to_string(sim.outcome.exit_code) +
                                 ":\n" + sim.outcome.output);
      }
      m.simulate_ms.push_back(std::stoll(match[1]));
      m.peak_rss_kb.push_back(sim.outcome.max_rss_kb);
      progress << ", engine alone" << std::flush;
      m.engine_ms.push_back(run_engine_alone(s.modules));
      progress << ", sweep" << std::flush;
      const binary_run sweep = run_drover(sweep_args);
      if (sweep.outcome.exit_code != 0 ||
          sweep.outcome.output.find(": 0 broke an invariant") == std::string::npos)
        throw std::runtime_error("the sweep exited " + std::to_string(sweep.outcome.exit_code) +
                                 ":\n" + sweep.outcome.output);
      m.sweep_ms.push_back(sweep.wall_ms);
      progress << '\n';
    }
  } catch (const std::exception& e) {
    m.error = e.what();
    progress << "\nsimulation benchmark FAILED: " << m.error << '\n';
  }
  return m;
}

void print_simulation_table(std::ostream& out, const simulation_settings& s,
                            const simulation_measurement& m, bool markdown) {
  const std::string sep = markdown ? " | " : "  ";
  const auto row = [&](const std::string& what, const std::vector<std::int64_t>& ms,
                       const std::string& rss) {
    out << (markdown ? "| " : "") << what << sep << median(ms) << sep << range(ms) << sep << rss
        << (markdown ? " |" : "") << '\n';
  };
  if (markdown) out << "| run | median ms | min-max ms | peak RSS MB |\n|---|---|---|---|\n";
  const std::int64_t rss_mb = median(m.peak_rss_kb) / 1024;
  row("drover simulate, " + std::to_string(s.workers) + " workers, " + std::to_string(s.modules) +
          " modules, 1% failures, " + std::to_string(s.kill_workers) + " deaths",
      m.simulate_ms, std::to_string(rss_mb));
  row("engine alone, same DAG, 1 thread, in-process (baseline)", m.engine_ms, "-");
  row("sweep: " + std::to_string(s.sweep_seeds) + " seeds x 1,000 modules, every fault, 2 jobs",
      m.sweep_ms, "-");
  const double engine = static_cast<double>(std::max<std::int64_t>(median(m.engine_ms), 1));
  out << "\nsimulate / engine alone: " << std::fixed << std::setprecision(1)
      << static_cast<double>(median(m.simulate_ms)) / engine << "x\n";
}

boost::json::object simulation_to_json(const simulation_settings& s,
                                       const simulation_measurement& m) {
  const auto array = [](const std::vector<std::int64_t>& v) {
    boost::json::array a;
    for (auto x : v)
      a.emplace_back(x);
    return a;
  };
  return {{"workers", s.workers},
          {"modules", s.modules},
          {"kill_workers", s.kill_workers},
          {"sweep_seeds", s.sweep_seeds},
          {"simulate_ms", array(m.simulate_ms)},
          {"peak_rss_kb", array(m.peak_rss_kb)},
          {"engine_ms", array(m.engine_ms)},
          {"sweep_ms", array(m.sweep_ms)},
          {"error", m.error}};
}

}  // namespace drover::bench
