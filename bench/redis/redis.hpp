#pragma once
// The Redis benchmark (drover-bench --redis): what a run coordinated through Redis gets on this
// machine (docs/redis.md), beside a floor measured in the same run. It starts its own
// redis-server on a free loopback port (in a temporary directory, AOF on, as the tests do).
//
// drover rows: an in-process coord::master serves a run of N independent noop modules with
// run_options::workers = 0, so only remote workers run them. It accepts workers from the run's
// join stream (accept_redis_workers); K `drover worker --coordinator redis://... --run-key KEY
// --slots 16` child processes join during the run. A row's time runs from async_run to its
// completion handler, so it includes starting the workers and their handshakes.
//
// floor rows: the same stream round trips without the engine. The same join and the same
// redis_stream pipes; the server sends assign-like lines, at most 16 in flight per pipe, and K
// child processes of drover-bench (--redis-floor-client) answer each with a result-like line.
//
// failover: 3 `drover run --coordinator` processes (--lease-ttl, --workers 2) run a pipeline of
// sleep modules in lanes. Once the master has journaled some modules it is SIGKILLed. The time
// runs from the kill until another instance holds the lease and until its journal stream shows
// the new epoch's `run` record (it rebuilt the run from the journal and goes on). The round
// passes when the two survivors exit 0 (the run succeeded).

#include "common/worker_rows.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace drover::bench {

/// Empty when this drover-bench can run the Redis rows; otherwise why not (no drover binary
/// built beside it, or no redis-server installed).
std::string redis_rows_missing();

struct redis_settings {
  std::vector<std::size_t> workers{1, 4};
  std::size_t modules = 100'000;
  std::size_t rounds = 3;
  std::chrono::milliseconds lease_ttl{2000};
  std::size_t failover_modules = 240;  ///< sleep modules of 20 ms in 8 lanes
};

struct failover_measurement {
  std::chrono::milliseconds lease_ttl{0};
  std::vector<std::int64_t> lease_taken_ns;  ///< kill to another instance holding the lease
  std::vector<std::int64_t> resumed_ns;      ///< kill to the new epoch's run record journaled
  std::string error;

  bool ok() const noexcept { return error.empty(); }
};

struct redis_results {
  std::vector<worker_measurement> rows;  ///< one per worker count
  failover_measurement failover;

  bool ok() const;
};

/// Runs every worker count `rounds` times, the drover run and the floor alternating round by
/// round, then `rounds` failover rounds. Each round starts from an empty Redis (FLUSHALL) and
/// checks its counts: every module succeeded once, K workers welcomed, every process exited 0.
/// Progress goes to `progress`.
redis_results measure_redis(const redis_settings& settings, std::ostream& progress);

void print_redis_tables(std::ostream& out, const redis_results& results, std::size_t rounds,
                        bool markdown);

boost::json::object redis_to_json(const redis_results& results, std::size_t rounds);

/// The child side of a floor round: joins run `run_key` at `url` as `name` and answers every
/// line until the server ends the pipe. Returns the exit code.
int run_redis_floor_client(const std::string& url, const std::string& run_key,
                           const std::string& name);

}  // namespace drover::bench
