#include <drover/engine.hpp>
#include <drover/plan.hpp>

#include <limits>

namespace drover {

namespace {

// The record of module i: its policies resolved against the pipeline's defaults, so the
// scheduler reads one small struct instead of the module's description.
detail::module_record make_record(const pipeline& p, const graph& g, graph::index i) {
  namespace flag = detail::module_flag;
  const module_spec& m = p.modules[i];
  detail::module_record r;
  r.priority = m.priority;
  r.critical_path = g.critical_path(i);
  const int retries = m.retries.value_or(p.defaults.retries);
  r.retries = static_cast<std::uint16_t>(
      std::clamp(retries, 0, static_cast<int>(std::numeric_limits<std::uint16_t>::max())));
  if (m.always_run) r.flags |= flag::always_run;
  if (m.ignore_failure) r.flags |= flag::ignore_failure;
  if (m.skip_if) r.flags |= flag::has_skip_if;
  if (m.timeout || p.defaults.timeout) r.flags |= flag::has_timeout;
  if (const module_constraints* c = m.constraints.get()) {
    if (c->pin_local) r.flags |= flag::pin_local;
    if (!c->required_capabilities.empty()) r.flags |= flag::requires_labels;
  }
  const bool opted_out = m.io && !m.io->cacheable;
  const bool fingerprintable = !m.kind.empty() || (m.io && !m.io->version.empty());
  if (!opted_out && fingerprintable) r.flags |= flag::cacheable;
  return r;
}

}  // namespace

plan::plan(drover::pipeline p, drover::graph g) : pipeline_(std::move(p)), graph_(std::move(g)) {
  records_.reserve(graph_.size());
  for (graph::index i = 0; i < graph_.size(); ++i)
    records_.push_back(make_record(pipeline_, graph_, i));
}

std::optional<plan::index> plan::find(std::string_view id) const noexcept {
  for (index i = 0; i < size(); ++i) {
    if (pipeline_.modules[i].id == id) return i;
  }
  return std::nullopt;
}

prepare_result prepare(pipeline p) {
  prepare_result out;
  out.problems = expand_matrix(p);
  if (!out.problems.empty()) return out;
  graph_result built = build_graph(p);
  if (!built.ok()) {
    out.problems = std::move(built.problems);
    return out;
  }
  out.plan = drover::plan{std::move(p), std::move(*built.graph)};
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
