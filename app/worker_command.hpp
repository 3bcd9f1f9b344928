#pragma once
// `drover worker`: runs the modules a master (`drover run FILE --listen ...`) assigns, until the
// master ends the run. docs/cli.md documents the options and exit codes.

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace drover::app {

/// A master's address as given to --connect.
struct host_port {
  std::string host;  ///< without brackets, also for IPv6
  std::uint16_t port = 0;
};

/// Parses "HOST:PORT" or "[IPV6]:PORT" (PORT 1 to 65535). Returns nothing and sets `problem`
/// when the text is not one.
std::optional<host_port> parse_host_port(std::string_view text, std::string& problem);

/// The token in a --token-file: its first line without surrounding whitespace. Returns nothing
/// and sets `problem` when the file cannot be read or that line is empty.
std::optional<std::string> read_token_file(const std::string& path, std::string& problem);

/// `drover worker ARGS...` (`args` without the command name). Exit codes: 0 when the master
/// ended the run (or drained this worker), 1 when the worker gave up or was refused, 2 for
/// usage errors, 130 when SIGINT or SIGTERM stopped it.
int worker_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace drover::app
