// run_service: several runs at once, the bounded queue, cancellation, the event log, and a
// restart on the same state directory that resumes what did not finish.
#define BOOST_TEST_MODULE service
#include <drover/coord/service.hpp>

#include "../common/printing.hpp"
#include "service_test_support.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using drover::coord::run_service;
using drover::coord::service_options;
using drover::coord::submit_error;
using namespace drover::service_test;

namespace {

std::string chain(const std::string& prefix, int n, int ms) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    text += prefix + std::to_string(i) + " " + std::to_string(ms);
    if (i > 0) text += " " + prefix + std::to_string(i - 1);
    text += "\n";
  }
  return text;
}

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    path = std::filesystem::temp_directory_path() /
           ("drover-service-test-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// A service on its own io_context thread (threads > 1: a pool), as `drover serve` runs it.
struct service_fixture {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
  std::unique_ptr<run_service> service;
  std::vector<std::thread> threads;

  explicit service_fixture(service_options options, int thread_count = 1) {
    options.parse = text_pipeline;
    service = std::make_unique<run_service>(io.get_executor(), std::move(options));
    service->start();
    for (int i = 0; i < thread_count; ++i)
      threads.emplace_back([this] { io.run(); });
  }
  ~service_fixture() { shut_down(); }
  void shut_down() {
    if (threads.empty()) return;
    service->stop();
    guard.reset();
    for (auto& t : threads)
      t.join();
    threads.clear();
  }
  // Polls until the run's status is one of `wanted` or 20 s pass; returns the last status.
  std::string wait_for(const std::string& run, std::initializer_list<std::string_view> wanted) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    std::string status;
    while (std::chrono::steady_clock::now() < deadline) {
      status = service->run_status(run).value_or("unknown");
      for (auto w : wanted)
        if (status == w) return status;
      std::this_thread::sleep_for(5ms);
    }
    return status;
  }
  std::string finish(const std::string& run) {
    return wait_for(run, {"succeeded", "failed", "cancelled", "interrupted"});
  }
  json::object module(const std::string& run, std::string_view id) {
    auto found = service->run_json(run);
    BOOST_REQUIRE(found);
    for (const auto& m : found->at("modules").get_array()) {
      if (m.at("id").get_string() == id) return m.get_object();
    }
    BOOST_FAIL("no module " << id);
    return {};
  }
};

const std::array thread_counts{1, 2};

}  // namespace

BOOST_AUTO_TEST_CASE(concurrent_runs_each_finish_with_their_own_report,
                     *boost::unit_test::timeout(60)) {
  for (int threads : thread_counts) {
    BOOST_TEST_CONTEXT("threads " << threads) {
      service_options options;
      options.workers = 4;
      options.max_running_runs = 2;
      service_fixture f(options, threads);
      std::vector<std::string> runs;
      for (int r = 0; r < 4; ++r) {
        auto submitted = f.service->submit(chain("m", 5 + r, 5), "p" + std::to_string(r));
        BOOST_TEST_REQUIRE((submitted.error == submit_error::none), submitted.message);
        runs.push_back(submitted.run);
      }
      BOOST_TEST(std::set<std::string>(runs.begin(), runs.end()).size() == 4u);
      for (int r = 0; r < 4; ++r) {
        BOOST_TEST(f.finish(runs[r]) == "succeeded");
        auto found = f.service->run_json(runs[r]);
        BOOST_REQUIRE(found);
        const auto& report = found->at("report").as_object();
        BOOST_TEST(report.at("run").as_string() == runs[r]);
        BOOST_TEST(report.at("pipeline").as_string() == "p" + std::to_string(r));
        BOOST_TEST(report.at("modules").as_array().size() == static_cast<std::size_t>(5 + r));
        BOOST_TEST(report.at("counts").at("succeeded").to_number<std::int64_t>() == 5 + r);
        for (const auto& m : report.at("modules").as_array()) {
          BOOST_TEST(m.at("value").as_string() ==
                     "p" + std::to_string(r) + "/" + std::string(m.at("id").as_string()));
        }
      }
      const auto listed = f.service->runs_json();
      BOOST_TEST(listed.at("runs").as_array().size() == 4u);
      BOOST_TEST(listed.at("queue").at("queued_runs").to_number<std::int64_t>() == 0);
      BOOST_TEST(listed.at("queue").at("waiting_modules").to_number<std::int64_t>() == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_full_queue_refuses_and_loses_nothing_accepted,
                     *boost::unit_test::timeout(60)) {
  service_options options;
  options.max_running_runs = 1;
  options.max_queued_runs = 1;
  service_fixture f(options);
  auto first = f.service->submit("a 1000\n", "first");
  auto second = f.service->submit("b 10\n", "second");
  BOOST_TEST_REQUIRE((first.error == submit_error::none));
  BOOST_TEST_REQUIRE((second.error == submit_error::none));
  BOOST_TEST(f.wait_for(first.run, {"running"}) == "running");
  BOOST_TEST(*f.service->run_status(second.run) == "queued");
  auto third = f.service->submit("c 10\n", "third");
  BOOST_TEST((third.error == submit_error::queue_full));
  BOOST_TEST(third.message.find("--max-queued-runs 1") != std::string::npos, third.message);
  BOOST_TEST(third.retry_after.count() > 0);
  BOOST_TEST(third.run.empty());
  BOOST_TEST(f.finish(first.run) == "succeeded");
  BOOST_TEST(f.finish(second.run) == "succeeded");
  BOOST_TEST(f.service->metrics_text().find("drover_submissions_refused_total{reason="
                                            "\"queue_full\"} 1") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(waiting_modules_are_bounded_across_runs, *boost::unit_test::timeout(60)) {
  service_options options;
  options.max_waiting_modules = 5;
  service_fixture f(options);
  auto big = f.service->submit(chain("x", 4, 200), "big");
  BOOST_TEST_REQUIRE((big.error == submit_error::none));
  auto refused = f.service->submit(chain("y", 3, 1), "refused");
  BOOST_TEST((refused.error == submit_error::queue_full));
  BOOST_TEST(refused.message.find("--max-waiting-modules 5") != std::string::npos, refused.message);
  auto fits = f.service->submit(chain("z", 1, 1), "fits");
  BOOST_TEST((fits.error == submit_error::none), fits.message);
  BOOST_TEST(f.finish(big.run) == "succeeded");
  BOOST_TEST(f.finish(fits.run) == "succeeded");
}

BOOST_AUTO_TEST_CASE(an_invalid_pipeline_is_refused_with_its_problems) {
  service_options options;
  service_fixture f(options);
  auto empty = f.service->submit("", "empty.json");
  BOOST_TEST((empty.error == submit_error::invalid));
  BOOST_TEST(empty.message == "empty.json:1:1: no modules\n");
  auto cycle = f.service->submit("a 1 b\nb 1 a\n", "cycle.json");
  BOOST_TEST((cycle.error == submit_error::invalid));
  BOOST_TEST(cycle.message.find("cycle") != std::string::npos, cycle.message);
  BOOST_TEST(f.service->runs_json().at("runs").as_array().empty());
}

BOOST_AUTO_TEST_CASE(cancel_ends_a_queued_run_at_once_and_a_running_one_promptly,
                     *boost::unit_test::timeout(60)) {
  long_wait_ms = 30'000;
  service_options options;
  options.max_running_runs = 1;
  service_fixture f(options);
  auto running = f.service->submit("long 0\n", "running");
  auto queued = f.service->submit("q 1\n", "queued");
  BOOST_TEST(f.wait_for(running.run, {"running"}) == "running");
  BOOST_TEST(f.service->cancel(queued.run));
  BOOST_TEST(*f.service->run_status(queued.run) == "cancelled");
  BOOST_TEST(f.module(queued.run, "q").at("status").as_string() == "cancelled");
  const auto before = std::chrono::steady_clock::now();
  BOOST_TEST(f.service->cancel(running.run));
  BOOST_TEST(f.finish(running.run) == "cancelled");
  BOOST_TEST((std::chrono::steady_clock::now() - before < 10s));
  BOOST_TEST(!f.service->cancel(running.run));
  BOOST_TEST(!f.service->cancel("r-none"));
  BOOST_TEST(calls_of("queued/q") == 0);
}

BOOST_AUTO_TEST_CASE(a_restart_on_the_state_directory_resumes_unfinished_runs,
                     *boost::unit_test::timeout(60)) {
  temp_dir dir;
  service_options options;
  options.state_dir = dir.path;
  options.journal_durability = drover::durability::relaxed;
  std::string run, done;
  long_wait_ms = 30'000;
  {
    service_fixture f(options);
    done = f.service->submit("quick 1\n", "done.json").run;
    BOOST_TEST(f.finish(done) == "succeeded");
    run = f.service->submit("first 1\nlong 0 first\n", "resumed.json").run;
    // Once long runs, first is journaled (a record is durable before dependents start).
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (f.module(run, "long").at("status").as_string() != "running" &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    BOOST_TEST(f.module(run, "first").at("status").as_string() == "succeeded");
    BOOST_TEST(f.module(run, "long").at("status").as_string() == "running");
    f.shut_down();  // as SIGTERM does: the run is cancelled but stays unfinished on disk
    BOOST_TEST(*f.service->run_status(run) == "interrupted");
  }
  BOOST_TEST(std::filesystem::exists(dir.path / "runs" / run / "journal.jsonl"));
  BOOST_TEST(!std::filesystem::exists(dir.path / "runs" / run / "report.json"));
  long_wait_ms = 1;
  service_fixture again(options);
  BOOST_TEST(again.finish(run) == "succeeded");
  BOOST_TEST(again.module(run, "first").at("status").as_string() == "cached");
  BOOST_TEST(calls_of("resumed.json/first") == 1);  // not run again
  BOOST_TEST(calls_of("resumed.json/long") == 2);
  BOOST_TEST(*again.service->run_status(done) == "succeeded");  // listed from its report
  BOOST_TEST(calls_of("done.json/quick") == 1);
  BOOST_TEST(std::filesystem::exists(dir.path / "runs" / run / "report.json"));
  // Its events file holds both lives of the run: the first ended cancelled by the shutdown.
  std::ifstream events(dir.path / "runs" / run / "events.jsonl");
  std::map<std::string, int> types;
  std::string last;
  std::int64_t lines = 0;
  for (std::string line; std::getline(events, line); last = line, ++lines) {
    const auto e = json::parse(line);
    ++types[std::string(e.at("type").as_string())];
    BOOST_TEST(e.at("seq").to_number<std::int64_t>() == lines);  // one stream across lives
  }
  BOOST_TEST(types["run_queued"] == 2);
  BOOST_TEST(types["run_started"] == 2);
  BOOST_TEST(types["run_finished"] == 2);
  BOOST_TEST(json::parse(last).at("message").as_string() == "succeeded");
  // The stream has both lives too: a client resuming with an old Last-Event-ID goes on.
  const auto stream = again.service->events_after(run, -1, 1000);
  BOOST_REQUIRE(stream);
  BOOST_TEST(stream->first_seq == 0u);
  BOOST_TEST(static_cast<std::int64_t>(stream->events.size()) == lines);
  BOOST_TEST(stream->finished);
}

BOOST_AUTO_TEST_CASE(the_event_log_resumes_after_a_seq_and_says_what_it_dropped,
                     *boost::unit_test::timeout(60)) {
  service_options options;
  options.events_kept_per_run = 8;
  service_fixture f(options);
  auto run = f.service->submit(chain("e", 6, 1), "events").run;
  BOOST_TEST(f.finish(run) == "succeeded");
  auto all = f.service->events_after(run, -1, 100);
  BOOST_REQUIRE(all);
  BOOST_TEST(all->events.size() == 8u);
  BOOST_TEST(all->skipped);
  BOOST_TEST(all->finished);
  const auto last = all->first_seq + all->events.size() - 1;
  BOOST_TEST(json::parse(all->events.back()).at("type").as_string() == "run_finished");
  BOOST_TEST(json::parse(all->events.back()).at("seq").to_number<std::int64_t>() ==
             static_cast<std::int64_t>(last));
  auto tail = f.service->events_after(run, static_cast<std::int64_t>(last) - 2, 100);
  BOOST_REQUIRE(tail);
  BOOST_TEST(!tail->skipped);
  BOOST_TEST(tail->first_seq == last - 1);
  BOOST_TEST(tail->events.size() == 2u);
  auto limited = f.service->events_after(run, static_cast<std::int64_t>(last) - 3, 1);
  BOOST_TEST(limited->events.size() == 1u);
  BOOST_TEST(!limited->finished);
  BOOST_TEST(!f.service->events_after("r-none", -1, 1));
}

BOOST_AUTO_TEST_CASE(metrics_and_workers_follow_the_runs, *boost::unit_test::timeout(60)) {
  service_options options;
  options.workers = 3;
  service_fixture f(options);
  auto ok = f.service->submit("a 1\nb 1 a\n", "ok").run;
  auto bad = f.service->submit("fail 1\nafter 1 fail\n", "bad").run;
  BOOST_TEST(f.finish(ok) == "succeeded");
  BOOST_TEST(f.finish(bad) == "failed");
  BOOST_TEST(f.module(bad, "after").at("status").as_string() == "skipped");
  const auto text = f.service->metrics_text();
  for (std::string_view line :
       {"drover_runs_finished_total{status=\"succeeded\"} 1",
        "drover_runs_finished_total{status=\"failed\"} 1",
        "drover_modules_finished_total{status=\"succeeded\"} 2",
        "drover_modules_finished_total{status=\"failed\"} 1",
        "drover_modules_finished_total{status=\"skipped\"} 1", "drover_attempts_total 3",
        "drover_run_duration_seconds_count 2", "drover_assignment_latency_seconds_count 3",
        "drover_worker_slots{kind=\"local\"} 3", "# TYPE drover_run_duration_seconds histogram"}) {
    BOOST_TEST(text.find(line) != std::string::npos, line);
  }
  const auto workers = f.service->workers_json().at("workers").as_array();
  BOOST_TEST_REQUIRE(workers.size() == 1u);
  BOOST_TEST(workers[0].at("slots").to_number<std::int64_t>() == 3);
  BOOST_TEST(workers[0].at("busy").to_number<std::int64_t>() == 0);
  BOOST_TEST(workers[0].at("utilisation").as_double() > 0.0);
}

BOOST_AUTO_TEST_CASE(runs_at_once_share_the_slots_and_never_use_more_than_there_are,
                     *boost::unit_test::timeout(60)) {
  // One slot, two runs at once: the second gets the slot when the first's current module ends
  // (it holds none, the first holds one), so it finishes long before the first; and the slot
  // is never used twice at once: no two bodies ever run together. (The service's `busy` gauge
  // is not the measure: each run reports its own starts and ends, so for a moment it may count
  // the next run's start before the last run's end. It is checked at the end, settled.)
  for (int threads : thread_counts) {
    BOOST_TEST_CONTEXT("threads " << threads) {
      service_options options;
      options.workers = 1;
      options.max_running_runs = 4;
      service_fixture f(options, threads);
      most_bodies_running = 0;
      std::string wide;
      for (int i = 0; i < 12; ++i)
        wide += "a" + std::to_string(i) + " 100\n";
      auto first = f.service->submit(wide, "first");
      BOOST_TEST(f.wait_for(first.run, {"running"}) == "running");
      auto second = f.service->submit("b 1\n", "second");
      BOOST_TEST(f.wait_for(second.run, {"running", "succeeded"}) != "queued");
      BOOST_TEST(f.finish(second.run) == "succeeded");
      BOOST_TEST(*f.service->run_status(first.run) == "running");
      BOOST_TEST(f.finish(first.run) == "succeeded");
      BOOST_TEST(most_bodies_running.load() == 1);
      const auto local = f.service->workers_json().at("workers").at(0);
      BOOST_TEST(local.at("busy").to_number<std::size_t>() == 0u);
    }
  }
}
