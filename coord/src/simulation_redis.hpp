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
#include <string>

namespace drover::coord::detail {

struct sim_redis {
  std::shared_ptr<redis_fake> fake;
  run_keys keys{"simulation"};
  std::chrono::milliseconds lease_ttl{5000};

  redis_join_options join() const;
};

/// Takes the lease as `instance`, trying again every quarter of its ttl while another master
/// holds it, calls `on_master(epoch)` once it holds it, then renews it every third of the ttl
/// for as long as its io_context runs (a master that dies stops renewing).
boost::asio::awaitable<void> hold_the_lease(const sim_redis& redis, std::string instance,
                                            std::function<void(std::uint64_t)> on_master);

/// A simulated worker that joins through the fake: dials a pipe, then runs the worker on
/// `worker_side` while pumping bytes between the pipe and `pumped_side`, the other end of the
/// same memory pipe.
boost::asio::awaitable<void> run_worker_over_redis(const sim_redis& redis,
                                                   memory_stream worker_side,
                                                   memory_stream pumped_side,
                                                   simulated_worker_options options,
                                                   simulation_counters& counters);

}  // namespace drover::coord::detail
