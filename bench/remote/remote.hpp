#pragma once
// The remote-workers benchmark (drover-bench --remote): how many modules per second a master
// gets through worker processes on this machine, beside a floor measured in the same run.
//
// drover rows: an in-process coord::master on 127.0.0.1 (an ephemeral port) serves a run of N
// independent noop modules with run_options::workers = 0, so only remote workers run them; K
// `drover worker --connect ... --slots 16` child processes connect during the run. A row's time
// runs from async_run until the run's completion handler, so it includes starting the worker
// processes, their handshakes and their goodbyes' start.
//
// floor rows: the same traffic without drover. An Asio TCP server in this process sends N
// assign-like JSON lines (encoded with boost::json) over K connections, at most 16 in flight per
// connection; K child processes of drover-bench (--floor-client) read each line, parse it with
// boost::json, and answer a result-like line that the server parses and counts. No engine, no
// protocol validation, no handshake or heartbeats: what a master and a worker cannot avoid
// (process start, connect, encode, syscalls, parse) and nothing else.

#include "common/worker_rows.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace drover::bench {

/// Whether this drover-bench knows a drover binary to start workers from (CMake passes the
/// path when it builds the drover target).
bool remote_rows_available();

struct remote_settings {
  std::vector<std::size_t> workers{1, 2, 4, 8};
  std::size_t modules = 100'000;
  std::size_t rounds = 3;
};

using remote_measurement = worker_measurement;

/// Runs every worker count `rounds` times, the drover run and the floor alternating round by
/// round. After each drover round it checks that the run succeeded with every module, that K
/// workers were welcomed and that every worker process exited 0; after each floor round that
/// every module was answered once and every client exited 0. Progress goes to `progress`.
std::vector<remote_measurement> measure_remote(const remote_settings& settings,
                                               std::ostream& progress);

/// What run_tcp_round calls besides running the round.
struct tcp_round_hooks {
  /// Once the master listens on 127.0.0.1:`port`, before the workers start.
  std::function<void(coord::master&, std::uint16_t port)> listening;
  /// When the run has ended, before the master stops.
  std::function<void()> ended;
};

/// One drover round over TCP: `modules` noop modules on `workers` `drover worker --slots 16`
/// processes connected to 127.0.0.1 (run_drover_round).
drover_round_times run_tcp_round(std::size_t modules, std::size_t workers,
                                 const tcp_round_hooks& hooks = {});

/// The table: workers, modules, run ms, attach ms, modules/s, floor modules/s, vs floor.
void print_remote_table(std::ostream& out, const std::vector<remote_measurement>& results,
                        std::size_t rounds, bool markdown);

boost::json::object remote_to_json(const std::vector<remote_measurement>& results,
                                   std::size_t rounds);

/// The child side of a floor round: connects to 127.0.0.1:`port` and answers every line until
/// the server closes. Returns the exit code.
int run_floor_client(std::uint16_t port);

}  // namespace drover::bench
