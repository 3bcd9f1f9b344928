// Fuzz target: `${{ }}` interpolation in a module's params (modules/interpolation.hpp). The
// input is the params document when it parses as JSON, and otherwise one string inside
// params. Parsing, checking against the names a module may use, and evaluating against a
// scope must never fail other than by the documented problems and evaluation_error.

#include "fuzz_target.hpp"

#include <drover/constraints.hpp>
#include <drover/modules/interpolation.hpp>

#include <boost/json.hpp>

namespace json = boost::json;
namespace modules = drover::modules;

DROVER_FUZZ_TARGET(interpolation) {
  const std::string_view text = drover::fuzz::as_text(data, size);
  boost::system::error_code ec;
  json::value params = json::parse(text, ec);
  if (ec) params = json::object{{"argv", json::array{json::string(text)}}};

  const modules::params_template parsed{params};
  for (const auto& problem : parsed.problems())
    drover::fuzz::check(!modules::describe(problem).empty(), "a malformed expression is described");
  if (!modules::params_template::has_templates(params))
    drover::fuzz::check(!parsed.has_expressions(), "no template means no expression");

  modules::expression_names names;
  names.deps = {"build", "test", "deploy"};
  names.matrix = true;
  names.axes = {"os"};
  const auto unknown = parsed.check(names);
  for (const auto& problem : unknown)
    drover::fuzz::check(!modules::describe(problem).empty(), "an unknown name is described");
  if (!parsed.problems().empty() || !unknown.empty()) return 0;

  static const json::value build_value = json::parse(R"({"x":[1,"two",{"y":null}],"s":"str"})");
  static const json::value test_value = json::value(42);
  static const drover::matrix_instance instance{"linux", {{"os", "linux"}}};
  modules::expression_scope scope;
  scope.deps = {{"build", drover::module_status::succeeded, &build_value},
                {"test", drover::module_status::cached, &test_value},
                {"deploy", drover::module_status::failed, nullptr}};
  scope.matrix = (size > 0 && (data[0] & 1)) ? &instance : nullptr;
  try {
    const json::value evaluated = parsed.evaluate(scope);
    if (!parsed.has_expressions()) {
      drover::fuzz::check(evaluated == parsed.literal(),
                          "params without expressions evaluate to their literal form");
    }
  } catch (const modules::evaluation_error& e) {
    drover::fuzz::check(*e.what() != '\0', "an evaluation error says what is missing");
  }
  return 0;
}
