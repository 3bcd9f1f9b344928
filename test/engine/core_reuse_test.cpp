// scheduler_core: reuse and records. A ready module is looked up (check_reuse) before it runs,
// every terminal state is recorded, and with durable journals dependents wait for the record.
#include <drover/detail/scheduler_core.hpp>

#define BOOST_TEST_MODULE core_reuse
#include "core_harness.hpp"

#include <map>

namespace {

using namespace drover::test;
using drover::module_status;
using drover::run_status;
using kind = action::kind;

core_settings checking(std::size_t workers = 2) {
  core_settings s;
  s.local_workers = workers;
  s.local_capacity = workers;
  s.check_reuse = true;
  s.record = true;
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(core_reuse)

BOOST_AUTO_TEST_CASE(a_ready_module_is_looked_up_before_it_runs) {
  drover::pipeline p;
  p.add("a", no_body());
  p.add("b", no_body());
  p.add("c", no_body(), {"a"});
  core_harness h{std::move(p), checking()};
  h.start();
  BOOST_TEST(h.named_by(kind::check_reuse) == (ids{"a", "b"}));
  BOOST_TEST(h.dispatched().empty());
  h.reuse("b", std::nullopt, reuse_source::none);
  BOOST_TEST(h.dispatched() == ids{"b"});
  h.reuse("a", std::nullopt, reuse_source::none);
  BOOST_TEST(h.dispatched() == ids{"a"});
  h.succeed("a");
  BOOST_TEST(h.named_by(kind::check_reuse) == (ids{"a", "b", "c"}));
  BOOST_TEST(h.dispatched().empty());
}

BOOST_AUTO_TEST_CASE(a_journal_value_is_reused_and_its_dependents_run) {
  drover::pipeline p;
  p.add("compile", no_body());
  p.add("test", no_body(), {"compile"});
  core_harness h{std::move(p), checking()};
  h.start();
  h.reuse("compile", json::value{{"binary", "a.out"}}, reuse_source::journal);
  BOOST_TEST(h.status("compile") == module_status::cached);
  BOOST_TEST(h.reason("compile") == "reused from the journal of an earlier run");
  BOOST_TEST(h.value("compile") == (json::value{{"binary", "a.out"}}));
  BOOST_TEST(h.attempts("compile") == 0u);
  BOOST_TEST(h.core().reused_from_journal() == 1u);
  BOOST_TEST(h.core().reused_from_cache() == 0u);
  BOOST_TEST(h.named_by(kind::check_reuse) == (ids{"compile", "test"}));
  h.reuse("test", std::nullopt, reuse_source::none);
  BOOST_TEST(h.dispatched() == ids{"test"});
  h.succeed("test");
  BOOST_TEST(h.result() == run_status::succeeded);
}

BOOST_AUTO_TEST_CASE(a_cache_value_is_reused_with_its_reason) {
  drover::pipeline p;
  p.add("fetch", no_body());
  core_harness h{std::move(p), checking()};
  h.start();
  h.reuse("fetch", json::value(3), reuse_source::cache);
  BOOST_TEST(h.status("fetch") == module_status::cached);
  BOOST_TEST(h.reason("fetch") == "reused from the cache");
  BOOST_TEST(h.value("fetch") == json::value(3));
  BOOST_TEST(h.core().reused_from_cache() == 1u);
  BOOST_TEST(h.dispatched().empty());
  BOOST_TEST(h.result() == run_status::succeeded);
}

BOOST_AUTO_TEST_CASE(a_lookup_error_fails_the_module) {
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  p.add("odd", no_body());
  p.add("after", no_body(), {"odd"});
  core_harness h{std::move(p), checking()};
  h.start();
  h.reuse("odd", std::nullopt, reuse_source::none, "cannot read input src/missing.c");
  BOOST_TEST(h.status("odd") == module_status::failed);
  BOOST_TEST(h.reason("odd") == "cannot read input src/missing.c");
  BOOST_TEST(h.status("after") == module_status::skipped);
  BOOST_TEST(h.dispatched().empty());
  BOOST_TEST(h.result() == run_status::failed);
}

BOOST_AUTO_TEST_CASE(an_answer_for_a_module_not_being_looked_up_is_ignored) {
  drover::pipeline p;
  p.add("a", no_body());
  core_harness h{std::move(p), checking()};
  h.start();
  h.reuse("a", std::nullopt, reuse_source::none);
  h.reuse("a", json::value(1), reuse_source::journal);
  BOOST_TEST(h.status("a") == module_status::pending);
  BOOST_TEST(h.core().reused_from_journal() == 0u);
  BOOST_TEST(h.is_running("a"));
}

BOOST_AUTO_TEST_CASE(a_module_looked_up_when_a_stop_comes_does_not_run) {
  // Both lookups are asked at once; the first fails (fail_fast stops the run), the second
  // finds nothing to reuse. That module must end cancelled, not be handed to a worker.
  drover::pipeline p;
  p.add("odd", no_body());
  p.add("other", no_body());
  core_harness h{std::move(p), checking()};
  h.start();
  h.reuse("odd", std::nullopt, reuse_source::none, "fingerprint failed");
  h.reuse("other", std::nullopt, reuse_source::none);
  BOOST_TEST(h.dispatched().empty());
  BOOST_TEST(h.status("other") == module_status::cancelled);
  BOOST_TEST(h.reason("other") == "cancelled by fail_fast after 'odd' failed");
  BOOST_TEST(h.finished());
}

BOOST_AUTO_TEST_CASE(every_terminal_state_is_recorded_once) {
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  p.add("ok", no_body());
  p.add("bad", no_body());
  p.add("slow", no_body());
  p.add("ignored", no_body()).ignore_failure(true);
  p.add("skipped_by_condition", no_body()).skip_if([] { return std::optional<std::string>("no"); });
  p.add("skipped", no_body(), {"bad"});
  p.add("reused", no_body());
  p.add("stopped", no_body());
  core_harness h{std::move(p), checking(8)};
  h.start();
  h.reuse("reused", json::value(1), reuse_source::cache);
  for (const char* id : {"ok", "bad", "slow", "ignored", "stopped"})
    h.reuse(id, std::nullopt, reuse_source::none);
  h.succeed("ok");
  h.fail("bad");
  h.end("slow", module_status::timed_out);
  h.fail("ignored");
  h.end("stopped", module_status::cancelled);
  BOOST_TEST(h.finished());
  const std::map<std::string, module_status> expected = {
      {"ok", module_status::succeeded},
      {"bad", module_status::failed},
      {"slow", module_status::timed_out},
      {"ignored", module_status::ignored_failure},
      {"skipped_by_condition", module_status::skipped},
      {"skipped", module_status::skipped},
      {"reused", module_status::cached},
      {"stopped", module_status::cancelled}};
  std::map<std::string, int> records;
  for (const auto& id : h.named_by(kind::record))
    ++records[id];
  for (const auto& [id, status] : expected) {
    BOOST_TEST_CONTEXT(id) {
      BOOST_TEST(h.status(id) == status);
      BOOST_TEST(records[id] == 1);
    }
  }
  BOOST_TEST(h.count(kind::record) == expected.size());
  // A record comes after the module's end and before the run's.
  BOOST_TEST(h.actions().back().what == kind::complete);
}

BOOST_AUTO_TEST_CASE(with_durable_records_dependents_wait_for_the_record) {
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  p.add("a", no_body());
  p.add("b", no_body(), {"a"});
  p.add("bad", no_body());
  p.add("after_bad", no_body(), {"bad"});
  p.add("after_after", no_body(), {"after_bad"});
  core_settings s = checking();
  s.check_reuse = false;
  s.wait_for_records = true;
  core_harness h{std::move(p), s};
  h.start();
  BOOST_TEST(h.dispatched() == (ids{"bad", "a"}));
  h.succeed("a");
  BOOST_TEST(h.named_by(kind::record) == ids{"a"});
  BOOST_TEST(h.dispatched().empty());
  h.recorded("a");
  BOOST_TEST(h.dispatched() == ids{"b"});
  // A skip waits for the record of what it skips over too.
  h.fail("bad");
  BOOST_TEST(h.status("after_bad") == module_status::pending);
  h.recorded("bad");
  BOOST_TEST(h.status("after_bad") == module_status::skipped);
  BOOST_TEST(h.status("after_after") == module_status::pending);
  h.recorded("after_bad");
  BOOST_TEST(h.status("after_after") == module_status::skipped);
  // A module without dependents holds nothing: the run ends without its recorded().
  h.succeed("b");
  BOOST_TEST(h.finished());
  BOOST_TEST(h.count(kind::record) == 5u);
  // A late or repeated recorded() changes nothing.
  h.recorded("a");
  BOOST_TEST(h.actions_after_complete() == 0u);
}

BOOST_AUTO_TEST_CASE(without_durable_records_dependents_do_not_wait) {
  drover::pipeline p;
  p.add("a", no_body());
  p.add("b", no_body(), {"a"});
  core_settings s = checking();
  s.check_reuse = false;
  core_harness h{std::move(p), s};
  h.start();
  h.succeed("a");
  BOOST_TEST(h.dispatched() == (ids{"a", "b"}));
  BOOST_TEST(h.named_by(kind::record) == ids{"a"});
}

BOOST_AUTO_TEST_SUITE_END()
