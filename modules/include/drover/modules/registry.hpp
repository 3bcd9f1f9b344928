#pragma once
// The registry of module kinds: maps a kind name ("exec", "sleep", a user's own) to a factory
// that turns the module's params into a body. The registry also resolves the `${{ ... }}`
// expressions in params (interpolation.hpp) for every kind alike: a local run and `drover
// worker` both make bodies here, so both see the same values.

#include <drover/graph.hpp>
#include <drover/module.hpp>
#include <drover/pipeline.hpp>

#include <boost/json/value.hpp>

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace drover::modules {

/// Thrown by a factory when params are wrong. `field` names the offending param
/// ("params.argv"), `what()` says what is wrong with it.
class params_error : public std::invalid_argument {
 public:
  params_error(std::string field, const std::string& message)
      : std::invalid_argument(message), field_(std::move(field)) {}
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

/// Builds a body from params, validating them up front (throws params_error).
using factory = std::function<module_body(const boost::json::value& params)>;

class registry {
 public:
  /// Registers (or replaces) a kind.
  void add(std::string kind, factory make);
  bool contains(std::string_view kind) const;
  /// Registered kind names, sorted.
  std::vector<std::string> kinds() const;

  /// A body for `kind` with `params`. Throws params_error for bad params (expression_error for
  /// a malformed `${{ ... }}`) and std::invalid_argument for an unknown kind.
  ///
  /// Params without expressions go to the factory as they are (with `$${{` read as `${{`).
  /// Params with expressions go to the factory once now, with each expression's text in its
  /// place, so that their shape is checked before anything runs; the body returned then
  /// evaluates them at the start of each attempt (from the attempt's dependencies and matrix
  /// instance), gives them to the factory and runs the body it makes. An expression that
  /// cannot be evaluated, or params the factory rejects once evaluated, fail that attempt.
  /// module_context::params() keeps the params as written.
  module_body make(std::string_view kind, const boost::json::value& params) const;

  /// Gives every module of `p` that has a kind but no body its body. Returns one problem per
  /// module with an unknown kind or bad params (field "kind" or "params.<name>"), and one per
  /// expression that names a module that is not a dependency, or a matrix the module does not
  /// have (see check_expressions in interpolation.hpp); modules with problems of the first kind
  /// keep an empty body.
  std::vector<validation_problem> resolve(pipeline& p) const;

 private:
  std::map<std::string, factory, std::less<>> factories_;
};

/// Adds the built-in kinds: exec, sleep and noop.
void add_builtin_kinds(registry& r);

/// A registry holding the built-in kinds.
registry builtin_registry();

}  // namespace drover::modules
