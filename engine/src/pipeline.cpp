#include <drover/pipeline.hpp>
#include <drover/result.hpp>

namespace drover {

module_spec& pipeline::add(std::string id, module_body body, std::vector<std::string> deps) {
  module_spec& spec = modules.emplace_back();
  spec.id = std::move(id);
  spec.body = std::move(body);
  spec.deps = std::move(deps);
  return spec;
}

const module_result* run_report::find(std::string_view id) const noexcept {
  for (const auto& m : modules) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

}  // namespace drover
