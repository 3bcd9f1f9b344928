// Fuzz target: the service's HTTP request path, from bytes on the socket to the answer
// (coord/src/http_service.cpp reads with Beast's parser under the service's size limits;
// coord/src/http_routes.cpp decides). Each input is parsed as one request; a whole request is
// routed to a fresh run_service whose io_context never runs, so a submitted pipeline is
// queued and never executed. Every answer must be a valid status with a JSON or text body.

#include "fuzz_target.hpp"

#include "http_routes.hpp"
#include "service_command.hpp"

#include <drover/coord/http_service.hpp>
#include <drover/coord/service.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>

#include <optional>
#include <string>

namespace coord = drover::coord;
namespace http = boost::beast::http;

DROVER_FUZZ_TARGET(http_request) {
  const coord::http_options limits;
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(limits.max_body_bytes);
  parser.eager(true);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (!ec && !parser.is_done()) parser.put_eof(ec);
  if (ec || !parser.is_done()) return 0;  // the server answers 4xx or closes; nothing routed

  boost::asio::io_context io;
  coord::service_options options;
  options.parse = drover::app::parse_submission;  // what drover serve reads submissions with
  options.workers = 1;
  options.max_queued_runs = 2;
  coord::run_service service{io.get_executor(), options};
  service.start();

  const auto& request = parser.get();
  coord::detail::http_request_view view;
  view.method = request.method_string();
  view.target = request.target();
  view.authorization = request[http::field::authorization];
  view.last_event_id = request["Last-Event-ID"];
  view.body = request.body();
  // Every other request is judged as if it came from off loopback, where a token is required.
  const std::optional<std::string> token =
      (size % 2) ? std::optional<std::string>("s3cret") : std::nullopt;
  const auto answer = coord::detail::route(view, service, token);
  drover::fuzz::check(answer.status >= 200 && answer.status < 600, "the status is valid");
  drover::fuzz::check(!answer.content_type.empty(), "the answer has a content type");
  const bool authorized = !token || view.authorization == "Bearer s3cret";
  if (!authorized && answer.status < 400) {
    drover::fuzz::check(answer.content_type.starts_with("text/html") ||
                            answer.body == "{\"status\":\"ok\"}\n" ||
                            answer.body.starts_with(R"({"ready")"),
                        "without the token only the page, health and ready are served");
  }
  service.stop();
  return 0;
}
