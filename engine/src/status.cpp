#include <drover/event.hpp>
#include <drover/status.hpp>

namespace drover {

std::string_view to_string(module_status status) noexcept {
  switch (status) {
    case module_status::pending:
      return "pending";
    case module_status::succeeded:
      return "succeeded";
    case module_status::failed:
      return "failed";
    case module_status::timed_out:
      return "timed_out";
    case module_status::cancelled:
      return "cancelled";
    case module_status::skipped:
      return "skipped";
    case module_status::ignored_failure:
      return "ignored_failure";
    case module_status::cached:
      return "cached";
  }
  return "unknown";
}

std::optional<module_status> module_status_from_string(std::string_view name) noexcept {
  for (std::size_t s = 0; s < module_status_count; ++s) {
    const auto status = static_cast<module_status>(s);
    if (to_string(status) == name) return status;
  }
  return std::nullopt;
}

std::string_view to_string(run_status status) noexcept {
  switch (status) {
    case run_status::succeeded:
      return "succeeded";
    case run_status::failed:
      return "failed";
    case run_status::cancelled:
      return "cancelled";
    case run_status::invalid:
      return "invalid";
  }
  return "unknown";
}

std::string_view to_string(event_type type) noexcept {
  switch (type) {
    case event_type::run_started:
      return "run_started";
    case event_type::module_ready:
      return "module_ready";
    case event_type::module_started:
      return "module_started";
    case event_type::module_retrying:
      return "module_retrying";
    case event_type::module_finished:
      return "module_finished";
    case event_type::run_finished:
      return "run_finished";
    case event_type::worker_joined:
      return "worker_joined";
    case event_type::worker_lost:
      return "worker_lost";
    case event_type::module_reassigned:
      return "module_reassigned";
    case event_type::worker_drained:
      return "worker_drained";
    case event_type::run_queued:
      return "run_queued";
  }
  return "unknown";
}

}  // namespace drover
