#include <drover/result.hpp>

#include <stdexcept>

namespace drover {

module_result module_results::at(std::size_t i) const {
  if (i >= size()) {
    throw std::out_of_range("module_results::at: " + std::to_string(i) + " of " +
                            std::to_string(size()));
  }
  return (*this)[i];
}

void module_results::store() {
  if (!source_) return;
  std::vector<module_result> all;
  all.reserve(source_->size());
  for (std::size_t i = 0; i < source_->size(); ++i)
    all.push_back(source_->get(i));
  stored_ = std::move(all);
  source_.reset();
}

void module_results::push_back(module_result r) {
  store();
  stored_.push_back(std::move(r));
}

void module_results::resize(std::size_t n) {
  store();
  stored_.resize(n);
}

std::optional<module_result> run_report::find(std::string_view id) const {
  for (module_result m : modules) {
    if (m.id == id) return m;
  }
  return std::nullopt;
}

}  // namespace drover
