#pragma once
// How a worker turns one assign into something the engine runs, and the engine's report back
// into a result: a one-module pipeline whose dependencies are stand-ins returning the results
// the master sent.

#include <drover/coord/protocol.hpp>
#include <drover/coord/worker.hpp>
#include <drover/graph.hpp>
#include <drover/result.hpp>

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace drover::coord::detail {

/// A dependency result the master sent, shared by every attempt that reads it.
struct cached_dependency {
  module_status status = module_status::succeeded;
  boost::json::value value;
};

/// The dependency results received on one connection, by module id (one run per connection).
using dependency_cache = std::unordered_map<std::string, std::shared_ptr<const cached_dependency>>;

/// Either the pipeline to run for an assign, or why the attempt fails without running.
struct attempt_plan {
  std::optional<prepared_pipeline> prepared;
  std::size_t module_index = 0;  ///< the assigned module's index in the pipeline
  std::string error;             ///< set when prepared is empty
};

/// Builds the pipeline for `assign`: stand-ins for its deps (from `cache`), then the module with
/// its kind resolved, no retries and `timeout_ms` as its timeout. Moves assign.params.
/// Never throws for bad input: an unknown kind, bad params or a dependency missing from the
/// cache come back as `error`.
attempt_plan plan_attempt(assign_message& assign, const dependency_cache& cache,
                          const kind_resolver& resolve, std::string_view worker_name);

/// A result for `assign` (only its run, epoch, module and attempt are read): `value` when
/// `status` is succeeded, `error` otherwise.
result_message make_attempt_result(const assign_message& assign, module_status status,
                                   boost::json::value value, std::string error,
                                   wall_clock::time_point started_at,
                                   wall_clock::time_point finished_at);

/// The result of a run made from plan_attempt. `cancel_reason` is set when the master cancelled
/// the attempt: a cancelled module then reports "cancelled: <reason>".
result_message result_from_report(const assign_message& assign, run_report& report,
                                  std::size_t module_index,
                                  const std::optional<std::string>& cancel_reason);

/// Unix milliseconds.
std::int64_t unix_milliseconds(wall_clock::time_point t);

}  // namespace drover::coord::detail
