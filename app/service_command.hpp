#pragma once
// `drover serve` and the commands that talk to it: submit, status, wait, cancel, workers and
// drain (docs/service.md).

#include <drover/coord/service.hpp>

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace drover::app {

/// Whether `name` is one of the service commands.
bool is_service_command(std::string_view name);

/// Runs service command `command` with the arguments after it.
int service_command(const std::string& command, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err);

/// The options of `drover serve` (serve_command.cpp).
void add_serve_options(boost::program_options::options_description& options);

/// The service's pipeline_parser: a submitted file's text read with the built-in kinds, or its
/// problems as `name:line:col: ...` lines. The pipeline's name defaults to `name`'s stem.
coord::parsed_pipeline parse_submission(std::string_view text, const std::string& name);

/// `drover serve` with its parsed options: runs until SIGINT or SIGTERM.
int serve_command(const boost::program_options::variables_map& vm, std::ostream& out,
                  std::ostream& err);

}  // namespace drover::app
