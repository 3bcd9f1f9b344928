#include "pipeline_file.hpp"

#define BOOST_TEST_MODULE pipeline_file
#include "app_test_support.hpp"

#include <drover/modules/registry.hpp>

#include <boost/json/serialize.hpp>

#include <stdlib.h>

#include <cstdint>
#include <map>

namespace {

using namespace drover::app;
using namespace drover::app_test;
using std::chrono::milliseconds;

const drover::modules::registry kinds = drover::modules::builtin_registry();

loaded_pipeline parse(std::string_view text) {
  return parse_pipeline(text, kinds, "unnamed");
}

/// Every problem of `text`, formatted as the CLI prints them, for file "p.json".
std::vector<std::string> problems_of(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& p : parse(text).problems)
    out.push_back(format_problem("p.json", p));
  return out;
}

/// The one problem of `text`; fails the test if there is not exactly one.
std::string only_problem(std::string_view text) {
  auto all = problems_of(text);
  BOOST_TEST_REQUIRE(all.size() == 1u, "expected one problem, got " << all.size() << " in\n"
                                                                    << text);
  return all.front();
}

/// All problems of `loaded`, one per line, for test messages.
std::string problems_of_loaded(const loaded_pipeline& loaded) {
  std::string out;
  for (const auto& p : loaded.problems)
    out += format_problem("p.json", p) + '\n';
  return out;
}

drover::module_spec module_named(const loaded_pipeline& loaded, std::string_view id) {
  for (auto& m : loaded.pipeline.specs()) {
    if (m.id == id) return m;
  }
  BOOST_FAIL("no module " << id);
  throw std::logic_error("unreachable");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pipeline_file)

BOOST_AUTO_TEST_CASE(reads_every_field) {
  const auto loaded = parse(R"({
    "name": "release",
    "mode": "keep_going",
    "defaults": {"retries": 2, "timeout": "30s",
                 "backoff": {"initial": "200ms", "multiplier": 3, "max": "1m", "jitter": 0.5}},
    "modules": [
      {"id": "fetch", "kind": "noop"},
      {"id": "build", "kind": "exec", "params": {"argv": ["make", "-j2"]}, "deps": ["fetch"],
       "retries": 4, "backoff": {"initial": 50, "jitter": 0}, "timeout": "2m",
       "always_run": true, "ignore_failure": true, "tags": ["ci", "slow"], "priority": -3,
       "skip_if": {"file_exists": "/nonexistent/drover-test-marker"}}
    ]
  })");
  BOOST_TEST_REQUIRE(loaded.ok());
  const auto& p = loaded.pipeline;
  BOOST_TEST(p.name == "release");
  BOOST_TEST((p.mode == drover::execution_mode::keep_going));
  BOOST_TEST(p.defaults.retries == 2);
  BOOST_TEST(p.defaults.timeout.value() == milliseconds{30'000});
  BOOST_TEST(p.defaults.backoff.initial == milliseconds{200});
  BOOST_TEST(p.defaults.backoff.multiplier == 3.0);
  BOOST_TEST(p.defaults.backoff.max == milliseconds{60'000});
  BOOST_TEST(p.defaults.backoff.jitter == 0.5);
  BOOST_TEST_REQUIRE(p.size() == 2u);

  const auto fetch = p.spec(0);
  BOOST_TEST(fetch.id == "fetch");
  BOOST_TEST(fetch.kind == "noop");
  BOOST_TEST(static_cast<bool>(fetch.body));
  BOOST_TEST(!fetch.retries.has_value());
  BOOST_TEST(!fetch.timeout.has_value());
  BOOST_TEST(!fetch.backoff.has_value());
  BOOST_TEST(!fetch.always_run);
  BOOST_TEST(!fetch.ignore_failure);
  BOOST_TEST(!fetch.skip_if);
  BOOST_TEST(fetch.priority == 0);

  const auto build = p.spec(1);
  BOOST_TEST(build.kind == "exec");
  BOOST_TEST(boost::json::serialize(build.params) == R"({"argv":["make","-j2"]})");
  BOOST_TEST(static_cast<bool>(build.body));
  BOOST_TEST(build.deps == std::vector<std::string>{"fetch"});
  BOOST_TEST(build.retries.value() == 4);
  // Backoff keys a module leaves out come from the pipeline's defaults.
  BOOST_TEST_REQUIRE(build.backoff.has_value());
  BOOST_TEST(build.backoff->initial == milliseconds{50});
  BOOST_TEST(build.backoff->multiplier == 3.0);
  BOOST_TEST(build.backoff->max == milliseconds{60'000});
  BOOST_TEST(build.backoff->jitter == 0.0);
  BOOST_TEST(build.timeout.value() == milliseconds{120'000});
  BOOST_TEST(build.always_run);
  BOOST_TEST(build.ignore_failure);
  BOOST_TEST((build.tags == std::vector<std::string>{"ci", "slow"}));
  BOOST_TEST(build.priority == -3);
  BOOST_TEST_REQUIRE(static_cast<bool>(build.skip_if));
  BOOST_TEST(!build.skip_if().has_value());
}

BOOST_AUTO_TEST_CASE(defaults_when_fields_are_left_out) {
  const auto loaded = parse(R"({"modules": [{"id": "a", "kind": "noop"}]})");
  BOOST_TEST_REQUIRE(loaded.ok());
  BOOST_TEST(loaded.pipeline.name == "unnamed");
  BOOST_TEST((loaded.pipeline.mode == drover::execution_mode::fail_fast));
  BOOST_TEST(loaded.pipeline.defaults.retries == 0);
  BOOST_TEST(!loaded.pipeline.defaults.timeout.has_value());
  BOOST_TEST(loaded.pipeline.spec(0).params.is_object());
}

BOOST_AUTO_TEST_CASE(accepts_comments_and_trailing_commas) {
  const auto loaded = parse(R"(// a pipeline
    {
      /* the modules */
      "modules": [
        {"id": "a", "kind": "noop",},  // trailing comma in an object
        {"id": "b", "kind": "noop", "deps": ["a",],},
      ],
    })");
  BOOST_TEST_REQUIRE(loaded.ok());
  BOOST_TEST(loaded.pipeline.size() == 2u);
  BOOST_TEST(loaded.pipeline.spec(1).deps == std::vector<std::string>{"a"});
}

BOOST_AUTO_TEST_CASE(durations) {
  milliseconds d{};
  BOOST_TEST((parse_duration("500ms", d) && d == milliseconds{500}));
  BOOST_TEST((parse_duration("30s", d) && d == milliseconds{30'000}));
  BOOST_TEST((parse_duration("2m", d) && d == milliseconds{120'000}));
  BOOST_TEST((parse_duration("1h", d) && d == milliseconds{3'600'000}));
  BOOST_TEST((parse_duration("0ms", d) && d == milliseconds{0}));
  for (std::string_view bad :
       {"", "5", "s", "5 s", "1.5s", "-1s", "10d", "5sec", "ms5", "99999999999999999999h"}) {
    BOOST_TEST(!parse_duration(bad, d), "accepted '" << bad << "'");
  }
  const auto loaded = parse(R"({"modules": [{"id": "a", "kind": "noop", "timeout": 250}]})");
  BOOST_TEST_REQUIRE(loaded.ok());
  BOOST_TEST(loaded.pipeline.spec(0).timeout.value() == milliseconds{250});
}

BOOST_AUTO_TEST_CASE(skip_if_conditions_and_their_reasons) {
  ::unsetenv("DROVER_TEST_SKIP");
  ::unsetenv("DROVER_TEST_MODE");
  scratch_dir dir;
  const auto marker = dir / "marker";
  const auto loaded = parse(R"({"modules": [
    {"id": "by_env", "kind": "noop", "skip_if": {"env": "DROVER_TEST_SKIP"}},
    {"id": "by_value", "kind": "noop", "skip_if": {"env_equals": {"DROVER_TEST_MODE": "fast"}}},
    {"id": "by_file", "kind": "noop", "skip_if": {"file_exists": ")" +
                            marker.string() + R"("}}
  ]})");
  BOOST_TEST_REQUIRE(loaded.ok());
  const auto& by_env = module_named(loaded, "by_env").skip_if;
  const auto& by_value = module_named(loaded, "by_value").skip_if;
  const auto& by_file = module_named(loaded, "by_file").skip_if;

  BOOST_TEST(!by_env().has_value());
  ::setenv("DROVER_TEST_SKIP", "", 1);
  BOOST_TEST(!by_env().has_value(), "an empty variable does not count as set");
  ::setenv("DROVER_TEST_SKIP", "1", 1);
  BOOST_TEST(by_env().value() == "skip_if: environment variable DROVER_TEST_SKIP is set");

  BOOST_TEST(!by_value().has_value());
  ::setenv("DROVER_TEST_MODE", "slow", 1);
  BOOST_TEST(!by_value().has_value());
  ::setenv("DROVER_TEST_MODE", "fast", 1);
  BOOST_TEST(by_value().value() ==
             R"(skip_if: environment variable DROVER_TEST_MODE equals "fast")");

  BOOST_TEST(!by_file().has_value());
  dir.write("marker", "");
  BOOST_TEST(by_file().value() == "skip_if: file " + marker.string() + " exists");
  ::unsetenv("DROVER_TEST_SKIP");
  ::unsetenv("DROVER_TEST_MODE");
}

BOOST_AUTO_TEST_CASE(positions_are_lines_and_characters_from_one) {
  // The value of "retries" starts on line 3, column 14; "é" is one character, two bytes.
  BOOST_TEST(only_problem("{\"modules\": [\n"
                          "  {\"id\": \"é\", \"kind\": \"noop\",\n"
                          "   \"retries\": -1}]}") ==
             "p.json:3:15: module 'é': field 'retries': expected a non-negative integer");
  const json_source_map map{"{\n  \"a\": [1,\n  {\"b\": // c\n true}]}"};
  BOOST_TEST((map.value_position("/a/1/b") == text_position{4, 2}));
  BOOST_TEST((map.key_position("/a/1/b") == text_position{3, 4}));
  BOOST_TEST((map.value_position("/a/0") == text_position{2, 9}));
  BOOST_TEST((map.value_position("/a/7") == text_position{2, 8}), "falls back to the parent");
  BOOST_TEST((map.value_position("") == text_position{1, 1}));
}

BOOST_AUTO_TEST_CASE(syntax_errors_stop_at_the_first) {
  BOOST_TEST(only_problem("{\"modules\": [\n  {\"id\": \"a\" \"kind\": \"noop\"}]}") ==
             "p.json:2:14: invalid JSON: syntax error");
  BOOST_TEST(only_problem("{\"modules\": [\n  {\"id\": \"a\",") ==
             "p.json:2:14: invalid JSON: unexpected end of file");
  BOOST_TEST(only_problem("{\"modules\": []} x") == "p.json:1:17: invalid JSON: extra data");
  BOOST_TEST(only_problem("") == "p.json:1:1: the file is empty; expected a JSON object");
  BOOST_TEST(only_problem(" \n\t") == "p.json:1:1: the file is empty; expected a JSON object");
}

// Found by the pipeline_file fuzz target: the source map looped forever on a value that is
// only a delimiter (`[}`), so a bad file could hang `drover run` or a `drover serve` thread.
BOOST_AUTO_TEST_CASE(a_missing_value_is_a_syntax_error_not_a_hang) {
  BOOST_TEST(only_problem("{\"modules\": [}") == "p.json:1:14: invalid JSON: syntax error");
  BOOST_TEST(!parse(R"({"modules": [{"id": "a", "deps": ["a", "x"w"}]i": 1}]})").ok());
}

BOOST_AUTO_TEST_CASE(top_level_must_be_an_object_with_modules) {
  BOOST_TEST(only_problem("[{\"id\": \"a\", \"kind\": \"noop\"}]") ==
             "p.json:1:1: expected a JSON object at the top level, got an array");
  BOOST_TEST(only_problem("42") ==
             "p.json:1:1: expected a JSON object at the top level, got a number");
  BOOST_TEST(only_problem("{\"name\": \"x\"}") == "p.json:1:1: missing field 'modules'");
  BOOST_TEST(only_problem("{\"modules\": {}}") ==
             "p.json:1:13: field 'modules': expected an array of modules");
  BOOST_TEST(only_problem("{\"modules\": [], \"mode\": \"fast\"}") ==
             "p.json:1:25: field 'mode': expected \"fail_fast\" or \"keep_going\"");
  BOOST_TEST(only_problem("{\"modules\": [], \"name\": 7}") ==
             "p.json:1:25: field 'name': expected a string");
  BOOST_TEST(parse("{\"modules\": []}").ok());
}

BOOST_AUTO_TEST_CASE(unknown_fields_name_the_closest_known_one) {
  BOOST_TEST(
      only_problem("{\"modules\": [{\"id\": \"build\", \"kind\": \"noop\", \"retires\": 2}]}") ==
      "p.json:1:46: module 'build': unknown field 'retires' (did you mean 'retries'?)");
  BOOST_TEST(only_problem("{\"modules\": [{\"id\": \"b\", \"kind\": \"noop\", \"colour\": 2}]}") ==
             "p.json:1:42: module 'b': unknown field 'colour'");
  BOOST_TEST(only_problem("{\"modules\": [], \"default\": {}}") ==
             "p.json:1:17: unknown field 'default' (did you mean 'defaults'?)");
  BOOST_TEST(only_problem("{\"modules\": [], \"defaults\": {\"timout\": 5}}") ==
             "p.json:1:30: unknown field 'timout' (did you mean 'timeout'?)");
  BOOST_TEST(only_problem("{\"modules\": [{\"id\": \"b\", \"kind\": \"noop\", "
                          "\"backoff\": {\"jiter\": 0}}]}") ==
             "p.json:1:54: module 'b': unknown field 'jiter' (did you mean 'jitter'?)");
  BOOST_TEST(only_problem("{\"modules\": [{\"id\": \"b\", \"kind\": \"noop\", \"retries\": 1, "
                          "\"retries\": 2}]}") ==
             "p.json:1:56: module 'b': field 'retries': duplicate field: a field may appear "
             "only once");
}

BOOST_AUTO_TEST_CASE(every_repeated_field_is_reported_in_text_order) {
  // Repeats at four levels, one three times, and nested objects between them: the scan for
  // repeated keys must come back to each level's keys after visiting deeper ones. A repeat
  // inside params, which no field reader checks, is reported too.
  const auto problems = problems_of(R"({"name": "p", "modules": [
  {"id": "a", "kind": "exec",
   "params": {"argv": ["true"], "env": {"X": "1", "Y": {"secret_from_env": "S"}, "X": "2"}},
   "retries": 1, "retries": 2,
   "retries": 3},
  {"id": "b", "kind": "noop", "tags": ["t"], "tags": ["u"]}],
 "name": "q"})");
  const std::vector<std::string> expected{
      "p.json:3:82: module 'a': field 'params.env.X': duplicate key: only its last value would "
      "be used",
      "p.json:4:18: module 'a': field 'retries': duplicate field: a field may appear only once",
      "p.json:5:4: module 'a': field 'retries': duplicate field: a field may appear only once",
      "p.json:6:46: module 'b': field 'tags': duplicate field: a field may appear only once",
      "p.json:7:2: field 'name': duplicate field: a field may appear only once"};
  BOOST_TEST(problems == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(wrong_types_and_values) {
  const std::string head = "{\"modules\": [{\"id\": \"m\", \"kind\": \"noop\", ";
  // Each member starts at column 42.
  auto problem_with = [&](std::string_view member) {
    return only_problem(head + std::string{member} + "}]}");
  };
  BOOST_TEST(problem_with("\"retries\": \"3\"") ==
             "p.json:1:53: module 'm': field 'retries': expected a non-negative integer");
  BOOST_TEST(problem_with("\"retries\": 1.5") ==
             "p.json:1:53: module 'm': field 'retries': expected a non-negative integer");
  BOOST_TEST(problem_with("\"priority\": true") ==
             "p.json:1:54: module 'm': field 'priority': expected an integer");
  BOOST_TEST(problem_with("\"always_run\": 1") ==
             "p.json:1:56: module 'm': field 'always_run': expected true or false");
  BOOST_TEST(problem_with("\"ignore_failure\": \"yes\"") ==
             "p.json:1:60: module 'm': field 'ignore_failure': expected true or false");
  BOOST_TEST(problem_with("\"deps\": \"a\"") ==
             "p.json:1:50: module 'm': field 'deps': expected an array of strings");
  BOOST_TEST(problem_with("\"tags\": [\"ok\", 3]") ==
             "p.json:1:57: module 'm': field 'tags[1]': expected a non-empty string");
  BOOST_TEST(problem_with("\"timeout\": \"5 s\"") ==
             "p.json:1:53: module 'm': field 'timeout': expected a duration: milliseconds as "
             "an integer, or a string such as \"500ms\", \"30s\", \"2m\" or \"1h\"");
  BOOST_TEST(problem_with("\"timeout\": 0") ==
             "p.json:1:53: module 'm': field 'timeout': expected a positive duration");
  BOOST_TEST(problem_with("\"backoff\": {\"multiplier\": 0.5}") ==
             "p.json:1:68: module 'm': field 'backoff.multiplier': expected a number >= 1");
  BOOST_TEST(problem_with("\"backoff\": {\"jitter\": 1.5}") ==
             "p.json:1:64: module 'm': field 'backoff.jitter': expected a number from 0 to 1");
  BOOST_TEST(problem_with("\"backoff\": {\"max\": \"soon\"}") ==
             "p.json:1:61: module 'm': field 'backoff.max': expected a duration: milliseconds "
             "as an integer, or a string such as \"500ms\", \"30s\", \"2m\" or \"1h\"");
  BOOST_TEST(problem_with("\"skip_if\": {}") ==
             "p.json:1:53: module 'm': field 'skip_if': expected an object with one of \"env\", "
             "\"env_equals\" or \"file_exists\"");
  BOOST_TEST(problem_with("\"skip_if\": {\"env\": \"\"}") ==
             "p.json:1:61: module 'm': field 'skip_if.env': expected the name of an environment "
             "variable");
  BOOST_TEST(problem_with("\"skip_if\": {\"env_equals\": {\"A\": 1}}") ==
             "p.json:1:68: module 'm': field 'skip_if.env_equals': expected an object with one "
             "member, such as {\"CI\": \"true\"}");
}

BOOST_AUTO_TEST_CASE(modules_without_id_or_kind) {
  BOOST_TEST(only_problem("{\"modules\": [\n  {\"kind\": \"noop\", \"deps\": [\"ghost\"]}]}") ==
             "p.json:2:3: module #1: missing field 'id'");
  BOOST_TEST(only_problem("{\"modules\": [\n  {\"id\": \"a\"}]}") ==
             "p.json:2:3: module 'a': missing field 'kind'");
  BOOST_TEST(only_problem("{\"modules\": [\n  {\"id\": \"\", \"kind\": \"noop\"}]}") ==
             "p.json:2:10: module #1: field 'id': expected a non-empty string");
  BOOST_TEST(only_problem("{\"modules\": [\n  \"a\"]}") ==
             "p.json:2:3: module #1: expected a module object with at least \"id\" and \"kind\"");
}

BOOST_AUTO_TEST_CASE(kinds_and_their_params) {
  BOOST_TEST(only_problem("{\"modules\": [{\"id\": \"a\", \"kind\": \"exce\"}]}") ==
             "p.json:1:34: module 'a': field 'kind': unknown kind 'exce' (did you mean 'exec'?)");
  BOOST_TEST(only_problem("{\"modules\": [{\"id\": \"a\", \"kind\": \"docker\"}]}") ==
             "p.json:1:34: module 'a': field 'kind': unknown kind 'docker' (known kinds: exec, "
             "noop, sleep)");
  // Params problems come from the kind's factory and point into params.
  const auto message = only_problem(
      "{\"modules\": [{\"id\": \"a\", \"kind\": \"sleep\", \"params\": {\"ms\": -4}}]}");
  BOOST_TEST(message.starts_with("p.json:1:60: module 'a': field 'params.ms': "), message);
}

BOOST_AUTO_TEST_CASE(expressions_in_params_are_checked_where_they_are_written) {
  const auto problems = problems_of(R"({"modules": [
  {"id": "build", "kind": "exec", "params": {"argv": ["true"]}, "matrix": {"os": ["linux", "mac"]}},
  {"id": "test", "kind": "exec", "deps": ["build"],
   "params": {"argv": ["echo", "${{ deps.lint.value }}", "${{ deps['build[os=linux]'].value }}",
                       "${{ deps.build.value }}"],
              "env": {"A": "${{ matrix.os }}", "B": "${{ deps.x.valeu }}"}}},
  {"id": "grid", "kind": "exec", "matrix": {"os": ["linux", "mac"]},
   "params": {"shell": "echo ${{ matrix.cpu }} ${{ matrix.os }} ${{ matrix.target }}"}}
]})");
  BOOST_TEST(problems ==
                 (std::vector<std::string>{
                     "p.json:4:32: module 'test': field 'params.argv[1]': ${{ deps.lint.value }}: "
                     "'lint' is not one of the module's dependencies (a module reads only the "
                     "values of its deps)",
                     // A dependency on a matrix module is one on each instance, by instance id.
                     "p.json:5:24: module 'test': field 'params.argv[3]': ${{ deps.build.value }}: "
                     "'build' is not one of the module's dependencies (a module reads only the "
                     "values of its deps)",
                     "p.json:6:28: module 'test': field 'params.env.A': ${{ matrix.os }}: the "
                     "module has no matrix",
                     "p.json:6:53: module 'test': field 'params.env.B': ${{ deps.x.valeu }}: not a "
                     "valid expression: expected .value or .status after the dependency's id, got "
                     ".valeu",
                     // Once for the module, not once per instance.
                     "p.json:8:24: module 'grid': field 'params.shell': ${{ matrix.cpu }}: the "
                     "module's matrix has no axis 'cpu'"}),
             boost::test_tools::per_element());
  // What is fine stays fine, and expressions cost nothing until a run evaluates them.
  const auto fine = parse(R"({"modules": [
    {"id": "a", "kind": "exec", "params": {"argv": ["true"]}},
    {"id": "b", "kind": "exec", "deps": ["a"], "matrix": ["x"], "matrix_requires": [],
     "params": {"argv": ["echo", "${{ deps.a.value.exit_code }}", "${{ matrix.target }}",
                         "$${{ not an expression"]}}]})");
  BOOST_TEST(fine.ok(), problems_of_loaded(fine));
}

BOOST_AUTO_TEST_CASE(every_malformed_expression_of_a_module_is_reported) {
  const auto problems = problems_of(
      R"({"modules": [{"id": "a", "kind": "exec", "params": {"argv": ["${{ }}", "x", "${{ y }}"]}}]})");
  BOOST_TEST(problems == (std::vector<std::string>{
                             "p.json:1:62: module 'a': field 'params.argv[0]': ${{ }}: not a valid "
                             "expression: the expression is empty",
                             "p.json:1:77: module 'a': field 'params.argv[2]': ${{ y }}: not a "
                             "valid expression: unknown name 'y': an expression starts with deps "
                             "or matrix"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(graph_problems_point_at_the_module) {
  // Modules are numbered as in the file, counting those with problems of their own.
  BOOST_TEST(only_problem("{\"modules\": [\n"
                          "  {\"id\": \"a\", \"kind\": \"noop\"},\n"
                          "  {\"id\": \"a\", \"kind\": \"noop\"}]}") ==
             "p.json:3:10: module 'a': field 'id': duplicate module id 'a' (modules #1 and #2)");
  const auto numbered = problems_of(
      "{\"modules\": [\n"
      "  {\"id\": \"a\", \"kind\": \"noop\"}, 7,\n"
      "  {\"id\": \"a\", \"kind\": \"noop\"}]}");
  BOOST_TEST_REQUIRE(numbered.size() == 2u);
  BOOST_TEST(numbered[1] ==
             "p.json:3:10: module 'a': field 'id': duplicate module id 'a' (modules #1 and #3)");
  BOOST_TEST(only_problem("{\"modules\": [\n"
                          "  {\"id\": \"a\", \"kind\": \"noop\", \"deps\": [\"b\", \"zz\"]},\n"
                          "  {\"id\": \"b\", \"kind\": \"noop\"}]}")
                 .starts_with("p.json:2:45: module 'a': field 'deps[1]': "));
  const auto cycle = problems_of(
      "{\"modules\": [\n"
      "  {\"id\": \"a\", \"kind\": \"noop\", \"deps\": [\"b\"]},\n"
      "  {\"id\": \"b\", \"kind\": \"noop\", \"deps\": [\"a\"]}]}");
  BOOST_TEST_REQUIRE(!cycle.empty());
  BOOST_TEST(cycle.front().find("dependency cycle: ") != std::string::npos, cycle.front());
  const bool names_the_cycle = cycle.front().find("a -> b -> a") != std::string::npos ||
                               cycle.front().find("b -> a -> b") != std::string::npos;
  BOOST_TEST(names_the_cycle, cycle.front());
}

BOOST_AUTO_TEST_CASE(reports_every_problem_at_once_in_text_order) {
  const auto all = problems_of(R"({
  "mode": 1,
  "modules": [
    {"id": "a", "kind": "noop", "retries": -1},
    {"kind": "noop"},
    {"id": "c", "kind": "nope", "deps": ["ghost"], "timeout": "never"}
  ]
})");
  const std::vector<std::string> expected{
      "p.json:2:11: field 'mode': expected \"fail_fast\" or \"keep_going\"",
      "p.json:4:44: module 'a': field 'retries': expected a non-negative integer",
      "p.json:5:5: module #2: missing field 'id'",
      "p.json:6:25: module 'c': field 'kind': unknown kind 'nope' (did you mean 'noop'?)",
      "p.json:6:42: module 'c': field 'deps[0]': module 'c' depends on unknown module 'ghost'",
      "p.json:6:63: module 'c': field 'timeout': expected a duration: milliseconds as an "
      "integer, or a string such as \"500ms\", \"30s\", \"2m\" or \"1h\""};
  BOOST_TEST(all == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(control_characters_are_escaped_in_messages) {
  const auto all = problems_of(R"({"modules": [{"id": "x", "kind": "noop", "deps": ["a\nb"]}]})");
  BOOST_TEST_REQUIRE(all.size() == 1u);
  BOOST_TEST(all[0] ==
             "p.json:1:51: module 'x': field 'deps[0]': module 'x' depends on unknown module "
             "'a\\x0ab'");
}

BOOST_AUTO_TEST_CASE(reads_scheduling_constraints) {
  const auto loaded = parse(R"({
    "pools": {"network": 3, "gpu": 1},
    "modules": [
      {"id": "plain", "kind": "noop"},
      {"id": "upload", "kind": "noop", "requires": ["docker", "GPU"], "pin_local": true,
       "not_in_parallel": ["db", "cache"], "pool": "network", "pool_slots": 2,
       "claims": ["db/users", {"resource": "db/*", "mode": "read"},
                  {"resource": "cache/**", "mode": "write"}, {"resource": "logs"}]},
      {"id": "alone", "kind": "noop", "not_in_parallel": true, "pool": "gpu"}
    ]
  })");
  BOOST_TEST_REQUIRE(loaded.ok(), problems_of_loaded(loaded));
  const auto& p = loaded.pipeline;
  BOOST_TEST((p.pools == std::map<std::string, std::uint32_t>{{"gpu", 1}, {"network", 3}}));

  const auto& plain = module_named(loaded, "plain");
  BOOST_TEST(!plain.constraints.has_value(), "a module without constraints gets no box");
  BOOST_TEST(!plain.matrix.has_value());
  BOOST_TEST(!plain.instance.has_value());

  const auto& upload = module_named(loaded, "upload");
  BOOST_TEST_REQUIRE(upload.constraints.has_value());
  const auto& c = *upload.constraints;
  BOOST_TEST((c.required_capabilities == std::vector<std::string>{"docker", "GPU"}));
  BOOST_TEST(c.pin_local);
  BOOST_TEST((c.not_in_parallel == std::vector<std::string>{"db", "cache"}));
  BOOST_TEST(!c.run_alone);
  BOOST_TEST(c.pool == "network");
  BOOST_TEST(c.pool_slots == 2u);
  BOOST_TEST_REQUIRE(c.claims.size() == 4u);
  BOOST_TEST(c.claims[0].resource == "db/users");
  BOOST_TEST((c.claims[0].mode == drover::claim_mode::write), "a bare string is a write claim");
  BOOST_TEST(c.claims[1].resource == "db/*");
  BOOST_TEST((c.claims[1].mode == drover::claim_mode::read));
  BOOST_TEST(c.claims[2].resource == "cache/**");
  BOOST_TEST((c.claims[2].mode == drover::claim_mode::write));
  BOOST_TEST(c.claims[3].resource == "logs");
  BOOST_TEST((c.claims[3].mode == drover::claim_mode::write), "the mode defaults to write");

  const auto& alone = module_named(loaded, "alone");
  BOOST_TEST_REQUIRE(alone.constraints.has_value());
  BOOST_TEST(alone.constraints->run_alone);
  BOOST_TEST(alone.constraints->not_in_parallel.empty());
  BOOST_TEST(alone.constraints->pool == "gpu");
  BOOST_TEST(alone.constraints->pool_slots == 1u, "pool_slots defaults to 1");
}

BOOST_AUTO_TEST_CASE(settings_that_constrain_nothing_make_no_box) {
  const auto loaded = parse(R"({"pools": {}, "modules": [
    {"id": "a", "kind": "noop", "not_in_parallel": false, "pin_local": false, "requires": [],
     "claims": []},
    {"id": "b", "kind": "noop", "not_in_parallel": []}]})");
  BOOST_TEST_REQUIRE(loaded.ok(), problems_of_loaded(loaded));
  BOOST_TEST(loaded.pipeline.pools.empty());
  for (const auto& m : loaded.pipeline.specs()) {
    BOOST_TEST(!m.constraints.has_value(), m.id);
  }
}

BOOST_AUTO_TEST_CASE(wrong_constraint_types_and_values) {
  const std::string head =
      "{\"pools\": {\"net\": 2}, \"modules\": [{\"id\": \"m\", \"kind\": \"noop\", ";
  // Each member starts at column 63.
  auto problem_with = [&](std::string_view member) {
    return only_problem(head + std::string{member} + "}]}");
  };
  BOOST_TEST(problem_with("\"requires\": \"docker\"") ==
             "p.json:1:75: module 'm': field 'requires': expected an array of strings");
  BOOST_TEST(problem_with("\"requires\": [\"docker\", \"\"]") ==
             "p.json:1:86: module 'm': field 'requires[1]': expected a non-empty string");
  BOOST_TEST(problem_with("\"pin_local\": 1") ==
             "p.json:1:76: module 'm': field 'pin_local': expected true or false");
  BOOST_TEST(problem_with("\"not_in_parallel\": 3") ==
             "p.json:1:82: module 'm': field 'not_in_parallel': expected true, false or an array "
             "of keys, such as [\"database\"]");
  BOOST_TEST(problem_with("\"not_in_parallel\": \"db\"") ==
             "p.json:1:82: module 'm': field 'not_in_parallel': expected true, false or an array "
             "of keys, such as [\"database\"]");
  BOOST_TEST(problem_with("\"not_in_parallel\": [\"db\", 7]") ==
             "p.json:1:89: module 'm': field 'not_in_parallel[1]': expected a non-empty string");
  BOOST_TEST(problem_with("\"claims\": \"db\"") ==
             "p.json:1:73: module 'm': field 'claims': expected an array of claims, such as "
             "[\"db/users\"]");
  BOOST_TEST(problem_with("\"claims\": [\"\"]") ==
             "p.json:1:74: module 'm': field 'claims[0]': expected a non-empty resource name");
  BOOST_TEST(problem_with("\"claims\": [\"a\", 3]") ==
             "p.json:1:79: module 'm': field 'claims[1]': expected a resource name such as "
             "\"db/users\", or an object such as {\"resource\": \"db/users\", \"mode\": \"read\"}");
  BOOST_TEST(problem_with("\"claims\": [{\"mode\": \"read\"}]") ==
             "p.json:1:74: module 'm': field 'claims[0]': missing field 'resource'");
  BOOST_TEST(problem_with("\"claims\": [{\"resource\": 5}]") ==
             "p.json:1:87: module 'm': field 'claims[0].resource': expected a non-empty resource "
             "name");
  BOOST_TEST(problem_with("\"claims\": [{\"resource\": \"db\", \"mode\": \"exclusive\"}]") ==
             "p.json:1:101: module 'm': field 'claims[0].mode': expected \"read\" or \"write\"");
  BOOST_TEST(problem_with("\"claims\": [{\"resource\": \"db\", \"mod\": \"read\"}]") ==
             "p.json:1:93: module 'm': unknown field 'mod' (did you mean 'mode'?)");
  BOOST_TEST(problem_with("\"pool\": 5") ==
             "p.json:1:71: module 'm': field 'pool': expected the name of a pool");
  BOOST_TEST(problem_with("\"pool\": \"net\", \"pool_slots\": 0") ==
             "p.json:1:92: module 'm': field 'pool_slots': expected an integer >= 1");
  BOOST_TEST(problem_with("\"pool\": \"net\", \"pool_slots\": \"2\"") ==
             "p.json:1:92: module 'm': field 'pool_slots': expected an integer >= 1");
  BOOST_TEST(problem_with("\"pool\": \"net\", \"pool_slots\": 3") ==
             "p.json:1:92: module 'm': field 'pool_slots': pool 'net' has 2 slots; a module "
             "cannot take more");
  BOOST_TEST(problem_with("\"pool_slots\": 2") ==
             "p.json:1:77: module 'm': field 'pool_slots': pool_slots needs a pool: set \"pool\" "
             "too");
  BOOST_TEST(problem_with("\"matrix\": 3") ==
             "p.json:1:73: module 'm': field 'matrix': expected an array of values, such as "
             "[\"linux\", \"windows\"], or an object of axes, such as {\"os\": [\"linux\", "
             "\"windows\"]}");
  BOOST_TEST(problem_with("\"matrix\": [\"linux\", 1]") ==
             "p.json:1:83: module 'm': field 'matrix[1]': expected a non-empty string");
  BOOST_TEST(problem_with("\"matrix\": {\"os\": \"linux\"}") ==
             "p.json:1:80: module 'm': field 'matrix.os': expected an array of strings");
  BOOST_TEST(problem_with("\"matrix\": {\"os\": [\"linux\"], \"include\": {\"os\": \"mac\"}}") ==
             "p.json:1:102: module 'm': field 'matrix.include': expected an array of objects, "
             "such as [{\"os\": \"linux\"}]");
  BOOST_TEST(problem_with("\"matrix\": {\"os\": [\"linux\"], \"exclude\": [\"linux\"]}") ==
             "p.json:1:103: module 'm': field 'matrix.exclude[0]': expected an object of axis "
             "values, such as {\"os\": \"linux\"}");
  BOOST_TEST(problem_with("\"matrix\": {\"os\": [\"linux\"], \"exclude\": [{\"os\": 1}]}") ==
             "p.json:1:110: module 'm': field 'matrix.exclude[0].os': expected a non-empty string");
  BOOST_TEST(problem_with("\"matrix_requires\": [\"os\"]") ==
             "p.json:1:82: module 'm': field 'matrix_requires': matrix_requires needs a matrix: "
             "set \"matrix\" too");
  BOOST_TEST(problem_with("\"matrix\": [\"a\"], \"matrix_requires\": \"os\"") ==
             "p.json:1:99: module 'm': field 'matrix_requires': expected an array of strings");
}

BOOST_AUTO_TEST_CASE(pools_and_the_modules_that_use_them) {
  BOOST_TEST(only_problem("{\"pools\": [\"net\"], \"modules\": []}") ==
             "p.json:1:11: field 'pools': expected an object of pool names and their slots, such "
             "as {\"network\": 2}");
  BOOST_TEST(only_problem("{\"pools\": {\"net\": 0}, \"modules\": []}") ==
             "p.json:1:19: field 'pools.net': expected the number of slots: an integer >= 1");
  BOOST_TEST(only_problem("{\"pools\": {\"net\": 1.5}, \"modules\": []}") ==
             "p.json:1:19: field 'pools.net': expected the number of slots: an integer >= 1");
  BOOST_TEST(only_problem("{\"pools\": {\"\": 2}, \"modules\": []}") ==
             "p.json:1:12: field 'pools': a pool needs a non-empty name");
  BOOST_TEST(only_problem("{\"pools\": {\"net\": 1, \"net\": 2}, \"modules\": []}") ==
             "p.json:1:22: field 'pools.net': duplicate field: a field may appear only once");

  // The pools may come after the modules that use them.
  const auto after = parse(R"({"modules": [{"id": "m", "kind": "noop", "pool": "net"}],
                               "pools": {"net": 1}})");
  BOOST_TEST(after.ok(), problems_of_loaded(after));

  BOOST_TEST(only_problem("{\"pools\": {\"network\": 2, \"disk\": 1}, \"modules\": [\n"
                          "  {\"id\": \"m\", \"kind\": \"noop\", \"pool\": \"netwrok\"}]}") ==
             "p.json:2:39: module 'm': field 'pool': unknown pool 'netwrok' (did you mean "
             "'network'?)");
  BOOST_TEST(only_problem("{\"pools\": {\"network\": 2, \"disk\": 1}, \"modules\": [\n"
                          "  {\"id\": \"m\", \"kind\": \"noop\", \"pool\": \"gpu\"}]}") ==
             "p.json:2:39: module 'm': field 'pool': unknown pool 'gpu' (known pools: network, "
             "disk)");
  BOOST_TEST(only_problem("{\"modules\": [\n"
                          "  {\"id\": \"m\", \"kind\": \"noop\", \"pool\": \"gpu\"}]}") ==
             "p.json:2:39: module 'm': field 'pool': unknown pool 'gpu' (declare it in the "
             "top-level \"pools\", such as \"pools\": {\"gpu\": 2})");
  // A pool that is itself wrong is reported once, where it is declared.
  BOOST_TEST(only_problem("{\"pools\": {\"net\": 0}, \"modules\": [\n"
                          "  {\"id\": \"m\", \"kind\": \"noop\", \"pool\": \"net\"}]}") ==
             "p.json:1:19: field 'pools.net': expected the number of slots: an integer >= 1");
  BOOST_TEST(only_problem("{\"pools\": 3, \"modules\": [\n"
                          "  {\"id\": \"m\", \"kind\": \"noop\", \"pool\": \"net\"}]}")
                 .starts_with("p.json:1:11: field 'pools': "));
}

BOOST_AUTO_TEST_CASE(misspelt_constraint_fields_name_the_right_one) {
  const std::string head = "{\"modules\": [{\"id\": \"m\", \"kind\": \"noop\", ";
  auto problem_with = [&](std::string_view member) {
    return only_problem(head + std::string{member} + "}]}");
  };
  BOOST_TEST(problem_with("\"requries\": [\"docker\"]") ==
             "p.json:1:42: module 'm': unknown field 'requries' (did you mean 'requires'?)");
  BOOST_TEST(problem_with("\"pin_locla\": true") ==
             "p.json:1:42: module 'm': unknown field 'pin_locla' (did you mean 'pin_local'?)");
  BOOST_TEST(problem_with("\"not_in_paralel\": true") ==
             "p.json:1:42: module 'm': unknown field 'not_in_paralel' (did you mean "
             "'not_in_parallel'?)");
  BOOST_TEST(problem_with("\"claim\": []") ==
             "p.json:1:42: module 'm': unknown field 'claim' (did you mean 'claims'?)");
  BOOST_TEST(problem_with("\"matrx\": []") ==
             "p.json:1:42: module 'm': unknown field 'matrx' (did you mean 'matrix'?)");
  BOOST_TEST(only_problem("{\"modules\": [], \"pool\": {}}") ==
             "p.json:1:17: unknown field 'pool' (did you mean 'pools'?)");
}

// The tests below need matrix expansion (drover::expand_matrix).

BOOST_AUTO_TEST_CASE(matrix_modules_become_their_instances) {
  const auto loaded = parse(R"({"modules": [
    {"id": "fetch", "kind": "noop"},
    {"id": "build", "kind": "noop", "deps": ["fetch"], "matrix": ["linux", "windows"],
     "requires": ["docker"]},
    {"id": "test", "kind": "noop", "deps": ["build"],
     "matrix": {"os": ["linux", "macos"], "cc": ["gcc", "clang"],
                "exclude": [{"os": "macos", "cc": "gcc"}],
                "include": [{"os": "linux", "cc": "icc"}]},
     "matrix_requires": ["os"]},
    {"id": "ship", "kind": "noop", "deps": ["build[linux]"]}
  ]})");
  BOOST_TEST_REQUIRE(loaded.ok(), problems_of_loaded(loaded));
  std::vector<std::string> ids;
  for (const auto& m : loaded.pipeline.specs())
    ids.push_back(m.id);
  const std::vector<std::string> expected_ids{"fetch",
                                              "build[linux]",
                                              "build[windows]",
                                              "test[os=linux,cc=gcc]",
                                              "test[os=linux,cc=clang]",
                                              "test[os=macos,cc=clang]",
                                              "test[os=linux,cc=icc]",
                                              "ship"};
  BOOST_TEST(ids == expected_ids, boost::test_tools::per_element());

  const auto& windows = module_named(loaded, "build[windows]");
  BOOST_TEST(!windows.matrix.has_value());
  BOOST_TEST_REQUIRE(windows.instance.has_value());
  BOOST_TEST(windows.instance->target == "windows");
  BOOST_TEST_REQUIRE(windows.constraints.has_value());
  // The list form's axis is required by default.
  BOOST_TEST((windows.constraints->required_capabilities ==
              std::vector<std::string>{"docker", "windows"}));
  BOOST_TEST(windows.deps == std::vector<std::string>{"fetch"});

  const auto& test = module_named(loaded, "test[os=macos,cc=clang]");
  BOOST_TEST((test.deps == std::vector<std::string>{"build[linux]", "build[windows]"}));
  BOOST_TEST_REQUIRE(test.constraints.has_value());
  BOOST_TEST((test.constraints->required_capabilities == std::vector<std::string>{"macos"}));
  BOOST_TEST(module_named(loaded, "ship").deps == std::vector<std::string>{"build[linux]"});
}

BOOST_AUTO_TEST_CASE(matrix_requires_chooses_the_required_axes) {
  const auto loaded = parse(R"({"modules": [
    {"id": "a", "kind": "noop", "matrix": ["linux", "windows"], "matrix_requires": []},
    {"id": "b", "kind": "noop", "matrix": {"os": ["linux"], "gpu": ["cuda"]}}
  ]})");
  BOOST_TEST_REQUIRE(loaded.ok(), problems_of_loaded(loaded));
  for (const auto& m : loaded.pipeline.specs()) {
    const bool requires_nothing = !m.constraints || m.constraints->required_capabilities.empty();
    BOOST_TEST(requires_nothing, m.id);
  }
}

BOOST_AUTO_TEST_CASE(matrix_problems_point_at_the_module_in_the_file) {
  BOOST_TEST(only_problem("{\"modules\": [\n"
                          "  {\"id\": \"b[x]\", \"kind\": \"noop\", \"matrix\": [\"linux\"]}]}")
                 .starts_with("p.json:2:10: module 'b[x]': field 'id': "));
  BOOST_TEST(only_problem("{\"modules\": [\n"
                          "  {\"id\": \"b\", \"kind\": \"noop\", \"matrix\": []}]}")
                 .starts_with("p.json:2:41: module 'b': field 'matrix': "));
  BOOST_TEST(
      only_problem("{\"modules\": [\n"
                   "  {\"id\": \"b\", \"kind\": \"noop\",\n"
                   "   \"matrix\": {\"os\": [\"linux\"], \"include\": [{\"cpu\": \"arm\"}],\n"
                   "              \"exclude\": [{\"arch\": \"x86\"}]}}]}")
          .starts_with("p.json:4:26: module 'b': field 'matrix.exclude': "));
  BOOST_TEST(
      only_problem("{\"modules\": [\n"
                   "  {\"id\": \"b\", \"kind\": \"noop\", \"matrix\": {\"os\": [\"linux\"]},\n"
                   "   \"matrix_requires\": [\"arch\"]}]}")
          .starts_with("p.json:3:23: module 'b': field 'matrix_requires': "));
  // An instance whose id another module has.
  BOOST_TEST(only_problem("{\"modules\": [\n"
                          "  {\"id\": \"b[linux]\", \"kind\": \"noop\"},\n"
                          "  {\"id\": \"b\", \"kind\": \"noop\", \"matrix\": [\"linux\"]}]}")
                 .starts_with("p.json:3:41: module 'b': field 'matrix': "));
  // A matrix module's own id may not be another module's.
  const auto clash = problems_of(
      "{\"modules\": [\n"
      "  {\"id\": \"b\", \"kind\": \"noop\"},\n"
      "  {\"id\": \"b\", \"kind\": \"noop\", \"matrix\": [\"linux\"]}]}");
  BOOST_TEST_REQUIRE(!clash.empty());
  BOOST_TEST(clash.front().starts_with("p.json:3:10: module 'b': field 'id': "), clash.front());
}

BOOST_AUTO_TEST_CASE(a_problem_all_instances_share_is_reported_once) {
  // Each instance depends on the unknown module; the file has one mistake.
  BOOST_TEST(
      only_problem("{\"modules\": [\n"
                   "  {\"id\": \"b\", \"kind\": \"noop\", \"matrix\": [\"linux\", \"mac\"],\n"
                   "   \"deps\": [\"ghost\"]}]}") ==
      "p.json:3:13: module 'b': field 'deps[0]': module 'b' depends on unknown module "
      "'ghost'");
  // A claim the engine rejects, on every instance.
  const auto claim = only_problem(
      "{\"modules\": [\n"
      "  {\"id\": \"b\", \"kind\": \"noop\", \"matrix\": [\"linux\", \"mac\"],\n"
      "   \"claims\": [\"db/[users\"]}]}");
  BOOST_TEST(claim.starts_with("p.json:3:14: module 'b': field 'claims': claim "), claim);
  // A dependency cycle through instances blames the dependency as written.
  const auto cycle = problems_of(
      "{\"modules\": [\n"
      "  {\"id\": \"a\", \"kind\": \"noop\", \"deps\": [\"b\"]},\n"
      "  {\"id\": \"b\", \"kind\": \"noop\", \"matrix\": [\"x\"], \"deps\": [\"a\"]}]}");
  BOOST_TEST_REQUIRE(!cycle.empty());
  for (const auto& line : cycle) {
    const bool at_a_dependency = line.starts_with("p.json:2:40: module 'a': field 'deps[0]': ") ||
                                 line.starts_with("p.json:3:61: module 'b[x]': field 'deps[0]': ");
    BOOST_TEST(at_a_dependency, line);
  }
}

BOOST_AUTO_TEST_CASE(inputs_outputs_and_cache_settings) {
  const auto loaded = parse(R"({"modules": [
    {"id": "a", "kind": "noop", "inputs": ["src/**", "VERSION"], "input_env": ["CC", "CFLAGS"],
     "outputs": ["dist/*.tar.gz"], "cache": false, "version": "2"},
    {"id": "b", "kind": "noop", "inputs": [], "outputs": []},
    {"id": "c", "kind": "noop", "cache": true}]})");
  BOOST_TEST_REQUIRE(loaded.ok(), problems_of_loaded(loaded));
  const auto& a = module_named(loaded, "a");
  BOOST_TEST_REQUIRE(a.io.has_value());
  BOOST_TEST(a.io->inputs == (std::vector<std::string>{"src/**", "VERSION"}),
             boost::test_tools::per_element());
  BOOST_TEST(a.io->input_env == (std::vector<std::string>{"CC", "CFLAGS"}),
             boost::test_tools::per_element());
  BOOST_TEST(a.io->outputs == (std::vector<std::string>{"dist/*.tar.gz"}),
             boost::test_tools::per_element());
  BOOST_TEST(!a.io->cacheable);
  BOOST_TEST(a.io->version == "2");
  BOOST_TEST(!module_named(loaded, "b").io.has_value(), "empty lists make no box");
  const auto& c = module_named(loaded, "c");
  BOOST_TEST_REQUIRE(c.io.has_value(), "a field that is set makes the box");
  BOOST_TEST(c.io->cacheable);
}

BOOST_AUTO_TEST_CASE(an_exec_module_in_the_workspace_without_inputs_is_not_cached) {
  const auto loaded = parse(R"({"modules": [
    {"id": "blind", "kind": "exec", "params": {"shell": "make", "cwd": "."}},
    {"id": "empty", "kind": "exec", "inputs": [], "params": {"shell": "make", "cwd": "src"}},
    {"id": "declared", "kind": "exec", "inputs": ["src/**"], "params": {"shell": "make", "cwd": "."}},
    {"id": "opted_in", "kind": "exec", "cache": true, "params": {"shell": "make", "cwd": "."}},
    {"id": "opted_out", "kind": "exec", "cache": false, "params": {"shell": "make", "cwd": "."}},
    {"id": "scratch", "kind": "exec", "params": {"shell": "make"}},
    {"id": "each", "kind": "exec", "matrix": ["a", "b"], "params": {"shell": "make", "cwd": "."}}]})");
  BOOST_TEST_REQUIRE(loaded.ok(), problems_of_loaded(loaded));
  const auto cached = [&](std::string_view id) {
    const auto& m = module_named(loaded, id);
    return !m.io || m.io->cacheable;
  };
  BOOST_TEST(!cached("blind"));
  BOOST_TEST(!cached("empty"));
  BOOST_TEST(cached("declared"));
  BOOST_TEST(cached("opted_in"));
  BOOST_TEST(!cached("opted_out"));
  BOOST_TEST(cached("scratch"));
  BOOST_TEST(!cached("each[a]"));
  BOOST_TEST(!cached("each[b]"));

  std::vector<std::string> lines;
  for (const auto& w : loaded.warnings)
    lines.push_back(format_warning("p.json", w));
  const std::string why =
      "runs in the workspace but declares no inputs, so its fingerprint cannot see the files it "
      "reads: it is not cached. Declare them in \"inputs\", or set \"cache\": true to cache it "
      "on its definition and dependencies alone";
  BOOST_TEST(lines == (std::vector<std::string>{
                          "p.json:2:72: warning: module 'blind': field 'params.cwd': " + why,
                          "p.json:3:86: warning: module 'empty': field 'params.cwd': " + why,
                          "p.json:8:93: warning: module 'each': field 'params.cwd': " + why}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(wrong_io_types_and_values) {
  const std::string head =
      "{\"pools\": {\"net\": 2}, \"modules\": [{\"id\": \"m\", \"kind\": \"noop\", ";
  // Each member starts at column 63.
  auto problem_with = [&](std::string_view member) {
    return only_problem(head + std::string{member} + "}]}");
  };
  BOOST_TEST(problem_with("\"inputs\": \"src\"") ==
             "p.json:1:73: module 'm': field 'inputs': expected an array of strings");
  BOOST_TEST(problem_with("\"inputs\": [\"a\", \"\"]") ==
             "p.json:1:79: module 'm': field 'inputs[1]': expected a non-empty string");
  BOOST_TEST(problem_with("\"inputs\": [\"//x\"]") ==
             "p.json:1:74: module 'm': field 'inputs[0]': input '//x' is not a valid glob: "
             "after its leading '/', glob '/x' has an empty segment at offset 0 (it starts "
             "with '/')");
  BOOST_TEST(problem_with("\"inputs\": [\"../shared/../*.h\"]") ==
             "p.json:1:74: module 'm': field 'inputs[0]': input '../shared/../*.h' has a '.' or "
             "'..' segment; only a relative input may start with '..' segments");
  BOOST_TEST(problems_of(head + R"("inputs": ["../shared/*.h", "/opt/sdk/**"]}]})").empty(),
             "files outside the workspace may be inputs");
  BOOST_TEST(problem_with("\"inputs\": [\"a//b\"]") ==
             "p.json:1:74: module 'm': field 'inputs[0]': input glob 'a//b' has an "
             "empty segment at offset 2 (two '/' in a row)");
  BOOST_TEST(problem_with("\"input_env\": [\"9X\"]") ==
             "p.json:1:77: module 'm': field 'input_env[0]': input_env entry '9X' is "
             "not an environment variable name (letters, digits and '_', not starting with a "
             "digit)");
  BOOST_TEST(problem_with("\"outputs\": [\"/abs\"]") ==
             "p.json:1:75: module 'm': field 'outputs[0]': output '/abs' is an "
             "absolute path; outputs are relative to the workspace");
  BOOST_TEST(problem_with("\"outputs\": [\"a/../b\"]") ==
             "p.json:1:75: module 'm': field 'outputs[0]': output 'a/../b' has a '.' "
             "or '..' segment; outputs name files inside the workspace");
  BOOST_TEST(problem_with("\"outputs\": [\"ok\", \"a[\"]") ==
             "p.json:1:81: module 'm': field 'outputs[1]': output glob 'a[' has an "
             "unclosed '[' at offset 1");
  BOOST_TEST(problem_with("\"cache\": \"no\"") ==
             "p.json:1:72: module 'm': field 'cache': expected true or false");
  BOOST_TEST(problem_with("\"version\": 2") ==
             "p.json:1:74: module 'm': field 'version': expected a string");
  BOOST_TEST(problem_with("\"outptus\": []") ==
             "p.json:1:63: module 'm': unknown field 'outptus' (did you mean 'outputs'?)");
}

BOOST_AUTO_TEST_CASE(outputs_two_modules_could_both_write_are_rejected) {
  const std::string first = "  {\"id\": \"a\", \"kind\": \"noop\", \"outputs\": [\"dist/*\"]";
  const std::string second = "  {\"id\": \"b\", \"kind\": \"noop\", \"outputs\": [\"dist/app\"]";
  BOOST_TEST(only_problem("{\"modules\": [\n" + first + "},\n" + second + "}]}") ==
             "p.json:2:43: module 'a': field 'outputs[0]': modules 'a' and 'b' can write the same "
             "output ('dist/*' and 'dist/app'), but neither depends on the other and their "
             "claims do not conflict: add a dependency between them, or claims on a shared "
             "resource with at least one write");
  BOOST_TEST(problems_of("{\"modules\": [\n" + first + "},\n" + second + ", \"deps\": [\"a\"]}]}")
                 .empty());
  BOOST_TEST(problems_of("{\"modules\": [\n" + first + ", \"claims\": [\"dist\"]},\n" + second +
                         ", \"claims\": [{\"resource\": \"dist\", \"mode\": \"read\"}]}]}")
                 .empty());
}

BOOST_AUTO_TEST_CASE(files) {
  scratch_dir dir;
  const auto file = dir.write("ci.json", R"({"modules": [{"id": "a", "kind": "noop"}]})");
  const auto loaded = load_pipeline_file(file, kinds);
  BOOST_TEST_REQUIRE(loaded.ok());
  BOOST_TEST(loaded.pipeline.name == "ci", "the name defaults to the file's stem");

  const auto missing = load_pipeline_file(dir / "nope.json", kinds);
  BOOST_TEST_REQUIRE(missing.problems.size() == 1u);
  BOOST_TEST(format_problem("nope.json", missing.problems[0]) ==
             "nope.json: cannot read the file: No such file or directory");
  const auto directory = load_pipeline_file(dir.path(), kinds);
  BOOST_TEST_REQUIRE(directory.problems.size() == 1u);
  BOOST_TEST(directory.problems[0].message == "cannot read the file: it is a directory");
}

BOOST_AUTO_TEST_CASE(closest_match_allows_two_edits) {
  const std::vector<std::string> names{"retries", "timeout", "tags"};
  BOOST_TEST(closest_match("retires", names) == "retries");
  BOOST_TEST(closest_match("timout", names) == "timeout");
  BOOST_TEST(closest_match("tag", names) == "tags");
  BOOST_TEST(closest_match("priority", names) == "");
}

BOOST_AUTO_TEST_SUITE_END()
