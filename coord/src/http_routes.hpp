#pragma once
// What each HTTP request of the service gets, decided without any I/O: the route table of
// docs/service.md. http_service.cpp reads requests and writes these answers.

#include <drover/coord/service.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace drover::coord::detail {

struct http_request_view {
  std::string_view method;         ///< "GET", "POST", ...
  std::string_view target;         ///< path and query, as sent
  std::string_view authorization;  ///< the Authorization header, or empty
  std::string_view last_event_id;  ///< the Last-Event-ID header, or empty
  std::string body;
};

/// An event stream to serve instead of a plain answer.
struct event_stream {
  std::string run;
  std::int64_t after = -1;  ///< the last seq the client has; -1: from the start
};

struct http_answer {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<event_stream> stream;
};

/// The answer to one request. `token`: the bearer token required off loopback, or nothing.
http_answer route(const http_request_view& request, run_service& service,
                  const std::optional<std::string>& token);

/// {"error": message} with `status`.
http_answer error_answer(unsigned status, std::string_view message);

/// Decodes %XX and '+' in a query value; nothing when an escape is malformed.
std::optional<std::string> percent_decode(std::string_view text);

/// Constant-time comparison (its time depends only on the lengths).
bool same_secret(std::string_view a, std::string_view b) noexcept;

}  // namespace drover::coord::detail
