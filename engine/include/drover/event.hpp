#pragma once
// Progress events a run emits to an optional subscriber.

#include <drover/result.hpp>

#include <cstdint>
#include <functional>
#include <string_view>

namespace drover {

enum class event_type : std::uint8_t {
  run_started,
  module_ready,     ///< dependencies done, waiting for a worker
  module_started,   ///< an attempt began on a worker
  module_retrying,  ///< an attempt failed and another is scheduled after `delay`
  module_finished,  ///< terminal state reached (any status, including skipped and cancelled)
  run_finished,
  worker_joined,      ///< a remote worker attached to the run (`worker`)
  worker_lost,        ///< a remote worker left or was lost (`worker`; why in `message`)
  module_reassigned,  ///< an attempt ended with its worker and runs again elsewhere (`message`)
  worker_drained,     ///< a remote worker gets nothing more; its attempts finish (`message`)
  /// A service accepted the run (drover serve): its first event there, before run_started.
  /// The engine itself never emits it.
  run_queued,
};

std::string_view to_string(event_type type) noexcept;

/// One event. Views point into run state and are valid only during the callback.
struct event {
  event_type type;
  std::uint64_t seq;  ///< 0, 1, 2, ... per run, in emission order
  wall_clock::time_point ts;
  std::string_view module;                        ///< empty for run events
  std::uint32_t index = 0;                        ///< module index in the pipeline
  std::uint32_t attempt = 0;                      ///< 1-based; 0 when not applicable
  std::string_view worker;                        ///< empty when not applicable
  module_status status = module_status::pending;  ///< for module_finished
  std::string_view message;                       ///< failure text or skip reason, if any
  std::chrono::milliseconds delay{0};             ///< for module_retrying
  std::size_t total = 0;                          ///< number of modules (run events)
  std::string_view run;                           ///< the run's id (run_options::run_id)
};

/// Receives events on the run's strand, in order. Must not block; exceptions are swallowed.
using event_sink = std::function<void(const event&)>;

}  // namespace drover
