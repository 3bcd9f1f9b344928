#include <drover/constraints.hpp>

#define BOOST_TEST_MODULE constraints
#include "test_support.hpp"

#include <drover/modules/registry.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>

// Every test runs its pipelines at 1, 2 and 8 workers, without and with a thread pool. Bodies
// check the constraints themselves through a constraint_monitor: each body, when it begins,
// compares its own constraints with those of every body running at that moment and fails on a
// violation; the monitor also records how much really ran at once, so that a test can tell a
// constraint that holds from an engine that merely serialized everything.

namespace {

using namespace drover::test;
using drover::claim_mode;
using drover::module_status;
using drover::run_status;

// ---------------------------------------------------------------------------------------------
// An overlap oracle for resource globs, independent of the engine's matcher.

std::vector<std::string_view> split_segments(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = path.find('/', start);
    out.push_back(path.substr(start, slash - start));
    if (slash == std::string_view::npos) return out;
    start = slash + 1;
  }
}

// Globs in this file use only whole-segment wildcards: `*` is any one segment, `**` any number
// of segments (none included); every other segment is literal.
bool segments_match(const std::vector<std::string_view>& glob, std::size_t g,
                    const std::vector<std::string_view>& path, std::size_t p) {
  if (g == glob.size()) return p == path.size();
  if (glob[g] == "**") {
    for (std::size_t skip = p; skip <= path.size(); ++skip) {
      if (segments_match(glob, g + 1, path, skip)) return true;
    }
    return false;
  }
  if (p == path.size()) return false;
  if (glob[g] != "*" && glob[g] != path[p]) return false;
  return segments_match(glob, g + 1, path, p + 1);
}

bool oracle_matches(std::string_view glob, std::string_view path) {
  return segments_match(split_segments(glob), 0, split_segments(path), 0);
}

// The concrete paths the oracle tries. For the globs this file uses (the property test's
// alphabet `r`, `r/a`, `r/b`, `r/*`, `r/**`, `s/b`, `s/*`, `*/a`, `r/a/x`, `**`, and the
// directed tests' `db`, `db/users`, `db/*`, `a/*`, `b/*`) two globs share some path exactly
// when they share one of these: two globs without `**` overlap only on paths of their common
// length, whose segments can be taken from the literals they contain (r/a, r/b, s/a, s/b,
// db/users, a/x, b/x), and `r/**` or `**` meet another glob on that glob's own witnesses
// (r, r/a, r/b, r/a/x, s/a, s/b).
constexpr std::string_view overlap_witnesses[] = {
    "r", "s", "r/a", "r/b", "s/a", "s/b", "r/a/x", "db", "db/users", "db/orders", "a/x", "b/x"};

bool oracle_overlap(std::string_view a, std::string_view b) {
  for (std::string_view path : overlap_witnesses) {
    if (oracle_matches(a, path) && oracle_matches(b, path)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// The monitor every body reports to.

/// What bodies did and whether any two broke a constraint by running at once. Thread-safe:
/// bodies call it from the engine's worker threads.
class constraint_monitor {
 public:
  /// Takes the rules to check from `p`. Call before the run (after the modules are added).
  void learn(const drover::pipeline& p) {
    std::lock_guard lock{mutex_};
    capacity_ = p.pools;
    for (const auto& m : p.specs()) {
      rules r;
      if (const auto* c = m.constraints.get()) {
        r.pool = c->pool;
        r.slots = c->pool_slots;
        r.keys = c->not_in_parallel;
        r.claims = c->claims;
        r.alone = c->run_alone;
      }
      rules_[m.id] = std::move(r);
    }
  }

  /// Records that `id` began; returns what it conflicts with among the running modules, or
  /// nothing. A conflict is also kept in violations().
  std::optional<std::string> begin(std::string_view id) {
    std::lock_guard lock{mutex_};
    const std::string me{id};
    const rules& mine = rules_[me];
    std::optional<std::string> problem;
    std::map<std::string, std::uint32_t> pool_use;
    for (const auto& other : running_) {
      const rules& theirs = rules_[other];
      if (!problem) problem = conflict(me, mine, other, theirs);
      if (!theirs.pool.empty()) pool_use[theirs.pool] += theirs.slots;
      overlaps_.insert(me < other ? std::pair{me, other} : std::pair{other, me});
    }
    if (!mine.pool.empty()) {
      const std::uint32_t used = pool_use[mine.pool] + mine.slots;
      if (!problem && used > capacity_[mine.pool]) {
        problem = me + " took pool " + mine.pool + " to " + std::to_string(used) + " of " +
                  std::to_string(capacity_[mine.pool]) + " slots";
      }
      max_pool_use_[mine.pool] = std::max(max_pool_use_[mine.pool], used);
    }
    running_.push_back(me);
    max_running_ = std::max(max_running_, running_.size());
    log_.push_back({me, true});
    if (problem) violations_.push_back(*problem);
    return problem;
  }

  void end(std::string_view id) {
    std::lock_guard lock{mutex_};
    auto it = std::find(running_.begin(), running_.end(), id);
    if (it != running_.end()) running_.erase(it);
    log_.push_back({std::string{id}, false});
  }

  std::vector<std::string> violations() const {
    std::lock_guard lock{mutex_};
    return violations_;
  }
  std::size_t max_running() const {
    std::lock_guard lock{mutex_};
    return max_running_;
  }
  std::uint32_t max_pool_use(const std::string& pool) const {
    std::lock_guard lock{mutex_};
    auto it = max_pool_use_.find(pool);
    return it == max_pool_use_.end() ? 0 : it->second;
  }
  /// Whether `a` and `b` ran at the same time at least once.
  bool overlapped(const std::string& a, const std::string& b) const {
    std::lock_guard lock{mutex_};
    return overlaps_.count(a < b ? std::pair{a, b} : std::pair{b, a}) > 0;
  }
  bool has_begun(std::string_view id) const { return position(id, true, 1).has_value(); }
  bool has_ended(std::string_view id) const { return position(id, false, 1).has_value(); }
  /// Where the nth (1-based) begin or end of `id` is in the log of all begins and ends.
  std::optional<std::size_t> position(std::string_view id, bool begin, int nth = 1) const {
    std::lock_guard lock{mutex_};
    for (std::size_t i = 0; i < log_.size(); ++i) {
      if (log_[i].id == id && log_[i].begin == begin && --nth == 0) return i;
    }
    return std::nullopt;
  }
  /// Module ids in the order their attempts began.
  std::vector<std::string> begin_order() const {
    std::lock_guard lock{mutex_};
    std::vector<std::string> order;
    for (const auto& e : log_) {
      if (e.begin) order.push_back(e.id);
    }
    return order;
  }
  /// Ids that began between log positions `from` and `to` (exclusive).
  std::vector<std::string> begun_between(std::size_t from, std::size_t to) const {
    std::lock_guard lock{mutex_};
    std::vector<std::string> out;
    for (std::size_t i = from + 1; i < to && i < log_.size(); ++i) {
      if (log_[i].begin) out.push_back(log_[i].id);
    }
    return out;
  }

 private:
  struct rules {
    std::string pool;
    std::uint32_t slots = 1;
    std::vector<std::string> keys;
    std::vector<drover::resource_claim> claims;
    bool alone = false;
  };
  struct log_entry {
    std::string id;
    bool begin;
  };

  static std::optional<std::string> conflict(const std::string& a, const rules& ra,
                                             const std::string& b, const rules& rb) {
    if (ra.alone || rb.alone) {
      return (ra.alone ? a : b) + " runs alone but " + (ra.alone ? b : a) + " ran beside it";
    }
    for (const auto& key : ra.keys) {
      if (std::find(rb.keys.begin(), rb.keys.end(), key) != rb.keys.end())
        return a + " and " + b + " share not_in_parallel key " + key;
    }
    for (const auto& x : ra.claims) {
      for (const auto& y : rb.claims) {
        const bool writes = x.mode == claim_mode::write || y.mode == claim_mode::write;
        if (writes && oracle_overlap(x.resource, y.resource)) {
          return a + " (" + x.resource + ") and " + b + " (" + y.resource +
                 ") hold conflicting claims";
        }
      }
    }
    return std::nullopt;
  }

  mutable std::mutex mutex_;
  std::map<std::string, rules, std::less<>> rules_;
  std::map<std::string, std::uint32_t> capacity_;
  std::vector<std::string> running_;
  std::size_t max_running_ = 0;
  std::map<std::string, std::uint32_t> max_pool_use_;
  std::set<std::pair<std::string, std::string>> overlaps_;
  std::vector<log_entry> log_;
  std::vector<std::string> violations_;
};

/// Reports a body's begin to the monitor and its end when it goes out of scope, so an attempt
/// that throws or is cancelled still ends.
class monitor_scope {
 public:
  monitor_scope(constraint_monitor& monitor, std::string_view id)
      : monitor_(monitor), id_(id), problem_(monitor.begin(id)) {}
  ~monitor_scope() { monitor_.end(id_); }
  monitor_scope(const monitor_scope&) = delete;
  monitor_scope& operator=(const monitor_scope&) = delete;
  const std::optional<std::string>& problem() const noexcept { return problem_; }

 private:
  constraint_monitor& monitor_;
  std::string id_;
  std::optional<std::string> problem_;
};

/// What a monitored body does after it began: hold until a condition is true (polled every
/// millisecond, failing after 10 s), wait, and fail its first attempts.
struct body_plan {
  milliseconds wait{0};
  std::function<bool()> hold_until;
  std::uint32_t failing_attempts = 0;
};

asio::awaitable<json::value> monitored_body(drover::module_context& ctx,
                                            constraint_monitor* monitor, body_plan plan) {
  monitor_scope scope{*monitor, ctx.id()};
  if (scope.problem()) throw std::runtime_error("constraint violated: " + *scope.problem());
  if (plan.hold_until) {
    const auto deadline = steady::now() + 10s;
    while (!plan.hold_until()) {
      if (steady::now() > deadline) throw std::runtime_error("held for 10 s: condition never met");
      co_await wait_for(1ms);
    }
  }
  co_await wait_for(plan.wait);
  if (ctx.attempt() <= plan.failing_attempts) {
    throw std::runtime_error("planned failure of attempt " + std::to_string(ctx.attempt()));
  }
  co_return nullptr;
}

drover::module_body monitored(constraint_monitor& monitor, body_plan plan) {
  return [monitor = &monitor, plan](drover::module_context& ctx) {
    return monitored_body(ctx, monitor, plan);
  };
}

drover::module_body monitored(constraint_monitor& monitor, milliseconds wait) {
  return monitored(monitor, body_plan{wait, {}, 0});
}

// ---------------------------------------------------------------------------------------------
// Running a pipeline with a limit.

/// Where a run's workers run.
struct run_setting {
  std::size_t workers;
  std::size_t threads;  ///< engine_options::worker_threads
};

std::ostream& operator<<(std::ostream& os, const run_setting& s) {
  return os << s.workers << " workers, " << s.threads << " pool threads";
}

std::vector<run_setting> all_settings() {
  std::vector<run_setting> out;
  for (std::size_t workers : worker_counts) {
    for (std::size_t threads : {std::size_t{0}, std::size_t{2}})
      out.push_back({workers, threads});
  }
  return out;
}

struct guarded_run {
  drover::run_report report;
  milliseconds elapsed{0};
  bool exceeded_limit = false;  ///< the run had to be cancelled because it took too long
};

/// Runs `input` (a pipeline or a prepared_pipeline) on a fresh io_context. After `limit` the
/// run is cancelled and the result says so; should it not end 10 s later, the test fails and
/// the engine is leaked instead of being destroyed under a running run. `cancel_after` cancels
/// the run on purpose.
template <class Input>
guarded_run run_guarded(Input input, drover::run_options options, std::size_t threads,
                        milliseconds limit = 30s,
                        std::optional<milliseconds> cancel_after = std::nullopt) {
  auto io = std::make_unique<asio::io_context>();
  auto engine =
      std::make_unique<drover::engine>(io->get_executor(), drover::engine_options{threads});
  asio::cancellation_signal cancel;
  asio::steady_timer guard{*io, limit};
  asio::steady_timer canceller{*io};
  std::optional<drover::run_report> report;
  guarded_run out;
  const auto start = steady::now();
  engine->async_run(std::move(input), std::move(options),
                    asio::bind_cancellation_slot(cancel.slot(), [&](drover::run_report r) {
                      out.elapsed = to_ms(steady::now() - start);
                      report = std::move(r);
                      guard.cancel();
                      canceller.cancel();
                    }));
  guard.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    out.exceeded_limit = true;
    cancel.emit(asio::cancellation_type::terminal);
    guard.expires_after(10s);
    guard.async_wait([&](boost::system::error_code again) {
      if (!again) io->stop();
    });
  });
  if (cancel_after) {
    canceller.expires_after(*cancel_after);
    canceller.async_wait([&](boost::system::error_code ec) {
      if (!ec) cancel.emit(asio::cancellation_type::terminal);
    });
  }
  io->run();
  if (!report) {
    (void)engine.release();
    (void)io.release();
    BOOST_FAIL("the run did not end within " << limit.count() << " ms plus 10 s after cancelling");
  }
  out.report = std::move(*report);
  return out;
}

drover::run_options options_for(const run_setting& s) {
  drover::run_options options;
  options.workers = s.workers;
  return options;
}

drover::module_constraints& constraints_of(drover::module_ref m) {
  return m.constraints();
}

void expect_no_violations(const constraint_monitor& monitor) {
  const auto violations = monitor.violations();
  std::ostringstream all;
  for (const auto& v : violations)
    all << "\n  " << v;
  BOOST_TEST(violations.empty(), "constraint violations:" << all.str());
}

void expect_all_succeeded(const guarded_run& run) {
  BOOST_TEST(!run.exceeded_limit, "the run exceeded its time limit");
  BOOST_TEST(run.report.status == run_status::succeeded);
  for (const auto& m : run.report.modules) {
    BOOST_TEST(m.status == module_status::succeeded, m.id << ": " << m.status << " " << m.reason);
  }
}

void expect_all_terminal(const guarded_run& run) {
  for (const auto& m : run.report.modules)
    BOOST_TEST(m.status != module_status::pending, m.id << " never reached a terminal state");
}

/// True once the run emitted module_ready for every module in `ids`.
std::function<bool()> ready_emitted(const event_log* log, std::vector<std::string> ids) {
  return [log, ids] {
    for (const auto& id : ids) {
      const auto events = log->of(id);
      if (std::none_of(events.begin(), events.end(), [](const recorded_event& e) {
            return e.type == drover::event_type::module_ready;
          }))
        return false;
    }
    return true;
  };
}

std::size_t expected_overlap(std::size_t workers, std::size_t allowed) {
  return std::min(workers, allowed);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(constraints)

BOOST_AUTO_TEST_CASE(test_overlap_oracle_agrees_with_the_documented_examples) {
  BOOST_TEST(oracle_overlap("db/*", "db/users"));
  BOOST_TEST(!oracle_overlap("a/*", "b/*"));
  BOOST_TEST(oracle_overlap("r/**", "r"));
  BOOST_TEST(oracle_overlap("r/**", "r/a/x"));
  BOOST_TEST(!oracle_overlap("r/*", "r/a/x"));
  BOOST_TEST(!oracle_overlap("r/*", "r"));
  BOOST_TEST(oracle_overlap("*/a", "s/*"));
  BOOST_TEST(!oracle_overlap("*/a", "s/b"));
  BOOST_TEST(oracle_overlap("**", "s/b"));
}

// --- pools -----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(pool_never_holds_more_than_its_slots_but_fills_them,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      p.pools = {{"net", 2}};
      for (int i = 0; i < 20; ++i)
        constraints_of(p.add("n" + std::to_string(i), monitored(monitor, 15ms))).pool = "net";
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      BOOST_TEST(monitor.max_pool_use("net") == expected_overlap(setting.workers, 2));
    }
  }
}

BOOST_AUTO_TEST_CASE(pool_slots_count_against_the_pool, *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      p.pools = {{"net", 3}};
      for (int i = 0; i < 12; ++i) {
        auto& c = constraints_of(p.add("n" + std::to_string(i), monitored(monitor, 15ms)));
        c.pool = "net";
        c.pool_slots = i % 3 == 0 ? 2 : 1;
      }
      auto& whole = constraints_of(p.add("whole", monitored(monitor, 15ms)));
      whole.pool = "net";
      whole.pool_slots = 3;
      for (int i = 12; i < 18; ++i)
        constraints_of(p.add("n" + std::to_string(i), monitored(monitor, 15ms))).pool = "net";
      // A module outside the pool may run beside the one holding all of it: it holds its
      // worker until `whole` began (so only when another worker is left for `whole`).
      body_plan outsider_plan{5ms, {}, 0};
      if (setting.workers > 1) {
        outsider_plan.hold_until = [m = &monitor] { return m->has_begun("whole"); };
      }
      p.add("outsider", monitored(monitor, outsider_plan));
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      for (int i = 0; i < 18; ++i)
        BOOST_TEST(!monitor.overlapped("whole", "n" + std::to_string(i)));
      if (setting.workers > 1) BOOST_TEST(monitor.overlapped("whole", "outsider"));
      if (setting.workers >= 3) BOOST_TEST(monitor.max_pool_use("net") == 3u);
    }
  }
}

// Three 1-slot modules hold the pool of 3; `big` asks for all 3; then more 1-slot modules
// become ready, one after another, and wait while a slot is free. None may overtake `big`.
BOOST_AUTO_TEST_CASE(large_pool_request_is_not_starved_by_later_small_ones,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      event_log events;
      drover::pipeline p;
      p.pools = {{"net", 3}};
      std::vector<std::string> later;
      for (int k = 0; k < 6; ++k)
        later.push_back("later" + std::to_string(k));
      // With enough workers (three holders waiting plus one for the ticks), the first holder
      // frees its slot only once every later module is ready, and the other two keep theirs
      // a little longer, so a free slot and later modules that would fit it meet for sure.
      // With fewer workers the holders just wait, and the ticks run when a worker is free.
      const bool hold = setting.workers >= 4;
      body_plan first_holder{10ms, {}, 0};
      body_plan other_holder{10ms, {}, 0};
      if (hold) {
        first_holder.hold_until = ready_emitted(&events, later);
        other_holder.hold_until = [m = &monitor] { return m->has_ended("s0"); };
      }
      constraints_of(p.add("s0", monitored(monitor, first_holder))).pool = "net";
      constraints_of(p.add("s1", monitored(monitor, other_holder))).pool = "net";
      constraints_of(p.add("s2", monitored(monitor, other_holder))).pool = "net";
      auto& big = constraints_of(p.add("big", monitored(monitor, 5ms)));
      big.pool = "net";
      big.pool_slots = 3;
      // The later ones become ready in a stream, behind a chain of ticks outside the pool.
      for (int k = 0; k < 6; ++k) {
        const std::string tick = "tick" + std::to_string(k);
        std::vector<std::string> tick_deps;
        if (k > 0) tick_deps.push_back("tick" + std::to_string(k - 1));
        p.add(tick, monitored(monitor, 1ms), tick_deps);
        constraints_of(p.add(later[k], monitored(monitor, 5ms), {tick})).pool = "net";
      }
      monitor.learn(p);
      auto options = options_for(setting);
      options.on_event = events.sink();
      auto run = run_guarded(std::move(p), options, setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      const auto big_end = monitor.position("big", false);
      BOOST_REQUIRE(big_end.has_value());
      for (const auto& id : later) {
        const auto began = monitor.position(id, true);
        BOOST_REQUIRE(began.has_value());
        BOOST_TEST(*began > *big_end, id << " began before big (3 slots) ended");
      }
    }
  }
}

// --- not_in_parallel keys --------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(modules_sharing_a_key_never_overlap_and_different_keys_do,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      for (int i = 0; i < 12; ++i) {
        auto m = p.add("m" + std::to_string(i), monitored(monitor, 15ms));
        constraints_of(m).not_in_parallel = {"k" + std::to_string(i % 4)};
      }
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      BOOST_TEST(monitor.max_running() == expected_overlap(setting.workers, 4));
    }
  }
}

// `both` holds keys a and b. Besides the groups queued before it, a module of each group
// becomes ready while `both` runs (it holds until they are ready): they must wait for it too.
BOOST_AUTO_TEST_CASE(module_with_two_keys_excludes_both_groups, *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      event_log events;
      drover::pipeline p;
      const bool hold = setting.workers > 1;  // `both` and `tick` wait for each other
      for (int i = 0; i < 4; ++i) {
        constraints_of(p.add("a" + std::to_string(i), monitored(monitor, 10ms))).not_in_parallel = {
            "a"};
        constraints_of(p.add("b" + std::to_string(i), monitored(monitor, 10ms))).not_in_parallel = {
            "b"};
        if (i == 1) {
          body_plan plan{10ms, {}, 0};
          if (hold) plan.hold_until = ready_emitted(&events, {"a_late", "b_late"});
          constraints_of(p.add("both", monitored(monitor, plan))).not_in_parallel = {"a", "b"};
        }
      }
      body_plan tick_plan{1ms, {}, 0};
      if (hold) tick_plan.hold_until = [m = &monitor] { return m->has_begun("both"); };
      p.add("tick", monitored(monitor, tick_plan));
      constraints_of(p.add("a_late", monitored(monitor, 5ms), {"tick"})).not_in_parallel = {"a"};
      constraints_of(p.add("b_late", monitored(monitor, 5ms), {"tick"})).not_in_parallel = {"b"};
      monitor.learn(p);
      auto options = options_for(setting);
      options.on_event = events.sink();
      auto run = run_guarded(std::move(p), options, setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      for (const std::string group : {"a", "b"}) {
        for (int i = 0; i < 4; ++i)
          BOOST_TEST(!monitor.overlapped("both", group + std::to_string(i)));
        BOOST_TEST(!monitor.overlapped("both", group + "_late"));
      }
      // Different keys do not exclude each other.
      if (setting.workers >= 3) BOOST_TEST(monitor.overlapped("a0", "b0"));
    }
  }
}

// --- run_alone -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(run_alone_module_runs_with_nothing_beside_it, *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      p.pools = {{"net", 4}};
      // solo_first heads the longest chains, so it is dispatched first and runs alone from
      // the start; then the six plain ones run together (solo_last waits for them to end, the
      // dependents of solo_first wait behind solo_last).
      constraints_of(p.add("solo_first", monitored(monitor, 15ms))).run_alone = true;
      for (int i = 0; i < 6; ++i) {
        auto& c = constraints_of(p.add("plain" + std::to_string(i), monitored(monitor, 15ms)));
        if (i == 2) c.pool = "net";
        if (i == 3) c.claims = {{"db/users", claim_mode::read}};
        if (i == 4) c.not_in_parallel = {"k"};
      }
      constraints_of(p.add("solo_last", monitored(monitor, 15ms))).run_alone = true;
      constraints_of(p.add("solo_after", monitored(monitor, 5ms), {"solo_first"})).run_alone = true;
      p.add("late_plain", monitored(monitor, 5ms), {"solo_first"});
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      BOOST_TEST(monitor.max_running() == expected_overlap(setting.workers, 6));
    }
  }
}

// --- claims ----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(writers_of_one_resource_never_overlap, *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      p.add("free0", monitored(monitor, 20ms));
      p.add("free1", monitored(monitor, 20ms));
      for (int i = 0; i < 6; ++i) {
        constraints_of(p.add("w" + std::to_string(i), monitored(monitor, 10ms))).claims = {
            {"db/users", claim_mode::write}};
      }
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      BOOST_TEST(monitor.max_running() == expected_overlap(setting.workers, 3));
    }
  }
}

BOOST_AUTO_TEST_CASE(readers_share_and_writers_exclude_them, *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      for (int i = 0; i < 5; ++i) {
        constraints_of(p.add("r" + std::to_string(i), monitored(monitor, 20ms))).claims = {
            {"db/users", claim_mode::read}};
      }
      constraints_of(p.add("writer", monitored(monitor, 10ms))).claims = {
          {"db/users", claim_mode::write}};
      for (int i = 5; i < 8; ++i) {
        constraints_of(p.add("r" + std::to_string(i), monitored(monitor, 10ms))).claims = {
            {"db/users", claim_mode::read}};
      }
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      for (int i = 0; i < 8; ++i)
        BOOST_TEST(!monitor.overlapped("writer", "r" + std::to_string(i)));
      BOOST_TEST(monitor.max_running() == expected_overlap(setting.workers, 5));
    }
  }
}

BOOST_AUTO_TEST_CASE(glob_claims_conflict_exactly_when_they_overlap,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      for (int i = 0; i < 3; ++i) {
        constraints_of(p.add("db_all" + std::to_string(i), monitored(monitor, 10ms))).claims = {
            {"db/*", claim_mode::write}};
        constraints_of(p.add("db_users" + std::to_string(i), monitored(monitor, 10ms))).claims = {
            {"db/users", claim_mode::read}};
      }
      // a/* and b/* share no path: `wa` holds its worker until `wb` began beside it.
      body_plan wa_plan{5ms, {}, 0};
      if (setting.workers > 1) wa_plan.hold_until = [m = &monitor] { return m->has_begun("wb"); };
      constraints_of(p.add("wa", monitored(monitor, wa_plan))).claims = {
          {"a/*", claim_mode::write}};
      constraints_of(p.add("wb", monitored(monitor, 5ms))).claims = {{"b/*", claim_mode::write}};
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) {
          BOOST_TEST(
              !monitor.overlapped("db_all" + std::to_string(i), "db_users" + std::to_string(j)));
        }
      }
      if (setting.workers > 1) BOOST_TEST(monitor.overlapped("wa", "wb"));
    }
  }
}

// A long reader runs; a writer of the same resource waits for it; then more readers become
// ready. They would share with the running reader, but must let the writer go first.
BOOST_AUTO_TEST_CASE(waiting_writer_is_not_starved_by_later_readers,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      event_log events;
      drover::pipeline p;
      std::vector<std::string> later;
      for (int k = 0; k < 5; ++k)
        later.push_back("later_reader" + std::to_string(k));
      // `tick` heads a longer chain, so it is dispatched first; with one worker it has run
      // before the long reader begins, with more it runs beside it.
      constraints_of(p.add("long_reader",
                           monitored(monitor, body_plan{1ms, ready_emitted(&events, later), 0})))
          .claims = {{"db/users", claim_mode::read}};
      constraints_of(p.add("writer", monitored(monitor, 5ms))).claims = {
          {"db/*", claim_mode::write}};
      p.add("tick", monitored(monitor, 2ms));
      for (const auto& id : later) {
        constraints_of(p.add(id, monitored(monitor, 5ms), {"tick"})).claims = {
            {"db/users", claim_mode::read}};
      }
      monitor.learn(p);
      auto options = options_for(setting);
      options.on_event = events.sink();
      auto run = run_guarded(std::move(p), options, setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      const auto writer_end = monitor.position("writer", false);
      const auto long_reader_end = monitor.position("long_reader", false);
      BOOST_REQUIRE(writer_end && long_reader_end);
      BOOST_TEST(*long_reader_end < *writer_end);
      for (const auto& id : later) {
        const auto began = monitor.position(id, true);
        BOOST_REQUIRE(began.has_value());
        BOOST_TEST(*began > *writer_end, id << " overtook the waiting writer");
      }
    }
  }
}

// `low` (a reader) and then `high` (a writer, better ordered) wait for the writer `holder`.
// When `holder` ends, `high` goes first: the reader must not overtake a better-ordered module
// whose claim conflicts with its own, whatever the order they began waiting in.
BOOST_AUTO_TEST_CASE(claim_waiters_start_by_priority_not_by_arrival,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    if (setting.workers < 2) continue;  // `holder` holds a worker while `pre` must run
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      event_log events;
      drover::pipeline p;
      auto holder =
          p.add("holder", monitored(monitor, body_plan{1ms, ready_emitted(&events, {"high"}), 0}));
      holder.priority(10);
      constraints_of(holder).claims = {{"db/users", claim_mode::write}};
      constraints_of(p.add("low", monitored(monitor, 2ms))).claims = {
          {"db/users", claim_mode::read}};
      p.add("pre", monitored(monitor, 2ms));
      auto high = p.add("high", monitored(monitor, 2ms), {"pre"});
      high.priority(5);
      constraints_of(high).claims = {{"db/*", claim_mode::write}};
      monitor.learn(p);
      auto options = options_for(setting);
      options.on_event = events.sink();
      auto run = run_guarded(std::move(p), options, setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      const auto high_began = monitor.position("high", true);
      const auto low_began = monitor.position("low", true);
      BOOST_REQUIRE(high_began && low_began);
      BOOST_TEST(*high_began < *low_began, "the reader that waited first overtook the writer");
    }
  }
}

// --- capabilities and pinning ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(missing_capability_skips_the_module_and_its_dependents,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      constraints_of(p.add("needs_docker", monitored(monitor, 1ms))).required_capabilities = {
          "docker"};
      p.add("after_docker", monitored(monitor, 1ms), {"needs_docker"});
      p.add("after_after", monitored(monitor, 1ms), {"after_docker"});
      p.add("unrelated", monitored(monitor, 1ms));
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      BOOST_TEST(!run.exceeded_limit);
      expect_all_terminal(run);
      const auto& skipped = result_of(run.report, "needs_docker");
      BOOST_TEST(skipped.status == module_status::skipped);
      BOOST_TEST(skipped.attempts == 0u);
      BOOST_TEST(mentions(skipped.reason, "docker"), skipped.reason);
      for (const char* dependent : {"after_docker", "after_after"}) {
        const auto& r = result_of(run.report, dependent);
        BOOST_TEST(r.status == module_status::skipped, dependent << ": " << r.status);
        BOOST_TEST(r.attempts == 0u);
      }
      BOOST_TEST(mentions(result_of(run.report, "after_docker").reason, "needs_docker"));
      BOOST_TEST(result_of(run.report, "unrelated").status == module_status::succeeded);
      BOOST_TEST(!monitor.has_begun("needs_docker"));
      BOOST_TEST(!monitor.has_begun("after_docker"));
    }
  }
}

BOOST_AUTO_TEST_CASE(capabilities_match_case_insensitively_and_include_the_os,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      constraints_of(p.add("needs_docker", monitored(monitor, 1ms))).required_capabilities = {
          "docker"};
      constraints_of(p.add("needs_DOCKER_and_gpu", monitored(monitor, 1ms)))
          .required_capabilities = {"DOCKER", "gpu"};
      constraints_of(p.add("needs_os", monitored(monitor, 1ms))).required_capabilities = {
          std::string{drover::local_os_label()}};
      p.add("after_docker", monitored(monitor, 1ms), {"needs_docker"});
      monitor.learn(p);
      auto options = options_for(setting);
      options.capabilities = {"Docker", "GPU"};
      auto run = run_guarded(std::move(p), options, setting.threads);
      expect_all_succeeded(run);
      BOOST_TEST(monitor.has_begun("needs_docker"));
      BOOST_TEST(monitor.has_begun("needs_os"));
    }
  }
}

BOOST_AUTO_TEST_CASE(pin_local_runs_normally_in_a_local_run, *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      constraints_of(p.add("pinned", monitored(monitor, 5ms))).pin_local = true;
      constraints_of(p.add("pinned_after", monitored(monitor, 5ms), {"pinned"})).pin_local = true;
      p.add("free", monitored(monitor, 5ms));
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      expect_all_succeeded(run);
      BOOST_TEST(result_of(run.report, "pinned").attempts == 1u);
      BOOST_TEST(result_of(run.report, "pinned_after").attempts == 1u);
    }
  }
}

// --- order among waiting modules -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(higher_priority_starts_first_among_modules_waiting_on_a_pool,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      p.pools = {{"one", 1}};
      const int priorities[] = {1, 5, 3, 0, 4, 2};
      for (int i = 0; i < 6; ++i) {
        auto m = p.add("p" + std::to_string(priorities[i]), monitored(monitor, 3ms));
        m.priority(priorities[i]);
        constraints_of(m).pool = "one";
      }
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      BOOST_TEST(
          (monitor.begin_order() == std::vector<std::string>{"p5", "p4", "p3", "p2", "p1", "p0"}));
    }
  }
}

// `low` asks for the pool first, `high` later, while `first` holds it: when `first` is done the
// better-ordered `high` goes first, whatever the order they asked in.
BOOST_AUTO_TEST_CASE(pool_waiters_start_by_priority_not_by_arrival,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    if (setting.workers < 2) continue;  // `first` holds a worker while `pre` must run
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      event_log events;
      drover::pipeline p;
      p.pools = {{"one", 1}};
      auto first =
          p.add("first", monitored(monitor, body_plan{1ms, ready_emitted(&events, {"high"}), 0}));
      first.priority(10);
      constraints_of(first).pool = "one";
      constraints_of(p.add("low", monitored(monitor, 2ms))).pool = "one";
      p.add("pre", monitored(monitor, 2ms));
      auto high = p.add("high", monitored(monitor, 2ms), {"pre"});
      high.priority(5);
      constraints_of(high).pool = "one";
      monitor.learn(p);
      auto options = options_for(setting);
      options.on_event = events.sink();
      auto run = run_guarded(std::move(p), options, setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      const auto high_began = monitor.position("high", true);
      const auto low_began = monitor.position("low", true);
      BOOST_REQUIRE(high_began && low_began);
      BOOST_TEST(*high_began < *low_began);
    }
  }
}

BOOST_AUTO_TEST_CASE(critical_path_orders_equal_priorities_and_fifo_keeps_file_order,
                     *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    for (bool in_pool : {false, true}) {
      if (!in_pool && setting.workers != 1) continue;  // with more workers both start at once
      for (auto order : {drover::ready_order::critical_path, drover::ready_order::fifo}) {
        const bool fifo = order == drover::ready_order::fifo;
        BOOST_TEST_CONTEXT(setting << (in_pool ? ", in a pool of 1" : "")
                                   << (fifo ? ", fifo" : ", critical path")) {
          constraint_monitor monitor;
          drover::pipeline p;
          p.pools = {{"one", 1}};
          auto lone = p.add("lone", monitored(monitor, 3ms));
          if (in_pool) constraints_of(lone).pool = "one";
          auto head = p.add("head", monitored(monitor, 3ms));
          if (in_pool) constraints_of(head).pool = "one";
          p.add("middle", monitored(monitor, 1ms), {"head"});
          p.add("tail", monitored(monitor, 1ms), {"middle"});
          monitor.learn(p);
          auto options = options_for(setting);
          options.order = order;
          auto run = run_guarded(std::move(p), options, setting.threads);
          expect_all_succeeded(run);
          expect_no_violations(monitor);
          const auto lone_began = monitor.position("lone", true);
          const auto head_began = monitor.position("head", true);
          BOOST_REQUIRE(lone_began && head_began);
          if (fifo) {
            BOOST_TEST(*lone_began < *head_began, "fifo did not keep file order");
          } else {
            BOOST_TEST(*head_began < *lone_began, "the head of the longer chain did not go first");
          }
        }
      }
    }
  }
}

// --- retries, cancellation, fail_fast --------------------------------------------------------

BOOST_AUTO_TEST_CASE(retry_releases_the_pool_and_takes_it_again, *boost::unit_test::timeout(60)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      p.pools = {{"one", 1}};
      auto flaky = p.add("flaky", monitored(monitor, body_plan{5ms, {}, 2}));
      flaky.priority(1);
      flaky.retries(3);
      flaky.backoff(exact_backoff(2ms));
      constraints_of(flaky).pool = "one";
      constraints_of(flaky).not_in_parallel = {"k"};
      constraints_of(flaky).claims = {{"db/users", claim_mode::write}};
      for (int i = 0; i < 6; ++i) {
        auto& c = constraints_of(p.add("o" + std::to_string(i), monitored(monitor, 5ms)));
        c.pool = "one";
        if (i % 2 == 0) c.not_in_parallel = {"k"};
      }
      for (int i = 0; i < 3; ++i) {
        constraints_of(p.add("reader" + std::to_string(i), monitored(monitor, 5ms))).claims = {
            {"db/users", claim_mode::read}};
      }
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      expect_all_succeeded(run);
      expect_no_violations(monitor);
      BOOST_TEST(result_of(run.report, "flaky").attempts == 3u);
      // Between the end of a failed attempt and the next attempt, someone else used the pool.
      for (int attempt = 1; attempt <= 2; ++attempt) {
        const auto ended = monitor.position("flaky", false, attempt);
        const auto again = monitor.position("flaky", true, attempt + 1);
        BOOST_REQUIRE(ended && again);
        const auto between = monitor.begun_between(*ended, *again);
        BOOST_TEST(std::any_of(between.begin(), between.end(),
                               [](const std::string& id) { return id[0] == 'o'; }),
                   "nothing used the pool while flaky backed off after attempt " << attempt);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(cancelled_run_ends_promptly_while_modules_wait_on_constraints,
                     *boost::unit_test::timeout(120)) {
  for (const auto& setting : all_settings()) {
    for (const std::string variant : {"pool", "key", "claim", "alone"}) {
      BOOST_TEST_CONTEXT(setting << ", waiting on a " << variant) {
        constraint_monitor monitor;
        drover::pipeline p;
        p.pools = {{"one", 1}};
        for (int i = 0; i < 8; ++i) {
          auto& c = constraints_of(p.add("m" + std::to_string(i), monitored(monitor, 30s)));
          if (variant == "pool") c.pool = "one";
          if (variant == "key") c.not_in_parallel = {"k"};
          if (variant == "claim") c.claims = {{i == 0 ? "db/*" : "db/users", claim_mode::write}};
          if (variant == "alone") c.run_alone = i % 2 == 0;
        }
        p.add("free", monitored(monitor, 30s));
        p.add("after", monitored(monitor, 1ms), {"m1"});
        monitor.learn(p);
        auto run = run_guarded(std::move(p), options_for(setting), setting.threads, 30s, 100ms);
        BOOST_TEST(!run.exceeded_limit);
        BOOST_TEST(run.report.status == run_status::cancelled);
        BOOST_TEST(run.elapsed < 10s, "cancelling took " << run.elapsed.count() << " ms");
        for (const auto& m : run.report.modules) {
          BOOST_TEST(m.status == module_status::cancelled, m.id << ": " << m.status);
        }
        expect_no_violations(monitor);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(fail_fast_ends_modules_waiting_on_constraints,
                     *boost::unit_test::timeout(120)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      constraint_monitor monitor;
      drover::pipeline p;
      p.pools = {{"one", 1}};
      auto bad = p.add("bad", monitored(monitor, body_plan{20ms, {}, 1}));
      bad.priority(5);
      constraints_of(bad).pool = "one";
      constraints_of(bad).not_in_parallel = {"k"};
      for (int i = 0; i < 5; ++i) {
        auto& c = constraints_of(p.add("pooled" + std::to_string(i), monitored(monitor, 30s)));
        c.pool = "one";
        constraints_of(p.add("keyed" + std::to_string(i), monitored(monitor, 30s)))
            .not_in_parallel = {"k"};
      }
      constraints_of(p.add("alone", monitored(monitor, 30s))).run_alone = true;
      auto survivor = p.add("cleanup", monitored(monitor, 1ms));
      survivor.always_run(true);
      constraints_of(survivor).pool = "one";
      monitor.learn(p);
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads);
      BOOST_TEST(!run.exceeded_limit);
      BOOST_TEST(run.report.status == run_status::failed);
      BOOST_TEST(run.elapsed < 10s, "fail_fast took " << run.elapsed.count() << " ms");
      expect_all_terminal(run);
      BOOST_TEST(result_of(run.report, "bad").status == module_status::failed);
      BOOST_TEST(result_of(run.report, "cleanup").status == module_status::succeeded);
      for (const auto& m : run.report.modules) {
        if (m.id == "bad" || m.id == "cleanup") continue;
        BOOST_TEST(m.status == module_status::cancelled, m.id << ": " << m.status);
        BOOST_TEST(mentions(m.reason, "fail_fast"), m.id << ": " << m.reason);
      }
      expect_no_violations(monitor);
    }
  }
}

// --- validation ------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(invalid_constraints_are_reported_naming_module_and_field,
                     *boost::unit_test::timeout(60)) {
  struct invalid_case {
    std::string field;
    std::string mention;
    std::function<void(drover::module_constraints&)> spoil;
  };
  const std::vector<invalid_case> cases = {
      {"pool", "nowhere", [](auto& c) { c.pool = "nowhere"; }},
      {"pool_slots", "got 0",
       [](auto& c) {
         c.pool = "net";
         c.pool_slots = 0;
       }},
      {"pool_slots", "got 3",
       [](auto& c) {
         c.pool = "net";
         c.pool_slots = 3;
       }},
      {"pool_slots", "pool is not", [](auto& c) { c.pool_slots = 2; }},
      {"claims", "db//x",
       [](auto& c) {
         c.claims = {{"db//x", claim_mode::read}};
       }},
      {"claims", "db/",
       [](auto& c) {
         c.claims = {{"db/", claim_mode::write}};
       }},
      {"not_in_parallel", "empty",
       [](auto& c) {
         c.not_in_parallel = {"k", ""};
       }},
  };
  for (const auto& bad : cases) {
    BOOST_TEST_CONTEXT("field " << bad.field << ", mentioning " << bad.mention) {
      constraint_monitor monitor;
      drover::pipeline p;
      p.pools = {{"net", 2}};
      p.add("fine", monitored(monitor, 1ms));
      bad.spoil(constraints_of(p.add("broken", monitored(monitor, 1ms))));
      auto checked = drover::prepare(p);
      BOOST_TEST(!checked.ok());
      auto run = run_guarded(std::move(p), options_for({2, 0}), 0);
      BOOST_TEST(run.report.status == run_status::invalid);
      BOOST_TEST(!monitor.has_begun("fine"));
      for (const auto* problems : {&checked.problems, &run.report.problems}) {
        const bool named = std::any_of(
            problems->begin(), problems->end(), [&](const drover::validation_problem& problem) {
              return problem.module == "broken" && problem.field == bad.field &&
                     mentions(problem.message, bad.mention);
            });
        BOOST_TEST(named, "no problem for module broken, field " << bad.field << ":\n"
                                                                 << format_problems(*problems));
      }
    }
  }
}

// --- random pipelines ------------------------------------------------------------------------

namespace {

constexpr std::string_view claim_alphabet[] = {"r",   "r/a", "r/b", "r/*",   "r/**",
                                               "s/b", "s/*", "*/a", "r/a/x", "**"};

/// A random DAG of 10-40 modules with random pools, keys, claims, run_alone and priorities;
/// every body checks the constraints through `monitor`.
drover::pipeline random_constrained_pipeline(std::uint32_t seed, constraint_monitor& monitor) {
  std::mt19937 rng{seed};
  const auto chance = [&rng](double p) { return std::bernoulli_distribution{p}(rng); };
  const auto pick = [&rng](int low, int high) {
    return std::uniform_int_distribution<int>{low, high}(rng);
  };
  drover::pipeline p;
  p.name = "random-" + std::to_string(seed);
  std::vector<std::string> pools;
  for (int k = 0, count = pick(0, 2); k < count; ++k) {
    pools.push_back("pool" + std::to_string(k));
    p.pools[pools.back()] = static_cast<std::uint32_t>(pick(1, 3));
  }
  const int size = pick(10, 40);
  std::vector<int> order(size);
  for (int i = 0; i < size; ++i)
    order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  for (int i : order) {
    std::vector<std::string> deps;
    if (i > 0) {
      std::set<int> chosen;
      for (int k = 0, count = pick(0, std::min(i, 3)); k < count; ++k)
        chosen.insert(pick(0, i - 1));
      for (int d : chosen)
        deps.push_back("m" + std::to_string(d));
    }
    auto m = p.add("m" + std::to_string(i), monitored(monitor, milliseconds{pick(0, 2)}),
                   std::move(deps));
    m.priority(pick(-1, 2));
    if (!pools.empty() && chance(0.4)) {
      auto& c = constraints_of(m);
      c.pool = pools[pick(0, static_cast<int>(pools.size()) - 1)];
      c.pool_slots = static_cast<std::uint32_t>(pick(1, static_cast<int>(p.pools[c.pool])));
    }
    if (chance(0.3)) {
      auto& c = constraints_of(m);
      for (int k = 0, count = pick(1, 2); k < count; ++k)
        c.not_in_parallel.push_back("k" + std::to_string(pick(0, 2)));
    }
    if (chance(0.5)) {
      auto& c = constraints_of(m);
      for (int k = 0, count = pick(1, 2); k < count; ++k) {
        const auto resource =
            claim_alphabet[pick(0, static_cast<int>(std::size(claim_alphabet)) - 1)];
        c.claims.push_back(
            {std::string{resource}, chance(0.5) ? claim_mode::read : claim_mode::write});
      }
    }
    if (chance(0.03)) constraints_of(m).run_alone = true;
  }
  return p;
}

}  // namespace

BOOST_AUTO_TEST_CASE(random_constrained_pipelines_never_break_a_constraint,
                     *boost::unit_test::timeout(200)) {
  // 1,000 pipelines: half at 8 workers on a pool of 2 threads, the rest spread over the
  // other settings. Odd seeds go through prepare() and the prepared_pipeline overload.
  std::vector<run_setting> settings;
  for (int i = 0; i < 500; ++i)
    settings.push_back({8, 2});
  for (const auto& s : all_settings()) {
    if (s.workers == 8 && s.threads == 2) continue;
    for (int i = 0; i < 100; ++i)
      settings.push_back(s);
  }
  BOOST_REQUIRE(settings.size() == 1000u);
  std::size_t most_at_once = 0;
  bool reached_a_full_pool_of_3 = false;
  for (std::uint32_t seed = 1; seed <= settings.size(); ++seed) {
    const run_setting& setting = settings[seed - 1];
    constraint_monitor monitor;
    auto p = random_constrained_pipeline(seed, monitor);
    monitor.learn(p);
    const std::size_t size = p.size();
    std::map<std::string, std::uint32_t> pools = p.pools;
    auto options = options_for(setting);
    options.order = seed % 3 == 0 ? drover::ready_order::fifo : drover::ready_order::critical_path;
    guarded_run run;
    if (seed % 2 == 1) {
      auto prepared = drover::prepare(std::move(p));
      BOOST_REQUIRE_MESSAGE(prepared.ok(),
                            "seed " << seed << ": " << format_problems(prepared.problems));
      run = run_guarded(std::move(*prepared.plan), options, setting.threads, 20s);
    } else {
      run = run_guarded(std::move(p), options, setting.threads, 20s);
    }
    const auto violations = monitor.violations();
    const bool ok = !run.exceeded_limit && run.report.status == run_status::succeeded &&
                    run.report.count(module_status::succeeded) == size && violations.empty();
    if (!ok) {
      BOOST_TEST_CONTEXT("seed " << seed << ", " << setting) {
        BOOST_TEST(!run.exceeded_limit);
        expect_no_violations(monitor);
        expect_all_succeeded(run);
        BOOST_TEST(run.report.modules.size() == size);
      }
    }
    if (setting.workers == 8) {
      most_at_once = std::max(most_at_once, monitor.max_running());
      for (const auto& [name, slots] : pools) {
        if (slots == 3 && monitor.max_pool_use(name) == 3) reached_a_full_pool_of_3 = true;
      }
    }
  }
  // The runs did run things side by side: the constraints did not serialize everything.
  BOOST_TEST(most_at_once >= 4u);
  BOOST_TEST(reached_a_full_pool_of_3);
}

// --- real processes --------------------------------------------------------------------------

namespace {

/// A fresh directory under the system temp directory, removed with everything in it.
class scratch_dir {
 public:
  scratch_dir() {
    std::random_device seed;
    path_ = std::filesystem::temp_directory_path() /
            ("drover-constraints-" + std::to_string(::getpid()) + "-" + std::to_string(seed()));
    std::filesystem::create_directories(path_);
  }
  ~scratch_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// An exec module running `script` with LOCK_DIR set to `dir`.
drover::module_ref add_shell(drover::pipeline& p, std::string id, const std::string& script,
                             const std::filesystem::path& dir) {
  return p.add(id, {}).kind("exec", json::object{{"shell", script},
                                                 {"env", json::object{{"LOCK_DIR", dir.string()}}},
                                                 {"timeout_ms", 20000}});
}

// Takes the lock by creating a directory (which fails if it exists), holds it a moment, and
// gives it back.
constexpr const char* take_lock_script =
    "mkdir \"$LOCK_DIR/lock\" || { echo 'lock already taken' >&2; exit 3; }; sleep 0.05; "
    "rmdir \"$LOCK_DIR/lock\"";

}  // namespace

BOOST_AUTO_TEST_CASE(exec_modules_sharing_a_key_or_a_pool_of_one_never_overlap,
                     *boost::unit_test::timeout(120)) {
  for (const auto& setting : all_settings()) {
    BOOST_TEST_CONTEXT(setting) {
      scratch_dir keyed_dir, pooled_dir;
      drover::pipeline p;
      p.pools = {{"one", 1}};
      for (int i = 0; i < 5; ++i) {
        constraints_of(
            add_shell(p, "keyed" + std::to_string(i), take_lock_script, keyed_dir.path()))
            .not_in_parallel = {"lock"};
        constraints_of(
            add_shell(p, "pooled" + std::to_string(i), take_lock_script, pooled_dir.path()))
            .pool = "one";
      }
      const auto problems = drover::modules::builtin_registry().resolve(p);
      BOOST_REQUIRE_MESSAGE(problems.empty(), format_problems(problems));
      auto run = run_guarded(std::move(p), options_for(setting), setting.threads, 60s);
      expect_all_succeeded(run);
    }
  }
}

// The lock scripts can see an overlap: without constraints, `intruder` runs while `holder`
// holds the lock and fails.
BOOST_AUTO_TEST_CASE(exec_lock_detects_an_unconstrained_overlap, *boost::unit_test::timeout(60)) {
  scratch_dir dir;
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  add_shell(p, "holder",
            "mkdir \"$LOCK_DIR/lock\" || exit 3; "
            "until [ -e \"$LOCK_DIR/released\" ]; do sleep 0.01; done; rmdir \"$LOCK_DIR/lock\"",
            dir.path());
  add_shell(p, "intruder",
            "until [ -d \"$LOCK_DIR/lock\" ]; do sleep 0.01; done; mkdir \"$LOCK_DIR/lock\"; "
            "status=$?; touch \"$LOCK_DIR/released\"; exit $status",
            dir.path());
  const auto problems = drover::modules::builtin_registry().resolve(p);
  BOOST_REQUIRE_MESSAGE(problems.empty(), format_problems(problems));
  auto run = run_guarded(std::move(p), options_for({2, 0}), 0, 30s);
  BOOST_TEST(!run.exceeded_limit);
  BOOST_TEST(result_of(run.report, "holder").status == module_status::succeeded);
  BOOST_TEST(result_of(run.report, "intruder").status == module_status::failed);
}

BOOST_AUTO_TEST_SUITE_END()
