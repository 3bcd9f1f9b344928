#include <drover/engine.hpp>
#include <drover/graph.hpp>

namespace drover {

prepare_result prepare(pipeline p) {
  prepare_result out;
  out.problems = expand_matrix(p);
  if (!out.problems.empty()) return out;
  graph_result built = build_graph(p);
  if (!built.ok()) {
    out.problems = std::move(built.problems);
    return out;
  }
  out.prepared = prepared_pipeline{std::move(p), std::move(*built.graph)};
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
