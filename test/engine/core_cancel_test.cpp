// scheduler_core: the caller's cancel and the run deadline. Both stop everything, always_run
// modules included; they differ in the run's status and the reasons they give.
#include <drover/detail/scheduler_core.hpp>

#define BOOST_TEST_MODULE core_cancel
#include "core_harness.hpp"

namespace {

using namespace drover::test;
using drover::module_status;
using drover::run_status;
using kind = action::kind;

/// "running" (high priority, so it goes first), "waiting", an always_run module and a
/// dependent of the running one; room for one attempt.
drover::pipeline four_modules() {
  drover::pipeline p;
  p.add("running", no_body()).priority(1);
  p.add("waiting", no_body());
  p.add("cleanup", no_body()).always_run(true);
  p.add("child", no_body(), {"running"});
  return p;
}

core_settings with_deadline(milliseconds d) {
  core_settings s;
  s.deadline = d;
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(core_cancel)

BOOST_AUTO_TEST_CASE(cancel_stops_everything_always_run_included) {
  core_harness h{four_modules()};
  h.start();
  BOOST_TEST(h.dispatched() == ids{"running"});
  h.cancel();
  const auto cancels = h.actions_of(kind::cancel);
  BOOST_TEST_REQUIRE(cancels.size() == 1u);
  BOOST_TEST(cancels[0].local);
  for (const char* id : {"waiting", "cleanup"}) {
    BOOST_TEST_CONTEXT(id) {
      BOOST_TEST(h.status(id) == module_status::cancelled);
      BOOST_TEST(h.reason(id) == "run cancelled");
    }
  }
  BOOST_TEST(h.core().stop_applies(h.index("running")));
  BOOST_TEST(h.core().stop_applies(h.index("cleanup")));
  BOOST_TEST(!h.finished());
  h.end("running", module_status::cancelled, "interrupted");
  BOOST_TEST(h.status("running") == module_status::cancelled);
  BOOST_TEST(h.reason("running") == "run cancelled (interrupted)");
  BOOST_TEST(h.status("child") == module_status::cancelled);
  BOOST_TEST(h.dispatched().empty());
  BOOST_TEST(h.finished());
  BOOST_TEST(h.result() == run_status::cancelled);
  BOOST_TEST(h.core().stop_reason() == "run cancelled");
  BOOST_TEST(h.actions().back().what == kind::complete);
  // A second cancel changes nothing.
  const std::size_t actions = h.actions().size();
  h.cancel();
  BOOST_TEST(h.actions().size() == actions);
}

BOOST_AUTO_TEST_CASE(an_attempt_that_ends_anyway_keeps_its_status_but_the_run_is_cancelled) {
  core_harness h{four_modules()};
  h.start();
  h.cancel();
  h.succeed("running", 7);
  BOOST_TEST(h.status("running") == module_status::succeeded);
  BOOST_TEST(h.value("running") == json::value(7));
  // Its dependent does not start: the stop covers it.
  BOOST_TEST(h.status("child") == module_status::cancelled);
  BOOST_TEST(h.dispatched() == ids{"running"});
  BOOST_TEST(h.result() == run_status::cancelled);
}

BOOST_AUTO_TEST_CASE(a_cancel_before_the_start_cancels_every_module) {
  core_harness h{four_modules()};
  h.cancel();
  BOOST_TEST(h.actions().empty());
  h.start();
  BOOST_TEST(h.dispatched().empty());
  for (const char* id : {"running", "waiting", "cleanup", "child"})
    BOOST_TEST(h.status(id) == module_status::cancelled);
  BOOST_TEST(h.finished());
  BOOST_TEST(h.result() == run_status::cancelled);
  BOOST_TEST(h.count(kind::complete) == 1u);
}

BOOST_AUTO_TEST_CASE(the_deadline_fails_the_run_with_its_own_reason) {
  core_harness h{four_modules(), with_deadline(1000ms)};
  h.start();
  BOOST_TEST(h.timer_in() == 1000ms);
  h.advance(999ms);
  BOOST_TEST(h.count(kind::cancel) == 0u);
  BOOST_TEST(!h.core().deadline_passed());
  h.advance(1ms);
  BOOST_TEST(h.core().deadline_passed());
  BOOST_TEST(h.count(kind::cancel) == 1u);
  BOOST_TEST(h.status("waiting") == module_status::cancelled);
  BOOST_TEST(h.reason("waiting") == "deadline exceeded");
  BOOST_TEST(h.status("cleanup") == module_status::cancelled);
  BOOST_TEST(h.core().finished_at(h.index("cleanup")) == 1000ms);
  h.end("running", module_status::cancelled);
  BOOST_TEST(h.reason("running") == "deadline exceeded");
  BOOST_TEST(h.reason("child") == "deadline exceeded");
  BOOST_TEST(h.finished());
  BOOST_TEST(h.result() == run_status::failed);
  BOOST_TEST(h.core().stop_reason() == "deadline exceeded");
}

BOOST_AUTO_TEST_CASE(a_cancel_before_the_deadline_keeps_the_run_cancelled) {
  core_harness h{four_modules(), with_deadline(1000ms)};
  h.start();
  h.advance(500ms);
  h.cancel();
  // The running attempt does not confirm before the deadline passes.
  h.advance(2s);
  BOOST_TEST(!h.core().deadline_passed());
  BOOST_TEST(h.count(kind::cancel) == 1u);
  h.end("running", module_status::cancelled);
  BOOST_TEST(h.reason("running") == "run cancelled");
  BOOST_TEST(h.result() == run_status::cancelled);
}

BOOST_AUTO_TEST_CASE(a_deadline_after_the_end_changes_nothing) {
  drover::pipeline p;
  p.add("quick", no_body());
  core_harness h{std::move(p), with_deadline(1000ms)};
  h.start();
  h.advance(10ms);
  h.succeed("quick");
  BOOST_TEST(h.finished());
  h.advance(5s);
  BOOST_TEST(!h.core().deadline_passed());
  BOOST_TEST(h.result() == run_status::succeeded);
  BOOST_TEST(h.actions_after_complete() == 0u);
}

BOOST_AUTO_TEST_CASE(the_deadline_follows_fail_fast_and_covers_always_run) {
  drover::pipeline p;
  p.add("bad", no_body()).priority(2);
  p.add("cleanup", no_body()).always_run(true);
  p.add("other", no_body());
  core_harness h{std::move(p), with_deadline(1000ms)};
  h.start();
  h.fail("bad");
  BOOST_TEST(h.status("other") == module_status::cancelled);
  BOOST_TEST(h.dispatched() == (ids{"bad", "cleanup"}));
  h.advance(1000ms);
  // The deadline is a stronger stop: the always_run module is asked to stop too.
  BOOST_TEST(h.count(kind::cancel) == 1u);
  BOOST_TEST(h.core().stop_applies(h.index("cleanup")));
  h.end("cleanup", module_status::cancelled);
  BOOST_TEST(h.status("cleanup") == module_status::cancelled);
  BOOST_TEST(h.reason("cleanup") == "deadline exceeded");
  BOOST_TEST(h.result() == run_status::failed);
}

BOOST_AUTO_TEST_SUITE_END()
