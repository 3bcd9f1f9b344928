#include <drover/modules/registry.hpp>

#include <drover/context.hpp>
#include <drover/modules/interpolation.hpp>
#include <drover/secrets.hpp>

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <unordered_set>
#include <utility>

namespace drover::modules {

namespace {

namespace asio = boost::asio;

module_body checked_body(std::string_view kind, module_body body) {
  if (!body) {
    throw std::invalid_argument("the factory of kind '" + std::string(kind) +
                                "' returned an empty body");
  }
  return body;
}

std::runtime_error masked_error(const std::string& message, const module_context& ctx) {
  const secret_masker* secrets = ctx.secrets();
  return std::runtime_error(secrets ? secrets->mask(message) : message);
}

// The body of this attempt: the params evaluated and given to the factory. Any failure here
// fails the attempt, with the run's secrets masked (the values come from other modules).
module_body body_for_attempt(const factory& make, const params_template& params,
                             const module_context& ctx) {
  boost::json::value evaluated;
  try {
    evaluated = params.evaluate(scope_of(ctx));
  } catch (const std::exception& e) {
    throw masked_error(e.what(), ctx);
  }
  module_body body;
  try {
    body = make(evaluated);
  } catch (const params_error& e) {
    throw masked_error(e.field() + ": " + e.what() + " (once its ${{ }} expressions were replaced)",
                       ctx);
  } catch (const std::exception& e) {
    throw masked_error(std::string("params: ") + e.what(), ctx);
  }
  if (!body) throw std::runtime_error("the factory of the module's kind returned an empty body");
  return body;
}

// A coroutine taking its state by value: the std::function holding the lambda that calls it
// may be gone while it runs.
asio::awaitable<boost::json::value> run_with_values(factory make,
                                                    std::shared_ptr<const params_template> params,
                                                    module_context& ctx) {
  const module_body body = body_for_attempt(make, *params, ctx);
  co_return co_await body(ctx);
}

std::string unknown_kind_message(std::string_view kind, const std::vector<std::string>& known) {
  std::string message = "unknown kind '" + std::string(kind) + "' (";
  if (known.empty()) return message + "no kinds are registered)";
  message += "known kinds: ";
  for (std::size_t i = 0; i < known.size(); ++i) {
    if (i > 0) message += ", ";
    message += known[i];
  }
  return message + ")";
}

}  // namespace

void registry::add(std::string kind, factory make) {
  factories_.insert_or_assign(std::move(kind), std::move(make));
}

bool registry::contains(std::string_view kind) const {
  return factories_.contains(kind);
}

std::vector<std::string> registry::kinds() const {
  std::vector<std::string> names;
  names.reserve(factories_.size());
  for (const auto& entry : factories_)
    names.push_back(entry.first);
  return names;
}

module_body registry::make(std::string_view kind, const boost::json::value& params) const {
  auto it = factories_.find(kind);
  if (it == factories_.end()) throw std::invalid_argument(unknown_kind_message(kind, kinds()));
  if (!params_template::has_templates(params)) return checked_body(kind, it->second(params));

  auto values = std::make_shared<const params_template>(params);
  if (!values->problems().empty()) throw expression_error(values->problems().front());
  module_body body = checked_body(kind, it->second(values->literal()));
  if (!values->has_expressions()) return body;  // only escapes: the params are final
  return [make = it->second, values = std::move(values)](module_context& ctx) {
    return run_with_values(make, values, ctx);
  };
}

std::vector<validation_problem> registry::resolve(pipeline& p) const {
  std::vector<validation_problem> problems;
  std::unordered_set<std::string> with_expressions;  // resolved here, with well-formed ones
  for (std::size_t i = 0; i < p.size(); ++i) {
    const module_view spec = p.module(i);
    if (spec.body() || spec.kind().empty()) continue;
    const std::string id(spec.id());
    if (!contains(spec.kind())) {
      problems.push_back({id, "kind", unknown_kind_message(spec.kind(), kinds()),
                          problem_kind::unresolved_kind, static_cast<std::uint32_t>(i)});
      continue;
    }
    try {
      module_body body = make(spec.kind(), spec.params());
      if (params_template::has_templates(spec.params())) with_expressions.insert(id);
      p.edit(i).body(std::move(body));
    } catch (const params_error& e) {
      problems.push_back(
          {id, e.field(), e.what(), problem_kind::other, static_cast<std::uint32_t>(i)});
    } catch (const std::exception& e) {
      // A user's factory may throw anything; the module is still the one to blame.
      problems.push_back(
          {id, "params", e.what(), problem_kind::other, static_cast<std::uint32_t>(i)});
    }
  }
  if (with_expressions.empty()) return problems;
  for (const auto& problem : check_expressions(p)) {
    if (!with_expressions.contains(problem.module)) continue;
    problems.push_back({problem.module, field_text(problem.field), describe(problem)});
  }
  return problems;
}

registry builtin_registry() {
  registry r;
  add_builtin_kinds(r);
  return r;
}

}  // namespace drover::modules
