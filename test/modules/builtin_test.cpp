#include <drover/modules/registry.hpp>

#define BOOST_TEST_MODULE builtin
#include "modules_test_support.hpp"

namespace {

using namespace drover::modules_test;
using drover::modules::params_error;

/// The field of the params_error that making `kind` with `params` throws, or "" if none.
std::string params_error_field(std::string_view kind, std::string_view params) {
  try {
    (void)drover::modules::builtin_registry().make(kind, json::parse(params));
  } catch (const params_error& e) {
    return e.field();
  }
  return "";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(builtin)

BOOST_AUTO_TEST_CASE(noop_takes_no_params) {
  BOOST_TEST(params_error_field("noop", "null") == "");
  BOOST_TEST(params_error_field("noop", "{}") == "");
  BOOST_TEST(params_error_field("noop", R"({"ms": 1})") == "params.ms");
  BOOST_TEST(params_error_field("noop", "[1]") == "params");
  BOOST_TEST(params_error_field("noop", "3") == "params");
}

BOOST_AUTO_TEST_CASE(noop_modules_succeed_with_null, *boost::unit_test::timeout(30)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      for (int i = 0; i < 50; ++i) {
        std::vector<std::string> deps;
        if (i >= 10) deps.push_back("n" + std::to_string(i - 10));
        add_kind(p, "n" + std::to_string(i), "noop", i % 2 ? "{}" : "null", deps);
      }
      const auto out = run(std::move(p), with_workers(workers));
      BOOST_TEST(out.report.status == drover::run_status::succeeded);
      BOOST_TEST(out.report.count(drover::module_status::succeeded) == 50u);
      for (const auto& m : out.report.modules)
        BOOST_TEST(m.value.is_null());
    }
  }
}

BOOST_AUTO_TEST_CASE(sleep_params_are_checked) {
  BOOST_TEST(params_error_field("sleep", R"({"ms": 0})") == "");
  BOOST_TEST(params_error_field("sleep", R"({"ms": 10.0})") == "");
  BOOST_TEST(params_error_field("sleep", "null") == "params.ms");
  BOOST_TEST(params_error_field("sleep", "{}") == "params.ms");
  BOOST_TEST(params_error_field("sleep", R"({"ms": -1})") == "params.ms");
  BOOST_TEST(params_error_field("sleep", R"({"ms": 1.5})") == "params.ms");
  BOOST_TEST(params_error_field("sleep", R"({"ms": "10"})") == "params.ms");
  BOOST_TEST(params_error_field("sleep", R"({"ms": 18446744073709551615})") == "params.ms");
  BOOST_TEST(params_error_field("sleep", R"({"ms": 1, "seconds": 2})") == "params.seconds");
  BOOST_TEST(params_error_field("sleep", "[100]") == "params");

  try {
    (void)drover::modules::builtin_registry().make("sleep", json::parse(R"({"ms": -5})"));
    BOOST_FAIL("a negative sleep was accepted");
  } catch (const params_error& e) {
    BOOST_TEST(contains(e.what(), "'ms'"));
    BOOST_TEST(contains(e.what(), "-5"));
  }
}

BOOST_AUTO_TEST_CASE(sleep_waits_at_least_its_time, *boost::unit_test::timeout(20)) {
  drover::pipeline p;
  add_kind(p, "nap", "sleep", R"({"ms": 200})");
  const auto out = run(std::move(p));
  BOOST_TEST(out["nap"].status == drover::module_status::succeeded);
  BOOST_TEST(out["nap"].value.is_null());
  BOOST_TEST(out.elapsed.count() >= 200);
  BOOST_TEST(out.elapsed.count() < 5000);
}

// Sleeps wait on timers, so with enough workers they overlap; with one they cannot.
BOOST_AUTO_TEST_CASE(sleeps_overlap_across_workers, *boost::unit_test::timeout(40)) {
  constexpr int sleeps = 6;
  constexpr auto each = 250ms;
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      for (int i = 0; i < sleeps; ++i)
        add_kind(p, "s" + std::to_string(i), "sleep", R"({"ms": 250})");
      const auto out = run(std::move(p), with_workers(workers));
      BOOST_TEST(out.report.status == drover::run_status::succeeded);
      const auto rounds = (sleeps + static_cast<int>(workers) - 1) / static_cast<int>(workers);
      BOOST_TEST(out.elapsed.count() >= (each * rounds).count());
      if (workers >= static_cast<std::size_t>(sleeps))
        BOOST_TEST(out.elapsed.count() < (each * sleeps).count());
    }
  }
}

BOOST_AUTO_TEST_CASE(sleep_stops_at_an_engine_timeout, *boost::unit_test::timeout(20)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      add_kind(p, "long", "sleep", R"({"ms": 30000})").timeout(100ms);
      const auto out = run(std::move(p), with_workers(workers));
      BOOST_TEST(out["long"].status == drover::module_status::timed_out);
      BOOST_TEST(!contains(out["long"].reason, "abandoned"));
      BOOST_TEST(out.elapsed.count() < 5000);
    }
  }
}

BOOST_AUTO_TEST_CASE(sleep_stops_when_the_run_is_cancelled, *boost::unit_test::timeout(20)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      add_kind(p, "long", "sleep", R"({"ms": 30000})");
      add_kind(p, "longer", "sleep", R"({"ms": 60000})");
      const auto start = steady::now();
      const auto out = run(std::move(p), with_workers(workers), drover::modules::builtin_registry(),
                           [&] { return steady::now() - start > 100ms; });
      BOOST_TEST(out.report.status == drover::run_status::cancelled);
      BOOST_TEST(out["long"].status == drover::module_status::cancelled);
      BOOST_TEST(!contains(out["long"].reason, "abandoned"));
      BOOST_TEST(out.elapsed.count() < 5000);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
