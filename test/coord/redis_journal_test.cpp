// The run journal in a Redis stream (drover/coord/redis_journal.hpp) against a redis-server of
// the test's own: the next master resumes from it, an old master is fenced off, a Redis restart
// is ridden out and a Redis that stays away is given up on.

#include <drover/coord/redis_journal.hpp>

#include <drover/coord/redis_lease.hpp>
#include <drover/engine.hpp>

#define BOOST_TEST_MODULE redis_journal
#include "../common/redis_server.hpp"
#include "../common/run_coroutine.hpp"
#include "../engine/test_support.hpp"

#include <atomic>
#include <future>
#include <thread>

namespace {

using namespace drover::test;
using drover::coord::make_redis_journal_store;
using drover::coord::parse_redis_url;
using drover::coord::redis_command;
using drover::coord::redis_connection;
using drover::coord::redis_journal_options;
using drover::coord::redis_reply;
using drover::coord::run_keys;
using drover::testing::redis_server;

const run_keys keys{"build-7"};

/// Runs `command` on a connection of its own.
redis_reply redis_exec(const redis_server& server, std::vector<std::string> command) {
  redis_reply reply;
  drover::testing::run_coroutine([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    co_await redis.connect(parse_redis_url(server.url()), std::nullopt);
    reply = co_await redis.exec(std::move(command));
  });
  return reply;
}

redis_journal_options options_for(const redis_server& server, std::uint64_t epoch) {
  redis_journal_options options;
  options.where = parse_redis_url(server.url());
  options.run_key = keys.key();
  options.epoch = epoch;
  return options;
}

drover::pipeline two_modules(std::atomic<bool>& b_fails) {
  drover::pipeline p;
  p.name = "redis-journal";
  p.add("a", value_body(41));
  p.add("b",
        coroutine_body([&b_fails](drover::module_context& ctx) -> asio::awaitable<json::value> {
          if (b_fails) throw std::runtime_error("b is not ready yet");
          co_return ctx.result<int>("a") + 1;
        }),
        {"a"});
  return p;
}

drover::run_options with_journal(std::shared_ptr<drover::run_journal> journal) {
  drover::run_options options;
  options.workers = 2;
  options.journal = std::move(journal);
  return options;
}

/// A journal whose run record is in the stream.
std::shared_ptr<drover::run_journal> begun(std::shared_ptr<drover::journal_store> store) {
  auto journal = drover::run_journal::open_store(std::move(store), {});
  drover::pipeline p;
  p.name = "redis-journal";
  p.add("a", value_body(1));
  BOOST_TEST(!journal->begin_run(p, "fingerprint"));
  auto durable = std::make_shared<std::promise<void>>();  // kept alive by the writer's call
  journal->when_durable(1, [durable] { durable->set_value(); });
  BOOST_REQUIRE((durable->get_future().wait_for(10s) == std::future_status::ready));
  BOOST_TEST_REQUIRE(!journal->failure(), journal->failure().value_or(""));
  return journal;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_next_master_resumes_from_the_journal_stream) {
  redis_server server;
  redis_exec(server, redis_command("SET", keys.epoch(), "1"));
  std::atomic<bool> b_fails{true};
  {
    auto store = make_redis_journal_store(options_for(server, 1));
    BOOST_TEST(store->name() == server.url() + "/0 drover:{build-7}:journal");
    auto journal = drover::run_journal::open_store(store, {});
    const auto run = run_pipeline(two_modules(b_fails), with_journal(journal));
    BOOST_TEST(run.report.status == drover::run_status::failed);
    BOOST_TEST(!journal->failure());
  }
  // Each append is one entry, and pushes the stream's expiry back to keep_for (1 h).
  const auto ttl = redis_exec(server, redis_command("PTTL", keys.journal())).integer;
  BOOST_TEST(ttl > 3'500'000);
  BOOST_TEST(ttl <= 3'600'000);
  BOOST_TEST(redis_exec(server, redis_command("XLEN", keys.journal())).integer >= 2);

  redis_exec(server, redis_command("INCR", keys.epoch()));  // the next master takes the lease
  auto journal = drover::run_journal::open_store(make_redis_journal_store(options_for(server, 2)),
                                                 {.resume = true});
  BOOST_TEST(journal->resuming());
  BOOST_TEST(journal->epoch() == 2u);
  BOOST_TEST(journal->recorded_pipeline() == "redis-journal");
  const auto* a = journal->previous("a");
  BOOST_TEST_REQUIRE(a != nullptr);
  BOOST_TEST(a->status == drover::module_status::succeeded);
  BOOST_TEST(a->value == json::value(41));
  const auto* b = journal->previous("b");
  BOOST_TEST_REQUIRE(b != nullptr);
  BOOST_TEST(b->status == drover::module_status::failed);

  b_fails = false;
  const auto run = run_pipeline(two_modules(b_fails), with_journal(journal));
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
  BOOST_TEST(result_of(run.report, "a").status == drover::module_status::cached);
  BOOST_TEST(result_of(run.report, "b").value == json::value(42));
  BOOST_TEST(!journal->failure());
}

BOOST_AUTO_TEST_CASE(load_reads_a_stream_longer_than_one_page) {
  redis_server server;
  redis_exec(server, redis_command("SET", keys.epoch(), "1"));
  auto store = make_redis_journal_store(options_for(server, 1));
  std::string expected;
  for (int i = 0; i < 2500; ++i) {
    const std::string lines = "line " + std::to_string(i) + "\n";
    BOOST_REQUIRE(!store->append(lines));
    expected += lines;
  }
  BOOST_TEST(store->load() == expected);
  BOOST_TEST(make_redis_journal_store(options_for(server, 1))->load() == expected);
}

BOOST_AUTO_TEST_CASE(an_old_master_is_fenced_off_the_journal) {
  redis_server server;
  redis_exec(server, redis_command("SET", keys.epoch(), "1"));
  auto journal = begun(make_redis_journal_store(options_for(server, 1)));
  redis_exec(server, redis_command("SET", keys.epoch(), "2"));  // another master took over
  journal->append_module("a", "f", drover::module_status::succeeded, 1, json::value(1), "");
  journal->end_run(drover::run_status::succeeded);
  const auto failure = journal->failure().value_or("");
  BOOST_TEST(failure ==
             "another master (epoch 2) took over run build-7; this master (epoch 1) no longer "
             "writes its journal");
  // Only the run record, written before the takeover, is in the stream.
  const auto lines = make_redis_journal_store(options_for(server, 2))->load();
  BOOST_TEST(lines.find(R"({"type":"run")") == 0u);
  BOOST_TEST(lines.find(R"("type":"module")") == std::string::npos);

  redis_exec(server, redis_command("DEL", keys.epoch()));
  const auto gone = make_redis_journal_store(options_for(server, 1))->append("x\n");
  BOOST_TEST(mentions(gone.value_or(""), "has no epoch in Redis any more"), gone.value_or(""));
}

BOOST_AUTO_TEST_CASE(an_append_rides_out_a_redis_restart) {
  redis_server server;
  redis_exec(server, redis_command("SET", keys.epoch(), "1"));
  auto journal = begun(make_redis_journal_store(options_for(server, 1)));
  journal->append_module("a", "f", drover::module_status::succeeded, 1, json::value(1), "");
  server.stop();  // the store's connection is now dead, and nothing listens
  journal->append_module("b", "f", drover::module_status::succeeded, 1, json::value(2), "");
  std::atomic<bool> ended{false};
  std::thread end([&] {
    journal->end_run(drover::run_status::succeeded);  // waits while the writer retries
    ended = true;
  });
  std::this_thread::sleep_for(700ms);
  const bool ended_while_away = ended;
  // From this thread: the server dies with the thread that started it (PR_SET_PDEATHSIG).
  const auto started = steady::now();
  server.start();  // the same port and directory: the AOF keeps the stream
  end.join();
  const auto waited = steady::now() - started;
  BOOST_TEST(!ended_while_away);
  BOOST_TEST(!journal->failure(), journal->failure().value_or(""));
  BOOST_TEST((waited < 10s));

  auto resumed = drover::run_journal::open_store(make_redis_journal_store(options_for(server, 1)),
                                                 {.resume = true});
  BOOST_TEST_REQUIRE(resumed->previous("a") != nullptr);
  BOOST_TEST_REQUIRE(resumed->previous("b") != nullptr);
  BOOST_TEST(resumed->previous("b")->value == json::value(2));
}

BOOST_AUTO_TEST_CASE(a_redis_that_stays_away_is_given_up_on_naming_it) {
  redis_server server;
  redis_exec(server, redis_command("SET", keys.epoch(), "1"));
  auto options = options_for(server, 1);
  options.give_up_after = 300ms;
  options.request_timeout = 1s;
  const std::string url = options.where.url();
  auto journal = begun(make_redis_journal_store(options));
  server.stop();
  const auto started = steady::now();
  journal->append_module("a", "f", drover::module_status::succeeded, 1, json::value(1), "");
  journal->end_run(drover::run_status::succeeded);
  BOOST_TEST((steady::now() - started < 5s));
  const auto failure = journal->failure().value_or("");
  // Tries at 0, 100 and 300 ms, then it gives up.
  BOOST_TEST(failure.starts_with("the coordinator " + url + " has not answered for 0."), failure);
  BOOST_TEST(mentions(failure, "Redis at " + url + ": cannot connect"), failure);

  // Opening with resume gives up the same way, as a journal_error.
  try {
    drover::run_journal::open_store(make_redis_journal_store(options), {.resume = true});
    BOOST_ERROR("a journal was read from a Redis that is not there");
  } catch (const drover::journal_error& e) {
    BOOST_TEST(mentions(e.what(), "cannot read journal '" + url + " drover:{build-7}:journal'"),
               e.what());
    BOOST_TEST(mentions(e.what(), "has not answered for"), e.what());
  }
}
