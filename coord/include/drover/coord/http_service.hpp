#pragma once
// The HTTP face of a run_service: the JSON API, Server-Sent Events, Prometheus metrics, health
// checks and the dashboard page, with Boost.Beast. docs/service.md lists every route.
//
//     drover::coord::run_service service{io.get_executor(), service_options};
//     drover::coord::http_options options;
//     options.port = 8080;                         // 0 picks a free port
//     drover::coord::http_service http{io.get_executor(), service, options};
//     auto where = http.listen();                  // throws http_error naming the address
//     io.run();
//
// Limits keep one client from hurting the others or the runs: request headers and bodies
// have size limits, a request must arrive whole within request_timeout, a response must be
// taken within it, and the number of open connections is bounded. A bad request gets a 4xx
// with {"error": "..."} and changes nothing. With a token (required off loopback) every route
// but `/`, `/health` and `/ready` needs `Authorization: Bearer <token>`, compared in constant
// time.

#include <drover/coord/service.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace drover::coord {

struct http_options {
  /// An IP address or "localhost". Anything but loopback needs a `token`.
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: an ephemeral port; listen() returns the one bound
  std::optional<std::string> token;
  std::size_t max_header_bytes = 16 * 1024;           ///< larger: 431
  std::size_t max_body_bytes = std::size_t{8} << 20;  ///< larger: 413
  /// A request must arrive whole, and each write of a response be taken, within this.
  std::chrono::milliseconds request_timeout{30000};
  std::size_t max_connections = 512;  ///< beyond it new connections are closed at once
  /// How often an idle event stream gets a comment line, so that proxies keep it open.
  std::chrono::milliseconds stream_keepalive{15000};
  /// Where the server reports refused connections and bad requests, each naming the peer.
  std::function<void(std::string_view)> log;
};

class http_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class http_service {
 public:
  /// `service` must outlive this object and every connection it serves.
  http_service(boost::asio::any_io_executor executor, run_service& service,
               http_options options = {});
  ~http_service();
  http_service(const http_service&) = delete;
  http_service& operator=(const http_service&) = delete;

  /// Checks the options, binds and starts accepting. Throws http_error.
  boost::asio::ip::tcp::endpoint listen();
  /// Stops accepting and closes every connection, event streams included.
  void stop();

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace drover::coord
