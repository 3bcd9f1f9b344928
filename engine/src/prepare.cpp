#include <drover/engine.hpp>
#include <drover/plan.hpp>

#include <algorithm>
#include <limits>

namespace drover {

std::optional<graph> build_graph_in_place(pipeline& p, std::vector<std::uint32_t>& module_of,
                                          std::vector<validation_problem>& problems);

plan::plan(drover::pipeline p, drover::graph g, std::vector<index> module_of)
    : pipeline_(std::move(p)), graph_(std::move(g)), module_of_(std::move(module_of)) {
  // Resolve what the scheduler reads against the defaults, once, into the records.
  namespace flag = detail::module_flag;
  const int default_retries = std::clamp(
      pipeline_.defaults.retries, 0, static_cast<int>(std::numeric_limits<std::uint16_t>::max()));
  for (index i = 0; i < size(); ++i) {
    detail::module_record& r = pipeline_.records_[i];
    if (!r.has(flag::own_retries)) r.retries = static_cast<std::uint16_t>(default_retries);
    if (pipeline_.defaults.timeout) r.flags |= flag::has_timeout;
    const detail::module_extras* e = pipeline_.extras(i);
    bool fingerprintable = false;
    bool opted_out = false;
    if (e != nullptr) {
      if (const module_constraints* c = e->constraints.get()) {
        if (c->pin_local) r.flags |= flag::pin_local;
        if (!c->required_capabilities.empty()) r.flags |= flag::requires_labels;
      }
      if (e->io) r.flags |= flag::has_io;
      opted_out = e->io && !e->io->cacheable;
      fingerprintable = !e->kind.empty() || (e->io && !e->io->version.empty());
    }
    if (!opted_out && fingerprintable) r.flags |= flag::cacheable;
  }
  constraints_ = detail::constraint_table::compile(pipeline_);
}

std::optional<plan::index> plan::find(std::string_view id) const noexcept {
  if (module_of_.empty()) return std::nullopt;
  const auto symbol = pipeline_.symbol_of_text(id);
  if (!symbol || *symbol >= module_of_.size()) return std::nullopt;
  const index i = module_of_[*symbol];
  if (i == static_cast<index>(-1)) return std::nullopt;
  return i;
}

prepare_result prepare(pipeline p) {
  prepare_result out;
  out.problems = expand_matrix(p);
  if (!out.problems.empty()) return out;
  std::vector<std::uint32_t> module_of;
  std::optional<graph> g = build_graph_in_place(p, module_of, out.problems);
  if (!g) return out;
  out.plan = drover::plan{std::move(p), std::move(*g), std::move(module_of)};
  return out;
}

std::string_view local_os_label() noexcept {
#if defined(__linux__)
  return "linux";
#elif defined(_WIN32)
  return "windows";
#elif defined(__APPLE__)
  return "macos";
#else
  return "unknown";
#endif
}

std::span<const std::string_view> os_labels() noexcept {
  static constexpr std::string_view labels[] = {"linux", "macos", "windows", "unknown"};
  return labels;
}

}  // namespace drover
