// Matrix expansion: replaces each module that has a matrix by one instance per combination.
//
// expand_matrix checks every matrix and every id before it changes anything, so when it
// reports problems the pipeline is in fact left as it was; callers must not rely on that (the
// contract says its content is then unspecified). A pipeline without a matrix costs one scan.

#include <drover/graph.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "id_index.hpp"
#include "text.hpp"

namespace drover {

namespace {

using detail::in_quotes;

constexpr std::uint32_t npos = detail::id_index::npos;

// One module may become at most this many instances.
constexpr std::size_t max_instances = 65536;
// Bounds the table of combinations (rows times keys) built while expanding one module, so
// that a small spec (one include entry with thousands of keys) cannot exhaust memory.
constexpr std::size_t max_matrix_cells = std::size_t{1} << 22;

bool is_forbidden(char c) {
  const auto u = static_cast<unsigned char>(c);
  return c == '[' || c == ']' || c == ',' || c == '=' || u <= ' ' || u == 0x7f;
}

// Names the first character that cannot appear in an instance id, or returns nothing.
std::optional<std::string> forbidden_character(std::string_view text) {
  const auto it = std::find_if(text.begin(), text.end(), is_forbidden);
  if (it == text.end()) return std::nullopt;
  const auto u = static_cast<unsigned char>(*it);
  if (u <= ' ' || u == 0x7f) return std::string{"whitespace or a control character"};
  return in_quotes(std::string_view{&*it, 1});
}

constexpr std::string_view allowed_characters_rule =
    "; axis names and values must not contain '[', ']', ',', '=', whitespace or control "
    "characters, because they form instance ids";

std::string subject(const module_spec& m, std::uint32_t position) {
  return m.id.empty() ? "module #" + std::to_string(position + 1) : "module " + in_quotes(m.id);
}

std::string axis_label(std::string_view name) {
  return name.empty() ? std::string{"the matrix list"} : "matrix axis " + in_quotes(name);
}

// How an include or exclude entry's key is named in messages.
std::string key_label(std::string_view key) {
  return key.empty() ? std::string{"the list value"} : "key " + in_quotes(key);
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Reports what is wrong with a matrix spec on its own; returns whether it can be expanded.
class spec_checker {
 public:
  spec_checker(const module_spec& m, std::uint32_t position,
               std::vector<validation_problem>& problems)
      : module_(m),
        spec_(*m.matrix),
        who_(subject(m, position)),
        position_(position),
        problems_(problems) {
    for (const matrix_axis& axis : spec_.axes)
      axis_names_.insert(axis.name);
  }

  bool check() {
    const std::size_t before = problems_.size();
    check_id();
    check_axes();
    check_entries(spec_.exclude, "exclude", true);
    check_entries(spec_.include, "include", false);
    check_requires_axes();
    return problems_.size() == before;
  }

 private:
  void add(std::string field, std::string message) {
    problems_.push_back({module_.id, std::move(field), who_ + ": " + std::move(message)});
  }

  void check_id() {
    if (module_.id.empty()) {
      problems_.push_back({"", "id",
                           "module #" + std::to_string(position_ + 1) +
                               " has a matrix but an empty id, so its instances would have none"});
    } else if (module_.id.find_first_of("[]") != std::string::npos) {
      add("id",
          "a module with a matrix must not have '[' or ']' in its id, because its instances "
          "are named id[...]");
    }
  }

  void check_axes() {
    const auto& axes = spec_.axes;
    if (axes.empty()) {
      add("matrix.axes", "the matrix has no axes");
      return;
    }
    const bool mixed = axes.size() > 1 && std::any_of(axes.begin(), axes.end(),
                                                      [](const auto& a) { return a.name.empty(); });
    if (mixed) {
      add("matrix.axes",
          "the matrix mixes the list form (an axis without a name) with named axes; name every "
          "axis");
    }
    std::unordered_set<std::string_view> names;
    for (const matrix_axis& axis : axes) {
      if (!axis.name.empty()) {
        if (auto bad = forbidden_character(axis.name)) {
          add("matrix.axes", "matrix axis name " + in_quotes(axis.name) + " contains " + *bad +
                                 std::string{allowed_characters_rule});
        }
        if (!names.insert(axis.name).second) {
          add("matrix.axes", "matrix axis " + in_quotes(axis.name) + " is listed more than once");
        }
      }
      check_values(axis);
    }
  }

  void check_values(const matrix_axis& axis) {
    if (axis.values.empty()) {
      add("matrix.axes", axis_label(axis.name) + " has no values");
      return;
    }
    std::unordered_set<std::string_view> seen, repeated;
    for (std::size_t i = 0; i < axis.values.size(); ++i) {
      const std::string& value = axis.values[i];
      if (value.empty()) {
        add("matrix.axes",
            axis_label(axis.name) + " has an empty value (#" + std::to_string(i + 1) + ")");
        continue;
      }
      if (auto bad = forbidden_character(value)) {
        add("matrix.axes", "value " + in_quotes(value) + " of " + axis_label(axis.name) +
                               " contains " + *bad + std::string{allowed_characters_rule});
      }
      if (!seen.insert(value).second && repeated.insert(value).second) {
        add("matrix.axes",
            axis_label(axis.name) + " lists the value " + in_quotes(value) + " more than once");
      }
    }
  }

  // Exclude keys must be original axes; include keys may add new ones but become part of
  // instance ids, so they follow the rules of axis names and values.
  void check_entries(const std::vector<matrix_combination>& entries, std::string_view kind,
                     bool keys_are_axes) {
    const std::string field = "matrix." + std::string{kind};
    const bool list_form = spec_.axes.size() == 1 && spec_.axes.front().name.empty();
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const std::string entry = "matrix " + std::string{kind} + " entry #" + std::to_string(i + 1);
      if (entries[i].empty()) {
        add(field, entry + " is empty");
        continue;
      }
      std::unordered_set<std::string_view> keys;
      for (const auto& [key, value] : entries[i]) {
        if (!keys.insert(key).second) {
          add(field, entry + " gives " + key_label(key) + " more than once");
          continue;
        }
        if (keys_are_axes) {
          if (!axis_names_.contains(key)) {
            add(field, entry + " names unknown " +
                           (key.empty() ? std::string{"axis ''"} : "axis " + in_quotes(key)));
          }
          continue;
        }
        if (key.empty() && !list_form) {
          add(field, entry + " has a key without a name; name the axis it sets");
        } else if (auto bad = forbidden_character(key)) {
          add(field, entry + ": key " + in_quotes(key) + " contains " + *bad +
                         std::string{allowed_characters_rule});
        }
        if (value.empty()) {
          add(field, entry + " gives " + key_label(key) + " an empty value");
        } else if (auto bad = forbidden_character(value)) {
          add(field, entry + ": value " + in_quotes(value) + " contains " + *bad +
                         std::string{allowed_characters_rule});
        }
      }
    }
  }

  void check_requires_axes() {
    if (!spec_.requires_axes) return;
    for (const std::string& name : *spec_.requires_axes) {
      if (!axis_names_.contains(name)) {
        add("matrix.requires_axes",
            "requires_axes names unknown axis " + (name.empty() ? "''" : in_quotes(name)));
      }
    }
  }

  const module_spec& module_;
  const matrix_spec& spec_;
  std::string who_;
  std::uint32_t position_;
  std::vector<validation_problem>& problems_;
  std::unordered_set<std::string_view> axis_names_;
};

// The instances one matrix module expands into, in combination order.
struct expansion {
  std::uint32_t module = 0;
  std::vector<std::string> ids;
  std::vector<matrix_instance> instances;
  std::vector<std::string> required_axes;
  std::optional<std::vector<std::string>> deps;  ///< the module's deps with fan-out, if changed
};

// Computes the combinations of a spec that spec_checker accepted. Combinations are rows of a
// table with one column per key (the original axes, then the keys include adds in order of
// first appearance) pointing into the spec's strings; nullptr where a row has no value.
class combination_builder {
 public:
  combination_builder(const module_spec& m, std::vector<validation_problem>& problems)
      : module_(m), spec_(*m.matrix), problems_(problems) {}

  bool build(expansion& out) {
    const std::size_t product = cross_product_size();
    if (product > max_instances) {
      add("matrix", "the matrix has more than " + std::to_string(max_instances) +
                        " combinations of axis values; at most " + std::to_string(max_instances) +
                        " instances are allowed per module");
      return false;
    }
    collect_keys();
    if ((product + spec_.include.size()) * keys_.size() > max_matrix_cells) {
      add("matrix", "the matrix is too large: up to " +
                        std::to_string(product + spec_.include.size()) + " combinations of " +
                        std::to_string(keys_.size()) + " keys each (at most " +
                        std::to_string(max_matrix_cells) + " values in all)");
      return false;
    }
    cells_.reserve((product + spec_.include.size()) * keys_.size());
    add_cross_product(product);
    apply_include();
    const std::size_t rows = row_count();
    if (rows == 0) {
      add("matrix", "the matrix makes no instances (exclude removes every combination)");
      return false;
    }
    if (rows > max_instances) {
      add("matrix", "the matrix makes " + std::to_string(rows) + " instances; at most " +
                        std::to_string(max_instances) + " are allowed per module");
      return false;
    }
    make_instances(out);
    return true;
  }

 private:
  void add(std::string field, std::string message) {
    problems_.push_back(
        {module_.id, std::move(field), "module " + in_quotes(module_.id) + ": " + message});
  }

  std::size_t cross_product_size() const {
    std::size_t product = 1;
    for (const matrix_axis& axis : spec_.axes) {
      // Saturates just above the limit, so that no product can overflow.
      product =
          std::min(product * std::min(axis.values.size(), max_instances + 1), max_instances + 1);
    }
    return product;
  }

  void collect_keys() {
    const auto add_key = [&](std::string_view key) {
      if (positions_.try_emplace(key, static_cast<std::uint32_t>(keys_.size())).second)
        keys_.push_back(key);
    };
    for (const matrix_axis& axis : spec_.axes)
      add_key(axis.name);
    axis_count_ = keys_.size();
    for (const matrix_combination& entry : spec_.include) {
      for (const auto& pair : entry)
        add_key(pair.first);
    }
  }

  std::size_t row_count() const { return cells_.size() / keys_.size(); }
  const std::string** row(std::size_t r) { return cells_.data() + r * keys_.size(); }
  const std::string** append_row() {
    cells_.resize(cells_.size() + keys_.size(), nullptr);
    return row(row_count() - 1);
  }

  using compiled_entry = std::vector<std::pair<std::uint32_t, const std::string*>>;

  compiled_entry compile(const matrix_combination& entry) const {
    compiled_entry out;
    for (const auto& [key, value] : entry)
      out.emplace_back(positions_.at(key), &value);
    return out;
  }

  void add_cross_product(std::size_t product) {
    std::vector<compiled_entry> excludes;
    for (const matrix_combination& entry : spec_.exclude)
      excludes.push_back(compile(entry));
    const auto& axes = spec_.axes;
    std::vector<std::size_t> digits(axes.size(), 0);
    for (std::size_t n = 0; n < product; ++n) {
      const bool excluded =
          std::any_of(excludes.begin(), excludes.end(), [&](const compiled_entry& entry) {
            return std::all_of(entry.begin(), entry.end(), [&](const auto& pair) {
              return axes[pair.first].values[digits[pair.first]] == *pair.second;
            });
          });
      if (!excluded) {
        const std::string** cells = append_row();
        for (std::size_t a = 0; a < axes.size(); ++a)
          cells[a] = &axes[a].values[digits[a]];
      }
      // The last axis varies fastest, so the first varies slowest.
      for (std::size_t a = axes.size(); a-- > 0;) {
        if (++digits[a] < axes[a].values.size()) break;
        digits[a] = 0;
      }
    }
  }

  // GitHub Actions' rules: an entry extends every combination of the cross product whose
  // original axis values it does not contradict (it may overwrite keys an earlier entry added);
  // an entry that extends none becomes a combination of its own, which later entries do not
  // extend.
  void apply_include() {
    const std::size_t original_rows = row_count();
    for (const matrix_combination& entry : spec_.include) {
      const compiled_entry pairs = compile(entry);
      bool extended = false;
      for (std::size_t r = 0; r < original_rows; ++r) {
        const std::string** cells = row(r);
        const bool fits = std::all_of(pairs.begin(), pairs.end(), [&](const auto& pair) {
          return pair.first >= axis_count_ || *cells[pair.first] == *pair.second;
        });
        if (!fits) continue;
        for (const auto& [position, value] : pairs)
          cells[position] = value;
        extended = true;
      }
      if (!extended) {
        const std::string** cells = append_row();
        for (const auto& [position, value] : pairs)
          cells[position] = value;
      }
    }
  }

  void make_instances(expansion& out) {
    const std::size_t rows = row_count();
    out.ids.reserve(rows);
    out.instances.reserve(rows);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::string** cells = row(r);
      matrix_instance instance;
      instance.values.reserve(static_cast<std::size_t>(
          std::count_if(cells, cells + keys_.size(), [](const std::string* v) { return v; })));
      for (std::size_t k = 0; k < keys_.size(); ++k) {
        if (!cells[k]) continue;
        if (!instance.target.empty()) instance.target += ',';
        if (!keys_[k].empty()) {
          instance.target += keys_[k];
          instance.target += '=';
        }
        instance.target += *cells[k];
        instance.values.emplace_back(std::string{keys_[k]}, *cells[k]);
      }
      out.ids.push_back(module_.id + '[' + instance.target + ']');
      out.instances.push_back(std::move(instance));
    }
    const bool list_form = spec_.axes.size() == 1 && spec_.axes.front().name.empty();
    if (spec_.requires_axes) {
      out.required_axes = *spec_.requires_axes;
    } else if (list_form) {
      out.required_axes = {std::string{}};
    }
  }

  const module_spec& module_;
  const matrix_spec& spec_;
  std::vector<validation_problem>& problems_;
  std::vector<std::string_view> keys_;
  std::unordered_map<std::string_view, std::uint32_t> positions_;
  std::size_t axis_count_ = 0;
  std::vector<const std::string*> cells_;
};

// An id after expansion: a module's own id, or the id of one of a matrix module's instances.
struct id_entry {
  const std::string* id;
  std::uint32_t module;    ///< position in the original pipeline
  std::uint32_t instance;  ///< which instance of the module, npos for the module's own id
};

void report_collision(const std::vector<module_spec>& modules, const id_entry& first,
                      const id_entry& second, std::vector<validation_problem>& problems) {
  const module_spec& owner = modules[second.module];
  const std::string who = "module " + in_quotes(owner.id);
  if (second.instance == npos) {
    // Two modules share an id; build_graph reports that unless one of them has a matrix,
    // which would make the id vanish before build_graph sees it.
    for (const id_entry* e : {&first, &second}) {
      const module_spec& m = modules[e->module];
      if (!m.matrix) continue;
      problems.push_back({m.id, "id",
                          "module " + in_quotes(m.id) +
                              " has a matrix, so no other module may have its id (modules #" +
                              std::to_string(first.module + 1) + " and #" +
                              std::to_string(second.module + 1) + " do)"});
    }
  } else if (first.instance == npos) {
    problems.push_back({owner.id, "matrix",
                        who + ": matrix instance " + in_quotes(*second.id) +
                            " has the same id as module #" + std::to_string(first.module + 1)});
  } else if (first.module == second.module) {
    problems.push_back({owner.id, "matrix",
                        who + ": two matrix instances would have the same id " +
                            in_quotes(*second.id) + " (combinations #" +
                            std::to_string(first.instance + 1) + " and #" +
                            std::to_string(second.instance + 1) + ")"});
  } else {
    problems.push_back({owner.id, "matrix",
                        who + ": matrix instance " + in_quotes(*second.id) +
                            " has the same id as an instance of module #" +
                            std::to_string(first.module + 1)});
  }
}

class dependency_rewriter {
  // The id of the matrix module of expansion `e`, for the index of matrix modules.
  auto base_id() const {
    return
        [this](std::uint32_t e) -> std::string_view { return modules_[expansions_[e].module].id; };
  }

 public:
  // Indexes only the matrix modules: deps are looked up in a table that stays in cache.
  dependency_rewriter(const std::vector<module_spec>& modules,
                      const std::vector<expansion>& expansions)
      : modules_(modules), expansions_(expansions), matrix_modules_(expansions.size()) {
    for (std::uint32_t e = 0; e < expansions.size(); ++e) {
      const std::string& id = modules[expansions[e].module].id;
      matrix_modules_.insert(detail::id_index::hash(id), id, e, base_id());
    }
  }

  // `deps` with each matrix module replaced by its instances and repeats removed, or nothing
  // when no dependency names a matrix module (the list then stays exactly as it was).
  std::optional<std::vector<std::string>> rewrite(const std::vector<std::string>& deps) {
    if (std::none_of(deps.begin(), deps.end(),
                     [&](const std::string& dep) { return matrix_of(dep) != npos; })) {
      return std::nullopt;
    }
    picked_.clear();
    for (const std::string& dep : deps) {
      const std::uint32_t e = matrix_of(dep);
      if (e == npos) {
        picked_.push_back(&dep);
      } else {
        for (const std::string& id : expansions_[e].ids)
          picked_.push_back(&id);
      }
    }
    std::vector<std::string> out;
    out.reserve(picked_.size());
    // A module may depend on tens of thousands of instances: past a few, look repeats up.
    constexpr std::size_t linear_limit = 32;
    seen_.clear();
    for (const std::string* dep : picked_) {
      const bool repeat = picked_.size() <= linear_limit
                              ? std::find(out.begin(), out.end(), *dep) != out.end()
                              : !seen_.insert(*dep).second;
      if (!repeat) out.push_back(*dep);
    }
    return out;
  }

 private:
  // The expansion of the matrix module named `dep`, or npos.
  std::uint32_t matrix_of(const std::string& dep) const {
    return matrix_modules_.find(detail::id_index::hash(dep), dep, base_id());
  }

  const std::vector<module_spec>& modules_;
  const std::vector<expansion>& expansions_;
  detail::id_index matrix_modules_;
  std::vector<const std::string*> picked_;
  std::unordered_set<std::string_view> seen_;  ///< views of strings that picked_ points to
};

void add_required_capabilities(module_spec& m, const std::vector<std::string>& axes) {
  for (const std::string& axis : axes) {
    for (const auto& [name, value] : m.instance->values) {
      if (name != axis) continue;
      auto& labels = m.constraints.ensure().required_capabilities;
      // Captured by name: clang 14 cannot capture a structured binding.
      const bool present = std::any_of(
          labels.begin(), labels.end(),
          [&wanted = value](const std::string& l) { return equals_ignoring_case(l, wanted); });
      if (!present) labels.push_back(value);
    }
  }
}

}  // namespace

namespace {

// Expansion works on whole descriptions: only pipelines with a matrix pay for them.
std::vector<validation_problem> expand_specs(std::vector<module_spec>& modules) {
  std::vector<validation_problem> problems;
  if (modules.size() >= npos) {
    problems.push_back({"", "modules", "too many modules: " + std::to_string(modules.size())});
    return problems;
  }

  std::vector<expansion> expansions;
  std::size_t instance_count = 0;
  for (std::uint32_t i = 0; i < modules.size(); ++i) {
    if (!modules[i].matrix) continue;
    if (!spec_checker{modules[i], i, problems}.check()) continue;
    expansion e;
    e.module = i;
    if (!combination_builder{modules[i], problems}.build(e)) continue;
    instance_count += e.ids.size();
    expansions.push_back(std::move(e));
  }

  const std::size_t entry_count = modules.size() + instance_count;
  if (entry_count >= npos) {
    problems.push_back(
        {"", "modules",
         "expanding the matrices would make too many modules: " + std::to_string(entry_count)});
    return problems;
  }
  // Every id the expanded pipeline would have, with the modules' own ids first, so that a
  // collision always names the instance second.
  std::vector<id_entry> entries;
  entries.reserve(entry_count);
  for (std::uint32_t i = 0; i < modules.size(); ++i)
    entries.push_back({&modules[i].id, i, npos});
  for (const expansion& e : expansions) {
    for (std::uint32_t k = 0; k < e.ids.size(); ++k)
      entries.push_back({&e.ids[k], e.module, k});
  }
  {
    detail::id_index index{entries.size()};
    const auto id_of = [&](std::uint32_t i) -> std::string_view { return *entries[i].id; };
    // As in build_graph: hashing ahead lets the table's cache misses overlap.
    std::uint32_t ahead = 0;
    detail::hash_lookahead hashes(index, [&]() -> const std::string* {
      return ahead < entries.size() ? entries[ahead++].id : nullptr;
    });
    for (std::uint32_t i = 0; i < entries.size(); ++i) {
      const std::uint64_t hash = hashes.next();
      const std::string& id = *entries[i].id;
      if (id.empty()) continue;  // build_graph reports it; a matrix module's was reported above
      const std::uint32_t first = index.insert(hash, id, i, id_of);
      if (first != npos) report_collision(modules, entries[first], entries[i], problems);
    }
  }
  if (!problems.empty()) return problems;

  // Dependencies are rewritten while the instance ids are still in their expansions.
  dependency_rewriter rewriter{modules, expansions};
  for (expansion& e : expansions)
    e.deps = rewriter.rewrite(modules[e.module].deps);
  for (module_spec& m : modules) {
    if (m.matrix) continue;
    if (auto deps = rewriter.rewrite(m.deps)) m.deps = std::move(*deps);
  }

  std::vector<module_spec> expanded;
  expanded.reserve(entry_count - expansions.size());
  auto next_expansion = expansions.begin();
  for (module_spec& m : modules) {
    if (!m.matrix) {
      expanded.push_back(std::move(m));
      continue;
    }
    expansion& e = *next_expansion++;
    module_spec prototype = std::move(m);
    prototype.matrix.reset();
    if (e.deps) prototype.deps = std::move(*e.deps);
    for (std::size_t k = 0; k < e.ids.size(); ++k) {
      module_spec& instance = k + 1 < e.ids.size() ? expanded.emplace_back(prototype)
                                                   : expanded.emplace_back(std::move(prototype));
      instance.id = std::move(e.ids[k]);
      instance.instance = std::move(e.instances[k]);
      add_required_capabilities(instance, e.required_axes);
    }
  }
  modules = std::move(expanded);
  return problems;
}

}  // namespace

std::vector<validation_problem> expand_matrix(pipeline& p) {
  bool any = false;
  for (std::size_t i = 0; i < p.size() && !any; ++i)
    any = p.module(i).matrix() != nullptr;
  if (!any) return {};
  std::vector<module_spec> modules = p.specs();
  auto problems = expand_specs(modules);
  for (auto& problem : problems) {
    if (problem.kind == problem_kind::other && problem.field.rfind("matrix", 0) == 0) {
      problem.kind = problem_kind::invalid_matrix;
    }
  }
  if (problems.empty()) p.assign(std::move(modules));
  return problems;
}

}  // namespace drover
