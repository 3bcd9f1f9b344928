// The invariant checker alone: fed events by hand, it names each broken rule, the step and
// the module, and stays quiet about a run that keeps them.

#include <drover/coord/invariant_checker.hpp>
#include <drover/plan.hpp>

#define BOOST_TEST_MODULE invariant_checker
#include <boost/test/unit_test.hpp>

#include <string>

namespace {

using namespace drover;
using drover::coord::invariant_checker;

boost::asio::awaitable<boost::json::value> nothing(module_context&) {
  co_return nullptr;
}

// a -> b, and c alone; b and c share pool "db" of one slot; a retries once.
plan small_plan() {
  pipeline p;
  p.pools["db"] = 1;
  p.add("a", nothing).retries(1);
  p.add("b", nothing, {"a"}).constraints().pool = "db";
  p.add("c", nothing).constraints().pool = "db";
  auto prepared = prepare(std::move(p));
  BOOST_REQUIRE(prepared.ok());
  return std::move(*prepared.plan);
}

// Feeds events with increasing seq numbers.
struct feeder {
  invariant_checker& check;
  const plan& p;
  std::uint64_t seq = 0;

  void operator()(event_type type, std::string_view id, std::uint32_t attempt = 1,
                  module_status status = module_status::pending) {
    event e{};
    e.type = type;
    e.seq = seq++;
    e.module = id;
    e.index = *p.find(id);
    e.attempt = attempt;
    e.worker = "w1";
    e.status = status;
    check.on_event(e);
  }
};

// A fresh checker of small_plan() and a feeder for it, for each test.
struct checked_run {
  const plan p = small_plan();
  invariant_checker check{p};
  feeder feed{check, p};
};

run_report report_of(const plan& p, module_status status) {
  run_report r;
  std::vector<module_result> modules;
  for (plan::index i = 0; i < p.size(); ++i) {
    module_result m;
    m.id = std::string(p.id(i));
    m.status = status;
    modules.push_back(std::move(m));
  }
  r.modules = module_results(std::move(modules));
  return r;
}

BOOST_FIXTURE_TEST_CASE(a_run_that_keeps_every_rule_has_no_violation, checked_run) {
  feed(event_type::module_started, "a");
  feed(event_type::module_retrying, "a");
  feed(event_type::module_started, "a", 2);
  feed(event_type::module_finished, "a", 2, module_status::succeeded);
  feed(event_type::module_started, "b");
  feed(event_type::module_finished, "b", 1, module_status::succeeded);
  feed(event_type::module_started, "c");
  feed(event_type::module_reassigned, "c");
  feed(event_type::module_started, "c", 2);
  feed(event_type::module_finished, "c", 2, module_status::succeeded);
  check.finish(report_of(p, module_status::succeeded));
  for (const auto& v : check.violations())
    BOOST_TEST_MESSAGE(v.describe());
  BOOST_TEST(check.ok());
}

BOOST_FIXTURE_TEST_CASE(a_module_started_before_its_dependency_succeeded_is_named, checked_run) {
  feed(event_type::module_started, "a");
  feed(event_type::module_started, "b");
  BOOST_TEST_REQUIRE(check.violations().size() == 1u);
  const auto& v = check.violations().front();
  BOOST_TEST(v.invariant == "dependency order");
  BOOST_TEST(v.module == "b");
  BOOST_TEST(v.step == 1u);
  BOOST_TEST(v.describe() == "step 1, module b: dependency order: started before a ended");
}

BOOST_FIXTURE_TEST_CASE(a_dependency_that_failed_releases_nobody, checked_run) {
  feed(event_type::module_started, "a");
  feed(event_type::module_finished, "a", 1, module_status::failed);
  feed(event_type::module_started, "b");
  BOOST_TEST_REQUIRE(check.violations().size() == 1u);
  BOOST_TEST(check.violations().front().detail == "started although a ended failed");
}

BOOST_FIXTURE_TEST_CASE(a_pool_over_its_slots_is_named, checked_run) {
  feed(event_type::module_started, "a");
  feed(event_type::module_finished, "a", 1, module_status::succeeded);
  feed(event_type::module_started, "b");
  feed(event_type::module_started, "c");
  BOOST_TEST_REQUIRE(check.violations().size() == 1u);
  BOOST_TEST(check.violations().front().invariant == "constraints");
  BOOST_TEST(check.violations().front().module == "c");
  BOOST_TEST(check.violations().front().detail == "pool db holds 2 of 1 slots");
}

BOOST_FIXTURE_TEST_CASE(a_second_result_and_too_many_retries_are_named, checked_run) {
  feed(event_type::module_started, "a");
  feed(event_type::module_retrying, "a");
  feed(event_type::module_started, "a", 2);
  feed(event_type::module_retrying, "a", 2);  // a has one retry
  feed(event_type::module_started, "a", 3);
  feed(event_type::module_finished, "a", 3, module_status::succeeded);
  feed(event_type::module_finished, "a", 3, module_status::failed);
  BOOST_TEST_REQUIRE(check.violations().size() == 2u);
  BOOST_TEST(check.violations()[0].invariant == "attempts within limits");
  BOOST_TEST(check.violations()[1].invariant == "exactly one accepted result");
  BOOST_TEST(check.violations()[1].step == 6u);
}

BOOST_FIXTURE_TEST_CASE(an_attempt_never_ended_and_a_module_never_finished_are_named, checked_run) {
  feed(event_type::module_started, "a");
  feed(event_type::module_finished, "a", 1, module_status::succeeded);
  feed(event_type::module_started, "c");
  check.finish(report_of(p, module_status::pending));
  std::vector<std::string> seen;
  for (const auto& v : check.violations())
    seen.push_back(v.module + ": " + v.invariant);
  const std::vector<std::string> expected{"b: every module terminal", "c: no attempt lost",
                                          "c: every module terminal", "a: every module terminal",
                                          "b: every module terminal", "c: every module terminal"};
  BOOST_TEST(seen == expected, boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(an_internal_error_is_a_violation_whatever_the_faults, checked_run) {
  event e{};
  e.type = event_type::module_finished;
  e.seq = 4;
  e.module = "c";
  e.index = *p.find("c");
  e.status = module_status::failed;
  e.message = "internal error: waited for a constraint that nothing running could release";
  check.on_event(e);
  BOOST_TEST_REQUIRE(check.violations().size() == 1u);
  BOOST_TEST(check.violations().front().invariant == "no internal error");
  BOOST_TEST(check.violations().front().module == "c");
}

BOOST_FIXTURE_TEST_CASE(a_journaled_success_that_starts_again_is_named, checked_run) {
  feed(event_type::module_started, "a");
  feed(event_type::module_finished, "a", 1, module_status::succeeded);
  check.resume({"a"});  // the master died; a was journaled succeeded
  feed(event_type::module_finished, "a", 0, module_status::cached);
  feed(event_type::module_started, "b");
  BOOST_TEST(check.ok());
  feed(event_type::module_started, "a");
  BOOST_TEST_REQUIRE(check.violations().size() >= 1u);
  BOOST_TEST(check.violations().front().invariant == "journaled success not run again");
}

}  // namespace
