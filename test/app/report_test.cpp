#include "report.hpp"

#define BOOST_TEST_MODULE report
#include <boost/test/unit_test.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <sstream>

namespace {

using namespace drover;
using namespace drover::app;
using std::chrono::milliseconds;
namespace json = boost::json;

// 2026-11-22T10:00:00.123Z
const wall_clock::time_point t0 =
    wall_clock::time_point{std::chrono::sys_days{std::chrono::year{2026} / 11 / 22}} +
    std::chrono::hours{10} + milliseconds{123};

run_report sample_report() {
  run_report r;
  r.pipeline = "demo";
  r.status = run_status::failed;
  r.started_at = t0;
  r.finished_at = t0 + milliseconds{1500};
  r.workers = {"local-0", "local-1"};

  module_result fetch;
  fetch.id = "fetch";
  fetch.status = module_status::succeeded;
  fetch.value = json::parse(R"({"exit_code": 0})");
  fetch.attempts = 1;
  fetch.worker = 0;
  fetch.started_at = t0;
  fetch.finished_at = t0 + milliseconds{250};

  module_result build;
  build.id = "build";
  build.status = module_status::failed;
  build.attempts = 2;
  build.worker = 1;
  build.started_at = t0 + milliseconds{250};
  build.finished_at = t0 + milliseconds{1500};
  build.reason = "exit code 2\nmake: *** [all] Error 1";

  module_result test;
  test.id = "test";
  test.status = module_status::skipped;
  test.finished_at = t0 + milliseconds{1500};
  test.reason = "dependency build failed";

  r.modules = {fetch, build, test};
  r.counts[static_cast<std::size_t>(module_status::succeeded)] = 1;
  r.counts[static_cast<std::size_t>(module_status::failed)] = 1;
  r.counts[static_cast<std::size_t>(module_status::skipped)] = 1;
  return r;
}

event make_event(event_type type, std::uint64_t seq, std::string_view module = {}) {
  event e{};
  e.type = type;
  e.seq = seq;
  e.ts = t0;
  e.module = module;
  return e;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(report)

BOOST_AUTO_TEST_CASE(timestamps_are_rfc3339_utc_with_milliseconds) {
  BOOST_TEST(format_timestamp(t0) == "2026-11-22T10:00:00.123Z");
  BOOST_TEST(format_timestamp(t0 + milliseconds{877}) == "2026-11-22T10:00:01.000Z");
  BOOST_TEST(format_timestamp(wall_clock::time_point{}) == "1970-01-01T00:00:00.000Z");
}

BOOST_AUTO_TEST_CASE(durations_for_people) {
  BOOST_TEST(format_duration(milliseconds{0}) == "0ms");
  BOOST_TEST(format_duration(milliseconds{340}) == "340ms");
  BOOST_TEST(format_duration(milliseconds{1260}) == "1.2s");
  BOOST_TEST(format_duration(milliseconds{59'999}) == "59.9s");
  BOOST_TEST(format_duration(milliseconds{125'000}) == "2m05s");
  BOOST_TEST(format_duration(milliseconds{3'720'000}) == "1h02m");
}

BOOST_AUTO_TEST_CASE(report_json_shape) {
  const auto expected = json::parse(R"({
    "pipeline": "demo",
    "status": "failed",
    "started_at": "2026-11-22T10:00:00.123Z",
    "finished_at": "2026-11-22T10:00:01.623Z",
    "duration_ms": 1500,
    "counts": {"pending": 0, "succeeded": 1, "failed": 1, "timed_out": 0, "cancelled": 0,
               "skipped": 1, "ignored_failure": 0, "cached": 0},
    "reused": {"journal": 0, "cache": 0},
    "modules": [
      {"id": "fetch", "status": "succeeded", "attempts": 1, "worker": "local-0",
       "started_at": "2026-11-22T10:00:00.123Z", "finished_at": "2026-11-22T10:00:00.373Z",
       "duration_ms": 250, "reason": null, "value": {"exit_code": 0}},
      {"id": "build", "status": "failed", "attempts": 2, "worker": "local-1",
       "started_at": "2026-11-22T10:00:00.373Z", "finished_at": "2026-11-22T10:00:01.623Z",
       "duration_ms": 1250, "reason": "exit code 2\nmake: *** [all] Error 1", "value": null},
      {"id": "test", "status": "skipped", "attempts": 0, "worker": null,
       "started_at": null, "finished_at": "2026-11-22T10:00:01.623Z",
       "duration_ms": null, "reason": "dependency build failed", "value": null}
    ]
  })");
  const json::value actual = report_to_json(sample_report());
  BOOST_TEST(actual == expected, "got " << json::serialize(actual));
}

BOOST_AUTO_TEST_CASE(event_json_has_only_the_fields_that_apply) {
  auto started = make_event(event_type::module_started, 3, "build");
  started.index = 1;
  started.attempt = 1;
  started.worker = "local-0";
  BOOST_TEST(json::value(event_to_json(started)) ==
             json::parse(R"({"ts": "2026-11-22T10:00:00.123Z", "seq": 3, "type": "module_started",
                             "module": "build", "attempt": 1, "worker": "local-0"})"));

  auto retrying = make_event(event_type::module_retrying, 4, "build");
  retrying.attempt = 1;
  retrying.worker = "local-0";
  retrying.message = "exit code 2";
  retrying.delay = milliseconds{200};
  BOOST_TEST(json::value(event_to_json(retrying)) ==
             json::parse(R"({"ts": "2026-11-22T10:00:00.123Z", "seq": 4, "type": "module_retrying",
                             "module": "build", "attempt": 1, "worker": "local-0",
                             "message": "exit code 2", "delay_ms": 200})"));

  auto skipped = make_event(event_type::module_finished, 5, "test");
  skipped.status = module_status::skipped;
  skipped.message = "dependency build failed";
  BOOST_TEST(json::value(event_to_json(skipped)) ==
             json::parse(R"({"ts": "2026-11-22T10:00:00.123Z", "seq": 5, "type": "module_finished",
                             "module": "test", "status": "skipped",
                             "message": "dependency build failed"})"));

  const auto ready = make_event(event_type::module_ready, 1, "fetch");
  BOOST_TEST(json::value(event_to_json(ready)) ==
             json::parse(R"({"ts": "2026-11-22T10:00:00.123Z", "seq": 1, "type": "module_ready",
                             "module": "fetch"})"));

  auto run_started = make_event(event_type::run_started, 0);
  run_started.total = 3;
  BOOST_TEST(json::value(event_to_json(run_started)) ==
             json::parse(R"({"ts": "2026-11-22T10:00:00.123Z", "seq": 0, "type": "run_started",
                             "total": 3})"));
}

BOOST_AUTO_TEST_CASE(event_lines_are_one_json_object_each) {
  std::ostringstream out;
  write_event_line(out, make_event(event_type::run_started, 0));
  write_event_line(out, make_event(event_type::run_finished, 1));
  std::istringstream lines{out.str()};
  std::string line;
  std::size_t count = 0;
  while (std::getline(lines, line)) {
    BOOST_TEST(json::parse(line).as_object().at("seq").to_number<std::size_t>() == count);
    ++count;
  }
  BOOST_TEST(count == 2u);
}

BOOST_AUTO_TEST_CASE(summary_table_failures_and_counts) {
  std::ostringstream out;
  print_summary(out, sample_report());
  const std::string expected =
      "module  status     duration  attempts  worker\n"
      "fetch   succeeded  250ms     1         local-0\n"
      "build   failed     1.2s      2         local-1\n"
      "test    skipped    -         0         -\n"
      "\n"
      "Failed modules\n"
      "  build (failed after 2 attempts)\n"
      "    exit code 2\n"
      "    make: *** [all] Error 1\n"
      "\n"
      "1 succeeded, 1 failed, 1 skipped in 1.5s\n";
  BOOST_TEST(out.str() == expected);
}

BOOST_AUTO_TEST_CASE(summary_without_failures_has_no_failed_section) {
  auto r = sample_report();
  r.modules.resize(1);
  r.status = run_status::succeeded;
  r.counts = {};
  r.counts[static_cast<std::size_t>(module_status::succeeded)] = 1;
  std::ostringstream out;
  print_summary(out, r);
  BOOST_TEST(out.str().find("Failed modules") == std::string::npos);
  BOOST_TEST(out.str().ends_with("\n1 succeeded, 0 failed in 1.5s\n"), out.str());
}

BOOST_AUTO_TEST_SUITE_END()
