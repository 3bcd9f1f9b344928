#include "addresses.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace drover::app {

namespace {

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n\v\f");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n\v\f");
  return text.substr(first, last - first + 1);
}

}  // namespace

// "HOST:PORT", "[::1]:PORT" or ":PORT" (loopback), or nothing when it is not one of those.
std::optional<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "127.0.0.1";
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int port = std::stoi(port_text);
  if (port > 65535) return std::nullopt;
  return std::pair{host, static_cast<std::uint16_t>(port)};
}

std::optional<host_port> parse_host_port(std::string_view text, std::string& problem) {
  const auto bad = [&](const std::string& why) -> std::optional<host_port> {
    problem = "--connect '" + std::string{text} + "': " + why;
    return std::nullopt;
  };
  host_port out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after the IPv6 address");
    out.host = std::string{text.substr(1, close - 1)};
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("expected HOST:PORT");
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("expected HOST:PORT");
    out.host = std::string{text.substr(0, colon)};
    if (out.host.find(':') != std::string::npos) {
      return bad("write an IPv6 address in brackets: [::1]:7700");
    }
    port_text = text.substr(colon + 1);
  }
  if (out.host.empty()) return bad("the host is empty");
  if (port_text.empty()) return bad("the port is empty");
  unsigned long port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9' || port > 65535) return bad("the port must be a number from 1 to 65535");
    port = port * 10 + static_cast<unsigned long>(c - '0');
  }
  if (port < 1 || port > 65535) return bad("the port must be a number from 1 to 65535");
  out.port = static_cast<std::uint16_t>(port);
  return out;
}

std::optional<std::string> read_token_file(const std::string& path, std::string& problem) {
  std::ifstream in(path);
  if (!in) {
    problem = "cannot read the token file '" + path + "': " + std::strerror(errno);
    return std::nullopt;
  }
  std::string line;
  std::getline(in, line);
  if (in.bad()) {
    problem = "cannot read the token file '" + path + "'";
    return std::nullopt;
  }
  const std::string_view token = trim(line);
  if (token.empty()) {
    problem = "the token file '" + path + "' is empty (the token is its first line)";
    return std::nullopt;
  }
  return std::string{token};
}

std::optional<std::string> read_token_file(const std::string& file, std::ostream& err,
                                           std::string_view command) {
  std::string problem;
  auto token = read_token_file(file, problem);
  if (!token) err << "drover " << command << ": " << problem << "\n";
  return token;
}

}  // namespace drover::app
