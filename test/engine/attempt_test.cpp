#include <drover/attempt.hpp>

// drover::attempt_runner: one attempt outside a run with a run's rules. What the body sees of
// its context, how it ends (value, failure, timeout, cancellation, abandonment), work
// directories and outputs, and many attempts at once on one or several threads.

#define BOOST_TEST_MODULE attempt
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/parse.hpp>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>

namespace {

using namespace drover::test;
namespace fs = std::filesystem;
using drover::attempt_report;
using drover::attempt_request;
using drover::attempt_runner;
using drover::attempt_settings;
using drover::module_status;

/// Runs one attempt on a fresh io_context of this thread and returns its report; fails (never
/// hangs) after `limit`.
attempt_report run_one(attempt_request request, attempt_settings settings = {},
                       milliseconds limit = 10s,
                       std::function<void(asio::cancellation_signal&)> meanwhile = {}) {
  asio::io_context io;
  attempt_runner runner{io.get_executor(), std::move(settings)};
  std::optional<attempt_report> report;
  asio::cancellation_signal cancel;
  runner.async_run(std::move(request),
                   asio::bind_cancellation_slot(cancel.slot(),
                                                [&](attempt_report r) { report = std::move(r); }));
  if (meanwhile) meanwhile(cancel);
  io.run_for(limit);
  BOOST_REQUIRE_MESSAGE(report.has_value(), "the attempt did not end within the limit");
  return std::move(*report);
}

attempt_request request_for(std::string id, drover::module_body body) {
  attempt_request request;
  request.spec.id = std::move(id);
  request.spec.body = std::move(body);
  return request;
}

asio::awaitable<json::value> describe_context(drover::module_context& ctx) {
  json::object out;
  out["id"] = ctx.id();
  out["attempt"] = ctx.attempt();
  out["worker"] = ctx.worker();
  out["params"] = ctx.params();
  out["target"] = ctx.matrix_target();
  out["os"] = ctx.matrix_value("os");
  out["log_dir"] = ctx.log_dir().string();
  out["build"] = ctx.result("build");
  out["build_status"] = drover::to_string(ctx.status_of("build"));
  out["lint"] = ctx.result("lint");
  out["lint_status"] = drover::to_string(ctx.status_of("lint"));
  co_return out;
}

asio::awaitable<json::value> ask_for_a_stranger(drover::module_context& ctx) {
  co_return ctx.result("stranger");
}

asio::awaitable<json::value> throw_timeout(drover::module_context&) {
  throw drover::timeout_error("the tool gave up after 3 s");
  co_return nullptr;
}

// Waits on `gate`, a timer the test owns, without connecting the wait to the body's
// cancellation: a body that will not stop until the test opens the gate.
asio::awaitable<json::value> ignore_cancellation(drover::module_context&,
                                                 asio::steady_timer* gate) {
  co_await gate->async_wait(
      asio::bind_cancellation_slot(asio::cancellation_slot{}, asio::as_tuple(asio::use_awaitable)));
  co_return "stopped at last";
}

asio::awaitable<json::value> write_outputs(drover::module_context& ctx, bool fail) {
  const fs::path dir = ctx.work_dir();
  fs::create_directories(dir / "dist");
  std::ofstream{dir / "dist" / "app.txt"} << "built\n";
  std::ofstream{dir / "scratch.txt"} << "not an output\n";
  if (fail) throw std::runtime_error("the build broke");
  co_return dir.string();
}

struct temp_workspace {
  fs::path path =
      fs::temp_directory_path() / ("drover-attempt-test-" + std::to_string(::getpid()) + "-" +
                                   std::to_string(steady::now().time_since_epoch().count()));
  temp_workspace() { fs::create_directories(path); }
  ~temp_workspace() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(attempt)

BOOST_AUTO_TEST_CASE(the_body_sees_its_context_and_the_dependencies_given) {
  attempt_settings settings;
  settings.worker_name = "builder-7";
  settings.log_dir = "/tmp/logs";
  attempt_request request = request_for("test[os=linux]", describe_context);
  request.attempt = 3;
  request.spec.params = json::object{{"x", 1}};
  request.spec.instance = drover::matrix_instance{"os=linux", {{"os", "linux"}}};
  request.dependencies.push_back(
      {"build", module_status::succeeded, std::make_shared<const json::value>(42)});
  request.dependencies.push_back({"lint", module_status::cancelled, nullptr});
  const attempt_report r = run_one(std::move(request), settings);
  BOOST_TEST_REQUIRE(r.status == module_status::succeeded, r.error);
  BOOST_TEST(r.value == json::parse(R"({"id":"test[os=linux]","attempt":3,"worker":"builder-7",
      "params":{"x":1},"target":"os=linux","os":"linux","log_dir":"/tmp/logs","build":42,
      "build_status":"succeeded","lint":null,"lint_status":"cancelled"})"));
  BOOST_TEST((r.started_at <= r.finished_at));
}

BOOST_AUTO_TEST_CASE(asking_for_a_result_that_is_not_a_dependency_fails_the_attempt) {
  const attempt_report r = run_one(request_for("lonely", ask_for_a_stranger));
  BOOST_TEST(r.status == module_status::failed);
  BOOST_TEST(mentions(r.error, "'stranger', which is not one of its dependencies"), r.error);
}

BOOST_AUTO_TEST_CASE(a_failure_and_a_timeout_error_end_as_in_a_run) {
  const attempt_report failed = run_one(request_for("f", fail_body("exit code 2")));
  BOOST_TEST(failed.status == module_status::failed);
  BOOST_TEST(failed.error == "exit code 2");
  BOOST_TEST(failed.value.is_null());

  const attempt_report timed_out = run_one(request_for("t", throw_timeout));
  BOOST_TEST(timed_out.status == module_status::timed_out);
  BOOST_TEST(timed_out.error == "the tool gave up after 3 s");

  attempt_request empty;
  empty.spec.id = "no-body";
  const attempt_report no_body = run_one(std::move(empty));
  BOOST_TEST(no_body.status == module_status::failed);
}

// A worker runs attempts for as long as it lives: one that has reported must hold nothing,
// or every attempt leaks its state (the body, the request, the context).
BOOST_AUTO_TEST_CASE(a_reported_attempt_keeps_nothing_alive) {
  for (const bool times_out : {false, true}) {
    auto sentinel = std::make_shared<int>(0);
    const std::weak_ptr<int> watched = sentinel;
    attempt_request request = request_for(
        "kept", [sentinel = std::move(sentinel), times_out](drover::module_context& ctx) {
          const milliseconds wait = times_out ? milliseconds{5s} : milliseconds{0};
          return wait_then_return(ctx, wait, json::value(1), nullptr);
        });
    if (times_out) request.spec.timeout = 20ms;
    const attempt_report r = run_one(std::move(request));
    BOOST_TEST((r.status == (times_out ? module_status::timed_out : module_status::succeeded)));
    BOOST_TEST(watched.expired(), (times_out ? "timed out" : "succeeded")
                                      << ": the attempt's body is still held after its report");
  }
}

BOOST_AUTO_TEST_CASE(the_timeout_cancels_the_body) {
  attempt_request request = request_for("slow", wait_body(5s));
  request.spec.timeout = 50ms;
  const auto started = steady::now();
  const attempt_report r = run_one(std::move(request));
  BOOST_TEST(r.status == module_status::timed_out);
  BOOST_TEST(r.error == "timed out after 50 ms");
  BOOST_TEST(to_ms(steady::now() - started) < 2000ms);
}

BOOST_AUTO_TEST_CASE(a_body_that_ignores_cancellation_is_abandoned_after_the_grace) {
  attempt_settings settings;
  settings.cancel_grace = 100ms;
  asio::io_context io;
  asio::steady_timer gate{io, 10s};
  attempt_request request = request_for(
      "stubborn", [&gate](drover::module_context& ctx) { return ignore_cancellation(ctx, &gate); });
  request.spec.timeout = 30ms;
  attempt_runner runner{io.get_executor(), settings};
  std::optional<attempt_report> report;
  int reports = 0;
  runner.async_run(std::move(request), [&](attempt_report r) {
    report = std::move(r);
    ++reports;
  });
  const auto started = steady::now();
  while (!report && steady::now() - started < 5s)
    io.run_one_for(10ms);
  BOOST_REQUIRE(report.has_value());
  BOOST_TEST(report->status == module_status::timed_out);
  BOOST_TEST(report->error ==
             "timed out after 30 ms; the body ignored cancellation for 100 ms and was abandoned");
  BOOST_TEST(to_ms(steady::now() - started) >= 120ms);
  // The abandoned body still finishes on its own later, without a second report.
  gate.cancel();
  io.run_for(100ms);
  BOOST_TEST(reports == 1);
}

BOOST_AUTO_TEST_CASE(the_callers_cancellation_cancels_the_attempt) {
  const attempt_report r =
      run_one(request_for("long", wait_body(5s)), {}, 10s,
              [](asio::cancellation_signal& s) { s.emit(asio::cancellation_type::terminal); });
  BOOST_TEST(r.status == module_status::cancelled);
  BOOST_TEST(r.error == "cancelled");
}

BOOST_AUTO_TEST_CASE(outputs_are_promoted_only_when_the_attempt_succeeds) {
  temp_workspace ws;
  attempt_settings settings;
  settings.workspace = ws.path;
  for (const bool fail : {true, false}) {
    BOOST_TEST_CONTEXT("the body fails: " << fail) {
      attempt_request request = request_for(
          "package", [fail](drover::module_context& ctx) { return write_outputs(ctx, fail); });
      request.spec.io.ensure().outputs = {"dist/*.txt"};
      const attempt_report r = run_one(std::move(request), settings);
      BOOST_TEST((r.status == (fail ? module_status::failed : module_status::succeeded)));
      BOOST_TEST(fs::exists(ws.path / "dist" / "app.txt") == !fail);
      BOOST_TEST(!fs::exists(ws.path / "scratch.txt"));
      if (!fail) {
        // The work directory was inside the workspace and is gone.
        const fs::path work_dir = r.value.as_string().c_str();
        BOOST_TEST(work_dir.string().rfind(ws.path.string(), 0) == 0u);
        BOOST_TEST(!fs::exists(work_dir));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(outputs_outside_the_work_directory_are_refused) {
  temp_workspace ws;
  attempt_settings settings;
  settings.workspace = ws.path;
  attempt_request request = request_for("escape", value_body(1));
  request.spec.io.ensure().outputs = {"../elsewhere.txt"};
  const attempt_report r = run_one(std::move(request), settings);
  BOOST_TEST(r.status == module_status::failed);
  BOOST_TEST(mentions(r.error, "the attempt cannot run"), r.error);
  BOOST_TEST(mentions(r.error, "'../elsewhere.txt'"), r.error);
}

BOOST_AUTO_TEST_CASE(many_attempts_at_once_each_report_once) {
  for (const std::size_t threads : worker_counts) {
    BOOST_TEST_CONTEXT("threads: " << threads) {
      asio::thread_pool pool{threads};
      attempt_runner runner{pool.get_executor(), {}};
      constexpr int attempts = 300;
      std::atomic<int> reports{0}, succeeded{0};
      std::promise<void> all_done;
      for (int i = 0; i < attempts; ++i) {
        attempt_request request = request_for("m" + std::to_string(i), wait_body(2ms, i));
        if (i % 3 == 0) request.spec.timeout = 1s;
        runner.async_run(std::move(request), [&, i](attempt_report r) {
          if (r.status == module_status::succeeded && r.value == json::value(i)) ++succeeded;
          if (++reports == attempts) all_done.set_value();
        });
      }
      BOOST_TEST_REQUIRE((all_done.get_future().wait_for(20s) == std::future_status::ready));
      pool.join();
      BOOST_TEST(reports.load() == attempts);
      BOOST_TEST(succeeded.load() == attempts);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
