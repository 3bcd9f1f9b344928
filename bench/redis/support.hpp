#pragma once
// What the parts of drover-bench --redis share: the redis-server they start and a way to run
// one coroutine to its end.

#include <drover/coord/redis.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <optional>
#include <string>

#ifdef REDIS_SERVER_BINARY
// The redis-server the tests start (free loopback port, temporary directory, AOF on), shared
// so that both start it the same way.
#include "../test/common/redis_server.hpp"
#endif

namespace drover::bench {

#ifdef REDIS_SERVER_BINARY
using testing::redis_server;
#else
// Without a redis-server at configure time, redis_rows_missing() says so and nothing below
// runs; this stands in so that the file still compiles.
struct redis_server {
  std::string url() const { return {}; }
  std::optional<std::string> password() const { return {}; }
};
#endif

// Runs `body` on an io_context of its own until it ends; rethrows what it threw.
template <typename Body>
void run_on_own_io(Body body) {
  boost::asio::io_context io{1};
  std::exception_ptr failed;
  boost::asio::co_spawn(io, body(io), [&](std::exception_ptr e) { failed = e; });
  io.run();
  if (failed) std::rethrow_exception(failed);
}

// Starts the next round from an empty Redis.
inline void flush_all(const redis_server& server) {
  run_on_own_io([&](boost::asio::io_context& io) -> boost::asio::awaitable<void> {
    coord::redis_connection c{io.get_executor()};
    co_await c.connect(coord::parse_redis_url(server.url()), server.password());
    co_await c.exec(coord::redis_command("FLUSHALL"));
  });
}

}  // namespace drover::bench
