// A run spread over real processes: `drover run --listen` as the master and several
// `drover worker` processes, one of them killed with SIGKILL mid-run; capability routing
// between two workers with different labels; a worker that joins late.

#define BOOST_TEST_MODULE cluster
#include "../app/app_test_support.hpp"

#include <boost/json/parse.hpp>

#include <signal.h>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace json = boost::json;
namespace utf = boost::unit_test;
using namespace drover::app_test;

/// A pipeline of `count` exec modules that each append their id to ../ran.txt (from the
/// workspace of the worker running it, a subdirectory of the test's) and then sleep.
std::string appending_pipeline(int count, double sleep_seconds,
                               const std::map<int, std::string>& requires_of = {}) {
  std::string text = R"({"name": "cluster", "modules": [)";
  for (int i = 0; i < count; ++i) {
    const std::string id = "m" + std::to_string(i);
    text += (i ? "," : "") + std::string(R"({"id": ")") + id +
            R"(", "kind": "exec", "params": {"cwd": ".", "shell": "echo )" + id +
            " >> ../ran.txt; sleep " + std::to_string(sleep_seconds) + R"("})";
    if (auto it = requires_of.find(i); it != requires_of.end())
      text += R"(, "requires": [")" + it->second + R"("])";
    text += "}";
  }
  return text + "]}";
}

std::vector<std::string> lines_of(const fs::path& file) {
  std::vector<std::string> out;
  std::istringstream in{read_file(file)};
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

fs::path subdir(const scratch_dir& dir, const std::string& name) {
  fs::create_directories(dir / name);
  return dir / name;
}

BOOST_AUTO_TEST_CASE(a_worker_killed_mid_run_loses_no_module, *utf::timeout(120)) {
  scratch_dir dir;
  dir.write("pipeline.json", appending_pipeline(30, 0.3));
  const auto master_dir = subdir(dir, "master");
  drover_process master{{"run", "../pipeline.json", "--listen", "127.0.0.1:0", "--workers", "0",
                         "--report", "../report.json", "--lost-worker-timeout-ms", "3000"},
                        master_dir};
  const auto port = wait_for_port(master_dir);
  BOOST_REQUIRE_MESSAGE(port, "the master never said where it listens");

  std::vector<std::unique_ptr<drover_process>> workers;
  for (int w = 0; w < 3; ++w) {
    workers.push_back(std::make_unique<drover_process>(
        std::vector<std::string>{"worker", "--connect", "127.0.0.1:" + *port, "--slots", "2",
                                 "--id", "w" + std::to_string(w)},
        subdir(dir, "w" + std::to_string(w))));
  }
  // Kill one worker while every worker is busy.
  BOOST_REQUIRE(eventually([&] { return lines_of(dir / "ran.txt").size() >= 8; }, 30s));
  workers[1]->send(SIGKILL);

  const auto result = master.wait(60s);
  BOOST_TEST(result.exit_code == 0, result.err);
  const auto report = json::parse(read_file(dir / "report.json")).as_object();
  BOOST_TEST(report.at("status").as_string() == "succeeded");
  std::map<std::string, int> succeeded;
  for (const auto& m : report.at("modules").as_array()) {
    const auto& module = m.as_object();
    if (module.at("status").as_string() == "succeeded")
      ++succeeded[std::string(module.at("id").as_string())];
  }
  BOOST_TEST(succeeded.size() == 30u);  // each module exactly once in the report
  const auto& remote = report.at("remote").as_object();
  BOOST_TEST(remote.at("workers_lost").as_int64() >= 1);
  BOOST_TEST(remote.at("reassigned").as_int64() >= 1, "the killed worker had attempts running");
  BOOST_TEST(result.out.find("reassigned") != std::string::npos, result.out);
  // Every module ran (at least once: the killed worker's commands may have got as far as the
  // echo before their worker died).
  std::map<std::string, int> ran;
  for (const auto& id : lines_of(dir / "ran.txt"))
    ++ran[id];
  BOOST_TEST(ran.size() == 30u);
  for (int w : {0, 2}) {
    const auto done = workers[w]->wait(20s);
    BOOST_TEST(done.exit_code == 0, "worker w" << w << ": " << done.err);
  }
}

BOOST_AUTO_TEST_CASE(capabilities_route_modules_between_worker_processes, *utf::timeout(90)) {
  scratch_dir dir;
  std::map<int, std::string> requires_of;
  for (int i = 0; i < 10; i += 2)
    requires_of[i] = "gpu";
  dir.write("pipeline.json", appending_pipeline(10, 0.05, requires_of));
  const auto master_dir = subdir(dir, "master");
  drover_process master{{"run", "../pipeline.json", "--listen", "127.0.0.1:0", "--workers", "0",
                         "--report", "../report.json"},
                        master_dir};
  const auto port = wait_for_port(master_dir);
  BOOST_REQUIRE(port);
  drover_process gpu{{"worker", "--connect", "127.0.0.1:" + *port, "--id", "gpu-box",
                      "--capability", "GPU", "--slots", "2"},
                     subdir(dir, "gpu")};
  drover_process plain{
      {"worker", "--connect", "127.0.0.1:" + *port, "--id", "plain", "--slots", "2"},
      subdir(dir, "plain")};
  const auto result = master.wait(60s);
  BOOST_TEST(result.exit_code == 0, result.err);
  const auto report = json::parse(read_file(dir / "report.json")).as_object();
  for (const auto& m : report.at("modules").as_array()) {
    const auto& module = m.as_object();
    const int index = std::stoi(std::string(module.at("id").as_string()).substr(1));
    BOOST_TEST(module.at("status").as_string() == "succeeded");
    if (index % 2 == 0) {
      BOOST_TEST(module.at("worker").as_string() == "gpu-box", module.at("id").as_string());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_worker_process_that_joins_late_gets_the_work, *utf::timeout(90)) {
  scratch_dir dir;
  dir.write("pipeline.json", appending_pipeline(5, 0.01));
  const auto master_dir = subdir(dir, "master");
  drover_process master{{"run", "../pipeline.json", "--listen", "127.0.0.1:0", "--workers", "0",
                         "--report", "../report.json"},
                        master_dir};
  const auto port = wait_for_port(master_dir);
  BOOST_REQUIRE(port);
  std::this_thread::sleep_for(500ms);  // the run has started with no worker at all
  BOOST_TEST(!process_gone(master.pid()));
  drover_process late{{"worker", "--connect", "127.0.0.1:" + *port, "--id", "late"},
                      subdir(dir, "late")};
  const auto result = master.wait(60s);
  BOOST_TEST(result.exit_code == 0, result.err);
  BOOST_TEST(lines_of(dir / "ran.txt").size() == 5u);
  BOOST_TEST(late.wait(20s).exit_code == 0);
}

}  // namespace
