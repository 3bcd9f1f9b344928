#pragma once
// What the worker benchmarks (--remote over TCP, --redis over Redis Streams) share: the drover
// rows' pipeline, and the floor: the traffic between a master and its workers with no engine. The
// server keeps at most slots_per_worker assign-like lines in flight per connection; each client
// parses every line and answers a result-like line, which the server parses and counts. No protocol
// validation, handshake or heartbeats: what a master and a worker cannot avoid (encode, transport,
// parse).

#include "common/timing.hpp"

#include <drover/coord/master.hpp>
#include <drover/engine.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace drover::bench {

/// `modules` independent noop modules for remote workers only: run it with
/// run_options::workers = 0; a module that ran in the master's process fails the run loudly.
/// Throws when the engine rejects it.
plan remote_noop_plan(std::size_t modules);

/// Like the master's dispatcher, the floor keeps at most this many lines in flight per
/// connection: the `--slots 16` the drover workers announce.
constexpr std::size_t slots_per_worker = 16;

/// Lines shaped like the protocol's assign and result (docs/protocol.md), with the same
/// members, so that encoding and parsing cost what the real messages cost.
std::string assign_line(std::size_t module);
std::string result_line(const boost::json::object& assign);

/// The module index a result line names; throws when the line is not a succeeded result for
/// one of `modules` modules.
std::size_t parse_result(std::string_view line, std::size_t modules);

/// The client's side: answers each complete line at the front of `in` (and erases it) with a
/// result line appended to `out`. Throws when a line is not JSON.
void answer_assign_lines(std::string& in, std::string& out);

/// The server's count, touched only on its io_context's thread.
struct floor_state {
  std::size_t modules = 0;
  std::size_t next = 0;
  std::size_t answered = 0;
  std::vector<std::uint8_t> seen;
  bench_clock::time_point finished{};
  std::string error;
  std::function<void()> on_all_answered;  ///< called once, when the last line is answered

  explicit floor_state(std::size_t count) : modules(count), seen(count, 0) {}

  /// Counts one answered line; throws when `module` was answered before.
  void count_answer(std::size_t module);
  /// Counts each complete line at the front of `in` and erases it; returns how many.
  std::size_t take_answers(std::string& in);
};

/// The server's watch over one floor round on `io`: a deadline (60 s plus 1 ms a module) that
/// stops `io` with st.error set, and fail() for the round's coroutines: their completion
/// handler, which keeps the first failure in st.error and stops `io`.
class floor_watch {
 public:
  floor_watch(boost::asio::io_context& io, floor_state& st);
  void fail(std::exception_ptr e);

 private:
  boost::asio::io_context& io_;
  floor_state& st_;
  boost::asio::steady_timer deadline_;
};

/// Throws unless the floor answered each of its lines once.
void check_floor(const floor_state& st);

/// Throws unless `report` exists and says the run succeeded with all `modules` modules, and
/// the master welcomed exactly `workers` workers.
void check_remote_run(const std::optional<run_report>& report, std::size_t modules,
                      std::uint64_t welcomed, std::size_t workers);

/// One worker count: every round of both the drover run and the floor.
struct worker_measurement {
  std::size_t workers = 0;
  std::size_t modules = 0;
  std::vector<std::int64_t> run_ns;     ///< drover: async_run to completion
  std::vector<std::int64_t> attach_ns;  ///< drover: async_run to the K-th worker welcomed
  std::vector<std::int64_t> floor_ns;   ///< floor: first spawn to the N-th answer parsed
  std::string error;                    ///< empty when every round ran and every count was right

  bool ok() const noexcept { return error.empty(); }
  double modules_per_second() const;
  double floor_modules_per_second() const;
};

/// What one drover round took; attach_ns is -1 when not every worker was welcomed.
struct drover_round_times {
  std::int64_t run_ns = 0;
  std::int64_t attach_ns = -1;
};

/// How a drover round reaches its workers: the transport's part of run_drover_round.
struct worker_transport {
  /// Connects the master to the transport before the run starts (listen, accept, ...).
  std::function<void(boost::asio::io_context&, coord::master&)> open;
  /// Stops it when the run has ended (the master is stopped after it).
  std::function<void()> close = [] {};
  /// The arguments of the `drover worker` process named `name`.
  std::function<std::vector<std::string>(const std::string& name)> worker_args;
  /// After the round: why the transport failed, or empty.
  std::function<std::string()> failure = [] { return std::string(); };
};

/// One drover round: `modules` noop modules (remote_noop_plan) on a coord::master in this
/// process, one io_context thread, run_options::workers = 0, and `workers` `drover worker`
/// processes started right after async_run. Throws unless the run succeeded with every module,
/// the master welcomed exactly `workers` workers and every worker exited 0 within 10 s of the
/// end.
drover_round_times run_drover_round(std::size_t modules, std::size_t workers,
                                    const worker_transport& transport);

/// Runs each of `worker_counts` `rounds` times, a drover round and a floor round alternating,
/// and stops a count at its first failure (which the measurement's error names). Each count's
/// figures go to `progress` on a line that starts with `label`.
std::vector<worker_measurement> measure_worker_rows(
    const std::vector<std::size_t>& worker_counts, std::size_t modules, std::size_t rounds,
    std::string_view label, const std::function<drover_round_times(std::size_t)>& drover_round,
    const std::function<std::int64_t(std::size_t)>& floor_round, std::ostream& progress);

/// The table: workers, modules, run ms, attach ms, modules/s, floor ms, floor modules/s and
/// vs floor, under the heading `title`, then a line per failed count.
void print_worker_table(std::ostream& out, std::string_view title,
                        const std::vector<worker_measurement>& rows, std::size_t rounds,
                        bool markdown);

boost::json::array worker_rows_to_json(const std::vector<worker_measurement>& rows);

/// Serves one connection until none of its lines is in flight and no module is left to send.
template <typename Stream>
boost::asio::awaitable<void> serve_floor_connection(Stream& stream, floor_state& st) {
  std::string out, in;
  char buffer[65536];
  std::size_t in_flight = 0;
  const auto assign_next = [&] {
    if (st.next >= st.modules) return;
    out += assign_line(st.next++);
    ++in_flight;
  };
  for (std::size_t i = 0; i < slots_per_worker; ++i)
    assign_next();
  while (in_flight > 0) {
    if (!out.empty()) {
      co_await boost::asio::async_write(stream, boost::asio::buffer(out),
                                        boost::asio::use_awaitable);
      out.clear();
    }
    const std::size_t got =
        co_await stream.async_read_some(boost::asio::buffer(buffer), boost::asio::use_awaitable);
    in.append(buffer, got);
    for (std::size_t answered = st.take_answers(in); answered > 0; --answered) {
      --in_flight;
      assign_next();
    }
  }
}

}  // namespace drover::bench
