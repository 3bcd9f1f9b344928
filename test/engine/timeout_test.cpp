#include <drover/engine.hpp>

#define BOOST_TEST_MODULE timeout
#include "test_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

namespace {

using namespace drover::test;
using drover::module_status;
using drover::run_status;

/// Waits on `gate`, a timer the test owns, without connecting the wait to the body's
/// cancellation: timeouts and cancelled runs cannot stop it; only the test opening the gate
/// (or the gate expiring after 10 s) does.
asio::awaitable<json::value> ignore_cancellation(drover::module_context& ctx,
                                                 asio::steady_timer* gate, probe* bodies) {
  probe_scope scope{bodies, ctx};
  try {
    co_await gate->async_wait(
        asio::bind_cancellation_slot(asio::cancellation_slot{}, asio::use_awaitable));
  } catch (const boost::system::system_error&) {
  }
  co_return "finished late";
}

drover::module_body obstinate_body(asio::steady_timer* gate, probe* bodies) {
  return [gate, bodies](drover::module_context& ctx) {
    return ignore_cancellation(ctx, gate, bodies);
  };
}

/// A run on its own io_context with a gate for obstinate bodies; the gate opens as soon as the
/// run completes, so the abandoned bodies finish and io.run() returns.
struct gated_run {
  asio::io_context io;
  asio::steady_timer gate{io, 10s};
  drover::engine engine{io.get_executor()};
  asio::cancellation_signal cancel;
  std::optional<drover::run_report> report;
  steady::time_point started, completed;
  std::optional<steady::time_point> cancel_emitted;
  milliseconds io_time{0};

  /// Runs `p`; when `cancel_after` is set, cancels the run through the handler's slot then.
  void run(drover::pipeline p, drover::run_options options,
           std::optional<milliseconds> cancel_after = std::nullopt) {
    asio::steady_timer trigger{io};
    if (cancel_after) {
      trigger.expires_after(*cancel_after);
      trigger.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        cancel_emitted = steady::now();
        cancel.emit(asio::cancellation_type::terminal);
      });
    }
    started = steady::now();
    engine.async_run(
        std::move(p), std::move(options),
        asio::bind_cancellation_slot(cancel.slot(), [this, &trigger](drover::run_report r) {
          completed = steady::now();
          report = std::move(r);
          gate.cancel();
          trigger.cancel();
        }));
    io.run();
    io_time = to_ms(steady::now() - started);
    BOOST_REQUIRE_MESSAGE(report.has_value(), "the run never completed");
  }

  milliseconds elapsed() const { return to_ms(completed - started); }
  milliseconds since_cancel() const { return to_ms(completed - *cancel_emitted); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(timeout)

BOOST_AUTO_TEST_CASE(long_wait_times_out_promptly, *boost::unit_test::timeout(30)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      p.mode = drover::execution_mode::keep_going;
      p.add("sleepy", wait_body(10s)).timeout(50ms);
      p.add("unlimited", wait_body(150ms, "done"));
      auto run = run_with_workers(std::move(p), workers);

      const auto& sleepy = result_of(run.report, "sleepy");
      BOOST_TEST(sleepy.status == module_status::timed_out);
      BOOST_TEST(sleepy.attempts == 1u);
      BOOST_TEST(!sleepy.reason.empty());
      BOOST_TEST(sleepy.value.is_null());
      BOOST_TEST(sleepy.duration().count() >= 45);
      BOOST_TEST(result_of(run.report, "unlimited").status == module_status::succeeded);
      BOOST_TEST(run.report.status == run_status::failed);
      BOOST_TEST(run.elapsed.count() >= 50);
      BOOST_TEST(run.elapsed.count() < 2000);
    }
  }
}

BOOST_AUTO_TEST_CASE(timeout_under_fail_fast_cancels_the_rest, *boost::unit_test::timeout(30)) {
  drover::pipeline p;
  p.add("sleepy", wait_body(10s)).timeout(50ms);
  p.add("other", wait_body(10s));
  auto run = run_with_workers(std::move(p), 2);
  BOOST_TEST(result_of(run.report, "sleepy").status == module_status::timed_out);
  BOOST_TEST(result_of(run.report, "other").status == module_status::cancelled);
  BOOST_TEST(run.report.status == run_status::failed);
  BOOST_TEST(run.elapsed.count() < 2000);
}

BOOST_AUTO_TEST_CASE(body_ignoring_cancellation_is_abandoned, *boost::unit_test::timeout(60)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      gated_run g;
      probe bodies;
      drover::pipeline p;
      p.mode = drover::execution_mode::keep_going;
      auto obstinate = p.add("obstinate", obstinate_body(&g.gate, &bodies));
      obstinate.timeout(50ms);
      obstinate.priority(10);
      // With one worker this can only run once the obstinate body has been abandoned.
      p.add("after", wait_body(10ms, "ok", &bodies));
      drover::run_options options;
      options.workers = workers;
      options.cancel_grace = 100ms;
      g.run(std::move(p), options);

      const auto& r = result_of(*g.report, "obstinate");
      BOOST_TEST(r.status == module_status::timed_out);
      BOOST_TEST(r.attempts == 1u);
      BOOST_TEST(result_of(*g.report, "after").status == module_status::succeeded);
      BOOST_TEST(g.elapsed().count() >= 50);
      BOOST_TEST(g.elapsed().count() < 2000);
      // The abandoned body ran to its end once the gate opened, without upsetting anything.
      BOOST_TEST(g.io_time.count() < 5000);
      BOOST_TEST(bodies.ends("obstinate") == 1u);
    }
  }
}

BOOST_AUTO_TEST_CASE(obstinate_body_is_retried_after_each_timeout, *boost::unit_test::timeout(60)) {
  gated_run g;
  probe bodies;
  drover::pipeline p;
  auto obstinate = p.add("obstinate", obstinate_body(&g.gate, &bodies));
  obstinate.timeout(50ms);
  obstinate.retries(2);
  obstinate.backoff(exact_backoff(1ms));
  drover::run_options options;
  options.workers = 1;
  options.cancel_grace = 100ms;
  g.run(std::move(p), options);

  const auto& r = result_of(*g.report, "obstinate");
  BOOST_TEST(r.status == module_status::timed_out);
  BOOST_TEST(r.attempts == 3u);
  BOOST_TEST(bodies.begins("obstinate") == 3u);
  BOOST_TEST(g.elapsed().count() < 3000);
}

BOOST_AUTO_TEST_CASE(cancelling_the_run_ends_it_promptly, *boost::unit_test::timeout(40)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      gated_run g;
      probe bodies;
      drover::pipeline p;
      p.add("first", wait_body(10s, nullptr, &bodies)).priority(6);
      p.add("second", wait_body(10s, nullptr, &bodies)).priority(5);
      p.add("after_first", value_body(nullptr, &bodies), {"first"});
      p.add("last", wait_body(10s, nullptr, &bodies));
      drover::run_options options;
      options.workers = workers;
      g.run(std::move(p), options, 100ms);

      const auto& r = *g.report;
      BOOST_REQUIRE(g.cancel_emitted.has_value());
      BOOST_TEST(r.status == run_status::cancelled);
      BOOST_TEST(g.since_cancel().count() < 2000);
      BOOST_TEST(r.count(module_status::cancelled) == 4u);
      for (const auto& m : r.modules) {
        BOOST_TEST_CONTEXT("module " << m.id) {
          BOOST_TEST(m.status == module_status::cancelled);
          BOOST_TEST(!m.reason.empty());
          BOOST_TEST(m.value.is_null());
        }
      }
      BOOST_TEST(result_of(r, "first").attempts == 1u);
      BOOST_TEST(result_of(r, "second").attempts == (workers >= 2 ? 1u : 0u));
      BOOST_TEST(result_of(r, "last").attempts == (workers >= 3 ? 1u : 0u));
      BOOST_TEST(result_of(r, "after_first").attempts == 0u);
      BOOST_TEST(bodies.begins("after_first") == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(cancelled_run_does_not_wait_for_a_obstinate_body,
                     *boost::unit_test::timeout(40)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      gated_run g;
      probe bodies;
      drover::pipeline p;
      p.add("obstinate", obstinate_body(&g.gate, &bodies));
      p.add("polite", wait_body(10s, nullptr, &bodies));
      drover::run_options options;
      options.workers = workers;
      options.cancel_grace = 200ms;
      g.run(std::move(p), options, 50ms);

      BOOST_REQUIRE(g.cancel_emitted.has_value());
      BOOST_TEST(g.report->status == run_status::cancelled);
      BOOST_TEST(result_of(*g.report, "obstinate").status == module_status::cancelled);
      BOOST_TEST(result_of(*g.report, "polite").status == module_status::cancelled);
      BOOST_TEST(g.since_cancel().count() < 200 + 1500);
      BOOST_TEST(g.io_time.count() < 5000);
    }
  }
}

BOOST_AUTO_TEST_CASE(cancelling_after_completion_does_nothing, *boost::unit_test::timeout(20)) {
  asio::io_context io;
  drover::engine engine{io.get_executor()};
  asio::cancellation_signal cancel;
  int calls = 0;
  drover::pipeline p;
  p.add("quick", value_body(1));
  engine.async_run(std::move(p),
                   asio::bind_cancellation_slot(cancel.slot(), [&](drover::run_report r) {
                     ++calls;
                     BOOST_TEST(r.status == run_status::succeeded);
                   }));
  io.run();
  cancel.emit(asio::cancellation_type::terminal);
  io.restart();
  io.run();
  BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_SUITE_END()
