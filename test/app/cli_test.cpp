// End-to-end tests of the drover binary's commands other than `run`: help, version,
// validate, plan and graph, and how every kind of bad input is reported.
#include "commands.hpp"

#define BOOST_TEST_MODULE cli
#include "app_test_support.hpp"

#include <drover/engine.hpp>
#include <drover/version.hpp>

#include <sstream>

namespace {

using namespace drover::app_test;

constexpr std::string_view diamond = R"({
  "name": "diamond",
  "modules": [
    {"id": "fetch", "kind": "noop"},
    {"id": "lint", "kind": "noop", "tags": ["check"]},
    {"id": "build", "kind": "noop", "deps": ["fetch"]},
    {"id": "test", "kind": "noop", "deps": ["build", "lint"], "tags": ["check"]},
    {"id": "docs", "kind": "noop", "deps": ["fetch"]}
  ]
})";

struct cli_fixture {
  scratch_dir dir;
  drover_result drover(const std::vector<std::string>& args) {
    return run_drover(args, dir.path());
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(cli, cli_fixture)

BOOST_AUTO_TEST_CASE(version_and_help) {
  const auto version = drover({"--version"});
  BOOST_TEST(version.exit_code == 0);
  BOOST_TEST(version.out == "drover " + std::string{drover::version_string} + "\n");

  const auto help = drover({"--help"});
  BOOST_TEST(help.exit_code == 0);
  for (auto command : {"run FILE", "validate FILE", "plan FILE", "graph FILE"}) {
    BOOST_TEST(help.out.find(command) != std::string::npos, command);
  }
  for (std::string command : {"run", "validate", "plan", "graph"}) {
    const auto r = drover({command, "--help"});
    BOOST_TEST(r.exit_code == 0, command);
    BOOST_TEST(r.out.starts_with("Usage: drover " + command), r.out);
  }
  const auto run_help = drover({"run", "--help"});
  for (auto option : {"--workers", "--keep-going", "--module", "--skip-module", "--tag", "--report",
                      "--events", "--log-dir", "--progress", "--order", "--capability"}) {
    BOOST_TEST(run_help.out.find(option) != std::string::npos, option);
  }
  for (std::string command : {"validate", "plan"}) {
    const auto r = drover({command, "--help"});
    BOOST_TEST(r.out.find("--capability LABEL") != std::string::npos, command);
  }
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2) {
  const auto none = drover({});
  BOOST_TEST(none.exit_code == 2);
  BOOST_TEST(none.err.find("Usage: drover") != std::string::npos);

  const auto unknown = drover({"rnu", "p.json"});
  BOOST_TEST(unknown.exit_code == 2);
  BOOST_TEST(unknown.err.find("unknown command 'rnu' (did you mean 'run'?)") != std::string::npos,
             unknown.err);

  dir.write("p.json", diamond);
  for (const std::vector<std::string>& args : {std::vector<std::string>{"run"},
                                               {"run", "p.json", "--bogus"},
                                               {"run", "p.json", "--workers", "0"},
                                               {"run", "p.json", "--workers", "many"},
                                               {"run", "p.json", "--progress", "sometimes"},
                                               {"run", "p.json", "--order", "sideways"},
                                               {"run", "p.json", "--capability", ""},
                                               {"plan", "p.json", "--capability"},
                                               {"graph", "p.json", "--capability", "gpu"},
                                               {"graph", "p.json", "--format", "png"},
                                               {"plan", "p.json", "extra.json"}}) {
    const auto r = drover(args);
    BOOST_TEST(r.exit_code == 2, args.back());
    BOOST_TEST(!r.err.empty(), args.back());
    BOOST_TEST(r.out.empty(), args.back());
  }
  BOOST_TEST(!fs::exists(dir / ".drover"), "nothing ran");
}

BOOST_AUTO_TEST_CASE(validate_ok) {
  dir.write("p.json", diamond);
  const auto r = drover({"validate", "p.json"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "p.json: ok, 5 modules\n");
  BOOST_TEST(r.err.empty());
}

BOOST_AUTO_TEST_CASE(validate_reports_every_problem) {
  dir.write("bad.json", R"({
  "modules": [
    {"id": "build", "kind": "exec", "params": {"argv": ["true"]}, "retires": 2},
    {"kind": "noop"},
    {"id": "test", "kind": "nope", "deps": ["build"], "timeout": "5 s"}
  ]
})");
  const auto r = drover({"validate", "bad.json"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.out.empty());
  const std::string expected =
      "bad.json:3:67: module 'build': unknown field 'retires' (did you mean 'retries'?)\n"
      "bad.json:4:5: module #2: missing field 'id'\n"
      "bad.json:5:28: module 'test': field 'kind': unknown kind 'nope' (did you mean 'noop'?)\n"
      "bad.json:5:66: module 'test': field 'timeout': expected a duration: milliseconds as an "
      "integer, or a string such as \"500ms\", \"30s\", \"2m\" or \"1h\"\n"
      "bad.json: 4 problems\n";
  BOOST_TEST(r.err == expected);
}

BOOST_AUTO_TEST_CASE(bad_input_never_crashes_and_exits_2) {
  struct bad_case {
    std::string name;
    std::string text;
    std::string message;  // expected in stderr
  };
  const std::vector<bad_case> cases{
      {"broken.json", "{\"modules\": [\n  {\"id\": \"a\" \"kind\": \"noop\"}]}",
       "broken.json:2:14: invalid JSON: syntax error"},
      {"truncated.json", "{\"modules\": [\n  {\"id\": \"a\",",
       "truncated.json:2:14: invalid JSON: unexpected end of file"},
      {"empty.json", "", "empty.json:1:1: the file is empty; expected a JSON object"},
      {"array.json", "[{\"id\": \"a\", \"kind\": \"noop\"}]",
       "array.json:1:1: expected a JSON object at the top level, got an array"},
      {"types.json", "{\"modules\": [{\"id\": \"a\", \"kind\": \"noop\", \"retries\": \"3\"}]}",
       "types.json:1:53: module 'a': field 'retries': expected a non-negative integer"},
      {"kind.json", "{\"modules\": [{\"id\": \"a\", \"kind\": \"exce\"}]}",
       "kind.json:1:34: module 'a': field 'kind': unknown kind 'exce' (did you mean 'exec'?)"},
      {"field.json", "{\"modules\": [{\"id\": \"a\", \"kind\": \"noop\", \"colour\": 1}]}",
       "field.json:1:42: module 'a': unknown field 'colour'"},
      {"noid.json", "{\"modules\": [{\"kind\": \"noop\"}]}",
       "noid.json:1:14: module #1: missing field 'id'"},
      {"dup.json",
       "{\"modules\": [{\"id\": \"a\", \"kind\": \"noop\"},\n {\"id\": \"a\", \"kind\": "
       "\"noop\"}]}",
       "dup.json:2:9: module 'a': field 'id': duplicate module id"},
      {"cycle.json",
       "{\"modules\": [{\"id\": \"a\", \"kind\": \"noop\", \"deps\": [\"b\"]},\n"
       " {\"id\": \"b\", \"kind\": \"noop\", \"deps\": [\"a\"]}]}",
       "dependency cycle: "},
      {"duration.json",
       "{\"modules\": [{\"id\": \"a\", \"kind\": \"noop\", \"timeout\": \"1.5s\"}]}",
       "duration.json:1:53: module 'a': field 'timeout': expected a duration"},
      {"params.json", "{\"modules\": [{\"id\": \"a\", \"kind\": \"exec\", \"params\": {}}]}",
       "params.json:1:52: module 'a': field 'params.argv': "},
  };
  for (const auto& c : cases) {
    dir.write(c.name, c.text);
    for (std::string command : {"validate", "run", "plan", "graph"}) {
      const auto r = drover({command, c.name});
      BOOST_TEST(r.exit_code == 2, command << ' ' << c.name);
      BOOST_TEST(r.err.find(c.message) != std::string::npos, command << ' ' << c.name
                                                                     << " printed:\n"
                                                                     << r.err);
      BOOST_TEST(r.out.empty(), command << ' ' << c.name << " printed:\n" << r.out);
    }
  }
  const auto missing = drover({"run", "missing.json"});
  BOOST_TEST(missing.exit_code == 2);
  BOOST_TEST(
      missing.err.starts_with("missing.json: cannot read the file: No such file or directory\n"),
      missing.err);
  BOOST_TEST(!fs::exists(dir / ".drover"), "no run started");
}

BOOST_AUTO_TEST_CASE(plan_prints_waves) {
  dir.write("p.json", diamond);
  const auto r = drover({"plan", "p.json"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out ==
             "wave 1: fetch, lint\n"
             "wave 2: build, docs\n"
             "wave 3: test\n"
             "5 modules in 3 waves\n");
  BOOST_TEST(!fs::exists(dir / ".drover"), "plan runs nothing");
}

BOOST_AUTO_TEST_CASE(plan_applies_selection_flags) {
  dir.write("p.json", diamond);
  const auto by_module = drover({"plan", "p.json", "--module", "build"});
  BOOST_TEST(by_module.out == "wave 1: fetch\nwave 2: build\n2 modules in 2 waves\n");
  const auto by_tag = drover({"plan", "p.json", "--tag", "check", "--skip-module", "lint"});
  BOOST_TEST(by_tag.out ==
             "wave 1: fetch, lint (skipped)\nwave 2: build\nwave 3: test\n4 modules in 3 waves\n");
  const auto unknown = drover({"plan", "p.json", "--module", "buidl"});
  BOOST_TEST(unknown.exit_code == 2);
  BOOST_TEST(unknown.err ==
             "drover: --module 'buidl': no module has this id (did you mean 'build'?)\n");
}

BOOST_AUTO_TEST_CASE(graph_as_dot_and_mermaid) {
  dir.write("p.json", R"({"name": "small", "modules": [
    {"id": "fetch", "kind": "noop"},
    {"id": "build", "kind": "noop", "deps": ["fetch"]},
    {"id": "test", "kind": "noop", "deps": ["build", "fetch"]}]})");
  const auto dot = drover({"graph", "p.json"});
  BOOST_TEST(dot.exit_code == 0);
  BOOST_TEST(dot.out ==
             "digraph \"small\" {\n"
             "  rankdir=LR;\n"
             "  \"fetch\";\n"
             "  \"build\";\n"
             "  \"test\";\n"
             "  \"fetch\" -> \"build\";\n"
             "  \"build\" -> \"test\";\n"
             "  \"fetch\" -> \"test\";\n"
             "}\n");
  const auto mermaid = drover({"graph", "p.json", "--format", "mermaid"});
  BOOST_TEST(mermaid.exit_code == 0);
  BOOST_TEST(mermaid.out ==
             "flowchart LR\n"
             "  n0[\"fetch\"]\n"
             "  n1[\"build\"]\n"
             "  n2[\"test\"]\n"
             "  n0 --> n1\n"
             "  n1 --> n2\n"
             "  n0 --> n2\n");
}

BOOST_AUTO_TEST_CASE(capability_warnings_in_validate_and_plan) {
  dir.write("p.json", R"({"modules": [
    {"id": "fetch", "kind": "noop"},
    {"id": "build", "kind": "noop", "deps": ["fetch"], "requires": ["docker", "GPU"]},
    {"id": "push", "kind": "noop", "deps": ["build"], "requires": ["docker"]}
  ]})");
  const std::string build_warning =
      "warning: module 'build' requires docker and GPU, which no local worker has (it will be "
      "skipped in a local run)\n";
  const std::string push_warning =
      "warning: module 'push' requires docker, which no local worker has (it will be skipped in "
      "a local run)\n";

  const auto lacking = drover({"validate", "p.json"});
  BOOST_TEST(lacking.exit_code == 0);
  BOOST_TEST(lacking.out == "p.json: ok, 3 modules\n");
  BOOST_TEST(lacking.err == build_warning + push_warning);

  // Labels compare ignoring case; only the missing ones are named.
  const auto partly = drover({"validate", "p.json", "--capability", "DOCKER"});
  BOOST_TEST(partly.exit_code == 0);
  BOOST_TEST(partly.err ==
             "warning: module 'build' requires GPU, which no local worker has (it will be "
             "skipped in a local run)\n");

  const auto having =
      drover({"validate", "p.json", "--capability", "docker", "--capability", "gpu"});
  BOOST_TEST(having.exit_code == 0);
  BOOST_TEST(having.err.empty(), having.err);

  const auto plan = drover({"plan", "p.json"});
  BOOST_TEST(plan.exit_code == 0);
  BOOST_TEST(plan.out == "wave 1: fetch\nwave 2: build\nwave 3: push\n3 modules in 3 waves\n");
  BOOST_TEST(plan.err == build_warning + push_warning);
  // Only the selected modules are checked.
  const auto selected = drover({"plan", "p.json", "--module", "build", "--capability", "gpu"});
  BOOST_TEST(selected.exit_code == 0);
  BOOST_TEST(selected.err ==
             "warning: module 'build' requires docker, which no local worker has (it will be "
             "skipped in a local run)\n");

  const auto empty = drover({"validate", "p.json", "--capability", ""});
  BOOST_TEST(empty.exit_code == 2);
  BOOST_TEST(empty.err == "drover validate: --capability needs a non-empty label\n");
  BOOST_TEST(empty.out.empty());
}

BOOST_AUTO_TEST_CASE(constraint_problems_exit_2_naming_module_and_field) {
  dir.write("pools.json", R"({
  "pools": {"network": 2},
  "modules": [
    {"id": "fetch", "kind": "noop", "pool": "netwrk"},
    {"id": "upload", "kind": "noop", "pool": "network", "pool_slots": 0,
     "not_in_parallel": 1, "claims": [{"resource": "db", "mode": "shared"}]}
  ]
})");
  const std::string expected =
      "pools.json:4:45: module 'fetch': field 'pool': unknown pool 'netwrk' (did you mean "
      "'network'?)\n"
      "pools.json:5:71: module 'upload': field 'pool_slots': expected an integer >= 1\n"
      "pools.json:6:25: module 'upload': field 'not_in_parallel': expected true, false or an "
      "array of keys, such as [\"database\"]\n"
      "pools.json:6:66: module 'upload': field 'claims[0].mode': expected \"read\" or "
      "\"write\"\n"
      "pools.json: 4 problems\n";
  for (std::string command : {"validate", "plan", "graph", "run"}) {
    const auto r = drover({command, "pools.json"});
    BOOST_TEST(r.exit_code == 2, command);
    BOOST_TEST(r.err == expected, command);
    BOOST_TEST(r.out.empty(), command);
  }
  BOOST_TEST(!fs::exists(dir / ".drover"), "nothing ran");
}

// Needs matrix expansion.
BOOST_AUTO_TEST_CASE(matrix_instances_in_validate_plan_and_graph) {
  dir.write("m.json", R"({"name": "m", "modules": [
    {"id": "build", "kind": "noop", "matrix": ["linux", "windows"]},
    {"id": "test", "kind": "noop", "deps": ["build"]}
  ]})");
  const auto validate = drover({"validate", "m.json", "--capability", "linux"});
  BOOST_TEST(validate.exit_code == 0);
  BOOST_TEST(validate.out == "m.json: ok, 3 modules\n");
  if (drover::local_os_label() != "windows") {
    BOOST_TEST(validate.err ==
               "warning: module 'build[windows]' requires windows, which no local worker has "
               "(it will be skipped in a local run)\n");
  }
  const auto with_windows =
      drover({"validate", "m.json", "--capability", "windows", "--capability", "linux"});
  BOOST_TEST(with_windows.err.empty(), with_windows.err);

  const auto plan = drover({"plan", "m.json", "--capability", "linux", "--capability", "windows"});
  BOOST_TEST(plan.exit_code == 0);
  BOOST_TEST(plan.out ==
             "wave 1: build[linux], build[windows]\n"
             "wave 2: test\n"
             "3 modules in 2 waves\n");
  // A matrix module's id selects all of its instances; an instance's id selects it alone.
  const auto all_builds = drover({"plan", "m.json", "--module", "build", "--skip-module", "build",
                                  "--capability", "linux", "--capability", "windows"});
  BOOST_TEST(all_builds.exit_code == 0, all_builds.err);
  BOOST_TEST(all_builds.out ==
             "wave 1: build[linux] (skipped), build[windows] (skipped)\n2 modules in 1 wave\n");
  const auto one_build =
      drover({"plan", "m.json", "--module", "build[windows]", "--capability", "windows"});
  BOOST_TEST(one_build.out == "wave 1: build[windows]\n1 module in 1 wave\n");

  const auto dot = drover({"graph", "m.json"});
  BOOST_TEST(dot.exit_code == 0);
  BOOST_TEST(dot.out ==
             "digraph \"m\" {\n"
             "  rankdir=LR;\n"
             "  \"build[linux]\";\n"
             "  \"build[windows]\";\n"
             "  \"test\";\n"
             "  \"build[linux]\" -> \"test\";\n"
             "  \"build[windows]\" -> \"test\";\n"
             "}\n");
}

// Needs matrix expansion.
BOOST_AUTO_TEST_CASE(matrix_problems_point_at_the_matrix_module) {
  dir.write("bad.json", R"({"modules": [
  {"id": "build", "kind": "noop", "matrix": {"os": ["linux"], "exclude": [{"cpu": "arm"}]}},
  {"id": "b[x]", "kind": "noop", "matrix": ["linux"]},
  {"id": "test", "kind": "noop", "matrix_requires": ["os"]}
]})");
  const auto r = drover({"validate", "bad.json"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.out.empty());
  std::istringstream lines{r.err};
  std::vector<std::string> printed;
  for (std::string line; std::getline(lines, line);)
    printed.push_back(line);
  BOOST_TEST_REQUIRE(printed.size() == 4u, r.err);
  BOOST_TEST(printed[0].starts_with("bad.json:2:74: module 'build': field 'matrix.exclude': "),
             printed[0]);
  BOOST_TEST(printed[1].starts_with("bad.json:3:10: module 'b[x]': field 'id': "), printed[1]);
  BOOST_TEST(printed[2] ==
             "bad.json:4:53: module 'test': field 'matrix_requires': matrix_requires needs a "
             "matrix: set \"matrix\" too");
  BOOST_TEST(printed[3] == "bad.json: 3 problems");
}

BOOST_AUTO_TEST_SUITE_END()
