#pragma once
// How a worker opens a connection to a run's master through Redis, and how the master finds it
// (docs/redis.md, "Joining"). A worker picks a fresh connection id and announces it on the
// run's join stream; the master reads the join stream through a consumer group, so that a new
// master after a failover also sees joins the old one read and never answered (XAUTOCLAIM).
//
//     // master
//     co_spawn(io, accept_redis_workers(options, keys, "job-0",
//                                       [&](redis_stream s, std::string peer) {
//                                         master.accept(std::move(s), peer);
//                                       }), detached);
//     // worker
//     redis_stream stream = co_await dial_redis_master(options, keys, "job-3");

#include <drover/coord/byte_stream.hpp>
#include <drover/coord/redis_lease.hpp>
#include <drover/coord/redis_stream.hpp>

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <string>

namespace drover::coord {

/// Where the pipes of one run live, and how they behave (redis_stream_options without keys).
struct redis_join_options {
  redis_endpoint where;
  std::optional<std::string> password;
  std::chrono::milliseconds block{1000};
  std::chrono::milliseconds keep_for{std::chrono::hours(1)};
  /// A dialling worker keeps drover:{KEY}:c:CONN:alive for this long, renewed every third of
  /// it while its pipe is open; a master drops a join whose key has expired (its worker died).
  std::chrono::milliseconds alive_ttl{std::chrono::seconds(3)};
};

/// Serves the join stream until cancelled: for each join, opens the master's end of the
/// announced pipe and hands it to `accept` with a peer name ("redis:INSTANCE/CONN"). Joins
/// that another consumer read and left unacknowledged are claimed first. A join whose worker
/// no longer keeps its alive key is acknowledged and dropped. Throws redis_error
/// when Redis cannot be reached.
boost::asio::awaitable<void> accept_redis_workers(
    redis_join_options options, run_keys keys, std::string master_instance,
    std::function<void(redis_stream stream, std::string peer)> accept);

/// accept_redis_workers, kept going through Redis restarts and outages: after a failure it
/// tells `on_problem` what went wrong (when set), waits `pause` on run_clock (virtual time in a
/// simulation), connects again and first claims the joins it read and never answered. Returns
/// (by throwing operation_aborted from its pause, or at once) when cancelled.
boost::asio::awaitable<void> serve_redis_joins(
    redis_join_options options, run_keys keys, std::string master_instance,
    std::function<void(redis_stream stream, std::string peer)> accept,
    std::function<void(const std::string& problem)> on_problem = {},
    std::chrono::milliseconds pause = std::chrono::milliseconds{500});

/// Opens a pipe to whichever instance is the run's master and announces it. The master may
/// come later: what the worker writes waits in Redis until it reads it.
boost::asio::awaitable<redis_stream> dial_redis_master(redis_join_options options, run_keys keys,
                                                       std::string instance);

/// A worker_options::dial for a worker of the run `keys` names: each call opens a new pipe
/// (dial_redis_master), so a worker that lost its master reconnects as it does over TCP.
std::function<boost::asio::awaitable<byte_stream>()> redis_dialer(redis_join_options options,
                                                                  run_keys keys,
                                                                  std::string instance);

}  // namespace drover::coord
