// scheduler_core against a plain reference model, on thousands of random cases: DAGs with
// random outcomes, retries, timeouts (timed_out outcomes), pools and keys, lookups and records,
// remote workers that are lost or give attempts back, cancels and deadlines. A seeded random
// driver plays the workers; every dispatch is checked when it happens, and every module's
// terminal state at the end (core_reference.hpp computes the statuses the modules must end in).
//
// DROVER_CORE_SEED=<n> replays one case; DROVER_CORE_CASES=<n> runs more or fewer.
#include <drover/detail/scheduler_core.hpp>

#define BOOST_TEST_MODULE core_property
#include "core_reference.hpp"

#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

namespace {

using namespace drover::test;
using namespace drover::test::property;
using drover::module_status;
using drover::run_status;
using drover::detail::no_module;
using drover::detail::stop_mode;
using kind = action::kind;

bool lets_run(module_status s) {
  return drover::lets_dependents_run(s);
}

/// How many cases exercised each rule, so a change that stops exercising one shows.
struct coverage {
  std::size_t fail_fast = 0, cancelled = 0, deadline = 0, retried = 0, lost = 0, poison = 0,
              given_back = 0, reused = 0;
  void add(const core_harness& h) {
    const auto& core = h.core();
    fail_fast += core.stopping() == stop_mode::unless_always_run;
    cancelled += h.result() == run_status::cancelled;
    deadline += core.deadline_passed();
    retried += !h.events_of(drover::event_type::module_retrying).empty();
    lost += core.remote_counters().workers_lost > 0;
    given_back += h.count(kind::drain_worker) > 0;
    reused += core.reused_from_journal() + core.reused_from_cache() > 0;
    bool poisoned = false;
    for (module_index i = 0; i < h.modules().size(); ++i)
      poisoned = poisoned || core.reason(i).starts_with("poison");
    poison += poisoned;
  }
};

class property_run {
 public:
  property_run(const random_case& c, bool tracing)
      : c_(c), h_(to_pipeline(c), to_settings(c)), rng_(c.seed * 7919 + 1), tracing_(tracing) {
    const std::size_t n = c.modules.size();
    losses_.assign(n, 0);
    dispatches_.assign(n, 0);
    finished_events_.assign(n, 0);
    finish_seq_.assign(n, 0);
    last_answer_.assign(n, module_status::pending);
    records_.assign(n, 0);
    recorded_.assign(n, false);
    checked_.assign(n, false);
  }

  /// What happened, for a replayed seed: the case, then every action and event in order.
  std::string trace() const {
    std::ostringstream out;
    out << "mode " << (c_.mode == drover::execution_mode::fail_fast ? "fail_fast" : "keep_going")
        << (c_.remote ? ", remote" : ", local") << ", local workers " << c_.local_workers
        << ", capacity " << c_.local_capacity << ", remote slots " << c_.remote_slots.size()
        << ", cancel at step " << (c_.cancel_at_step ? std::to_string(*c_.cancel_at_step) : "-")
        << ", deadline " << (c_.deadline ? std::to_string(c_.deadline->count()) : "-") << "\n";
    for (std::size_t i = 0; i < c_.modules.size(); ++i) {
      const module_case& m = c_.modules[i];
      out << id(i) << " deps";
      for (std::size_t d : m.deps)
        out << ' ' << id(d);
      out << (m.always_run ? " always_run" : "") << (m.ignore_failure ? " ignore_failure" : "")
          << " skip " << static_cast<int>(m.skip) << " reuse " << static_cast<int>(m.reuse)
          << " pool " << m.pool << " key " << m.key << " outcomes";
      for (module_status s : m.outcomes)
        out << ' ' << s;
      out << " losses " << losses_[i] << "\n";
    }
    out << log_.str();
    return out.str();
  }

  const core_harness& harness() const { return h_; }

  /// Runs the case; returns the first problem found, or nothing.
  std::string run() {
    for (std::uint32_t slots : c_.remote_slots)
      h_.attach_worker("w" + std::to_string(slots), {}, slots);
    input("start", no_module, 0, [&] { h_.start(); });
    const std::size_t max_steps = 500 + 100 * c_.modules.size();
    for (std::size_t step = 0; problem_.empty() && !h_.finished(); ++step) {
      if (step > max_steps) return "no end after " + std::to_string(step) + " steps";
      if (c_.cancel_at_step == step) {
        if (!h_.core().deadline_passed()) cancelled_by_caller_ = true;
        input("cancel", no_module, 0, [&] { h_.cancel(); });
        continue;
      }
      one_step();
    }
    if (problem_.empty()) check_end();
    return problem_;
  }

 private:
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  template <class T>
  T& any_of(std::vector<T>& v) {
    return v[std::uniform_int_distribution<std::size_t>(0, v.size() - 1)(rng_)];
  }
  void fail(std::string what) {
    if (problem_.empty()) problem_ = std::move(what);
  }
  std::string id(module_index i) const { return module_id(i); }
  const module_case& spec(module_index i) const { return c_.modules[i]; }

  // Feeds one input and checks what it produced. Notes when the run began to stop.
  template <class Input>
  void input(std::string_view what, module_index i, std::uint32_t attempt, Input&& feed) {
    if (tracing_) {
      log_ << h_.elapsed().count() << " ms: " << what;
      if (i != no_module) log_ << ' ' << id(i) << " attempt " << attempt;
      log_ << '\n';
    }
    const stop_mode before = h_.core().stopping();
    const std::size_t finished_before = finish_count_;
    feed();
    if (before == stop_mode::none && h_.core().stopping() != stop_mode::none)
      stopped_after_ = finished_before;
    absorb();
  }

  void one_step() {
    std::vector<core_harness::attempt_ref> waiting_start, local, remote;
    for (const auto& a : h_.running()) {
      if (!a.local) {
        remote.push_back(a);
      } else if (started_.count({a.module, a.attempt})) {
        local.push_back(a);
      } else {
        waiting_start.push_back(a);
      }
    }
    const bool answers = !checks_.empty() || !pending_records_.empty();
    if (waiting_start.empty() && local.empty() && remote.empty() && !answers) {
      // Nothing to do but wait for the core's timer.
      if (h_.timer_in() == milliseconds::max()) return fail("stuck: nothing running, no timer");
      return input("wait for the timer", no_module, 0,
                   [&] { h_.advance(std::max(milliseconds(0), h_.timer_in())); });
    }
    const int roll = std::uniform_int_distribution<int>(0, 9)(rng_);
    if (roll == 0) {
      // Never past the armed time: one input fires the timers of one time at most, so that
      // each dispatch is checked against the stop as it was when it went out.
      const milliseconds tick = std::min(milliseconds(chance(0.5) ? 1 : 5), h_.timer_in());
      return input("tick", no_module, 0, [&] { h_.advance(tick); });
    }
    if (roll == 1 && !checks_.empty()) return answer_check();
    if (roll == 2 && !pending_records_.empty()) return answer_record();
    if (!waiting_start.empty() && (roll < 5 || (local.empty() && remote.empty())))
      return start_local(any_of(waiting_start));
    if (!local.empty() && (roll < 7 || remote.empty())) return end_attempt(any_of(local));
    if (!remote.empty()) return end_remote(any_of(remote));
    if (!checks_.empty()) return answer_check();
    answer_record();
  }

  // A local worker takes an attempt; like the driver's workers, it does not start one that a
  // stop covers.
  void start_local(const core_harness::attempt_ref& a) {
    if (h_.core().stop_applies(a.module)) {
      return input("not started", a.module, a.attempt, [&] { h_.not_started(id(a.module)); });
    }
    started_.insert({a.module, a.attempt});
    input("started", a.module, a.attempt,
          [&] { h_.core().attempt_started(a.module, a.attempt, 0, h_.now()); });
  }

  module_status scripted(const core_harness::attempt_ref& a) {
    const std::uint32_t counted = a.attempt - losses_[a.module];
    const auto& outcomes = spec(a.module).outcomes;
    if (counted == 0 || counted > outcomes.size()) {
      fail(id(a.module) + ": attempt " + std::to_string(a.attempt) + " is counted attempt " +
           std::to_string(counted) + " of at most " + std::to_string(outcomes.size()));
      return module_status::failed;
    }
    // Asked to stop, an attempt mostly ends cancelled; sometimes its end crosses the cancel.
    if (h_.core().stop_applies(a.module) && chance(0.7)) return module_status::cancelled;
    return outcomes[counted - 1];
  }

  void end_attempt(const core_harness::attempt_ref& a) {
    const module_status s = scripted(a);
    last_answer_[a.module] = s;
    input(to_string(s), a.module, a.attempt, [&] { h_.end_attempt(a, s, "scripted"); });
  }

  void end_remote(const core_harness::attempt_ref& a) {
    const bool stopping = h_.core().stop_applies(a.module);
    if (chance(c_.loss_rate)) {
      for (const auto& r : h_.running()) {
        if (!r.local && r.worker == a.worker && !h_.core().stop_applies(r.module))
          ++losses_[r.module];
      }
      input("worker lost", a.module, a.attempt, [&] { h_.lose_worker(a.worker); });
    } else if (!stopping && chance(c_.give_back_rate)) {
      ++losses_[a.module];
      input("given back", a.module, a.attempt,
            [&] { h_.end_attempt(a, module_status::cancelled, "leaving"); });
    } else {
      return end_attempt(a);
    }
    // Keep a worker around, as a real pool would, so that no module waits for capabilities.
    if (c_.local_workers == 0 && h_.core().live_remote_workers() == 0 && !h_.finished())
      input("spare worker", no_module, 0, [&] { h_.attach_worker("spare", {}, 2); });
  }

  void answer_check() {
    const module_index i = any_of(checks_);
    std::erase(checks_, i);
    switch (spec(i).reuse) {
      case reuse_answer::miss:
        checked_[i] = true;
        return input("lookup: miss", i, 0,
                     [&] { h_.reuse(id(i), std::nullopt, reuse_source::none); });
      case reuse_answer::journal:
        return input("lookup: journal", i, 0,
                     [&] { h_.reuse(id(i), json::value(1), reuse_source::journal); });
      case reuse_answer::cache:
        return input("lookup: cache", i, 0,
                     [&] { h_.reuse(id(i), json::value(2), reuse_source::cache); });
      case reuse_answer::error:
        return input("lookup: error", i, 0,
                     [&] { h_.reuse(id(i), std::nullopt, reuse_source::none, "no fingerprint"); });
    }
  }

  void answer_record() {
    const module_index i = any_of(pending_records_);
    std::erase(pending_records_, i);
    recorded_[i] = true;
    input("recorded", i, 0, [&] { h_.recorded(id(i)); });
  }

  // Checks every action and event the last input produced.
  void absorb() {
    const auto& actions = h_.actions();
    for (; seen_actions_ < actions.size(); ++seen_actions_) {
      const action& a = actions[seen_actions_];
      if (tracing_) {
        log_ << "    " << a.what << ' ' << (a.module < c_.modules.size() ? id(a.module) : "")
             << (a.attempt ? " attempt " + std::to_string(a.attempt) : "")
             << (a.local ? " local" : "")
             << (a.worker != drover::detail::no_worker ? " worker " + std::to_string(a.worker) : "")
             << '\n';
      }
      switch (a.what) {
        case kind::dispatch:
          on_dispatch(a);
          break;
        case kind::check_reuse:
          checks_.push_back(a.module);
          break;
        case kind::record:
          ++records_[a.module];
          if (h_.core().status(a.module) == module_status::pending)
            fail("record of " + id(a.module) + " before its end");
          if (c_.wait_for_records) pending_records_.push_back(a.module);
          break;
        case kind::reject:
          fail("the core rejected a result of " + id(a.module) + " attempt " +
               std::to_string(a.attempt) + ": " + std::string(to_string(a.code)));
          break;
        default:
          break;
      }
    }
    const auto& events = h_.events();
    for (; seen_events_ < events.size(); ++seen_events_) {
      const auto& e = events[seen_events_];
      if (tracing_ && e.module != no_module) {
        log_ << "    event " << e.type << ' ' << id(e.module) << ' ' << e.status << " '"
             << e.message << "'\n";
      }
      if (e.type != drover::event_type::module_finished) continue;
      ++finished_events_[e.module];
      finish_seq_[e.module] = finish_count_++;
    }
  }

  void on_dispatch(const action& a) {
    const module_index i = a.module;
    const module_case& m = spec(i);
    const std::string who = id(i) + " attempt " + std::to_string(a.attempt);
    if (a.attempt != ++dispatches_[i]) fail(who + ": attempt numbers must count dispatches");
    if (a.attempt - losses_[i] > static_cast<std::uint32_t>(1 + m.retries))
      fail(who + ": more attempts than 1 + retries + losses");
    if (h_.core().stop_applies(i)) fail(who + ": dispatched under a stop that covers it");
    if (c_.check_reuse && !checked_[i]) fail(who + ": dispatched without a lookup");
    for (std::size_t d : m.deps) {
      const module_status ds = h_.core().status(static_cast<module_index>(d));
      if (ds == module_status::pending) fail(who + ": dependency " + id(d) + " has not ended");
      if (!lets_run(ds) && !m.always_run) fail(who + ": dependency " + id(d) + " did not succeed");
      if (c_.wait_for_records && !recorded_[d]) fail(who + ": " + id(d) + " is not recorded");
    }
    // What the attempts in flight hold, this one included.
    std::vector<std::uint32_t> pool_use(c_.pools.size(), 0);
    std::vector<int> key_use(static_cast<std::size_t>(c_.keys), 0);
    std::size_t local = 0;
    std::map<worker_number, std::uint32_t> per_worker;
    for (const auto& r : h_.running()) {
      const module_case& held = spec(r.module);
      if (held.pool >= 0) pool_use[static_cast<std::size_t>(held.pool)] += held.pool_slots;
      if (held.key >= 0) ++key_use[static_cast<std::size_t>(held.key)];
      if (r.local) {
        ++local;
      } else {
        ++per_worker[r.worker];
      }
    }
    for (std::size_t p = 0; p < pool_use.size(); ++p) {
      if (pool_use[p] > c_.pools[p]) fail(who + ": pool" + std::to_string(p) + " over capacity");
    }
    for (int use : key_use) {
      if (use > 1) fail(who + ": two modules with one not_in_parallel key");
    }
    if (local > std::max(c_.local_capacity, c_.local_workers))
      fail(who + ": more local dispatches than the capacity");
    for (const auto& [w, count] : per_worker) {
      const std::uint32_t slots = w - c_.local_workers < c_.remote_slots.size()
                                      ? c_.remote_slots[w - c_.local_workers]
                                      : 2;  // a spare
      if (count > slots) fail(who + ": worker " + std::to_string(w) + " over its slots");
    }
  }

  void check_end() {
    const std::size_t n = c_.modules.size();
    if (h_.count(kind::complete) != 1) return fail("complete must come exactly once");
    if (h_.actions().back().what != kind::complete) return fail("complete must be last");
    if (h_.events_of(drover::event_type::run_finished).size() != 1)
      return fail("run_finished must come exactly once");
    const auto expected = reference_statuses(c_, losses_);
    const stop_mode stop = h_.core().stopping();
    bool any_failure = false;
    for (module_index i = 0; i < n; ++i) {
      const module_status s = h_.core().status(i);
      const std::string who = id(i) + " (" + std::string(to_string(s)) + ", reference " +
                              std::string(to_string(expected[i])) + ")";
      any_failure = any_failure || drover::is_failure(s);
      if (s == module_status::pending) return fail(who + ": not terminal");
      if (finished_events_[i] != 1) return fail(who + ": module_finished must come once");
      if (c_.record && records_[i] != 1) return fail(who + ": must be recorded once");
      if (s == expected[i]) continue;
      const bool before_stop = finish_seq_[i] < stopped_after_;
      const bool covered =
          stop == stop_mode::everything || (stop != stop_mode::none && !spec(i).always_run);
      if (stop == stop_mode::none || before_stop || !covered) return fail(who + ": wrong status");
      if (!allowed_under_stop(i, s)) return fail(who + ": not a status a stop explains");
    }
    if (c_.mode == drover::execution_mode::fail_fast && stop == stop_mode::none) {
      for (module_index i = 0; i < n; ++i) {
        const module_status s = h_.core().status(i);
        if (s == module_status::failed || s == module_status::timed_out)
          return fail(id(i) + " failed under fail_fast, and the run did not stop");
      }
    }
    const run_status want = cancelled_by_caller_ ? run_status::cancelled
                            : any_failure        ? run_status::failed
                                                 : run_status::succeeded;
    if (h_.result() != want) {
      fail("run status " + std::string(to_string(h_.result())) + ", expected " +
           std::string(to_string(want)));
    }
  }

  // A module that ended after a stop covering it may end cancelled, skipped behind a
  // dependency that did not succeed, or with the timeout its last attempt reported (a timeout
  // is not retried under a stop).
  bool allowed_under_stop(module_index i, module_status s) const {
    const module_case& m = spec(i);
    switch (s) {
      case module_status::cancelled:
        return true;
      case module_status::skipped:
        return std::any_of(m.deps.begin(), m.deps.end(), [&](std::size_t d) {
          const module_status ds = h_.core().status(static_cast<module_index>(d));
          return !lets_run(ds) && ds != module_status::cancelled;
        });
      case module_status::timed_out:
      case module_status::ignored_failure:
        return last_answer_[i] == module_status::timed_out &&
               (s == module_status::ignored_failure) == m.ignore_failure;
      default:
        return false;
    }
  }

  const random_case& c_;
  core_harness h_;
  std::mt19937_64 rng_;
  std::string problem_;
  std::vector<std::uint32_t> losses_, dispatches_, finished_events_, records_;
  std::vector<std::size_t> finish_seq_;
  std::vector<module_status> last_answer_;
  std::vector<bool> recorded_, checked_;
  std::set<std::pair<module_index, std::uint32_t>> started_;
  std::vector<module_index> checks_, pending_records_;
  std::size_t seen_actions_ = 0, seen_events_ = 0, finish_count_ = 0;
  std::size_t stopped_after_ = static_cast<std::size_t>(-1);
  bool cancelled_by_caller_ = false;
  bool tracing_ = false;
  std::ostringstream log_;
};

std::optional<std::uint64_t> env_number(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  return std::strtoull(text, nullptr, 10);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(core_property)

BOOST_AUTO_TEST_CASE(the_core_agrees_with_the_reference_model) {
  std::vector<std::uint64_t> seeds;
  const std::optional<std::uint64_t> replay = env_number("DROVER_CORE_SEED");
  if (replay) {
    seeds.push_back(*replay);
  } else {
    const std::uint64_t cases = env_number("DROVER_CORE_CASES").value_or(6000);
    for (std::uint64_t s = 1; s <= cases; ++s)
      seeds.push_back(s);
  }
  const auto began = std::chrono::steady_clock::now();
  std::size_t failures = 0, modules = 0, cases = 0;
  coverage seen;
  for (std::uint64_t seed : seeds) {
    const random_case c = make_case(seed);
    modules += c.modules.size();
    ++cases;
    property_run run(c, replay.has_value());
    const std::string problem = run.run();
    BOOST_TEST(problem.empty(),
               "seed " << seed << " (replay with DROVER_CORE_SEED=" << seed << "): " << problem);
    if (replay) BOOST_TEST_MESSAGE(run.trace());
    if (problem.empty()) seen.add(run.harness());
    if (!problem.empty() && ++failures == 5) break;  // enough to go on with
  }
  const auto took =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - began);
  BOOST_TEST_MESSAGE(cases << " cases, " << modules << " modules, " << took.count() << " ms; "
                           << "cases with fail_fast " << seen.fail_fast << ", cancel "
                           << seen.cancelled << ", deadline " << seen.deadline << ", retries "
                           << seen.retried << ", worker losses " << seen.lost << ", poison "
                           << seen.poison << ", give-backs " << seen.given_back << ", reuse "
                           << seen.reused);
}

BOOST_AUTO_TEST_SUITE_END()
