#include <drover/engine.hpp>

#define BOOST_TEST_MODULE failure
#include "test_support.hpp"

#include <atomic>

namespace {

using namespace drover::test;
using drover::module_status;
using drover::run_status;

/// An always_run body that reports what it saw of dependency `dep`.
drover::module_body observe(std::string dep) {
  return coroutine_body([dep](drover::module_context& ctx) -> asio::awaitable<json::value> {
    json::object seen;
    seen["status"] = std::string{drover::to_string(ctx.status_of(dep))};
    seen["value_is_null"] = ctx.result(dep).is_null();
    co_return seen;
  });
}

json::value observed(module_status status) {
  return json::value{{"status", std::string{drover::to_string(status)}}, {"value_is_null", true}};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(failure)

BOOST_AUTO_TEST_CASE(status_names_and_predicates) {
  BOOST_TEST(drover::to_string(module_status::pending) == "pending");
  BOOST_TEST(drover::to_string(module_status::succeeded) == "succeeded");
  BOOST_TEST(drover::to_string(module_status::failed) == "failed");
  BOOST_TEST(drover::to_string(module_status::timed_out) == "timed_out");
  BOOST_TEST(drover::to_string(module_status::cancelled) == "cancelled");
  BOOST_TEST(drover::to_string(module_status::skipped) == "skipped");
  BOOST_TEST(drover::to_string(module_status::ignored_failure) == "ignored_failure");
  BOOST_TEST(drover::to_string(run_status::succeeded) == "succeeded");
  BOOST_TEST(drover::to_string(run_status::failed) == "failed");
  BOOST_TEST(drover::to_string(run_status::cancelled) == "cancelled");
  BOOST_TEST(drover::to_string(run_status::invalid) == "invalid");
  BOOST_TEST(drover::lets_dependents_run(module_status::ignored_failure));
  BOOST_TEST(!drover::lets_dependents_run(module_status::skipped));
  BOOST_TEST(drover::is_failure(module_status::timed_out));
  BOOST_TEST(!drover::is_failure(module_status::ignored_failure));
}

BOOST_AUTO_TEST_CASE(failed_module_skips_its_dependents_transitively,
                     *boost::unit_test::timeout(30)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      probe bodies;
      drover::pipeline p;
      p.mode = drover::execution_mode::keep_going;
      p.add("broken", fail_body("compiler crashed", 5ms, &bodies));
      p.add("child", value_body(1, &bodies), {"broken"});
      p.add("grandchild", value_body(2, &bodies), {"child"});
      p.add("mixed", value_body(3, &bodies), {"grandchild", "fine"});
      p.add("fine", wait_body(20ms, 4, &bodies));
      auto run = run_with_workers(std::move(p), workers);
      const auto& r = run.report;

      BOOST_TEST(r.status == run_status::failed);
      BOOST_TEST(result_of(r, "broken").status == module_status::failed);
      BOOST_TEST(result_of(r, "fine").status == module_status::succeeded);
      const auto& child = result_of(r, "child");
      BOOST_TEST(child.status == module_status::skipped);
      BOOST_TEST(mentions(child.reason, "dependency broken failed"), child.reason);
      for (const char* id : {"grandchild", "mixed"}) {
        const auto& m = result_of(r, id);
        BOOST_TEST_CONTEXT("module " << id) {
          BOOST_TEST(m.status == module_status::skipped);
          BOOST_TEST(mentions(m.reason, "dependency"), m.reason);
          BOOST_TEST(m.attempts == 0u);
          BOOST_TEST(m.value.is_null());
        }
      }
      for (const char* id : {"child", "grandchild", "mixed"}) {
        BOOST_TEST(bodies.begins(id) == 0u, id << " ran");
      }
      BOOST_TEST(r.count(module_status::skipped) == 3u);
    }
  }
}

BOOST_AUTO_TEST_CASE(skip_condition_skips_the_module_and_its_dependents,
                     *boost::unit_test::timeout(30)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      probe bodies;
      drover::pipeline p;
      p.add("deploy", value_body(1, &bodies)).skip_if([] {
        return std::optional<std::string>{"not on fridays"};
      });
      p.add("announce", value_body(2, &bodies), {"deploy"});
      p.add("test", value_body(3, &bodies)).skip_if([] { return std::optional<std::string>{}; });
      auto run = run_with_workers(std::move(p), workers);
      const auto& r = run.report;

      const auto& deploy = result_of(r, "deploy");
      BOOST_TEST(deploy.status == module_status::skipped);
      BOOST_TEST(mentions(deploy.reason, "not on fridays"), deploy.reason);
      BOOST_TEST(deploy.attempts == 0u);
      const auto& announce = result_of(r, "announce");
      BOOST_TEST(announce.status == module_status::skipped);
      BOOST_TEST(!announce.reason.empty());
      BOOST_TEST(result_of(r, "test").status == module_status::succeeded);
      BOOST_TEST(bodies.begins("deploy") == 0u);
      BOOST_TEST(bodies.begins("announce") == 0u);
      // Nothing failed: skipping by a condition is a success for the run.
      BOOST_TEST(r.status == run_status::succeeded);
    }
  }
}

BOOST_AUTO_TEST_CASE(skip_condition_that_throws_fails_the_module, *boost::unit_test::timeout(30)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      probe bodies;
      drover::pipeline p;
      p.mode = drover::execution_mode::keep_going;
      p.add("probe", value_body(1, &bodies)).skip_if([]() -> std::optional<std::string> {
        throw std::runtime_error("cannot read /etc/ci-flags");
      });
      p.add("after", value_body(2, &bodies), {"probe"});
      p.add("other", value_body(3, &bodies));
      auto run = run_with_workers(std::move(p), workers);
      const auto& r = run.report;

      const auto& probe_result = result_of(r, "probe");
      BOOST_TEST(probe_result.status == module_status::failed);
      BOOST_TEST(mentions(probe_result.reason, "cannot read /etc/ci-flags"), probe_result.reason);
      BOOST_TEST(bodies.begins("probe") == 0u);
      BOOST_TEST(result_of(r, "after").status == module_status::skipped);
      BOOST_TEST(mentions(result_of(r, "after").reason, "dependency probe failed"));
      BOOST_TEST(result_of(r, "other").status == module_status::succeeded);
      BOOST_TEST(r.status == run_status::failed);
    }
  }
}

BOOST_AUTO_TEST_CASE(skip_condition_is_evaluated_once_dependencies_are_done,
                     *boost::unit_test::timeout(20)) {
  // The condition depends on state the dependency's body sets, so evaluating it up front
  // would run the module.
  auto flag = std::make_shared<std::atomic<bool>>(false);
  drover::pipeline p;
  p.add("probe_disk",
        coroutine_body([flag](drover::module_context&) -> asio::awaitable<json::value> {
          co_await wait_for(5ms);
          flag->store(true);
          co_return true;
        }));
  p.add("cleanup", value_body(), {"probe_disk"}).skip_if([flag]() -> std::optional<std::string> {
    if (flag->load()) return "disk already clean";
    return std::nullopt;
  });
  auto run = run_with_workers(std::move(p), 2);
  const auto& cleanup = result_of(run.report, "cleanup");
  BOOST_TEST(cleanup.status == module_status::skipped);
  BOOST_TEST(mentions(cleanup.reason, "disk already clean"), cleanup.reason);
}

BOOST_AUTO_TEST_CASE(always_run_module_runs_after_a_failed_dependency,
                     *boost::unit_test::timeout(30)) {
  for (auto mode : {drover::execution_mode::fail_fast, drover::execution_mode::keep_going}) {
    for (std::size_t workers : worker_counts) {
      BOOST_TEST_CONTEXT("workers " << workers << ", keep_going "
                                    << (mode == drover::execution_mode::keep_going)) {
        drover::pipeline p;
        p.mode = mode;
        p.add("build", fail_body("link error", 5ms));
        p.add("cleanup", observe("build"), {"build"}).always_run(true);
        p.add("package", value_body(), {"build"});
        auto run = run_with_workers(std::move(p), workers);
        const auto& r = run.report;

        BOOST_TEST(r.status == run_status::failed);
        const auto& cleanup = result_of(r, "cleanup");
        BOOST_TEST(cleanup.status == module_status::succeeded, cleanup.reason);
        BOOST_TEST(cleanup.value == observed(module_status::failed),
                   json::serialize(cleanup.value));
        BOOST_TEST(result_of(r, "package").status == module_status::skipped);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(ignored_failure_lets_dependents_run, *boost::unit_test::timeout(30)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      p.add("lint", fail_body("style nits", 5ms)).ignore_failure(true);
      p.add("report", observe("lint"), {"lint"});
      // Runs alongside the ignored failure: fail_fast must not cancel it.
      p.add("slow", wait_body(60ms, "done"));
      auto run = run_with_workers(std::move(p), workers);
      const auto& r = run.report;

      const auto& lint = result_of(r, "lint");
      BOOST_TEST(lint.status == module_status::ignored_failure);
      BOOST_TEST(mentions(lint.reason, "style nits"), lint.reason);
      const auto& report = result_of(r, "report");
      BOOST_TEST(report.status == module_status::succeeded);
      BOOST_TEST(report.value == observed(module_status::ignored_failure),
                 json::serialize(report.value));
      BOOST_TEST(result_of(r, "slow").status == module_status::succeeded);
      BOOST_TEST(r.count(module_status::ignored_failure) == 1u);
      BOOST_TEST(r.status == run_status::succeeded);
    }
  }
}

BOOST_AUTO_TEST_CASE(fail_fast_cancels_the_rest, *boost::unit_test::timeout(40)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      probe bodies;
      drover::pipeline p;
      p.add("broken", fail_body("segfault", 100ms, &bodies)).priority(10);
      p.add("long", wait_body(5s, nullptr, &bodies)).priority(5);
      p.add("after_long", value_body(nullptr, &bodies), {"long"});
      p.add("after_broken", value_body(nullptr, &bodies), {"broken"});
      p.add("teardown", observe("long"), {"long"}).always_run(true);
      auto run = run_with_workers(std::move(p), workers);
      const auto& r = run.report;

      BOOST_TEST(r.status == run_status::failed);
      BOOST_TEST(run.elapsed.count() < 3000);
      BOOST_TEST(result_of(r, "broken").status == module_status::failed);

      const auto& long_module = result_of(r, "long");
      BOOST_TEST(long_module.status == module_status::cancelled);
      BOOST_TEST(!long_module.reason.empty());
      // With two or more workers it was running when the failure came; with one it never began.
      BOOST_TEST(long_module.attempts == (workers >= 2 ? 1u : 0u));
      BOOST_TEST(bodies.begins("long") == (workers >= 2 ? 1u : 0u));
      BOOST_TEST(long_module.value.is_null());

      const auto& after_long = result_of(r, "after_long");
      BOOST_TEST(after_long.status == module_status::cancelled);
      BOOST_TEST(after_long.attempts == 0u);
      BOOST_TEST(bodies.begins("after_long") == 0u);

      const auto& after_broken = result_of(r, "after_broken");
      BOOST_TEST(after_broken.status == module_status::skipped);
      BOOST_TEST(mentions(after_broken.reason, "dependency broken failed"), after_broken.reason);

      const auto& teardown = result_of(r, "teardown");
      BOOST_TEST(teardown.status == module_status::succeeded, teardown.reason);
      BOOST_TEST(teardown.value == observed(module_status::cancelled),
                 json::serialize(teardown.value));
    }
  }
}

BOOST_AUTO_TEST_CASE(keep_going_finishes_independent_branches, *boost::unit_test::timeout(40)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      p.mode = drover::execution_mode::keep_going;
      p.add("broken", fail_body("out of memory", 10ms)).priority(10);
      p.add("b1", wait_body(30ms, 1));
      p.add("b2", wait_body(30ms, 2), {"b1"});
      p.add("b3", wait_body(1ms, 3), {"b2"});
      p.add("child", value_body(), {"broken"});
      p.add("grandchild", value_body(), {"child"});
      auto run = run_with_workers(std::move(p), workers);
      const auto& r = run.report;

      BOOST_TEST(r.status == run_status::failed);
      BOOST_TEST(result_of(r, "broken").status == module_status::failed);
      for (const char* id : {"b1", "b2", "b3"}) {
        BOOST_TEST(result_of(r, id).status == module_status::succeeded, id);
      }
      BOOST_TEST(result_of(r, "b3").value == json::value(3));
      BOOST_TEST(result_of(r, "child").status == module_status::skipped);
      BOOST_TEST(result_of(r, "grandchild").status == module_status::skipped);
      BOOST_TEST(r.count(module_status::cancelled) == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(thrown_exception_message_is_the_reason, *boost::unit_test::timeout(20)) {
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  p.add("disk", fail_body("disk full on /var/tmp"));
  p.add("odd", coroutine_body([](drover::module_context&) -> asio::awaitable<json::value> {
          co_await wait_for(1ms);
          throw 42;
        }));
  p.add("logic", coroutine_body([](drover::module_context&) -> asio::awaitable<json::value> {
          throw std::logic_error("invariant broken in logic");
          co_return nullptr;
        }));
  auto run = run_with_workers(std::move(p), 2);
  const auto& disk = result_of(run.report, "disk");
  BOOST_TEST(disk.status == module_status::failed);
  BOOST_TEST(mentions(disk.reason, "disk full on /var/tmp"), disk.reason);
  BOOST_TEST(disk.attempts == 1u);
  const auto& odd = result_of(run.report, "odd");
  BOOST_TEST(odd.status == module_status::failed);
  BOOST_TEST(!odd.reason.empty());
  const auto& logic = result_of(run.report, "logic");
  BOOST_TEST(logic.status == module_status::failed);
  BOOST_TEST(mentions(logic.reason, "invariant broken in logic"), logic.reason);
}

BOOST_AUTO_TEST_CASE(body_that_throws_before_its_first_await_fails,
                     *boost::unit_test::timeout(20)) {
  // A body whose std::function throws instead of returning a coroutine.
  drover::pipeline p;
  p.add("eager", [](drover::module_context&) -> asio::awaitable<json::value> {
    throw std::runtime_error("refused before starting");
  });
  p.add("after", value_body(), {"eager"});
  auto run = run_with_workers(std::move(p), 1);
  const auto& eager = result_of(run.report, "eager");
  BOOST_TEST(eager.status == module_status::failed);
  BOOST_TEST(mentions(eager.reason, "refused before starting"), eager.reason);
  BOOST_TEST(result_of(run.report, "after").status == module_status::skipped);
  BOOST_TEST(run.report.status == run_status::failed);
}

BOOST_AUTO_TEST_SUITE_END()
