// Soak: a million modules through worker processes (`drover run --listen` and `drover worker`,
// the built binary), watching the master's and the workers' resident memory and open
// descriptors while the workers run modules: from the moment all of them are up until the first
// one exits (when the run ends). After warm-up (the first fifth of that time) neither may grow:
// RSS by at most 10%, descriptors not at all. Before it the master reads and prepares the
// pipeline; after it, it prints the summary of a million modules.
//
// By hand: soak_test -- [--modules N] [--workers N]. It prints the figures either way.

#define BOOST_TEST_MODULE soak
#include "../app/app_test_support.hpp"
#include "process_stats.hpp"
#include "test_options.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace drover::app_test;
using drover::chaos::open_fds;
using drover::chaos::rss_kib;
using clock_type = std::chrono::steady_clock;

struct soak_options {
  int modules = 1'000'000;
  int workers = 4;
};

soak_options options_from_command_line() {
  soak_options options;
  drover::chaos::read_test_options(
      {{"--modules", &options.modules}, {"--workers", &options.workers}});
  return options;
}

/// Noop modules with a matrix of 1,000 columns and up to 50 rows each (a matrix may have at
/// most 65,536 instances), `modules` instances in all (rounded down to whole rows). Returns the
/// pipeline and how many instances it has. (No module waits for all of them: its assign would
/// carry a million dependency results, over the protocol's line limit.)
std::pair<std::string, int> soak_pipeline(int modules) {
  const int columns = std::min(modules, 1000);
  auto axis = [](int size) {
    std::string values;
    for (int i = 0; i < size; ++i)
      values += (i == 0 ? "\"" : ",\"") + std::to_string(i) + "\"";
    return "[" + values + "]";
  };
  std::string steps;
  int instances = 0;
  for (int rows_left = modules / columns, block = 0; rows_left > 0; ++block) {
    const int rows = std::min(rows_left, 50);
    const std::string id = "step" + std::to_string(block);
    steps += std::string{block == 0 ? "" : ",\n"} + R"({"id": ")" + id +
             R"(", "kind": "noop", "matrix": {"row": )" + axis(rows) + R"(, "column": )" +
             axis(columns) + "}}";
    instances += rows * columns;
    rows_left -= rows;
  }
  return {R"({"name": "soak", "modules": [)" + steps + "]}", instances};
}

/// One reading of the processes.
struct sample {
  clock_type::time_point at;
  std::size_t master_rss_kib = 0;
  std::size_t master_fds = 0;
  std::size_t workers_rss_kib = 0;  // all workers together
  std::size_t workers_fds = 0;
  std::size_t workers_up = 0;  // how many workers were running
};

BOOST_AUTO_TEST_CASE(a_million_modules_grow_neither_memory_nor_descriptors) {
  const auto options = options_from_command_line();
  const auto [pipeline, modules] = soak_pipeline(options.modules);
  scratch_dir dir;
  dir.write("pipeline.json", pipeline);
  fs::create_directories(dir / "master");
  drover_process master{{"run", (dir / "pipeline.json").string(), "--workers", "0", "--listen",
                         "127.0.0.1:0", "--progress", "never"},
                        dir / "master"};
  const auto port = wait_for_port(dir / "master", "drover: listening on", 60s);
  BOOST_REQUIRE_MESSAGE(port, "the master did not start listening: "
                                  << read_file(dir / "master" / ".drover-stderr").substr(0, 2000));
  std::vector<std::unique_ptr<drover_process>> workers;
  for (int w = 0; w < options.workers; ++w) {
    const auto worker_dir = dir / ("worker-" + std::to_string(w));
    fs::create_directories(worker_dir);
    workers.push_back(std::make_unique<drover_process>(
        std::vector<std::string>{"worker", "--connect", "127.0.0.1:" + *port, "--slots", "4"},
        worker_dir));
  }

  std::vector<sample> samples;
  const auto started = clock_type::now();
  while (!master.exited() && clock_type::now() - started < std::chrono::minutes{12}) {
    sample s{clock_type::now(), rss_kib(master.pid()), open_fds(master.pid())};
    for (auto& worker : workers) {
      const auto rss = rss_kib(worker->pid());
      s.workers_rss_kib += rss;
      s.workers_up += rss > 0 ? 1 : 0;
      s.workers_fds += open_fds(worker->pid());
    }
    if (s.master_rss_kib > 0) samples.push_back(s);
    std::this_thread::sleep_for(100ms);
  }
  const auto result = master.wait(1s);
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started);
  BOOST_REQUIRE_MESSAGE(result.exit_code == 0, "the master ended with " << result.exit_code
                                                                        << "; its stderr:\n"
                                                                        << result.err);
  BOOST_TEST(
      result.out.find("\n" + std::to_string(modules) + " succeeded, 0 failed") != std::string::npos,
      "the summary does not say " << modules << " succeeded");

  // The window: while every worker runs, after the first fifth of that time. Every reading in
  // it is compared with the first one.
  const auto all_up = [&](const sample& s) { return s.workers_up == workers.size(); };
  const auto running = std::find_if(samples.begin(), samples.end(), all_up);
  const auto window_end = std::find_if_not(running, samples.end(), all_up);
  BOOST_REQUIRE_MESSAGE(running != samples.end(), "the workers were never all up at once");
  const auto warm_up = (std::prev(window_end)->at - running->at) / 5;
  const auto warm = std::find_if(running, window_end,
                                 [&](const sample& s) { return s.at - running->at >= warm_up; });
  BOOST_REQUIRE_GE(std::distance(warm, window_end), 5);
  const auto& end = *(window_end - 1);
  std::size_t master_peak = 0, workers_peak = 0, master_fds_peak = 0, workers_fds_peak = 0;
  for (auto it = warm; it != window_end; ++it) {
    master_peak = std::max(master_peak, it->master_rss_kib);
    workers_peak = std::max(workers_peak, it->workers_rss_kib);
    master_fds_peak = std::max(master_fds_peak, it->master_fds);
    workers_fds_peak = std::max(workers_fds_peak, it->workers_fds);
  }
  BOOST_TEST_MESSAGE(
      "soak: " << modules << " modules through " << options.workers << " workers in "
               << took.count() << " ms (" << (modules)*1000LL / std::max<long long>(1, took.count())
               << " modules/s); master RSS " << warm->master_rss_kib << " KiB after warm-up, "
               << end.master_rss_kib << " KiB at the end of the run, peak " << master_peak
               << " KiB; workers RSS " << warm->workers_rss_kib << " -> " << end.workers_rss_kib
               << " KiB (peak " << workers_peak << "); master fds " << warm->master_fds << " -> "
               << end.master_fds << ", workers fds " << warm->workers_fds << " -> "
               << end.workers_fds);
  BOOST_TEST(master_peak * 10 <= warm->master_rss_kib * 11, "master RSS grew more than 10%");
  BOOST_TEST(workers_peak * 10 <= warm->workers_rss_kib * 11, "workers' RSS grew more than 10%");
  BOOST_TEST(master_fds_peak <= warm->master_fds, "master descriptors grew");
  BOOST_TEST(workers_fds_peak <= warm->workers_fds, "workers' descriptors grew");
}

}  // namespace
