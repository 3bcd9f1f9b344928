// http_service: the routes, the token, Server-Sent Events, and hostile clients that must not
// disturb a run in progress.
#define BOOST_TEST_MODULE http_service
#include <drover/coord/http_service.hpp>

#include "../../coord/src/http_routes.hpp"
#include "../common/printing.hpp"
#include "service_test_support.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <sstream>
#include <thread>

namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using drover::coord::http_options;
using drover::coord::http_service;
using drover::coord::run_service;
using drover::coord::service_options;

namespace {

struct http_fixture {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
  run_service service;
  http_service http;
  std::uint16_t port = 0;
  std::thread thread;

  explicit http_fixture(http_options options = {}, service_options s = {})
      : service(io.get_executor(), with_parser(std::move(s))),
        http(io.get_executor(), service, std::move(options)) {
    service.start();
    port = http.listen().port();
    thread = std::thread([this] { io.run(); });
  }
  ~http_fixture() {
    http.stop();
    service.stop();
    guard.reset();
    thread.join();
  }
  static service_options with_parser(service_options s) {
    s.parse = drover::service_test::text_pipeline;
    return s;
  }

  tcp::socket connect() {
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval limit{10, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    return socket;
  }
  // Sends `request` as it is and reads until the server closes (or 10 s pass).
  std::string exchange(const std::string& request) {
    auto socket = connect();
    boost::system::error_code ec;
    asio::write(socket, asio::buffer(request), ec);
    std::string response;
    char buffer[4096];
    for (;;) {
      const auto n = socket.read_some(asio::buffer(buffer), ec);
      if (ec) break;
      response.append(buffer, n);
    }
    return response;
  }
  std::string call(const std::string& method, const std::string& target,
                   const std::string& body = {}, const std::string& headers = {}) {
    return exchange(method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                    headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }
};

unsigned status_of(const std::string& response) {
  if (response.size() < 12 || !response.starts_with("HTTP/1.1 ")) return 0;
  return static_cast<unsigned>(std::stoi(response.substr(9, 3)));
}

std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string{} : response.substr(end + 4);
}

json::object json_of(const std::string& response) {
  return json::parse(body_of(response)).as_object();
}

std::string submit(http_fixture& f, const std::string& text) {
  const auto response = f.call("POST", "/api/runs?name=t.json", text);
  BOOST_TEST_REQUIRE(status_of(response) == 202u, response);
  return std::string(json_of(response).at("run").as_string());
}

std::string wait_finished(http_fixture& f, const std::string& run) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::string status;
  while (std::chrono::steady_clock::now() < deadline) {
    status = json_of(f.call("GET", "/api/runs/" + run)).at("status").as_string();
    if (status != "queued" && status != "running") break;
    std::this_thread::sleep_for(20ms);
  }
  return status;
}

}  // namespace

BOOST_AUTO_TEST_CASE(routes_answer_with_json_and_the_right_status, *boost::unit_test::timeout(60)) {
  http_fixture f;
  BOOST_TEST(status_of(f.call("GET", "/health")) == 200u);
  BOOST_TEST(json_of(f.call("GET", "/ready")).at("ready").as_bool());
  const auto page = f.call("GET", "/");
  BOOST_TEST(status_of(page) == 200u);
  BOOST_TEST(page.find("Content-Type: text/html") != std::string::npos);
  BOOST_TEST(status_of(f.call("GET", "/nowhere")) == 404u);
  BOOST_TEST(status_of(f.call("DELETE", "/api/runs")) == 405u);
  BOOST_TEST(status_of(f.call("POST", "/api/runs", "")) == 400u);
  const auto invalid = f.call("POST", "/api/runs?name=bad.json", "\n");
  BOOST_TEST(status_of(invalid) == 400u);
  BOOST_TEST(json_of(invalid).at("error").as_string() == "bad.json:1:1: no modules\n");
  BOOST_TEST(status_of(f.call("POST", "/api/runs?name=a%2", "a 1")) == 400u);
  BOOST_TEST(status_of(f.call("POST", "/api/runs?name=..%2Fx", "a 1")) == 400u);

  const auto run = submit(f, "a 10\nb 10 a\n");
  BOOST_TEST(wait_finished(f, run) == "succeeded");
  const auto shown = json_of(f.call("GET", "/api/runs/" + run));
  BOOST_TEST(shown.at("name").as_string() == "t.json");
  BOOST_TEST(shown.at("modules").as_array().size() == 2u);
  BOOST_TEST(shown.at("modules").as_array()[1].at("deps").as_array()[0].as_string() == "a");
  BOOST_TEST(status_of(f.call("POST", "/api/runs/" + run + "/cancel")) == 409u);
  BOOST_TEST(status_of(f.call("POST", "/api/runs/r-none/cancel")) == 404u);
  BOOST_TEST(status_of(f.call("GET", "/api/runs/r-none")) == 404u);
  BOOST_TEST(json_of(f.call("GET", "/api/runs")).at("runs").as_array().size() == 1u);
  BOOST_TEST(status_of(f.call("GET", "/api/workers")) == 200u);
  BOOST_TEST(status_of(f.call("POST", "/api/workers/w1/drain")) == 404u);
  const auto metrics = f.call("GET", "/metrics");
  BOOST_TEST(status_of(metrics) == 200u);
  BOOST_TEST(metrics.find("text/plain; version=0.0.4") != std::string::npos);
  BOOST_TEST(body_of(metrics).find("drover_runs_submitted_total 1\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_token_guards_everything_but_the_page_and_health,
                     *boost::unit_test::timeout(60)) {
  http_options options;
  options.token = "s3cret";
  http_fixture f(options);
  const auto refused = f.call("GET", "/api/runs");
  BOOST_TEST(status_of(refused) == 401u);
  BOOST_TEST(refused.find("WWW-Authenticate: Bearer") != std::string::npos);
  BOOST_TEST(refused.find("s3cret") == std::string::npos);
  BOOST_TEST(status_of(f.call("GET", "/metrics", "", "Authorization: Bearer wrong\r\n")) == 401u);
  BOOST_TEST(status_of(f.call("GET", "/metrics", "", "Authorization: Bearer s3cre\r\n")) == 401u);
  BOOST_TEST(status_of(f.call("GET", "/api/runs", "", "Authorization: Bearer s3cret\r\n")) == 200u);
  BOOST_TEST(status_of(f.call("GET", "/health")) == 200u);
  BOOST_TEST(status_of(f.call("GET", "/")) == 200u);
  BOOST_TEST(drover::coord::detail::same_secret("abc", "abc"));
  BOOST_TEST(!drover::coord::detail::same_secret("abc", "abd"));
  BOOST_TEST(!drover::coord::detail::same_secret("abc", ""));
  BOOST_TEST(!drover::coord::detail::same_secret("", "abc"));
}

BOOST_AUTO_TEST_CASE(off_loopback_needs_a_token) {
  asio::io_context io;
  service_options s;
  s.parse = drover::service_test::text_pipeline;
  run_service service(io.get_executor(), s);
  http_options options;
  options.address = "0.0.0.0";
  http_service open(io.get_executor(), service, options);
  BOOST_CHECK_THROW(open.listen(), drover::coord::http_error);
  options.address = "not-an-address";
  http_service bad(io.get_executor(), service, options);
  BOOST_CHECK_THROW(bad.listen(), drover::coord::http_error);
  options.address = "0.0.0.0";
  options.token = "t";
  http_service guarded(io.get_executor(), service, options);
  BOOST_TEST(guarded.listen().port() > 0);
}

BOOST_AUTO_TEST_CASE(hostile_clients_leave_a_run_in_progress_alone,
                     *boost::unit_test::timeout(90)) {
  http_options options;
  options.max_header_bytes = 4096;
  options.max_body_bytes = 4096;
  options.request_timeout = 500ms;
  options.max_connections = 16;
  http_fixture f(options);
  const auto run = submit(f, "a 300\nb 300 a\nc 300 b\n");

  BOOST_TEST(status_of(f.call("GET", "/health", "", "X-Big: " + std::string(8000, 'a') + "\r\n")) ==
             431u);
  BOOST_TEST(status_of(f.call("POST", "/api/runs", std::string(8000, 'a'))) == 413u);
  BOOST_TEST(status_of(f.exchange(std::string("\x01\x02 garbage\r\n\r\n", 15))) == 400u);
  BOOST_TEST(status_of(f.exchange("GET /health HTTP/1.1\r\nContent-Length: nope\r\n\r\n")) == 400u);

  // Slow clients: half a request line, never finished, is closed after request_timeout.
  std::vector<tcp::socket> slow;
  for (int i = 0; i < 4; ++i) {
    slow.push_back(f.connect());
    asio::write(slow.back(), asio::buffer(std::string("GET /heal")));
  }
  // A flood past max_connections: the extra ones are closed at once, the rest time out.
  std::vector<tcp::socket> flood;
  for (int i = 0; i < 24; ++i)
    flood.push_back(f.connect());
  const auto started = std::chrono::steady_clock::now();
  for (auto& s : slow) {
    char byte;
    boost::system::error_code ec;
    s.read_some(asio::buffer(&byte, 1), ec);
    BOOST_TEST(ec.failed());  // closed by the server, without an answer
  }
  BOOST_TEST((std::chrono::steady_clock::now() - started < 8s));
  for (auto& s : flood) {
    char byte;
    boost::system::error_code ec;
    s.read_some(asio::buffer(&byte, 1), ec);
    BOOST_TEST(ec.failed());
  }
  flood.clear();
  BOOST_TEST(status_of(f.call("GET", "/health")) == 200u);
  BOOST_TEST(wait_finished(f, run) == "succeeded");
  const auto shown = json_of(f.call("GET", "/api/runs/" + run));
  BOOST_TEST(shown.at("counts").at("succeeded").to_number<int>() == 3);
}

BOOST_AUTO_TEST_CASE(a_full_queue_answers_429_with_retry_after, *boost::unit_test::timeout(60)) {
  service_options s;
  s.max_running_runs = 1;
  s.max_queued_runs = 0;
  http_fixture f({}, s);
  const auto running = submit(f, "a 300\n");
  const auto refused = f.call("POST", "/api/runs", "b 1\n");
  BOOST_TEST(status_of(refused) == 429u);
  BOOST_TEST(refused.find("Retry-After: 5") != std::string::npos, refused);
  BOOST_TEST(std::string(json_of(refused).at("error").as_string()).starts_with("queue full"));
  BOOST_TEST(wait_finished(f, running) == "succeeded");
}

BOOST_AUTO_TEST_CASE(the_event_stream_resumes_from_last_event_id, *boost::unit_test::timeout(60)) {
  http_fixture f;
  const auto run = submit(f, "a 1\nb 1 a\n");
  BOOST_TEST(wait_finished(f, run) == "succeeded");
  const auto all = f.call("GET", "/api/runs/" + run + "/events");
  BOOST_TEST(all.find("Content-Type: text/event-stream") != std::string::npos);
  BOOST_TEST(all.find("id: 0\ndata: {") != std::string::npos);
  BOOST_TEST(all.find("\"type\":\"run_finished\"") != std::string::npos);
  BOOST_TEST(all.ends_with("event: end\ndata: {}\n\n"));
  const auto from_three = f.call("GET", "/api/runs/" + run + "/events", "", "Last-Event-ID: 2\r\n");
  BOOST_TEST(from_three.find("id: 2\n") == std::string::npos);
  BOOST_TEST(body_of(from_three).starts_with("id: 3\n"), from_three);
  BOOST_TEST(body_of(f.call("GET", "/api/runs/" + run + "/events?after=3")).starts_with("id: 4\n"));
  BOOST_TEST(status_of(f.call("GET", "/api/runs/" + run + "/events", "", "Last-Event-ID: x\r\n")) ==
             400u);
  BOOST_TEST(status_of(f.call("GET", "/api/runs/r-none/events")) == 404u);
}

BOOST_AUTO_TEST_CASE(a_live_stream_follows_a_running_run, *boost::unit_test::timeout(60)) {
  http_fixture f;
  const auto run = submit(f, "a 200\nb 200 a\n");
  // Read while it runs: the stream ends by itself with the run.
  const auto stream = f.call("GET", "/api/runs/" + run + "/events");
  BOOST_TEST(stream.find("\"module\":\"b\"") != std::string::npos);
  BOOST_TEST(stream.ends_with("event: end\ndata: {}\n\n"));
}
