#include "graph_output.hpp"

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace drover::app {

void print_graph_dot(const pipeline& p, std::ostream& out) {
  auto quoted = [](std::string_view s) {
    std::string q = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') q += '\\';
      q += c;
    }
    return q + '"';
  };
  out << "digraph " << quoted(p.name) << " {\n  rankdir=LR;\n";
  const std::vector<module_spec> modules = p.specs();
  for (const auto& m : modules)
    out << "  " << quoted(m.id) << ";\n";
  for (const auto& m : modules) {
    for (const auto& dep : m.deps)
      out << "  " << quoted(dep) << " -> " << quoted(m.id) << ";\n";
  }
  out << "}\n";
}

void print_graph_mermaid(const pipeline& p, std::ostream& out) {
  // Mermaid node ids must be plain words, so nodes are n0, n1, ... labelled with the ids.
  std::unordered_map<std::string_view, std::size_t> node_of;
  out << "flowchart LR\n";
  for (std::size_t i = 0; i < p.size(); ++i) {
    node_of.emplace(p.id(i), i);
    std::string label;
    for (char c : p.id(i)) {
      if (c == '"') {
        label += "#quot;";
      } else {
        label += c;
      }
    }
    out << "  n" << i << "[\"" << label << "\"]\n";
  }
  for (std::size_t i = 0; i < p.size(); ++i) {
    for (const auto& dep : p.module(i).deps()) {
      out << "  n" << node_of.at(dep) << " --> n" << i << '\n';
    }
  }
}

}  // namespace drover::app
