#pragma once
// The Redis side of a simulated run over Redis (simulation_options::over_redis): every master
// takes the lease and keeps its journal in a redis_fake, and every simulated worker joins
// through the fake's join stream, over a redis_stream pumped to the memory stream the
// simulated worker speaks. All on the simulation's thread and virtual time.

#include <drover/coord/memory_stream.hpp>
#include <drover/coord/redis_fake.hpp>
#include <drover/coord/redis_join.hpp>
#include <drover/coord/redis_lease.hpp>
#include <drover/coord/simulated_worker.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace drover::coord::detail {

struct sim_redis {
  std::shared_ptr<redis_fake> fake;
  run_keys keys{"simulation"};
  std::chrono::milliseconds lease_ttl{5000};

  redis_join_options join() const;
};

/// Takes the lease as `instance`, trying again every quarter of its ttl while another master
/// holds it, calls `on_master(epoch)` once it holds it, then renews it every third of the ttl
/// for as long as its io_context runs (a master that dies stops renewing). A connection that a
/// restart of the fake broke is dialled again: at once, then at the next try.
boost::asio::awaitable<void> hold_the_lease(const sim_redis& redis, std::string instance,
                                            std::function<void(std::uint64_t)> on_master);

/// What a simulated worker over Redis needs for each connection it makes.
struct sim_worker_joins {
  /// A fresh in-memory pipe: the end the simulated worker speaks, and the end pumped to Redis.
  std::function<std::pair<memory_stream, memory_stream>()> new_pipe;
  /// The worker's options for its `join`-th connection (0 first), or nothing when it is gone
  /// by then (it crashed or went silent before).
  std::function<std::optional<simulated_worker_options>(std::size_t join)> options;
};

/// A simulated worker that joins through the fake: dials a pipe, then runs the worker on one
/// end of an in-memory pipe while pumping bytes between the other end and the Redis pipe. When
/// the Redis pipe breaks (the fake restarted), it joins again with a new pipe and a new worker
/// of the same name, as `drover worker --coordinator` dials again; when the worker or the
/// master ends the connection, it ends. Counts each join after the first in `rejoined`.
boost::asio::awaitable<void> run_worker_over_redis(const sim_redis& redis, sim_worker_joins joins,
                                                   simulation_counters& counters,
                                                   std::uint64_t& rejoined);

}  // namespace drover::coord::detail
