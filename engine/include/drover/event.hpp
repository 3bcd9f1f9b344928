#pragma once
// Progress events a run emits to an optional subscriber.

#include <drover/result.hpp>

#include <cstddef>
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

/// A module's id as an event carries it. The run looks it up in its plan only when a subscriber
/// reads it, so one that reads only types and indices does not pay for a lookup that, in a
/// large run, misses the cache. Reads as a std::string_view; valid only during the callback.
class event_module {
 public:
  using lookup_fn = std::string_view (*)(const void* source, std::uint32_t index) noexcept;

  constexpr event_module() noexcept = default;
  constexpr event_module(std::string_view text) noexcept : text_(text) {}
  constexpr event_module(const char* text) noexcept : text_(text) {}
  /// The id `lookup(source, index)` returns, which is never empty.
  constexpr event_module(const void* source, lookup_fn lookup, std::uint32_t index) noexcept
      : source_(source), lookup_(lookup), index_(index) {}

  std::string_view view() const noexcept { return lookup_ ? lookup_(source_, index_) : text_; }
  operator std::string_view() const noexcept { return view(); }
  bool empty() const noexcept { return lookup_ == nullptr && text_.empty(); }
  std::size_t size() const noexcept { return view().size(); }
  friend bool operator==(const event_module& a, std::string_view b) noexcept {
    return a.view() == b;
  }

 private:
  std::string_view text_;
  const void* source_ = nullptr;
  lookup_fn lookup_ = nullptr;
  std::uint32_t index_ = 0;
};

/// One event. Views point into run state and are valid only during the callback.
struct event {
  event_type type;
  std::uint64_t seq;  ///< 0, 1, 2, ... per run, in emission order
  wall_clock::time_point ts;
  event_module module;                            ///< empty for run and worker events
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
