// drover-bench: drover's engine beside raw Asio and TBB's flow graph on the same shapes.
//
// The parent process only plans, spawns and reports. Every (workload, size, threads, contender)
// runs in a fresh child (this binary again, with --child), which builds the shape, takes its
// resident memory as the baseline, runs the rounds, checks each round's execution stamps and
// prints its figures and its peak RSS. See docs/performance.md.

#include "common/contender.hpp"
#include "common/machine.hpp"
#include "common/process.hpp"
#include "common/shape.hpp"
#include "journal/journal.hpp"
#include "ordering/ordering.hpp"
#include "redis/redis.hpp"
#include "remote/hostile.hpp"
#include "remote/remote.hpp"
#include "report.hpp"
#include "service/service.hpp"
#include "simulation/simulation.hpp"

#include <drover/version.hpp>

#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace drover::bench {

namespace {

namespace po = boost::program_options;

constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto first = item.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    const auto last = item.find_last_not_of(" \t");
    items.push_back(item.substr(first, last - first + 1));
  }
  return items;
}

std::size_t parse_number(std::string_view flag, std::string_view text) {
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    throw usage_error("--" + std::string(flag) + ": '" + std::string(text) +
                      "' is not a whole number");
  }
  return value;
}

// "20" and "2^20" both mean 2^20 modules; numbers above 30 are module counts as written.
std::size_t parse_size(std::string_view text) {
  constexpr std::size_t largest_exponent = 28;
  const bool power = text.starts_with("2^");
  const std::size_t value = parse_number("sizes", power ? text.substr(2) : text);
  std::size_t modules = value;
  if (power || value <= 30) {
    if (value > largest_exponent) {
      throw usage_error("--sizes: 2^" + std::to_string(value) + " modules is more than the 2^" +
                        std::to_string(largest_exponent) + " a shape can hold");
    }
    modules = std::size_t{1} << value;
  }
  if (modules == 0 || modules > (std::size_t{1} << largest_exponent)) {
    throw usage_error("--sizes: " + std::string(text) + " modules is outside 1..2^" +
                      std::to_string(largest_exponent));
  }
  return modules;
}

std::vector<workload> parse_workloads(const std::string& text) {
  if (text == "all") return {all_workloads.begin(), all_workloads.end()};
  std::vector<workload> out;
  for (const auto& name : split_list(text)) {
    auto w = parse_workload(name);
    if (!w) throw usage_error("--workload: unknown workload '" + name + "' (see --help)");
    if (std::find(out.begin(), out.end(), *w) == out.end()) out.push_back(*w);
  }
  if (out.empty()) throw usage_error("--workload: no workload given");
  return out;
}

// `default` is every built contender the default run measures, `all` every built contender;
// either may also be one item of a list ("default,drover_constrained").
std::vector<contender> parse_contenders(const std::string& text) {
  std::vector<contender> out;
  const auto add = [&out](contender c) {
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  };
  for (const auto& name : split_list(text)) {
    if (name == "all" || name == "default") {
      for (contender c : all_contenders) {
        if (is_built(c) && (name == "all" || in_default_run(c))) add(c);
      }
      continue;
    }
    auto c = parse_contender(name);
    if (!c) throw usage_error("--contender: unknown contender '" + name + "' (see --help)");
    if (!is_built(*c)) {
      throw usage_error("--contender: '" + name +
                        "' was not built into this drover-bench (CMake did not find TBB; "
                        "install libtbb-dev and reconfigure)");
    }
    add(*c);
  }
  if (out.empty()) throw usage_error("--contender: no contender given");
  return out;
}

std::vector<std::size_t> parse_threads(const std::string& text) {
  std::vector<std::size_t> out;
  for (const auto& item : split_list(text)) {
    const std::size_t t = parse_number("threads", item);
    if (t < 1 || t > 256) throw usage_error("--threads: " + item + " is outside 1..256");
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  }
  if (out.empty()) throw usage_error("--threads: no thread count given");
  return out;
}

std::vector<std::size_t> parse_worker_counts(const std::string& text) {
  std::vector<std::size_t> out;
  for (const auto& item : split_list(text)) {
    const std::size_t k = parse_number("remote-workers", item);
    if (k < 1 || k > 64) throw usage_error("--remote-workers: " + item + " is outside 1..64");
    if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
  }
  if (out.empty()) throw usage_error("--remote-workers: no worker count given");
  return out;
}

std::vector<std::size_t> parse_sizes(const std::string& text) {
  std::vector<std::size_t> out;
  for (const auto& item : split_list(text))
    out.push_back(parse_size(item));
  if (out.empty()) throw usage_error("--sizes: no size given");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string help_text(const po::options_description& visible) {
  std::ostringstream out;
  out << "Usage: drover-bench [options]\n\n"
         "Runs the same dependency shapes with drover's engine, raw Boost.Asio and TBB's flow\n"
         "graph, and reports run time, build time, modules/s, ns/module and peak memory per\n"
         "module, each beside the baselines measured in the same run.\n\n"
      << visible << "\nWorkloads:\n";
  for (workload w : all_workloads) {
    char line[160];
    std::snprintf(line, sizeof line, "  %-17s %s\n", std::string(to_string(w)).c_str(),
                  std::string(what_it_stresses(w)).c_str());
    out << line;
  }
  out << "\nContenders (default: all but drover_constrained; all: every one built):\n"
         "  drover              drover::engine, run_options::workers = threads\n"
         "  drover_events       the same with a counting run_options::on_event subscriber\n"
         "  drover_constrained  the same with a pool slot, a write claim and a read claim on\n"
         "                      every module: the constraint gate's cost (see 'vs drover')\n"
         "  asio_raw            boost::asio::post per module, hand-written dependency counters\n"
         "  tbb                 tbb::flow::graph of continue_nodes"
      << (is_built(contender::tbb) ? "" : " (not built: TBB was not found)") << "\n\n"
      << "--ordering runs a separate benchmark instead: a chain of 12 modules listed after\n"
         "independent ones (48 of 10 ms beside 10 ms steps, and 384 of 1 ms beside 10 ms\n"
         "steps), every body a timer wait, on 2 workers, in critical-path and in FIFO order\n"
         "(--rounds, --quick, --markdown and --json apply).\n\n"
      << "--remote runs another: N noop modules on K `drover worker --slots 16` processes\n"
         "connected to a master in this process, beside a floor measured in the same run: the\n"
         "same number of assign-like JSON lines sent to K client processes that parse each one\n"
         "and answer a result-like line (--remote-workers, --remote-modules, --rounds, --quick:\n"
         "2,000 modules on 1 and 2 workers, --markdown and --json apply).\n\n"
      << "--redis runs another: the same noop modules on K `drover worker --coordinator` "
         "processes\n"
         "that reach an in-process master only through Redis Streams, beside a floor: the same\n"
         "pipes with no engine; then master failover: 3 `drover run --coordinator` instances, the\n"
         "master SIGKILLed, timed until another holds the lease and resumed the run. It starts "
         "its\n"
         "own redis-server on a free loopback port (--remote-workers, default 1,4,\n"
         "--remote-modules, --rounds, --quick: 2,000 modules on 1 and 2 workers, --markdown and\n"
         "--json apply).\n\n"
      << "--hostile runs another: the --remote drover row (N noop modules on K workers, default\n"
         "4) alone and while a child process keeps 200 half-hello connections, 200 garbage\n"
         "connections and a flood of resets on the master's port from other loopback addresses;\n"
         "the slowdown is the median hostile time over the median clean one (--remote-workers,\n"
         "--remote-modules, --rounds, --quick: 2,000 modules on 1 and 2 workers, --markdown and\n"
         "--json apply).\n\n"
      << "--simulation runs another: `drover simulate` with 10,000 workers and 100,000 modules\n"
         "(1% failures, 50 worker deaths; wall time and peak RSS of the binary), beside the\n"
         "engine alone on the same DAG in this process, and a sweep of 1,000 seeds of 1,000\n"
         "modules with every fault (--rounds, --quick: 1,000 workers, 10,000 modules and 50\n"
         "seeds, --markdown and --json apply).\n\n"
      << "--service runs another: what drover serve adds: 2,000 one-module pipelines submitted\n"
         "over HTTP beside run_service::submit in the same process, and 20,000 independent noop\n"
         "modules run by the service with and without one Server-Sent Events subscriber\n"
         "(--rounds, --quick: 100 submissions and 1,000 modules, --markdown and --json apply).\n\n"
      << "--journal runs another: what run_options::journal costs, with relaxed and with fsync\n"
         "durability, beside the same run without one: N independent noop modules and a chain of\n"
         "2,000, on 1 worker, a fresh journal file per round in a directory made in the current\n"
         "directory (so on its file system); times include opening the journal and its end\n"
         "record (--journal-modules, --rounds, --quick: 5,000 and a chain of 200, --markdown and\n"
         "--json apply).\n\n"
      << "Examples:\n"
         "  drover-bench --workload independent,linear_chain --sizes 1000000 --threads 1 "
         "--contender drover,asio_raw\n"
         "  drover-bench --workload independent --sizes 20 --threads 1 "
         "--contender drover,drover_constrained,asio_raw\n"
         "  drover-bench --ordering\n"
         "  drover-bench --remote --remote-workers 4 --remote-modules 100000\n"
         "  drover-bench --redis --remote-workers 4 --remote-modules 100000\n"
         "  drover-bench --hostile --rounds 5\n"
         "  drover-bench --journal --journal-modules 100000 --rounds 5\n";
  return out.str();
}

round_figures run_contender(contender who, const shape& s, module_work& work, std::size_t threads) {
  switch (who) {
    case contender::drover:
      return run_drover(s, work, threads, drover_setup::plain);
    case contender::drover_events:
      return run_drover(s, work, threads, drover_setup::with_events);
    case contender::drover_constrained:
      return run_drover(s, work, threads, drover_setup::constrained);
    case contender::asio_raw:
      return run_asio_raw(s, work, threads);
    case contender::tbb:
      return run_tbb(s, work, threads);
  }
  throw std::logic_error("unknown contender");
}

// The child side: one shape, one contender, `rounds` rounds. Prints "edges E",
// "baseline_rss_bytes B" and "peak_restarted 0|1", one "round BUILD_NS RUN_NS" per round, and
// "peak_rss_bytes P".
int measure_in_child(workload kind, std::size_t modules, std::size_t threads, contender who,
                     std::size_t rounds) {
  const shape s{kind, modules};
  module_work work{s, threads > 1};
  // The baseline is the shape and the stamps, without what building them freed; if the peak
  // cannot be restarted, the peak so far is the (cautious) baseline.
  const bool restarted = restart_peak_rss();
  const long long baseline = restarted ? current_rss_bytes() : peak_rss_bytes();
  std::cout << "edges " << s.edge_count() << "\nbaseline_rss_bytes " << baseline
            << "\npeak_restarted " << restarted << '\n';
  for (std::size_t round = 0; round < rounds; ++round) {
    const auto where = [&] {
      return std::string(to_string(who)) + " on " + std::string(to_string(kind)) + " (" +
             std::to_string(modules) + " modules, threads " + std::to_string(threads) +
             "), round " + std::to_string(round + 1) + ": ";
    };
    work.reset();
    round_figures figures;
    try {
      figures = run_contender(who, s, work, threads);
    } catch (const std::exception& e) {
      std::cerr << "drover-bench: " << where() << e.what() << '\n';
      return exit_failed;
    }
    if (const std::string problem = work.check(s); !problem.empty()) {
      std::cerr << "drover-bench: COUNT MISMATCH: " << where() << problem << '\n';
      return exit_failed;
    }
    std::cout << "round " << figures.build_ns << ' ' << figures.run_ns << '\n';
  }
  std::cout << "peak_rss_bytes " << peak_rss_bytes() << '\n';
  return 0;
}

// Runs one measurement in a child process and reads its figures into `m`.
void measure(measurement& m, std::size_t rounds) {
  const child_outcome outcome =
      run_self({"--child", "--workload", std::string(to_string(m.kind)), "--modules",
                std::to_string(m.modules), "--threads", std::to_string(m.threads), "--contender",
                std::string(to_string(m.who)), "--rounds", std::to_string(rounds)});
  std::istringstream lines(outcome.output);
  std::string key;
  while (lines >> key) {
    if (key == "edges") {
      lines >> m.edges;
    } else if (key == "baseline_rss_bytes") {
      lines >> m.baseline_rss_bytes;
    } else if (key == "peak_restarted") {
      lines >> m.peak_restarted;
    } else if (key == "round") {
      std::int64_t build = 0, run = 0;
      lines >> build >> run;
      m.build_ns.push_back(build);
      m.run_ns.push_back(run);
    } else if (key == "peak_rss_bytes") {
      lines >> m.peak_rss_bytes;
    }
  }
  if (!outcome.failure.empty()) {
    m.error = "the measuring process " + outcome.failure + " (its message is above)";
  } else if (m.run_ns.size() != rounds || m.peak_rss_bytes <= 0) {
    m.error = "the measuring process reported " + std::to_string(m.run_ns.size()) + " of " +
              std::to_string(rounds) + " rounds" +
              (m.peak_rss_bytes <= 0 ? " and no peak RSS" : "");
  }
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

void print_header(const machine_info& machine, bool tbb_left_out) {
  std::cout << "drover-bench " << version_string << ": " << machine.cpu_model << ", "
            << machine.cores << " cores, " << machine.kernel << "\n"
            << machine.compiler << ", Boost " << machine.boost_version << ", TBB "
            << (machine.tbb_version.empty() ? "not built (CMake did not find libtbb-dev)"
                                            : machine.tbb_version)
            << ", build type " << machine.build_type << "\n";
  if (!machine.optimized) {
    std::cout << "warning: drover-bench was compiled without optimization; its figures say "
                 "little about the engine (configure with -DCMAKE_BUILD_TYPE=Release)\n";
  }
  if (tbb_left_out) std::cout << "note: the tbb contender is left out: it was not built\n";
  std::cout << std::endl;
}

bool write_json(const std::string& path, boost::json::object doc, const machine_info& machine,
                const std::string& started_at) {
  doc["machine"] = to_json(machine);
  doc["drover_version"] = version_string;
  doc["started_at"] = started_at;
  std::ofstream file(path);
  file << boost::json::serialize(doc) << '\n';
  if (!file) {
    std::cerr << "drover-bench: cannot write " << path << '\n';
    return false;
  }
  return true;
}

// --ordering: the critical-path benchmark, in this process (it measures time, not memory).
int run_ordering(const bench_settings& settings) {
  const machine_info machine = describe_machine();
  const std::string started_at = utc_now();
  print_header(machine, false);
  const std::vector<ordering_measurement> results =
      measure_ordering(ordering_scenarios(settings.quick), settings.rounds, std::cerr);
  std::cout << '\n';
  print_ordering_table(std::cout, results, settings.rounds, settings.markdown);
  if (!settings.json_path.empty()) {
    boost::json::object doc;
    doc["tool"] = "drover-bench --ordering";
    doc["quick"] = settings.quick;
    doc["ordering"] = ordering_to_json(results, settings.rounds);
    if (!write_json(settings.json_path, std::move(doc), machine, started_at)) return exit_failed;
  }
  const auto failed = static_cast<std::size_t>(
      std::count_if(results.begin(), results.end(), [](const auto& m) { return !m.ok(); }));
  if (failed > 0) {
    std::cout << "\ndrover-bench: " << failed << " of " << results.size()
              << " ordering measurements FAILED (see above)\n";
    return exit_failed;
  }
  std::cout << "\ndrover-bench: in every round each module ran exactly once, the chain in order, "
               "and each order started the module it should first\n";
  return 0;
}

// --journal: the run journal's cost, in this process (it measures time, not memory).
int run_journal_benchmark(const bench_settings& settings, const journal_settings& journal) {
  const machine_info machine = describe_machine();
  const std::string started_at = utc_now();
  print_header(machine, false);
  const journal_results results = measure_journal(journal, std::cerr);
  std::cout << '\n';
  print_journal_tables(std::cout, results, journal.rounds, settings.markdown);
  if (!settings.json_path.empty()) {
    boost::json::object doc;
    doc["tool"] = "drover-bench --journal";
    doc["quick"] = settings.quick;
    doc["journal"] = journal_to_json(results, journal.rounds);
    if (!write_json(settings.json_path, std::move(doc), machine, started_at)) return exit_failed;
  }
  const auto failed = static_cast<std::size_t>(std::count_if(
      results.rows.begin(), results.rows.end(), [](const auto& m) { return !m.ok(); }));
  if (failed > 0) {
    std::cout << "\ndrover-bench: " << failed << " of " << results.rows.size()
              << " journal measurements FAILED (see above)\n";
    return exit_failed;
  }
  std::cout << "drover-bench: in every round every module succeeded and ran exactly once after "
               "its dependency, and every journal held a record per module\n";
  return 0;
}

// --simulation: the drover binary's simulate against the engine alone on the same DAG.
int run_simulation_benchmark(const bench_settings& settings, const simulation_settings& s) {
  const machine_info machine = describe_machine();
  const std::string started_at = utc_now();
  print_header(machine, false);
  if (!simulation_rows_available()) {
    std::cout << "drover-bench: the simulation rows are left out: this drover-bench was built "
                 "without the drover binary (configure with DROVER_BUILD_APP=ON)\n";
    return 0;
  }
  const simulation_measurement m = measure_simulation(s, std::cerr);
  std::cout << '\n';
  print_simulation_table(std::cout, s, m, settings.markdown);
  if (!settings.json_path.empty()) {
    boost::json::object doc;
    doc["tool"] = "drover-bench --simulation";
    doc["quick"] = settings.quick;
    doc["simulation"] = simulation_to_json(s, m);
    if (!write_json(settings.json_path, std::move(doc), machine, started_at)) return exit_failed;
  }
  if (!m.ok()) return exit_failed;
  std::cout << "\ndrover-bench: every simulation round kept every invariant with every module "
               "succeeded, and no seed of the sweeps broke one\n";
  return 0;
}

// --service: drover serve's submissions over HTTP against run_service::submit, and a run with
// and without an SSE subscriber.
int run_service_benchmark(const bench_settings& settings, const service_settings& s) {
  const machine_info machine = describe_machine();
  const std::string started_at = utc_now();
  print_header(machine, false);
  const auto rows = measure_service(s, std::cerr);
  std::cout << '\n';
  print_service_table(std::cout, rows, settings.markdown);
  if (!settings.json_path.empty()) {
    boost::json::object doc;
    doc["tool"] = "drover-bench --service";
    doc["quick"] = settings.quick;
    doc["service"] = service_to_json(s, rows);
    if (!write_json(settings.json_path, std::move(doc), machine, started_at)) return exit_failed;
  }
  for (const auto& row : rows) {
    if (!row.ok()) return exit_failed;
  }
  std::cout << "\ndrover-bench: every submitted run succeeded, and every subscriber read every "
               "event of its run\n";
  return 0;
}

// --remote: worker processes against the floor, in this process (it measures time, not memory).
int run_remote(const bench_settings& settings, const remote_settings& remote) {
  const machine_info machine = describe_machine();
  const std::string started_at = utc_now();
  print_header(machine, false);
  if (!remote_rows_available()) {
    std::cout << "drover-bench: the remote rows are left out: this drover-bench was built without "
                 "the drover binary (configure with DROVER_BUILD_APP=ON)\n";
    return 0;
  }
  const std::vector<remote_measurement> results = measure_remote(remote, std::cerr);
  std::cout << '\n';
  print_remote_table(std::cout, results, remote.rounds, settings.markdown);
  if (!settings.json_path.empty()) {
    boost::json::object doc;
    doc["tool"] = "drover-bench --remote";
    doc["quick"] = settings.quick;
    doc["remote"] = remote_to_json(results, remote.rounds);
    if (!write_json(settings.json_path, std::move(doc), machine, started_at)) return exit_failed;
  }
  const auto failed = static_cast<std::size_t>(
      std::count_if(results.begin(), results.end(), [](const auto& m) { return !m.ok(); }));
  if (failed > 0) {
    std::cout << "\ndrover-bench: " << failed << " of " << results.size()
              << " remote measurements FAILED (see above)\n";
    return exit_failed;
  }
  std::cout << "\ndrover-bench: in every round every module succeeded on a remote worker, every "
               "floor line was answered once, and every worker process exited 0\n";
  return 0;
}

// --hostile: the remote row alone and beside hostile peers, alternating.
int run_hostile(const bench_settings& settings, const hostile_settings& hostile) {
  const machine_info machine = describe_machine();
  const std::string started_at = utc_now();
  print_header(machine, false);
  if (!remote_rows_available()) {
    std::cout << "drover-bench: the hostile rows are left out: this drover-bench was built without "
                 "the drover binary (configure with DROVER_BUILD_APP=ON)\n";
    return 0;
  }
  const std::vector<hostile_measurement> results = measure_hostile(hostile, std::cerr);
  std::cout << '\n';
  print_hostile_table(std::cout, results, hostile.rounds, settings.markdown);
  if (!settings.json_path.empty()) {
    boost::json::object doc;
    doc["tool"] = "drover-bench --hostile";
    doc["quick"] = settings.quick;
    doc["hostile"] = hostile_to_json(results, hostile.rounds);
    if (!write_json(settings.json_path, std::move(doc), machine, started_at)) return exit_failed;
  }
  for (const auto& m : results) {
    if (!m.ok()) return exit_failed;
  }
  std::cout
      << "\ndrover-bench: in every round, clean or hostile, every module succeeded on a remote "
         "worker and every worker process exited 0\n";
  return 0;
}

// --redis: workers over Redis Streams against their floor, then master failover.
int run_redis_benchmark(const bench_settings& settings, const redis_settings& redis) {
  const machine_info machine = describe_machine();
  const std::string started_at = utc_now();
  print_header(machine, false);
  if (std::string missing = redis_rows_missing(); !missing.empty()) {
    std::cout << "drover-bench: the Redis rows are left out: " << missing << '\n';
    return 0;
  }
  const redis_results results = measure_redis(redis, std::cerr);
  std::cout << '\n';
  print_redis_tables(std::cout, results, redis.rounds, settings.markdown);
  if (!settings.json_path.empty()) {
    boost::json::object doc;
    doc["tool"] = "drover-bench --redis";
    doc["quick"] = settings.quick;
    doc["redis"] = redis_to_json(results, redis.rounds);
    if (!write_json(settings.json_path, std::move(doc), machine, started_at)) return exit_failed;
  }
  if (!results.ok()) {
    std::cout << "\ndrover-bench: Redis measurements FAILED (see above)\n";
    return exit_failed;
  }
  std::cout << "\ndrover-bench: in every round every module succeeded on a worker over Redis, "
               "every floor line was answered once, every worker process exited 0, and after "
               "each failover the surviving instances finished the run\n";
  return 0;
}

int run_all(const bench_settings& settings, bool tbb_left_out) {
  const machine_info machine = describe_machine();
  const std::string started_at = utc_now();
  print_header(machine, tbb_left_out);

  const std::size_t total = settings.workloads.size() * settings.sizes.size() *
                            settings.threads.size() * settings.contenders.size();
  std::vector<measurement> results;
  results.reserve(total);
  for (workload kind : settings.workloads) {
    for (std::size_t modules : settings.sizes) {
      for (std::size_t threads : settings.threads) {
        for (contender who : settings.contenders) {
          measurement m;
          m.kind = kind;
          m.modules = modules;
          m.threads = threads;
          m.who = who;
          measure(m, settings.rounds);
          char progress[200];
          std::snprintf(progress, sizeof progress, "[%3zu/%zu] %-16s %-6s threads %zu %-18s ",
                        results.size() + 1, total, std::string(to_string(kind)).c_str(),
                        size_label(modules).c_str(), threads, std::string(to_string(who)).c_str());
          std::cerr << progress;
          if (m.ok()) {
            std::snprintf(progress, sizeof progress, "run %.3f ms, %.1f ns/module, %.0f B/module",
                          static_cast<double>(m.median_run_ns()) / 1e6, m.ns_per_module(),
                          m.bytes_per_module());
            std::cerr << progress << '\n';
          } else {
            std::cerr << "FAILED: " << m.error << '\n';
          }
          results.push_back(std::move(m));
        }
      }
    }
  }

  std::cout << '\n';
  print_tables(std::cout, results, settings);
  if (std::any_of(results.begin(), results.end(),
                  [](const auto& m) { return m.ok() && !m.peak_restarted; })) {
    std::cout << "\nnote: the kernel did not let drover-bench restart its peak RSS "
                 "(/proc/self/clear_refs), so B/module leaves out memory a contender reused "
                 "after the shape was built\n";
  }

  if (!settings.json_path.empty() &&
      !write_json(settings.json_path, to_json(results, settings, machine), machine, started_at)) {
    return exit_failed;
  }

  const auto failed = static_cast<std::size_t>(
      std::count_if(results.begin(), results.end(), [](const auto& m) { return !m.ok(); }));
  if (failed > 0) {
    std::cout << "\ndrover-bench: " << failed << " of " << results.size()
              << " measurements FAILED (see above)\n";
    return exit_failed;
  }
  std::cout << "\ndrover-bench: " << results.size()
            << " measurements; in every round each contender ran every module exactly once and "
               "after its dependencies\n";
  return 0;
}

// A usage error for any of `flags` given with `benchmark`, which has its own shapes.
void refuse_flags(const po::variables_map& vm, std::initializer_list<const char*> flags,
                  std::string_view benchmark, std::string_view why) {
  for (const char* flag : flags) {
    if (!vm[flag].defaulted()) {
      throw usage_error(std::string("--") + flag + " does not apply to " + std::string(benchmark) +
                        ", which " + std::string(why));
    }
  }
}

int main_with_exceptions(int argc, char** argv) {
  po::options_description visible("Options");
  visible.add_options()("help,h", "print this help and exit")(
      "workload,w", po::value<std::string>()->default_value("all"),
      "comma-separated workloads, or all")(
      "threads,t", po::value<std::string>()->default_value("1,2"), "comma-separated thread counts")(
      "sizes,s", po::value<std::string>()->default_value("10,12,14,16,18,20"),
      "comma-separated sizes: k (up to 30) or 2^k for 2^k modules, larger numbers as written")(
      "rounds,r", po::value<std::size_t>()->default_value(5),
      "rounds per measurement; figures are their median")(
      "contender,c", po::value<std::string>()->default_value("default"),
      "comma-separated contenders; default (all but drover_constrained) and all (every one "
      "built) may be items")("json", po::value<std::string>(),
                             "also write every figure and the machine to this file")(
      "markdown", po::bool_switch(), "print the tables as Markdown")(
      "quick", po::bool_switch(),
      "smoke run: sizes 10,12 and 2 rounds unless given (with --ordering: 1 ms bodies; with "
      "--remote: 2,000 modules on 1 and 2 workers; with --journal: 5,000 modules and a chain "
      "of 200); checks counts, not speed")(
      "ordering", po::bool_switch(),
      "run the critical-path ordering benchmark instead of the shapes (see below)")(
      "remote", po::bool_switch(),
      "run the remote-workers benchmark instead of the shapes (see below)")(
      "hostile", po::bool_switch(),
      "run the hostile-peers benchmark instead of the shapes (see below)")(
      "redis", po::bool_switch(),
      "run the Redis coordination benchmark instead of the shapes (see below)")(
      "remote-workers", po::value<std::string>()->default_value("1,2,4,8"),
      "with --remote, --redis (there 1,4 by default) or --hostile (4): comma-separated worker "
      "process counts")("remote-modules", po::value<std::size_t>()->default_value(100000),
                        "with --remote, --redis or --hostile: noop modules per run")(
      "journal", po::bool_switch(),
      "run the run-journal cost benchmark instead of the shapes (see below)")(
      "simulation", po::bool_switch(),
      "run the simulation benchmark instead of the shapes (see below)")(
      "service", po::bool_switch(), "run the service benchmark instead of the shapes (see below)")(
      "journal-modules", po::value<std::size_t>()->default_value(100000),
      "with --journal: modules of the independent shape");
  po::options_description hidden;
  hidden.add_options()("child", po::bool_switch())("modules", po::value<std::size_t>())(
      "floor-client", po::value<std::size_t>())("hostile-client", po::value<std::size_t>())(
      "redis-floor-client", po::value<std::vector<std::string>>()->multitoken());
  po::options_description all;
  all.add(visible).add(hidden);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw usage_error(e.what());
  }
  if (vm.count("help")) {
    std::cout << help_text(visible);
    return 0;
  }

  if (vm.count("floor-client")) {
    const std::size_t port = vm["floor-client"].as<std::size_t>();
    if (port < 1 || port > 65535) throw usage_error("--floor-client: a port from 1 to 65535");
    return run_floor_client(static_cast<std::uint16_t>(port));
  }
  if (vm.count("hostile-client")) {
    const std::size_t port = vm["hostile-client"].as<std::size_t>();
    if (port < 1 || port > 65535) throw usage_error("--hostile-client: a port from 1 to 65535");
    return run_hostile_client(static_cast<std::uint16_t>(port));
  }
  if (vm.count("redis-floor-client")) {
    const auto& a = vm["redis-floor-client"].as<std::vector<std::string>>();
    if (a.size() != 3) throw usage_error("--redis-floor-client: URL RUN-KEY NAME");
    return run_redis_floor_client(a[0], a[1], a[2]);
  }

  const bool explicit_sizes = !vm["sizes"].defaulted();
  const bool explicit_rounds = !vm["rounds"].defaulted();
  bench_settings settings;
  settings.quick = vm["quick"].as<bool>();
  settings.markdown = vm["markdown"].as<bool>();
  settings.rounds = vm["rounds"].as<std::size_t>();
  if (settings.quick && !explicit_rounds) settings.rounds = 2;
  if (settings.rounds < 1) throw usage_error("--rounds: at least 1");
  if (vm.count("json")) settings.json_path = vm["json"].as<std::string>();
  settings.workloads = parse_workloads(vm["workload"].as<std::string>());
  settings.threads = parse_threads(vm["threads"].as<std::string>());

  if (vm["child"].as<bool>()) {
    const std::vector<contender> who = parse_contenders(vm["contender"].as<std::string>());
    if (settings.workloads.size() != 1 || settings.threads.size() != 1 || who.size() != 1 ||
        !vm.count("modules")) {
      throw usage_error("--child needs one workload, thread count and contender, and --modules");
    }
    return measure_in_child(settings.workloads[0], vm["modules"].as<std::size_t>(),
                            settings.threads[0], who[0], settings.rounds);
  }

  const int benchmarks =
      static_cast<int>(vm["ordering"].as<bool>()) + static_cast<int>(vm["remote"].as<bool>()) +
      static_cast<int>(vm["journal"].as<bool>()) + static_cast<int>(vm["simulation"].as<bool>()) +
      static_cast<int>(vm["service"].as<bool>()) + static_cast<int>(vm["redis"].as<bool>()) +
      static_cast<int>(vm["hostile"].as<bool>());
  if (benchmarks > 1) {
    throw usage_error(
        "--ordering, --remote, --redis, --hostile, --journal, --simulation and --service are "
        "separate benchmarks: give one");
  }
  if (!vm["journal-modules"].defaulted() && !vm["journal"].as<bool>()) {
    throw usage_error("--journal-modules needs --journal");
  }

  if (vm["journal"].as<bool>()) {
    refuse_flags(vm,
                 {"workload", "threads", "sizes", "contender", "remote-workers", "remote-modules"},
                 "--journal", "runs its own two shapes");
    journal_settings journal;
    journal.rounds = settings.rounds;
    journal.independent_modules = settings.quick && vm["journal-modules"].defaulted()
                                      ? 5000
                                      : vm["journal-modules"].as<std::size_t>();
    journal.chain_modules = settings.quick ? 200 : 2000;
    if (journal.independent_modules < 1 || journal.independent_modules > 10'000'000) {
      throw usage_error("--journal-modules: " + std::to_string(journal.independent_modules) +
                        " is outside 1..10000000");
    }
    return run_journal_benchmark(settings, journal);
  }

  if (vm["ordering"].as<bool>()) {
    refuse_flags(vm, {"workload", "threads", "sizes", "contender"}, "--ordering",
                 "runs its own fixed shapes");
    return run_ordering(settings);
  }

  if (vm["service"].as<bool>()) {
    refuse_flags(vm, {"workload", "threads", "sizes", "contender"}, "--service",
                 "runs its own pipelines");
    service_settings service;
    service.rounds = settings.rounds;
    if (settings.quick) {
      service.submissions = 100;
      service.modules = 1000;
    }
    return run_service_benchmark(settings, service);
  }

  if (vm["simulation"].as<bool>()) {
    refuse_flags(vm, {"workload", "threads", "sizes", "contender"}, "--simulation",
                 "runs its own pipelines");
    simulation_settings simulation;
    simulation.rounds = settings.rounds;
    if (settings.quick) {
      simulation.workers = 1000;
      simulation.modules = 10'000;
      simulation.kill_workers = 10;
      simulation.sweep_seeds = 50;
    }
    return run_simulation_benchmark(settings, simulation);
  }

  if (vm["remote"].as<bool>() || vm["redis"].as<bool>() || vm["hostile"].as<bool>()) {
    const bool redis = vm["redis"].as<bool>();
    const bool hostile = vm["hostile"].as<bool>();
    const char* name = redis ? "--redis" : hostile ? "--hostile" : "--remote";
    refuse_flags(vm, {"workload", "threads", "sizes", "contender"}, name,
                 "runs its own noop modules");
    const std::vector<std::size_t> workers = parse_worker_counts(
        !vm["remote-workers"].defaulted() ? vm["remote-workers"].as<std::string>()
        : settings.quick                  ? std::string("1,2")
        : redis                           ? std::string("1,4")
        : hostile                         ? std::string("4")
                                          : vm["remote-workers"].as<std::string>());
    const std::size_t modules = settings.quick && vm["remote-modules"].defaulted()
                                    ? 2000
                                    : vm["remote-modules"].as<std::size_t>();
    if (modules < 1 || modules > 10'000'000) {
      throw usage_error("--remote-modules: " + std::to_string(modules) + " is outside 1..10000000");
    }
    if (redis) return run_redis_benchmark(settings, {workers, modules, settings.rounds});
    if (hostile) return run_hostile(settings, {workers, modules, settings.rounds});
    return run_remote(settings, {workers, modules, settings.rounds});
  }
  for (const char* flag : {"remote-workers", "remote-modules"}) {
    if (!vm[flag].defaulted()) {
      throw usage_error(std::string("--") + flag + " needs --remote, --redis or --hostile");
    }
  }

  settings.sizes = parse_sizes(settings.quick && !explicit_sizes ? std::string("10,12")
                                                                 : vm["sizes"].as<std::string>());
  const std::string contenders = vm["contender"].as<std::string>();
  settings.contenders = parse_contenders(contenders);
  bool tbb_left_out = false;
  for (const auto& name : split_list(contenders))
    tbb_left_out =
        tbb_left_out || ((name == "all" || name == "default") && !is_built(contender::tbb));
  return run_all(settings, tbb_left_out);
}

}  // namespace

}  // namespace drover::bench

int main(int argc, char** argv) {
  try {
    return drover::bench::main_with_exceptions(argc, argv);
  } catch (const drover::bench::usage_error& e) {
    std::cerr << "drover-bench: " << e.what() << "\nTry 'drover-bench --help'.\n";
    return drover::bench::exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "drover-bench: " << e.what() << '\n';
    return drover::bench::exit_failed;
  }
}
