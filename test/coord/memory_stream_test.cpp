// The in-memory pipe that simulation runs the protocol over, and a simulated worker driven
// by a hand-written master on the other end.

#include <drover/coord/framing.hpp>
#include <drover/coord/memory_stream.hpp>
#include <drover/coord/simulated_worker.hpp>

#include "../common/printing.hpp"

#define BOOST_TEST_MODULE memory_stream
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace drover::coord;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(bytes_written_at_one_end_are_read_at_the_other_in_order) {
  asio::io_context io;
  auto [a, b] = make_memory_pipe(io.get_executor());
  std::vector<std::string> lines;
  boost::system::error_code end;
  asio::co_spawn(
      io,
      [&, &b = b]() -> asio::awaitable<void> {
        line_splitter splitter{64};
        for (;;) {
          read_outcome in = co_await read_line(b, splitter);
          if (!in.ok()) {
            end = in.error;
            co_return;
          }
          lines.emplace_back(in.line);
        }
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&, &a = a]() -> asio::awaitable<void> {
        line_writer<memory_stream> writer{a};
        writer.send("first\nsec");
        writer.send("ond\n");
        writer.send("third\n");
        writer.close();
        co_await writer.run();
        a.close();
      },
      asio::detached);
  io.run_for(5s);
  BOOST_TEST(lines == (std::vector<std::string>{"first", "second", "third"}),
             boost::test_tools::per_element());
  BOOST_TEST(end == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(writing_to_a_closed_pipe_fails) {
  asio::io_context io;
  auto [a, b] = make_memory_pipe(io.get_executor());
  b.close();
  boost::system::error_code result;
  a.async_write_some(asio::buffer(std::string_view{"x"}),
                     [&](boost::system::error_code ec, std::size_t) { result = ec; });
  io.run_for(1s);
  BOOST_TEST(result == asio::error::broken_pipe);
}

// A hand-written master: welcome, two assigns, a cancel, then bye.
BOOST_AUTO_TEST_CASE(a_simulated_worker_speaks_the_protocol) {
  asio::io_context io;
  auto [master_end, worker_end] = make_memory_pipe(io.get_executor());
  simulation_counters counters;
  simulated_worker_options options;
  options.name = "sim-1";
  options.slots = 2;
  options.min_delay = 1ms;
  options.max_delay = 3ms;
  asio::co_spawn(io, run_simulated_worker(std::move(worker_end), options, counters),
                 asio::detached);

  std::vector<message> received;
  asio::co_spawn(
      io,
      [&, &m = master_end]() -> asio::awaitable<void> {
        line_splitter splitter;
        // Shared with its run() coroutine, which outlives this one.
        auto shared_writer = std::make_shared<line_writer<memory_stream>>(m);
        auto& writer = *shared_writer;
        asio::co_spawn(
            m.get_executor(),
            [shared_writer]() -> asio::awaitable<void> { co_await shared_writer->run(); },
            asio::detached);
        auto next = [&]() -> asio::awaitable<message> {
          read_outcome in = co_await read_line(m, splitter);
          BOOST_REQUIRE(in.ok());
          decode_result d = decode(in.line);
          BOOST_REQUIRE(d.ok());
          co_return d.value();
        };
        received.push_back(co_await next());  // hello
        welcome_message w;
        w.worker = "sim-1";
        w.run = "r";
        w.epoch = 3;
        w.heartbeat_ms = 50;
        writer.send(encode(w));
        for (std::uint32_t k = 1; k <= 2; ++k) {
          assign_message a;
          a.run = "r";
          a.epoch = 3;
          a.module = "m" + std::to_string(k);
          a.attempt = k;
          a.kind = "noop";
          writer.send(encode(a));
        }
        int results = 0;
        while (results < 2) {
          message got = co_await next();
          if (std::holds_alternative<result_message>(got)) ++results;
          received.push_back(std::move(got));
        }
        writer.send(encode(bye_message{"run finished"}));
        writer.close();
      },
      asio::detached);
  io.run_for(5s);

  BOOST_REQUIRE(!received.empty());
  const auto* hello = std::get_if<hello_message>(&received.front());
  BOOST_REQUIRE(hello != nullptr);
  BOOST_TEST(hello->slots == 2u);
  BOOST_TEST(hello->worker_id.value_or("") == "sim-1");
  std::vector<std::string> done;
  for (const auto& m : received) {
    if (const auto* r = std::get_if<result_message>(&m)) {
      BOOST_TEST(r->epoch == 3u);
      BOOST_TEST(r->status == drover::module_status::succeeded);
      done.push_back(r->module + "#" + std::to_string(r->attempt));
    }
  }
  std::sort(done.begin(), done.end());
  BOOST_TEST(done == (std::vector<std::string>{"m1#1", "m2#2"}), boost::test_tools::per_element());
  BOOST_TEST(counters.connected.load() == 1u);
  BOOST_TEST(counters.run_over.load() == 1u);
}

}  // namespace
