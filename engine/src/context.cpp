#include <drover/context.hpp>

#include <drover/detail/attempt_scope.hpp>
#include "work_dir.hpp"

#include <stdexcept>

namespace drover {

std::string_view module_context::id() const noexcept {
  return scope_->module.id();
}

std::uint32_t module_context::attempt() const noexcept {
  return scope_->attempt;
}

std::string_view module_context::worker() const noexcept {
  return scope_->worker;
}

module_view module_context::spec() const noexcept {
  return scope_->module;
}

const boost::json::value& module_context::params() const noexcept {
  return scope_->module.params();
}

std::string_view module_context::matrix_target() const noexcept {
  const auto* instance = scope_->module.instance();
  return instance ? std::string_view{instance->target} : std::string_view{};
}

std::string_view module_context::matrix_value(std::string_view axis) const noexcept {
  if (const auto* instance = scope_->module.instance()) {
    for (const auto& [name, value] : instance->values) {
      if (name == axis) return value;
    }
  }
  return {};
}

const std::filesystem::path& module_context::log_dir() const noexcept {
  return scope_->environment->log_dir;
}

const secret_masker* module_context::secrets() const noexcept {
  return scope_->environment->secrets.get();
}

void module_context::note(std::string text) const {
  if (scope_->environment->note) scope_->environment->note(std::move(text));
}

const std::filesystem::path& module_context::workspace() const noexcept {
  return scope_->environment->workspace;
}

const std::filesystem::path& module_context::work_dir() {
  if (scope_->work_dir.empty()) {
    scope_->work_dir = detail::create_work_dir(workspace(), id(), scope_->attempt);
  }
  return scope_->work_dir;
}

boost::asio::any_io_executor module_context::get_executor() const noexcept {
  return *scope_->executor;
}

namespace {

detail::dependency_results::entry find_dependency(const detail::attempt_scope& scope,
                                                  std::string_view dep) {
  if (scope.dependencies) {
    if (auto found = scope.dependencies->find(scope.index, dep)) return *found;
  }
  throw std::invalid_argument("module '" + std::string(scope.module.id()) +
                              "' asked for the result of '" + std::string(dep) +
                              "', which is not one of its dependencies");
}

}  // namespace

// Dependencies were terminal before this module was dispatched, and the hand-over to the
// worker orders those writes before these reads.
const boost::json::value& module_context::result(std::string_view dep) const {
  static const boost::json::value null_value;
  const auto found = find_dependency(*scope_, dep);
  return found.value ? *found.value : null_value;
}

std::vector<std::string_view> module_context::dependency_ids() const {
  if (!scope_->dependencies) return {};
  return scope_->dependencies->ids(scope_->index);
}

void module_context::writes_in_workspace() noexcept {
  scope_->writes_in_workspace = true;
}

bool module_context::keep_workdirs() const noexcept {
  return scope_->environment->keep_workdirs;
}

module_status module_context::status_of(std::string_view dep) const {
  return find_dependency(*scope_, dep).status;
}

}  // namespace drover
