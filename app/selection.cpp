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

std::vector<std::string> apply_selection(pipeline& p, const selection& chosen) {
  std::unordered_map<std::string_view, std::size_t> index_of;
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < p.modules.size(); ++i) {
    index_of.emplace(p.modules[i].id, i);
    ids.push_back(p.modules[i].id);
  }

  std::vector<std::string> errors;
  std::vector<std::size_t> roots;
  for (const auto& id : chosen.modules) {
    if (auto it = index_of.find(id); it != index_of.end()) {
      roots.push_back(it->second);
    } else {
      errors.push_back(unknown_id("--module", id, ids));
    }
  }
  for (const auto& tag : chosen.tags) {
    bool found = false;
    for (std::size_t i = 0; i < p.modules.size(); ++i) {
      const auto& tags = p.modules[i].tags;
      if (std::find(tags.begin(), tags.end(), tag) != tags.end()) {
        roots.push_back(i);
        found = true;
      }
    }
    if (!found) errors.push_back("--tag '" + tag + "': no module has this tag");
  }
  for (const auto& id : chosen.skip_modules) {
    if (!index_of.contains(id)) errors.push_back(unknown_id("--skip-module", id, ids));
  }
  if (!errors.empty()) return errors;

  std::vector<bool> selected(p.modules.size(), chosen.modules.empty() && chosen.tags.empty());
  // Depth-first over dependencies from every root; the pipeline is valid, so deps resolve.
  std::vector<std::size_t> stack = roots;
  while (!stack.empty()) {
    const std::size_t i = stack.back();
    stack.pop_back();
    if (selected[i]) continue;
    selected[i] = true;
    for (const auto& dep : p.modules[i].deps) {
      if (auto it = index_of.find(dep); it != index_of.end()) stack.push_back(it->second);
    }
  }

  for (const auto& id : chosen.skip_modules) {
    p.modules[index_of.at(id)].skip_if = [] {
      return std::optional<std::string>{std::string{skipped_by_flag}};
    };
  }
  std::vector<module_spec> kept;
  kept.reserve(p.modules.size());
  for (std::size_t i = 0; i < p.modules.size(); ++i) {
    if (selected[i]) kept.push_back(std::move(p.modules[i]));
  }
  p.modules = std::move(kept);
  return errors;
}

}  // namespace drover::app
