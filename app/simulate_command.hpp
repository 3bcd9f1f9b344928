#pragma once
// `drover simulate`: a master and thousands of simulated workers in one process, with faults
// injected from a seed. docs/cli.md documents the options and the output.

#include <ostream>
#include <string>
#include <vector>

namespace drover::app {

/// `drover simulate ARGS...` (`args` without the command name). Exit codes: 0 when every
/// module succeeded, 1 when the run did not succeed, 2 for usage errors.
int simulate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace drover::app
