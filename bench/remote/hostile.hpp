#pragma once
// The hostile-peers benchmark (drover-bench --hostile): how much a run over TCP slows down while
// strangers hit the master's port. Each round runs the remote benchmark's drover row (N noop
// modules on K `drover worker` processes, run_tcp_round) twice, once alone and once while a child
// process of drover-bench (--hostile-client PORT) keeps up, from other loopback addresses than
// the workers' (127.0.0.2 to 127.0.0.10, so the per-address limits fall on the strangers only):
//   - 200 slow connections that send half a hello and nothing more, each reconnecting 100 ms
//     after the master closes it (50 from each of 127.0.0.2 to .5, under the default 64
//     handshakes per address, so the master holds all 200);
//   - 200 garbage connections that send up to 300 random bytes and a newline, each
//     reconnecting 1 s after the master closes it (127.0.0.6 to .9);
//   - a flood from 127.0.0.10: 50 connections opened and reset every 100 ms.
// The figure is the median hostile run time over the median clean one. On one machine the
// strangers also take CPU from the master and workers, so the figure is pessimistic.

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace drover::bench {

struct hostile_settings {
  std::vector<std::size_t> workers{4};
  std::size_t modules = 100'000;
  std::size_t rounds = 3;
};

struct hostile_measurement {
  std::size_t workers = 0;
  std::size_t modules = 0;
  std::vector<std::int64_t> clean_ns;    ///< the run alone, per round
  std::vector<std::int64_t> hostile_ns;  ///< the run beside the strangers, per round
  std::uint64_t connections = 0;         ///< the master accepted, in the last hostile round
  std::uint64_t refused = 0;             ///< closed at once by a limit, in the last hostile round
  std::string error;                     ///< empty when every round ran and every count was right

  bool ok() const noexcept { return error.empty(); }
  /// Median hostile time over median clean time, minus one: 0.05 is 5% slower.
  double slowdown() const;
};

/// Runs each worker count `rounds` times, a clean and a hostile round alternating, and stops a
/// count at its first failure. Progress goes to `progress`.
std::vector<hostile_measurement> measure_hostile(const hostile_settings& settings,
                                                 std::ostream& progress);

void print_hostile_table(std::ostream& out, const std::vector<hostile_measurement>& results,
                         std::size_t rounds, bool markdown);

boost::json::object hostile_to_json(const std::vector<hostile_measurement>& results,
                                    std::size_t rounds);

/// The child side (--hostile-client PORT): keeps the strangers above at 127.0.0.1:`port` until
/// it is killed. Returns an exit code when it cannot start.
int run_hostile_client(std::uint16_t port);

}  // namespace drover::bench
