#pragma once
// Parsing one command's arguments: its options and at most one positional argument.

#include <boost/program_options.hpp>

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace drover::app {

/// Parses `args` against `options` plus one optional positional argument stored under
/// `positional` (a FILE, a RUN, ...). On a usage error, says so on `err` as `drover COMMAND:
/// ...` with a pointer to --help, and returns nothing.
std::optional<boost::program_options::variables_map> parse_arguments(
    const std::string& command, const std::vector<std::string>& args,
    const boost::program_options::options_description& options, const char* positional,
    std::ostream& err);

}  // namespace drover::app
