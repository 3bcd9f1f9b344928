#pragma once
// How a worker turns one assign into an attempt the engine runs (drover::attempt_runner: one
// attempt with a run's semantics, without a run per assign), and the attempt's report back into
// a result.

#include <drover/attempt.hpp>
#include <drover/coord/protocol.hpp>
#include <drover/coord/worker.hpp>
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

/// A dependency result the master sent; its value is shared by every attempt that reads it.
struct cached_dependency {
  module_status status = module_status::succeeded;
  std::shared_ptr<const boost::json::value> value;  ///< null pointer: JSON null
};

/// The dependency results received on one connection, by module id (one run per connection).
using dependency_cache = std::unordered_map<std::string, cached_dependency>;

/// Either the attempt to run for an assign, or why it fails without running.
struct attempt_plan {
  std::optional<attempt_request> request;
  std::string error;  ///< set when request is empty
};

/// Builds the attempt for `assign`: the module with its kind resolved, `timeout_ms` as its
/// timeout, `outputs` as its declared outputs and its deps' results from `cache`, each read
/// with the status the master reported. Moves assign.params and assign.outputs.
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

/// The result of an attempt made from plan_attempt. `cancel_reason` is set when the master
/// cancelled the attempt: a cancelled attempt then reports "cancelled: <reason>".
result_message result_from_report(const assign_message& assign, attempt_report& report,
                                  const std::optional<std::string>& cancel_reason);

/// Unix milliseconds.
std::int64_t unix_milliseconds(wall_clock::time_point t);

}  // namespace drover::coord::detail
