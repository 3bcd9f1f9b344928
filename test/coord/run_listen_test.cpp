// `drover run --listen`: the built binary as the master, a worker written with the codec in
// this test. The port is 0, so each test reads the bound one from the "listening on" line.

#define BOOST_TEST_MODULE run_listen
#include "../app/app_test_support.hpp"

#include <drover/coord/framing.hpp>
#include <drover/coord/protocol.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>

#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace coord = drover::coord;
namespace utf = boost::unit_test;
using namespace drover::app_test;
using asio::ip::tcp;

constexpr std::string_view two_modules = R"({
  "name": "remote-demo",
  "modules": [
    {"id": "fetch", "kind": "noop"},
    {"id": "build", "kind": "noop", "deps": ["fetch"]}
  ]
})";

/// What the worker saw: message types in order, the errors and the cancels.
struct session_log {
  std::vector<std::string> types;
  std::vector<coord::error_message> errors;
  std::vector<coord::cancel_message> cancels;
  std::vector<coord::assign_message> assigns;
  std::optional<coord::welcome_message> welcome;
  bool ended = false;
};

/// Connects, says hello, answers every assign with success and `value` (or, when `hang`,
/// never answers but sends a heartbeat every 50 ms), and returns at end of file (or after
/// `limit`).
session_log work_for(unsigned short port, coord::hello_message hello,
                     std::chrono::milliseconds limit = 10s, bool hang = false,
                     boost::json::value value = boost::json::object{{"remote", true}}) {
  asio::io_context io;
  session_log log;
  // Outside the coroutine: the writer's own coroutine uses them until it has finished.
  tcp::socket socket{io};
  coord::line_writer<tcp::socket> writer{socket};
  auto worker = [&]() -> asio::awaitable<void> {
    auto [error] = co_await socket.async_connect({asio::ip::address_v4::loopback(), port},
                                                 asio::as_tuple(asio::use_awaitable));
    if (error) co_return;
    asio::co_spawn(io, writer.run(), [](std::exception_ptr, boost::system::error_code) {});
    writer.send(coord::encode(hello));
    if (hang) {
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            asio::steady_timer timer{io};
            while (!log.ended) {
              timer.expires_after(50ms);
              co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
              writer.send(coord::encode(coord::heartbeat_message{}));
            }
          },
          [](std::exception_ptr) {});
    }
    coord::line_splitter splitter;
    for (;;) {
      const coord::read_outcome in = co_await coord::read_line(socket, splitter);
      if (!in.ok()) break;
      auto decoded = coord::decode(in.line, coord::limits{64u << 20, 64});
      BOOST_REQUIRE(decoded.ok());
      log.types.emplace_back(coord::type_name(decoded.value()));
      if (auto* w = std::get_if<coord::welcome_message>(&decoded.value())) log.welcome = *w;
      if (auto* e = std::get_if<coord::error_message>(&decoded.value())) log.errors.push_back(*e);
      if (auto* c = std::get_if<coord::cancel_message>(&decoded.value())) log.cancels.push_back(*c);
      if (auto* a = std::get_if<coord::assign_message>(&decoded.value())) {
        log.assigns.push_back(*a);
        if (!hang) {
          coord::result_message r;
          r.run = a->run;
          r.epoch = a->epoch;
          r.module = a->module;
          r.attempt = a->attempt;
          r.value = value;
          writer.send(coord::encode(r));
        }
      }
    }
    log.ended = true;
    writer.close();
  };
  asio::co_spawn(io, worker(), [](std::exception_ptr) {});
  io.run_for(limit);
  return log;
}

coord::hello_message hello_from(std::string name, std::optional<std::string> token = {}) {
  coord::hello_message hello;
  hello.versions = {1};
  hello.capabilities = {"linux"};
  hello.worker_id = std::move(name);
  hello.token = std::move(token);
  return hello;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(run_listen)

BOOST_AUTO_TEST_CASE(a_remote_worker_runs_the_pipeline, *utf::timeout(60)) {
  scratch_dir dir;
  dir.write("p.json", two_modules);
  drover_process drover{{"run", "p.json", "--listen", "127.0.0.1:0", "--workers", "0", "--progress",
                         "never", "--report", "report.json"},
                        dir.path()};
  const auto port = wait_for_port(dir.path());
  BOOST_REQUIRE_MESSAGE(port, "no 'listening on' line: " << read_file(dir / ".drover-stderr"));
  const session_log log =
      work_for(static_cast<unsigned short>(std::stoi(*port)), hello_from("remote-1"));
  const drover_result result = drover.wait();
  BOOST_TEST(result.exit_code == 0, result.err);
  BOOST_TEST(log.ended);
  BOOST_TEST(log.types == (std::vector<std::string>{"welcome", "assign", "assign", "bye"}));
  // A module written without params gets an empty object on the wire, as protocol.md's
  // example transcript shows for its noop module (never null).
  for (const auto& a : log.assigns) {
    BOOST_TEST(a.kind == "noop");
    BOOST_TEST(boost::json::serialize(a.params) == "{}", a.module);
  }
  BOOST_TEST(result.out.find("remote-1") != std::string::npos, result.out);
  BOOST_TEST(result.err.find("(remote-1): joined with 1 slot") != std::string::npos, result.err);
  BOOST_TEST(read_file(dir / "report.json").find(R"("remote":true)") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_attempt_a_hung_worker_never_answers_times_out, *utf::timeout(60)) {
  // The worker heartbeats but never answers: past the module's timeout and
  // --lost-worker-timeout-ms the master cancels the attempt and it ends timed_out.
  scratch_dir dir;
  dir.write("p.json", R"({"name": "hung", "modules": [{"id": "stuck", "kind": "noop",
                                                        "timeout": "100ms"}]})");
  drover_process drover{
      {"run", "p.json", "--listen", "127.0.0.1:0", "--workers", "0", "--heartbeat-ms", "50",
       "--lost-worker-timeout-ms", "300", "--progress", "never", "--report", "report.json"},
      dir.path()};
  const auto port = wait_for_port(dir.path());
  BOOST_REQUIRE_MESSAGE(port, "no 'listening on' line: " << read_file(dir / ".drover-stderr"));
  const session_log log = work_for(static_cast<unsigned short>(std::stoi(*port)),
                                   hello_from("hung-1"), 10s, /*hang=*/true);
  const drover_result result = drover.wait();
  BOOST_TEST(result.exit_code == 1, result.err);
  BOOST_REQUIRE(log.cancels.size() == 1u);
  BOOST_TEST(log.cancels.front().module == "stuck");
  const std::string report = read_file(dir / "report.json");
  BOOST_TEST(report.find(R"("overdue":1)") != std::string::npos, report);
  BOOST_TEST(report.find(R"("status":"timed_out")") != std::string::npos, report);
  BOOST_TEST(report.find("no result from worker hung-1 within the timeout of 100 ms and 300 ms "
                         "more") != std::string::npos,
             report);
}

BOOST_AUTO_TEST_CASE(max_worker_losses_sets_when_a_module_is_poison, *utf::timeout(60)) {
  // The only worker takes the module and goes away: with --max-worker-losses 1 that one loss
  // makes it poison at once (with the default 3 it would wait for another worker).
  scratch_dir dir;
  dir.write("p.json", R"({"name": "poison", "modules": [{"id": "unlucky", "kind": "noop"}]})");
  drover_process drover{
      {"run", "p.json", "--listen", "127.0.0.1:0", "--workers", "0", "--max-worker-losses", "1",
       "--progress", "never", "--report", "report.json"},
      dir.path()};
  const auto port = wait_for_port(dir.path());
  BOOST_REQUIRE_MESSAGE(port, "no 'listening on' line: " << read_file(dir / ".drover-stderr"));
  const session_log log = work_for(static_cast<unsigned short>(std::stoi(*port)),
                                   hello_from("leaver-1"), 500ms, /*hang=*/true);
  BOOST_TEST(log.assigns.size() == 1u);
  const drover_result result = drover.wait();
  BOOST_TEST(result.exit_code == 1, result.err);
  const std::string report = read_file(dir / "report.json");
  BOOST_TEST(
      report.find("poison: 1 of its attempts ended with their worker lost") != std::string::npos,
      report);
}

BOOST_AUTO_TEST_CASE(a_worker_that_comes_after_the_end_is_told_so, *utf::timeout(60)) {
  // drover stays up about a second after the run; a worker that says hello then gets welcome
  // and bye "run finished" (and `drover worker` exits 0 on that), whether it connected during
  // the run or after it.
  scratch_dir dir;
  dir.write("p.json", R"({"name": "local", "modules": [
    {"id": "pause", "kind": "sleep", "params": {"ms": 300}, "pin_local": true}]})");
  drover_process drover{{"run", "p.json", "--listen", "127.0.0.1:0", "--workers", "1", "--progress",
                         "never", "--events", "events.jsonl"},
                        dir.path()};
  const auto port = wait_for_port(dir.path());
  BOOST_REQUIRE_MESSAGE(port, "no 'listening on' line: " << read_file(dir / ".drover-stderr"));
  const auto port_number = static_cast<unsigned short>(std::stoi(*port));
  asio::io_context io;
  tcp::socket early{io};
  early.connect({asio::ip::address_v4::loopback(), port_number});  // no hello yet
  BOOST_REQUIRE(eventually(
      [&] { return read_file(dir / "events.jsonl").find("run_finished") != std::string::npos; }));

  asio::write(early, asio::buffer(coord::encode(hello_from("early"))));
  std::vector<std::string> types;
  std::optional<std::string> bye_reason;
  std::string buffer;
  for (;;) {
    boost::system::error_code ec;
    const std::size_t n = asio::read_until(early, asio::dynamic_buffer(buffer), '\n', ec);
    if (ec) break;
    auto decoded = coord::decode(std::string_view(buffer).substr(0, n - 1));
    buffer.erase(0, n);
    BOOST_REQUIRE(decoded.ok());
    types.emplace_back(coord::type_name(decoded.value()));
    if (auto* bye = std::get_if<coord::bye_message>(&decoded.value())) bye_reason = bye->reason;
  }
  BOOST_TEST(types == (std::vector<std::string>{"welcome", "bye"}));
  BOOST_TEST((bye_reason == std::optional<std::string>{"run finished"}));

  const session_log late = work_for(port_number, hello_from("late"), 5s);
  BOOST_TEST(late.types == (std::vector<std::string>{"welcome", "bye"}));
  BOOST_TEST(late.ended);

  const drover_result result = drover.wait();
  BOOST_TEST(result.exit_code == 0, result.err);
  // The run_finished event is written a moment before the master stops: a hello in between
  // joins the finished run's hub, which tells it at once (the welcome and bye above).
  BOOST_TEST(
      (result.err.find("(early): joined after the run finished; told so") != std::string::npos ||
       result.err.find("(early): joined with") != std::string::npos),
      result.err);
}

BOOST_AUTO_TEST_CASE(a_token_file_guards_the_run, *utf::timeout(60)) {
  scratch_dir dir;
  dir.write("p.json", two_modules);
  dir.write("token", "  s3cret-token \nsecond line is ignored\n");
  drover_process drover{{"run", "p.json", "--listen", "0.0.0.0:0", "--token-file", "token",
                         "--workers", "0", "--progress", "never"},
                        dir.path()};
  std::optional<unsigned short> port;
  BOOST_REQUIRE(eventually([&] {
    static const std::regex listening{"drover: listening on 0\\.0\\.0\\.0:([0-9]+)"};
    std::smatch match;
    const std::string err = read_file(dir / ".drover-stderr");
    if (std::regex_search(err, match, listening)) port = std::stoi(match[1]);
    return port.has_value();
  }));
  const session_log refused = work_for(*port, hello_from("intruder", "s3cret"));
  BOOST_TEST(refused.types == (std::vector<std::string>{"error"}));
  BOOST_TEST(refused.errors.front().code == "unauthorized");
  const session_log accepted = work_for(*port, hello_from("trusted", "s3cret-token"));
  BOOST_TEST(accepted.types.back() == "bye");
  const drover_result result = drover.wait();
  BOOST_TEST(result.exit_code == 0, result.err);
  BOOST_TEST(result.err.find("s3cret") == std::string::npos, result.err);
  BOOST_TEST(result.err.find("refused: missing or wrong token") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_line_and_nesting_limits_are_options, *utf::timeout(60)) {
  scratch_dir dir;
  dir.write("p.json", two_modules);
  drover_process drover{{"run", "p.json", "--listen", "127.0.0.1:0", "--workers", "0", "--progress",
                         "never", "--max-line-bytes", "2048", "--max-depth", "40"},
                        dir.path()};
  const auto port = wait_for_port(dir.path());
  BOOST_REQUIRE_MESSAGE(port, "no 'listening on' line: " << read_file(dir / ".drover-stderr"));
  const auto port_number = static_cast<unsigned short>(std::stoi(*port));

  // A hello over 2048 bytes is cut off.
  const session_log long_hello = work_for(port_number, hello_from(std::string(3000, 'x')));
  BOOST_REQUIRE(long_hello.errors.size() == 1u);
  BOOST_TEST(long_hello.errors.front().code == "line_too_long");
  BOOST_TEST(long_hello.errors.front().message.find("2048 bytes") != std::string::npos,
             long_hello.errors.front().message);

  // Results nested 38 deep (deeper than the default 32) are accepted under --max-depth 40.
  boost::json::value deep = boost::json::array{};
  for (int level = 0; level < 36; ++level)
    deep = boost::json::array{deep};
  const session_log log = work_for(port_number, hello_from("deep"), 10s, false, deep);
  BOOST_REQUIRE(log.welcome.has_value());
  BOOST_TEST(log.welcome->max_line_bytes == 2048u);
  BOOST_TEST(log.errors.empty());
  BOOST_TEST(log.types.back() == "bye");
  const drover_result result = drover.wait();
  BOOST_TEST(result.exit_code == 0, result.err);
}

BOOST_AUTO_TEST_CASE(listen_options_are_checked_before_anything_runs, *utf::timeout(60)) {
  scratch_dir dir;
  dir.write("p.json", two_modules);
  dir.write("empty-token", "  \n");
  struct refusal {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<refusal> refusals{
      {{"--listen", "0.0.0.0:0"}, "refusing to listen on 0.0.0.0:0 without a token"},
      {{"--listen", "[::]:7700"}, "refusing to listen on [::]:7700 without a token"},
      {{"--listen", "7700"}, "--listen expects HOST:PORT"},
      {{"--listen", "127.0.0.1:70000"}, "--listen expects HOST:PORT"},
      {{"--listen", "example.org:7700"}, "not an IP address"},
      {{"--listen", "127.0.0.1:0", "--token-file", "missing"}, "cannot read the token file"},
      {{"--listen", "127.0.0.1:0", "--token-file", "empty-token"}, "is empty"},
      {{"--listen", "127.0.0.1:0", "--heartbeat-ms", "0"}, "--heartbeat-ms must be at least 1"},
      {{"--workers", "0"}, "needs --listen"},
      {{"--token-file", "empty-token"}, "--token-file needs --listen"},
      {{"--lost-worker-timeout-ms", "100"}, "--lost-worker-timeout-ms needs --listen"},
      {{"--listen", "127.0.0.1:0", "--max-line-bytes", "0"},
       "--max-line-bytes must be between 1024 and 1073741824, got 0"},
      {{"--listen", "127.0.0.1:0", "--max-line-bytes", "512"}, "got 512"},
      {{"--listen", "127.0.0.1:0", "--max-line-bytes", "99999999999"}, "got 99999999999"},
      {{"--listen", "127.0.0.1:0", "--max-line-bytes", "-5"}, "got -5"},
      {{"--listen", "127.0.0.1:0", "--max-line-bytes", "1MiB"}, "max-line-bytes' is invalid"},
      {{"--listen", "127.0.0.1:0", "--max-depth", "0"},
       "--max-depth must be between 32 and 1024, got 0"},
      {{"--listen", "127.0.0.1:0", "--max-depth", "16"}, "got 16"},
      {{"--listen", "127.0.0.1:0", "--max-depth", "100000"}, "got 100000"},
      {{"--listen", "127.0.0.1:0", "--max-depth", "deep"}, "max-depth' is invalid"},
      {{"--max-line-bytes", "4096"}, "--max-line-bytes needs --listen"},
      {{"--max-depth", "64"}, "--max-depth needs --listen"},
      {{"--listen", "127.0.0.1:0", "--max-worker-losses", "0"},
       "--max-worker-losses must be between 1 and 255, got 0"},
      {{"--max-worker-losses", "5"}, "--max-worker-losses needs --listen"},
  };
  for (const auto& r : refusals) {
    std::vector<std::string> args{"run", "p.json", "--progress", "never"};
    args.insert(args.end(), r.args.begin(), r.args.end());
    const drover_result result = run_drover(args, dir.path());
    BOOST_TEST_CONTEXT(r.args.front() << ' ' << r.args.back()) {
      BOOST_TEST(result.exit_code == 2);
      BOOST_TEST(result.err.find(r.message) != std::string::npos, result.err);
      BOOST_TEST(result.out.find("fetch") == std::string::npos);  // nothing ran
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
