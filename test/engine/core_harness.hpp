#pragma once
// A driver for scheduler_core on a virtual clock, for tests of its rules without an io_context:
// inputs in, actions out. The harness carries out no action itself; it sorts them (dispatches,
// cancels, rejections, records, ...), keeps the armed timer and the attempts that are running,
// and offers short inputs by module id:
//
//     drover::pipeline p;
//     p.add("a", no_body());
//     p.add("b", no_body(), {"a"});
//     core_harness h{std::move(p)};
//     h.start();
//     BOOST_TEST(h.dispatched() == ids{"a"});
//     h.end("a", module_status::succeeded);
//     BOOST_TEST(h.dispatched() == ids{"b"});
//     h.advance(100ms);  // fires the core's timer when its time comes
//
// The clock only moves when a test calls advance().

#include <drover/detail/scheduler_core.hpp>
#include <drover/plan.hpp>

#include "../common/printing.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace drover::detail {

inline std::ostream& operator<<(std::ostream& os, action::kind k) {
  static constexpr const char* names[] = {"dispatch",     "cancel",         "reject",
                                          "check_reuse",  "record",         "arm_timer",
                                          "drain_worker", "release_worker", "complete"};
  return os << names[static_cast<std::size_t>(k)];
}
inline std::ostream& operator<<(std::ostream& os, rejection r) {
  return os << to_string(r);
}
inline std::ostream& operator<<(std::ostream& os, stop_mode m) {
  static constexpr const char* names[] = {"none", "unless_always_run", "everything"};
  return os << names[static_cast<std::size_t>(m)];
}

}  // namespace drover::detail

namespace drover::test {

namespace json = boost::json;
using namespace std::chrono_literals;
using detail::action;
using detail::core_settings;
using detail::module_index;
using detail::rejection;
using detail::reuse_source;
using detail::time_point;
using detail::worker_number;
using std::chrono::milliseconds;
using ids = std::vector<std::string>;

/// A body for modules of a plan only the core sees: the core never calls bodies.
inline module_body no_body() {
  return [](module_context&) { return boost::asio::awaitable<json::value>{}; };
}

class core_harness {
 public:
  /// One attempt handed out and not yet answered by the test.
  struct attempt_ref {
    module_index module = detail::no_module;
    std::uint32_t attempt = 0;
    worker_number worker = detail::no_worker;  ///< no_worker for a local dispatch
    bool local = true;
  };
  /// An event as the core reported it, its message copied.
  struct event_record {
    event_type type;
    module_index module;
    std::uint32_t attempt;
    worker_number worker;
    module_status status;
    std::string message;
    milliseconds delay;
    time_point at;
  };

  explicit core_harness(pipeline p, core_settings settings = {}) : plan_(prepared(std::move(p))) {
    auto user_sink = std::move(settings.on_event);
    settings.on_event = [this, user_sink](const detail::core_event& e) {
      events_.push_back(
          {e.type, e.module, e.attempt, e.worker, e.status, std::string(e.message), e.delay, e.at});
      if (user_sink) user_sink(e);
    };
    epoch_ = settings.epoch;
    core_.emplace(plan_, std::move(settings));
  }

  detail::scheduler_core& core() { return *core_; }
  const detail::scheduler_core& core() const { return *core_; }
  const plan& modules() const { return plan_; }
  time_point now() const { return now_; }
  /// Virtual time since the harness was made.
  milliseconds elapsed() const { return std::chrono::duration_cast<milliseconds>(now_ - origin); }

  module_index index(std::string_view id) const {
    if (auto i = plan_.find(id)) return *i;
    throw std::invalid_argument("no module " + std::string(id));
  }
  std::string id(module_index i) const { return std::string(plan_.id(i)); }

  // --- inputs --------------------------------------------------------------------------------

  void start() {
    core_->start(now_);
    take();
  }
  void cancel() {
    core_->cancel(now_);
    take();
  }

  /// Ends the latest running attempt of `id`, local or remote, as its worker would report it.
  void end(std::string_view id, module_status status, std::string error = {},
           json::value value = nullptr) {
    end_attempt(running_attempt(id), status, std::move(error), std::move(value));
  }
  void succeed(std::string_view id, json::value value = nullptr) {
    end(id, module_status::succeeded, {}, std::move(value));
  }
  void fail(std::string_view id, std::string error = "boom") {
    end(id, module_status::failed, std::move(error));
  }
  void end_attempt(attempt_ref a, module_status status, std::string error = {},
                   json::value value = nullptr) {
    forget(a);
    detail::attempt_outcome outcome{status, std::move(value), std::move(error)};
    if (a.local) {
      --local_in_flight_;
      core_->attempt_ended(a.module, a.attempt, 0, now_, std::move(outcome), now_);
    } else {
      core_->remote_ended(a.worker, a.module, epoch_, a.attempt, std::move(outcome), now_);
    }
    take();
  }
  /// The local worker took the attempt of `id` but did not start it (a stop covered it).
  void not_started(std::string_view id) {
    const attempt_ref a = running_attempt(id);
    forget(a);
    --local_in_flight_;
    core_->attempt_not_started(a.module, a.attempt, now_);
    take();
  }
  /// A result from remote worker `w`, with any module, epoch and attempt (fencing tests).
  void remote_end(worker_number w, module_index i, std::uint32_t attempt, module_status status,
                  std::optional<std::uint64_t> epoch = std::nullopt, std::string error = {}) {
    std::erase_if(running_, [&](const attempt_ref& a) {
      return !a.local && a.worker == w && a.module == i && a.attempt == attempt;
    });
    core_->remote_ended(w, i, epoch.value_or(epoch_), attempt, {status, nullptr, std::move(error)},
                        now_);
    take();
  }

  worker_number attach_worker(std::string name, std::vector<std::string> labels = {},
                              std::uint32_t slots = 1) {
    const worker_number w = core_->worker_attached(std::move(name), std::move(labels), slots, now_);
    take();
    return w;
  }
  void lose_worker(worker_number w, std::string_view reason = "connection reset",
                   bool blames_attempts = true) {
    std::erase_if(running_, [&](const attempt_ref& a) { return !a.local && a.worker == w; });
    core_->worker_lost(w, reason, now_, blames_attempts);
    take();
  }
  void drain_worker(worker_number w, std::string reason = "operator drain") {
    core_->worker_draining(w, std::move(reason), now_);
    take();
  }
  void reuse(std::string_view id, std::optional<json::value> value, reuse_source source,
             std::string error = {}) {
    core_->reuse_checked(index(id), std::move(value), source, std::move(error), now_);
    take();
  }
  void recorded(std::string_view id) {
    core_->recorded(index(id), now_);
    take();
  }

  /// Moves the clock on by `d`, firing the core's timer at each time it armed on the way.
  void advance(milliseconds d) {
    const time_point target = now_ + d;
    while (armed_ && *armed_ <= target) {
      now_ = std::max(now_, *armed_);
      armed_.reset();
      core_->timer_fired(now_);
      take();
    }
    now_ = target;
  }

  // --- what the core asked ---------------------------------------------------------------------

  /// Ids dispatched since the last call, in dispatch order.
  ids dispatched() { return std::exchange(fresh_, {}); }
  const std::vector<attempt_ref>& dispatches() const { return dispatches_; }
  /// Attempts handed out that the test has not ended (a lost worker's are dropped).
  const std::vector<attempt_ref>& running() const { return running_; }
  bool is_running(std::string_view id) const {
    const module_index i = index(id);
    return std::any_of(running_.begin(), running_.end(),
                       [&](const attempt_ref& a) { return a.module == i; });
  }
  attempt_ref running_attempt(std::string_view id) const {
    const module_index i = index(id);
    for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
      if (it->module == i) return *it;
    }
    throw std::logic_error("no running attempt of " + std::string(id));
  }
  std::size_t local_in_flight() const { return local_in_flight_; }
  std::size_t max_local_in_flight() const { return max_local_in_flight_; }

  const std::vector<action>& actions() const { return log_; }
  std::vector<action> actions_of(action::kind k) const {
    std::vector<action> out;
    std::copy_if(log_.begin(), log_.end(), std::back_inserter(out),
                 [&](const action& a) { return a.what == k; });
    return out;
  }
  std::size_t count(action::kind k) const { return actions_of(k).size(); }
  /// Ids of the modules an action of kind `k` named, in order.
  ids named_by(action::kind k) const {
    ids out;
    for (const action& a : log_) {
      if (a.what == k && a.module != detail::no_module) out.push_back(id(a.module));
    }
    return out;
  }
  std::optional<time_point> armed() const { return armed_; }
  /// How long until the armed timer is due; milliseconds::max() when none is armed.
  milliseconds timer_in() const {
    if (!armed_) return milliseconds::max();
    return std::chrono::duration_cast<milliseconds>(*armed_ - now_);
  }
  /// Actions taken after a complete action (a run must have none).
  std::size_t actions_after_complete() const { return after_complete_; }

  const std::vector<event_record>& events() const { return events_; }
  std::vector<event_record> events_of(event_type t) const {
    std::vector<event_record> out;
    std::copy_if(events_.begin(), events_.end(), std::back_inserter(out),
                 [&](const event_record& e) { return e.type == t; });
    return out;
  }

  // --- the core's state, by id ---------------------------------------------------------------

  module_status status(std::string_view id) const { return core_->status(index(id)); }
  std::string reason(std::string_view id) const { return std::string(core_->reason(index(id))); }
  std::uint32_t attempts(std::string_view id) const { return core_->attempts(index(id)); }
  const json::value& value(std::string_view id) const { return core_->value(index(id)); }
  bool finished() const { return core_->finished(); }
  run_status result() const { return core_->result(); }

  static constexpr time_point origin = time_point{} + std::chrono::hours(1);

 private:
  static plan prepared(pipeline p) {
    prepare_result r = prepare(std::move(p));
    if (!r.ok()) {
      std::string problems;
      for (const auto& problem : r.problems)
        problems += problem.message + "; ";
      throw std::invalid_argument("pipeline rejected: " + problems);
    }
    return std::move(*r.plan);
  }

  void forget(const attempt_ref& a) {
    auto it = std::find_if(running_.begin(), running_.end(), [&](const attempt_ref& r) {
      return r.module == a.module && r.attempt == a.attempt && r.worker == a.worker;
    });
    if (it != running_.end()) running_.erase(it);
  }

  // Takes every action the core asked for and sorts it.
  void take() {
    for (action a; core_->next_action(a);) {
      if (completes_ > 0) ++after_complete_;
      log_.push_back(a);
      switch (a.what) {
        case action::kind::dispatch: {
          const attempt_ref ref{a.module, a.attempt, a.local ? detail::no_worker : a.worker,
                                a.local};
          running_.push_back(ref);
          dispatches_.push_back(ref);
          fresh_.push_back(id(a.module));
          if (a.local) max_local_in_flight_ = std::max(max_local_in_flight_, ++local_in_flight_);
          break;
        }
        case action::kind::arm_timer:
          armed_ = a.at;
          break;
        case action::kind::complete:
          ++completes_;
          break;
        default:
          break;
      }
    }
  }

  plan plan_;
  std::optional<detail::scheduler_core> core_;
  std::uint64_t epoch_ = 0;
  time_point now_ = origin;
  std::optional<time_point> armed_;
  std::vector<action> log_;
  std::vector<event_record> events_;
  std::vector<attempt_ref> running_, dispatches_;
  ids fresh_;
  std::size_t local_in_flight_ = 0, max_local_in_flight_ = 0;
  std::size_t completes_ = 0, after_complete_ = 0;
};

}  // namespace drover::test
