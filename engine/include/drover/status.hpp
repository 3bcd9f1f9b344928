#pragma once
// Terminal states of a module and of a whole run.

#include <cstdint>
#include <optional>
#include <string_view>

namespace drover {

/// The state a module ends in. `pending` is only seen while a run is in progress.
enum class module_status : std::uint8_t {
  pending,
  succeeded,
  failed,
  timed_out,
  cancelled,
  skipped,
  ignored_failure,
  /// Succeeded without running: its value came from the journal of an earlier run (resume) or
  /// from the fingerprint cache, its fingerprint being unchanged.
  cached,
};

/// Number of values of module_status, for per-status counters.
inline constexpr std::size_t module_status_count = 8;

/// Lower-case name used in reports, events and the CLI ("timed_out", ...).
std::string_view to_string(module_status status) noexcept;
/// The status named `name` (as to_string spells it), or nothing.
std::optional<module_status> module_status_from_string(std::string_view name) noexcept;

/// True for the states whose dependents may run: succeeded and ignored_failure.
constexpr bool lets_dependents_run(module_status status) noexcept {
  return status == module_status::succeeded || status == module_status::ignored_failure ||
         status == module_status::cached;
}

/// True for failed, timed_out and cancelled: the states that make a run unsuccessful.
constexpr bool is_failure(module_status status) noexcept {
  return status == module_status::failed || status == module_status::timed_out ||
         status == module_status::cancelled;
}

/// How a whole run ended.
enum class run_status : std::uint8_t {
  succeeded,  ///< every module succeeded, was skipped by a condition, or had its failure ignored
  failed,     ///< at least one module failed, timed out or was cancelled by fail_fast
  cancelled,  ///< the caller cancelled the run
  invalid,    ///< validation rejected the pipeline; nothing ran
};

std::string_view to_string(run_status status) noexcept;

}  // namespace drover
