#pragma once
// A simulated remote worker: speaks the real protocol (encoded, framed) over any Asio stream,
// usually one end of a memory pipe, and "runs" each assignment by waiting a delay and then
// succeeding or failing. Thousands fit in one process. Its timers are run_timers, so under a
// virtual_time (drover/clock.hpp) its delays are virtual and the same seed gives the same run.
// It can misbehave in every way docs/simulation.md lists as a fault.
//
//     auto [master_end, worker_end] = make_memory_pipe(io.get_executor());
//     master.accept(std::move(master_end));
//     co_spawn(io, run_simulated_worker(std::move(worker_end), options, stats), detached);

#include <drover/coord/memory_stream.hpp>
#include <drover/coord/protocol.hpp>

#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace drover::coord {

/// How long each module's attempts take, by module id.
using attempt_durations = std::unordered_map<std::string, std::chrono::milliseconds>;

struct simulated_worker_options {
  std::string name;
  /// Labels offered besides the OS label (local_os_label()), which is always sent first.
  std::vector<std::string> capabilities;
  std::uint32_t slots = 1;
  /// Per attempt, uniform in [min_delay, max_delay], unless `durations` names the module.
  std::chrono::milliseconds min_delay{0}, max_delay{0};
  std::shared_ptr<const attempt_durations> durations;
  double slowness = 1.0;        ///< every attempt takes this many times as long
  double fail_rate = 0.0;       ///< chance an attempt fails
  double hang_rate = 0.0;       ///< chance an attempt never ends on its own (until cancelled)
  double duplicate_rate = 0.0;  ///< chance a result is sent twice in a row
  double stale_rate = 0.0;      ///< chance a result is sent again later, when it is stale
  /// Every message the worker sends arrives this much later (uniform), in order.
  std::chrono::milliseconds min_message_delay{0}, max_message_delay{0};
  /// Dies (closes its connection without a word) this long after its handshake.
  std::optional<std::chrono::milliseconds> die_after;
  /// Stops sending anything, heartbeats included, this long after its handshake, but keeps
  /// its connection open.
  std::optional<std::chrono::milliseconds> silent_after;
  /// Cut off this long after its handshake for `partition_for`: nothing it sends arrives and
  /// nothing sent to it is read until then; afterwards both flow again, late.
  std::optional<std::chrono::milliseconds> partition_after;
  std::chrono::milliseconds partition_for{0};
  std::uint64_t seed = 1;
  std::optional<std::string> token;
};

/// What all simulated workers did, summed. Atomic: workers may run on several threads.
struct simulation_counters {
  std::atomic<std::uint64_t> connected{0};
  std::atomic<std::uint64_t> assignments{0};
  std::atomic<std::uint64_t> succeeded{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> hung{0};
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> duplicates_sent{0};
  std::atomic<std::uint64_t> stale_sent{0};
  std::atomic<std::uint64_t> died{0};
  std::atomic<std::uint64_t> went_silent{0};
  std::atomic<std::uint64_t> partitioned{0};
  std::atomic<std::uint64_t> errors_received{0};
  std::atomic<std::uint64_t> run_over{0};  ///< workers told the run finished
};

/// Runs one simulated worker until the master says bye, the connection closes or it dies.
boost::asio::awaitable<void> run_simulated_worker(memory_stream stream,
                                                  simulated_worker_options options,
                                                  simulation_counters& counters);

}  // namespace drover::coord
