#include <drover/engine.hpp>

#define BOOST_TEST_MODULE retry
#include "test_support.hpp"

namespace {

using namespace drover::test;
using drover::module_status;

/// Fails (throws "attempt N failed") until attempt `succeed_on`, then returns N; 0 never
/// succeeds. Records every attempt in the probe.
drover::module_body flaky(probe* bodies, std::uint32_t succeed_on = 0) {
  return coroutine_body(
      [bodies, succeed_on](drover::module_context& ctx) -> asio::awaitable<json::value> {
        probe_scope scope{bodies, ctx};
        co_await wait_for(1ms);
        if (succeed_on != 0 && ctx.attempt() >= succeed_on) co_return ctx.attempt();
        throw std::runtime_error("attempt " + std::to_string(ctx.attempt()) + " failed");
      });
}

/// Waits `slow` on attempts before `fast_from`, and returns at once from then on.
drover::module_body slow_then_fast(probe* bodies, milliseconds slow, std::uint32_t fast_from) {
  return coroutine_body(
      [bodies, slow, fast_from](drover::module_context& ctx) -> asio::awaitable<json::value> {
        probe_scope scope{bodies, ctx};
        if (fast_from == 0 || ctx.attempt() < fast_from) co_await wait_for(slow);
        co_return "fast";
      });
}

std::vector<std::uint32_t> attempts_seen(const probe& bodies, std::string_view module) {
  std::vector<std::uint32_t> attempts;
  for (const auto& e : bodies.entries()) {
    if (e.begin && e.module == module) attempts.push_back(e.attempt);
  }
  return attempts;
}

/// Time from the end of each attempt to the start of the next, in milliseconds.
std::vector<milliseconds::rep> gaps_between_attempts(const probe& bodies, std::string_view module) {
  std::vector<milliseconds::rep> gaps;
  std::optional<steady::time_point> last_end;
  for (const auto& e : bodies.entries()) {
    if (e.module != module) continue;
    if (e.begin && last_end) {
      gaps.push_back(std::chrono::duration_cast<milliseconds>(e.at - *last_end).count());
    }
    if (!e.begin) last_end = e.at;
  }
  return gaps;
}

using delays = std::vector<milliseconds::rep>;

}  // namespace

BOOST_AUTO_TEST_SUITE(retry)

BOOST_AUTO_TEST_CASE(always_failing_module_makes_retries_plus_one_attempts,
                     *boost::unit_test::timeout(20)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      probe bodies;
      drover::pipeline p;
      auto m = p.add("flaky", flaky(&bodies));
      m.retries(3);
      m.backoff(exact_backoff(1ms));
      auto run = run_with_workers(std::move(p), workers);
      const auto& r = result_of(run.report, "flaky");
      BOOST_TEST(r.status == module_status::failed);
      BOOST_TEST(r.attempts == 4u);
      BOOST_TEST((attempts_seen(bodies, "flaky") == std::vector<std::uint32_t>{1, 2, 3, 4}));
      BOOST_TEST(mentions(r.reason, "attempt 4 failed"), r.reason);
      BOOST_TEST(run.report.status == drover::run_status::failed);
    }
  }
}

BOOST_AUTO_TEST_CASE(success_on_a_later_attempt_ends_succeeded, *boost::unit_test::timeout(20)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      probe bodies;
      drover::pipeline p;
      auto m = p.add("flaky", flaky(&bodies, 3));
      m.retries(5);
      m.backoff(exact_backoff(1ms));
      p.add("after", value_body("ran"), {"flaky"});
      auto run = run_with_workers(std::move(p), workers);
      const auto& r = result_of(run.report, "flaky");
      BOOST_TEST(r.status == module_status::succeeded);
      BOOST_TEST(r.attempts == 3u);
      BOOST_TEST(r.value == json::value(3));
      BOOST_TEST(r.reason.empty(), r.reason);
      BOOST_TEST(bodies.begins("flaky") == 3u);
      BOOST_TEST(result_of(run.report, "after").status == module_status::succeeded);
      BOOST_TEST(run.report.status == drover::run_status::succeeded);
    }
  }
}

BOOST_AUTO_TEST_CASE(no_retries_means_one_attempt, *boost::unit_test::timeout(20)) {
  probe bodies;
  drover::pipeline p;
  p.add("once", flaky(&bodies));
  auto run = run_with_workers(std::move(p), 1);
  BOOST_TEST(result_of(run.report, "once").attempts == 1u);
  BOOST_TEST(bodies.begins("once") == 1u);
}

BOOST_AUTO_TEST_CASE(pipeline_default_retries_apply_unless_overridden,
                     *boost::unit_test::timeout(20)) {
  probe bodies;
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  p.defaults.retries = 2;
  p.defaults.backoff = exact_backoff(1ms);
  p.add("inherits", flaky(&bodies));
  p.add("none", flaky(&bodies)).retries(0);
  p.add("more", flaky(&bodies)).retries(4);
  auto run = run_with_workers(std::move(p), 2);
  BOOST_TEST(result_of(run.report, "inherits").attempts == 3u);
  BOOST_TEST(result_of(run.report, "none").attempts == 1u);
  BOOST_TEST(result_of(run.report, "more").attempts == 5u);
  BOOST_TEST(bodies.begins("inherits") == 3u);
}

BOOST_AUTO_TEST_CASE(pipeline_default_timeout_applies_unless_overridden,
                     *boost::unit_test::timeout(20)) {
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  p.defaults.timeout = 50ms;
  p.add("inherits", wait_body(5s));
  p.add("longer", wait_body(100ms, "made it")).timeout(3s);
  auto run = run_with_workers(std::move(p), 2);
  BOOST_TEST(result_of(run.report, "inherits").status == module_status::timed_out);
  BOOST_TEST(result_of(run.report, "longer").status == module_status::succeeded);
  BOOST_TEST(result_of(run.report, "longer").value == json::value("made it"));
  BOOST_TEST(run.elapsed.count() < 2500);
}

BOOST_AUTO_TEST_CASE(pipeline_default_backoff_applies_unless_overridden,
                     *boost::unit_test::timeout(20)) {
  probe bodies;
  event_log events;
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  p.defaults.retries = 1;
  p.defaults.backoff = exact_backoff(30ms);
  p.add("inherits", flaky(&bodies));
  p.add("overrides", flaky(&bodies)).backoff(exact_backoff(5ms));
  drover::run_options options;
  options.workers = 2;
  options.on_event = events.sink();
  auto run = run_pipeline(std::move(p), options);
  BOOST_TEST(events.retry_delays("inherits") == delays{30});
  BOOST_TEST(events.retry_delays("overrides") == delays{5});
  BOOST_TEST(gaps_between_attempts(bodies, "inherits").at(0) >= 30);
}

BOOST_AUTO_TEST_CASE(backoff_grows_exponentially_between_attempts, *boost::unit_test::timeout(20)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      probe bodies;
      event_log events;
      drover::pipeline p;
      auto m = p.add("flaky", flaky(&bodies));
      m.retries(2);
      m.backoff(exact_backoff(20ms, 2.0));
      drover::run_options options;
      options.workers = workers;
      options.on_event = events.sink();
      auto run = run_pipeline(std::move(p), options);
      BOOST_TEST(result_of(run.report, "flaky").attempts == 3u);
      BOOST_TEST(events.retry_delays("flaky") == (delays{20, 40}));
      auto gaps = gaps_between_attempts(bodies, "flaky");
      BOOST_REQUIRE(gaps.size() == 2u);
      BOOST_TEST(gaps[0] >= 20);
      BOOST_TEST(gaps[1] >= 40);
      BOOST_TEST(gaps[0] < 20 + 1500);
      BOOST_TEST(gaps[1] < 40 + 1500);
    }
  }
}

BOOST_AUTO_TEST_CASE(backoff_is_capped_at_max, *boost::unit_test::timeout(20)) {
  event_log events;
  drover::pipeline p;
  auto m = p.add("flaky", flaky(nullptr));
  m.retries(3);
  m.backoff(exact_backoff(20ms, 10.0, 30ms));
  drover::run_options options;
  options.on_event = events.sink();
  run_pipeline(std::move(p), options);
  BOOST_TEST(events.retry_delays("flaky") == (delays{20, 30, 30}));
}

BOOST_AUTO_TEST_CASE(jitter_keeps_delays_within_bounds, *boost::unit_test::timeout(20)) {
  probe bodies;
  event_log events;
  drover::pipeline p;
  auto m = p.add("flaky", flaky(&bodies));
  m.retries(6);
  m.backoff(drover::backoff_policy{20ms, 1.0, 10s, 0.5});
  drover::run_options options;
  options.on_event = events.sink();
  options.seed = 42;
  run_pipeline(std::move(p), options);
  auto announced = events.retry_delays("flaky");
  auto gaps = gaps_between_attempts(bodies, "flaky");
  BOOST_REQUIRE(announced.size() == 6u);
  BOOST_REQUIRE(gaps.size() == 6u);
  for (std::size_t k = 0; k < announced.size(); ++k) {
    BOOST_TEST_CONTEXT("retry " << k + 1) {
      BOOST_TEST(announced[k] >= 10);
      BOOST_TEST(announced[k] <= 30);
      BOOST_TEST(gaps[k] >= announced[k] - 1);
    }
  }
}

BOOST_AUTO_TEST_CASE(same_seed_gives_same_jittered_delays, *boost::unit_test::timeout(20)) {
  auto delays_with_seed = [](std::uint64_t seed) {
    event_log events;
    drover::pipeline p;
    auto m = p.add("flaky", flaky(nullptr));
    m.retries(4);
    m.backoff(drover::backoff_policy{10ms, 1.0, 10s, 1.0});
    drover::run_options options;
    options.on_event = events.sink();
    options.seed = seed;
    run_pipeline(std::move(p), options);
    return events.retry_delays("flaky");
  };
  auto first = delays_with_seed(7);
  BOOST_TEST(first.size() == 4u);
  BOOST_TEST(first == delays_with_seed(7));
}

BOOST_AUTO_TEST_CASE(timed_out_attempt_is_retried, *boost::unit_test::timeout(20)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      probe bodies;
      drover::pipeline p;
      p.mode = drover::execution_mode::keep_going;
      auto recovers = p.add("recovers", slow_then_fast(&bodies, 5s, 2));
      recovers.timeout(50ms);
      recovers.retries(2);
      recovers.backoff(exact_backoff(1ms));
      auto hopeless = p.add("hopeless", slow_then_fast(&bodies, 5s, 0));
      hopeless.timeout(50ms);
      hopeless.retries(2);
      hopeless.backoff(exact_backoff(1ms));
      auto run = run_with_workers(std::move(p), workers);

      const auto& r = result_of(run.report, "recovers");
      BOOST_TEST(r.status == module_status::succeeded);
      BOOST_TEST(r.attempts == 2u);
      BOOST_TEST(r.value == json::value("fast"));
      const auto& h = result_of(run.report, "hopeless");
      BOOST_TEST(h.status == module_status::timed_out);
      BOOST_TEST(h.attempts == 3u);
      BOOST_TEST(run.elapsed.count() < 4000);
    }
  }
}

BOOST_AUTO_TEST_CASE(timeout_applies_to_each_attempt, *boost::unit_test::timeout(20)) {
  // Two attempts of 60 ms each outlast a 100 ms timeout together, but neither does alone.
  drover::pipeline p;
  auto m = p.add("steady",
                 coroutine_body([](drover::module_context& ctx) -> asio::awaitable<json::value> {
                   co_await wait_for(60ms);
                   if (ctx.attempt() == 1) throw std::runtime_error("first attempt fails");
                   co_return "second attempt";
                 }));
  m.timeout(100ms);
  m.retries(1);
  m.backoff(exact_backoff(1ms));
  auto run = run_with_workers(std::move(p), 1);
  const auto& r = result_of(run.report, "steady");
  BOOST_TEST(r.status == module_status::succeeded, r.reason);
  BOOST_TEST(r.attempts == 2u);
  BOOST_TEST(r.duration().count() >= 120);
}

BOOST_AUTO_TEST_CASE(ignored_failure_is_retried_first, *boost::unit_test::timeout(20)) {
  probe bodies;
  drover::pipeline p;
  auto m = p.add("optional", flaky(&bodies));
  m.retries(2);
  m.backoff(exact_backoff(1ms));
  m.ignore_failure(true);
  p.add("after", value_body("ran"), {"optional"});
  auto run = run_with_workers(std::move(p), 1);
  const auto& r = result_of(run.report, "optional");
  BOOST_TEST(r.status == module_status::ignored_failure);
  BOOST_TEST(r.attempts == 3u);
  BOOST_TEST(bodies.begins("optional") == 3u);
  BOOST_TEST(result_of(run.report, "after").status == module_status::succeeded);
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
}

BOOST_AUTO_TEST_CASE(thrown_timeout_error_ends_timed_out, *boost::unit_test::timeout(20)) {
  event_log events;
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  auto own_clock = [](drover::module_context&) -> asio::awaitable<json::value> {
    co_await wait_for(1ms);
    throw drover::timeout_error("gave up after 3 polls");
  };
  p.add("once", own_clock);
  auto twice = p.add("twice", own_clock);
  twice.retries(1);
  twice.backoff(exact_backoff(1ms));
  drover::run_options options;
  options.workers = 2;
  options.on_event = events.sink();
  auto run = run_pipeline(std::move(p), options);

  const auto& once = result_of(run.report, "once");
  BOOST_TEST(once.status == module_status::timed_out);
  BOOST_TEST(once.attempts == 1u);
  BOOST_TEST(mentions(once.reason, "gave up after 3 polls"), once.reason);
  const auto& retried = result_of(run.report, "twice");
  BOOST_TEST(retried.status == module_status::timed_out);
  BOOST_TEST(retried.attempts == 2u);
  BOOST_TEST(events.retry_delays("twice").size() == 1u);
}

BOOST_AUTO_TEST_CASE(retrying_events_carry_attempt_and_delay, *boost::unit_test::timeout(20)) {
  event_log events;
  drover::pipeline p;
  auto m = p.add("flaky", flaky(nullptr, 3));
  m.retries(3);
  m.backoff(exact_backoff(10ms, 2.0));
  drover::run_options options;
  options.on_event = events.sink();
  run_pipeline(std::move(p), options);
  std::vector<std::uint32_t> numbered;
  std::vector<std::string> messages;
  for (const auto& e : events.of("flaky")) {
    if (e.type != drover::event_type::module_retrying) continue;
    numbered.push_back(e.attempt);
    messages.push_back(e.message);
  }
  // The header leaves open whether `attempt` names the failed attempt or the next one.
  BOOST_TEST((numbered == std::vector<std::uint32_t>{1, 2} ||
              numbered == std::vector<std::uint32_t>{2, 3}));
  BOOST_REQUIRE(messages.size() == 2u);
  BOOST_TEST(mentions(messages[0], "attempt 1 failed"), messages[0]);
  BOOST_TEST(mentions(messages[1], "attempt 2 failed"), messages[1]);
  BOOST_TEST(events.retry_delays("flaky") == (delays{10, 20}));
}

BOOST_AUTO_TEST_SUITE_END()
