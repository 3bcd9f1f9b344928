// The Redis connection (drover/coord/redis.hpp) against a redis-server of the test's own.

#include <drover/coord/redis.hpp>
#include <drover/coord/redis_lease.hpp>

#include "../common/redis_server.hpp"
#include "../common/run_coroutine.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#define BOOST_TEST_MODULE redis
#include <boost/test/unit_test.hpp>

#include <deque>
#include <functional>
#include <memory>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using drover::coord::parse_redis_url;
using drover::coord::redis_command;
using drover::coord::redis_connection;
using drover::coord::redis_endpoint;
using drover::coord::redis_error;
using drover::coord::redis_lease;
using drover::coord::redis_reply;
using drover::coord::run_keys;
using drover::testing::redis_server;

void run(std::function<asio::awaitable<void>(asio::io_context&)> body) {
  drover::testing::run_coroutine(std::move(body));
}

bool mentions(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

/// The message of the redis_error `body` throws; fails the test when it throws nothing.
std::string redis_failure(std::function<asio::awaitable<void>(asio::io_context&)> body) {
  try {
    run(std::move(body));
  } catch (const redis_error& e) {
    return e.what();
  }
  BOOST_FAIL("no redis_error");
  return {};
}

std::string invalid_url(std::string_view url) {
  try {
    parse_redis_url(url);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  BOOST_FAIL("accepted " << url);
  return {};
}

BOOST_AUTO_TEST_CASE(urls_are_parsed_and_bad_ones_say_what_is_wrong) {
  auto plain = parse_redis_url("redis://10.0.0.5");
  BOOST_TEST(plain.host == "10.0.0.5");
  BOOST_TEST(plain.port == 6379);
  BOOST_TEST(plain.db == 0);
  auto full = parse_redis_url("redis://ci@redis.internal:6380/3");
  BOOST_TEST(full.user == "ci");
  BOOST_TEST(full.host == "redis.internal");
  BOOST_TEST(full.port == 6380);
  BOOST_TEST(full.db == 3);
  BOOST_TEST(full.url() == "redis://ci@redis.internal:6380/3");
  auto v6 = parse_redis_url("redis://[::1]:7000/");
  BOOST_TEST(v6.host == "::1");
  BOOST_TEST(v6.port == 7000);
  BOOST_TEST(v6.url() == "redis://[::1]:7000/0");

  BOOST_TEST(mentions(invalid_url("rediss://host:6379"), "TLS"));
  BOOST_TEST(mentions(invalid_url("http://host"), "scheme"));
  BOOST_TEST(mentions(invalid_url("redis://ci:secret@host"), "password"));
  BOOST_TEST(!mentions(invalid_url("redis://ci:secret@host"), "secret"));
  BOOST_TEST(mentions(invalid_url("redis://host:0"), "port"));
  BOOST_TEST(mentions(invalid_url("redis://host:70000"), "port"));
  BOOST_TEST(mentions(invalid_url("redis://host:"), "port"));
  BOOST_TEST(mentions(invalid_url("redis://host/x"), "database"));
  BOOST_TEST(mentions(invalid_url("redis://:6379"), "host"));
  BOOST_TEST(mentions(invalid_url("redis://[::1"), "']'"));
  BOOST_TEST(mentions(invalid_url("redis://host?db=1"), "query"));
}

BOOST_AUTO_TEST_CASE(commands_and_their_replies) {
  redis_server server;
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    co_await redis.connect(parse_redis_url(server.url()), std::nullopt);
    BOOST_TEST(redis.is_open());
    auto pong = co_await redis.exec(redis_command("PING"));
    BOOST_TEST((pong.type == redis_reply::kind::status));
    BOOST_TEST(pong.text == "PONG");
    // Binary-safe: a value with NUL, CR and LF comes back whole.
    const std::string value("a\0b\r\nc", 6);
    BOOST_TEST((co_await redis.exec(redis_command("SET", "k", value))).text == "OK");
    auto got = co_await redis.exec(redis_command("GET", "k"));
    BOOST_TEST((got.type == redis_reply::kind::string));
    BOOST_TEST(got.text == value);
    BOOST_TEST((co_await redis.exec(redis_command("GET", "missing"))).is_nil());
    // An error reply is a reply, and the connection goes on.
    auto wrong = co_await redis.exec(redis_command("INCR", "k"));
    BOOST_TEST(wrong.is_error());
    BOOST_TEST(mentions(wrong.text, "not an integer"));
    // Many commands in one round trip, replies in order.
    std::vector<std::vector<std::string>> increments(100, redis_command("INCR", "counter"));
    auto counted = co_await redis.exec_all(increments);
    BOOST_REQUIRE(counted.size() == 100u);
    for (std::size_t i = 0; i < counted.size(); ++i)
      BOOST_TEST(counted[i].integer == static_cast<long long>(i + 1));
    // Nested arrays: a stream entry is [id, [field, value]].
    auto id = co_await redis.exec(redis_command("XADD", "stream", "*", "type", "assign"));
    BOOST_TEST((id.type == redis_reply::kind::string));
    auto range = co_await redis.exec(redis_command("XRANGE", "stream", "-", "+"));
    BOOST_REQUIRE(range.is_array());
    BOOST_REQUIRE(range.elements.size() == 1u);
    BOOST_TEST(range.elements[0].elements[0].text == id.text);
    BOOST_TEST(range.elements[0].elements[1].elements[1].text == "assign");
    // A large value crosses several reads.
    const std::string big(200'000, 'x');
    co_await redis.exec(redis_command("SET", "big", big));
    BOOST_TEST((co_await redis.exec(redis_command("GET", "big"))).text == big);
  });
}

BOOST_AUTO_TEST_CASE(the_database_in_the_url_is_selected) {
  redis_server server;
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection db0(io.get_executor()), db5(io.get_executor());
    co_await db0.connect(parse_redis_url(server.url()), std::nullopt);
    co_await db5.connect(parse_redis_url(server.url() + "/5"), std::nullopt);
    co_await db5.exec(redis_command("SET", "where", "five"));
    BOOST_TEST((co_await db0.exec(redis_command("GET", "where"))).is_nil());
    BOOST_TEST((co_await db5.exec(redis_command("GET", "where"))).text == "five");
  });
}

BOOST_AUTO_TEST_CASE(passwords_right_wrong_and_missing) {
  redis_server server{"s3cret"};
  const auto where = parse_redis_url(server.url());
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    co_await redis.connect(where, std::string("s3cret"));
    BOOST_TEST((co_await redis.exec(redis_command("PING"))).text == "PONG");
  });
  const std::string wrong = redis_failure([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    co_await redis.connect(where, std::string("guess"));
  });
  BOOST_TEST(mentions(wrong, server.url()));
  BOOST_TEST(mentions(wrong, "credentials were refused"));
  BOOST_TEST(!mentions(wrong, "guess"));
  const std::string missing = redis_failure([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    co_await redis.connect(where, std::nullopt);
  });
  BOOST_TEST(mentions(missing, "requires a password"));
}

BOOST_AUTO_TEST_CASE(nothing_listening_fails_with_the_address) {
  std::uint16_t port = 0;
  {
    redis_server server;
    port = server.port();
  }  // stopped: nothing listens there now
  const std::string url = "redis://127.0.0.1:" + std::to_string(port);
  const std::string failure = redis_failure([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    co_await redis.connect(parse_redis_url(url), std::nullopt, 2s);
  });
  BOOST_TEST(mentions(failure, url));
  BOOST_TEST(mentions(failure, "cannot connect"));
}

BOOST_AUTO_TEST_CASE(a_reply_that_does_not_come_in_time_closes_the_connection) {
  redis_server server;
  const std::string failure = redis_failure([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    co_await redis.connect(parse_redis_url(server.url()), std::nullopt);
    try {
      co_await redis.exec(redis_command("BLPOP", "nothing", "5"), 200ms);  // blocks 5 s in Redis
    } catch (const redis_error&) {
      BOOST_TEST(!redis.is_open());
      throw;
    }
  });
  BOOST_TEST(mentions(failure, "no reply within 200 ms"));
}

BOOST_AUTO_TEST_CASE(a_restarted_server_keeps_its_data_and_breaks_old_connections) {
  redis_server server;
  const auto where = parse_redis_url(server.url());
  std::string broken;
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    co_await redis.connect(where, std::nullopt);
    co_await redis.exec(redis_command("SET", "kept", "yes"));
    server.restart();  // this thread waits; the connection is now dead
    try {
      co_await redis.exec(redis_command("GET", "kept"));
    } catch (const redis_error& e) {
      broken = e.what();
    }
    BOOST_TEST(!redis.is_open());
    co_await redis.connect(where, std::nullopt);  // again, on the same object
    BOOST_TEST((co_await redis.exec(redis_command("GET", "kept"))).text == "yes");
  });
  BOOST_TEST(mentions(broken, where.url()));
}

BOOST_AUTO_TEST_CASE(run_keys_share_one_hash_tag_and_refuse_bad_keys) {
  const run_keys keys{"build-42.linux:x_1"};
  BOOST_TEST(keys.lease() == "drover:{build-42.linux:x_1}:lease");
  BOOST_TEST(keys.epoch() == "drover:{build-42.linux:x_1}:epoch");
  BOOST_CHECK_THROW(run_keys{""}, std::invalid_argument);
  BOOST_CHECK_THROW(run_keys{"a}b"}, std::invalid_argument);
  BOOST_CHECK_THROW(run_keys{"a b"}, std::invalid_argument);
  BOOST_CHECK_THROW(run_keys{std::string(129, 'k')}, std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(one_instance_holds_the_lease_until_it_expires_then_another_takes_it) {
  redis_server server;
  const auto where = parse_redis_url(server.url());
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection a(io.get_executor()), b(io.get_executor());
    co_await a.connect(where, std::nullopt);
    co_await b.connect(where, std::nullopt);
    redis_lease first(a, run_keys{"run-1"}, "job-0", 400ms);
    redis_lease second(b, run_keys{"run-1"}, "job-1", 400ms);
    BOOST_TEST(*co_await first.acquire() == 1u);
    BOOST_TEST(!(co_await second.acquire()));
    auto holder = co_await second.holder();
    BOOST_REQUIRE(holder);
    BOOST_TEST(holder->epoch == 1u);
    BOOST_TEST(holder->instance == "job-0");
    BOOST_TEST(!co_await second.renew(1));  // not the holder, even with the right epoch
    BOOST_TEST(co_await first.renew(1));
    BOOST_TEST(!co_await first.renew(2));  // the right holder, but not that epoch
    // The holder stops renewing; the lease expires and the other takes it with the next epoch.
    asio::steady_timer wait(io, 600ms);
    co_await wait.async_wait(asio::use_awaitable);
    BOOST_TEST(!(co_await first.holder()));
    BOOST_TEST(*co_await second.acquire() == 2u);
    BOOST_TEST(!co_await first.renew(1));
    BOOST_TEST(!co_await first.release(1));  // it cannot take the other's lease away
    BOOST_TEST(co_await second.release(2));
    BOOST_TEST(!(co_await first.holder()));
    // Another run's lease is another key.
    redis_lease other(a, run_keys{"run-2"}, "job-0", 400ms);
    BOOST_TEST(*co_await other.acquire() == 1u);
  });
}

/// Instances keeping one run's lease, each on its own connection, on one io_context.
struct lease_instances {
  struct instance {
    std::unique_ptr<redis_connection> redis;
    std::unique_ptr<redis_lease> lease;
    std::unique_ptr<drover::coord::lease_keeper> keeper;
    asio::cancellation_signal stop;
    bool master = false;
    std::uint64_t epoch = 0;
    std::vector<std::pair<bool, std::uint64_t>> roles;  // each change, in order
  };
  std::deque<instance> all;

  static drover::coord::lease_settings fast() {
    drover::coord::lease_settings s;
    s.ttl = 1000ms;
    s.renew_every = 250ms;
    s.margin = 300ms;
    s.others_wait = 300ms;
    s.retry_every = 100ms;
    return s;
  }

  void start(asio::io_context& io, const drover::coord::redis_endpoint& where, int n) {
    for (int i = 0; i < n; ++i) {
      auto& in = all.emplace_back();
      in.redis = std::make_unique<redis_connection>(io.get_executor());
      in.lease = std::make_unique<redis_lease>(*in.redis, run_keys{"failover"},
                                               "job-" + std::to_string(i), fast().ttl, 200ms);
      in.keeper = std::make_unique<drover::coord::lease_keeper>(
          fast(), static_cast<std::uint32_t>(i), std::chrono::steady_clock::now());
      auto reconnect = [&in, where]() -> asio::awaitable<void> {
        co_await in.redis->connect(where, std::nullopt, 500ms);
      };
      auto on_role = [&in](bool master, std::uint64_t epoch) {
        in.master = master;
        in.epoch = epoch;
        in.roles.emplace_back(master, epoch);
      };
      asio::co_spawn(io, drover::coord::keep_lease(*in.lease, *in.keeper, reconnect, on_role),
                     asio::bind_cancellation_slot(in.stop.slot(), [](std::exception_ptr) {}));
    }
  }
  int masters() const {
    int n = 0;
    for (const auto& in : all)
      n += in.master ? 1 : 0;
    return n;
  }
};

/// Waits on `io`'s thread, polling `done` every 20 ms, for at most `limit`. True when done.
asio::awaitable<bool> wait_until(std::function<bool()> done, std::chrono::milliseconds limit) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) co_return false;
    timer.expires_after(20ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
  co_return true;
}

BOOST_AUTO_TEST_CASE(a_dead_master_is_replaced_with_the_next_epoch) {
  redis_server server;
  const auto where = parse_redis_url(server.url());
  asio::io_context io;  // outlives the instances' connections
  lease_instances instances;
  drover::testing::run_coroutine(io, [&](asio::io_context&) -> asio::awaitable<void> {
    instances.start(io, where, 3);
    BOOST_TEST(co_await wait_until([&] { return instances.all[0].master; }, 10s));
    BOOST_TEST(instances.masters() == 1);  // instance 0 first, alone
    BOOST_TEST(instances.all[0].epoch == 1u);
    // It dies: it stops renewing and never says goodbye.
    const auto died = std::chrono::steady_clock::now();
    instances.all[0].stop.emit(asio::cancellation_type::terminal);
    BOOST_TEST(co_await wait_until(
        [&] { return instances.all[1].master || instances.all[2].master; }, 10s));
    const auto took = std::chrono::steady_clock::now() - died;
    BOOST_TEST_MESSAGE("failover took "
                       << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                       << " ms");
    BOOST_TEST(instances.all[1].master != instances.all[2].master);
    const auto& next = instances.all[1].master ? instances.all[1] : instances.all[2];
    BOOST_TEST(next.epoch == 2u);
    // The survivor keeps it: several ttl later, still the one master, same epoch.
    asio::steady_timer hold(io, 2500ms);
    co_await hold.async_wait(asio::use_awaitable);
    BOOST_TEST((instances.all[1].master != instances.all[2].master));
    BOOST_TEST(next.epoch == 2u);
    BOOST_TEST(next.roles.size() == 1u);
    for (auto& in : instances.all)
      in.stop.emit(asio::cancellation_type::terminal);
  });
}

BOOST_AUTO_TEST_CASE(after_redis_restarts_there_is_a_master_again) {
  redis_server server;
  const auto where = parse_redis_url(server.url());
  asio::io_context io;  // outlives the instances' connections
  lease_instances instances;
  drover::testing::run_coroutine(io, [&](asio::io_context&) -> asio::awaitable<void> {
    instances.start(io, where, 2);
    BOOST_TEST(co_await wait_until([&] { return instances.masters() == 1; }, 10s));
    server.kill();  // SIGKILL: the lease key may or may not have reached the AOF
    asio::steady_timer away(io, 1500ms);  // longer than the lease is trusted
    co_await away.async_wait(asio::use_awaitable);
    BOOST_TEST(instances.masters() == 0);  // nobody trusts a lease it cannot renew
    server.start();
    BOOST_TEST(co_await wait_until([&] { return instances.masters() == 1; }, 15s));
    for (auto& in : instances.all)
      in.stop.emit(asio::cancellation_type::terminal);
  });
}

}  // namespace
