// The service's HTTP server: an accept loop and one coroutine per connection, reading requests
// with Beast's parser under size and time limits and writing what http_routes.cpp decides.

#include <drover/coord/http_service.hpp>

#include "http_routes.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <vector>

namespace drover::coord {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using detail::http_answer;

struct http_service::state : std::enable_shared_from_this<http_service::state> {
  state(asio::any_io_executor ex, run_service& s, http_options o)
      : executor(std::move(ex)), service(s), options(std::move(o)), acceptor(executor) {}

  asio::any_io_executor executor;
  run_service& service;
  http_options options;
  tcp::acceptor acceptor;
  bool stopped = false;
  std::vector<std::weak_ptr<beast::tcp_stream>> connections;  // pruned on each accept

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }
  std::size_t live_connections() {
    std::erase_if(connections, [](const auto& c) { return c.expired(); });
    return connections.size();
  }
};

namespace {

using state_ptr = std::shared_ptr<http_service::state>;

std::string describe(const tcp::endpoint& e) {
  const auto address = e.address().to_string();
  return (e.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(e.port());
}

http::response<http::string_body> make_response(const http_answer& answer, unsigned version,
                                                bool keep_alive) {
  http::response<http::string_body> response{static_cast<http::status>(answer.status), version};
  response.set(http::field::server, "drover");
  response.set(http::field::content_type, answer.content_type);
  response.set(http::field::cache_control, "no-store");
  for (const auto& [name, value] : answer.headers)
    response.set(name, value);
  response.keep_alive(keep_alive);
  response.body() = answer.body;
  response.prepare_payload();
  return response;
}

// What a failed read of a request gets: a status for a request that was too big or malformed,
// nothing when the client went away or was too slow.
std::optional<http_answer> read_failure(const boost::system::error_code& ec,
                                        const http_options& options) {
  if (ec == http::error::header_limit) {
    return detail::error_answer(431, "request headers are larger than " +
                                         std::to_string(options.max_header_bytes) + " bytes");
  }
  if (ec == http::error::body_limit) {
    return detail::error_answer(
        413, "request body is larger than " + std::to_string(options.max_body_bytes) + " bytes");
  }
  if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
    return detail::error_answer(400, "malformed HTTP request: " + ec.message());
  }
  return std::nullopt;
}

http_answer answer_request(const http::request<http::string_body>& request,
                           http_service::state& s) {
  detail::http_request_view view;
  view.method = request.method_string();
  view.target = request.target();
  view.authorization = request[http::field::authorization];
  view.last_event_id = request["Last-Event-ID"];
  view.body = request.body();
  try {
    return detail::route(view, s.service, s.options.token);
  } catch (const std::exception& e) {
    return detail::error_answer(500, std::string("internal error: ") + e.what());
  }
}

// Formats a batch of events as SSE records and moves `after` past them.
std::string format_events(const event_batch& batch, std::int64_t& after) {
  std::string out;
  if (batch.skipped) out += ": some earlier events are no longer kept\n\n";
  std::uint64_t seq = batch.first_seq;
  for (const auto& e : batch.events) {
    out += "id: " + std::to_string(seq) + "\ndata: " + e + "\n\n";
    after = static_cast<std::int64_t>(seq++);
  }
  if (batch.finished) out += "event: end\ndata: {}\n\n";
  return out;
}

asio::awaitable<void> serve_events(state_ptr s, std::shared_ptr<beast::tcp_stream> stream,
                                   detail::event_stream request) {
  std::string head =
      "HTTP/1.1 200 OK\r\nServer: drover\r\nContent-Type: text/event-stream\r\n"
      "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  stream->expires_after(s->options.request_timeout);
  auto [head_error, head_bytes] =
      co_await asio::async_write(*stream, asio::buffer(head), asio::as_tuple(asio::use_awaitable));
  if (head_error) co_return;
  asio::steady_timer pause(stream->get_executor());
  auto quiet_since = std::chrono::steady_clock::now();
  std::int64_t after = request.after;
  while (!s->stopped) {
    auto batch = s->service.events_after(request.run, after, 512);
    if (!batch) co_return;
    std::string chunk = format_events(*batch, after);
    const auto now = std::chrono::steady_clock::now();
    if (chunk.empty() && now - quiet_since >= s->options.stream_keepalive)
      chunk = ": keepalive\n\n";
    if (!chunk.empty()) {
      // A reader that stops reading is cut after request_timeout; the run never waits for it.
      stream->expires_after(s->options.request_timeout);
      auto [ec, n] = co_await asio::async_write(*stream, asio::buffer(chunk),
                                                asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      quiet_since = now;
    }
    if (batch->finished) co_return;
    if (batch->events.empty()) {
      pause.expires_after(std::chrono::milliseconds{100});
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }
}

asio::awaitable<void> serve_connection(state_ptr s, std::shared_ptr<beast::tcp_stream> stream,
                                       std::string peer) {
  beast::flat_buffer buffer;
  while (!s->stopped) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(s->options.max_header_bytes));
    parser.body_limit(s->options.max_body_bytes);
    stream->expires_after(s->options.request_timeout);
    auto [ec, n] =
        co_await http::async_read(*stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == http::error::end_of_stream || s->stopped) break;
      auto refusal = read_failure(ec, s->options);
      s->log("http: " + peer + ": " + (refusal ? "bad request: " : "closed: ") + ec.message());
      if (refusal) {
        auto response = make_response(*refusal, 11, false);
        stream->expires_after(s->options.request_timeout);
        co_await http::async_write(*stream, response, asio::as_tuple(asio::use_awaitable));
      }
      break;
    }
    const auto& request = parser.get();
    http_answer answer = answer_request(request, *s);
    if (answer.stream) {
      co_await serve_events(s, stream, std::move(*answer.stream));
      break;
    }
    if (answer.status >= 400 && answer.status != 404) {
      s->log("http: " + peer + ": " + std::string(request.method_string()) + " " +
             std::string(request.target()) + " -> " + std::to_string(answer.status));
    }
    const bool keep_alive = request.keep_alive();
    auto response = make_response(answer, request.version(), keep_alive);
    stream->expires_after(s->options.request_timeout);
    auto [write_error, written] =
        co_await http::async_write(*stream, response, asio::as_tuple(asio::use_awaitable));
    if (write_error || !keep_alive) break;
  }
  boost::system::error_code ignored;
  stream->socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream->close();
}

asio::awaitable<void> accept_loop(state_ptr s) {
  asio::steady_timer backoff(s->executor);
  while (!s->stopped) {
    auto [ec, socket] = co_await s->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (s->stopped) break;
    if (ec) {
      // Out of descriptors, most likely: wait a little instead of spinning.
      s->log("http: accept failed: " + ec.message());
      backoff.expires_after(std::chrono::milliseconds{50});
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    boost::system::error_code peer_error;
    const auto remote = socket.remote_endpoint(peer_error);
    std::string peer = peer_error ? std::string("unknown peer") : describe(remote);
    if (s->live_connections() >= s->options.max_connections) {
      s->log("http: " + peer + ": refused, " + std::to_string(s->options.max_connections) +
             " connections are open (max_connections)");
      socket.close(peer_error);
      continue;
    }
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    s->connections.push_back(stream);
    asio::co_spawn(s->executor, serve_connection(s, stream, std::move(peer)), asio::detached);
  }
}

}  // namespace

http_service::http_service(asio::any_io_executor executor, run_service& service,
                           http_options options)
    : state_(std::make_shared<state>(std::move(executor), service, std::move(options))) {}

http_service::~http_service() {
  stop();
}

tcp::endpoint http_service::listen() {
  auto& s = *state_;
  const std::string where = s.options.address + ":" + std::to_string(s.options.port);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(
      s.options.address == "localhost" ? std::string("127.0.0.1") : s.options.address, ec);
  if (ec) throw http_error("http address '" + s.options.address + "' is not an IP address");
  if (!address.is_loopback() && !s.options.token) {
    throw http_error("http address " + where +
                     " is not a loopback address; serving it without a token is refused");
  }
  const tcp::endpoint endpoint{address, s.options.port};
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw http_error("cannot listen for http on " + where + ": " + ec.message());
  asio::co_spawn(s.executor, accept_loop(state_), asio::detached);
  return s.acceptor.local_endpoint();
}

void http_service::stop() {
  auto s = state_;
  asio::post(s->executor, [s] {
    if (s->stopped) return;
    s->stopped = true;
    boost::system::error_code ignored;
    s->acceptor.close(ignored);
    for (auto& weak : s->connections) {
      if (auto stream = weak.lock()) stream->socket().close(ignored);
    }
    s->connections.clear();
  });
}

}  // namespace drover::coord
