// Connections over Redis Streams (drover/coord/redis_stream.hpp): bytes both ways and the end,
// then a real run whose master and simulated workers speak the protocol through Redis.

#include <drover/coord/master.hpp>
#include <drover/coord/memory_stream.hpp>
#include <drover/coord/redis_join.hpp>
#include <drover/coord/redis_lease.hpp>
#include <drover/coord/redis_stream.hpp>
#include <drover/coord/simulated_worker.hpp>
#include <drover/coord/worker.hpp>
#include <drover/engine.hpp>

#include "../common/redis_server.hpp"
#include "../common/run_coroutine.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#define BOOST_TEST_MODULE redis_stream
#include <boost/test/unit_test.hpp>

#include <array>
#include <deque>
#include <functional>

namespace {

namespace asio = boost::asio;
namespace coord = drover::coord;
using namespace std::chrono_literals;
using coord::redis_stream;
using coord::redis_stream_options;
using drover::testing::redis_server;

void run(std::function<asio::awaitable<void>(asio::io_context&)> body) {
  drover::testing::run_coroutine(std::move(body));
}

/// The two ends of one connection: `up` carries what the worker end writes.
redis_stream_options end_options(const redis_server& server, const std::string& name, bool master) {
  redis_stream_options o;
  o.where = coord::parse_redis_url(server.url());
  const coord::run_keys keys{"t"};
  o.in = keys.pipe(name, master);
  o.out = keys.pipe(name, !master);
  o.block = 200ms;
  o.keep_for = 60s;
  return o;
}

BOOST_AUTO_TEST_CASE(bytes_cross_in_order_both_ways_and_close_ends_the_other_side) {
  redis_server server;
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_stream master(io.get_executor(), end_options(server, "a", true));
    redis_stream worker(io.get_executor(), end_options(server, "a", false));
    co_await master.open();
    co_await worker.open();
    std::string sent;
    for (int i = 0; i < 300; ++i) {
      const std::string line = "line " + std::to_string(i) + "\n";
      sent += line;
      co_await asio::async_write(worker, asio::buffer(line), asio::use_awaitable);
    }
    const std::string big(300'000, 'z');
    co_await asio::async_write(worker, asio::buffer(big), asio::use_awaitable);
    sent += big;
    std::string got(sent.size(), '\0');
    co_await asio::async_read(master, asio::buffer(got), asio::use_awaitable);
    BOOST_TEST((got == sent));
    // And back.
    co_await asio::async_write(master, asio::buffer(std::string("welcome\n")), asio::use_awaitable);
    std::string back;
    co_await asio::async_read_until(worker, asio::dynamic_buffer(back), '\n', asio::use_awaitable);
    BOOST_TEST(back == "welcome\n");
    // The worker closes: the master reads eof; the worker's own reads end too.
    worker.close();
    char c = 0;
    auto [ec, n] =
        co_await master.async_read_some(asio::buffer(&c, 1), asio::as_tuple(asio::use_awaitable));
    BOOST_TEST((ec == asio::error::eof));
    BOOST_TEST(n == 0u);
    auto [closed_ec, closed_n] =
        co_await worker.async_read_some(asio::buffer(&c, 1), asio::as_tuple(asio::use_awaitable));
    BOOST_TEST(static_cast<bool>(closed_ec));
    master.close();
  });
}

BOOST_AUTO_TEST_CASE(what_was_read_is_trimmed_and_the_keys_expire) {
  redis_server server;
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_stream master(io.get_executor(), end_options(server, "b", true));
    redis_stream worker(io.get_executor(), end_options(server, "b", false));
    co_await master.open();
    co_await worker.open();
    for (int i = 0; i < 50; ++i)
      co_await asio::async_write(worker, asio::buffer(std::string("x\n")), asio::use_awaitable);
    std::string got(100, '\0');
    co_await asio::async_read(master, asio::buffer(got), asio::use_awaitable);
    // The master's next write trims what it read from its input.
    co_await asio::async_write(master, asio::buffer(std::string("ok\n")), asio::use_awaitable);
    coord::redis_connection check(io.get_executor());
    co_await check.connect(coord::parse_redis_url(server.url()), std::nullopt);
    auto length = co_await check.exec(coord::redis_command("XLEN", "drover:{t}:c:b:up"));
    BOOST_TEST(length.integer <= 1);  // MINID keeps the last entry read
    auto ttl = co_await check.exec(coord::redis_command("PTTL", "drover:{t}:c:b:up"));
    BOOST_TEST(ttl.integer > 0);
    BOOST_TEST(ttl.integer <= 60'000);
    master.close();
    worker.close();
  });
}

// ---------------------------------------------------------------------------------------------
// A run over Redis: the master accepts redis_streams as it accepts sockets.

/// The body of a module that only remote workers run (the run has no in-process worker).
asio::awaitable<boost::json::value> never_local(drover::module_context&) {
  throw std::logic_error("a remote module ran in-process");
  co_return nullptr;
}

/// Copies bytes both ways between a redis_stream and a memory_stream until either ends.
asio::awaitable<void> pump(redis_stream& redis, coord::memory_stream& memory) {
  auto one_way = [](auto& from, auto& to) -> asio::awaitable<void> {
    std::array<char, 8192> buffer;
    for (;;) {
      auto [ec, n] =
          co_await from.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
      if (ec) break;
      auto [wec, written] = co_await asio::async_write(to, asio::buffer(buffer.data(), n),
                                                       asio::as_tuple(asio::use_awaitable));
      (void)written;
      if (wec) break;
    }
    to.close();
  };
  auto executor = co_await asio::this_coro::executor;
  asio::co_spawn(executor, one_way(memory, redis), asio::detached);
  co_await one_way(redis, memory);
}

/// A master with a hub on one io_context, simulated workers behind redis_streams, and a
/// pipeline of remote noop modules in ten lanes.
struct redis_run {
  asio::io_context io;
  std::shared_ptr<drover::worker_hub> hub = std::make_shared<drover::worker_hub>();
  std::unique_ptr<coord::master> master;
  coord::simulation_counters counters;
  std::vector<std::unique_ptr<redis_stream>> worker_ends;
  std::deque<coord::memory_stream> memory_ends;  // stable: pumps hold references
  std::optional<drover::run_report> report;

  redis_run() {
    coord::master_options mo;
    mo.run_id = "over-redis";
    mo.heartbeat_interval = 200ms;
    mo.lost_worker_timeout = 5s;
    master = std::make_unique<coord::master>(io.get_executor(), hub, mo);
  }

  /// A simulated worker behind the worker end of a pipe.
  void add_worker(redis_stream worker_end, std::string name, std::uint64_t seed) {
    auto& end = *worker_ends.emplace_back(std::make_unique<redis_stream>(std::move(worker_end)));
    auto [to_worker, at_worker] = coord::make_memory_pipe(io.get_executor());
    auto& pumped = memory_ends.emplace_back(std::move(to_worker));
    asio::co_spawn(io, pump(end, pumped), asio::detached);
    coord::simulated_worker_options so;
    so.name = std::move(name);
    so.slots = 4;
    so.seed = seed;
    asio::co_spawn(io, coord::run_simulated_worker(std::move(at_worker), so, counters),
                   asio::detached);
  }

  asio::awaitable<void> run(int modules) {
    drover::pipeline p;
    for (int i = 0; i < modules; ++i) {
      std::vector<std::string> deps;
      if (i >= 10) deps.push_back("m" + std::to_string(i - 10));
      p.add("m" + std::to_string(i), never_local, deps).kind("noop");
    }
    drover::run_options options;
    options.workers = 0;
    options.remote = hub;
    drover::engine engine(io.get_executor());
    report = co_await engine.async_run(std::move(p), std::move(options), asio::use_awaitable);
    master->stop();
  }

  /// Runs `body` on the io_context until the run reported, for at most 60 s.
  void go(std::function<asio::awaitable<void>()> body) {
    asio::co_spawn(io, body(), asio::detached);
    asio::steady_timer limit(io, 60s);
    limit.async_wait([&](boost::system::error_code ec) {
      if (!ec) io.stop();
    });
    while (!report && !io.stopped())
      io.run_one();
    limit.cancel();
    BOOST_REQUIRE_MESSAGE(report, "the run over Redis did not finish within 60 s");
  }

  ~redis_run() {
    for (auto& end : worker_ends)
      end->close();
    io.run_for(1s);
  }
};

BOOST_AUTO_TEST_CASE(a_run_whose_workers_reach_the_master_only_through_redis) {
  redis_server server;
  redis_run r;
  constexpr int workers = 2, modules = 200;
  r.go([&]() -> asio::awaitable<void> {
    for (int w = 0; w < workers; ++w) {
      const std::string name = "w" + std::to_string(w);
      redis_stream master_end(r.io.get_executor(), end_options(server, name, true));
      co_await master_end.open();
      r.master->accept(std::move(master_end), "redis:" + name);
      redis_stream worker_end(r.io.get_executor(), end_options(server, name, false));
      co_await worker_end.open();
      r.add_worker(std::move(worker_end), name, static_cast<std::uint64_t>(w + 1));
    }
    co_await r.run(modules);
  });
  BOOST_TEST((r.report->status == drover::run_status::succeeded));
  BOOST_TEST(r.counters.succeeded.load() == static_cast<std::uint64_t>(modules));
  BOOST_TEST(r.counters.connected.load() == static_cast<std::uint64_t>(workers));
}

coord::redis_join_options join_options(const redis_server& server) {
  coord::redis_join_options jo;
  jo.where = coord::parse_redis_url(server.url());
  jo.block = 200ms;
  jo.keep_for = 60s;
  return jo;
}

BOOST_AUTO_TEST_CASE(workers_join_through_the_join_stream_even_before_the_master_reads_it) {
  // Two workers announce themselves before any master reads the join stream, and a master
  // that died read the first join and never answered it: the master that serves the run
  // claims that join and reads the other; then a third worker joins while it serves.
  redis_server server;
  asio::cancellation_signal stop_accepting;  // outlives the run's io_context work
  redis_run r;
  const coord::run_keys keys{"joined"};
  const coord::redis_join_options jo = join_options(server);
  constexpr int modules = 300;
  auto welcomed = [&](std::uint64_t n) -> asio::awaitable<bool> {
    asio::steady_timer poll(r.io);
    for (int i = 0; i < 1000; ++i) {
      if (r.master->stats().workers_welcomed >= n) co_return true;
      poll.expires_after(10ms);
      co_await poll.async_wait(asio::use_awaitable);
    }
    co_return false;
  };
  r.go([&]() -> asio::awaitable<void> {
    for (int w = 1; w <= 2; ++w) {
      const std::string name = "job-" + std::to_string(w);
      r.add_worker(co_await coord::dial_redis_master(jo, keys, name), name,
                   static_cast<std::uint64_t>(w));
    }
    {
      coord::redis_connection dead(r.io.get_executor());
      co_await dead.connect(jo.where, std::nullopt);
      co_await dead.exec(
          coord::redis_command("XGROUP", "CREATE", keys.join(), "masters", "0", "MKSTREAM"));
      auto taken =
          co_await dead.exec(coord::redis_command("XREADGROUP", "GROUP", "masters", "dead-master",
                                                  "COUNT", "1", "STREAMS", keys.join(), ">"));
      BOOST_TEST(taken.is_array());  // it read one join, and dies without answering it
    }
    asio::co_spawn(r.io,
                   coord::accept_redis_workers(jo, keys, "job-0",
                                               [&](redis_stream s, std::string peer) {
                                                 r.master->accept(std::move(s), std::move(peer));
                                               }),
                   asio::bind_cancellation_slot(stop_accepting.slot(), asio::detached));
    BOOST_TEST(co_await welcomed(2));
    r.add_worker(co_await coord::dial_redis_master(jo, keys, "job-3"), "job-3", 3);
    BOOST_TEST(co_await welcomed(3));
    co_await r.run(modules);
    stop_accepting.emit(asio::cancellation_type::terminal);
  });
  BOOST_TEST((r.report->status == drover::run_status::succeeded));
  BOOST_TEST(r.counters.succeeded.load() == static_cast<std::uint64_t>(modules));
  BOOST_TEST(r.counters.connected.load() == 3u);
}

BOOST_AUTO_TEST_CASE(a_worker_client_dials_its_master_through_redis_and_reconnects) {
  // A real worker_client (attempts run as in `drover worker`) whose connection is a pipe over
  // Redis. Its first pipe is cut mid-run: it dials a new one, and the run still completes.
  redis_server server;
  asio::cancellation_signal stop_accepting;
  redis_run r;
  const coord::run_keys keys{"dialed"};
  const coord::redis_join_options jo = join_options(server);
  std::vector<std::string> accepted;
  coord::worker_options wo;
  wo.dial = coord::redis_dialer(jo, keys, "job-1");
  wo.dial_name = jo.where.url() + " run dialed";
  wo.slots = 4;
  wo.worker_id = "job-1";
  wo.reconnect.initial = 50ms;
  std::atomic<int> ran{0};
  coord::worker_client worker(
      r.io.get_executor(), wo, [&](std::string_view kind, const boost::json::value&) {
        drover::module_body body;
        if (kind == "noop") {
          body = [&](drover::module_context&) -> asio::awaitable<boost::json::value> {
            ++ran;
            co_return boost::json::value(1);
          };
        }
        return body;
      });
  std::optional<coord::worker_outcome> outcome;
  constexpr int modules = 120;
  r.go([&]() -> asio::awaitable<void> {
    asio::co_spawn(r.io,
                   coord::accept_redis_workers(jo, keys, "job-0",
                                               [&](redis_stream s, std::string peer) {
                                                 accepted.push_back(peer);
                                                 r.master->accept(std::move(s), std::move(peer));
                                               }),
                   asio::bind_cancellation_slot(stop_accepting.slot(), asio::detached));
    worker.async_run([&](coord::worker_outcome o) { outcome = std::move(o); });
    // Cut the first pipe once some modules ran: the master's end stops hearing the worker.
    asio::co_spawn(
        r.io,
        [&]() -> asio::awaitable<void> {
          asio::steady_timer poll(r.io);
          while (ran.load() < 20) {
            poll.expires_after(5ms);
            co_await poll.async_wait(asio::use_awaitable);
          }
          coord::redis_connection cut(r.io.get_executor());
          co_await cut.connect(jo.where, std::nullopt);
          auto pipes = co_await cut.exec(coord::redis_command("KEYS", "drover:{dialed}:c:*"));
          for (const auto& key : pipes.elements) {
            co_await cut.exec(coord::redis_command("XADD", key.text, "*", "eof", "1"));
          }
        },
        asio::detached);
    co_await r.run(modules);
    stop_accepting.emit(asio::cancellation_type::terminal);
  });
  BOOST_TEST((r.report->status == drover::run_status::succeeded));
  BOOST_TEST(r.report->modules.size() == static_cast<std::size_t>(modules));
  BOOST_TEST(accepted.size() >= 2u, "the worker dialed a second pipe after the first was cut");
  BOOST_TEST(worker.stats().handshakes >= 2u);
  // The master's bye ends the worker with run_over.
  for (int i = 0; i < 200 && !outcome; ++i)
    r.io.run_for(10ms);
  BOOST_REQUIRE(outcome);
  BOOST_TEST(coord::to_string(outcome->how) == "run_over");
}

}  // namespace
