#include <drover/context.hpp>

#include "lone_attempt.hpp"
#include "run_state.hpp"
#include "work_dir.hpp"

#include <stdexcept>

namespace drover {

// Outside a run (attempt_runner), every accessor reads the lone attempt instead of run_ and
// worker_; the index is unused.
module_context::module_context(const detail::lone_attempt& attempt) noexcept
    : lone_(&attempt), index_(0), attempt_(attempt.attempt) {}

std::string_view module_context::id() const noexcept {
  return spec().id;
}

std::string_view module_context::worker() const noexcept {
  if (lone_) return lone_->host->settings.worker_name;
  return worker_->name;
}

const module_spec& module_context::spec() const noexcept {
  if (lone_) return lone_->spec;
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
  if (lone_) return lone_->host->settings.log_dir;
  return run_->options_.log_dir;
}

const secret_masker* module_context::secrets() const noexcept {
  if (lone_) return lone_->host->settings.secrets.get();
  return run_->options_.secrets.get();
}

const std::filesystem::path& module_context::workspace() const noexcept {
  if (lone_) return lone_->host->workspace;
  return run_->workspace_;
}

bool module_context::keep_workdirs() const noexcept {
  if (lone_) return lone_->host->settings.keep_workdirs;
  return run_->options_.keep_workdirs;
}

const std::filesystem::path& module_context::work_dir() {
  if (work_dir_.empty()) work_dir_ = detail::create_work_dir(workspace(), id(), attempt_);
  return work_dir_;
}

boost::asio::any_io_executor module_context::get_executor() const noexcept {
  if (lone_) return lone_->host->strand;
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
  if (lone_) {
    static const boost::json::value null_value;
    const auto& value = lone_->dependency(dep).value;
    return value ? *value : null_value;
  }
  return run_->results_[dep_index(dep)].value;
}

std::vector<std::string_view> module_context::dependency_ids() const {
  std::vector<std::string_view> ids;
  if (lone_) {
    for (const auto& d : lone_->dependencies)
      ids.emplace_back(d.id);
    return ids;
  }
  for (std::uint32_t d : run_->graph_.predecessors(index_))
    ids.emplace_back(run_->pipeline_.modules[d].id);
  return ids;
}

module_status module_context::status_of(std::string_view dep) const {
  if (lone_) return lone_->dependency(dep).status;
  return run_->results_[dep_index(dep)].status;
}

}  // namespace drover
