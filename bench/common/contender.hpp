#pragma once
// The contenders: each runs one shape once and reports how long building and running took.
// One file per contender under bench/contenders/.

#include "common/module_work.hpp"
#include "common/shape.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace drover::bench {

enum class contender : std::uint8_t {
  drover,              ///< drover::engine, no event subscriber
  drover_events,       ///< drover::engine with a counting run_options::on_event
  drover_constrained,  ///< drover::engine, every module with two resource claims and a pool slot
  asio_raw,            ///< boost::asio::post per module and hand-written dependency counters
  tbb,                 ///< tbb::flow::graph of continue_nodes
};

inline constexpr std::array all_contenders = {contender::drover, contender::drover_events,
                                              contender::drover_constrained, contender::asio_raw,
                                              contender::tbb};

/// Whether `--contender default` (the flag's default) includes `c`. drover_constrained is left
/// out: it measures one feature's cost, and is asked for by name or with `all`.
bool in_default_run(contender c) noexcept;

std::string_view to_string(contender c) noexcept;
std::optional<contender> parse_contender(std::string_view name) noexcept;

/// False for tbb when drover-bench was configured without TBB.
bool is_built(contender c) noexcept;

/// One round, in nanoseconds. `build_ns` is what the contender must do before it can run the
/// shape (see each contender); `run_ns` runs it to completion.
struct round_figures {
  std::int64_t build_ns = 0;
  std::int64_t run_ns = 0;
};

/// Runs `s` once with `threads` threads, calling `work(i)` once per module i. Throws
/// std::runtime_error when the contender itself reports something wrong (the harness checks
/// `work` afterwards).
/// Which drover configuration run_drover measures (see contenders/drover.cpp).
enum class drover_setup : std::uint8_t { plain, with_events, constrained };

round_figures run_drover(const shape& s, module_work& work, std::size_t threads,
                         drover_setup setup);
round_figures run_asio_raw(const shape& s, module_work& work, std::size_t threads);
round_figures run_tbb(const shape& s, module_work& work, std::size_t threads);

/// The TBB version drover-bench was compiled against and runs with; empty without TBB.
std::string tbb_version();

using io_work_guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;

/// Runs `io` on `threads` threads, the calling thread being one of them. The others start
/// first and idle; then `start(guard)` initiates the work, and whatever completes it resets
/// `guard` so that every thread's io.run() returns.
template <class Start>
void run_on_threads(boost::asio::io_context& io, std::size_t threads, Start&& start) {
  std::vector<std::jthread> helpers;
  io_work_guard guard = boost::asio::make_work_guard(io);
  helpers.reserve(threads - 1);
  for (std::size_t t = 1; t < threads; ++t)
    helpers.emplace_back([&io] { io.run(); });
  try {
    start(guard);
    io.run();
  } catch (...) {
    io.stop();  // lets the helpers return so that they can be joined
    throw;
  }
}

}  // namespace drover::bench
