#include "service_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace drover::app {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

http_reply http_call(const service_address& to, const std::string& method,
                     const std::string& target, const std::string& body,
                     std::chrono::milliseconds timeout) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  http::request<http::string_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, to.text());
  request.set(http::field::user_agent, "drover");
  if (to.token) request.set(http::field::authorization, "Bearer " + *to.token);
  if (!body.empty()) request.set(http::field::content_type, "application/json");
  request.body() = body;
  request.prepare_payload();
  request.keep_alive(false);

  http::response_parser<http::string_body> parser;
  parser.body_limit(std::uint64_t{1} << 30);
  beast::flat_buffer buffer;
  boost::system::error_code failure;
  asio::ip::tcp::resolver resolver(io);
  resolver.async_resolve(
      to.host, std::to_string(to.port),
      [&](boost::system::error_code ec, asio::ip::tcp::resolver::results_type endpoints) {
        if (ec) {
          failure = ec;
          return;
        }
        stream.expires_after(timeout);
        stream.async_connect(endpoints, [&](boost::system::error_code ec, auto) {
          if (ec) {
            failure = ec;
            return;
          }
          http::async_write(stream, request, [&](boost::system::error_code ec, std::size_t) {
            if (ec) {
              failure = ec;
              return;
            }
            http::async_read(stream, buffer, parser,
                             [&](boost::system::error_code ec, std::size_t) { failure = ec; });
          });
        });
      });
  io.run();
  if (failure) {
    throw service_unreachable("cannot reach drover serve at " + to.text() + ": " +
                              failure.message());
  }
  http_reply reply;
  reply.status = parser.get().result_int();
  reply.body = parser.get().body();
  reply.retry_after = std::string(parser.get()[http::field::retry_after]);
  return reply;
}

}  // namespace drover::app
