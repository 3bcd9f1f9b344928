#pragma once
// `drover worker`: runs the modules a master (`drover run FILE --listen ...`) assigns, until the
// master ends the run. docs/cli.md documents the options and exit codes.

#include "addresses.hpp"

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace drover::app {

/// A master's address as given to --connect.
/// `drover worker ARGS...` (`args` without the command name). Exit codes: 0 when the master
/// ended the run (or drained this worker), 1 when the worker gave up or was refused, 2 for
/// usage errors, 130 when SIGINT or SIGTERM stopped it.
int worker_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace drover::app
