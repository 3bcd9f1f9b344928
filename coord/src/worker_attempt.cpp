#include "worker_attempt.hpp"

#include <drover/constraints.hpp>
#include <drover/pipeline.hpp>

#include <boost/asio/awaitable.hpp>

#include <exception>
#include <stdexcept>
#include <utility>

namespace drover::coord::detail {

namespace {

namespace asio = boost::asio;

asio::awaitable<boost::json::value> return_cached(std::shared_ptr<const cached_dependency> dep) {
  co_return dep->value;
}

asio::awaitable<boost::json::value> fail_like(module_status status) {
  if (status == module_status::timed_out) throw timeout_error("timed out on the master's side");
  throw std::runtime_error("did not succeed on the master's side");
  co_return nullptr;
}

// A stand-in for a dependency that ends as the dependency did, so that ctx.result() and
// ctx.status_of() read what they would in a local run. Only `cancelled` cannot be reproduced
// by a body: such a dependency reads as failed (its value is null either way).
module_spec stand_in(const std::string& id, std::shared_ptr<const cached_dependency> dep) {
  module_spec spec;
  spec.id = id;
  spec.retries = 0;
  switch (dep->status) {
    case module_status::succeeded:
      spec.body = [dep = std::move(dep)](module_context&) { return return_cached(dep); };
      break;
    case module_status::skipped:
      spec.body = [](module_context&) { return fail_like(module_status::failed); };
      spec.skip_if = [] { return std::optional<std::string>{"skipped on the master's side"}; };
      break;
    case module_status::ignored_failure:
      spec.ignore_failure = true;
      spec.body = [](module_context&) { return fail_like(module_status::failed); };
      break;
    default:
      spec.body = [status = dep->status](module_context&) { return fail_like(status); };
      break;
  }
  return spec;
}

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

  pipeline p;
  p.name = assign.run;
  // keep_going: a stand-in that fails must not cancel the others; the module itself runs
  // regardless (always_run below).
  p.mode = execution_mode::keep_going;
  p.modules.reserve(assign.deps.size() + 1);
  bool every_dependency_succeeded = true;
  for (const std::string& dep : assign.deps) {
    auto found = cache.find(dep);
    if (found == cache.end()) {
      plan.error = "dependency " + in_quotes(dep) +
                   " is listed in deps, but the master never sent its result to this worker "
                   "(a protocol error of the master)";
      return plan;
    }
    every_dependency_succeeded =
        every_dependency_succeeded && found->second->status == module_status::succeeded;
    p.modules.push_back(stand_in(dep, found->second));
  }

  module_spec& spec = p.modules.emplace_back();
  spec.id = assign.module;
  spec.deps = assign.deps;
  spec.body = std::move(body);
  spec.kind = assign.kind;
  spec.params = std::move(assign.params);
  spec.retries = 0;  // the master owns retries
  if (assign.timeout_ms) spec.timeout = std::chrono::milliseconds(*assign.timeout_ms);
  // The master only sends an unsuccessful dependency to a module that runs regardless.
  spec.always_run = !every_dependency_succeeded;
  if (assign.matrix_target) {
    spec.instance =
        matrix_instance{*assign.matrix_target, parse_matrix_target(*assign.matrix_target)};
  }

  const std::size_t module_index = p.modules.size() - 1;
  prepare_result prepared = prepare(std::move(p));
  if (!prepared.ok()) {
    plan.error = "the assignment cannot run: " + format_problems(prepared.problems);
    return plan;
  }
  plan.prepared = std::move(prepared.prepared);
  plan.module_index = module_index;
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

result_message result_from_report(const assign_message& assign, run_report& report,
                                  std::size_t module_index,
                                  const std::optional<std::string>& cancel_reason) {
  const auto now = wall_clock::now();
  if (module_index >= report.modules.size()) {
    return make_attempt_result(assign, module_status::failed, nullptr,
                               "internal error: the run reported no result for the module", now,
                               now);
  }
  module_result& m = report.modules[module_index];
  const auto started = m.attempts > 0 ? m.started_at : now;
  const auto finished = m.attempts > 0 ? m.finished_at : now;
  switch (m.status) {
    case module_status::succeeded:
      return make_attempt_result(assign, m.status, std::move(m.value), {}, started, finished);
    case module_status::cancelled:
      if (cancel_reason) {
        return make_attempt_result(
            assign, m.status, nullptr,
            cancel_reason->empty() ? "cancelled by the master" : "cancelled: " + *cancel_reason,
            started, finished);
      }
      return make_attempt_result(assign, m.status, nullptr, std::move(m.reason), started, finished);
    case module_status::failed:
    case module_status::timed_out:
      return make_attempt_result(assign, m.status, nullptr, std::move(m.reason), started, finished);
    default:
      return make_attempt_result(assign, module_status::failed, nullptr,
                                 "internal error: the module ended " +
                                     std::string{to_string(m.status)} +
                                     (m.reason.empty() ? "" : ": " + m.reason),
                                 started, finished);
  }
}

}  // namespace drover::coord::detail
