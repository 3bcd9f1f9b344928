#pragma once
// Values between modules: `${{ ... }}` expressions in the strings of a module's params, resolved
// when an attempt starts from its dependencies' results and its matrix instance.
//
//     {"id": "package", "kind": "exec", "deps": ["build"],
//      "params": {"argv": ["tar", "-czf", "app-${{ deps.build.value.output.version }}.tar.gz",
//      "."]}}
//
// Expressions:
//   ${{ deps.<id>.value }}              the dependency's value; then any number of `.key`,
//                                       `['key']` and `[n]` steps into it
//   ${{ deps.<id>.status }}             how it ended: succeeded (also when reused from the
//                                       journal or the cache), failed, skipped, ...
//   ${{ matrix.target }}                what is between the brackets of the instance's id
//   ${{ matrix.<axis> }}                the instance's value on that axis
// An id or key that is not letters, digits, '_' and '-' is written `deps['build[linux]']`
// (a quote inside is doubled: 'it''s'). Whitespace may surround the expression inside the
// braces. `$${{` stands for a literal `${{`. Each expression is replaced by its value's text:
// a string's characters, the JSON text of a number, bool or null, the compact JSON of an
// object or array. Every string in params is a template, however deeply nested; object keys
// are not.
//
// The registry (registry.hpp) applies this to every kind: it checks the syntax when it makes a
// body, and the body it returns evaluates the params at each attempt, then hands them to the
// kind's factory. docs/module-kinds.md describes what users see.

#include <drover/constraints.hpp>
#include <drover/modules/registry.hpp>
#include <drover/pipeline.hpp>
#include <drover/status.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace drover {
class module_context;
}

namespace drover::modules {

/// One step into a JSON value: an object's key or an array's index.
using json_step = std::variant<std::string, std::size_t>;
/// Steps from a root: {"argv", 2} is params.argv[2].
using json_path = std::vector<json_step>;

/// `path` as users write a field: `params.argv[2]`, `params.env.TOKEN` (with `root` "params").
std::string field_text(const json_path& path, std::string_view root = "params");

/// One `${{ ... }}` expression, parsed.
struct expression {
  enum class source : std::uint8_t {
    dependency_value,
    dependency_status,
    matrix_target,
    matrix_axis
  };
  source from = source::dependency_value;
  std::string name;  ///< the dependency's id, or the axis
  json_path path;    ///< for dependency_value: the steps into the value
  std::string text;  ///< as written, braces included: "${{ deps.build.value.version }}"
};

/// What is wrong with an expression, found before anything runs.
enum class expression_fault : std::uint8_t {
  malformed,         ///< not valid syntax; `detail` says why
  not_a_dependency,  ///< deps.<id> where id is not one of the module's deps; `detail` is the id
  no_matrix,         ///< matrix.* in a module without a matrix
  unknown_axis,      ///< matrix.<axis> the module's instances do not have; `detail` is the axis
};

/// A problem with one expression in a module's params.
struct expression_problem {
  std::string module;      ///< the module's id (empty where unknown, as in registry::make)
  json_path field;         ///< where in params the string is
  std::string expression;  ///< as written (for a malformed one: from `${{` as far as it goes)
  expression_fault fault = expression_fault::malformed;
  std::string detail;
};

/// The problem as one line, without the module: `params.argv[2]: ${{ deps.x.value }}: 'x' is
/// not one of the module's dependencies`.
std::string describe(const expression_problem& problem);

/// Thrown by registry::make (a params_error of the string's field) for a malformed expression.
class expression_error : public params_error {
 public:
  explicit expression_error(expression_problem problem);
  const expression_problem& problem() const noexcept { return problem_; }

 private:
  expression_problem problem_;
};

/// What a module's expressions may name.
struct expression_names {
  std::vector<std::string> deps;  ///< its dependencies' ids
  /// Modules among `deps` whose matrix is not expanded yet: `deps['build[linux]']` is accepted
  /// for a dependency on the matrix module `build`.
  std::vector<std::string> matrix_deps;
  bool matrix = false;            ///< matrix.target is allowed
  std::vector<std::string> axes;  ///< the axes matrix.<axis> may name
};

/// A dependency as expressions and DROVER_DEPS see it. A view of the run's (or the attempt
/// runner's) record, valid during the attempt; dependency_outcome owns its value instead.
struct dependency_view {
  std::string_view id;
  module_status status = module_status::succeeded;
  const boost::json::value* value = nullptr;  ///< nullptr: null
};

/// What expressions are evaluated against: one attempt's dependencies and matrix instance.
struct expression_scope {
  std::vector<dependency_view> deps;
  const matrix_instance* matrix = nullptr;  ///< nullptr: not a matrix instance
};

/// The scope of the attempt `ctx` runs: every dependency it may read, and its instance.
expression_scope scope_of(const module_context& ctx);

/// A dependency's status as values show it: `cached` (reused from the journal or the cache)
/// is `succeeded`, as the protocol sends it to a remote worker; the rest as to_string names
/// them.
std::string_view shown_status(module_status status) noexcept;

/// The document DROVER_DEPS names: {"<id>": {"status": "<status>", "value": <value>}, ...}
/// with every dependency of `scope`.
boost::json::object dependency_document(const expression_scope& scope);

/// Thrown by params_template::evaluate: the attempt cannot run. The message names the field,
/// the expression and what was missing.
class evaluation_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The params of one module with the expressions of every string parsed.
///
///     modules::params_template t{spec.params};
///     if (!t.problems().empty()) ...                  // malformed expressions
///     for (auto& p : t.check(names)) ...              // references to unknown deps or axes
///     boost::json::value params = t.evaluate(scope);  // at attempt start
class params_template {
 public:
  /// Parses every string of `params`. Never throws for a malformed expression: see problems().
  explicit params_template(const boost::json::value& params);

  /// Whether any string holds an expression (or the escape `$${{`).
  static bool has_templates(const boost::json::value& params);

  /// Whether any string holds an expression: if not, literal() is the params to use.
  bool has_expressions() const noexcept { return expression_count_ > 0; }
  /// The params with `$${{` turned into `${{` and each expression left as written: what the
  /// kind is given to check the params' shape before anything runs.
  const boost::json::value& literal() const noexcept { return literal_; }
  /// Every malformed expression, in the order of the params.
  const std::vector<expression_problem>& problems() const noexcept { return problems_; }

  /// Every well-formed expression that names something `names` does not allow.
  std::vector<expression_problem> check(const expression_names& names) const;

  /// The params with every expression replaced by its value's text. Throws evaluation_error
  /// for the first expression that cannot be evaluated: a dependency not in `scope`, a
  /// dependency that did not succeed, a missing key or index, a step into a value that is not
  /// an object or array, matrix.* outside a matrix instance.
  boost::json::value evaluate(const expression_scope& scope) const;

 private:
  // A piece of a string: literal text, or an expression.
  using part = std::variant<std::string, expression>;
  struct template_string {
    json_path field;
    std::vector<part> parts;
  };

  void collect(const boost::json::value& v, json_path& path);

  boost::json::value literal_;
  std::vector<template_string> strings_;  // only the strings that hold an expression or escape
  std::size_t expression_count_ = 0;
  std::vector<expression_problem> problems_;
};

/// What the expressions of `spec` may name: its deps, and its matrix (its instance's axes, or,
/// before expansion, the matrix's axes and include keys). matrix_deps is left empty.
expression_names names_of(const module_spec& spec);

/// Every problem of the expressions in the params of the modules of `p` that have a kind:
/// malformed ones, and references to what names_of does not allow (a dependency on a module of
/// `p` that still has a matrix accepts its instances' ids). Each names its module.
std::vector<expression_problem> check_expressions(const pipeline& p);

}  // namespace drover::modules
