#include <drover/result.hpp>

namespace drover {

const module_result* run_report::find(std::string_view id) const noexcept {
  for (const auto& m : modules) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

}  // namespace drover
