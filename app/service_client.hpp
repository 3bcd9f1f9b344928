#pragma once
// A small blocking HTTP client for the commands that talk to `drover serve` (submit, status,
// wait, cancel, workers, drain).

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace drover::app {

/// Where the service is and how to authenticate to it.
struct service_address {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::optional<std::string> token;  ///< sent as `Authorization: Bearer`
  std::string text() const { return host + ":" + std::to_string(port); }
};

struct http_reply {
  unsigned status = 0;
  std::string body;
  std::string retry_after;  ///< the Retry-After header, if any
};

/// The service cannot be reached or answered with something that is not HTTP.
class service_unreachable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One request; throws service_unreachable naming the address when no answer arrives within
/// `timeout`.
http_reply http_call(const service_address& to, const std::string& method,
                     const std::string& target, const std::string& body = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds{30});

}  // namespace drover::app
