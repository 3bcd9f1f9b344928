#pragma once
// Addresses and tokens as the command line gives them: shared by `run --listen`, `worker`,
// `serve` and the service's clients.

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace drover::app {

/// "HOST:PORT", "[::1]:PORT" or ":PORT" (loopback), or nothing when it is not one of those.
std::optional<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text);

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

/// The same, saying on `err` why there is none, as `drover <command>: ...`.
std::optional<std::string> read_token_file(const std::string& file, std::ostream& err,
                                           std::string_view command = "run");

}  // namespace drover::app
