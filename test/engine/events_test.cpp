#include <drover/event.hpp>
#include <drover/event_channel.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#define BOOST_TEST_MODULE events
#include "test_support.hpp"

#include <map>

namespace {

using namespace drover::test;
using drover::event_type;
using drover::module_status;

/// Fails attempt 1, succeeds from attempt 2.
asio::awaitable<json::value> fail_once(drover::module_context& ctx) {
  co_await wait_for(1ms);
  if (ctx.attempt() == 1) throw std::runtime_error("first try fails");
  co_return "second try";
}

/// Seven modules covering every path: plain success, a dependency, a retry, a failure, a
/// skip cascade from it, a skip condition and a skip cascade from that.
drover::pipeline every_path() {
  drover::pipeline p;
  p.name = "every-path";
  p.mode = drover::execution_mode::keep_going;
  p.add("a", wait_body(2ms, 1));
  p.add("b", wait_body(2ms, 2), {"a"});
  auto r = p.add("r", fail_once);
  r.retries(1);
  r.backoff(exact_backoff(5ms));
  p.add("f", fail_body("broken pipe", 2ms));
  p.add("g", value_body(), {"f"});
  p.add("s", value_body()).skip_if([] { return std::optional<std::string>{"not today"}; });
  p.add("t", value_body(), {"s"});
  return p;
}

std::vector<event_type> types_of(const std::vector<recorded_event>& events) {
  std::vector<event_type> types;
  for (const auto& e : events)
    types.push_back(e.type);
  return types;
}

/// The module's event types, with a module_ready right after a module_retrying dropped (the
/// header does not say whether a retry is announced as ready again).
std::vector<event_type> normalized_types(const std::vector<recorded_event>& events) {
  std::vector<event_type> types;
  for (const auto& e : events) {
    if (e.type == event_type::module_ready && !types.empty() &&
        types.back() == event_type::module_retrying)
      continue;
    types.push_back(e.type);
  }
  return types;
}

void expect_single_finish(const std::vector<recorded_event>& events, module_status status,
                          std::string_view reason) {
  BOOST_REQUIRE(!events.empty());
  const auto& last = events.back();
  BOOST_TEST(last.type == event_type::module_finished);
  BOOST_TEST(last.status == status);
  BOOST_TEST(last.message == std::string{reason});
  std::size_t finishes = 0;
  for (const auto& e : events) {
    BOOST_TEST(e.type != event_type::module_started);
    BOOST_TEST(e.type != event_type::module_retrying);
    if (e.type == event_type::module_finished) ++finishes;
  }
  BOOST_TEST(finishes == 1u);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(events)

BOOST_AUTO_TEST_CASE(event_type_names) {
  BOOST_TEST(drover::to_string(event_type::run_started) == "run_started");
  BOOST_TEST(drover::to_string(event_type::module_ready) == "module_ready");
  BOOST_TEST(drover::to_string(event_type::module_started) == "module_started");
  BOOST_TEST(drover::to_string(event_type::module_retrying) == "module_retrying");
  BOOST_TEST(drover::to_string(event_type::module_finished) == "module_finished");
  BOOST_TEST(drover::to_string(event_type::run_finished) == "run_finished");
}

BOOST_AUTO_TEST_CASE(sequence_covers_every_module_in_order, *boost::unit_test::timeout(30)) {
  const std::vector<event_type> ran{event_type::module_ready, event_type::module_started,
                                    event_type::module_finished};
  const std::vector<event_type> retried{event_type::module_ready, event_type::module_started,
                                        event_type::module_retrying, event_type::module_started,
                                        event_type::module_finished};
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      event_log log;
      auto p = every_path();
      std::map<std::string, std::uint32_t> index_of;
      for (std::uint32_t i = 0; i < p.size(); ++i)
        index_of[std::string(p.id(i))] = i;
      drover::run_options options;
      options.workers = workers;
      options.on_event = log.sink();
      auto run = run_pipeline(std::move(p), options);
      const auto& report = run.report;
      const auto events = log.events();

      BOOST_REQUIRE(events.size() >= 2u);
      for (std::size_t i = 0; i < events.size(); ++i) {
        BOOST_TEST(events[i].seq == i, "event " << i << " (" << events[i].type << ")");
      }
      BOOST_TEST(events.front().type == event_type::run_started);
      BOOST_TEST(events.front().total == 7u);
      BOOST_TEST(events.front().module.empty());
      BOOST_TEST(events.back().type == event_type::run_finished);
      BOOST_TEST(events.back().module.empty());
      BOOST_TEST(log.count(event_type::run_started) == 1u);
      BOOST_TEST(log.count(event_type::run_finished) == 1u);
      BOOST_TEST(log.count(event_type::module_finished) == 7u);
      BOOST_TEST(log.count(event_type::module_retrying) == 1u);
      std::size_t attempts = 0;
      for (const auto& m : report.modules)
        attempts += m.attempts;
      BOOST_TEST(log.count(event_type::module_started) == attempts);
      BOOST_TEST(attempts == 5u);

      for (const auto& e : events) {
        if (e.type == event_type::run_started || e.type == event_type::run_finished) continue;
        BOOST_TEST_CONTEXT("event " << e.seq << " " << e.type << " of " << e.module) {
          BOOST_REQUIRE(index_of.count(e.module) == 1u);
          BOOST_TEST(e.index == index_of.at(e.module));
          if (e.type == event_type::module_started) {
            BOOST_TEST(e.attempt >= 1u);
            BOOST_TEST(e.worker.rfind("local-", 0) == 0u, e.worker);
          }
          if (e.type == event_type::module_finished) {
            const auto& result = result_of(report, e.module);
            BOOST_TEST(e.status == result.status);
            if (result.status != module_status::succeeded) BOOST_TEST(e.message == result.reason);
          }
        }
      }

      for (const char* id : {"a", "b", "f"}) {
        BOOST_TEST_CONTEXT("module " << id) {
          BOOST_TEST(types_of(log.of(id)) == ran);
        }
      }
      BOOST_TEST(normalized_types(log.of("r")) == retried);
      std::vector<std::uint32_t> started_attempts;
      for (const auto& e : log.of("r")) {
        if (e.type == event_type::module_started) started_attempts.push_back(e.attempt);
        if (e.type == event_type::module_retrying) BOOST_TEST(e.delay.count() == 5);
      }
      BOOST_TEST((started_attempts == std::vector<std::uint32_t>{1, 2}));
      BOOST_TEST(log.of("f").back().status == module_status::failed);
      BOOST_TEST(mentions(log.of("f").back().message, "broken pipe"));

      expect_single_finish(log.of("g"), module_status::skipped, result_of(report, "g").reason);
      expect_single_finish(log.of("s"), module_status::skipped, result_of(report, "s").reason);
      expect_single_finish(log.of("t"), module_status::skipped, result_of(report, "t").reason);
      BOOST_TEST(mentions(log.of("s").back().message, "not today"));

      // b became ready only after a finished.
      const auto a_events = log.of("a");
      const auto b_events = log.of("b");
      BOOST_TEST(b_events.front().seq > a_events.back().seq);
    }
  }
}

BOOST_AUTO_TEST_CASE(cancelled_modules_finish_too, *boost::unit_test::timeout(30)) {
  for (std::size_t workers : {std::size_t{2}, std::size_t{8}}) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      event_log log;
      drover::pipeline p;
      p.add("broken", fail_body("no space left", 30ms));
      p.add("long", wait_body(5s));
      p.add("after_long", value_body(), {"long"});
      drover::run_options options;
      options.workers = workers;
      options.on_event = log.sink();
      auto run = run_pipeline(std::move(p), options);
      BOOST_TEST(run.report.status == drover::run_status::failed);
      BOOST_TEST(run.elapsed.count() < 3000);

      auto long_events = log.of("long");
      BOOST_TEST((types_of(long_events) == std::vector<event_type>{event_type::module_ready,
                                                                   event_type::module_started,
                                                                   event_type::module_finished}));
      BOOST_TEST(long_events.back().status == module_status::cancelled);
      expect_single_finish(log.of("after_long"), module_status::cancelled,
                           result_of(run.report, "after_long").reason);
      BOOST_TEST(log.count(event_type::module_finished) == 3u);
      BOOST_TEST(log.events().back().type == event_type::run_finished);
    }
  }
}

BOOST_AUTO_TEST_CASE(events_arrive_on_the_callers_thread, *boost::unit_test::timeout(30)) {
  asio::io_context io;
  drover::engine engine{io.get_executor(), drover::engine_options{2}};
  event_log log;
  drover::pipeline p;
  for (int i = 0; i < 6; ++i)
    p.add("m" + std::to_string(i), wait_body(5ms, i));
  drover::run_options options;
  options.workers = 3;
  options.on_event = log.sink();
  std::optional<drover::run_report> report;
  engine.async_run(std::move(p), options, [&](drover::run_report r) { report = std::move(r); });
  io.run();
  BOOST_REQUIRE(report.has_value());
  BOOST_TEST(report->status == drover::run_status::succeeded);
  const auto events = log.events();
  BOOST_TEST(events.size() >= 2u + 6u * 3u);
  for (const auto& e : events) {
    BOOST_TEST((e.thread == std::this_thread::get_id()), "event " << e.seq << " " << e.type);
  }
}

BOOST_AUTO_TEST_CASE(throwing_subscriber_does_not_break_the_run, *boost::unit_test::timeout(20)) {
  int calls = 0;
  drover::pipeline p;
  p.add("a", wait_body(1ms, 1));
  p.add("b", wait_body(1ms, 2), {"a"});
  drover::run_options options;
  options.on_event = [&calls](const drover::event&) {
    ++calls;
    throw std::runtime_error("subscriber bug");
  };
  auto run = run_pipeline(std::move(p), options);
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
  BOOST_TEST(result_of(run.report, "b").value == json::value(2));
  BOOST_TEST(calls >= 8);
}

// A reader that co_awaits the events from a channel sees every one, in order, with its text,
// at several thread counts; a full channel drops (and counts) instead of holding up the run.
BOOST_AUTO_TEST_CASE(a_channel_hands_events_to_a_coroutine, *boost::unit_test::timeout(30)) {
  for (std::size_t threads : {0u, 2u}) {
    BOOST_TEST_CONTEXT("threads " << threads) {
      asio::io_context io;
      drover::engine engine{io.get_executor(), drover::engine_options{threads}};
      auto events = std::make_shared<drover::event_channel>(io.get_executor(), 256);
      drover::run_options options;
      options.workers = 2;
      options.on_event = drover::channel_sink(events);
      std::optional<drover::run_report> report;
      engine.async_run(every_path(), options, [&](drover::run_report r) { report = std::move(r); });
      std::vector<drover::owned_event> received;
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            for (;;) {
              auto e = co_await events->async_receive(asio::use_awaitable);
              received.push_back(e);
              if (e.type == event_type::run_finished) co_return;
            }
          },
          asio::detached);
      io.run();
      BOOST_REQUIRE(report.has_value());
      BOOST_TEST_REQUIRE(received.size() > 2u);
      for (std::size_t i = 0; i < received.size(); ++i)
        BOOST_TEST(received[i].seq == i);
      BOOST_TEST((received.front().type == event_type::run_started));
      auto failed = std::find_if(received.begin(), received.end(), [](const auto& e) {
        return e.type == event_type::module_finished && e.module == "f";
      });
      BOOST_REQUIRE(failed != received.end());
      BOOST_TEST(failed->status == module_status::failed);
      BOOST_TEST(failed->message.find("broken pipe") != std::string::npos);
      BOOST_TEST(failed->run == report->run_id);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_full_channel_drops_events_and_the_run_goes_on,
                     *boost::unit_test::timeout(30)) {
  auto events = std::make_shared<drover::event_channel>(asio::system_executor(), 3);
  auto dropped = std::make_shared<std::atomic<std::uint64_t>>(0);
  drover::run_options options;
  options.on_event = drover::channel_sink(events, dropped);
  auto run = run_pipeline(every_path(), options);  // nobody reads
  BOOST_TEST(run.report.status == drover::run_status::failed);
  BOOST_TEST(dropped->load() > 0u);
  std::size_t kept = 0;
  while (events->try_receive([&](boost::system::error_code, drover::owned_event e) {
    BOOST_TEST(e.seq == kept);
    ++kept;
  })) {
  }
  BOOST_TEST(kept == 3u);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

std::string_view name_from_table(const void* table, std::uint32_t i) noexcept {
  return static_cast<const std::vector<std::string>*>(table)->at(i);
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_event_module_reads_as_its_id_only_when_read) {
  const drover::event_module none;
  BOOST_TEST(none.empty());
  BOOST_TEST(none.view().empty());
  const drover::event_module given{"build"};
  BOOST_TEST(!given.empty());
  BOOST_TEST((given == "build"));
  const std::vector<std::string> table{"a", "second"};
  const drover::event_module looked_up{&table, &name_from_table, 1};
  BOOST_TEST(!looked_up.empty());
  BOOST_TEST(looked_up.size() == 6u);
  BOOST_TEST(std::string(looked_up) == "second");
  const std::string_view as_view = looked_up;
  BOOST_TEST(as_view == "second");
}
