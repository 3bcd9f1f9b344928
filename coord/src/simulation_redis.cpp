#include "simulation_redis.hpp"

#include <drover/clock.hpp>
#include <drover/coord/redis_stream.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>

namespace drover::coord::detail {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;

redis_join_options sim_redis::join() const {
  redis_join_options o;
  o.where = fake->endpoint();
  o.block = std::chrono::milliseconds{1000};
  return o;
}

namespace {

asio::awaitable<void> sleep_for(run_clock::duration d) {
  run_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(d);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

// Copies what `from` reads to `to` until either end ends, then closes both, so that the copy
// the other way ends too.
template <typename From, typename To>
asio::awaitable<void> copy(From& from, To& to) {
  std::array<char, 8192> buffer;
  for (;;) {
    auto [ec, n] =
        co_await from.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    auto [written_ec, written] = co_await asio::async_write(to, asio::buffer(buffer.data(), n),
                                                            asio::as_tuple(asio::use_awaitable));
    (void)written;
    if (written_ec) break;
  }
  to.close();
  from.close();
}

}  // namespace

asio::awaitable<void> hold_the_lease(const sim_redis& redis, std::string instance,
                                     std::function<void(std::uint64_t)> on_master) {
  redis_connection connection(co_await asio::this_coro::executor);
  co_await connection.connect(redis.fake->endpoint(), std::nullopt);
  redis_lease lease(connection, redis.keys, instance, redis.lease_ttl);
  std::uint64_t epoch = 0;
  for (;;) {
    if (auto taken = co_await lease.acquire()) {
      epoch = *taken;
      break;
    }
    co_await sleep_for(redis.lease_ttl / 4);
  }
  on_master(epoch);
  for (;;) {
    co_await sleep_for(redis.lease_ttl / 3);
    if (!co_await lease.renew(epoch)) co_return;  // another holds it: cannot happen here
  }
}

asio::awaitable<void> run_worker_over_redis(const sim_redis& redis, memory_stream worker_side,
                                            memory_stream pumped_side,
                                            simulated_worker_options options,
                                            simulation_counters& counters) {
  const auto executor = co_await asio::this_coro::executor;
  redis_stream pipe = co_await dial_redis_master(redis.join(), redis.keys, options.name);
  asio::co_spawn(executor,
                 run_simulated_worker(std::move(worker_side), std::move(options), counters),
                 asio::detached);
  co_await (copy(pumped_side, pipe) && copy(pipe, pumped_side));
}

}  // namespace drover::coord::detail
