// Chaos with real processes: a `drover run --listen` master and worker processes
// (`drover worker`) reaching it through a proxy (chaos_proxy.hpp), while a seeded driver kills
// and restarts workers, stops and resumes them, cuts their connections, delays their bytes and
// holds them back past the master's patience (a partition with both sockets open).
// Each round checks that every module ends succeeded, that exactly one result per module was
// accepted (one module_finished event), that each ran at least once (the modules append their
// id to a file), that the run lost nothing, and that the master's memory stayed bounded.
//
// By hand: chaos_test -- --seed S [--rounds N] [--modules N] [--workers N]. Round r uses seed
// S + r and prints it; `--seed <that> --rounds 1` makes the same pipeline and the same faults
// in the same order at the same times again (the processes' own timing is the machine's).

#define BOOST_TEST_MODULE chaos
#include "../app/app_test_support.hpp"
#include "chaos_proxy.hpp"
#include "process_stats.hpp"
#include "test_options.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_to.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

namespace json = boost::json;
using namespace drover::app_test;
using drover::chaos::chaos_proxy;
using clock_type = std::chrono::steady_clock;

struct chaos_options {
  int seed = 1;
  int rounds = 5;
  int modules = 5000;
  int workers = 4;
};

chaos_options options_from_command_line() {
  chaos_options options;
  drover::chaos::read_test_options({{"--seed", &options.seed},
                                    {"--rounds", &options.rounds},
                                    {"--modules", &options.modules},
                                    {"--workers", &options.workers}});
  return options;
}

/// `modules` exec modules, each appending its id to `executions`. Module i depends on up to two
/// of the 200 before it, so the run has both long chains and wide layers.
std::string chaos_pipeline(int modules, std::mt19937& random, const fs::path& executions) {
  json::array list;
  for (int i = 0; i < modules; ++i) {
    const std::string id = "m" + std::to_string(i);
    json::object module{{"id", id}, {"kind", "exec"}};
    module["params"] = {{"shell", "echo " + id + " >> '" + executions.string() + "'"}};
    json::array deps;
    for (int d = 0, count = i == 0 ? 0 : static_cast<int>(random() % 3); d < count; ++d) {
      const int from = std::max(0, i - 200);
      const std::string dep = "m" + std::to_string(from + static_cast<int>(random() % (i - from)));
      if (std::find(deps.begin(), deps.end(), json::value(dep)) == deps.end())
        deps.push_back(json::value(dep));
    }
    if (!deps.empty()) module["deps"] = std::move(deps);
    list.push_back(std::move(module));
  }
  return json::serialize(json::object{{"name", "chaos"}, {"modules", std::move(list)}});
}

/// One worker process of the round, reaching the master through its own proxy route.
class chaos_worker {
 public:
  chaos_worker(fs::path dir, unsigned short proxy_port) : dir_(std::move(dir)), port_(proxy_port) {
    fs::create_directories(dir_);
    start();
  }
  void start() {
    process_ = std::make_unique<drover_process>(
        std::vector<std::string>{"worker", "--connect", "127.0.0.1:" + std::to_string(port_),
                                 "--slots", "2", "--workspace", dir_.string()},
        dir_);
  }
  void kill_and_restart() {
    process_.reset();  // SIGKILL, then reaped
    start();
  }
  void stop() {
    process_->send(SIGSTOP);
    stopped_ = true;
  }
  void resume() {
    process_->send(SIGCONT);
    stopped_ = false;
  }
  bool stopped() const noexcept { return stopped_; }

 private:
  fs::path dir_;
  unsigned short port_;
  std::unique_ptr<drover_process> process_;
  bool stopped_ = false;
};

/// What the seeded driver did in a round.
struct fault_counts {
  int kills = 0, stops = 0, cuts = 0, delays = 0, partitions = 0;
};

/// Picks a fault every 100 to 400 ms of the round and applies it; resumes stopped workers
/// after 200 to 2000 ms. Everything it decides comes from `random`.
class fault_driver {
 public:
  fault_driver(std::mt19937& random, std::vector<std::unique_ptr<chaos_worker>>& workers,
               chaos_proxy& proxy)
      : random_(random), workers_(workers), proxy_(proxy), resume_at_(workers.size()) {
    next_fault_ = clock_type::now() + pick(100, 400);
  }

  void step(clock_type::time_point now) {
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (workers_[w]->stopped() && now >= resume_at_[w]) workers_[w]->resume();
    }
    if (now < next_fault_) return;
    next_fault_ = now + pick(100, 400);
    const auto w = static_cast<std::size_t>(random_() % workers_.size());
    switch (random_() % 5) {
      case 0:
        ++counts_.kills;
        workers_[w]->kill_and_restart();
        break;
      case 1:
        if (workers_[w]->stopped()) break;
        ++counts_.stops;
        workers_[w]->stop();
        resume_at_[w] = now + pick(200, 2000);
        break;
      case 2:
        ++counts_.cuts;
        proxy_.cut(w);
        break;
      case 3:
        ++counts_.delays;
        proxy_.delay(w, pick(20, 400), pick(200, 1500));
        break;
      default:
        // A partition: both sockets stay open but nothing gets through for longer than the
        // master waits for a silent worker.
        ++counts_.partitions;
        proxy_.delay(w, pick(1600, 3000), pick(50, 200));
        break;
    }
  }

  void resume_all() {
    for (auto& worker : workers_)
      if (worker->stopped()) worker->resume();
  }
  const fault_counts& counts() const noexcept { return counts_; }

 private:
  std::chrono::milliseconds pick(int low, int high) {
    return std::chrono::milliseconds{
        low + static_cast<int>(random_() % static_cast<unsigned>(high - low + 1))};
  }

  std::mt19937& random_;
  std::vector<std::unique_ptr<chaos_worker>>& workers_;
  chaos_proxy& proxy_;
  std::vector<clock_type::time_point> resume_at_;
  clock_type::time_point next_fault_;
  fault_counts counts_;
};

/// How many times each id appears as a line of `file`.
std::map<std::string, int> count_lines(const fs::path& file) {
  std::map<std::string, int> counts;
  std::ifstream in{file};
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) ++counts[line];
  return counts;
}

void run_round(const chaos_options& options, unsigned seed) {
  BOOST_TEST_MESSAGE("chaos round: seed " << seed << " (reproduce: chaos_test -- --seed " << seed
                                          << " --rounds 1 --modules " << options.modules
                                          << " --workers " << options.workers << ")");
  std::mt19937 random{seed};
  scratch_dir dir;
  const auto executions = dir / "executions";
  dir.write("pipeline.json", chaos_pipeline(options.modules, random, executions));
  fs::create_directories(dir / "master");
  drover_process master{
      {"run", (dir / "pipeline.json").string(), "--workers", "0", "--listen", "127.0.0.1:0",
       "--heartbeat-ms", "200", "--lost-worker-timeout-ms", "1500", "--max-worker-losses", "100",
       "--progress", "never", "--report", (dir / "report.json").string(), "--events",
       (dir / "events.jsonl").string()},
      dir / "master"};
  const auto master_port = wait_for_port(dir / "master");
  BOOST_REQUIRE_MESSAGE(master_port,
                        "seed " << seed << ": the master did not start listening: "
                                << read_file(dir / "master" / ".drover-stderr").substr(0, 2000));

  chaos_proxy proxy{static_cast<unsigned short>(std::stoi(*master_port)),
                    static_cast<std::size_t>(options.workers)};
  std::vector<std::unique_ptr<chaos_worker>> workers;
  for (int w = 0; w < options.workers; ++w)
    workers.push_back(
        std::make_unique<chaos_worker>(dir / ("worker-" + std::to_string(w)), proxy.port(w)));

  fault_driver faults{random, workers, proxy};
  std::size_t peak_rss_kib = 0;
  const auto started = clock_type::now();
  const auto limit = std::chrono::minutes{5};
  while (!master.exited() && clock_type::now() - started < limit) {
    peak_rss_kib = std::max(peak_rss_kib, drover::chaos::rss_kib(master.pid()));
    faults.step(clock_type::now());
    std::this_thread::sleep_for(20ms);
  }
  faults.resume_all();
  const auto result = master.wait(1s);
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started);
  BOOST_REQUIRE_MESSAGE(
      result.exit_code == 0,
      "seed " << seed << ": the master ended with " << result.exit_code << " after " << took.count()
              << " ms; its stderr:\n"
              << result.err.substr(result.err.size() > 4000 ? result.err.size() - 4000 : 0));

  // Every module succeeded, and the report lists each once.
  const auto report = json::parse(read_file(dir / "report.json")).as_object();
  const auto& modules = report.at("modules").as_array();
  BOOST_TEST(modules.size() == static_cast<std::size_t>(options.modules), "seed " << seed);
  std::size_t succeeded = 0;
  for (const auto& module : modules)
    if (module.at("status") == "succeeded") ++succeeded;
  BOOST_TEST(succeeded == static_cast<std::size_t>(options.modules), "seed " << seed);

  // Exactly one accepted result per module: one module_finished event each.
  std::map<std::string, int> finished;
  std::ifstream events{dir / "events.jsonl"};
  for (std::string line; std::getline(events, line);) {
    const auto event = json::parse(line).as_object();
    if (event.at("type") == "module_finished")
      ++finished[json::value_to<std::string>(event.at("module"))];
  }
  BOOST_TEST(finished.size() == static_cast<std::size_t>(options.modules), "seed " << seed);
  BOOST_TEST(
      std::all_of(finished.begin(), finished.end(), [](const auto& f) { return f.second == 1; }),
      "seed " << seed << ": a module has more than one accepted result");

  // At least once: every module's command ran; some ran again after a lost worker.
  const auto ran = count_lines(executions);
  BOOST_TEST(ran.size() == static_cast<std::size_t>(options.modules), "seed " << seed);
  std::size_t runs = 0;
  for (const auto& [id, times] : ran)
    runs += static_cast<std::size_t>(times);

  // The master's memory stays bounded: well under what 5,000 modules could ever need.
  BOOST_TEST(peak_rss_kib < 256u * 1024u,
             "seed " << seed << ": master peak RSS " << peak_rss_kib << " KiB");

  const auto& counts = faults.counts();
  const auto remote = report.contains("remote") ? report.at("remote").as_object() : json::object{};
  BOOST_TEST_MESSAGE("chaos round: seed "
                     << seed << " passed in " << took.count() << " ms: " << counts.kills
                     << " kills, " << counts.stops << " stops, " << counts.cuts << " cuts, "
                     << counts.delays << " delays, " << counts.partitions << " partitions; "
                     << runs - ran.size() << " commands ran again; remote "
                     << json::serialize(remote) << "; master peak RSS " << peak_rss_kib / 1024
                     << " MiB");
}

BOOST_AUTO_TEST_CASE(every_module_ends_once_while_workers_are_killed_stopped_and_cut) {
  const auto options = options_from_command_line();
  for (int round = 0; round < options.rounds; ++round)
    run_round(options, static_cast<unsigned>(options.seed + round));
}

}  // namespace
