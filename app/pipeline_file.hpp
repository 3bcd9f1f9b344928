#pragma once
// Pipeline files: JSON (comments and trailing commas allowed) read into a drover::pipeline,
// with every problem reported at once as file:line:column. The format is documented in
// docs/pipeline-format.md.

#include "source_map.hpp"

#include <drover/modules/registry.hpp>
#include <drover/pipeline.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace drover::app {

/// One thing wrong with a pipeline file.
struct pipeline_problem {
  text_position position;         ///< line 0 when the problem has no place in the text
  std::string module;             ///< the module's id; empty when unknown or pipeline-level
  std::size_t module_number = 0;  ///< 1-based place in `modules` when the id is unknown; else 0
  std::string field;    ///< e.g. "retries", "backoff.jitter"; empty when the message says it
  std::string message;  ///< e.g. "expected a non-negative integer"
};

/// One line: `pipeline.json:12:7: module 'build': field 'retries': expected a non-negative
/// integer`.
std::string format_problem(std::string_view file, const pipeline_problem& problem);

/// One line, as format_problem with "warning: " after the position: `pipeline.json:4:60:
/// warning: module 'build': field 'params.cwd': ...`.
std::string format_warning(std::string_view file, const pipeline_problem& warning);

/// A pipeline read from a file, or what is wrong with the file.
struct loaded_pipeline {
  /// Complete when ok(): every kind resolved and every matrix expanded, so it holds the
  /// instances (`build[linux]`) instead of the matrix modules.
  drover::pipeline pipeline;
  std::vector<pipeline_problem> problems;  ///< in text order
  /// Valid, but likely not what was meant (an exec module with `cwd` and no inputs, which is
  /// not cached); in text order. Shown by `drover validate` and `drover run --cache`.
  std::vector<pipeline_problem> warnings;
  bool ok() const noexcept { return problems.empty(); }
};

/// Reads pipeline JSON `text`: checks every field, resolves kinds through `kinds`, expands every
/// matrix (drover::expand_matrix) and checks the dependency graph and the constraints
/// (drover::build_graph). A problem the engine finds about an instance points at the module
/// the file declares. `name` is used when the text sets none.
loaded_pipeline parse_pipeline(std::string_view text, const modules::registry& kinds,
                               std::string name = "pipeline");

/// Reads the file at `file` and parses it; the pipeline's name defaults to the file's stem.
/// An unreadable file is reported as a problem without a position.
loaded_pipeline load_pipeline_file(const std::filesystem::path& file,
                                   const modules::registry& kinds);

/// Parses a duration: integer milliseconds, or a string with a unit: "500ms", "30s", "2m",
/// "1h". Returns false when `text` is not one.
bool parse_duration(std::string_view text, std::chrono::milliseconds& out);

/// The candidate closest to `word` within edit distance 2 (a swap of two neighbours counts as
/// one edit), or empty when there is none.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace drover::app
