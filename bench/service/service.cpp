#include "service/service.hpp"

#include "common/timing.hpp"

#include <drover/coord/http_service.hpp>
#include <drover/coord/service.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <thread>

namespace drover::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

asio::awaitable<json::value> noop_body() {
  co_return nullptr;
}

// The benchmark's pipelines as text: "N" is N noop modules without edges.
coord::parsed_pipeline parse_count(std::string_view text, const std::string& name) {
  coord::parsed_pipeline out;
  drover::pipeline p;
  p.name = name;
  const auto n = std::stoul(std::string(text));
  p.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    p.add("m" + std::to_string(i), [](module_context&) { return noop_body(); });
  out.pipeline = std::move(p);
  return out;
}

// A service and its HTTP face on one io_context thread, as `drover serve` runs them.
struct bench_service {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
  coord::run_service service;
  coord::http_service http;
  std::uint16_t port = 0;
  std::thread thread;

  explicit bench_service(std::size_t queued)
      : service(io.get_executor(), options(queued)), http(io.get_executor(), service) {
    service.start();
    port = http.listen().port();
    thread = std::thread([this] { io.run(); });
  }
  ~bench_service() {
    http.stop();
    service.stop();
    guard.reset();
    thread.join();
  }
  static coord::service_options options(std::size_t queued) {
    coord::service_options o;
    o.parse = parse_count;
    o.workers = 1;
    o.max_running_runs = 1;
    o.max_queued_runs = queued;
    o.max_waiting_modules = queued * 2 + 1'000'000;
    return o;
  }
  // Waits until `run` finished; returns its status.
  std::string finish(const std::string& run) {
    for (;;) {
      auto status = service.run_status(run).value_or("unknown");
      if (status != "queued" && status != "running") return status;
      std::this_thread::sleep_for(std::chrono::microseconds{200});
    }
  }
};

std::string post_run(tcp::socket& socket, beast::flat_buffer& buffer, const std::string& body) {
  http::request<http::string_body> request{http::verb::post, "/api/runs?name=b", 11};
  request.set(http::field::host, "bench");
  request.body() = body;
  request.prepare_payload();
  http::write(socket, request);
  http::response<http::string_body> response;
  http::read(socket, buffer, response);
  if (response.result_int() != 202) throw std::runtime_error("POST /api/runs: " + response.body());
  return std::string(json::parse(response.body()).at("run").as_string());
}

std::int64_t submit_round(bool over_http, std::size_t n) {
  bench_service s(n);
  std::string last;
  const auto start = steady::now();
  if (over_http) {
    asio::io_context client;
    tcp::socket socket(client);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), s.port));
    beast::flat_buffer buffer;
    for (std::size_t i = 0; i < n; ++i)
      last = post_run(socket, buffer, "1");
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      auto submitted = s.service.submit("1", "b");
      if (submitted.run.empty()) throw std::runtime_error("submit: " + submitted.message);
      last = submitted.run;
    }
  }
  if (s.finish(last) != "succeeded") throw std::runtime_error("a run did not succeed");
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - start).count();
}

// Reads the run's event stream to its end; returns the number of events read.
std::size_t read_events(std::uint16_t port, const std::string& run) {
  asio::io_context client;
  tcp::socket socket(client);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  const std::string request = "GET /api/runs/" + run + "/events HTTP/1.1\r\nHost: b\r\n\r\n";
  asio::write(socket, asio::buffer(request));
  std::size_t events = 0;
  asio::streambuf buffer;
  boost::system::error_code ec;
  for (;;) {
    const auto n = asio::read_until(socket, buffer, "\n\n", ec);
    if (ec) break;
    std::string record(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + n);
    buffer.consume(n);
    if (record.starts_with("id: ")) ++events;
    if (record.starts_with("event: end")) break;
  }
  return events;
}

std::int64_t sse_round(bool subscribed, std::size_t modules) {
  bench_service s(4);
  auto submitted = s.service.submit(std::to_string(modules), "independent");
  std::size_t read = 0;
  std::thread reader;
  if (subscribed) reader = std::thread([&] { read = read_events(s.port, submitted.run); });
  if (s.finish(submitted.run) != "succeeded") throw std::runtime_error("the run did not succeed");
  if (reader.joinable()) reader.join();
  if (subscribed && read < modules * 3) {
    throw std::runtime_error("the subscriber read " + std::to_string(read) + " events");
  }
  const auto shown = s.service.run_json(submitted.run);
  const auto ms = shown->at("report").at("duration_ms").to_number<std::int64_t>();
  return ms * 1'000'000;
}

double per_second(std::size_t units, std::int64_t ns) {
  return ns > 0 ? static_cast<double>(units) * 1e9 / static_cast<double>(ns) : 0.0;
}

}  // namespace

std::vector<service_row> measure_service(const service_settings& settings, std::ostream& log) {
  std::vector<service_row> rows(4);
  rows[0] = {"submit over HTTP (runs)", {}, settings.submissions, {}};
  rows[1] = {"run_service::submit (runs)", {}, settings.submissions, {}};
  rows[2] = {"independent, no subscriber (modules)", {}, settings.modules, {}};
  rows[3] = {"independent, one SSE subscriber (modules)", {}, settings.modules, {}};
  for (std::size_t round = 0; round < settings.rounds; ++round) {
    for (std::size_t r = 0; r < rows.size(); ++r) {
      auto& row = rows[r];
      if (!row.ok()) continue;
      try {
        row.ns.push_back(r < 2 ? submit_round(r == 0, settings.submissions)
                               : sse_round(r == 3, settings.modules));
      } catch (const std::exception& e) {
        row.error = e.what();
      }
      log << "drover-bench: service round " << round + 1 << ": " << row.name << '\n';
    }
  }
  return rows;
}

void print_service_table(std::ostream& out, const std::vector<service_row>& rows, bool markdown) {
  const auto baseline = [&](std::size_t r) -> const service_row& { return rows[r < 2 ? 1 : 2]; };
  out << (markdown ? "| what | per second (median) | vs baseline |\n|---|---|---|\n" : "");
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    std::ostringstream rate, ratio;
    if (row.ok() && !row.ns.empty()) {
      const double mine = per_second(row.units, median_of(row.ns));
      const auto& base = baseline(r);
      rate << std::fixed << std::setprecision(0) << mine;
      if (base.ok() && !base.ns.empty()) {
        ratio << std::fixed << std::setprecision(2)
              << mine / per_second(base.units, median_of(base.ns)) << "x";
      }
    } else {
      rate << "FAILED: " << row.error;
    }
    if (markdown) {
      out << "| " << row.name << " | " << rate.str() << " | " << ratio.str() << " |\n";
    } else {
      out << std::left << std::setw(44) << row.name << std::setw(14) << rate.str() << ratio.str()
          << '\n';
    }
  }
}

json::object service_to_json(const service_settings& settings,
                             const std::vector<service_row>& rows) {
  json::array out;
  for (const auto& row : rows) {
    json::array ns;
    for (auto v : row.ns)
      ns.emplace_back(v);
    out.push_back(json::object{
        {"name", row.name}, {"units", row.units}, {"ns", std::move(ns)}, {"error", row.error}});
  }
  return json::object{{"submissions", settings.submissions},
                      {"modules", settings.modules},
                      {"rounds", settings.rounds},
                      {"rows", std::move(out)}};
}

}  // namespace drover::bench
