// scheduler_core: retries. Exponential backoff with seeded jitter, which outcomes are retried,
// and a stop during a backoff. The clock is virtual, so delays are checked to the millisecond.
#include <drover/detail/scheduler_core.hpp>

#define BOOST_TEST_MODULE core_retry
#include "core_harness.hpp"

namespace {

using namespace drover::test;
using drover::module_status;
using drover::run_status;
using kind = action::kind;

drover::backoff_policy exact(milliseconds initial, double multiplier, milliseconds max) {
  drover::backoff_policy b;
  b.initial = initial;
  b.multiplier = multiplier;
  b.max = max;
  b.jitter = 0;
  return b;
}

/// The delays a module with `retries` that fails every attempt waits, for the given seed.
std::vector<milliseconds> delays(std::uint64_t seed, drover::backoff_policy b, int retries) {
  drover::pipeline p;
  auto m = p.add("flaky", no_body());
  m.retries(retries);
  m.backoff(b);
  core_settings s;
  s.seed = seed;
  core_harness h{std::move(p), s};
  h.start();
  while (!h.finished()) {
    h.fail("flaky");
    h.advance(1h);
  }
  std::vector<milliseconds> out;
  for (const auto& e : h.events_of(drover::event_type::module_retrying))
    out.push_back(e.delay);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(core_retry)

BOOST_AUTO_TEST_CASE(a_failed_attempt_is_retried_until_one_succeeds) {
  drover::pipeline p;
  p.add("flaky", no_body()).retries(3);
  p.add("after", no_body(), {"flaky"});
  core_harness h{std::move(p)};
  h.start();
  h.fail("flaky", "first");
  h.advance(1h);
  h.fail("flaky", "second");
  h.advance(1h);
  h.succeed("flaky");
  BOOST_TEST(h.status("flaky") == module_status::succeeded);
  BOOST_TEST(h.attempts("flaky") == 3u);
  BOOST_TEST(h.dispatched() == (ids{"flaky", "flaky", "flaky", "after"}));
  const auto retrying = h.events_of(drover::event_type::module_retrying);
  BOOST_TEST_REQUIRE(retrying.size() == 2u);
  BOOST_TEST(retrying[0].attempt == 1u);
  BOOST_TEST(retrying[0].message == "first");
  BOOST_TEST(retrying[1].attempt == 2u);
  BOOST_TEST(retrying[1].message == "second");
  // Each attempt has its own number: the driver tells them apart.
  std::vector<std::uint32_t> numbers;
  for (const auto& d : h.dispatches())
    numbers.push_back(d.attempt);
  BOOST_TEST(numbers == (std::vector<std::uint32_t>{1, 2, 3, 1}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(when_retries_run_out_the_last_error_stays) {
  drover::pipeline p;
  p.defaults.retries = 2;  // the pipeline's default applies
  p.add("broken", no_body());
  core_harness h{std::move(p)};
  h.start();
  for (const char* error : {"one", "two", "three"}) {
    h.fail("broken", error);
    h.advance(1h);
  }
  BOOST_TEST(h.status("broken") == module_status::failed);
  BOOST_TEST(h.reason("broken") == "three");
  BOOST_TEST(h.attempts("broken") == 3u);
  BOOST_TEST(h.count(kind::dispatch) == 3u);
  BOOST_TEST(h.result() == run_status::failed);
}

BOOST_AUTO_TEST_CASE(backoff_grows_exponentially_to_its_maximum) {
  BOOST_TEST(delays(1, exact(100ms, 2.0, 30s), 4) ==
                 (std::vector<milliseconds>{100ms, 200ms, 400ms, 800ms}),
             boost::test_tools::per_element());
  BOOST_TEST(delays(1, exact(100ms, 10.0, 2500ms), 4) ==
                 (std::vector<milliseconds>{100ms, 1000ms, 2500ms, 2500ms}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(the_retry_goes_out_when_its_delay_is_over_not_before) {
  drover::pipeline p;
  auto m = p.add("flaky", no_body());
  m.retries(1);
  m.backoff(exact(250ms, 2.0, 30s));
  core_harness h{std::move(p)};
  h.start();
  h.advance(40ms);
  h.fail("flaky");
  BOOST_TEST(h.timer_in() == 250ms);
  h.dispatched();
  h.advance(249ms);
  BOOST_TEST(h.dispatched().empty());
  BOOST_TEST(h.status("flaky") == module_status::pending);
  h.advance(1ms);
  BOOST_TEST(h.dispatched() == ids{"flaky"});
  BOOST_TEST(h.elapsed() == 290ms);
}

BOOST_AUTO_TEST_CASE(jitter_is_seeded_and_stays_in_its_band) {
  drover::backoff_policy b;
  b.initial = 1000ms;
  b.multiplier = 2.0;
  b.max = 6000ms;
  b.jitter = 0.25;
  const auto first = delays(7, b, 5);
  BOOST_TEST(first == delays(7, b, 5), boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(first.size() == 5u);
  const milliseconds nominal[] = {1000ms, 2000ms, 4000ms, 6000ms, 6000ms};
  for (std::size_t k = 0; k < first.size(); ++k) {
    BOOST_TEST_CONTEXT("retry " << k + 1) {
      BOOST_TEST(first[k].count() >= nominal[k].count() * 3 / 4);
      BOOST_TEST(first[k].count() <= nominal[k].count() * 5 / 4);
    }
  }
  // Jitter does vary the delays: across a few seeds, the first delay takes several values.
  std::vector<milliseconds> firsts;
  for (std::uint64_t seed : {1u, 2u, 3u, 4u, 5u})
    firsts.push_back(delays(seed, b, 1).at(0));
  std::sort(firsts.begin(), firsts.end());
  const auto distinct = std::unique(firsts.begin(), firsts.end()) - firsts.begin();
  BOOST_TEST(distinct > 1);
}

BOOST_AUTO_TEST_CASE(a_timed_out_attempt_is_retried) {
  drover::pipeline p;
  p.add("slow", no_body()).retries(1);
  core_harness h{std::move(p)};
  h.start();
  h.end("slow", module_status::timed_out, "exceeded its timeout of 10 ms");
  BOOST_TEST(h.events_of(drover::event_type::module_retrying).size() == 1u);
  h.advance(1h);
  h.end("slow", module_status::timed_out, "exceeded its timeout of 10 ms");
  BOOST_TEST(h.status("slow") == module_status::timed_out);
  BOOST_TEST(h.attempts("slow") == 2u);
  BOOST_TEST(h.reason("slow") == "exceeded its timeout of 10 ms");
}

BOOST_AUTO_TEST_CASE(a_cancelled_attempt_is_not_retried) {
  drover::pipeline p;
  p.add("stopped", no_body()).retries(3);
  core_harness h{std::move(p)};
  h.start();
  h.end("stopped", module_status::cancelled, "interrupted");
  BOOST_TEST(h.status("stopped") == module_status::cancelled);
  BOOST_TEST(h.attempts("stopped") == 1u);
  BOOST_TEST(h.events_of(drover::event_type::module_retrying).empty());
  BOOST_TEST(h.finished());
}

BOOST_AUTO_TEST_CASE(a_stop_during_the_backoff_ends_the_module_at_once) {
  for (const bool by_fail_fast : {false, true}) {
    BOOST_TEST_CONTEXT((by_fail_fast ? "fail_fast" : "cancel")) {
      drover::pipeline p;
      auto m = p.add("flaky", no_body());
      m.retries(5);
      m.backoff(exact(10s, 2.0, 30s));
      p.add("bad", no_body());
      core_settings s;
      s.local_workers = 2;
      s.local_capacity = 2;
      core_harness h{std::move(p), s};
      h.start();
      h.fail("flaky");
      h.advance(1s);
      if (by_fail_fast) {
        h.fail("bad");
      } else {
        h.cancel();
        h.end("bad", module_status::cancelled);
      }
      BOOST_TEST(h.status("flaky") == module_status::cancelled);
      BOOST_TEST(h.core().finished_at(h.index("flaky")) == 1s);
      BOOST_TEST(h.reason("flaky") ==
                 (by_fail_fast ? "cancelled by fail_fast after 'bad' failed" : "run cancelled"));
      BOOST_TEST(h.finished());
      h.advance(1h);
      BOOST_TEST(h.count(kind::dispatch) == 2u);
      BOOST_TEST(h.actions_after_complete() == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_always_run_module_keeps_retrying_under_fail_fast) {
  drover::pipeline p;
  auto m = p.add("cleanup", no_body());
  m.retries(1);
  m.always_run(true);
  m.backoff(exact(1s, 2.0, 30s));
  p.add("bad", no_body());
  core_settings s;
  s.local_workers = 2;
  s.local_capacity = 2;
  core_harness h{std::move(p), s};
  h.start();
  h.fail("cleanup");
  h.fail("bad");
  BOOST_TEST(h.status("cleanup") == module_status::pending);
  h.advance(1s);
  h.succeed("cleanup");
  BOOST_TEST(h.status("cleanup") == module_status::succeeded);
  BOOST_TEST(h.attempts("cleanup") == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
