#pragma once
// A pipeline's dependency graph as text, for `drover graph`.

#include <drover/pipeline.hpp>

#include <ostream>

namespace drover::app {

/// Graphviz: `digraph NAME { ... }`, an edge from each dependency to its dependent.
void print_graph_dot(const pipeline& p, std::ostream& out);
/// A Mermaid flowchart; nodes are n0, n1, ... labelled with the module ids.
void print_graph_mermaid(const pipeline& p, std::ostream& out);

}  // namespace drover::app
