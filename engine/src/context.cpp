#include <drover/context.hpp>

#include "run_state.hpp"

#include <stdexcept>

namespace drover {

std::string_view module_context::id() const noexcept {
  return spec().id;
}

std::string_view module_context::worker() const noexcept {
  return worker_->name;
}

const module_spec& module_context::spec() const noexcept {
  return run_->pipeline_.modules[index_];
}

std::string_view module_context::matrix_target() const noexcept {
  const auto* instance = spec().instance.get();
  return instance ? std::string_view{instance->target} : std::string_view{};
}

std::string_view module_context::matrix_value(std::string_view axis) const noexcept {
  if (const auto* instance = spec().instance.get()) {
    for (const auto& [name, value] : instance->values) {
      if (name == axis) return value;
    }
  }
  return {};
}

const std::filesystem::path& module_context::log_dir() const noexcept {
  return run_->options_.log_dir;
}

boost::asio::any_io_executor module_context::get_executor() const noexcept {
  return worker_->strand;
}

std::uint32_t module_context::dep_index(std::string_view dep) const {
  // A module has few dependencies: scanning them beats keeping an id map alive for the run.
  for (std::uint32_t d : run_->graph_.predecessors(index_)) {
    if (run_->pipeline_.modules[d].id == dep) return d;
  }
  throw std::invalid_argument("module '" + std::string(id()) + "' asked for the result of '" +
                              std::string(dep) + "', which is not one of its dependencies");
}

// Dependencies were terminal before this module was dispatched, and the hand-over through the
// ready channel orders those writes before these reads.
const boost::json::value& module_context::result(std::string_view dep) const {
  return run_->results_[dep_index(dep)].value;
}

module_status module_context::status_of(std::string_view dep) const {
  return run_->results_[dep_index(dep)].status;
}

}  // namespace drover
