#include <drover/engine.hpp>

#define BOOST_TEST_MODULE engine
#include "test_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <set>

namespace {

using namespace drover::test;

/// a -> b, where b returns a's value plus one.
drover::pipeline two_step(std::string name, probe* p = nullptr) {
  drover::pipeline pl;
  pl.name = std::move(name);
  pl.add("a", wait_body(5ms, 41, p));
  pl.add("b", coroutine_body([p](drover::module_context& ctx) -> asio::awaitable<json::value> {
           probe_scope scope{p, ctx};
           co_return ctx.result<int>("a") + 1;
         }),
         {"a"});
  return pl;
}

void expect_two_step_succeeded(const drover::run_report& report) {
  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_REQUIRE(report.modules.size() == 2u);
  BOOST_TEST(result_of(report, "b").status == drover::module_status::succeeded);
  BOOST_TEST(result_of(report, "b").value == json::value(42));
}

asio::awaitable<void> run_and_store(drover::engine& engine, drover::pipeline p,
                                    std::optional<drover::run_report>* out) {
  *out = co_await engine.async_run(std::move(p), asio::use_awaitable);
}

/// Thread ids seen by bodies, and the thread count of the process while they ran.
struct thread_witness {
  std::mutex mutex;
  std::set<std::thread::id> body_threads;
  int max_process_threads = 0;
};

asio::awaitable<json::value> witness_threads(drover::module_context& ctx, thread_witness* w) {
  {
    std::lock_guard lock{w->mutex};
    w->body_threads.insert(std::this_thread::get_id());
    w->max_process_threads = std::max(w->max_process_threads, thread_count());
  }
  co_await wait_for(10ms);
  {
    std::lock_guard lock{w->mutex};
    w->body_threads.insert(std::this_thread::get_id());
  }
  co_return std::string{ctx.id()};
}

drover::pipeline witnessed(thread_witness* w, int modules) {
  drover::pipeline p;
  for (int i = 0; i < modules; ++i) {
    p.add("m" + std::to_string(i),
          [w](drover::module_context& ctx) { return witness_threads(ctx, w); });
  }
  return p;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(engine)

BOOST_AUTO_TEST_CASE(completes_a_plain_callback, *boost::unit_test::timeout(20)) {
  asio::io_context io;
  drover::engine engine{io.get_executor()};
  int calls = 0;
  std::optional<drover::run_report> report;
  engine.async_run(two_step("callback"), [&](drover::run_report r) {
    ++calls;
    report = std::move(r);
  });
  io.run();
  BOOST_TEST(calls == 1);
  BOOST_REQUIRE(report.has_value());
  BOOST_TEST(report->pipeline == "callback");
  expect_two_step_succeeded(*report);
}

BOOST_AUTO_TEST_CASE(completes_a_future, *boost::unit_test::timeout(20)) {
  asio::io_context io;
  drover::engine engine{io.get_executor()};
  auto guard = asio::make_work_guard(io);
  std::thread runner{[&io] { io.run(); }};
  std::future<drover::run_report> future = engine.async_run(two_step("future"), asio::use_future);
  auto ready = future.wait_for(10s);
  guard.reset();
  if (ready != std::future_status::ready) io.stop();
  runner.join();
  BOOST_REQUIRE(ready == std::future_status::ready);
  auto report = future.get();
  BOOST_TEST(report.pipeline == "future");
  expect_two_step_succeeded(report);
}

BOOST_AUTO_TEST_CASE(completes_an_awaitable, *boost::unit_test::timeout(20)) {
  asio::io_context io;
  drover::engine engine{io.get_executor()};
  std::optional<drover::run_report> report;
  asio::co_spawn(io, run_and_store(engine, two_step("awaitable"), &report), asio::detached);
  io.run();
  BOOST_REQUIRE(report.has_value());
  BOOST_TEST(report->pipeline == "awaitable");
  expect_two_step_succeeded(*report);
}

BOOST_AUTO_TEST_CASE(deferred_run_starts_only_when_invoked, *boost::unit_test::timeout(20)) {
  asio::io_context io;
  drover::engine engine{io.get_executor()};
  probe bodies;
  auto operation = engine.async_run(two_step("deferred", &bodies), asio::deferred);
  io.poll();
  BOOST_TEST(bodies.entries().empty());
  io.restart();

  std::optional<drover::run_report> report;
  std::move(operation)([&](drover::run_report r) { report = std::move(r); });
  io.run();
  BOOST_REQUIRE(report.has_value());
  expect_two_step_succeeded(*report);
  BOOST_TEST(bodies.begins("a") == 1u);
  BOOST_TEST(bodies.begins("b") == 1u);
}

BOOST_AUTO_TEST_CASE(runs_several_pipelines_at_once, *boost::unit_test::timeout(30)) {
  asio::io_context io;
  drover::engine engine{io.get_executor()};
  probe bodies;
  constexpr int runs = 4;
  std::vector<std::optional<drover::run_report>> reports(runs);
  for (int i = 0; i < runs; ++i) {
    drover::pipeline p;
    p.name = "run-" + std::to_string(i);
    p.add("first", wait_body(100ms, i, &bodies));
    p.add("second", wait_body(20ms, i * 10, &bodies), {"first"});
    engine.async_run(std::move(p),
                     [&reports, i](drover::run_report r) { reports[i] = std::move(r); });
  }
  io.run();

  for (int i = 0; i < runs; ++i) {
    BOOST_TEST_CONTEXT("run " << i) {
      BOOST_REQUIRE(reports[i].has_value());
      BOOST_TEST(reports[i]->pipeline == "run-" + std::to_string(i));
      BOOST_TEST(reports[i]->status == drover::run_status::succeeded);
      BOOST_TEST(result_of(*reports[i], "second").value == json::value(i * 10));
    }
  }
  // The runs overlapped rather than queueing behind each other.
  BOOST_TEST(bodies.max_running() >= 2);
}

BOOST_AUTO_TEST_CASE(engines_on_separate_threads_share_nothing, *boost::unit_test::timeout(30)) {
  constexpr int threads = 3;
  std::vector<std::optional<drover::run_report>> reports(threads);
  std::vector<std::thread> runners;
  for (int t = 0; t < threads; ++t) {
    runners.emplace_back([&reports, t] {
      asio::io_context io;
      drover::engine engine{io.get_executor()};
      drover::pipeline p;
      p.name = "thread-" + std::to_string(t);
      for (int i = 0; i < 50; ++i) {
        std::vector<std::string> deps;
        if (i > 0) deps.push_back("m" + std::to_string(i - 1));
        p.add("m" + std::to_string(i), wait_body(0ms, t * 100 + i), deps);
      }
      drover::run_options options;
      options.workers = 2;
      engine.async_run(std::move(p), options,
                       [&reports, t](drover::run_report r) { reports[t] = std::move(r); });
      io.run();
    });
  }
  for (auto& runner : runners)
    runner.join();
  for (int t = 0; t < threads; ++t) {
    BOOST_TEST_CONTEXT("thread " << t) {
      BOOST_REQUIRE(reports[t].has_value());
      BOOST_TEST(reports[t]->pipeline == "thread-" + std::to_string(t));
      BOOST_TEST(reports[t]->status == drover::run_status::succeeded);
      BOOST_TEST(result_of(*reports[t], "m49").value == json::value(t * 100 + 49));
    }
  }
}

BOOST_AUTO_TEST_CASE(worker_pool_runs_bodies_off_the_callers_thread,
                     *boost::unit_test::timeout(30)) {
  asio::io_context io;
  drover::engine engine{io.get_executor(), drover::engine_options{2}};
  thread_witness witness;
  std::optional<drover::run_report> report;
  std::thread::id completion_thread;
  drover::run_options options;
  options.workers = 2;
  engine.async_run(witnessed(&witness, 6), options, [&](drover::run_report r) {
    completion_thread = std::this_thread::get_id();
    report = std::move(r);
  });
  io.run();
  BOOST_REQUIRE(report.has_value());
  BOOST_TEST(report->status == drover::run_status::succeeded);
  BOOST_TEST(report->count(drover::module_status::succeeded) == 6u);
  BOOST_TEST((completion_thread == std::this_thread::get_id()));
  BOOST_TEST(!witness.body_threads.empty());
  BOOST_TEST(witness.body_threads.count(std::this_thread::get_id()) == 0u);
}

BOOST_AUTO_TEST_CASE(without_a_pool_bodies_run_on_the_io_thread_and_no_thread_starts,
                     *boost::unit_test::timeout(30)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      const int threads_before = thread_count();
      asio::io_context io;
      drover::engine engine{io.get_executor(), drover::engine_options{0}};
      thread_witness witness;
      std::optional<drover::run_report> report;
      std::thread::id completion_thread;
      drover::run_options options;
      options.workers = workers;
      engine.async_run(witnessed(&witness, 6), options, [&](drover::run_report r) {
        completion_thread = std::this_thread::get_id();
        report = std::move(r);
      });
      io.run();
      BOOST_REQUIRE(report.has_value());
      BOOST_TEST(report->status == drover::run_status::succeeded);
      BOOST_TEST((completion_thread == std::this_thread::get_id()));
      BOOST_TEST(witness.body_threads.size() == 1u);
      BOOST_TEST(witness.body_threads.count(std::this_thread::get_id()) == 1u);
      BOOST_TEST(witness.max_process_threads == threads_before);
    }
  }
}

BOOST_AUTO_TEST_CASE(invalid_pipeline_completes_with_problems_and_runs_nothing,
                     *boost::unit_test::timeout(20)) {
  probe bodies;
  drover::pipeline p;
  p.add("a", value_body(1, &bodies));
  p.add("a", value_body(2, &bodies));
  p.add("b", value_body(3, &bodies), {"nowhere"});
  auto run = run_pipeline(std::move(p));
  BOOST_TEST(run.report.status == drover::run_status::invalid);
  BOOST_TEST(run.report.problems.size() >= 2u);
  BOOST_TEST(bodies.entries().empty());
  BOOST_TEST(run.report.count(drover::module_status::succeeded) == 0u);
}

BOOST_AUTO_TEST_CASE(empty_pipeline_succeeds, *boost::unit_test::timeout(20)) {
  drover::pipeline p;
  p.name = "nothing";
  auto run = run_pipeline(std::move(p));
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
  BOOST_TEST(run.report.pipeline == "nothing");
  BOOST_TEST(run.report.modules.empty());
  BOOST_TEST(run.report.problems.empty());
  for (std::size_t c : run.report.counts)
    BOOST_TEST(c == 0u);
}

BOOST_AUTO_TEST_CASE(cancelling_an_awaiting_coroutine_cancels_the_run,
                     *boost::unit_test::timeout(20)) {
  asio::io_context io;
  drover::engine engine{io.get_executor()};
  drover::pipeline p;
  p.add("forever", wait_body(10s));
  std::optional<drover::run_report> report;
  asio::cancellation_signal cancel;
  asio::co_spawn(io, run_and_store(engine, std::move(p), &report),
                 asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  asio::steady_timer trigger{io, 50ms};
  trigger.async_wait(
      [&](boost::system::error_code) { cancel.emit(asio::cancellation_type::terminal); });
  const auto start = steady::now();
  io.run();
  BOOST_REQUIRE(report.has_value());
  BOOST_TEST(report->status == drover::run_status::cancelled);
  BOOST_TEST(result_of(*report, "forever").status == drover::module_status::cancelled);
  BOOST_TEST(to_ms(steady::now() - start).count() < 3000);
}

BOOST_AUTO_TEST_CASE(leaves_no_work_behind, *boost::unit_test::timeout(20)) {
  // A finished run leaves no work behind: io.run() returns as soon as the run completes.
  asio::io_context io;
  {
    drover::engine engine{io.get_executor()};
    std::optional<drover::run_report> report;
    engine.async_run(two_step("short"), [&](drover::run_report r) { report = std::move(r); });
    const auto start = steady::now();
    io.run();
    BOOST_REQUIRE(report.has_value());
    expect_two_step_succeeded(*report);
    BOOST_TEST(to_ms(steady::now() - start).count() < 2000);
  }
  io.restart();
  BOOST_TEST(io.poll() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
