#pragma once
// What the pipeline commands (commands.cpp: validate, plan, graph; run_command.cpp: run)
// share: loading a pipeline file and applying a selection, with their problems reported.

#include "selection.hpp"

#include <drover/pipeline.hpp>

#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace drover::app {

/// "1 problem", "3 problems".
std::string plural(std::size_t n, std::string_view word);

enum class warnings { show, hide };

/// Loads `file` and prints its problems, if any, one per line; or, when it is valid and asked
/// to, its warnings.
std::optional<pipeline> load_or_report(const std::string& file, std::ostream& err,
                                       warnings shown = warnings::hide);

/// Applies `chosen` to `p`; prints what it names that does not exist. False then.
bool select_or_report(pipeline& p, const selection& chosen, std::ostream& err);

}  // namespace drover::app
