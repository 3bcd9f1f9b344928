#pragma once
// Validation of module_io: the globs of inputs and outputs, input_env names, and outputs that
// two unordered modules could both write. Internal to the engine; build_graph calls these.

#include <drover/graph.hpp>
#include <drover/pipeline.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace drover::detail {

/// Checks `m.io` (which must be set): every input and output is a valid glob (resource_glob.hpp),
/// outputs stay inside the workspace (not absolute, no '.' or '..' segment), inputs have no '.'
/// segment and '..' segments only at the start of a relative glob (absolute inputs are fine:
/// inputs are only read), and every input_env entry is an environment variable name (letters,
/// digits and '_', not starting with a digit). Problems name the entry as the field: `outputs[2]`,
/// `input_env[0]`.
void check_module_io(const module_view& m, std::vector<validation_problem>& problems);

/// Reports every pair of modules whose outputs can name the same file while nothing orders
/// them: neither reaches the other through dependencies and they hold no conflicting claims
/// (overlapping, at least one a write). Each problem names both modules and both globs, under
/// the earlier module's field `outputs[i]`; at most 10 are reported. `topological_order` lists
/// every module of the acyclic graph `g` once, dependencies first.
/// Cost: nothing beyond a scan when fewer than two modules declare outputs; literal outputs
/// are compared by hashing, each wildcard output against every other output, and a depth-first
/// walk (bounded by topological position) from each module that shares an output with a later
/// one.
void report_output_conflicts(const pipeline& p, const graph& g,
                             std::span<const std::uint32_t> topological_order,
                             std::vector<validation_problem>& problems);

}  // namespace drover::detail
