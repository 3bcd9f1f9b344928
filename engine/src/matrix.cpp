#include <drover/graph.hpp>

namespace drover {

// Placeholder until matrix expansion lands: a matrix is reported instead of ignored.
std::vector<validation_problem> expand_matrix(pipeline& p) {
  std::vector<validation_problem> problems;
  for (const auto& m : p.modules) {
    if (m.matrix) problems.push_back({m.id, "matrix", "matrix expansion is not implemented yet"});
  }
  return problems;
}

}  // namespace drover
