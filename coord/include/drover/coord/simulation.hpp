#pragma once
// A whole distributed run in one process and on one thread: a master, the engine and up to
// thousands of simulated workers (simulated_worker.hpp) connected through in-memory pipes,
// speaking the real protocol, on virtual time (drover/clock.hpp). Faults come from the seed,
// invariants are checked on every event (invariant_checker.hpp), and the same seed gives the
// same trace, byte for byte. `drover simulate` and the tests use it; so can an embedder's own
// tests (examples/simulate_pipeline.cpp). docs/simulation.md describes the fault model.
//
//     drover::coord::simulation_options options;
//     options.workers = 1000;
//     options.seed = 7;
//     options.faults = drover::coord::simulation_faults::all();
//     auto outcome = drover::coord::simulate(drover::coord::simulation_pipeline(
//                                                drover::coord::sim_shape::random, 10'000, 7),
//                                            options);
//     for (const auto& v : outcome.violations) std::cerr << v.describe() << '\n';

#include <drover/coord/invariant_checker.hpp>
#include <drover/coord/simulated_worker.hpp>
#include <drover/pipeline.hpp>
#include <drover/result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace drover::coord {

enum class sim_shape : std::uint8_t {
  random,       ///< levelled random DAG: each module after 1-3 of the 1,000 before it
  chain,        ///< each module after the previous one
  independent,  ///< no dependencies
  tree,         ///< binary fan-out: module i after (i - 1) / 2
};

std::optional<sim_shape> parse_sim_shape(std::string_view name) noexcept;

/// `modules` modules of kind "noop" in that shape, with `retries` retries each (attempts that
/// fail at random are retried). Their local bodies refuse to run: they are for remote workers.
/// With `constrained`, about one module in eight takes a slot of pool "db" (2 slots) and one
/// in sixteen holds key "deploy", so that the constraint rules are exercised too.
pipeline simulation_pipeline(sim_shape shape, std::size_t modules, std::uint64_t seed,
                             int retries = 3, bool constrained = false);

/// What goes wrong, and how often. Every draw comes from the simulation's seed.
struct simulation_faults {
  double fail_rate = 0.0;          ///< an attempt fails
  double hang_rate = 0.0;          ///< an attempt never ends; the module's timeout must end it
  double duplicate_rate = 0.0;     ///< a result arrives twice
  double stale_rate = 0.0;         ///< a result arrives again after its attempt was settled
  std::size_t crash_workers = 0;   ///< workers that close their connection without a word
  std::size_t silent_workers = 0;  ///< workers that stop answering but stay connected
  std::size_t slow_workers = 0;    ///< workers whose attempts take `slowness` times as long
  double slowness = 5.0;
  std::size_t partitioned_workers = 0;  ///< workers cut off for a while, then healed
  std::chrono::milliseconds min_partition{100}, max_partition{8000};
  std::chrono::milliseconds max_message_delay{0};  ///< each worker message, uniform up to this
  /// Times the master dies mid-run and a new one resumes from its (in-memory) journal.
  std::size_t master_restarts = 0;
  /// Over Redis only (simulation_options::over_redis): times the in-memory Redis restarts
  /// mid-run. Every connection to it breaks and its data stays, as when a Redis with AOF
  /// restarts: pipes end, so workers join again and their attempts are reassigned; the lease,
  /// the join stream and the journal go on over new connections.
  std::size_t redis_restarts = 0;
  /// Worker faults, master deaths and Redis restarts happen within this long (virtual) after
  /// the start.
  std::optional<std::chrono::milliseconds> within;

  /// Every kind at once, at rates that still let most modules succeed.
  static simulation_faults all();
};

struct simulation_options {
  std::size_t workers = 100;
  std::uint32_t slots = 1;  ///< per worker
  /// Capability labels of the workers, beside their OS label: `count` workers get `labels`,
  /// in order; the workers left over get none.
  std::vector<std::pair<std::vector<std::string>, std::size_t>> capability_mix;
  std::uint64_t seed = 1;
  std::chrono::milliseconds min_delay{0}, max_delay{0};  ///< per attempt, virtual
  /// Per-module attempt durations (a previous run's report); others use min/max_delay.
  std::shared_ptr<const attempt_durations> durations;
  simulation_faults faults;
  /// Timeout of every module without one, while hang faults are on; 0: 4 * max_delay + 1 s.
  std::chrono::milliseconds hang_timeout{0};
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds{1}};
  std::chrono::milliseconds lost_worker_timeout{std::chrono::seconds{5}};
  /// The run is cancelled, and a violation recorded, if nothing happens to any module for
  /// this long of virtual time (a stalled scheduler) or the run lasts longer than `limit`.
  std::chrono::milliseconds stall_after{std::chrono::minutes{2}};
  std::chrono::milliseconds limit{std::chrono::hours{24}};
  bool keep_trace = false;  ///< fill simulation_outcome::trace
  /// Masters and workers meet in an in-memory Redis (redis_fake.hpp), as `drover run
  /// --coordinator` instances meet in Redis: each master takes the lease, keeps its journal in
  /// a stream, and accepts workers from the join stream; workers reach it over pipes carried
  /// by streams. A master that replaces a dead one first waits for its lease to lapse.
  bool over_redis = false;
  std::chrono::milliseconds lease_ttl{std::chrono::seconds{5}};
};

/// Time each worker spent running attempts.
struct worker_usage {
  std::string name;
  std::chrono::nanoseconds busy{0};
  std::uint64_t attempts = 0;
};

struct simulation_outcome {
  run_report report;                            ///< of the last master, when it restarted
  std::chrono::milliseconds elapsed{0};         ///< wall time the simulation took
  std::chrono::nanoseconds virtual_elapsed{0};  ///< simulated time from start to the end
  std::uint64_t assignments = 0;                ///< attempts the simulated workers received
  std::uint64_t failed_attempts = 0;            ///< failures the simulated workers injected
  std::uint64_t workers_died = 0;
  std::uint64_t workers_silent = 0;
  std::uint64_t workers_partitioned = 0;
  std::uint64_t hung_attempts = 0;    ///< attempts that never ended on their own
  std::uint64_t duplicates_sent = 0;  ///< results sent twice in a row
  std::uint64_t stale_sent = 0;       ///< results sent again after they were settled
  std::uint64_t master_restarts = 0;
  std::uint64_t redis_restarts = 0;    ///< over Redis: times the fake restarted
  std::uint64_t workers_rejoined = 0;  ///< over Redis: joins after a pipe broke
  std::uint64_t timers_fired = 0;      ///< virtual timer firings: the simulation's steps
  std::uint64_t events = 0;
  /// The trace: one line per engine event, virtual time first (docs/simulation.md). Kept
  /// only with simulation_options::keep_trace; its hash always.
  std::string trace;
  std::uint64_t trace_hash = 0;  ///< FNV-1a 64 of the trace
  std::vector<violation> violations;
  std::vector<worker_usage> workers;  ///< every simulated worker, by name
  /// The chain of modules that decided the run's length, the last to finish first: each one
  /// is the dependency its successor waited for longest.
  std::vector<std::string> critical_path;
  bool hit_limit = false;  ///< stalled or past `limit`

  /// Modules per second of wall time.
  double throughput() const;
  /// Busy time over (workers * slots * virtual_elapsed), in [0, 1].
  double utilisation(std::uint32_t slots) const;
};

/// Runs `p` over simulated workers on this thread, in virtual time, and returns when the run
/// completed. Safe to call on several threads at once (each simulation has its own clock).
simulation_outcome simulate(pipeline p, const simulation_options& options);

}  // namespace drover::coord
