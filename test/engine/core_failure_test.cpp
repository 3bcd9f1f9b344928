// scheduler_core: what a failure does to the rest of the run. The skip cascade, always_run,
// ignore_failure, skip_if, fail_fast and keep_going, and attempts that never started.
#include <drover/detail/scheduler_core.hpp>

#define BOOST_TEST_MODULE core_failure
#include "core_harness.hpp"

#include <stdexcept>

namespace {

using namespace drover::test;
using drover::module_status;
using drover::run_status;
using kind = action::kind;

core_settings capacity(std::size_t n) {
  core_settings s;
  s.local_workers = n;
  s.local_capacity = n;
  return s;
}

drover::pipeline keep_going() {
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  return p;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(core_failure)

BOOST_AUTO_TEST_CASE(a_failure_skips_dependents_transitively_naming_the_blocker) {
  drover::pipeline p = keep_going();
  p.add("broken", no_body());
  p.add("fine", no_body());
  p.add("child", no_body(), {"broken"});
  p.add("grandchild", no_body(), {"child"});
  p.add("mixed", no_body(), {"fine", "grandchild"});
  core_harness h{std::move(p), capacity(2)};
  h.start();
  BOOST_TEST(h.dispatched() == (ids{"broken", "fine"}));
  h.succeed("fine");
  h.fail("broken", "compiler crashed");
  BOOST_TEST(h.dispatched().empty());
  BOOST_TEST(h.finished());
  BOOST_TEST(h.status("broken") == module_status::failed);
  BOOST_TEST(h.reason("broken") == "compiler crashed");
  BOOST_TEST(h.status("child") == module_status::skipped);
  BOOST_TEST(h.reason("child") == "dependency broken failed");
  BOOST_TEST(h.status("grandchild") == module_status::skipped);
  BOOST_TEST(h.reason("grandchild") == "dependency child was skipped");
  BOOST_TEST(h.status("mixed") == module_status::skipped);
  BOOST_TEST(h.reason("mixed") == "dependency grandchild was skipped");
  BOOST_TEST(h.attempts("child") == 0u);
  BOOST_TEST(h.result() == run_status::failed);
}

BOOST_AUTO_TEST_CASE(the_reason_names_a_failure_before_a_cancellation) {
  // Dependencies in file order: cancelled first, then timed out. The timeout is to blame.
  drover::pipeline p = keep_going();
  p.add("stopped", no_body());
  p.add("slow", no_body());
  p.add("after", no_body(), {"stopped", "slow"});
  p.add("only_cancelled", no_body(), {"stopped"});
  core_harness h{std::move(p), capacity(2)};
  h.start();
  h.end("stopped", module_status::cancelled, "stopped by hand");
  h.end("slow", module_status::timed_out, "took too long");
  BOOST_TEST(h.status("after") == module_status::skipped);
  BOOST_TEST(h.reason("after") == "dependency slow timed out");
  // A module blocked only by cancelled dependencies is cancelled, not skipped.
  BOOST_TEST(h.status("only_cancelled") == module_status::cancelled);
  BOOST_TEST(h.reason("only_cancelled") == "dependency stopped was cancelled");
}

BOOST_AUTO_TEST_CASE(always_run_runs_after_failed_and_skipped_dependencies) {
  drover::pipeline p = keep_going();
  p.add("broken", no_body());
  p.add("child", no_body(), {"broken"});
  p.add("cleanup", no_body(), {"child"}).always_run(true);
  p.add("after_cleanup", no_body(), {"cleanup"});
  core_harness h{std::move(p)};
  h.start();
  h.fail("broken");
  BOOST_TEST(h.status("child") == module_status::skipped);
  BOOST_TEST(h.dispatched() == (ids{"broken", "cleanup"}));
  h.succeed("cleanup");
  // The cleanup succeeded, so what depends on it runs.
  BOOST_TEST(h.dispatched() == ids{"after_cleanup"});
  h.succeed("after_cleanup");
  BOOST_TEST(h.result() == run_status::failed);
}

BOOST_AUTO_TEST_CASE(ignore_failure_ends_ignored_and_lets_dependents_run) {
  for (const module_status end : {module_status::failed, module_status::timed_out}) {
    BOOST_TEST_CONTEXT("ends " << end) {
      drover::pipeline p;  // fail_fast: an ignored failure does not stop the run either
      p.add("lint", no_body()).ignore_failure(true);
      p.add("other", no_body());
      p.add("package", no_body(), {"lint"});
      core_harness h{std::move(p), capacity(2)};
      h.start();
      h.end("lint", end, "3 warnings");
      BOOST_TEST(h.status("lint") == module_status::ignored_failure);
      BOOST_TEST(h.reason("lint") == "3 warnings");
      BOOST_TEST(h.count(kind::cancel) == 0u);
      BOOST_TEST(h.dispatched() == (ids{"lint", "other", "package"}));
      h.succeed("other");
      h.succeed("package");
      BOOST_TEST(h.result() == run_status::succeeded);
    }
  }
}

BOOST_AUTO_TEST_CASE(skip_if_is_asked_once_its_dependencies_end) {
  int asked = 0;
  drover::pipeline p;
  p.add("build", no_body());
  p.add("deploy", no_body(), {"build"}).skip_if([&asked]() -> std::optional<std::string> {
    ++asked;
    return "not on a branch";
  });
  p.add("notify", no_body(), {"deploy"});
  p.add("run_me", no_body(), {"build"}).skip_if([&asked]() -> std::optional<std::string> {
    ++asked;
    return std::nullopt;
  });
  core_harness h{std::move(p), capacity(2)};
  h.start();
  BOOST_TEST(asked == 0);
  h.succeed("build");
  BOOST_TEST(asked == 2);
  BOOST_TEST(h.status("deploy") == module_status::skipped);
  BOOST_TEST(h.reason("deploy") == "not on a branch");
  BOOST_TEST(h.status("notify") == module_status::skipped);
  BOOST_TEST(h.reason("notify") == "dependency deploy was skipped");
  BOOST_TEST(h.dispatched() == (ids{"build", "run_me"}));
  h.succeed("run_me");
  BOOST_TEST(h.result() == run_status::succeeded);
}

BOOST_AUTO_TEST_CASE(a_skip_condition_that_throws_fails_the_module) {
  drover::pipeline p = keep_going();
  p.add("check", no_body()).skip_if([]() -> std::optional<std::string> {
    throw std::runtime_error("no such variable");
  });
  p.add("after", no_body(), {"check"});
  core_harness h{std::move(p)};
  h.start();
  BOOST_TEST(h.dispatched().empty());
  BOOST_TEST(h.status("check") == module_status::failed);
  BOOST_TEST(h.reason("check") == "skip condition threw: no such variable");
  BOOST_TEST(h.status("after") == module_status::skipped);
  BOOST_TEST(h.result() == run_status::failed);
}

BOOST_AUTO_TEST_CASE(fail_fast_cancels_the_rest_but_always_run) {
  drover::pipeline p;  // fail_fast is the default
  p.add("bad", no_body()).priority(1);
  p.add("running", no_body()).priority(1);
  p.add("waiting", no_body());
  p.add("waiting_child", no_body(), {"waiting"});
  p.add("cleanup", no_body()).always_run(true);
  core_harness h{std::move(p), capacity(2)};
  h.start();
  BOOST_TEST(h.dispatched() == (ids{"bad", "running"}));
  h.fail("bad");
  const std::string why = "cancelled by fail_fast after 'bad' failed";
  // One cancel for the local workers' attempts that the stop covers.
  const auto cancels = h.actions_of(kind::cancel);
  BOOST_TEST_REQUIRE(cancels.size() == 1u);
  BOOST_TEST(cancels[0].local);
  BOOST_TEST(h.core().stop_applies(h.index("running")));
  BOOST_TEST(!h.core().stop_applies(h.index("cleanup")));
  BOOST_TEST(h.status("waiting") == module_status::cancelled);
  BOOST_TEST(h.reason("waiting") == why);
  BOOST_TEST(h.status("waiting_child") == module_status::cancelled);
  // The always_run module still runs, on the worker "bad" freed.
  BOOST_TEST(h.dispatched() == ids{"cleanup"});
  h.end("running", module_status::cancelled, "interrupted");
  BOOST_TEST(h.status("running") == module_status::cancelled);
  BOOST_TEST(h.reason("running") == why + " (interrupted)");
  BOOST_TEST(!h.finished());
  h.succeed("cleanup");
  BOOST_TEST(h.status("cleanup") == module_status::succeeded);
  BOOST_TEST(h.finished());
  BOOST_TEST(h.result() == run_status::failed);
  BOOST_TEST(h.core().stop_reason() == why);
}

BOOST_AUTO_TEST_CASE(fail_fast_keeps_work_that_finished_and_a_failure_under_the_stop_is_cancelled) {
  drover::pipeline p;
  p.add("bad", no_body());
  p.add("done_anyway", no_body());
  p.add("failing_anyway", no_body());
  core_harness h{std::move(p), capacity(3)};
  h.start();
  h.end("bad", module_status::timed_out);
  h.succeed("done_anyway");
  h.fail("failing_anyway", "broke while stopping");
  BOOST_TEST(h.status("done_anyway") == module_status::succeeded);
  BOOST_TEST(h.status("failing_anyway") == module_status::cancelled);
  BOOST_TEST(h.reason("failing_anyway") ==
             "cancelled by fail_fast after 'bad' timed out (broke while stopping)");
}

BOOST_AUTO_TEST_CASE(fail_fast_waits_for_the_last_retry) {
  drover::pipeline p;
  p.add("flaky", no_body()).retries(1);
  p.add("other", no_body());
  core_harness h{std::move(p), capacity(2)};
  h.start();
  h.fail("flaky");
  BOOST_TEST(h.count(kind::cancel) == 0u);
  BOOST_TEST(h.core().stopping() == drover::detail::stop_mode::none);
  h.advance(10s);
  BOOST_TEST(h.dispatched() == (ids{"flaky", "other", "flaky"}));
  h.fail("flaky");
  BOOST_TEST(h.core().stopping() == drover::detail::stop_mode::unless_always_run);
  BOOST_TEST(h.count(kind::cancel) == 1u);
  // What triggers fail_fast, as pool workers ask before the core hears of the failure.
  using core = drover::detail::scheduler_core;
  const auto& plan = h.modules();
  const module_index flaky = h.index("flaky");
  BOOST_TEST(!core::triggers_fail_fast(plan, flaky, 1, module_status::failed));
  BOOST_TEST(core::triggers_fail_fast(plan, flaky, 2, module_status::failed));
  BOOST_TEST(core::triggers_fail_fast(plan, flaky, 2, module_status::timed_out));
  BOOST_TEST(!core::triggers_fail_fast(plan, flaky, 2, module_status::cancelled));
}

BOOST_AUTO_TEST_CASE(a_cancelled_module_does_not_trigger_fail_fast) {
  drover::pipeline p;
  p.add("stopped", no_body());
  p.add("other", no_body());
  core_harness h{std::move(p), capacity(2)};
  h.start();
  h.end("stopped", module_status::cancelled);
  BOOST_TEST(h.core().stopping() == drover::detail::stop_mode::none);
  BOOST_TEST(h.count(kind::cancel) == 0u);
  h.succeed("other");
  BOOST_TEST(h.status("other") == module_status::succeeded);
  BOOST_TEST(h.result() == run_status::failed);
}

BOOST_AUTO_TEST_CASE(keep_going_finishes_the_independent_branches) {
  drover::pipeline p = keep_going();
  p.add("a", no_body());
  p.add("b", no_body(), {"a"});
  p.add("c", no_body());
  p.add("d", no_body(), {"c"});
  p.add("e", no_body(), {"d"});
  core_harness h{std::move(p), capacity(2)};
  h.start();
  h.fail("a");
  BOOST_TEST(h.count(kind::cancel) == 0u);
  BOOST_TEST(h.status("b") == module_status::skipped);
  h.succeed("c");
  h.succeed("d");
  h.succeed("e");
  BOOST_TEST(h.status("e") == module_status::succeeded);
  BOOST_TEST(h.result() == run_status::failed);
  BOOST_TEST(h.count(kind::complete) == 1u);
}

BOOST_AUTO_TEST_CASE(an_attempt_that_never_started_ends_cancelled_without_an_attempt) {
  drover::pipeline p;
  p.add("bad", no_body());
  p.add("handed_out", no_body());
  core_harness h{std::move(p), capacity(2)};
  h.start();
  h.fail("bad");
  // The worker took "handed_out" but saw the stop before starting it.
  BOOST_TEST(h.core().stop_applies(h.index("handed_out")));
  h.not_started("handed_out");
  BOOST_TEST(h.status("handed_out") == module_status::cancelled);
  BOOST_TEST(h.attempts("handed_out") == 0u);
  BOOST_TEST(h.reason("handed_out") == "cancelled by fail_fast after 'bad' failed");
  BOOST_TEST(h.finished());
  BOOST_TEST(h.local_in_flight() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
