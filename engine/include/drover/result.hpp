#pragma once
// What a run reports: one result per module plus run-level status and counts.

#include <drover/graph.hpp>
#include <drover/remote.hpp>
#include <drover/status.hpp>

#include <boost/json/value.hpp>

#include <array>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace drover {

using wall_clock = std::chrono::system_clock;

/// The outcome of one module.
struct module_result {
  std::string id;
  module_status status = module_status::pending;
  boost::json::value value;    ///< the body's value when succeeded, else null
  std::uint16_t attempts = 0;  ///< attempts started (0 when skipped or cancelled before starting)
  std::int32_t worker = -1;    ///< index into run_report::workers of the last attempt, -1 if none
  wall_clock::time_point started_at{};   ///< start of the first attempt
  wall_clock::time_point finished_at{};  ///< when the module reached its terminal state
  std::string reason;  ///< why it failed, timed out, was skipped or cancelled; empty on success

  std::chrono::milliseconds duration() const {
    if (attempts == 0) return std::chrono::milliseconds{0};
    return std::chrono::duration_cast<std::chrono::milliseconds>(finished_at - started_at);
  }
};

struct run_report {
  std::string pipeline;
  run_status status = run_status::invalid;
  wall_clock::time_point started_at{}, finished_at{};
  std::vector<module_result> modules;        ///< same order as pipeline::modules
  std::vector<std::string> workers;          ///< worker names, indexed by module_result::worker
  std::vector<validation_problem> problems;  ///< why the pipeline was invalid
  std::array<std::size_t, module_status_count> counts{};  ///< modules per module_status
  remote_stats remote;  ///< what happened with remote workers (all zero without them)
  /// The run's epoch: the worker hub's, else the journal's; 0 without either.
  std::uint64_t epoch = 0;
  std::size_t reused_from_journal = 0;  ///< modules cached because an earlier run recorded them
  std::size_t reused_from_cache = 0;    ///< modules cached from the fingerprint cache
  /// What the user should know that did not change the outcome: a torn journal line dropped,
  /// a result the cache could not store, a journal write that failed.
  std::vector<std::string> notes;

  std::size_t count(module_status s) const noexcept { return counts[static_cast<std::size_t>(s)]; }
  /// The module with this id, or nullptr. Linear search: for reports, not hot loops.
  const module_result* find(std::string_view id) const noexcept;
  std::string_view worker_name(const module_result& r) const noexcept {
    return r.worker < 0 ? std::string_view{} : std::string_view{workers[r.worker]};
  }
  std::chrono::milliseconds duration() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(finished_at - started_at);
  }
};

}  // namespace drover
