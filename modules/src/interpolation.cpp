#include <drover/modules/interpolation.hpp>

#include <drover/context.hpp>

#include "detail/expression_parser.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <unordered_set>

namespace drover::modules {

namespace {

namespace json = boost::json;

using detail::escaped_open_braces;
using detail::is_name_char;
using detail::open_braces;

std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

std::string kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a bool";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

std::string text_of(const json::value& v) {
  if (const auto* s = v.if_string()) return std::string(*s);
  if (const auto* d = v.if_double()) {
    // The shortest text that reads back as the same number: "1.5", where Boost.JSON writes
    // "1.5E0".
    char buffer[32];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, *d);
    if (ec == std::errc{}) return std::string(buffer, end);
  }
  return json::serialize(v);
}

json::value& at_path(json::value& root, const json_path& path) {
  json::value* v = &root;
  for (const auto& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      v = &v->as_object()[*key];
    } else {
      v = &v->as_array()[std::get<std::size_t>(step)];
    }
  }
  return *v;
}

const dependency_view* find_dependency(const expression_scope& scope, std::string_view id) {
  for (const auto& d : scope.deps) {
    if (d.id == id) return &d;
  }
  return nullptr;
}

// The value an expression names in `scope`, or what stops it, as text.
std::string evaluate_one(const expression& e, const expression_scope& scope) {
  using source = expression::source;
  if (e.from == source::matrix_target || e.from == source::matrix_axis) {
    if (scope.matrix == nullptr) throw evaluation_error("the module is not a matrix instance");
    if (e.from == source::matrix_target) return scope.matrix->target;
    for (const auto& [axis, value] : scope.matrix->values) {
      if (axis == e.name) return value;
    }
    throw evaluation_error("the instance [" + scope.matrix->target + "] has no value on axis " +
                           in_quotes(e.name));
  }
  const dependency_view* dep = find_dependency(scope, e.name);
  if (dep == nullptr) {
    throw evaluation_error(in_quotes(e.name) + " is not one of the module's dependencies");
  }
  if (e.from == source::dependency_status) return std::string(shown_status(dep->status));
  if (dep->status != module_status::succeeded && dep->status != module_status::cached) {
    throw evaluation_error(in_quotes(e.name) + " has no value: it ended " +
                           std::string(to_string(dep->status)));
  }
  static const json::value null_value;
  const json::value* v = dep->value ? dep->value : &null_value;
  json_path walked;
  for (const auto& step : e.path) {
    const std::string where = walked.empty() ? "in its value" : "in " + field_text(walked, "value");
    if (const auto* key = std::get_if<std::string>(&step)) {
      const auto* object = v->if_object();
      if (object == nullptr) {
        throw evaluation_error(in_quotes(e.name) + " has no key " + in_quotes(*key) + " " + where +
                               " (" + kind_name(*v) + ", not an object)");
      }
      const auto* member = object->if_contains(*key);
      if (member == nullptr) {
        throw evaluation_error(in_quotes(e.name) + " has no key " + in_quotes(*key) + " " + where);
      }
      v = member;
    } else {
      const std::size_t index = std::get<std::size_t>(step);
      const auto* array = v->if_array();
      if (array == nullptr) {
        throw evaluation_error(in_quotes(e.name) + " has no item [" + std::to_string(index) + "] " +
                               where + " (" + kind_name(*v) + ", not an array)");
      }
      if (index >= array->size()) {
        throw evaluation_error(in_quotes(e.name) + " has no item [" + std::to_string(index) + "] " +
                               where + " (it has " + std::to_string(array->size()) + ")");
      }
      v = &(*array)[index];
    }
    walked.push_back(step);
  }
  return text_of(*v);
}

bool contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

std::string field_text(const json_path& path, std::string_view root) {
  std::string out(root);
  for (const auto& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      const bool plain = !key->empty() && std::all_of(key->begin(), key->end(), is_name_char);
      if (plain) {
        if (!out.empty()) out += '.';
        out += *key;
      } else {
        out += "['" + *key + "']";
      }
    } else {
      out += '[' + std::to_string(std::get<std::size_t>(step)) + ']';
    }
  }
  return out;
}

std::string describe(const expression_problem& problem) {
  std::string out = problem.expression + ": ";
  switch (problem.fault) {
    case expression_fault::malformed:
      return out + "not a valid expression: " + problem.detail;
    case expression_fault::not_a_dependency:
      return out + in_quotes(problem.detail) +
             " is not one of the module's dependencies (a module reads only the values of its "
             "deps)";
    case expression_fault::no_matrix:
      return out + "the module has no matrix";
    case expression_fault::unknown_axis:
      return out + "the module's matrix has no axis " + in_quotes(problem.detail);
  }
  return out + problem.detail;
}

expression_error::expression_error(expression_problem problem)
    : params_error(field_text(problem.field), describe(problem)), problem_(std::move(problem)) {}

std::string_view shown_status(module_status status) noexcept {
  return to_string(status == module_status::cached ? module_status::succeeded : status);
}

expression_scope scope_of(const module_context& ctx) {
  expression_scope scope;
  for (const std::string_view id : ctx.dependency_ids()) {
    const auto& value = ctx.result(id);
    scope.deps.push_back({id, ctx.status_of(id), value.is_null() ? nullptr : &value});
  }
  scope.matrix = ctx.spec().instance();
  return scope;
}

json::object dependency_document(const expression_scope& scope) {
  json::object out;
  for (const auto& dep : scope.deps) {
    json::object entry;
    entry["status"] = shown_status(dep.status);
    entry["value"] = dep.value ? *dep.value : json::value(nullptr);
    out[dep.id] = std::move(entry);
  }
  return out;
}

bool params_template::has_templates(const json::value& params) {
  switch (params.kind()) {
    case json::kind::string:
      return std::string_view(params.get_string()).find(open_braces) != std::string_view::npos;
    case json::kind::array:
      return std::any_of(params.get_array().begin(), params.get_array().end(), has_templates);
    case json::kind::object:
      return std::any_of(params.get_object().begin(), params.get_object().end(),
                         [](const auto& member) { return has_templates(member.value()); });
    default:
      return false;
  }
}

params_template::params_template(const json::value& params) : literal_(params) {
  if (!has_templates(params)) return;
  json_path path;
  collect(params, path);
  for (const auto& s : strings_) {
    std::string text;
    for (const auto& p : s.parts) {
      if (const auto* literal = std::get_if<std::string>(&p)) {
        text += *literal;
      } else {
        text += std::get<expression>(p).text;
      }
    }
    at_path(literal_, s.field) = json::string(text);
  }
}

void params_template::collect(const json::value& v, json_path& path) {
  if (const auto* array = v.if_array()) {
    for (std::size_t i = 0; i < array->size(); ++i) {
      path.emplace_back(i);
      collect((*array)[i], path);
      path.pop_back();
    }
    return;
  }
  if (const auto* object = v.if_object()) {
    for (const auto& member : *object) {
      path.emplace_back(std::string(member.key()));
      collect(member.value(), path);
      path.pop_back();
    }
    return;
  }
  const auto* string = v.if_string();
  if (string == nullptr) return;
  const std::string_view s = *string;
  if (s.find(open_braces) == std::string_view::npos) return;

  template_string out{path, {}};
  std::string literal;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.substr(i, escaped_open_braces.size()) == escaped_open_braces) {
      literal += open_braces;
      i += escaped_open_braces.size();
      continue;
    }
    if (s.substr(i, open_braces.size()) != open_braces) {
      literal += s[i++];
      continue;
    }
    const std::size_t close = detail::closing_braces(s, i);
    if (close == std::string_view::npos) {
      problems_.push_back(
          {{}, path, std::string(s.substr(i)), expression_fault::malformed, "no closing }}"});
      literal += s.substr(i);
      break;
    }
    const std::string_view text = s.substr(i, close + 2 - i);
    try {
      expression e = detail::parse_expression(
          s.substr(i + open_braces.size(), close - i - open_braces.size()));
      e.text = text;
      if (!literal.empty()) out.parts.emplace_back(std::move(literal));
      literal.clear();
      out.parts.emplace_back(std::move(e));
      ++expression_count_;
    } catch (const detail::syntax_error& error) {
      problems_.push_back({{}, path, std::string(text), expression_fault::malformed, error.detail});
      literal += text;
    }
    i = close + 2;
  }
  if (!literal.empty()) out.parts.emplace_back(std::move(literal));
  strings_.push_back(std::move(out));
}

std::vector<expression_problem> params_template::check(const expression_names& names) const {
  std::vector<expression_problem> problems;
  for (const auto& s : strings_) {
    for (const auto& p : s.parts) {
      const auto* e = std::get_if<expression>(&p);
      if (e == nullptr) continue;
      auto report = [&](expression_fault fault, std::string detail) {
        problems.push_back({{}, s.field, e->text, fault, std::move(detail)});
      };
      switch (e->from) {
        case expression::source::dependency_value:
        case expression::source::dependency_status: {
          if (contains(names.deps, e->name)) break;
          const auto bracket = e->name.find('[');
          if (bracket != std::string::npos && e->name.back() == ']' &&
              contains(names.matrix_deps, std::string_view(e->name).substr(0, bracket))) {
            break;
          }
          report(expression_fault::not_a_dependency, e->name);
          break;
        }
        case expression::source::matrix_target:
          if (!names.matrix) report(expression_fault::no_matrix, {});
          break;
        case expression::source::matrix_axis:
          if (!names.matrix) {
            report(expression_fault::no_matrix, {});
          } else if (!contains(names.axes, e->name)) {
            report(expression_fault::unknown_axis, e->name);
          }
          break;
      }
    }
  }
  return problems;
}

json::value params_template::evaluate(const expression_scope& scope) const {
  json::value out = literal_;
  for (const auto& s : strings_) {
    std::string text;
    for (const auto& p : s.parts) {
      if (const auto* literal = std::get_if<std::string>(&p)) {
        text += *literal;
        continue;
      }
      const auto& e = std::get<expression>(p);
      try {
        text += evaluate_one(e, scope);
      } catch (const evaluation_error& error) {
        throw evaluation_error(field_text(s.field) + ": " + e.text + ": " + error.what());
      }
    }
    at_path(out, s.field) = json::string(text);
  }
  return out;
}

expression_names names_of(const module_spec& spec) {
  expression_names names;
  names.deps = spec.deps;
  if (const auto* instance = spec.instance.get()) {
    names.matrix = true;
    for (const auto& [axis, value] : instance->values) {
      if (!axis.empty()) names.axes.push_back(axis);
    }
  } else if (const auto* matrix = spec.matrix.get()) {
    names.matrix = true;
    for (const auto& axis : matrix->axes) {
      if (!axis.name.empty()) names.axes.push_back(axis.name);
    }
    for (const auto& entry : matrix->include) {
      for (const auto& [key, value] : entry) {
        if (!key.empty() && !contains(names.axes, key)) names.axes.push_back(key);
      }
    }
  }
  return names;
}

std::vector<expression_problem> check_expressions(const pipeline& p) {
  std::vector<expression_problem> problems;
  const std::vector<module_spec> modules = p.specs();
  std::unordered_set<std::string_view> matrix_modules;
  for (const auto& m : modules) {
    if (m.matrix) matrix_modules.insert(m.id);
  }
  for (const auto& m : modules) {
    if (m.kind.empty() || !params_template::has_templates(m.params)) continue;
    const params_template t{m.params};
    expression_names names = names_of(m);
    for (const auto& dep : m.deps) {
      if (matrix_modules.contains(dep)) names.matrix_deps.push_back(dep);
    }
    auto found = t.problems();
    auto references = t.check(names);
    found.insert(found.end(), references.begin(), references.end());
    for (auto& problem : found) {
      problem.module = m.id;
      problems.push_back(std::move(problem));
    }
  }
  return problems;
}

}  // namespace drover::modules
