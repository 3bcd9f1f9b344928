#pragma once
// A simulated remote worker: speaks the real protocol (encoded, framed) over any Asio stream,
// usually one end of a memory pipe, and "runs" each assignment by waiting a random delay and
// then succeeding or failing at random. Thousands fit in one process; the same seed gives the
// same delays, failures and deaths.
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
#include <optional>
#include <string>
#include <vector>

namespace drover::coord {

struct simulated_worker_options {
  std::string name;
  /// Labels offered besides the OS label (local_os_label()), which is always sent first.
  std::vector<std::string> capabilities;
  std::uint32_t slots = 1;
  std::chrono::milliseconds min_delay{0}, max_delay{0};  ///< per attempt, uniform
  double fail_rate = 0.0;                                ///< chance an attempt fails
  /// Dies (closes its connection without a word) this long after its handshake.
  std::optional<std::chrono::milliseconds> die_after;
  std::uint64_t seed = 1;
  std::optional<std::string> token;
};

/// What all simulated workers did, summed. Atomic: workers may run on several threads.
struct simulation_counters {
  std::atomic<std::uint64_t> connected{0};
  std::atomic<std::uint64_t> assignments{0};
  std::atomic<std::uint64_t> succeeded{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> died{0};
  std::atomic<std::uint64_t> errors_received{0};
  std::atomic<std::uint64_t> run_over{0};  ///< workers told the run finished
};

/// Runs one simulated worker until the master says bye, the connection closes or it dies.
boost::asio::awaitable<void> run_simulated_worker(memory_stream stream,
                                                  simulated_worker_options options,
                                                  simulation_counters& counters);

}  // namespace drover::coord
