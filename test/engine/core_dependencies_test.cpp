// scheduler_core: dependency order, the order among ready modules, the local capacity and how
// a run completes. Inputs in, actions out: no io_context.
#include <drover/detail/scheduler_core.hpp>

#define BOOST_TEST_MODULE core_dependencies
#include "core_harness.hpp"

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

}  // namespace

BOOST_AUTO_TEST_SUITE(core_dependencies)

BOOST_AUTO_TEST_CASE(a_module_waits_for_all_its_dependencies) {
  drover::pipeline p;
  p.add("a", no_body());
  p.add("b", no_body());
  p.add("c", no_body(), {"a", "b"});
  p.add("d", no_body(), {"c"});
  core_harness h{std::move(p), capacity(4)};
  h.start();
  BOOST_TEST(h.dispatched() == (ids{"a", "b"}));
  h.succeed("b");
  BOOST_TEST(h.dispatched().empty());
  h.succeed("a");
  BOOST_TEST(h.dispatched() == ids{"c"});
  h.succeed("c");
  BOOST_TEST(h.dispatched() == ids{"d"});
  h.succeed("d");
  BOOST_TEST(h.finished());
  BOOST_TEST(h.result() == run_status::succeeded);
}

BOOST_AUTO_TEST_CASE(modules_released_together_go_out_in_file_order) {
  drover::pipeline p;
  p.add("root", no_body());
  for (const char* id : {"m3", "m1", "m4", "m2"})
    p.add(id, no_body(), {"root"});
  core_harness h{std::move(p), capacity(8)};
  h.start();
  BOOST_TEST(h.dispatched() == ids{"root"});
  h.succeed("root");
  BOOST_TEST(h.dispatched() == (ids{"m3", "m1", "m4", "m2"}));
}

BOOST_AUTO_TEST_CASE(ready_modules_go_out_by_priority) {
  drover::pipeline p;
  p.add("low", no_body());
  p.add("high", no_body()).priority(5);
  p.add("middle", no_body()).priority(1);
  p.add("negative", no_body()).priority(-3);
  core_harness h{std::move(p), capacity(1)};
  h.start();
  ids order;
  for (int k = 0; k < 4; ++k) {
    const ids out = h.dispatched();
    BOOST_TEST_REQUIRE(out.size() == 1u);
    order.push_back(out[0]);
    h.succeed(out[0]);
  }
  BOOST_TEST(order == (ids{"high", "middle", "low", "negative"}));
}

BOOST_AUTO_TEST_CASE(equal_priority_goes_by_critical_path_unless_first_come_first_served) {
  for (const bool critical_path : {true, false}) {
    BOOST_TEST_CONTEXT("order_by_critical_path " << critical_path) {
      drover::pipeline p;
      p.add("short", no_body());
      p.add("long", no_body());
      p.add("long2", no_body(), {"long"});
      p.add("long3", no_body(), {"long2"});
      core_settings s = capacity(1);
      s.order_by_critical_path = critical_path;
      core_harness h{std::move(p), s};
      h.start();
      BOOST_TEST(h.dispatched() == ids{critical_path ? "long" : "short"});
    }
  }
}

BOOST_AUTO_TEST_CASE(priority_comes_before_critical_path) {
  drover::pipeline p;
  p.add("long", no_body());
  p.add("long2", no_body(), {"long"});
  p.add("urgent", no_body()).priority(1);
  core_harness h{std::move(p), capacity(1)};
  h.start();
  BOOST_TEST(h.dispatched() == ids{"urgent"});
}

BOOST_AUTO_TEST_CASE(a_module_released_later_overtakes_waiting_ones_of_lower_priority) {
  drover::pipeline p;
  p.add("first", no_body());
  p.add("waiting", no_body());
  p.add("urgent", no_body(), {"first"}).priority(9);
  core_settings s = capacity(1);
  s.order_by_critical_path = false;
  core_harness h{std::move(p), s};
  h.start();
  BOOST_TEST(h.dispatched() == ids{"first"});
  h.succeed("first");
  BOOST_TEST(h.dispatched() == ids{"urgent"});
}

BOOST_AUTO_TEST_CASE(never_more_dispatched_than_the_local_capacity) {
  for (std::size_t cap : {1u, 3u, 5u}) {
    BOOST_TEST_CONTEXT("local_capacity " << cap) {
      drover::pipeline p;
      for (int k = 0; k < 12; ++k)
        p.add("m" + std::to_string(k), no_body());
      p.add("last", no_body(), {"m0", "m5", "m11"});
      core_harness h{std::move(p), capacity(cap)};
      h.start();
      BOOST_TEST(h.dispatched().size() == cap);
      // Ending one attempt makes room for exactly one more.
      h.succeed(h.id(h.running().front().module));
      BOOST_TEST(h.dispatched().size() == 1u);
      while (!h.running().empty())
        h.succeed(h.id(h.running().back().module));
      BOOST_TEST(h.finished());
      BOOST_TEST(h.max_local_in_flight() == cap);
      BOOST_TEST(h.count(kind::dispatch) == 13u);
    }
  }
}

BOOST_AUTO_TEST_CASE(capacity_below_workers_is_raised_to_the_workers) {
  drover::pipeline p;
  for (int k = 0; k < 5; ++k)
    p.add("m" + std::to_string(k), no_body());
  core_settings s;
  s.local_workers = 3;
  s.local_capacity = 1;
  core_harness h{std::move(p), s};
  h.start();
  BOOST_TEST(h.dispatched().size() == 3u);
}

BOOST_AUTO_TEST_CASE(the_run_completes_once_and_complete_is_the_last_action) {
  drover::pipeline p;
  p.add("a", no_body());
  p.add("b", no_body(), {"a"});
  core_harness h{std::move(p), capacity(2)};
  h.start();
  h.succeed("a");
  BOOST_TEST(!h.finished());
  BOOST_TEST(h.count(kind::complete) == 0u);
  BOOST_TEST(h.result() == run_status::invalid);
  h.succeed("b");
  BOOST_TEST(h.finished());
  BOOST_TEST(h.count(kind::complete) == 1u);
  BOOST_TEST(h.actions().back().what == kind::complete);
  BOOST_TEST(h.result() == run_status::succeeded);
  BOOST_TEST(h.events_of(drover::event_type::run_finished).size() == 1u);
  BOOST_TEST(h.events_of(drover::event_type::run_finished)[0].message == "succeeded");
  // Nothing after the end: a late cancel or timer adds no action.
  h.cancel();
  h.core().timer_fired(h.now() + 1h);
  h.advance(1h);
  BOOST_TEST(h.actions_after_complete() == 0u);
  BOOST_TEST(h.count(kind::complete) == 1u);
  BOOST_TEST(h.result() == run_status::succeeded);
}

BOOST_AUTO_TEST_CASE(the_run_status_says_whether_a_module_failed) {
  struct row {
    module_status end;
    bool ignore;
    run_status expected;
  };
  for (const row& r : {row{module_status::succeeded, false, run_status::succeeded},
                       row{module_status::failed, false, run_status::failed},
                       row{module_status::timed_out, false, run_status::failed},
                       row{module_status::cancelled, false, run_status::failed},
                       row{module_status::failed, true, run_status::succeeded}}) {
    BOOST_TEST_CONTEXT("ends " << r.end << (r.ignore ? ", ignore_failure" : "")) {
      drover::pipeline p;
      p.mode = drover::execution_mode::keep_going;
      p.add("a", no_body()).ignore_failure(r.ignore);
      p.add("b", no_body());
      core_harness h{std::move(p), capacity(2)};
      h.start();
      h.end("a", r.end);
      h.succeed("b");
      BOOST_TEST(h.finished());
      BOOST_TEST(h.result() == r.expected);
      BOOST_TEST(h.count(kind::complete) == 1u);
      BOOST_TEST(h.actions().back().what == kind::complete);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_run_whose_modules_are_skipped_by_condition_succeeds) {
  drover::pipeline p;
  p.add("a", no_body()).skip_if([] { return std::optional<std::string>("not today"); });
  p.add("b", no_body(), {"a"});
  core_harness h{std::move(p)};
  h.start();
  BOOST_TEST(h.dispatched().empty());
  BOOST_TEST(h.finished());
  BOOST_TEST(h.status("b") == module_status::skipped);
  BOOST_TEST(h.result() == run_status::succeeded);
  BOOST_TEST(h.actions().back().what == kind::complete);
}

BOOST_AUTO_TEST_CASE(values_and_events_follow_the_modules) {
  drover::pipeline p;
  p.add("a", no_body());
  p.add("b", no_body(), {"a"});
  core_harness h{std::move(p)};
  h.start();
  h.core().attempt_started(h.index("a"), 1, 0, h.now());
  h.advance(5ms);
  h.succeed("a", 42);
  BOOST_TEST(h.value("a") == json::value(42));
  BOOST_TEST(h.core().finished_at(h.index("a")) == 5ms);
  h.succeed("b");
  // run_started, then per module ready, started (a only: b's start was not reported),
  // finished; then run_finished.
  std::vector<drover::event_type> types;
  for (const auto& e : h.events())
    types.push_back(e.type);
  using drover::event_type;
  BOOST_TEST(
      types == (std::vector<event_type>{event_type::run_started, event_type::module_ready,
                                        event_type::module_started, event_type::module_finished,
                                        event_type::module_ready, event_type::module_finished,
                                        event_type::run_finished}),
      boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
