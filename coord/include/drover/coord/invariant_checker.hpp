#pragma once
// The rules every run must keep, checked against its events as they happen: a plain state
// machine, fed one event at a time, that knows nothing of I/O. The simulation feeds it every
// run (docs/simulation.md lists the invariants); a test may feed it any run's events.
//
//     drover::coord::invariant_checker check{plan};
//     options.on_event = [&](const drover::event& e) { check.on_event(e); };
//     ... run ...
//     check.finish(report);
//     for (const auto& v : check.violations()) std::cerr << v.describe() << '\n';

#include <drover/event.hpp>
#include <drover/plan.hpp>
#include <drover/result.hpp>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace drover::coord {

/// One broken rule: which rule, at which step (the event's seq), on which module.
struct violation {
  std::string invariant;  ///< e.g. "dependency order"
  std::uint64_t step = 0;
  std::string module;  ///< empty for the run as a whole
  std::string detail;

  /// "step 812, module m17: dependency order: started before m3 succeeded"
  std::string describe() const;
};

class invariant_checker {
 public:
  /// Checks runs of `plan`.
  explicit invariant_checker(const plan& plan);

  /// Checks one event of the run.
  void on_event(const event& e);
  /// A new run of the same plan resumes this one (the master restarted): attempts in flight
  /// are gone with the old run, and modules `now_succeeded` must not start again.
  void resume(const std::unordered_set<std::string>& now_succeeded);
  /// Checks the run's end: every module terminal, every attempt ended.
  void finish(const run_report& report);
  /// Records a violation found outside the events (a stalled run).
  void add(violation v);

  const std::vector<violation>& violations() const noexcept { return violations_; }
  bool ok() const noexcept { return violations_.empty(); }

  /// The plan's shape as the checker keeps it, for callers that no longer hold the plan (a
  /// run consumes it): how many modules, a module's id, its dependencies' indices.
  std::size_t size() const noexcept { return modules_.size(); }
  std::string_view id(std::uint32_t i) const noexcept {
    return std::string_view(ids_).substr(id_begin_[i], id_begin_[i + 1] - id_begin_[i]);
  }
  std::span<const std::uint32_t> deps(std::uint32_t i) const noexcept {
    return {deps_.data() + dep_begin_[i], deps_.data() + dep_begin_[i + 1]};
  }

 private:
  // What the rules need of each module: ids in one arena and dependencies in one array (a
  // simulation checks 100,000 modules), constraints in a side table, since few have any.
  static constexpr std::uint32_t unconstrained = ~std::uint32_t{0};
  struct module_model {
    std::uint32_t constraint = unconstrained;  // into constrained_
    std::uint16_t retries = 0;
    bool always_run = false;
    bool ignore_failure = false;
  };
  struct constraint_model {
    bool run_alone = false;
    std::string pool;
    std::uint32_t pool_slots = 0;
    std::vector<std::string> keys;
    std::vector<std::pair<std::string, bool>> literal_claims;  // resource, writes
  };
  struct module_state {
    bool running = false;
    bool finished = false;
    module_status status = module_status::pending;
    std::uint32_t retries_used = 0;
    std::uint32_t attempt = 0;
  };

  void report(const char* invariant, std::uint64_t step, std::uint32_t module, std::string detail);
  void start(const event& e);
  void end_attempt(std::uint32_t module);

  const constraint_model* constraints(std::uint32_t i) const noexcept {
    const std::uint32_t c = modules_[i].constraint;
    return c == unconstrained ? nullptr : &constrained_[c];
  }

  std::string ids_;
  std::vector<std::uint32_t> id_begin_;  // size + 1 offsets into ids_
  std::vector<std::uint32_t> deps_;
  std::vector<std::uint32_t> dep_begin_;  // size + 1 offsets into deps_
  std::vector<module_model> modules_;
  std::vector<constraint_model> constrained_;
  std::vector<module_state> state_;
  std::map<std::string, std::uint32_t> pool_capacity_;
  std::map<std::string, std::uint32_t> pool_used_;
  std::map<std::string, std::uint32_t> keys_held_;
  std::map<std::string, std::pair<std::uint32_t, std::uint32_t>> claims_held_;  // readers, writers
  std::vector<bool> journaled_;  // per module: recorded succeeded before a resume
  std::uint32_t running_ = 0;
  bool alone_running_ = false;
  std::uint64_t last_step_ = 0;
  std::vector<violation> violations_;
};

}  // namespace drover::coord
