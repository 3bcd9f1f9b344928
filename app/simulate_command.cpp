#include "simulate_command.hpp"

#include "commands.hpp"

#include <drover/coord/simulation.hpp>

#include <boost/program_options.hpp>

#include <charconv>
#include <iomanip>
#include <optional>
#include <string_view>

namespace drover::app {

namespace po = boost::program_options;

namespace {

constexpr std::size_t max_simulated_workers = 10'000;

// "5" (exactly 5 ms) or "1..10" (uniform between): the per-attempt delay.
bool parse_delay_range(std::string_view text, std::chrono::milliseconds& low,
                       std::chrono::milliseconds& high) {
  const auto number = [](std::string_view s, std::int64_t& out) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && end == s.data() + s.size() && out >= 0;
  };
  std::int64_t a = 0, b = 0;
  if (const auto dots = text.find(".."); dots != std::string_view::npos) {
    if (!number(text.substr(0, dots), a) || !number(text.substr(dots + 2), b) || b < a)
      return false;
  } else {
    if (!number(text, a)) return false;
    b = a;
  }
  low = std::chrono::milliseconds{a};
  high = std::chrono::milliseconds{b};
  return true;
}

void print_usage(std::ostream& out, const po::options_description& options) {
  out << "Usage: drover simulate [options]\n\n"
         "Runs a generated pipeline over simulated remote workers in this process: a master,\n"
         "the engine and the workers speak the real protocol over in-memory pipes. Faults\n"
         "come from the seed, so a run can be repeated.\n\n"
      << options << '\n';
}

}  // namespace

int simulate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::size_t workers = 100, modules = 10'000, kill = 0;
  std::uint32_t slots = 1;
  std::uint64_t seed = 1;
  double fail_rate = 0.0;
  int retries = 3;
  std::string shape_name = "random", delay = "0";
  po::options_description options{"Options"};
  options.add_options()("help,h", "print this help and exit")(
      "workers", po::value(&workers)->default_value(workers), "simulated workers (1 to 10,000)")(
      "modules", po::value(&modules)->default_value(modules), "modules in the generated pipeline")(
      "shape", po::value(&shape_name)->default_value(shape_name),
      "random (each module after 1-3 of the 1,000 before it), chain, independent or tree")(
      "seed", po::value(&seed)->default_value(seed),
      "seeds the shape, delays, failures and deaths")(
      "slots", po::value(&slots)->default_value(slots), "attempts each worker runs at once")(
      "fail-rate", po::value(&fail_rate)->default_value(fail_rate),
      "chance in [0, 1] that an attempt fails")(
      "retries", po::value(&retries)->default_value(retries), "retries per module")(
      "kill-workers", po::value(&kill)->default_value(kill),
      "workers that die (close without a word) during the run")(
      "delay-ms", po::value(&delay)->default_value(delay),
      "per-attempt delay: N, or A..B for uniform between A and B");

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    err << "drover simulate: " << e.what() << "\n(see drover simulate --help)\n";
    return exit_usage;
  }
  if (vm.count("help")) {
    print_usage(out, options);
    return exit_succeeded;
  }
  coord::simulation_options settings;
  const auto shape = coord::parse_sim_shape(shape_name);
  std::string problem;
  if (!shape) problem = "--shape must be random, chain, independent or tree, got " + shape_name;
  if (workers == 0 || workers > max_simulated_workers)
    problem = "--workers must be between 1 and 10000";
  if (modules == 0) problem = "--modules must be at least 1";
  if (slots == 0) problem = "--slots must be at least 1";
  if (!(fail_rate >= 0.0 && fail_rate <= 1.0)) problem = "--fail-rate must be within [0, 1]";
  if (retries < 0) problem = "--retries must be >= 0";
  if (kill > workers) problem = "--kill-workers cannot exceed --workers";
  if (!parse_delay_range(delay, settings.min_delay, settings.max_delay))
    problem = "--delay-ms must be N or A..B with 0 <= A <= B, got " + delay;
  if (!problem.empty()) {
    err << "drover simulate: " << problem << '\n';
    return exit_usage;
  }
  settings.workers = workers;
  settings.slots = slots;
  settings.seed = seed;
  settings.fail_rate = fail_rate;
  settings.kill_workers = kill;
  // Deaths spread over about the time the run should take on the surviving workers.
  const auto mean_delay = (settings.min_delay + settings.max_delay) / 2;
  settings.kill_within = std::max(
      std::chrono::milliseconds{50},
      mean_delay * static_cast<std::int64_t>(modules / std::max<std::size_t>(workers * slots, 1)));

  const auto outcome =
      coord::simulate(coord::simulation_pipeline(*shape, modules, seed, retries), settings);
  const auto& report = outcome.report;
  out << "simulated " << workers << " workers x " << slots << " slots, " << modules << ' '
      << shape_name << " modules, seed " << seed << '\n';
  out << "run " << to_string(report.status) << " in " << outcome.elapsed.count()
      << " ms: " << std::fixed << std::setprecision(0) << outcome.throughput() << " modules/s\n";
  out << "modules:";
  for (std::size_t s = 1; s < module_status_count; ++s) {
    if (report.counts[s] > 0)
      out << ' ' << to_string(static_cast<module_status>(s)) << ' ' << report.counts[s];
  }
  out << "\nattempts " << outcome.assignments << ", injected failures " << outcome.failed_attempts
      << ", workers died " << outcome.workers_died << '\n';
  out << "remote: attached " << report.remote.workers_attached << ", lost "
      << report.remote.workers_lost << ", reassigned " << report.remote.reassigned
      << ", rejected results " << report.remote.rejected_results << ", dependency results sent "
      << report.remote.dependency_results_sent << '\n';
  if (outcome.hit_limit) err << "drover simulate: the run hit its time limit and was cancelled\n";
  return report.status == run_status::succeeded ? exit_succeeded : exit_failed;
}

}  // namespace drover::app
