#include "worker_attempt.hpp"

#include <drover/constraints.hpp>

#include <exception>
#include <utility>

namespace drover::coord::detail {

namespace {

// "linux" -> {"", "linux"}; "os=linux,compiler=gcc" -> {"os", "linux"}, {"compiler", "gcc"}.
matrix_combination parse_matrix_target(std::string_view target) {
  matrix_combination values;
  while (!target.empty()) {
    const std::size_t comma = target.find(',');
    const std::string_view part = target.substr(0, comma);
    const std::size_t equals = part.find('=');
    if (equals == std::string_view::npos) {
      values.emplace_back(std::string{}, std::string{part});
    } else {
      values.emplace_back(std::string{part.substr(0, equals)},
                          std::string{part.substr(equals + 1)});
    }
    if (comma == std::string_view::npos) break;
    target.remove_prefix(comma + 1);
  }
  return values;
}

std::string in_quotes(std::string_view text) {
  return "'" + std::string{text} + "'";
}

}  // namespace

attempt_plan plan_attempt(assign_message& assign, const dependency_cache& cache,
                          const kind_resolver& resolve, std::string_view worker_name) {
  attempt_plan plan;
  module_body body;
  try {
    body = resolve(assign.kind, assign.params);
  } catch (const std::exception& e) {
    plan.error = "invalid params for kind " + in_quotes(assign.kind) + ": " + e.what();
    return plan;
  } catch (...) {
    plan.error = "invalid params for kind " + in_quotes(assign.kind) + ": unknown exception";
    return plan;
  }
  if (!body) {
    plan.error =
        "unknown module kind " + in_quotes(assign.kind) + " on worker " + std::string{worker_name};
    return plan;
  }

  attempt_request request;
  request.attempt = assign.attempt;
  request.dependencies.reserve(assign.deps.size());
  for (const std::string& dep : assign.deps) {
    auto found = cache.find(dep);
    if (found == cache.end()) {
      plan.error = "dependency " + in_quotes(dep) +
                   " is listed in deps, but the master never sent its result to this worker "
                   "(a protocol error of the master)";
      return plan;
    }
    request.dependencies.push_back({dep, found->second.status, found->second.value});
  }

  module_spec& spec = request.spec;
  spec.id = assign.module;
  spec.deps = assign.deps;
  spec.body = std::move(body);
  spec.kind = assign.kind;
  spec.params = std::move(assign.params);
  spec.retries = 0;  // the master owns retries
  if (assign.timeout_ms) spec.timeout = std::chrono::milliseconds(*assign.timeout_ms);
  if (assign.matrix_target) {
    spec.instance =
        matrix_instance{*assign.matrix_target, parse_matrix_target(*assign.matrix_target)};
  }
  if (!assign.outputs.empty()) spec.io.ensure().outputs = std::move(assign.outputs);
  plan.request = std::move(request);
  return plan;
}

std::int64_t unix_milliseconds(wall_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  return std::max<std::int64_t>(ms.count(), 0);
}

result_message make_attempt_result(const assign_message& assign, module_status status,
                                   boost::json::value value, std::string error,
                                   wall_clock::time_point started_at,
                                   wall_clock::time_point finished_at) {
  result_message result;
  result.run = assign.run;
  result.epoch = assign.epoch;
  result.module = assign.module;
  result.attempt = assign.attempt;
  result.status = status;
  if (status == module_status::succeeded) {
    result.value = std::move(value);
  } else {
    result.error = std::move(error);
  }
  result.started_at_ms = unix_milliseconds(started_at);
  result.finished_at_ms = unix_milliseconds(std::max(started_at, finished_at));
  return result;
}

result_message result_from_report(const assign_message& assign, attempt_report& report,
                                  const std::optional<std::string>& cancel_reason) {
  switch (report.status) {
    case module_status::succeeded:
      return make_attempt_result(assign, report.status, std::move(report.value), {},
                                 report.started_at, report.finished_at);
    case module_status::cancelled:
      if (cancel_reason) {
        return make_attempt_result(
            assign, report.status, nullptr,
            cancel_reason->empty() ? "cancelled by the master" : "cancelled: " + *cancel_reason,
            report.started_at, report.finished_at);
      }
      [[fallthrough]];
    case module_status::failed:
    case module_status::timed_out:
      return make_attempt_result(assign, report.status, nullptr, std::move(report.error),
                                 report.started_at, report.finished_at);
    default:
      return make_attempt_result(assign, module_status::failed, nullptr,
                                 "internal error: the attempt ended " +
                                     std::string{to_string(report.status)} +
                                     (report.error.empty() ? "" : ": " + report.error),
                                 report.started_at, report.finished_at);
  }
}

}  // namespace drover::coord::detail
