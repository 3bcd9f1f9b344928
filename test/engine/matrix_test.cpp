#include <drover/graph.hpp>

#define BOOST_TEST_MODULE matrix
#include "test_support.hpp"

#include <boost/json/array.hpp>
#include <boost/json/string.hpp>

#include <initializer_list>
#include <map>

namespace {

using namespace drover::test;
using drover::matrix_axis;
using drover::matrix_combination;
using drover::validation_problem;

asio::awaitable<json::value> return_matrix_target(drover::module_context& ctx) {
  co_return json::value(json::string(ctx.matrix_target()));
}

/// Returns the values of its dependencies, in the order of its deps.
asio::awaitable<json::value> collect_dependencies(drover::module_context& ctx) {
  json::array values;
  for (const std::string_view dep : ctx.spec().deps())
    values.push_back(ctx.result(dep));
  co_return values;
}

/// A body with an identity a test can check after copies: a plain function.
asio::awaitable<json::value> marker_body(drover::module_context&) {
  co_return json::value("marker");
}
using marker_body_type = asio::awaitable<json::value> (*)(drover::module_context&);

/// Adds `id` with the list form `matrix: [values...]`.
drover::module_ref add_list(drover::pipeline& p, std::string id, std::vector<std::string> values,
                            std::vector<std::string> deps = {}) {
  auto m = p.add(std::move(id), value_body(), std::move(deps));
  m.matrix().axes.push_back({"", std::move(values)});
  return m;
}

/// Adds `id` with named axes.
drover::module_ref add_axes(drover::pipeline& p, std::string id, std::vector<matrix_axis> axes,
                            std::vector<std::string> deps = {}) {
  auto m = p.add(std::move(id), value_body(), std::move(deps));
  m.matrix().axes = std::move(axes);
  return m;
}

std::vector<std::string> ids_of(const drover::pipeline& p) {
  std::vector<std::string> ids;
  for (const auto& m : p.specs())
    ids.push_back(m.id);
  return ids;
}

drover::module_spec module_of(const drover::pipeline& p, std::string_view id) {
  for (auto& m : p.specs()) {
    if (m.id == id) return m;
  }
  BOOST_FAIL("no module " << id);
  throw std::logic_error("unreachable");
}

std::vector<std::string> capabilities_of(const drover::module_spec& m) {
  return m.constraints ? m.constraints->required_capabilities : std::vector<std::string>{};
}

/// "k=v,k=v"; the list form's pair prints as "=v".
std::string text_of(const matrix_combination& values) {
  std::string out;
  for (const auto& [name, value] : values) {
    if (!out.empty()) out += ',';
    out += name + "=" + value;
  }
  return out;
}

std::string describe(const std::vector<validation_problem>& problems) {
  return drover::format_problems(problems);
}

void expand_ok(drover::pipeline& p) {
  auto problems = drover::expand_matrix(p);
  BOOST_REQUIRE_MESSAGE(problems.empty(), describe(problems));
}

std::vector<validation_problem> problems_of(drover::pipeline& p) {
  auto problems = drover::expand_matrix(p);
  BOOST_TEST(!problems.empty());
  return problems;
}

/// True when some problem is about `module`, in `field`, and its message names the module in
/// single quotes and mentions `needle`.
bool has_problem(const std::vector<validation_problem>& problems, std::string_view module,
                 std::string_view field, std::string_view needle = {}) {
  const std::string quoted = "'" + std::string{module} + "'";
  return std::any_of(problems.begin(), problems.end(), [&](const validation_problem& p) {
    return p.module == module && p.field == field && mentions(p.message, quoted) &&
           mentions(p.message, needle);
  });
}

/// The one problem of a pipeline with one bad matrix module `id`.
void expect_single_problem(drover::pipeline& p, std::string_view id, std::string_view field,
                           std::string_view needle = {}) {
  auto problems = problems_of(p);
  BOOST_TEST(problems.size() == 1u, describe(problems));
  BOOST_TEST(has_problem(problems, id, field, needle), describe(problems));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(matrix)

BOOST_AUTO_TEST_CASE(list_form_makes_one_instance_per_value) {
  drover::pipeline p;
  add_list(p, "build", {"linux", "windows"});
  expand_ok(p);
  BOOST_TEST(ids_of(p) == (std::vector<std::string>{"build[linux]", "build[windows]"}));
  const auto& linux_build = module_of(p, "build[linux]");
  BOOST_REQUIRE(linux_build.instance);
  BOOST_TEST(linux_build.instance->target == "linux");
  BOOST_TEST(text_of(linux_build.instance->values) == "=linux");
  BOOST_TEST(!linux_build.matrix);
}

BOOST_AUTO_TEST_CASE(list_form_requires_its_value_as_a_capability) {
  drover::pipeline p;
  add_list(p, "build", {"linux", "windows"});
  expand_ok(p);
  BOOST_TEST(capabilities_of(module_of(p, "build[linux]")) == (std::vector<std::string>{"linux"}));
  BOOST_TEST(capabilities_of(module_of(p, "build[windows]")) ==
             (std::vector<std::string>{"windows"}));
}

BOOST_AUTO_TEST_CASE(capability_is_not_added_twice_whatever_its_case) {
  drover::pipeline p;
  add_list(p, "build", {"linux", "windows"}).constraints().required_capabilities = {"Linux",
                                                                                    "docker"};
  expand_ok(p);
  BOOST_TEST(capabilities_of(module_of(p, "build[linux]")) ==
             (std::vector<std::string>{"Linux", "docker"}));
  BOOST_TEST(capabilities_of(module_of(p, "build[windows]")) ==
             (std::vector<std::string>{"Linux", "docker", "windows"}));
}

BOOST_AUTO_TEST_CASE(named_axes_make_the_cross_product_first_axis_slowest) {
  drover::pipeline p;
  add_axes(p, "build", {{"os", {"linux", "windows"}}, {"cc", {"gcc", "clang", "msvc"}}});
  expand_ok(p);
  BOOST_TEST(ids_of(p) ==
             (std::vector<std::string>{"build[os=linux,cc=gcc]", "build[os=linux,cc=clang]",
                                       "build[os=linux,cc=msvc]", "build[os=windows,cc=gcc]",
                                       "build[os=windows,cc=clang]", "build[os=windows,cc=msvc]"}));
  const auto& instance = module_of(p, "build[os=windows,cc=clang]");
  BOOST_REQUIRE(instance.instance);
  BOOST_TEST(instance.instance->target == "os=windows,cc=clang");
  BOOST_TEST(text_of(instance.instance->values) == "os=windows,cc=clang");
  // Named axes require nothing unless requires_axes says so.
  BOOST_TEST(!instance.constraints);
}

BOOST_AUTO_TEST_CASE(instances_replace_the_module_at_its_position) {
  drover::pipeline p;
  p.add("first", value_body());
  add_list(p, "build", {"a", "b"});
  p.add("middle", value_body());
  add_list(p, "test", {"x", "y", "z"});
  p.add("last", value_body());
  expand_ok(p);
  BOOST_TEST(ids_of(p) == (std::vector<std::string>{"first", "build[a]", "build[b]", "middle",
                                                    "test[x]", "test[y]", "test[z]", "last"}));
}

BOOST_AUTO_TEST_CASE(exclude_removes_every_combination_that_has_all_its_values) {
  drover::pipeline p;
  auto m = add_axes(p, "build", {{"os", {"linux", "windows", "macos"}}, {"cc", {"gcc", "clang"}}});
  m.matrix().exclude = {{{"os", "windows"}}, {{"os", "macos"}, {"cc", "gcc"}}};
  expand_ok(p);
  BOOST_TEST(ids_of(p) ==
             (std::vector<std::string>{"build[os=linux,cc=gcc]", "build[os=linux,cc=clang]",
                                       "build[os=macos,cc=clang]"}));
}

BOOST_AUTO_TEST_CASE(exclude_works_on_the_list_form) {
  drover::pipeline p;
  add_list(p, "build", {"linux", "windows", "macos"}).matrix().exclude = {{{"", "windows"}}};
  expand_ok(p);
  BOOST_TEST(ids_of(p) == (std::vector<std::string>{"build[linux]", "build[macos]"}));
}

BOOST_AUTO_TEST_CASE(include_extends_every_combination_it_does_not_contradict) {
  drover::pipeline p;
  auto m = add_axes(p, "build", {{"os", {"linux", "windows"}}, {"arch", {"x64", "arm"}}});
  m.matrix().include = {{{"os", "linux"}, {"cc", "gcc"}}};
  expand_ok(p);
  BOOST_TEST(ids_of(p) == (std::vector<std::string>{
                              "build[os=linux,arch=x64,cc=gcc]", "build[os=linux,arch=arm,cc=gcc]",
                              "build[os=windows,arch=x64]", "build[os=windows,arch=arm]"}));
  BOOST_TEST(text_of(module_of(p, "build[os=linux,arch=arm,cc=gcc]").instance->values) ==
             "os=linux,arch=arm,cc=gcc");
}

BOOST_AUTO_TEST_CASE(include_that_fits_no_combination_becomes_one) {
  drover::pipeline p;
  auto m = add_axes(p, "build", {{"os", {"linux", "windows"}}, {"arch", {"x64"}}});
  m.matrix().include = {{{"os", "macos"}}};
  expand_ok(p);
  BOOST_TEST(ids_of(p) ==
             (std::vector<std::string>{"build[os=linux,arch=x64]", "build[os=windows,arch=x64]",
                                       "build[os=macos]"}));
  const auto& macos = module_of(p, "build[os=macos]");
  BOOST_TEST(macos.instance->target == "os=macos");
  BOOST_TEST(text_of(macos.instance->values) == "os=macos");
}

BOOST_AUTO_TEST_CASE(include_never_changes_an_original_axis_value) {
  drover::pipeline p;
  auto m = add_axes(p, "build", {{"os", {"linux"}}, {"cc", {"gcc"}}});
  m.matrix().include = {{{"os", "linux"}, {"cc", "clang"}}};
  expand_ok(p);
  BOOST_TEST(ids_of(p) ==
             (std::vector<std::string>{"build[os=linux,cc=gcc]", "build[os=linux,cc=clang]"}));
}

// The example of GitHub's documentation for jobs.<id>.strategy.matrix.include: added values
// can be overwritten, original values cannot, and a combination that include made is not
// extended by later entries.
BOOST_AUTO_TEST_CASE(include_follows_github_actions) {
  drover::pipeline p;
  auto m = add_axes(p, "job", {{"fruit", {"apple", "pear"}}, {"animal", {"cat", "dog"}}});
  m.matrix().include = {{{"color", "green"}},
                        {{"color", "pink"}, {"animal", "cat"}},
                        {{"fruit", "apple"}, {"shape", "circle"}},
                        {{"fruit", "banana"}},
                        {{"fruit", "banana"}, {"animal", "cat"}}};
  expand_ok(p);
  BOOST_TEST(ids_of(p) == (std::vector<std::string>{
                              "job[fruit=apple,animal=cat,color=pink,shape=circle]",
                              "job[fruit=apple,animal=dog,color=green,shape=circle]",
                              "job[fruit=pear,animal=cat,color=pink]",
                              "job[fruit=pear,animal=dog,color=green]",
                              "job[fruit=banana]",
                              "job[fruit=banana,animal=cat]",
                          }));
}

BOOST_AUTO_TEST_CASE(ids_list_added_keys_in_order_of_first_appearance) {
  drover::pipeline p;
  auto m = add_axes(p, "build", {{"os", {"linux", "windows"}}});
  // "b" appears before "a"; the second entry sets them the other way round.
  m.matrix().include = {{{"os", "linux"}, {"b", "1"}}, {{"a", "2"}, {"b", "3"}}};
  expand_ok(p);
  BOOST_TEST(ids_of(p) ==
             (std::vector<std::string>{"build[os=linux,b=3,a=2]", "build[os=windows,b=3,a=2]"}));
}

BOOST_AUTO_TEST_CASE(list_form_include_adds_a_target_and_its_capability) {
  drover::pipeline p;
  auto m = add_list(p, "build", {"linux", "windows"});
  m.matrix().include = {{{"", "linux"}, {"arch", "arm"}}, {{"", "macos"}}};
  expand_ok(p);
  BOOST_TEST(ids_of(p) ==
             (std::vector<std::string>{"build[linux,arch=arm]", "build[windows]", "build[macos]"}));
  const auto& arm = module_of(p, "build[linux,arch=arm]");
  BOOST_TEST(arm.instance->target == "linux,arch=arm");
  BOOST_TEST(text_of(arm.instance->values) == "=linux,arch=arm");
  BOOST_TEST(capabilities_of(arm) == (std::vector<std::string>{"linux"}));
  BOOST_TEST(capabilities_of(module_of(p, "build[macos]")) == (std::vector<std::string>{"macos"}));
}

BOOST_AUTO_TEST_CASE(requires_axes_picks_the_capabilities) {
  drover::pipeline p;
  auto one = add_axes(p, "one", {{"os", {"linux"}}, {"gpu", {"cuda"}}});
  one.matrix().requires_axes = std::vector<std::string>{"os"};
  auto both = add_axes(p, "both", {{"os", {"linux"}}, {"gpu", {"cuda"}}});
  both.matrix().requires_axes = std::vector<std::string>{"gpu", "os"};
  auto none = add_list(p, "none", {"linux"});
  none.matrix().requires_axes = std::vector<std::string>{};
  expand_ok(p);
  BOOST_TEST(capabilities_of(module_of(p, "one[os=linux,gpu=cuda]")) ==
             (std::vector<std::string>{"linux"}));
  BOOST_TEST(capabilities_of(module_of(p, "both[os=linux,gpu=cuda]")) ==
             (std::vector<std::string>{"cuda", "linux"}));
  BOOST_TEST(capabilities_of(module_of(p, "none[linux]")).empty());
}

BOOST_AUTO_TEST_CASE(a_dependency_on_the_module_means_every_instance) {
  drover::pipeline p;
  add_list(p, "build", {"linux", "windows"});
  p.add("test", value_body(), {"build"});
  p.add("deploy", value_body(), {"build[linux]"});
  p.add("report", value_body(), {"build[windows]", "build", "test", "build"});
  expand_ok(p);
  BOOST_TEST(module_of(p, "test").deps ==
             (std::vector<std::string>{"build[linux]", "build[windows]"}));
  BOOST_TEST(module_of(p, "deploy").deps == (std::vector<std::string>{"build[linux]"}));
  BOOST_TEST(module_of(p, "report").deps ==
             (std::vector<std::string>{"build[windows]", "build[linux]", "test"}));
  BOOST_TEST(drover::build_graph(p).ok());
}

BOOST_AUTO_TEST_CASE(deps_that_name_no_matrix_module_are_left_alone) {
  drover::pipeline p;
  add_list(p, "build", {"linux"});
  p.add("a", value_body());
  p.add("b", value_body(), {"a", "a"});
  expand_ok(p);
  BOOST_TEST(module_of(p, "b").deps == (std::vector<std::string>{"a", "a"}));
}

BOOST_AUTO_TEST_CASE(a_matrix_module_may_depend_on_another) {
  drover::pipeline p;
  add_list(p, "build", {"linux", "windows"});
  add_list(p, "test", {"unit", "e2e"}, {"build"});
  add_list(p, "package", {"deb"}, {"build[linux]", "test"});
  expand_ok(p);
  for (const char* id : {"test[unit]", "test[e2e]"}) {
    BOOST_TEST(module_of(p, id).deps ==
               (std::vector<std::string>{"build[linux]", "build[windows]"}));
  }
  BOOST_TEST(module_of(p, "package[deb]").deps ==
             (std::vector<std::string>{"build[linux]", "test[unit]", "test[e2e]"}));
  BOOST_TEST(drover::build_graph(p).ok());
}

BOOST_AUTO_TEST_CASE(a_matrix_depending_on_itself_is_left_to_validation) {
  drover::pipeline p;
  add_list(p, "loop", {"a", "b"}, {"loop"});
  expand_ok(p);
  BOOST_TEST(module_of(p, "loop[a]").deps == (std::vector<std::string>{"loop[a]", "loop[b]"}));
  BOOST_TEST(!drover::build_graph(p).ok());
}

BOOST_AUTO_TEST_CASE(instances_copy_the_rest_of_the_module) {
  drover::pipeline p;
  p.add("setup", value_body());
  auto m = p.add("build", marker_body, {"setup"});
  m.kind("exec", json::object{{"cmd", "make"}});
  m.retries(3);
  m.timeout(5s);
  m.tags({"slow"});
  m.priority(7);
  m.always_run(true);
  m.constraints().pool = "cpu";
  m.matrix().axes = {{"os", {"linux", "windows"}}};
  expand_ok(p);
  for (const char* id : {"build[os=linux]", "build[os=windows]"}) {
    BOOST_TEST_CONTEXT(id) {
      const auto& instance = module_of(p, id);
      const auto* body = instance.body.target<marker_body_type>();
      BOOST_REQUIRE(body != nullptr);
      BOOST_TEST((*body == &marker_body));
      BOOST_TEST(instance.kind == "exec");
      BOOST_TEST(instance.params == (json::value(json::object{{"cmd", "make"}})));
      BOOST_TEST(instance.deps == (std::vector<std::string>{"setup"}));
      BOOST_TEST((instance.retries == 3));
      BOOST_TEST((instance.timeout == std::optional<milliseconds>{5s}));
      BOOST_TEST(instance.tags == (std::vector<std::string>{"slow"}));
      BOOST_TEST(instance.priority == 7);
      BOOST_TEST(instance.always_run);
      BOOST_REQUIRE(instance.constraints);
      BOOST_TEST(instance.constraints->pool == "cpu");
      BOOST_TEST(!instance.matrix);
    }
  }
  BOOST_TEST(module_of(p, "build[os=windows]").instance->target == "os=windows");
}

BOOST_AUTO_TEST_CASE(a_pipeline_without_matrix_is_unchanged) {
  drover::pipeline p;
  p.add("a", value_body());
  p.add("b", value_body(), {"a", "a", "ghost"});
  p.add("b", value_body());  // invalid, but not expand_matrix's to report
  expand_ok(p);
  BOOST_TEST(ids_of(p) == (std::vector<std::string>{"a", "b", "b"}));
  BOOST_TEST(p.spec(1).deps == (std::vector<std::string>{"a", "a", "ghost"}));
}

BOOST_AUTO_TEST_CASE(an_expanded_pipeline_expands_to_itself) {
  drover::pipeline p;
  add_list(p, "build", {"linux", "windows"});
  p.add("test", value_body(), {"build"});
  expand_ok(p);
  const auto ids = ids_of(p);
  expand_ok(p);
  BOOST_TEST(ids_of(p) == ids);
}

BOOST_AUTO_TEST_CASE(expands_the_largest_allowed_matrix) {
  // 2^16 combinations: exactly the limit.
  drover::pipeline p;
  std::vector<matrix_axis> axes;
  for (int i = 0; i < 16; ++i)
    axes.push_back({"a" + std::to_string(i), {"0", "1"}});
  add_axes(p, "big", std::move(axes));
  p.add("after", value_body(), {"big"});
  expand_ok(p);
  BOOST_TEST(p.size() == 65537u);
  BOOST_TEST(p.id(0) ==
             "big[a0=0,a1=0,a2=0,a3=0,a4=0,a5=0,a6=0,a7=0,a8=0,a9=0,a10=0,a11=0,a12=0,a13=0,a14="
             "0,a15=0]");
  BOOST_TEST(p.module(p.size() - 1).deps().size() == 65536u);
}

BOOST_AUTO_TEST_CASE(removes_repeats_from_a_long_dependency_list) {
  drover::pipeline p;
  std::vector<std::string> values;
  for (int i = 0; i < 40; ++i)
    values.push_back("v" + std::to_string(i));
  add_list(p, "build", values);
  p.add("test", value_body(), {"build[v3]", "build", "lint", "build"});
  p.add("lint", value_body());
  expand_ok(p);
  std::vector<std::string> expected{"build[v3]"};
  for (const auto& v : values) {
    if (v != "v3") expected.push_back("build[" + v + "]");
  }
  expected.push_back("lint");
  BOOST_TEST(module_of(p, "test").deps == expected);
}

// Problems.

BOOST_AUTO_TEST_CASE(rejects_a_matrix_on_an_id_with_brackets) {
  drover::pipeline p;
  add_list(p, "build[x]", {"linux"});
  expect_single_problem(p, "build[x]", "id", "'['");
}

BOOST_AUTO_TEST_CASE(rejects_a_matrix_on_an_empty_id) {
  drover::pipeline p;
  p.add("first", value_body());
  add_list(p, "", {"linux"});
  auto problems = problems_of(p);
  BOOST_TEST(problems.size() == 1u, describe(problems));
  BOOST_TEST(problems.front().module == "");
  BOOST_TEST(problems.front().field == "id");
  BOOST_TEST(mentions(problems.front().message, "module #2"), describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_a_matrix_without_axes) {
  drover::pipeline p;
  p.add("build", value_body()).matrix();
  expect_single_problem(p, "build", "matrix.axes", "no axes");
}

BOOST_AUTO_TEST_CASE(rejects_an_axis_without_values) {
  drover::pipeline p;
  add_axes(p, "build", {{"os", {"linux"}}, {"cc", {}}});
  expect_single_problem(p, "build", "matrix.axes", "'cc' has no values");
  drover::pipeline list;
  add_list(list, "test", {});
  expect_single_problem(list, "test", "matrix.axes", "no values");
}

BOOST_AUTO_TEST_CASE(rejects_an_empty_value) {
  drover::pipeline p;
  add_axes(p, "build", {{"os", {"linux", ""}}});
  expect_single_problem(p, "build", "matrix.axes", "empty value");
}

BOOST_AUTO_TEST_CASE(rejects_values_with_characters_of_instance_ids) {
  for (const char* value : {"a[b", "a]b", "a,b", "a=b", "a b"}) {
    BOOST_TEST_CONTEXT(value) {
      drover::pipeline p;
      add_list(p, "build", {"ok", value});
      expect_single_problem(p, "build", "matrix.axes", value);
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_a_value_listed_twice) {
  drover::pipeline p;
  add_list(p, "build", {"linux", "windows", "linux", "linux"});
  expect_single_problem(p, "build", "matrix.axes", "'linux' more than once");
}

BOOST_AUTO_TEST_CASE(rejects_a_repeated_axis_name) {
  drover::pipeline p;
  add_axes(p, "build", {{"os", {"linux"}}, {"cc", {"gcc"}}, {"os", {"windows"}}});
  expect_single_problem(p, "build", "matrix.axes", "'os' is listed more than once");
}

BOOST_AUTO_TEST_CASE(rejects_axis_names_with_characters_of_instance_ids) {
  for (const char* name : {"o[s", "o]s", "o,s", "o=s", "o\ts"}) {
    BOOST_TEST_CONTEXT(name) {
      drover::pipeline p;
      add_axes(p, "build", {{name, {"linux"}}});
      expect_single_problem(p, "build", "matrix.axes", name);
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_the_list_form_mixed_with_named_axes) {
  drover::pipeline p;
  add_axes(p, "build", {{"", {"linux"}}, {"cc", {"gcc"}}});
  expect_single_problem(p, "build", "matrix.axes", "list form");
}

BOOST_AUTO_TEST_CASE(rejects_exclude_naming_an_unknown_axis) {
  drover::pipeline p;
  add_axes(p, "build", {{"os", {"linux", "windows"}}}).matrix().exclude = {{{"arch", "arm"}}};
  expect_single_problem(p, "build", "matrix.exclude", "unknown axis 'arch'");
}

BOOST_AUTO_TEST_CASE(rejects_requires_axes_naming_an_unknown_axis) {
  drover::pipeline p;
  add_list(p, "build", {"linux"}).matrix().requires_axes = std::vector<std::string>{"os"};
  expect_single_problem(p, "build", "matrix.requires_axes", "unknown axis 'os'");
}

BOOST_AUTO_TEST_CASE(rejects_empty_exclude_and_include_entries) {
  drover::pipeline p;
  auto m = add_axes(p, "build", {{"os", {"linux", "windows"}}});
  m.matrix().exclude = {{{"os", "windows"}}, {}};
  m.matrix().include = {{}};
  auto problems = problems_of(p);
  BOOST_TEST(problems.size() == 2u, describe(problems));
  BOOST_TEST(has_problem(problems, "build", "matrix.exclude", "entry #2 is empty"),
             describe(problems));
  BOOST_TEST(has_problem(problems, "build", "matrix.include", "entry #1 is empty"),
             describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_include_entries_that_cannot_form_an_id) {
  drover::pipeline p;
  auto m = add_axes(p, "build", {{"os", {"linux"}}});
  m.matrix().include = {
      {{"os", "linux"}, {"cc", ""}}, {{"a,b", "1"}}, {{"cc", "x=y"}}, {{"", "z"}}};
  auto problems = problems_of(p);
  BOOST_TEST(problems.size() == 4u, describe(problems));
  BOOST_TEST(has_problem(problems, "build", "matrix.include", "empty value"), describe(problems));
  BOOST_TEST(has_problem(problems, "build", "matrix.include", "'a,b'"), describe(problems));
  BOOST_TEST(has_problem(problems, "build", "matrix.include", "'x=y'"), describe(problems));
  BOOST_TEST(has_problem(problems, "build", "matrix.include", "without a name"),
             describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_an_entry_that_gives_a_key_twice) {
  drover::pipeline p;
  auto m = add_axes(p, "build", {{"os", {"linux"}}});
  m.matrix().exclude = {{{"os", "linux"}, {"os", "windows"}}};
  m.matrix().include = {{{"cc", "gcc"}, {"cc", "clang"}}};
  auto problems = problems_of(p);
  BOOST_TEST(problems.size() == 2u, describe(problems));
  BOOST_TEST(has_problem(problems, "build", "matrix.exclude", "'os' more than once"),
             describe(problems));
  BOOST_TEST(has_problem(problems, "build", "matrix.include", "'cc' more than once"),
             describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_a_matrix_that_makes_no_instances) {
  drover::pipeline p;
  add_list(p, "build", {"linux", "windows"}).matrix().exclude = {{{"", "linux"}},
                                                                 {{"", "windows"}}};
  expect_single_problem(p, "build", "matrix", "no instances");
}

BOOST_AUTO_TEST_CASE(an_include_can_fill_a_matrix_that_exclude_emptied) {
  drover::pipeline p;
  auto m = add_list(p, "build", {"linux"});
  m.matrix().exclude = {{{"", "linux"}}};
  m.matrix().include = {{{"", "macos"}}};
  expand_ok(p);
  BOOST_TEST(ids_of(p) == (std::vector<std::string>{"build[macos]"}));
}

BOOST_AUTO_TEST_CASE(rejects_two_instances_with_the_same_id) {
  drover::pipeline p;
  add_axes(p, "build", {{"os", {"linux"}}}).matrix().include = {{{"os", "macos"}},
                                                                {{"os", "macos"}}};
  expect_single_problem(p, "build", "matrix", "'build[os=macos]'");
}

BOOST_AUTO_TEST_CASE(rejects_an_instance_id_that_another_module_has) {
  drover::pipeline p;
  p.add("build[linux]", value_body());
  add_list(p, "build", {"linux", "windows"});
  expect_single_problem(p, "build", "matrix", "'build[linux]'");
}

BOOST_AUTO_TEST_CASE(rejects_a_matrix_module_whose_id_another_module_has) {
  // Once expanded, the id would vanish and a dependency on it would be ambiguous.
  drover::pipeline p;
  p.add("build", value_body());
  add_list(p, "build", {"linux"});
  expect_single_problem(p, "build", "id", "has a matrix");
}

BOOST_AUTO_TEST_CASE(rejects_a_matrix_with_too_many_combinations) {
  drover::pipeline p;
  std::vector<std::string> values;
  for (int i = 0; i < 41; ++i)
    values.push_back("v" + std::to_string(i));
  // 41^3 = 68,921 combinations, above the limit of 65,536.
  add_axes(p, "build", {{"a", values}, {"b", values}, {"c", values}});
  expect_single_problem(p, "build", "matrix", "65536");
  // A product that would overflow 64 bits is caught the same way.
  drover::pipeline huge;
  std::vector<matrix_axis> axes;
  for (int i = 0; i < 20; ++i)
    axes.push_back({"a" + std::to_string(i), values});
  add_axes(huge, "huge", std::move(axes));
  expect_single_problem(huge, "huge", "matrix", "65536");
}

BOOST_AUTO_TEST_CASE(rejects_a_matrix_whose_values_would_not_fit) {
  // 65,536 combinations, each given 100 more keys by one include entry.
  drover::pipeline p;
  std::vector<matrix_axis> axes;
  for (int i = 0; i < 16; ++i)
    axes.push_back({"a" + std::to_string(i), {"0", "1"}});
  auto m = add_axes(p, "wide", std::move(axes));
  matrix_combination wide_entry;
  for (int i = 0; i < 100; ++i)
    wide_entry.emplace_back("k" + std::to_string(i), "v");
  m.matrix().include = {wide_entry};
  expect_single_problem(p, "wide", "matrix", "too large");
}

BOOST_AUTO_TEST_CASE(reports_every_problem_at_once) {
  drover::pipeline p;
  auto first = add_axes(p, "first", {{"os", {"linux", ""}}, {"os", {"windows"}}});
  first.matrix().requires_axes = std::vector<std::string>{"gpu"};
  first.matrix().exclude = {{{"arch", "x64"}}};
  p.add("fine", value_body());
  add_list(p, "second", {"a[b"});
  auto problems = problems_of(p);
  BOOST_TEST(problems.size() == 5u, describe(problems));
  BOOST_TEST(has_problem(problems, "first", "matrix.axes", "empty value"), describe(problems));
  BOOST_TEST(has_problem(problems, "first", "matrix.axes", "more than once"), describe(problems));
  BOOST_TEST(has_problem(problems, "first", "matrix.requires_axes", "'gpu'"), describe(problems));
  BOOST_TEST(has_problem(problems, "first", "matrix.exclude", "'arch'"), describe(problems));
  BOOST_TEST(has_problem(problems, "second", "matrix.axes", "'a[b'"), describe(problems));
}

BOOST_AUTO_TEST_CASE(prepare_reports_matrix_problems) {
  drover::pipeline p;
  add_list(p, "build", {});
  auto prepared = drover::prepare(std::move(p));
  BOOST_TEST(!prepared.ok());
  BOOST_TEST(has_problem(prepared.problems, "build", "matrix.axes"), describe(prepared.problems));
}

BOOST_AUTO_TEST_CASE(runs_every_instance_and_their_dependent, *boost::unit_test::timeout(30)) {
  drover::pipeline p;
  p.name = "matrix";
  p.add("build", return_matrix_target).matrix().axes = {{"", {"alpha", "beta"}}};
  p.add("collect", collect_dependencies, {"build"});
  auto prepared = drover::prepare(std::move(p));
  BOOST_REQUIRE_MESSAGE(prepared.ok(), describe(prepared.problems));

  asio::io_context io;
  drover::engine engine{io.get_executor()};
  drover::run_options options;
  options.workers = 2;
  options.capabilities = {"alpha", "beta"};
  std::optional<drover::run_report> report;
  engine.async_run(std::move(*prepared.plan), options,
                   [&](drover::run_report r) { report = std::move(r); });
  io.run();
  BOOST_REQUIRE(report.has_value());
  BOOST_TEST(report->status == drover::run_status::succeeded, describe(report->problems));
  BOOST_TEST(result_of(*report, "build[alpha]").value == json::value("alpha"));
  BOOST_TEST(result_of(*report, "build[beta]").value == json::value("beta"));
  BOOST_TEST(result_of(*report, "collect").value == (json::value(json::array{"alpha", "beta"})));
}

BOOST_AUTO_TEST_SUITE_END()
