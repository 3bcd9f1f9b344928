#include <drover/modules/interpolation.hpp>

#define BOOST_TEST_MODULE interpolation
#include "../common/printing.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace drover::modules {
std::ostream& operator<<(std::ostream& os, expression_fault fault) {
  return os << static_cast<int>(fault);
}
}  // namespace drover::modules

namespace {

namespace json = boost::json;
using drover::module_status;
using drover::modules::evaluation_error;
using drover::modules::expression_fault;
using drover::modules::expression_names;
using drover::modules::expression_problem;
using drover::modules::expression_scope;
using drover::modules::params_template;

/// The params of `params_json` with `string` as the value of "s".
json::value params_with(std::string_view string) {
  return json::object{{"s", string}};
}

/// The one malformed-expression problem of a string, or fails the test.
expression_problem malformed(std::string_view string) {
  const params_template t{params_with(string)};
  BOOST_TEST_REQUIRE(t.problems().size() == 1u, "no single problem in " << string);
  BOOST_TEST(t.problems().front().fault == expression_fault::malformed);
  return t.problems().front();
}

/// A scope with one dependency `build` that succeeded with `value`.
struct build_scope {
  explicit build_scope(std::string_view value_json, module_status status = module_status::succeeded)
      : value(json::parse(value_json)) {
    scope.deps.push_back({"build", status, value.is_null() ? nullptr : &value});
  }
  json::value value;
  expression_scope scope;
};

/// `string` (the value of params "s") evaluated in `scope`.
std::string evaluated(std::string_view string, const expression_scope& scope) {
  const params_template t{params_with(string)};
  BOOST_TEST_REQUIRE(t.problems().empty(), "malformed: " << string);
  return std::string(t.evaluate(scope).at("s").as_string());
}

/// The message of the evaluation_error evaluating `params` in `scope` throws, or "".
std::string evaluation_failure(const json::value& params, const expression_scope& scope) {
  try {
    (void)params_template{params}.evaluate(scope);
  } catch (const evaluation_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(interpolation)

BOOST_AUTO_TEST_CASE(params_without_expressions_are_left_as_they_are) {
  const auto params = json::parse(R"({"argv": ["echo", "${ HOME }", "{{x}}", "$"], "n": 3})");
  BOOST_TEST(!params_template::has_templates(params));
  const params_template t{params};
  BOOST_TEST(!t.has_expressions());
  BOOST_TEST(t.problems().empty());
  BOOST_TEST(t.literal() == params);
  BOOST_TEST(t.evaluate({}) == params);
}

BOOST_AUTO_TEST_CASE(a_doubled_dollar_escapes_the_braces) {
  const auto params =
      json::parse(R"({"shell": "echo '$${{ deps.x.value }}' $$${{ matrix.target }}"})");
  BOOST_TEST(params_template::has_templates(params));
  const params_template t{params};
  BOOST_TEST(!t.has_expressions());
  BOOST_TEST(t.problems().empty());
  BOOST_TEST(t.literal().at("shell").as_string() ==
             "echo '${{ deps.x.value }}' $${{ matrix.target }}");
}

BOOST_AUTO_TEST_CASE(an_escape_and_an_expression_share_a_string) {
  build_scope b{R"({"v": "1.2"})"};
  BOOST_TEST(evaluated("$${{ deps.build.value.v }} is ${{ deps.build.value.v }}", b.scope) ==
             "${{ deps.build.value.v }} is 1.2");
}

BOOST_AUTO_TEST_CASE(each_value_type_becomes_its_text) {
  build_scope b{R"({"s": "a \"b\" c", "i": 42, "neg": -7, "d": 1.5, "t": true, "f": false,
                    "n": null, "o": {"k": [1, "x"]}, "a": [1, 2], "big": 1e300})"};
  BOOST_TEST(evaluated("${{ deps.build.value.s }}", b.scope) == "a \"b\" c");  // no quotes
  BOOST_TEST(evaluated("${{ deps.build.value.i }}", b.scope) == "42");
  BOOST_TEST(evaluated("${{ deps.build.value.neg }}", b.scope) == "-7");
  BOOST_TEST(evaluated("${{ deps.build.value.d }}", b.scope) == "1.5");
  BOOST_TEST(evaluated("${{ deps.build.value.big }}", b.scope) == "1e+300");
  BOOST_TEST(evaluated("${{ deps.build.value.t }}", b.scope) == "true");
  BOOST_TEST(evaluated("${{ deps.build.value.f }}", b.scope) == "false");
  BOOST_TEST(evaluated("${{ deps.build.value.n }}", b.scope) == "null");
  BOOST_TEST(evaluated("${{ deps.build.value.o }}", b.scope) == R"({"k":[1,"x"]})");
  BOOST_TEST(evaluated("${{ deps.build.value.a }}", b.scope) == "[1,2]");
  BOOST_TEST(evaluated("${{ deps.build.value.o.k[1] }}", b.scope) == "x");
  BOOST_TEST(evaluated("v${{ deps.build.value.i }}-${{ deps.build.value.d }}.tar", b.scope) ==
             "v42-1.5.tar");
}

BOOST_AUTO_TEST_CASE(whole_values_and_statuses) {
  build_scope text{R"("plain")"};
  BOOST_TEST(evaluated("${{ deps.build.value }}", text.scope) == "plain");
  BOOST_TEST(evaluated("${{ deps.build.status }}", text.scope) == "succeeded");
  build_scope nothing{"null"};
  BOOST_TEST(evaluated("${{ deps.build.value }}", nothing.scope) == "null");
  // Reused from the journal or the cache: succeeded, as a remote worker is told.
  build_scope cached{"7", module_status::cached};
  BOOST_TEST(evaluated("${{ deps.build.status }}/${{ deps.build.value }}", cached.scope) ==
             "succeeded/7");
  build_scope failed{"null", module_status::failed};
  BOOST_TEST(evaluated("${{ deps.build.status }}", failed.scope) == "failed");
}

BOOST_AUTO_TEST_CASE(whitespace_inside_the_braces_is_allowed) {
  build_scope b{R"({"v": "x"})"};
  BOOST_TEST(evaluated("${{deps.build.value.v}}", b.scope) == "x");
  BOOST_TEST(evaluated("${{   deps.build.value.v\t}}", b.scope) == "x");
  BOOST_TEST(evaluated("${{\n deps.build.value.v \n}}", b.scope) == "x");
}

BOOST_AUTO_TEST_CASE(quoted_ids_and_keys_take_any_character) {
  json::value value = json::parse(R"({"a key": {"it's": ["zero", "one"]}, "x.y": 1, "}}": 2})");
  expression_scope scope;
  scope.deps.push_back({"build[os=linux,cc=gcc]", module_status::succeeded, &value});
  BOOST_TEST(evaluated("${{ deps['build[os=linux,cc=gcc]'].value['a key']['it''s'][1] }}", scope) ==
             "one");
  BOOST_TEST(evaluated("${{ deps['build[os=linux,cc=gcc]'].value['x.y'] }}", scope) == "1");
  // Braces inside quotes do not close the expression.
  BOOST_TEST(evaluated("${{ deps['build[os=linux,cc=gcc]'].value['}}'] }}", scope) == "2");
  BOOST_TEST(evaluated("${{ deps['build[os=linux,cc=gcc]'].status }}", scope) == "succeeded");
}

BOOST_AUTO_TEST_CASE(dotted_names_may_have_digits_dashes_and_underscores) {
  json::value value = json::parse(R"({"out-1_b": "ok"})");
  expression_scope scope;
  scope.deps.push_back({"lint-2_x", module_status::succeeded, &value});
  BOOST_TEST(evaluated("${{ deps.lint-2_x.value.out-1_b }}", scope) == "ok");
}

BOOST_AUTO_TEST_CASE(matrix_target_and_axes) {
  const drover::matrix_instance instance{"os=linux,cc=gcc", {{"os", "linux"}, {"cc", "gcc"}}};
  expression_scope scope;
  scope.matrix = &instance;
  BOOST_TEST(evaluated("${{ matrix.target }}", scope) == "os=linux,cc=gcc");
  BOOST_TEST(evaluated("${{ matrix.os }}-${{ matrix['cc'] }}", scope) == "linux-gcc");
  const drover::matrix_instance list_form{"linux", {{"", "linux"}}};
  scope.matrix = &list_form;
  BOOST_TEST(evaluated("build-${{ matrix.target }}", scope) == "build-linux");
  // matrix.target is always the target; an axis called "target" is read with brackets.
  const drover::matrix_instance target_axis{"target=arm", {{"target", "arm"}}};
  scope.matrix = &target_axis;
  BOOST_TEST(evaluated("${{ matrix.target }}|${{ matrix['target'] }}", scope) == "target=arm|arm");
}

BOOST_AUTO_TEST_CASE(every_string_in_params_is_a_template_but_no_key_is) {
  build_scope b{R"({"v": "9"})"};
  const auto params = json::parse(R"({
    "argv": ["echo", "${{ deps.build.value.v }}"],
    "env": {"V": "${{ deps.build.value.v }}", "${{ deps.build.value.v }}": "key stays"},
    "deep": [{"x": ["${{ deps.build.value.v }}"]}],
    "n": 1, "b": true, "z": null})");
  const params_template t{params};
  BOOST_TEST(t.has_expressions());
  const auto out = t.evaluate(b.scope);
  BOOST_TEST(json::serialize(out) ==
             R"({"argv":["echo","9"],"env":{"V":"9","${{ deps.build.value.v }}":"key stays"},)"
             R"("deep":[{"x":["9"]}],"n":1,"b":true,"z":null})");
  // What a kind checks before anything runs: each expression's text in its place.
  BOOST_TEST(t.literal() == params);
}

BOOST_AUTO_TEST_CASE(malformed_expressions_are_problems_with_their_field) {
  struct bad {
    std::string_view text;
    std::string_view expression;
    std::string_view detail;
  };
  const std::vector<bad> cases{
      {"${{ }}", "${{ }}", "the expression is empty"},
      {"${{ deps }}", "${{ deps }}", "expected the id of a dependency"},
      {"${{ deps.a }}", "${{ deps.a }}", "expected .value or .status after the dependency's id"},
      {"${{ deps.a.valeu }}", "${{ deps.a.valeu }}", "got .valeu"},
      {"${{ deps.a.value. }}", "${{ deps.a.value. }}", "expected a key after ."},
      {"${{ deps.a.value[ }}", "${{ deps.a.value[ }}", "expected an index (a number)"},
      {"${{ deps.a.value[-1] }}", "${{ deps.a.value[-1] }}", "expected an index (a number)"},
      {"${{ deps.a.value[1 }}", "${{ deps.a.value[1 }}", "expected ] after the index 1"},
      {"${{ deps.a.value[99999999999999999999999] }}",
       "${{ deps.a.value[99999999999999999999999] }}", "expected an index"},
      {"${{ deps['a'.value }}", "${{ deps['a'.value }}", "expected ] after the quoted key 'a'"},
      {"${{ deps[a].value }}", "${{ deps[a].value }}", "expected a quoted key after ["},
      {"${{ deps.a.status.x }}", "${{ deps.a.status.x }}", "unexpected '.x' at the end"},
      {"${{ deps.a.value extra }}", "${{ deps.a.value extra }}", "unexpected ' extra'"},
      {"${{ env.HOME }}", "${{ env.HOME }}", "unknown name 'env'"},
      {"${{ matrix }}", "${{ matrix }}", "expected matrix.target or matrix.<axis>"},
      {"${{ deps.a.value", "${{ deps.a.value", "no closing }}"},
      {"x ${{ deps['a }}", "${{ deps['a }}", "no closing }}"},
      {"${{ deps.a.value }", "${{ deps.a.value }", "no closing }}"},
  };
  for (const auto& c : cases) {
    const auto problem = malformed(c.text);
    BOOST_TEST(problem.expression == c.expression, c.text);
    BOOST_TEST(problem.detail.find(c.detail) != std::string::npos,
               c.text << " -> " << problem.detail);
    BOOST_TEST(drover::modules::field_text(problem.field) == "params.s");
  }
  const auto problem = malformed("${{ deps.a.valeu }}");
  BOOST_TEST(drover::modules::describe(problem) ==
             "${{ deps.a.valeu }}: not a valid expression: expected .value or .status after the "
             "dependency's id, got .valeu");
}

BOOST_AUTO_TEST_CASE(every_malformed_expression_is_found_and_the_rest_still_parse) {
  const auto params = json::parse(R"({"argv": ["${{ deps.a.value }}", "${{ nope }}",
                                                "${{ x }} ${{ deps.b.value }} ${{ y"]})");
  const params_template t{params};
  BOOST_TEST_REQUIRE(t.problems().size() == 3u);
  BOOST_TEST(drover::modules::field_text(t.problems()[0].field) == "params.argv[1]");
  BOOST_TEST(t.problems()[1].expression == "${{ x }}");
  BOOST_TEST(drover::modules::field_text(t.problems()[2].field) == "params.argv[2]");
  BOOST_TEST(t.problems()[2].expression == "${{ y");
  BOOST_TEST(t.has_expressions());
}

BOOST_AUTO_TEST_CASE(a_missing_key_names_the_field_the_expression_and_the_key) {
  build_scope b{R"({"name": "app", "files": ["a", "b"], "meta": {"tag": "v1"}})"};
  const auto params =
      json::parse(R"({"argv": ["tar", "-czf", "${{ deps.build.value.version }}"]})");
  BOOST_TEST(evaluation_failure(params, b.scope) ==
             "params.argv[2]: ${{ deps.build.value.version }}: 'build' has no key 'version' in "
             "its value");
  auto fails = [&](std::string_view string) {
    return evaluation_failure(params_with(string), b.scope);
  };
  BOOST_TEST(fails("${{ deps.build.value.meta.sha }}") ==
             "params.s: ${{ deps.build.value.meta.sha }}: 'build' has no key 'sha' in value.meta");
  BOOST_TEST(fails("${{ deps.build.value.files[2] }}") ==
             "params.s: ${{ deps.build.value.files[2] }}: 'build' has no item [2] in value.files "
             "(it has 2)");
  BOOST_TEST(fails("${{ deps.build.value.files.first }}") ==
             "params.s: ${{ deps.build.value.files.first }}: 'build' has no key 'first' in "
             "value.files (an array, not an object)");
  BOOST_TEST(fails("${{ deps.build.value.name[0] }}") ==
             "params.s: ${{ deps.build.value.name[0] }}: 'build' has no item [0] in value.name "
             "(a string, not an array)");
  build_scope nothing{"null"};
  BOOST_TEST(evaluation_failure(params_with("${{ deps.build.value.v }}"), nothing.scope) ==
             "params.s: ${{ deps.build.value.v }}: 'build' has no key 'v' in its value (null, not "
             "an object)");
}

BOOST_AUTO_TEST_CASE(a_dependency_that_did_not_succeed_has_no_value) {
  for (auto status : {module_status::failed, module_status::skipped, module_status::timed_out,
                      module_status::cancelled, module_status::ignored_failure}) {
    build_scope b{"null", status};
    BOOST_TEST(evaluation_failure(params_with("${{ deps.build.value }}"), b.scope) ==
               "params.s: ${{ deps.build.value }}: 'build' has no value: it ended " +
                   std::string(to_string(status)));
    BOOST_TEST(evaluated("${{ deps.build.status }}", b.scope) == to_string(status));
  }
}

BOOST_AUTO_TEST_CASE(references_outside_the_scope_fail_evaluation) {
  build_scope b{"1"};
  BOOST_TEST(evaluation_failure(params_with("${{ deps.lint.value }}"), b.scope) ==
             "params.s: ${{ deps.lint.value }}: 'lint' is not one of the module's dependencies");
  BOOST_TEST(evaluation_failure(params_with("${{ matrix.target }}"), b.scope) ==
             "params.s: ${{ matrix.target }}: the module is not a matrix instance");
  const drover::matrix_instance instance{"linux", {{"", "linux"}}};
  b.scope.matrix = &instance;
  BOOST_TEST(evaluation_failure(params_with("${{ matrix.os }}"), b.scope) ==
             "params.s: ${{ matrix.os }}: the instance [linux] has no value on axis 'os'");
}

BOOST_AUTO_TEST_CASE(check_reports_references_the_module_cannot_make) {
  const auto params = json::parse(R"({"argv": ["${{ deps.build.value }}", "${{ deps.lint.status }}",
    "${{ matrix.target }}", "${{ matrix.os }}", "${{ deps['pkg[linux]'].value }}"]})");
  const params_template t{params};
  expression_names names;
  names.deps = {"build"};
  auto problems = t.check(names);
  BOOST_TEST_REQUIRE(problems.size() == 4u);
  BOOST_TEST(problems[0].fault == expression_fault::not_a_dependency);
  BOOST_TEST(problems[0].detail == "lint");
  BOOST_TEST(drover::modules::field_text(problems[0].field) == "params.argv[1]");
  BOOST_TEST(problems[1].fault == expression_fault::no_matrix);
  BOOST_TEST(problems[2].fault == expression_fault::no_matrix);
  BOOST_TEST(problems[3].fault == expression_fault::not_a_dependency);
  BOOST_TEST(drover::modules::describe(problems[0]) ==
             "${{ deps.lint.status }}: 'lint' is not one of the module's dependencies (a module "
             "reads only the values of its deps)");
  BOOST_TEST(drover::modules::describe(problems[1]) ==
             "${{ matrix.target }}: the module has no matrix");

  names.deps = {"build", "lint", "pkg[linux]"};
  names.matrix = true;
  names.axes = {"os"};
  BOOST_TEST(t.check(names).empty());
  names.axes = {"cpu"};
  problems = t.check(names);
  BOOST_TEST_REQUIRE(problems.size() == 1u);
  BOOST_TEST(drover::modules::describe(problems[0]) ==
             "${{ matrix.os }}: the module's matrix has no axis 'os'");
  // Before expansion, a dependency on a matrix module stands for its instances.
  names = {};
  names.deps = {"build", "lint", "pkg"};
  names.matrix_deps = {"pkg"};
  names.matrix = true;
  names.axes = {"os"};
  BOOST_TEST(t.check(names).empty());
}

BOOST_AUTO_TEST_CASE(check_expressions_covers_a_pipeline_before_and_after_expansion) {
  drover::pipeline p;
  drover::module_spec build;
  build.id = "build";
  build.kind = "exec";
  drover::matrix_spec matrix;
  matrix.axes = {{"os", {"linux", "mac"}}};
  matrix.include = {{{"os", "linux"}, {"cc", "gcc"}}};
  build.matrix = matrix;
  build.params =
      json::parse(R"({"argv": ["${{ matrix.os }}", "${{ matrix.cc }}", "${{ matrix.cpu }}"]})");
  p.add(build);
  drover::module_spec test;
  test.id = "test";
  test.kind = "exec";
  test.deps = {"build"};
  test.params = json::parse(
      R"({"argv": ["${{ deps['build[os=linux]'].value }}", "${{ deps.build.value }}", "${{ deps.x.value }}", "${{ bad"]})");
  p.add(test);
  drover::module_spec plain;
  plain.id = "body";  // a C++ body: its params are not templates
  plain.params = json::parse(R"({"x": "${{ deps.x.value }}"})");
  p.add(plain);

  const auto problems = drover::modules::check_expressions(p);
  std::vector<std::string> seen;
  for (const auto& problem : problems)
    seen.push_back(problem.module + " " + drover::modules::field_text(problem.field) + " " +
                   problem.expression);
  BOOST_TEST(seen == (std::vector<std::string>{"build params.argv[2] ${{ matrix.cpu }}",
                                               "test params.argv[3] ${{ bad",
                                               "test params.argv[2] ${{ deps.x.value }}"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(names_of_a_module_reads_its_deps_and_matrix) {
  drover::module_spec spec;
  spec.deps = {"a", "b"};
  auto names = drover::modules::names_of(spec);
  BOOST_TEST(names.deps == spec.deps);
  BOOST_TEST(!names.matrix);
  spec.instance = drover::matrix_instance{"os=linux", {{"os", "linux"}}};
  names = drover::modules::names_of(spec);
  BOOST_TEST(names.matrix);
  BOOST_TEST(names.axes == std::vector<std::string>{"os"});
  spec.instance = drover::matrix_instance{"linux", {{"", "linux"}}};
  names = drover::modules::names_of(spec);
  BOOST_TEST(names.matrix);
  BOOST_TEST(names.axes.empty());
}

BOOST_AUTO_TEST_CASE(the_dependency_document_lists_every_dependency) {
  const json::value version = json::parse(R"({"version": "1.2"})");
  expression_scope scope;
  scope.deps.push_back({"build", module_status::succeeded, &version});
  scope.deps.push_back({"cache[x]", module_status::cached, &version});
  scope.deps.push_back({"lint", module_status::failed, nullptr});
  BOOST_TEST(json::serialize(drover::modules::dependency_document(scope)) ==
             R"({"build":{"status":"succeeded","value":{"version":"1.2"}},)"
             R"("cache[x]":{"status":"succeeded","value":{"version":"1.2"}},)"
             R"("lint":{"status":"failed","value":null}})");
  BOOST_TEST(json::serialize(drover::modules::dependency_document({})) == "{}");
}

BOOST_AUTO_TEST_CASE(field_text_writes_fields_as_users_do) {
  using drover::modules::field_text;
  BOOST_TEST(field_text({}) == "params");
  BOOST_TEST(field_text({std::string("argv"), std::size_t{2}}) == "params.argv[2]");
  BOOST_TEST(field_text({std::string("env"), std::string("TOKEN")}) == "params.env.TOKEN");
  BOOST_TEST(field_text({std::string("env"), std::string("a.b")}) == "params.env['a.b']");
  BOOST_TEST(field_text({std::string("files"), std::size_t{0}}, "value") == "value.files[0]");
}

BOOST_AUTO_TEST_SUITE_END()
