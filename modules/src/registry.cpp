#include <drover/modules/registry.hpp>

#include <utility>

namespace drover::modules {

namespace {

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
  module_body body = it->second(params);
  if (!body) {
    throw std::invalid_argument("the factory of kind '" + std::string(kind) +
                                "' returned an empty body");
  }
  return body;
}

std::vector<validation_problem> registry::resolve(pipeline& p) const {
  std::vector<validation_problem> problems;
  for (auto& spec : p.modules) {
    if (spec.body || spec.kind.empty()) continue;
    if (!contains(spec.kind)) {
      problems.push_back({spec.id, "kind", unknown_kind_message(spec.kind, kinds())});
      continue;
    }
    try {
      spec.body = make(spec.kind, spec.params);
    } catch (const params_error& e) {
      problems.push_back({spec.id, e.field(), e.what()});
    } catch (const std::exception& e) {
      // A user's factory may throw anything; the module is still the one to blame.
      problems.push_back({spec.id, "params", e.what()});
    }
  }
  return problems;
}

registry builtin_registry() {
  registry r;
  add_builtin_kinds(r);
  return r;
}

}  // namespace drover::modules
