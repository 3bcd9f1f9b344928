#include "simulate_command.hpp"

#include "commands.hpp"
#include "pipeline_file.hpp"
#include "report.hpp"

#include <drover/coord/simulation.hpp>
#include <drover/modules/registry.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <fstream>
#include <functional>
#include <iomanip>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>

namespace drover::app {

namespace po = boost::program_options;
using std::chrono::milliseconds;

namespace {

constexpr std::size_t max_simulated_workers = 10'000;

bool parse_number(std::string_view s, std::uint64_t& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size() && !s.empty();
}

// "5" (exactly 5) or "1..10" (1 to 10): a delay or a range of seeds.
bool parse_range(std::string_view text, std::uint64_t& low, std::uint64_t& high) {
  if (const auto dots = text.find(".."); dots != std::string_view::npos)
    return parse_number(text.substr(0, dots), low) && parse_number(text.substr(dots + 2), high) &&
           low <= high;
  if (!parse_number(text, low)) return false;
  high = low;
  return true;
}

// "linux:6,gpu+linux:2": 6 workers labelled linux, then 2 labelled gpu and linux.
std::optional<std::string> parse_capability_mix(
    std::string_view text, std::vector<std::pair<std::vector<std::string>, std::size_t>>& mix) {
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    const auto colon = item.rfind(':');
    std::uint64_t count = 0;
    if (colon == std::string_view::npos || colon == 0 ||
        !parse_number(item.substr(colon + 1), count))
      return "--capability-mix: '" + std::string(item) + "' is not LABELS:COUNT";
    std::vector<std::string> labels;
    std::string_view rest = item.substr(0, colon);
    while (!rest.empty()) {
      const auto plus = rest.find('+');
      labels.emplace_back(rest.substr(0, plus));
      rest = plus == std::string_view::npos ? std::string_view{} : rest.substr(plus + 1);
    }
    mix.emplace_back(std::move(labels), count);
  }
  return std::nullopt;
}

// Per-module attempt durations from a report `drover run --report` wrote: a module's duration
// over its attempts.
std::optional<std::string> load_durations(const std::string& file, coord::attempt_durations& out) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return "cannot read --durations file '" + file + "'";
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  const auto report = boost::json::parse(text.str(), ec);
  const auto* modules =
      !ec && report.is_object() ? report.as_object().if_contains("modules") : nullptr;
  if (modules == nullptr || !modules->is_array())
    return "--durations file '" + file + "' is not a drover report (no \"modules\" array)";
  for (const auto& m : modules->as_array()) {
    if (!m.is_object()) continue;
    const auto& o = m.as_object();
    const auto* id = o.if_contains("id");
    const auto* duration = o.if_contains("duration_ms");
    const auto* attempts = o.if_contains("attempts");
    if (!id || !id->is_string() || !duration || !duration->is_int64()) continue;
    const std::int64_t tries = attempts && attempts->is_int64() ? attempts->as_int64() : 1;
    out[std::string(id->as_string())] =
        milliseconds{duration->as_int64() / std::max<std::int64_t>(tries, 1)};
  }
  return std::nullopt;
}

// Each fault kind --faults names, and how it turns that kind on at the intensity of
// simulation_faults::all().
struct fault_kind {
  std::string_view name;
  void (*enable)(coord::simulation_faults& f, const coord::simulation_faults& all);
};

using faults_t = coord::simulation_faults;
constexpr fault_kind fault_kinds[] = {
    {"fail", [](faults_t& f, const faults_t& all) { f.fail_rate = all.fail_rate; }},
    {"hang", [](faults_t& f, const faults_t& all) { f.hang_rate = all.hang_rate; }},
    {"duplicate", [](faults_t& f, const faults_t& all) { f.duplicate_rate = all.duplicate_rate; }},
    {"stale", [](faults_t& f, const faults_t& all) { f.stale_rate = all.stale_rate; }},
    {"crash", [](faults_t& f, const faults_t& all) { f.crash_workers = all.crash_workers; }},
    {"silent", [](faults_t& f, const faults_t& all) { f.silent_workers = all.silent_workers; }},
    {"slow", [](faults_t& f, const faults_t& all) { f.slow_workers = all.slow_workers; }},
    {"partition",
     [](faults_t& f, const faults_t& all) { f.partitioned_workers = all.partitioned_workers; }},
    {"delay",
     [](faults_t& f, const faults_t& all) { f.max_message_delay = all.max_message_delay; }},
    {"master", [](faults_t& f, const faults_t& all) { f.master_restarts = all.master_restarts; }},
    {"redis", [](faults_t& f, const faults_t& all) { f.redis_restarts = all.redis_restarts; }},
};

// "fail, hang, ..., master": the kinds, for --help and for the error about an unknown one.
std::string fault_kind_names() {
  std::string names;
  for (const fault_kind& kind : fault_kinds)
    names += (names.empty() ? "" : ", ") + std::string(kind.name);
  return names;
}

// Turns on the fault kinds named in `list` ("all" or e.g. "crash,partition,stale").
std::optional<std::string> apply_fault_list(std::string_view list, coord::simulation_faults& f) {
  const coord::simulation_faults all = coord::simulation_faults::all();
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view name = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (name == "all") {
      f = all;
      continue;
    }
    const auto* kind = std::find_if(std::begin(fault_kinds), std::end(fault_kinds),
                                    [&](const fault_kind& k) { return k.name == name; });
    if (kind == std::end(fault_kinds)) {
      return "--faults: unknown fault '" + std::string(name) + "' (all, " + fault_kind_names() +
             ")";
    }
    kind->enable(f, all);
  }
  return std::nullopt;
}

void print_usage(std::ostream& out, const po::options_description& options) {
  out << "Usage: drover simulate [options]\n"
         "       drover simulate --seeds A..B [--jobs N] [options]\n"
         "       drover simulate --pipeline FILE --workers N [--durations REPORT] [options]\n\n"
         "Runs a pipeline over simulated remote workers in this process, on virtual time: a\n"
         "master, the engine and the workers speak the real protocol over in-memory pipes.\n"
         "Faults come from the seed, every invariant is checked on every event, and the same\n"
         "seed gives the same trace, byte for byte. With --seeds, runs every seed and prints\n"
         "each failing one with the command that replays it. docs/simulation.md explains it.\n\n"
      << options << '\n';
}

using pipeline_maker = std::function<pipeline(std::uint64_t)>;

std::string hex(std::uint64_t v) {
  std::ostringstream s;
  s << std::hex << std::setw(16) << std::setfill('0') << v;
  return s.str();
}

std::string seconds(std::chrono::nanoseconds d) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(3) << static_cast<double>(d.count()) / 1e9 << " s";
  return s.str();
}

int print_outcome(const coord::simulation_outcome& outcome, const coord::simulation_options& o,
                  std::string_view what, std::ostream& out, std::ostream& err) {
  const auto& report = outcome.report;
  if (report.status == run_status::invalid) {
    for (const auto& p : report.problems)
      err << "drover simulate: " << p.message << '\n';
    return exit_usage;
  }
  out << "simulated " << o.workers << " workers x " << o.slots << " slots, " << what << ", seed "
      << o.seed << '\n';
  out << "run " << to_string(report.status) << " in " << seconds(outcome.virtual_elapsed)
      << " of virtual time (" << outcome.elapsed.count() << " ms wall, " << std::fixed
      << std::setprecision(0) << outcome.throughput() << " modules/s)\n";
  out << "modules:";
  for (std::size_t s = 1; s < module_status_count; ++s) {
    if (report.counts[s] > 0)
      out << ' ' << to_string(static_cast<module_status>(s)) << ' ' << report.counts[s];
  }
  out << "\nattempts " << outcome.assignments << ", injected failures " << outcome.failed_attempts
      << ", workers died " << outcome.workers_died << ", master restarts "
      << outcome.master_restarts;
  if (o.over_redis) {
    out << ", redis restarts " << outcome.redis_restarts << ", workers rejoined "
        << outcome.workers_rejoined;
  }
  out << '\n';
  out << "remote: attached " << report.remote.workers_attached << ", lost "
      << report.remote.workers_lost << ", reassigned " << report.remote.reassigned
      << ", rejected results " << report.remote.rejected_results << ", dependency results sent "
      << report.remote.dependency_results_sent << '\n';
  out << "worker utilisation " << std::setprecision(1) << 100.0 * outcome.utilisation(o.slots)
      << "%\n";
  const auto& path = outcome.critical_path;
  out << "critical path (" << path.size() << " modules):";
  for (std::size_t i = 0; i < path.size() && i < 12; ++i) {
    const auto m = report.find(path[i]);
    out << (i == 0 ? " " : " <- ") << path[i];
    if (m) out << " (" << format_duration(m->duration()) << ')';
  }
  out << (path.size() > 12 ? " <- ...\n" : "\n");
  out << "trace hash " << hex(outcome.trace_hash) << " (" << outcome.events << " events, "
      << outcome.timers_fired << " timer steps)\n";
  if (outcome.violations.empty()) {
    out << "invariants: all held\n";
    return report.status == run_status::succeeded ? exit_succeeded : exit_failed;
  }
  err << "drover simulate: " << outcome.violations.size() << " invariant violation(s), seed "
      << o.seed << ":\n";
  for (std::size_t i = 0; i < outcome.violations.size() && i < 20; ++i)
    err << "  " << outcome.violations[i].describe() << '\n';
  return exit_invariant_broken;
}

// Runs seeds first..last on `jobs` threads, each simulation on its own virtual clock.
int run_sweep(const std::vector<std::string>& args, coord::simulation_options settings,
              const pipeline_maker& make_pipeline, std::uint64_t first, std::uint64_t last,
              std::size_t jobs, std::ostream& out) {
  const auto started = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> next{first};
  std::mutex lock;
  std::map<std::uint64_t, std::vector<coord::violation>> failing;
  std::uint64_t runs_failed = 0;
  const auto work = [&] {
    for (std::uint64_t s; (s = next.fetch_add(1)) <= last;) {
      coord::simulation_options o = settings;
      o.seed = s;
      auto outcome = coord::simulate(make_pipeline(s), o);
      std::lock_guard guard(lock);
      if (!outcome.violations.empty()) failing[s] = std::move(outcome.violations);
      if (outcome.report.status != run_status::succeeded) ++runs_failed;
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t j = 1; j < jobs; ++j)
    threads.emplace_back(work);
  work();
  for (auto& t : threads)
    t.join();
  const auto took = std::chrono::steady_clock::now() - started;
  const std::uint64_t count = last - first + 1;
  for (const auto& [s, violations] : failing) {
    out << "seed " << s << ": " << violations.front().describe();
    if (violations.size() > 1) out << " (and " << violations.size() - 1 << " more)";
    out << "\n  replay: " << simulate_replay_command(args, s) << '\n';
  }
  out << count << " seeds in " << seconds(took) << ": " << failing.size() << " broke an invariant; "
      << runs_failed << " runs did not succeed under their faults\n";
  return failing.empty() ? exit_succeeded : exit_invariant_broken;
}

bool write_file(const std::string& file, std::string_view text, std::ostream& err) {
  std::ofstream f(file, std::ios::binary | std::ios::trunc);
  f << text;
  f.flush();
  if (f) return true;
  err << "drover simulate: cannot write '" << file << "'\n";
  return false;
}

}  // namespace

std::string simulate_replay_command(const std::vector<std::string>& args, std::uint64_t seed) {
  std::string out = "drover simulate";
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool takes_value = a == "--seeds" || a == "--jobs" || a == "--seed" || a == "--trace";
    if (takes_value) {
      ++i;
      continue;
    }
    if (a.starts_with("--seeds=") || a.starts_with("--jobs=") || a.starts_with("--seed=") ||
        a.starts_with("--trace="))
      continue;
    out += ' ';
    out += a;
  }
  return out + " --seed " + std::to_string(seed);
}

int simulate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::size_t workers = 100, modules = 10'000, kill = 0, jobs = 1;
  std::uint32_t slots = 1;
  std::uint64_t seed = 1;
  double fail_rate = -1.0;
  int retries = 3;
  std::string shape_name = "random", delay = "0", faults, seeds, pipeline_file, durations_file, mix,
              trace_file, report_file;
  const std::string fault_help = "all, or a list of: " + fault_kind_names();
  po::options_description options{"Options"};
  options.add_options()("help,h", "print this help and exit")(
      "workers", po::value(&workers)->default_value(workers), "simulated workers (1 to 10,000)")(
      "slots", po::value(&slots)->default_value(slots), "attempts each worker runs at once")(
      "capability-mix", po::value(&mix),
      "worker labels, e.g. linux:6,gpu+linux:2 (6 workers labelled linux, 2 gpu and linux)")(
      "modules", po::value(&modules)->default_value(modules), "modules in the generated pipeline")(
      "shape", po::value(&shape_name)->default_value(shape_name),
      "random (each module after 1-3 of the 1,000 before it), chain, independent or tree")(
      "constrained", "give generated modules a pool and a not-in-parallel key")(
      "pipeline", po::value(&pipeline_file), "simulate this pipeline file instead")(
      "durations", po::value(&durations_file),
      "a report (drover run --report) whose module durations the attempts take")(
      "seed", po::value(&seed)->default_value(seed), "seeds the shape, delays and every fault")(
      "seeds", po::value(&seeds), "A..B: run every seed from A to B; print the failing ones")(
      "jobs", po::value(&jobs)->default_value(jobs), "with --seeds: seeds run at once")(
      "faults", po::value(&faults), fault_help.c_str())("fail-rate", po::value(&fail_rate),
                                                        "chance in [0, 1] that an attempt fails")(
      "retries", po::value(&retries)->default_value(retries), "retries per generated module")(
      "kill-workers", po::value(&kill)->default_value(kill),
      "workers that die (close without a word) during the run")(
      "delay-ms", po::value(&delay)->default_value(delay),
      "per-attempt virtual delay: N, or A..B for uniform between A and B")(
      "over-redis",
      "masters and workers meet in an in-memory Redis, as `drover run --coordinator` instances "
      "do: the lease, the journal stream and the join stream (docs/simulation.md)")(
      "trace", po::value(&trace_file), "write the event trace to this file")(
      "report", po::value(&report_file), "write the run's JSON report to this file");

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
  std::optional<std::string> problem;
  std::uint64_t delay_low = 0, delay_high = 0, first_seed = seed, last_seed = seed;
  if (!shape) problem = "--shape must be random, chain, independent or tree, got " + shape_name;
  if (workers == 0 || workers > max_simulated_workers)
    problem = "--workers must be between 1 and 10000";
  if (modules == 0) problem = "--modules must be at least 1";
  if (slots == 0) problem = "--slots must be at least 1";
  if (jobs == 0 || jobs > 256) problem = "--jobs must be between 1 and 256";
  if (vm.count("fail-rate") && !(fail_rate >= 0.0 && fail_rate <= 1.0))
    problem = "--fail-rate must be within [0, 1]";
  if (retries < 0) problem = "--retries must be >= 0";
  if (kill > workers) problem = "--kill-workers cannot exceed --workers";
  if (!parse_range(delay, delay_low, delay_high))
    problem = "--delay-ms must be N or A..B with 0 <= A <= B, got " + delay;
  if (vm.count("seeds") && !parse_range(seeds, first_seed, last_seed))
    problem = "--seeds must be A..B with A <= B, got " + seeds;
  if (!problem && vm.count("faults")) problem = apply_fault_list(faults, settings.faults);
  if (!problem && settings.faults.redis_restarts > 0 && faults != "all" && !vm.count("over-redis"))
    problem = "--faults redis restarts the in-memory Redis of --over-redis; add --over-redis";
  if (!problem && vm.count("capability-mix"))
    problem = parse_capability_mix(mix, settings.capability_mix);
  auto durations = std::make_shared<coord::attempt_durations>();
  if (!problem && vm.count("durations")) problem = load_durations(durations_file, *durations);
  std::optional<pipeline> user_pipeline;
  if (!problem && vm.count("pipeline")) {
    auto loaded = load_pipeline_file(pipeline_file, modules::builtin_registry());
    if (!loaded.ok()) {
      for (const auto& p : loaded.problems)
        err << format_problem(pipeline_file, p) << '\n';
      return exit_usage;
    }
    user_pipeline = std::move(loaded.pipeline);
  }
  if (problem) {
    err << "drover simulate: " << *problem << '\n';
    return exit_usage;
  }
  settings.workers = workers;
  settings.slots = slots;
  settings.min_delay = milliseconds{static_cast<std::int64_t>(delay_low)};
  settings.max_delay = milliseconds{static_cast<std::int64_t>(delay_high)};
  if (user_pipeline && !vm.count("delay-ms") && durations->empty()) {
    settings.min_delay = settings.max_delay = milliseconds{1000};  // unknown: a second each
  }
  if (!durations->empty()) settings.durations = durations;
  if (fail_rate >= 0.0) settings.faults.fail_rate = fail_rate;
  if (kill > 0) settings.faults.crash_workers = kill;
  const bool constrained = vm.count("constrained") > 0;
  settings.over_redis = vm.count("over-redis") > 0;
  const auto make_pipeline = [&](std::uint64_t s) {
    return user_pipeline ? *user_pipeline
                         : coord::simulation_pipeline(*shape, modules, s, retries, constrained);
  };

  if (vm.count("seeds"))
    return run_sweep(args, settings, make_pipeline, first_seed, last_seed, jobs, out);

  settings.seed = seed;
  settings.keep_trace = vm.count("trace") > 0;
  const auto outcome = coord::simulate(make_pipeline(seed), settings);
  const std::string what = user_pipeline ? "pipeline " + pipeline_file
                                         : std::to_string(modules) + " " + shape_name + " modules";
  const int code = print_outcome(outcome, settings, what, out, err);
  if (code == exit_usage) return code;
  if (vm.count("trace") && !write_file(trace_file, outcome.trace, err)) return exit_usage;
  if (vm.count("report") &&
      !write_file(report_file, boost::json::serialize(report_to_json(outcome.report)) + "\n", err))
    return exit_usage;
  return code;
}

}  // namespace drover::app
