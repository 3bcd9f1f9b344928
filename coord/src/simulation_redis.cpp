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
// the other way ends too. Sets `broke` when the Redis pipe failed (a read or write error other
// than its end or its closing), as opposed to either side ending the connection.
template <typename From, typename To>
asio::awaitable<void> copy(From& from, To& to, bool from_is_redis, bool& broke) {
  const auto failed = [](const boost::system::error_code& ec) {
    return ec && ec != asio::error::eof && ec != asio::error::operation_aborted;
  };
  std::array<char, 8192> buffer;
  for (;;) {
    auto [ec, n] =
        co_await from.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (from_is_redis && failed(ec)) broke = true;
      break;
    }
    auto [written_ec, written] = co_await asio::async_write(to, asio::buffer(buffer.data(), n),
                                                            asio::as_tuple(asio::use_awaitable));
    (void)written;
    if (written_ec) {
      if (!from_is_redis && failed(written_ec)) broke = true;
      break;
    }
  }
  to.close();
  from.close();
}

// Runs `request` on an open connection; when the connection was broken (the fake restarted),
// once more on a new one. Nothing when that fails too: the caller tries again later.
template <typename T, typename Request>
asio::awaitable<std::optional<T>> on_open_connection(redis_connection& connection,
                                                     const sim_redis& redis, Request request) {
  for (int tries = 0; tries < 2; ++tries) {
    try {
      if (!connection.is_open()) co_await connection.connect(redis.fake->endpoint(), std::nullopt);
      co_return co_await request();
    } catch (const redis_error&) {
      connection.close();
    }
  }
  co_return std::nullopt;
}

}  // namespace

asio::awaitable<void> hold_the_lease(const sim_redis& redis, std::string instance,
                                     std::function<void(std::uint64_t)> on_master) {
  redis_connection connection(co_await asio::this_coro::executor);
  redis_lease lease(connection, redis.keys, instance, redis.lease_ttl);
  std::uint64_t epoch = 0;
  for (;;) {
    auto taken = co_await on_open_connection<std::optional<std::uint64_t>>(
        connection, redis, [&] { return lease.acquire(); });
    if (taken && *taken) {
      epoch = **taken;
      break;
    }
    co_await sleep_for(redis.lease_ttl / 4);
  }
  on_master(epoch);
  for (;;) {
    co_await sleep_for(redis.lease_ttl / 3);
    auto renewed =
        co_await on_open_connection<bool>(connection, redis, [&] { return lease.renew(epoch); });
    if (renewed && !*renewed) co_return;  // another holds it: cannot happen here
  }
}

asio::awaitable<void> run_worker_over_redis(const sim_redis& redis, sim_worker_joins joins,
                                            simulation_counters& counters,
                                            std::uint64_t& rejoined) {
  const auto executor = co_await asio::this_coro::executor;
  for (std::size_t join = 0;; ++join) {
    std::optional<simulated_worker_options> options = joins.options(join);
    if (!options) co_return;
    std::optional<redis_stream> pipe;
    for (;;) {
      try {
        pipe.emplace(co_await dial_redis_master(redis.join(), redis.keys, options->name));
        break;
      } catch (const redis_error&) {
      }
      co_await sleep_for(std::chrono::milliseconds{250});  // the fake is down: dial again
    }
    if (join > 0) ++rejoined;
    auto [worker_side, pumped_side] = joins.new_pipe();
    asio::co_spawn(executor,
                   run_simulated_worker(std::move(worker_side), std::move(*options), counters),
                   asio::detached);
    bool broke = false;
    co_await (copy(pumped_side, *pipe, false, broke) && copy(*pipe, pumped_side, true, broke));
    if (!broke) co_return;  // the worker or the master ended the connection
  }
}

}  // namespace drover::coord::detail
