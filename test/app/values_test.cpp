// Values between modules, end to end: the same pipeline file (examples/values.json) run by
// `drover run` alone and by `drover run --listen --workers 0` with a `drover worker` process
// gives every module the same values; expressions are validated with file:line:col.

#define BOOST_TEST_MODULE values
#include "app_test_support.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <map>
#include <string>

namespace {

namespace json = boost::json;
namespace utf = boost::unit_test;
using namespace drover::app_test;

const fs::path values_example = fs::path{DROVER_EXAMPLES_DIR} / "values.json";

/// Each module's status, reason and value from a report file, by id.
std::map<std::string, json::value> outcomes_of(const fs::path& report_file) {
  const auto report = json::parse(read_file(report_file)).as_object();
  std::map<std::string, json::value> out;
  for (const auto& m : report.at("modules").as_array()) {
    const auto& module = m.as_object();
    out[std::string(module.at("id").as_string())] = json::object{{"status", module.at("status")},
                                                                 {"reason", module.at("reason")},
                                                                 {"value", module.at("value")}};
  }
  return out;
}

fs::path subdir(const scratch_dir& dir, const std::string& name) {
  fs::create_directories(dir / name);
  return dir / name;
}

/// Runs `pipeline` with `drover run`; returns the outcomes from its report.
std::map<std::string, json::value> run_locally(const scratch_dir& dir, const fs::path& pipeline,
                                               int expected_exit = 0) {
  const auto here = subdir(dir, "local");
  const auto result = run_drover(
      {"run", pipeline.string(), "--report", "report.json", "--progress", "never"}, here);
  BOOST_TEST(result.exit_code == expected_exit, result.err);
  return outcomes_of(here / "report.json");
}

/// Runs `pipeline` with a master that has no local workers and one `drover worker` process;
/// returns the outcomes from the master's report.
std::map<std::string, json::value> run_on_a_worker(const scratch_dir& dir, const fs::path& pipeline,
                                                   int expected_exit = 0) {
  const auto master_dir = subdir(dir, "master");
  drover_process master{{"run", pipeline.string(), "--listen", "127.0.0.1:0", "--workers", "0",
                         "--report", "report.json", "--progress", "never"},
                        master_dir};
  const auto port = wait_for_port(master_dir);
  BOOST_REQUIRE_MESSAGE(port,
                        "no 'listening on' line: " << read_file(master_dir / ".drover-stderr"));
  drover_process worker{{"worker", "--connect", "127.0.0.1:" + *port, "--id", "remote-1"},
                        subdir(dir, "worker")};
  const auto result = master.wait(60s);
  BOOST_TEST(result.exit_code == expected_exit, result.err);
  const auto worker_result = worker.wait(20s);
  BOOST_TEST(worker_result.exit_code == 0, worker_result.err);
  BOOST_TEST(result.out.find("remote-1") != std::string::npos, "the worker ran the modules");
  return outcomes_of(master_dir / "report.json");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(values)

BOOST_AUTO_TEST_CASE(the_example_gives_the_same_values_locally_and_on_a_worker,
                     *utf::timeout(120)) {
  scratch_dir dir;
  const auto local = run_locally(dir, values_example);
  const auto remote = run_on_a_worker(dir, values_example);

  BOOST_TEST_REQUIRE(local.size() == 4u);
  for (const auto& [id, outcome] : local) {
    BOOST_TEST_CONTEXT(id) {
      BOOST_TEST(outcome.at("status") == json::value("succeeded"), json::serialize(outcome));
      BOOST_TEST_REQUIRE(remote.contains(id));
      BOOST_TEST(json::serialize(remote.at(id)) == json::serialize(outcome));
    }
  }
  // What the values are: expressions in argv and env, DROVER_MATRIX_TARGET and DROVER_DEPS.
  BOOST_TEST(local.at("build[os=macos]").at("value").at("output") ==
             json::parse(R"({"artifact": "app-1.4.2-macos.tar.gz", "target": "os=macos"})"));
  const auto& package = local.at("package").at("value").at("output");
  BOOST_TEST(package.at("linux") == json::value("app-1.4.2-linux.tar.gz"));
  BOOST_TEST(package.at("channel") == json::value("stable (succeeded)"));
  BOOST_TEST(package.at("deps") == json::parse(R"({
    "build[os=linux]": {"status": "succeeded", "value": {"exit_code": 0,
        "output": {"artifact": "app-1.4.2-linux.tar.gz", "target": "os=linux"}}},
    "build[os=macos]": {"status": "succeeded", "value": {"exit_code": 0,
        "output": {"artifact": "app-1.4.2-macos.tar.gz", "target": "os=macos"}}},
    "version": {"status": "succeeded", "value": {"exit_code": 0,
        "output": {"version": "1.4.2", "channel": "stable"}}}})"));
}

BOOST_AUTO_TEST_CASE(a_missing_value_fails_the_same_way_locally_and_on_a_worker,
                     *utf::timeout(120)) {
  scratch_dir dir;
  const auto pipeline = dir.write("p.json", R"({"modules": [
    {"id": "meta", "kind": "exec", "params": {"shell": "echo '{\"name\": \"x\"}'", "json_output": true}},
    {"id": "use", "kind": "exec", "deps": ["meta"], "retries": 1, "backoff": {"initial": "1ms"},
     "params": {"argv": ["echo", "${{ deps.meta.value.output.version }}"]}},
    {"id": "report", "kind": "exec", "deps": ["use"], "always_run": true,
     "params": {"shell": "cat \"$DROVER_DEPS\"", "json_output": true}}]})");
  const auto local = run_locally(dir, pipeline, 1);
  const auto remote = run_on_a_worker(dir, pipeline, 1);
  BOOST_TEST(local.at("use").at("status") == json::value("failed"));
  BOOST_TEST(local.at("use").at("reason") ==
             json::value("params.argv[1]: ${{ deps.meta.value.output.version }}: 'meta' has no "
                         "key 'version' in value.output"));
  BOOST_TEST(local.at("report").at("value").at("output") ==
             json::parse(R"({"use": {"status": "failed", "value": null}})"));
  for (const auto& id : {"meta", "use", "report"}) {
    BOOST_TEST(json::serialize(remote.at(id)) == json::serialize(local.at(id)), id);
  }
}

BOOST_AUTO_TEST_CASE(validate_and_run_reject_bad_expressions_with_their_place, *utf::timeout(60)) {
  scratch_dir dir;
  dir.write("p.json", R"({"modules": [
  {"id": "a", "kind": "noop"},
  {"id": "b", "kind": "exec", "params": {"argv": ["echo", "${{ deps.a.value }}", "${{ matrix.os }}"]}},
  {"id": "c", "kind": "exec", "deps": ["a"], "params": {"shell": "echo ${{ deps.a.vaule }}"}}
]})");
  const std::vector<std::vector<std::string>> commands{{"validate", "p.json"},
                                                       {"run", "p.json", "--progress", "never"}};
  for (const auto& command : commands) {
    BOOST_TEST_CONTEXT(command.front()) {
      const auto result = run_drover(command, dir.path());
      BOOST_TEST(result.exit_code == 2, result.err);
      BOOST_TEST(result.err.find("p.json:3:59: module 'b': field 'params.argv[1]': ${{ "
                                 "deps.a.value }}: 'a' is not one of the module's dependencies") !=
                     std::string::npos,
                 result.err);
      BOOST_TEST(result.err.find("p.json:3:82: module 'b': field 'params.argv[2]': ${{ "
                                 "matrix.os }}: the module has no matrix") != std::string::npos,
                 result.err);
      BOOST_TEST(result.err.find("p.json:4:66: module 'c': field 'params.shell': ${{ "
                                 "deps.a.vaule }}: not a valid expression") != std::string::npos,
                 result.err);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
