#include "selection.hpp"

#include "pipeline_file.hpp"

#include <algorithm>
#include <unordered_map>

namespace drover::app {

namespace {

std::string unknown_id(std::string_view flag, const std::string& id,
                       const std::vector<std::string>& ids) {
  std::string message = std::string{flag} + " '" + id + "': no module has this id";
  if (auto suggestion = closest_match(id, ids); !suggestion.empty()) {
    message += " (did you mean '" + suggestion + "'?)";
  }
  return message;
}

}  // namespace

bool selection_names(const module_view& m, std::string_view id) {
  const std::string_view own = m.id();
  if (own == id) return true;
  // An instance's id is its matrix module's id, which has no brackets, then `[target]`.
  return m.instance() != nullptr && own.substr(0, own.find('[')) == id;
}

std::vector<std::string> apply_selection(pipeline& p, const selection& chosen) {
  // Ids are unique in a valid pipeline, and no module has the id of a matrix module, so an id
  // names one module or all instances of one matrix module.
  std::vector<module_spec> modules = p.specs();
  std::unordered_map<std::string_view, std::vector<std::size_t>> modules_of;
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < modules.size(); ++i) {
    const auto& m = modules[i];
    modules_of[m.id].push_back(i);
    ids.push_back(m.id);
    if (!m.instance) continue;
    const std::string_view matrix_id = std::string_view{m.id}.substr(0, m.id.find('['));
    auto& instances = modules_of[matrix_id];
    if (instances.empty()) ids.emplace_back(matrix_id);
    instances.push_back(i);
  }

  std::vector<std::string> errors;
  std::vector<std::size_t> roots;
  for (const auto& id : chosen.modules) {
    if (auto it = modules_of.find(id); it != modules_of.end()) {
      roots.insert(roots.end(), it->second.begin(), it->second.end());
    } else {
      errors.push_back(unknown_id("--module", id, ids));
    }
  }
  for (const auto& tag : chosen.tags) {
    bool found = false;
    for (std::size_t i = 0; i < modules.size(); ++i) {
      const auto& tags = modules[i].tags;
      if (std::find(tags.begin(), tags.end(), tag) != tags.end()) {
        roots.push_back(i);
        found = true;
      }
    }
    if (!found) errors.push_back("--tag '" + tag + "': no module has this tag");
  }
  for (const auto& id : chosen.skip_modules) {
    if (!modules_of.contains(id)) errors.push_back(unknown_id("--skip-module", id, ids));
  }
  if (!errors.empty()) return errors;

  std::vector<bool> selected(modules.size(), chosen.modules.empty() && chosen.tags.empty());
  // Depth-first over dependencies from every root; the pipeline is valid, so deps resolve.
  std::vector<std::size_t> stack = roots;
  while (!stack.empty()) {
    const std::size_t i = stack.back();
    stack.pop_back();
    if (selected[i]) continue;
    selected[i] = true;
    for (const auto& dep : modules[i].deps) {
      if (auto it = modules_of.find(dep); it != modules_of.end()) {
        stack.insert(stack.end(), it->second.begin(), it->second.end());
      }
    }
  }

  for (const auto& id : chosen.skip_modules) {
    for (auto i : modules_of.at(id)) {
      modules[i].skip_if = [] { return std::optional<std::string>{std::string{skipped_by_flag}}; };
    }
  }
  std::vector<module_spec> kept;
  kept.reserve(modules.size());
  for (std::size_t i = 0; i < modules.size(); ++i) {
    if (selected[i]) kept.push_back(std::move(modules[i]));
  }
  p.assign(std::move(kept));
  return errors;
}

}  // namespace drover::app
