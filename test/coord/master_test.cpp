#include <drover/coord/master.hpp>

// The master over real loopback TCP, with fake workers written with the codec: handshakes
// (token, version, timeout, names), runs of drover::engine through the master, capability
// routing, late joiners, loss by silence, and a table of bad input lines, each checked for
// the error the peer got and for a healthy worker that finishes the run meanwhile.

#define BOOST_TEST_MODULE master
#include <drover/coord/framing.hpp>
#include <drover/coord/protocol.hpp>
#include <drover/coord/worker.hpp>
#include <drover/engine.hpp>

#include "../common/printing.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "master_harness.hpp"

using namespace drover::master_test;

BOOST_AUTO_TEST_SUITE(master)

// --- a whole run -----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_worker_runs_the_whole_pipeline, *utf::timeout(30)) {
  harness h;
  auto w = h.worker({.worker_id = "builder-1", .capabilities = {"linux"}, .slots = 2});
  h.welcomed({w});
  BOOST_TEST(w->welcome->worker == "builder-1");
  BOOST_TEST(w->welcome->run == "r-test");
  BOOST_TEST(w->welcome->protocol == 1);
  BOOST_TEST(w->welcome->epoch == 1u);
  BOOST_TEST(w->welcome->heartbeat_ms == 50u);
  BOOST_TEST(w->welcome->lost_after_ms == 1500u);
  BOOST_TEST(w->welcome->max_line_bytes == coord::default_max_line_bytes);

  h.start(layered());
  const auto& report = h.finish();
  require_all_succeeded(report);
  BOOST_TEST(n_of(report, "a0") == 1);
  BOOST_TEST(n_of(report, "b2") == 3);
  BOOST_TEST(n_of(report, "final") == 13);  // the dependency results crossed the wire
  BOOST_TEST(w->assigns.size() == 9u);
  for (const auto& a : w->assigns) {
    BOOST_TEST(a.run == "r-test");
    BOOST_TEST(a.epoch == 1u);
    BOOST_TEST(a.attempt == 1u);
    BOOST_TEST(a.kind == "noop");
    BOOST_TEST(json::serialize(a.params) == R"({"note":"params travel"})");
  }
  // final depends on four b's, whose results reach the worker with it (each crosses once).
  auto final_assign = std::find_if(w->assigns.begin(), w->assigns.end(),
                                   [](auto& a) { return a.module == "final"; });
  BOOST_REQUIRE(final_assign != w->assigns.end());
  BOOST_TEST(final_assign->deps.size() == 4u);
  BOOST_TEST(final_assign->results.size() == 4u);
  BOOST_TEST(report.remote.workers_attached == 1u);
  BOOST_TEST(report.remote.rejected_results == 0u);

  BOOST_REQUIRE(h.all_closed());
  BOOST_REQUIRE(w->bye.has_value());
  BOOST_TEST(w->bye->reason == "run finished");
  BOOST_TEST(w->errors.empty());
  BOOST_TEST(w->undecodable_lines == 0);
  const auto stats = h.master->stats();
  BOOST_TEST(stats.connections == 1u);
  BOOST_TEST(stats.workers_welcomed == 1u);
  BOOST_TEST(stats.results_forwarded == 9u);
  BOOST_TEST(stats.errors_sent.empty());
  BOOST_TEST(h.log_mentions("127.0.0.1:"));
  BOOST_TEST(h.log_mentions("(builder-1): joined with 2 slots, capabilities linux"));
}

BOOST_AUTO_TEST_CASE(the_master_sends_heartbeats, *utf::timeout(20)) {
  harness h;
  auto w = h.worker();
  h.welcomed({w});
  // 50 ms interval: at least a few in 600 ms, even on a loaded machine.
  BOOST_TEST(h.run_until([&] { return w->heartbeats_received >= 3; }, 3s));
  BOOST_TEST(w->errors.empty());
}

BOOST_AUTO_TEST_CASE(a_worker_that_joins_late_gets_the_work, *utf::timeout(30)) {
  harness h;
  h.start(layered());
  h.run_until([] { return false; }, 300ms);
  BOOST_TEST(!h.report.has_value());
  auto w = h.worker();
  const auto& report = h.finish();
  require_all_succeeded(report);
  BOOST_TEST(w->assigns.size() == 9u);
}

BOOST_AUTO_TEST_CASE(a_worker_after_the_run_is_told_it_finished, *utf::timeout(30)) {
  harness h;
  h.stop_with_run = false;
  auto first = h.worker();
  h.start(layered());
  require_all_succeeded(h.finish());
  auto late = h.worker({.worker_id = "late"});
  BOOST_REQUIRE(h.run_until([&] { return late->ended; }, 5s));
  BOOST_TEST(late->welcome.has_value());
  BOOST_REQUIRE(late->bye.has_value());
  BOOST_TEST(late->bye->reason == "run finished");
  BOOST_TEST(late->assigns.empty());
  BOOST_TEST(first->bye.has_value());
  // Stopped, the master keeps its port open for close_timeout (500 ms here): a newcomer is
  // still told the run is over...
  h.master->stop();
  auto during_stop = h.worker({.worker_id = "during"});
  BOOST_REQUIRE(h.run_until([&] { return during_stop->ended; }, 5s));
  BOOST_TEST(during_stop->welcome.has_value());
  BOOST_REQUIRE(during_stop->bye.has_value());
  BOOST_TEST(during_stop->bye->reason == "run finished");
  BOOST_TEST(during_stop->errors.empty());
  // ...and after that the port is closed.
  BOOST_REQUIRE(h.all_closed());
  h.run_until([] { return false; }, 700ms);
  auto after_stop = h.worker();
  BOOST_REQUIRE(h.run_until([&] { return after_stop->ended; }, 5s));
  BOOST_TEST(!after_stop->connected);
  BOOST_TEST(h.log_mentions("(during): joined after the run finished; told so"));
}

BOOST_AUTO_TEST_CASE(a_hello_that_comes_after_the_end_gets_its_answer, *utf::timeout(30)) {
  // Connected while the run ran, but its hello arrives once it is over and the master stops:
  // welcome and bye, not a silent close.
  harness h;
  auto w = h.worker();
  auto slow = h.worker({.worker_id = "slow", .send_hello = false});
  h.welcomed({w});
  h.start(layered());
  require_all_succeeded(h.finish());
  coord::hello_message hello;
  hello.versions = {1};
  hello.worker_id = "slow";
  hello.capabilities = {"linux"};
  slow->send(hello);
  BOOST_REQUIRE(h.run_until([&] { return slow->ended; }, 5s));
  BOOST_REQUIRE(slow->welcome.has_value());
  BOOST_TEST(slow->welcome->worker == "slow");
  BOOST_REQUIRE(slow->bye.has_value());
  BOOST_TEST(slow->bye->reason == "run finished");
  BOOST_TEST(slow->assigns.empty());
  BOOST_TEST(slow->errors.empty());
}

BOOST_AUTO_TEST_CASE(a_worker_client_that_comes_after_the_end_ends_run_over, *utf::timeout(30)) {
  // What `drover worker` runs: told the run is over, it ends run_over, which exits 0.
  harness h;
  auto w = h.worker();
  h.welcomed({w});
  h.start(layered());
  require_all_succeeded(h.finish());
  coord::worker_options options;
  options.host = "127.0.0.1";
  options.port = h.endpoint.port();
  options.worker_id = "late";
  coord::worker_client late{h.io.get_executor(), options, [](std::string_view, const json::value&) {
                              return drover::module_body{};
                            }};
  std::optional<coord::worker_outcome> outcome;
  late.async_run([&](coord::worker_outcome o) { outcome = std::move(o); });
  BOOST_REQUIRE(h.run_until([&] { return outcome.has_value(); }, 10s));
  BOOST_TEST(coord::to_string(outcome->how) == "run_over");
  BOOST_TEST(outcome->ok());
  BOOST_TEST(late.stats().handshakes == 1u);
}

BOOST_AUTO_TEST_CASE(capabilities_route_modules_to_the_workers_that_have_them, *utf::timeout(30)) {
  harness h;
  auto lin = h.worker({.worker_id = "lin", .capabilities = {"linux", "docker"}, .slots = 2});
  auto win = h.worker({.worker_id = "win", .capabilities = {"Windows"}, .slots = 2});
  h.welcomed({lin, win});
  drover::pipeline p;
  for (int i = 0; i < 3; ++i) {
    add_remote(p, "lin" + std::to_string(i)).constraints().required_capabilities = {"linux"};
    add_remote(p, "win" + std::to_string(i)).constraints().required_capabilities = {"windows"};
  }
  add_remote(p, "docker").constraints().required_capabilities = {"DOCKER", "linux"};
  add_remote(p, "anywhere", {"lin0", "win0"});
  h.start(std::move(p));
  require_all_succeeded(h.finish());
  for (const auto& a : lin->assigns)
    BOOST_TEST((a.module.starts_with("lin") || a.module == "docker" || a.module == "anywhere"),
               a.module << " went to the linux worker");
  for (const auto& a : win->assigns)
    BOOST_TEST((a.module.starts_with("win") || a.module == "anywhere"),
               a.module << " went to the windows worker");
  BOOST_TEST(lin->has_module("docker"));
  BOOST_TEST(win->has_module("win2"));
  BOOST_TEST(lin->has_module("lin1"));
}

BOOST_AUTO_TEST_CASE(a_silent_worker_is_lost_and_its_attempts_reassigned, *utf::timeout(30)) {
  auto o = quick_options();
  o.lost_worker_timeout = 400ms;
  harness h{o};
  auto quiet = h.worker({.worker_id = "quiet"});
  auto busy = h.worker({.worker_id = "busy"});
  h.welcomed({quiet, busy});
  // The quiet worker hangs on its first assignment: no result, no heartbeat.
  quiet->on_assign = [](fake_worker& self, const coord::assign_message&) {
    self.silent = true;
    return true;
  };
  const auto started = clock_type::now();
  h.start(layered());
  const auto& report = h.finish();
  require_all_succeeded(report);
  BOOST_REQUIRE(quiet->assigns.size() == 1u);
  const std::string lost_module = quiet->assigns.front().module;
  // Its module ran again on the busy worker, as attempt 2.
  auto again = std::find_if(busy->assigns.begin(), busy->assigns.end(),
                            [&](auto& a) { return a.module == lost_module; });
  BOOST_REQUIRE(again != busy->assigns.end());
  BOOST_TEST(again->attempt == 2u);
  BOOST_TEST(report.remote.reassigned >= 1u);
  BOOST_TEST(report.remote.workers_lost == 1u);
  BOOST_TEST((clock_type::now() - started >= 400ms));
  BOOST_REQUIRE(h.all_closed());
  BOOST_TEST(quiet->ended);
  BOOST_TEST(!quiet->bye.has_value());  // a lost worker gets no goodbye
  BOOST_TEST(h.master->stats().workers_silent == 1u);
  BOOST_TEST(h.log_mentions("(quiet): lost: silent for "));
  // The module's report says why it ran twice.
  for (const auto& m : report.modules) {
    if (m.id == lost_module) BOOST_TEST(m.attempts == 2u);
  }
}

BOOST_AUTO_TEST_CASE(an_attempt_a_heartbeating_worker_never_answers_times_out, *utf::timeout(30)) {
  // The worker stays attached (it heartbeats) but hangs on its assign: once the module's
  // timeout and the hub's overdue grace have passed, the master cancels it there and the
  // attempt ends timed_out, instead of the run waiting forever.
  drover::worker_hub::settings settings;
  settings.overdue_grace = 200ms;
  harness h{quick_options(), settings};
  auto hanging = h.worker({.worker_id = "hanging"});
  hanging->on_assign = [](fake_worker&, const coord::assign_message&) { return true; };
  h.welcomed({hanging});
  drover::pipeline p;
  add_remote(p, "stuck").timeout(100ms);
  const auto started = clock_type::now();
  h.start(std::move(p));
  const auto& report = h.finish();
  BOOST_TEST((clock_type::now() - started >= 300ms));
  BOOST_TEST(report.status == drover::run_status::failed);
  BOOST_REQUIRE(report.modules.size() == 1u);
  BOOST_TEST(report.modules.front().status == drover::module_status::timed_out);
  BOOST_TEST(
      report.modules.front().reason.find("no result from worker hanging") != std::string::npos,
      report.modules.front().reason);
  BOOST_TEST(report.remote.overdue == 1u);
  // The cancel went out before the bye that ended the run.
  BOOST_REQUIRE(h.run_until([&] { return hanging->bye.has_value(); }, 5s));
  BOOST_REQUIRE(hanging->cancels.size() == 1u);
  BOOST_TEST(hanging->cancels.front().module == "stuck");
  BOOST_TEST((hanging->assigns.front().timeout_ms == std::optional<std::uint64_t>{100}));
  BOOST_TEST(h.master->stats().workers_silent == 0u);
}

BOOST_AUTO_TEST_CASE(the_example_session_of_protocol_md_happens_as_shown, *utf::timeout(30)) {
  // Section 9's first transcript, with shorter times: an overdue attempt, its stale answer, the
  // retry in the slot that answer freed, then fail_fast and the end. The reasons and messages
  // the worker gets are the ones the document shows.
  drover::worker_hub::settings settings;
  settings.overdue_grace = 200ms;
  harness h{quick_options(), settings};
  auto w = h.worker({.worker_id = "builder-1", .capabilities = {"linux", "docker"}, .slots = 2});
  w->on_assign = [](fake_worker& self, const coord::assign_message& a) {
    if (a.module == "flaky" && a.attempt == 2) {
      auto r = self.result_for(a);
      r.status = drover::module_status::failed;
      r.value = nullptr;
      r.error = "exit code 1";
      self.send(r);
    }
    return true;  // flaky attempt 1 and build hang
  };
  w->on_cancel = [](fake_worker& self, const coord::cancel_message& c) {
    coord::result_message r;
    r.run = c.run;
    r.epoch = c.epoch;
    r.module = c.module;
    r.attempt = c.attempt;
    r.status = drover::module_status::cancelled;
    r.error = "cancelled: " + c.reason;
    self.send(r);
  };
  h.welcomed({w});
  drover::pipeline p;
  auto flaky = add_remote(p, "flaky");
  flaky.timeout(100ms);
  flaky.retries(1);
  flaky.backoff(drover::backoff_policy{1ms, 1.0, 1ms, 0.0});
  add_remote(p, "build");
  h.start(std::move(p));
  const auto& report = h.finish();
  BOOST_TEST(report.status == drover::run_status::failed);
  BOOST_REQUIRE(h.all_closed());

  BOOST_REQUIRE(w->cancels.size() == 2u);
  BOOST_TEST(w->cancels[0].module == "flaky");
  BOOST_TEST(w->cancels[0].reason ==
             "no result from worker builder-1 within the timeout of 100 ms and 200 ms more; "
             "cancelled it there");
  BOOST_TEST(w->cancels[1].module == "build");
  BOOST_TEST(w->cancels[1].reason == "cancelled by fail_fast after 'flaky' failed");
  BOOST_REQUIRE(w->errors.size() == 1u);
  const auto& stale = w->errors.front();
  BOOST_TEST(stale.code == "stale_result");
  BOOST_TEST(stale.message ==
             "result for 'flaky' attempt 1 was rejected: the attempt had already "
             "ended timed_out (no result in time)");
  BOOST_TEST(!stale.fatal);
  BOOST_TEST((stale.module == std::optional<std::string>{"flaky"}));
  BOOST_TEST((stale.attempt == std::optional<std::uint32_t>{1}));
  BOOST_REQUIRE(w->assigns.size() == 3u);
  BOOST_TEST(w->assigns[2].module == "flaky");
  BOOST_TEST(w->assigns[2].attempt == 2u);
  BOOST_REQUIRE(w->bye.has_value());
  BOOST_TEST(w->bye->reason == "run finished");
  BOOST_TEST(report.remote.rejected_results == 1u);  // refused by the run, counted by both
  BOOST_TEST(h.master->stats().results_rejected == 1u);
  for (const auto& m : report.modules) {
    if (m.id == "build") BOOST_TEST(m.status == drover::module_status::cancelled);
    if (m.id == "flaky") BOOST_TEST(m.status == drover::module_status::failed);
  }
}

BOOST_AUTO_TEST_CASE(a_worker_that_leaves_has_its_attempts_reassigned, *utf::timeout(30)) {
  harness h;
  auto leaving = h.worker({.worker_id = "leaving"});
  auto staying = h.worker({.worker_id = "staying"});
  h.welcomed({leaving, staying});
  leaving->on_assign = [](fake_worker& self, const coord::assign_message&) {
    self.send(coord::bye_message{"interrupted"});
    return true;
  };
  h.start(layered());
  const auto& report = h.finish();
  require_all_succeeded(report);
  BOOST_TEST(report.remote.reassigned >= 1u);
  BOOST_REQUIRE(h.all_closed());
  BOOST_TEST(h.log_mentions("(leaving): said bye: interrupted"));
}

BOOST_AUTO_TEST_CASE(an_operator_drains_a_worker, *utf::timeout(30)) {
  // The drained worker gets `drain` and nothing more; the attempt it runs finishes and counts;
  // it says bye and leaves with nothing to reassign.
  harness h;
  auto slow = h.worker({.worker_id = "slow", .result_delay = 300ms});
  auto fast = h.worker({.worker_id = "fast"});
  h.welcomed({slow, fast});
  BOOST_TEST(!h.master->drain("nobody"));
  h.start(layered());
  BOOST_REQUIRE(h.run_until([&] { return !slow->assigns.empty(); }, 5s));
  BOOST_TEST(h.master->drain("slow", "maintenance"));
  BOOST_REQUIRE(h.run_until([&] { return slow->drain.has_value(); }, 5s));
  BOOST_TEST(slow->drain->reason == "maintenance");
  BOOST_TEST(slow->drain_after_assigns == slow->assigns.size());
  // Its one attempt is answered after 300 ms; then it leaves as a drained worker does.
  const std::string ran = slow->assigns.front().module;
  h.run_until([] { return false; }, 400ms);
  slow->send(coord::bye_message{"drained"});
  const auto& report = h.finish();
  require_all_succeeded(report);
  BOOST_TEST(slow->assigns.size() == 1u);  // nothing after the drain
  for (const auto& m : report.modules) {
    if (m.id == ran) {
      BOOST_TEST(report.worker_name(m) == "slow");  // its result counted
      BOOST_TEST(m.attempts == 1u);
    }
  }
  BOOST_TEST(report.remote.reassigned == 0u);
  BOOST_TEST(slow->errors.empty());
  BOOST_TEST(h.log_mentions("(slow): draining: maintenance"));
}

BOOST_AUTO_TEST_CASE(an_attempt_given_back_is_reassigned_and_its_worker_drained,
                     *utf::timeout(30)) {
  // A worker shutting down answers `cancelled` though nobody cancelled: that must not fail the
  // module (nor end this fail_fast run).
  harness h;
  auto leaving = h.worker({.worker_id = "leaving"});
  auto staying = h.worker({.worker_id = "staying"});
  h.welcomed({leaving, staying});
  leaving->on_assign = [](fake_worker& self, const coord::assign_message& a) {
    auto r = self.result_for(a);
    r.status = drover::module_status::cancelled;
    r.value = nullptr;
    r.error = "worker shutting down";
    self.send(r);
    return true;
  };
  h.start(layered());
  const auto& report = h.finish();
  require_all_succeeded(report);
  BOOST_REQUIRE(!leaving->assigns.empty());
  const std::string given_back = leaving->assigns.front().module;
  BOOST_REQUIRE(leaving->drain.has_value());
  BOOST_TEST(leaving->drain->reason == "it gave back '" + given_back + "' attempt 1");
  BOOST_TEST(leaving->drain_after_assigns == leaving->assigns.size());
  BOOST_TEST(report.remote.reassigned == leaving->assigns.size());
  BOOST_TEST(report.remote.rejected_results == 0u);
  for (const auto& m : report.modules) {
    if (m.id == given_back) {
      BOOST_TEST(m.attempts == 2u);
      BOOST_TEST(report.worker_name(m) == "staying");
    }
  }
  BOOST_TEST(leaving->errors.empty());
}

BOOST_AUTO_TEST_CASE(an_assignment_over_the_line_limit_fails_its_module, *utf::timeout(20)) {
  auto o = quick_options();
  o.line_limits.max_line_bytes = 2048;
  harness h{o};
  auto w = h.worker();
  drover::pipeline p;
  add_remote(p, "small");
  add_remote(p, "huge").kind("noop", json::object{{"blob", std::string(4096, 'x')}});
  h.start(std::move(p));
  const auto& report = h.finish();
  BOOST_TEST(report.status == drover::run_status::failed);
  for (const auto& m : report.modules) {
    if (m.id == "huge") {
      BOOST_TEST(m.status == drover::module_status::failed);
      BOOST_TEST(m.reason.find("over the line limit of 2048 bytes") != std::string::npos, m.reason);
    }
  }
  BOOST_TEST(!w->has_module("huge"));
  BOOST_TEST(w->errors.empty());
}

/// `layers` layers of `width` modules, each depending on every module of the layer before.
BOOST_AUTO_TEST_CASE(the_master_serves_from_several_threads, *utf::timeout(90)) {
  // The master, the engine and the run on an io_context with several threads; the fake
  // workers on their own, on this thread. Sessions, hub and counters must hold up.
  constexpr int layers = 12, width = 6;
  std::int64_t expected = 1;
  for (int l = 1; l < layers; ++l)
    expected = 1 + width * expected;
  for (const int threads : {1, 2, 4}) {
    BOOST_TEST_CONTEXT("threads: " << threads) {
      asio::io_context master_io;
      auto hub = std::make_shared<drover::worker_hub>();
      coord::master master{master_io.get_executor(), hub, quick_options()};
      const tcp::endpoint endpoint = master.listen();
      drover::engine engine{master_io.get_executor()};
      std::promise<drover::run_report> done;
      drover::run_options options;
      options.workers = 0;
      options.remote = hub;
      engine.async_run(dense(layers, width), options, [&](drover::run_report r) {
        master.stop();
        done.set_value(std::move(r));
      });
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] { master_io.run(); });

      asio::io_context workers_io;
      std::vector<std::shared_ptr<fake_worker>> workers;
      for (int w = 0; w < 5; ++w) {
        fake_options o;
        o.slots = 3;
        workers.push_back(std::make_shared<fake_worker>(workers_io, o));
        workers.back()->connect(endpoint);
      }
      auto report = done.get_future();
      const auto deadline = clock_type::now() + 30s;
      while (report.wait_for(0s) != std::future_status::ready && clock_type::now() < deadline)
        workers_io.run_for(10ms);
      const bool completed = report.wait_for(0s) == std::future_status::ready;
      BOOST_TEST(completed);
      while (clock_type::now() < deadline &&
             !std::all_of(workers.begin(), workers.end(), [](auto& w) { return w->ended; }))
        workers_io.run_for(10ms);
      if (!completed) master_io.stop();
      for (auto& t : pool)
        t.join();
      if (!completed) continue;
      const drover::run_report r = report.get();
      require_all_succeeded(r);
      BOOST_TEST(n_of(r, "l" + std::to_string(layers - 1) + "m0") == expected);
      std::size_t assigned = 0;
      for (const auto& w : workers) {
        assigned += w->assigns.size();
        BOOST_TEST(w->bye.has_value());
        BOOST_TEST(w->errors.empty());
      }
      BOOST_TEST(assigned == std::size_t{layers * width});
      BOOST_TEST(master.stats().results_forwarded == std::uint64_t{layers * width});
      BOOST_TEST(master.open_connections() == 0u);
    }
  }
}

// --- handshake -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(without_a_token_only_loopback_is_allowed, *utf::timeout(20)) {
  asio::io_context io;
  auto hub = std::make_shared<drover::worker_hub>();
  for (const char* address : {"0.0.0.0", "::"}) {
    coord::master_options o;
    o.listen_address = address;
    o.port = 7799;
    coord::master m{io.get_executor(), hub, o};
    try {
      m.listen();
      BOOST_FAIL("the master listened on " << address << " without a token");
    } catch (const coord::master_error& e) {
      const std::string what = e.what();
      BOOST_TEST(what.find(std::string(address) == "::" ? "[::]:7799" : "0.0.0.0:7799") !=
                     std::string::npos,
                 what);
      BOOST_TEST(what.find("without a token") != std::string::npos, what);
    }
  }
  coord::master_options bad;
  bad.listen_address = "not-an-address";
  coord::master m{io.get_executor(), hub, bad};
  BOOST_CHECK_EXCEPTION(m.listen(), coord::master_error, [](const coord::master_error& e) {
    return std::string(e.what()).find("'not-an-address'") != std::string::npos;
  });
  // With a token, any address will do.
  coord::master_options with_token;
  with_token.listen_address = "0.0.0.0";
  with_token.token = "s3cret";
  coord::master open{io.get_executor(), hub, with_token};
  BOOST_TEST(open.listen().port() != 0);
  open.stop();
  io.run_for(200ms);
}

BOOST_AUTO_TEST_CASE(a_port_in_use_is_named, *utf::timeout(20)) {
  harness h;
  coord::master_options o;
  o.port = h.endpoint.port();
  coord::master second{h.io.get_executor(), h.hub, o};
  BOOST_CHECK_EXCEPTION(second.listen(), coord::master_error, [&](const coord::master_error& e) {
    const std::string what = e.what();
    return what.find("127.0.0.1:" + std::to_string(o.port)) != std::string::npos &&
           what.find("bind") != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(a_wrong_or_missing_token_gets_one_unauthorized_error, *utf::timeout(20)) {
  auto o = quick_options();
  o.token = "correct horse";
  harness h{o};
  auto wrong = h.worker({.token = "battery staple"});
  auto missing = h.worker({});
  auto right = h.worker({.token = "correct horse"});
  BOOST_REQUIRE(h.run_until([&] { return wrong->ended && missing->ended && right->welcome; }, 5s));
  for (const auto& w : {wrong, missing}) {
    BOOST_TEST(codes(*w) == std::vector<std::string>{"unauthorized"});
    BOOST_TEST(w->errors.front().fatal);
    BOOST_TEST(w->errors.front().message.find("horse") == std::string::npos);
    BOOST_TEST(w->errors.front().message.find("staple") == std::string::npos);
    BOOST_TEST(!w->welcome.has_value());
  }
  BOOST_TEST(right->errors.empty());
  BOOST_TEST(!right->ended);
  BOOST_TEST(h.master->stats().errors(coord::error_code::unauthorized) == 2u);
  BOOST_TEST(h.master->stats().handshakes_failed == 2u);
  for (const auto& line : h.log) {
    BOOST_TEST(line.find("horse") == std::string::npos, line);
    BOOST_TEST(line.find("staple") == std::string::npos, line);
  }
  BOOST_TEST(h.log_mentions("refused: missing or wrong token"));
}

BOOST_AUTO_TEST_CASE(a_first_line_that_is_not_hello_is_refused, *utf::timeout(20)) {
  harness h;
  auto heartbeat_first = h.worker({.send_hello = false});
  heartbeat_first->send(coord::heartbeat_message{});
  auto garbage_first = h.worker({.send_hello = false});
  garbage_first->send_raw("GET / HTTP/1.1\r\n");
  auto bad_hello = h.worker({.send_hello = false});
  bad_hello->send_raw(R"({"type":"hello","versions":[1],"slots":0})"
                      "\n");
  auto error_first = h.worker({.send_hello = false});
  error_first->send(coord::make_error_message(coord::error_code::internal, "confused"));
  BOOST_REQUIRE(h.all_closed());
  BOOST_TEST(codes(*heartbeat_first) == std::vector<std::string>{"handshake_required"});
  BOOST_TEST(codes(*garbage_first) == std::vector<std::string>{"malformed_json"});
  BOOST_TEST(codes(*bad_hello) == std::vector<std::string>{"bad_field"});
  BOOST_TEST(codes(*error_first).empty());  // an error is never answered with an error
  for (const auto& w : {heartbeat_first, garbage_first, bad_hello})
    BOOST_TEST(w->errors.front().fatal);  // before the handshake every error is fatal
  BOOST_TEST(h.master->stats().handshakes_failed == 4u);
}

BOOST_AUTO_TEST_CASE(a_hello_without_an_os_label_is_refused, *utf::timeout(20)) {
  harness h;
  auto none = h.worker({.worker_id = "none", .os_label = false});
  auto other =
      h.worker({.worker_id = "other", .capabilities = {"docker", "gpu"}, .os_label = false});
  auto shouting = h.worker({.worker_id = "shouting", .capabilities = {"docker", "MacOS"}});
  auto odd = h.worker({.worker_id = "odd", .capabilities = {"unknown"}});
  BOOST_REQUIRE(h.run_until([&] { return none->ended && other->ended; }, 5s));
  h.welcomed({shouting, odd});  // labels compare case-insensitively; "unknown" is an OS label
  for (const auto& w : {none, other}) {
    BOOST_REQUIRE(codes(*w) == std::vector<std::string>{"bad_field"});
    const auto& e = w->errors.front();
    BOOST_TEST(e.fatal);
    BOOST_TEST(e.message.find("hello: field 'capabilities': no OS label, expected one of linux, "
                              "macos, windows, unknown") == 0u,
               e.message);
    BOOST_TEST(!w->welcome.has_value());
  }
  BOOST_TEST(other->errors.front().message.find("got ['docker', 'gpu']") != std::string::npos,
             other->errors.front().message);
  BOOST_TEST(h.master->stats().handshakes_failed == 2u);
  BOOST_TEST(h.log_mentions("refused: hello: field 'capabilities': no OS label"));
}

BOOST_AUTO_TEST_CASE(no_hello_within_the_handshake_timeout_closes, *utf::timeout(20)) {
  auto o = quick_options();
  o.handshake_timeout = 300ms;
  harness h{o};
  const auto started = clock_type::now();
  auto mute = h.worker({.send_hello = false});
  auto half = h.worker({.send_hello = false});
  half->send_raw(R"({"type":"hello","vers)");
  BOOST_REQUIRE(h.all_closed());
  BOOST_TEST((clock_type::now() - started >= 300ms));
  for (const auto& w : {mute, half}) {
    BOOST_TEST(codes(*w) == std::vector<std::string>{"handshake_timeout"});
    BOOST_TEST(w->errors.front().fatal);
  }
}

BOOST_AUTO_TEST_CASE(no_common_version_is_a_version_mismatch, *utf::timeout(20)) {
  harness h;
  auto future = h.worker({.versions = {2, 3}});
  auto both = h.worker({.versions = {1, 2}});
  BOOST_REQUIRE(h.run_until([&] { return future->ended && both->welcome; }, 5s));
  BOOST_TEST(codes(*future) == std::vector<std::string>{"version_mismatch"});
  BOOST_TEST(future->errors.front().message.find("[2, 3]") != std::string::npos);
  BOOST_TEST(both->welcome->protocol == 1);
}

BOOST_AUTO_TEST_CASE(names_are_unique_among_connected_workers, *utf::timeout(20)) {
  harness h;
  auto first = h.worker({.worker_id = "builder"});
  h.welcomed({first});
  auto second = h.worker({.worker_id = "builder"});
  auto anonymous = h.worker({});
  auto empty = h.worker({.worker_id = ""});
  auto hosted = h.worker({.host = "ci-7", .pid = 4242});
  auto long_name = h.worker({.worker_id = std::string(1000, 'n')});
  auto control = h.worker({.worker_id = "evil\nworker ok: joined"});
  h.welcomed({second, anonymous, empty, hosted, long_name, control});
  BOOST_TEST(first->welcome->worker == "builder");
  BOOST_TEST(second->welcome->worker.starts_with("builder-"));
  BOOST_TEST(anonymous->welcome->worker.starts_with("worker-"));
  BOOST_TEST(empty->welcome->worker.starts_with("worker-"));
  BOOST_TEST(anonymous->welcome->worker != empty->welcome->worker);
  BOOST_TEST(hosted->welcome->worker.starts_with("ci-7-4242-"));
  BOOST_TEST(long_name->welcome->worker.starts_with("worker-"));
  BOOST_TEST(control->welcome->worker.starts_with("worker-"));
}

BOOST_AUTO_TEST_CASE(accept_serves_any_connected_stream, *utf::timeout(20)) {
  // A local socket pair instead of TCP: the session template takes any Asio stream.
  harness h;
  using local = asio::local::stream_protocol;
  local::socket master_end{h.io}, worker_end{h.io};
  asio::local::connect_pair(master_end, worker_end);
  h.master->accept(std::move(master_end), "pair");
  coord::hello_message hello;
  hello.versions = {1};
  hello.capabilities = {"linux"};
  hello.worker_id = "paired";
  asio::write(worker_end, asio::buffer(coord::encode(hello)));
  h.start([] {
    drover::pipeline p;
    add_remote(p, "only");
    return p;
  }());
  // Answer on the worker end, synchronously: welcome, assign, then bye.
  coord::line_splitter splitter;
  std::vector<std::string> types;
  bool done = false;
  std::function<void()> read_next;
  std::array<char, 4096> buffer;
  read_next = [&] {
    worker_end.async_read_some(
        asio::buffer(buffer), [&](boost::system::error_code ec, std::size_t n) {
          if (ec) {
            done = true;
            return;
          }
          splitter.feed({buffer.data(), n});
          for (auto next = splitter.next(); next.what == coord::line_splitter::status::line;
               next = splitter.next()) {
            auto decoded = coord::decode(next.line);
            BOOST_REQUIRE(decoded.ok());
            types.emplace_back(coord::type_name(decoded.value()));
            if (auto* a = std::get_if<coord::assign_message>(&decoded.value())) {
              coord::result_message r;
              r.run = a->run;
              r.epoch = a->epoch;
              r.module = a->module;
              r.attempt = a->attempt;
              r.value = 42;
              asio::write(worker_end, asio::buffer(coord::encode(r)));
            }
          }
          read_next();
        });
  };
  read_next();
  const auto& report = h.finish();
  require_all_succeeded(report);
  BOOST_TEST(report.modules.front().value == json::value(42));
  BOOST_REQUIRE(h.run_until([&] { return done; }, 5s));
  BOOST_TEST(types.front() == "welcome");
  BOOST_TEST(std::count(types.begin(), types.end(), "assign") == 1);
  BOOST_TEST(types.back() == "bye");
  BOOST_TEST(h.log_mentions("worker pair (paired): joined"));
}

BOOST_AUTO_TEST_CASE(a_worker_that_stops_reading_is_lost_when_its_send_queue_is_full,
                     *utf::timeout(60)) {
  // A peer that says hello with many slots and then only writes, never reads: the assigns
  // fill its socket buffers, and the error the master answers to each line it sends (an
  // unknown message type, not fatal) waits in the session's queue. Past the limit the master
  // drops it and reassigns its attempts, instead of buffering without bound.
  auto o = quick_options();
  o.line_limits.max_line_bytes = 16 * 1024;
  // Above the whole burst of assigns below (about 1 MB): however the run splits the burst into
  // batches, and whether or not a batch finds the writer idle, the assigns alone never reach it.
  o.max_send_queue_bytes = 2 * 1024 * 1024;
  harness h{o};
  using local = asio::local::stream_protocol;
  local::socket master_end{h.io}, stuck_end{h.io};
  asio::local::connect_pair(master_end, stuck_end);
  h.master->accept(std::move(master_end), "stuck-peer");
  coord::hello_message hello;
  hello.versions = {1};
  hello.capabilities = {"linux"};
  hello.worker_id = "stuck";
  hello.slots = 2000;
  asio::write(stuck_end, asio::buffer(coord::encode(hello)));
  BOOST_REQUIRE(h.run_until([&] { return h.master->stats().workers_welcomed == 1; }, 5s));

  drover::pipeline p;
  p.name = "padded";
  for (int i = 0; i < 1000; ++i) {
    add_remote(p, "m" + std::to_string(i))
        .kind("noop", json::object{{"pad", std::string(1000, 'p')}});
  }
  h.start(std::move(p));
  // A megabyte of assigns: more than the socket pair's buffers take, so that writing them
  // never finishes. They stay under the limit; the errors the master answers to the peer's
  // lines (about 130 bytes each) queue behind them until the queue passes it.
  BOOST_TEST(!h.run_until([&] { return h.master->stats().workers_stalled > 0; }, 200ms));
  const std::string unknown = R"({"type":"from_the_future"})"
                              "\n";
  std::string many;
  for (int i = 0; i < 1000; ++i)
    many += unknown;
  // The peer writes without blocking: this thread also runs the master, which cannot read
  // while a blocking write waits for it to.
  // What does not fit waits for the next round, so that lines are never cut.
  stuck_end.non_blocking(true);
  std::string unsent;
  for (int round = 0; round < 400 && h.master->stats().workers_stalled == 0; ++round) {
    if (unsent.empty()) unsent = many;
    boost::system::error_code would_block;
    unsent.erase(0, stuck_end.write_some(asio::buffer(unsent), would_block));
    h.run_until([] { return false; }, 20ms);
  }
  BOOST_REQUIRE(h.master->stats().workers_stalled == 1u);
  auto healthy = h.worker({.worker_id = "healthy", .slots = 16});
  const auto& report = h.finish();
  require_all_succeeded(report);
  BOOST_TEST(report.remote.workers_lost == 1u);
  BOOST_TEST(report.remote.reassigned == 1000u);
  BOOST_TEST(healthy->assigns.size() == 1000u);
  BOOST_TEST(healthy->errors.empty());
  BOOST_TEST(h.log_mentions("worker stuck-peer (stuck): lost: it stopped reading: "));
  BOOST_TEST(h.log_mentions("over the limit of 2097152 bytes"));
  BOOST_TEST(h.master->stats().workers_silent == 0u);
  BOOST_REQUIRE(h.all_closed());
}

BOOST_AUTO_TEST_CASE(every_rejected_result_is_answered_and_counted, *utf::timeout(30)) {
  harness h;
  auto w = h.worker({.worker_id = "sloppy"});
  h.welcomed({w});
  bool misbehaved = false;
  w->on_assign = [&](fake_worker& self, const coord::assign_message& a) {
    if (misbehaved) return false;
    misbehaved = true;
    auto bad = [&](auto change) {
      auto r = self.result_for(a);
      change(r);
      self.send(r);
    };
    bad([](coord::result_message& r) { r.run = "another-run"; });        // stale, by the master
    bad([](coord::result_message& r) { r.module = "no-such-module"; });  // unknown, by the run
    bad([](coord::result_message& r) { r.module = "final"; });           // stale, by the run
    bad([](coord::result_message& r) { r.attempt += 4; });               // stale, by the master
    bad([](coord::result_message& r) { r.epoch += 1; });                 // stale, by the run
    self.send(self.result_for(a));
    self.send(self.result_for(a));  // duplicate, by the master
    return true;
  };
  h.start(layered());
  const auto& report = h.finish();
  require_all_succeeded(report);
  BOOST_TEST(report.remote.rejected_results == 6u);
  BOOST_REQUIRE(h.all_closed());
  std::map<std::string, int> by_code;
  for (const auto& e : w->errors) {
    ++by_code[e.code];
    BOOST_TEST(!e.fatal);
    BOOST_TEST(e.attempt.has_value());
  }
  BOOST_TEST(by_code["stale_result"] == 4);
  BOOST_TEST(by_code["unknown_module"] == 1);
  BOOST_TEST(by_code["duplicate_result"] == 1);
  const auto stats = h.master->stats();
  BOOST_TEST(stats.results_rejected == 6u);
  BOOST_TEST(stats.errors(coord::error_code::stale_result) == 4u);
  BOOST_TEST(stats.errors(coord::error_code::unknown_module) == 1u);
  BOOST_TEST(stats.errors(coord::error_code::duplicate_result) == 1u);
  auto message_of = [&](std::string_view code) {
    for (const auto& e : w->errors) {
      if (e.code == code) return e.message;
    }
    return std::string();
  };
  BOOST_TEST(message_of("unknown_module") ==
             "result for 'no-such-module' attempt 1 was rejected: no module of this run has that "
             "id");
  BOOST_TEST(message_of("duplicate_result")
                 .find("a result for that attempt already arrived on this connection") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_assignment_table_finds_every_module_as_it_grows) {
  coord::detail::assignment_table table;
  BOOST_TEST(table.find("m0") == nullptr);
  for (std::uint32_t i = 0; i < 5000; ++i)
    table.add("module-with-a-long-id-" + std::to_string(i), i);
  table.add("module-with-a-long-id-7", 7);  // a retry assigned here again
  for (std::uint32_t i = 0; i < 5000; ++i) {
    const std::uint32_t* index = table.find("module-with-a-long-id-" + std::to_string(i));
    BOOST_REQUIRE(index != nullptr);
    BOOST_TEST(*index == i);
  }
  BOOST_TEST(table.find("module-with-a-long-id-5000") == nullptr);
  BOOST_TEST(table.find("") == nullptr);
}

BOOST_AUTO_TEST_CASE(stop_closes_every_connection, *utf::timeout(20)) {
  harness h;
  auto attached = h.worker();
  auto shy = h.worker({.send_hello = false});
  h.welcomed({attached});
  BOOST_REQUIRE(h.run_until([&] { return h.master->open_connections() == 2; }, 5s));
  h.master->stop();
  BOOST_REQUIRE(h.all_closed());
  BOOST_REQUIRE(attached->bye.has_value());
  BOOST_TEST(attached->bye->reason == "master stopping");
  BOOST_TEST(shy->ended);
  // Stopped: a new connection is closed at once.
  auto after = h.worker();
  BOOST_REQUIRE(h.run_until([&] { return after->ended; }, 5s));
  BOOST_TEST(!after->welcome.has_value());
}

// --- bad input after the handshake ---------------------------------------------------------

namespace {

/// What the misbehaving worker sends instead of answering its first assignment.
struct bad_case {
  std::string name;
  std::function<std::string(fake_worker&, const coord::assign_message&)> bytes;
  std::string expected_code;  ///< the error the worker gets; empty: none
  bool fatal = true;          ///< the master closes the connection (and detaches the worker)
  bool stall = false;         ///< the worker goes silent after sending
};

std::ostream& operator<<(std::ostream& os, const bad_case& c) {
  return os << c.name;
}

std::string line(std::string text) {
  return text + "\n";
}

/// A result for `a` with one field replaced by raw JSON text (or removed when empty).
std::string result_with(fake_worker& w, const coord::assign_message& a, std::string field,
                        std::string raw) {
  json::object o = json::parse(coord::encode(w.result_for(a))).as_object();
  o.erase(field);
  std::string text = json::serialize(o);
  if (!raw.empty()) text.insert(text.size() - 1, ",\"" + field + "\":" + raw);
  return line(text);
}

coord::hello_message hello_v1() {
  coord::hello_message hello;
  hello.versions = {1};
  return hello;
}

std::string nested(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

std::vector<bad_case> bad_cases() {
  using coord::assign_message;
  using F = std::function<std::string(fake_worker&, const assign_message&)>;
  auto fixed = [](std::string bytes) -> F {
    return [bytes](fake_worker&, const assign_message&) { return bytes; };
  };
  auto with = [](std::string field, std::string raw) -> F {
    return [field, raw](fake_worker& w, const assign_message& a) {
      return result_with(w, a, field, raw);
    };
  };
  auto then_answered = [](F first) -> F {
    return [first](fake_worker& w, const assign_message& a) {
      return first(w, a) + coord::encode(w.result_for(a));
    };
  };
  return {
      // Lines that are not JSON, or not what a message is: fatal, the attempt moves.
      {"plain text", fixed(line("hello master")), "malformed_json"},
      {"truncated json", fixed(line(R"({"type":"result","run":)")), "malformed_json"},
      {"data after the object", fixed(line(R"({"type":"heartbeat"} {"type":"heartbeat"})")),
       "malformed_json"},
      {"binary garbage", fixed(line(std::string("\x00\x01\xfe\xff\x80 garbage", 14))),
       "malformed_json"},
      {"invalid utf-8", with("value", "\"\xc3\x28\""), "malformed_json"},
      {"single quotes", fixed(line("{'type':'heartbeat'}")), "malformed_json"},
      {"array", fixed(line("[1,2,3]")), "not_an_object"},
      {"number", fixed(line("42")), "not_an_object"},
      {"string", fixed(line(R"("result")")), "not_an_object"},
      {"empty object", fixed(line("{}")), "missing_type"},
      {"null type", fixed(line(R"({"type":null})")), "missing_type"},
      {"type not a string", fixed(line(R"({"type":7})")), "bad_field"},
      {"attempt as a string", with("attempt", "\"1\""), "bad_field"},
      {"attempt zero", with("attempt", "0"), "bad_field"},
      {"attempt over 32 bits", with("attempt", "4294967296"), "bad_field"},
      {"attempt as a fraction", with("attempt", "1.5"), "bad_field"},
      {"huge number", with("attempt", "1e400"), "bad_field"},
      {"very long integer", with("epoch", "123456789012345678901234567890"), "bad_field"},
      {"negative epoch", with("epoch", "-1"), "bad_field"},
      {"missing module", with("module", ""), "bad_field"},
      {"module not a string", with("module", "[\"a0\"]"), "bad_field"},
      {"unknown status", with("status", "\"done\""), "bad_field"},
      {"status pending", with("status", "\"pending\""), "bad_field"},
      {"failed without error", with("status", "\"failed\""), "bad_field"},
      {"bad heartbeat entry", fixed(line(R"({"type":"heartbeat","running":[{"module":"a0"}]})")),
       "bad_field"},
      {"too deep", with("value", nested(40)), "too_deep"},
      {"oversized line",
       fixed(line(R"({"type":"heartbeat","pad":")" + std::string(80000, 'x') + "\"}")),
       "line_too_long"},
      {"fatal error from the worker",
       fixed(coord::encode(
           coord::make_error_message(coord::error_code::internal, "out of disk", true))),
       ""},
      {"bye in the middle of an attempt", fixed(coord::encode(coord::bye_message{"leaving"})), ""},
      {"half a line, then silence", fixed(R"({"type":"result","run":"r-te)"), "", true, true},
      // Lines the master answers and otherwise ignores: the worker carries on.
      {"unknown type", then_answered(fixed(line(R"({"type":"progress","percent":50})"))),
       "unknown_type", false},
      {"assign from a worker",
       then_answered([](fake_worker&, const assign_message& a) { return coord::encode(a); }),
       "unknown_type", false},
      {"hello after the handshake", then_answered(fixed(coord::encode(hello_v1()))), "unknown_type",
       false},
      {"result for a module never assigned",
       then_answered([](fake_worker& w, const assign_message& a) {
         auto r = w.result_for(a);
         r.module = "no-such-module";
         return coord::encode(r);
       }),
       "unknown_module", false},
      {"stale attempt", then_answered([](fake_worker& w, const assign_message& a) {
         auto r = w.result_for(a);
         r.attempt = a.attempt + 7;
         return coord::encode(r);
       }),
       "stale_result", false},
      {"wrong epoch", then_answered([](fake_worker& w, const assign_message& a) {
         auto r = w.result_for(a);
         r.epoch = a.epoch + 1;
         return coord::encode(r);
       }),
       "stale_result", false},
      {"wrong run", then_answered([](fake_worker& w, const assign_message& a) {
         auto r = w.result_for(a);
         r.run = "another-run";
         return coord::encode(r);
       }),
       "stale_result", false},
      {"duplicate result",
       [](fake_worker& w, const assign_message& a) {
         return coord::encode(w.result_for(a)) + coord::encode(w.result_for(a));
       },
       "duplicate_result", false},
      {"result for a 1000-byte module id",
       then_answered([](fake_worker& w, const assign_message& a) {
         auto r = w.result_for(a);
         r.module = std::string(1000, 'm');  // echoed cut, never in full
         return coord::encode(r);
       }),
       "unknown_module", false},
      {"result for a module of the run never assigned here",
       then_answered([](fake_worker& w, const assign_message& a) {
         auto r = w.result_for(a);
         r.module = "final";  // depends on everything: not assigned to anyone yet
         return coord::encode(r);
       }),
       "stale_result", false},
      {"crlf and empty lines are fine",
       [](fake_worker& w, const assign_message& a) {
         std::string text = coord::encode(w.result_for(a));
         text.insert(text.size() - 1, "\r");
         return "\n\r\n" + text;
       },
       "", false},
      {"malformed error from the worker", then_answered(fixed(line(R"({"type":"error"})"))), "",
       false},
      {"non-fatal error from the worker",
       then_answered(fixed(coord::encode(
           coord::make_error_message(coord::error_code::internal, "disk almost full")))),
       "", false},
  };
}

}  // namespace

BOOST_TEST_DECORATOR(*utf::timeout(30))
BOOST_DATA_TEST_CASE(bad_input_never_loses_a_module, utf::data::make(bad_cases()), c) {
  auto o = quick_options();
  o.line_limits.max_line_bytes = 64 * 1024;
  o.lost_worker_timeout = 800ms;
  harness h{o};
  auto bad = h.worker({.worker_id = "bad"});
  auto good = h.worker({.worker_id = "good"});
  h.welcomed({bad, good});
  bool misbehaved = false;
  bad->on_assign = [&](fake_worker& self, const coord::assign_message& a) {
    if (misbehaved) return false;  // later assignments get the usual answer
    misbehaved = true;
    self.send_raw(c.bytes(self, a));
    if (c.stall) self.silent = true;
    return true;
  };
  h.start(layered());
  BOOST_TEST_CHECKPOINT("case: " << c.name);
  const auto& report = h.finish(20s);
  BOOST_TEST_CONTEXT("case: " << c.name) {
    require_all_succeeded(report);
    BOOST_TEST(n_of(report, "final") == 13);
    BOOST_REQUIRE_MESSAGE(misbehaved, "the bad worker never got an assignment");

    BOOST_REQUIRE(h.all_closed());
    if (c.expected_code.empty()) {
      BOOST_TEST(codes(*bad) == std::vector<std::string>{});
    } else {
      BOOST_REQUIRE(!bad->errors.empty());
      BOOST_TEST(bad->errors.front().code == c.expected_code, bad->errors.front().message);
      BOOST_TEST(bad->errors.front().fatal == c.fatal);
      BOOST_TEST(bad->errors.front().message.size() < 1000u);
      if (bad->errors.front().module) BOOST_TEST(bad->errors.front().module->size() <= 256u);
      BOOST_TEST(h.master->stats().errors_sent.at(c.expected_code) >= 1u);
    }
    if (c.fatal) {
      // The worker was dropped: at most the one error, no goodbye, and its attempt moved.
      BOOST_TEST(bad->errors.size() <= 1u);
      BOOST_TEST(!bad->bye.has_value());
      BOOST_TEST(report.remote.reassigned >= 1u);
      BOOST_TEST(report.remote.workers_lost == 1u);
    } else {
      // The worker carried on to the end of the run.
      BOOST_REQUIRE(bad->bye.has_value());
      BOOST_TEST(bad->bye->reason == "run finished");
      BOOST_TEST(report.remote.workers_lost == 0u);
      BOOST_TEST(report.remote.reassigned == 0u);
    }
    if (c.stall) BOOST_TEST(h.master->stats().workers_silent == 1u);
    // The healthy worker never heard of it.
    BOOST_TEST(good->errors.empty());
    BOOST_TEST(good->bye.has_value());
    BOOST_TEST(bad->undecodable_lines == 0);
    BOOST_TEST(good->undecodable_lines == 0);
  }
}

BOOST_AUTO_TEST_SUITE_END()
