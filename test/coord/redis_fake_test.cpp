// The in-memory Redis fake (drover/coord/redis_fake.hpp): it answers the commands and scripts
// drover sends as a real redis-server does (the same script of commands run against both,
// replies compared), breaks connections on restart while keeping its data, expires keys and
// ends BLOCK reads on virtual time, and carries drover's own Redis parts: a pipe, the lease,
// the journal store and a whole run whose workers join through it.

#include <drover/clock.hpp>
#include <drover/coord/master.hpp>
#include <drover/coord/redis.hpp>
#include <drover/coord/redis_fake.hpp>
#include <drover/coord/redis_join.hpp>
#include <drover/coord/redis_journal.hpp>
#include <drover/coord/redis_lease.hpp>
#include <drover/coord/redis_stream.hpp>
#include <drover/coord/worker.hpp>
#include <drover/engine.hpp>

#include "../../coord/src/redis_scripts.hpp"  // the scripts, to send them as drover does
#include "../common/redis_server.hpp"
#include "../common/run_coroutine.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#define BOOST_TEST_MODULE redis_fake
#include <boost/test/unit_test.hpp>

#include <array>
#include <map>

namespace {

namespace asio = boost::asio;
namespace coord = drover::coord;
using namespace std::chrono_literals;
using coord::redis_command;
using coord::redis_connection;
using coord::redis_reply;
using drover::testing::redis_server;

using command = std::vector<std::string>;

void run(std::function<asio::awaitable<void>(asio::io_context&)> body) {
  drover::testing::run_coroutine(std::move(body));
}

/// A reply as text, with stream ids shown as "<id>" (their values depend on the clock) and
/// error replies cut to their first word, so that the replies of two servers compare. The
/// fields of the entries show their order.
std::string normalised(const redis_reply& r) {
  switch (r.type) {
    case redis_reply::kind::nil:
      return "nil";
    case redis_reply::kind::integer:
      return ":" + std::to_string(r.integer);
    case redis_reply::kind::status:
      return "+" + r.text;
    case redis_reply::kind::error:
      return "-" + r.text.substr(0, r.text.find(' '));
    case redis_reply::kind::string: {
      const auto dash = r.text.find('-');
      const bool id = r.text.size() > 10 && dash != std::string::npos &&
                      r.text.find_first_not_of("0123456789-") == std::string::npos;
      return id ? "<id>" : "'" + r.text + "'";
    }
    case redis_reply::kind::array: {
      std::string out = "[";
      for (const auto& e : r.elements)
        out += normalised(e) + " ";
      return out + "]";
    }
  }
  return "?";
}

/// Runs `script` on a connection to `where` and returns each reply, normalised. An argument
/// "$N" stands for the id the N-th XADD returned, "($N" for after it.
std::vector<std::string> replies_to(const coord::redis_endpoint& where,
                                    const std::vector<command>& script) {
  std::vector<std::string> out;
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    co_await redis.connect(where, std::nullopt);
    std::vector<std::string> added;  // the ids XADD returned, in order
    for (command c : script) {
      for (auto& word : c) {
        if (word.size() > 1 && (word[0] == '$' || (word[0] == '(' && word[1] == '$'))) {
          const bool exclusive = word[0] == '(';
          word = (exclusive ? "(" : "") + added.at(std::stoul(word.substr(exclusive ? 2 : 1)) - 1);
        }
      }
      const redis_reply reply = co_await redis.exec(c);
      if (c.front() == "XADD" && !reply.is_error()) added.push_back(reply.text);
      out.push_back(c.front() + " -> " + normalised(reply));
    }
  });
  return out;
}

BOOST_AUTO_TEST_CASE(the_fake_answers_what_drover_sends_as_redis_server_does) {
  const std::string lease = "drover:{t}:lease", epoch = "drover:{t}:epoch",
                    journal = "drover:{t}:journal", pipe = "drover:{t}:c:x:up",
                    join = "drover:{t}:join";
  const std::vector<command> script{
      {"PING"},
      {"SET", "k", "v"},
      {"GET", "k"},
      {"GET", "missing"},
      {"SET", "k", "w", "NX"},
      {"SET", "n", "1", "NX", "PX", "60000"},
      {"INCR", "n"},
      {"INCR", "k"},
      {"EXISTS", "k", "n", "missing"},
      {"PEXPIRE", "k", "60000"},
      {"PEXPIRE", "missing", "100"},
      {"DEL", "k", "missing"},
      {"KEYS", "n*"},
      {"XADD", pipe, "*", "b", "one"},
      {"XADD", pipe, "*", "b", "two"},
      {"XADD", pipe, "*", "eof", "1"},
      {"XRANGE", pipe, "-", "+"},
      {"XRANGE", pipe, "($1", "+", "COUNT", "1"},
      {"XREVRANGE", pipe, "+", "-", "COUNT", "2"},
      {"XREAD", "COUNT", "256", "STREAMS", pipe, "0"},
      {"XREAD", "COUNT", "1", "STREAMS", pipe, "$1"},
      {"XREAD", "COUNT", "10", "STREAMS", pipe, "$3"},
      {"XTRIM", pipe, "MINID", "$2"},
      {"XRANGE", pipe, "-", "+"},
      {"GET", pipe},
      {"XGROUP", "CREATE", join, "masters", "0", "MKSTREAM"},
      {"XGROUP", "CREATE", join, "masters", "0", "MKSTREAM"},
      {"XADD", join, "*", "conn", "c1", "instance", "3"},
      {"XADD", join, "*", "conn", "c2", "instance", "4"},
      {"XREADGROUP", "GROUP", "masters", "m1", "COUNT", "1", "STREAMS", join, ">"},
      {"XAUTOCLAIM", join, "masters", "m2", "0", "0-0", "COUNT", "100"},
      {"XACK", join, "masters", "$4"},
      {"XREADGROUP", "GROUP", "masters", "m2", "COUNT", "16", "STREAMS", join, ">"},
      {"XREADGROUP", "GROUP", "masters", "m2", "COUNT", "16", "STREAMS", join, ">"},
      {"XREADGROUP", "GROUP", "nobody", "m2", "STREAMS", join, ">"},
      {"XACK", join, "masters", "$5", "$5"},
      {"EVAL", std::string(coord::detail::acquire_script), "2", lease, epoch, "a", "60000"},
      {"EVAL", std::string(coord::detail::acquire_script), "2", lease, epoch, "b", "60000"},
      {"EVAL", std::string(coord::detail::renew_script), "1", lease, "1 a", "60000"},
      {"EVAL", std::string(coord::detail::renew_script), "1", lease, "1 b", "60000"},
      {"GET", lease},
      {"EVAL", std::string(coord::detail::append_script), "2", epoch, journal, "1", "line\n",
       "60000"},
      {"EVAL", std::string(coord::detail::append_script), "2", epoch, journal, "2", "old\n",
       "60000"},
      {"XRANGE", journal, "-", "+"},
      {"EVAL", std::string(coord::detail::release_script), "1", lease, "1 b"},
      {"EVAL", std::string(coord::detail::release_script), "1", lease, "1 a"},
      {"EVAL", std::string(coord::detail::acquire_script), "2", lease, epoch, "b", "60000"},
      {"GET", lease},
      {"FLUSHALL"},
      {"KEYS", "*"},
  };
  redis_server server;
  const auto real = replies_to(coord::parse_redis_url(server.url()), script);
  auto fake = std::make_shared<coord::redis_fake>();
  const auto faked = replies_to(fake->endpoint(), script);
  BOOST_REQUIRE_EQUAL(real.size(), faked.size());
  for (std::size_t i = 0; i < real.size(); ++i) {
    BOOST_TEST_MESSAGE(real[i]);
    BOOST_TEST(faked[i] == real[i], "command " << i);
  }
}

BOOST_AUTO_TEST_CASE(passwords_are_checked_as_requirepass_does) {
  auto fake = std::make_shared<coord::redis_fake>("sesame");
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    std::string wrong, missing;
    try {
      co_await redis.connect(fake->endpoint(), "wrong");
    } catch (const coord::redis_error& e) {
      wrong = e.what();
    }
    try {
      co_await redis.connect(fake->endpoint(), std::nullopt);
    } catch (const coord::redis_error& e) {
      missing = e.what();
    }
    BOOST_TEST(wrong.find("credentials were refused") != std::string::npos, wrong);
    BOOST_TEST(missing.find("requires a password") != std::string::npos, missing);
    co_await redis.connect(fake->endpoint(), "sesame");
    BOOST_TEST((co_await redis.exec(redis_command("PING"))).text == "PONG");
  });
}

BOOST_AUTO_TEST_CASE(a_restart_breaks_connections_and_a_blocked_read_and_keeps_the_data) {
  auto fake = std::make_shared<coord::redis_fake>();
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection writer(io.get_executor()), reader(io.get_executor());
    co_await writer.connect(fake->endpoint(), std::nullopt);
    co_await reader.connect(fake->endpoint(), std::nullopt);
    co_await writer.exec(redis_command("SET", "kept", "yes"));
    // A read that blocks, ended by an XADD from another connection.
    auto blocked = asio::co_spawn(
        io, reader.exec(redis_command("XREAD", "BLOCK", "5000", "STREAMS", "s", "0")),
        asio::use_awaitable);
    co_await writer.exec(redis_command("XADD", "s", "*", "b", "x"));
    const redis_reply got = co_await std::move(blocked);
    BOOST_REQUIRE(got.is_array());
    BOOST_TEST(got.elements[0].elements[1].elements[0].elements[1].elements[1].text == "x");
    // A read that blocks, ended by a restart: it fails, as do later commands on both.
    auto broken = asio::co_spawn(
        io, reader.exec(redis_command("XREAD", "BLOCK", "5000", "STREAMS", "s", "$")),
        asio::as_tuple(asio::use_awaitable));
    fake->restart();
    auto [failed, nothing] = co_await std::move(broken);
    BOOST_TEST(static_cast<bool>(failed));
    BOOST_TEST(!reader.is_open());
    std::string after;
    try {
      co_await writer.exec(redis_command("GET", "kept"));
    } catch (const coord::redis_error& e) {
      after = e.what();
    }
    BOOST_TEST(after.find("restarted") != std::string::npos, after);
    // Reconnected, the data is there. While down, connecting fails.
    co_await writer.connect(fake->endpoint(), std::nullopt);
    BOOST_TEST((co_await writer.exec(redis_command("GET", "kept"))).text == "yes");
    fake->set_down(true);
    std::string refused;
    try {
      co_await reader.connect(fake->endpoint(), std::nullopt);
    } catch (const coord::redis_error& e) {
      refused = e.what();
    }
    BOOST_TEST(refused.find("cannot connect") != std::string::npos, refused);
    fake->set_down(false);
  });
}

/// Runs `body` on `io` with virtual time: whatever is ready runs, then time jumps to the next
/// timer, until the coroutine ended.
void run_virtually(std::function<asio::awaitable<void>(asio::io_context&)> body) {
  drover::virtual_time time{7};
  drover::virtual_time::scope on_this_thread{time};
  asio::io_context io;
  bool done = false;
  std::exception_ptr failed;
  asio::co_spawn(io, body(io), [&](std::exception_ptr e) {
    failed = e;
    done = true;
  });
  for (int steps = 0; !done && steps < 100'000; ++steps) {
    io.restart();
    io.poll();
    if (!done && !time.advance()) break;
  }
  time.drop_pending();
  if (failed) std::rethrow_exception(failed);
  BOOST_REQUIRE_MESSAGE(done, "the coroutine did not end");
}

BOOST_AUTO_TEST_CASE(expiry_and_block_follow_virtual_time) {
  auto fake = std::make_shared<coord::redis_fake>();
  const auto wall_started = std::chrono::steady_clock::now();
  run_virtually([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection a(io.get_executor()), b(io.get_executor());
    co_await a.connect(fake->endpoint(), std::nullopt);
    co_await b.connect(fake->endpoint(), std::nullopt);
    // The lease: one holder, then, an hour of virtual time after it stopped renewing, the next.
    coord::redis_lease first(a, coord::run_keys{"v"}, "first", 10s);
    coord::redis_lease second(b, coord::run_keys{"v"}, "second", 10s);
    BOOST_TEST((co_await first.acquire()).value_or(0) == 1u);
    BOOST_TEST(!(co_await second.acquire()).has_value());
    BOOST_TEST((co_await first.renew(1)));
    const auto before = drover::run_clock::now();
    // A read with BLOCK 3600000 ends after an hour of virtual time, with nothing.
    const redis_reply none =
        co_await b.exec(redis_command("XREAD", "BLOCK", "3600000", "STREAMS", "nothing", "0"), 2h);
    BOOST_TEST(none.is_nil());
    BOOST_TEST((drover::run_clock::now() - before >= 1h));
    BOOST_TEST(!(co_await first.renew(1)));  // it lapsed meanwhile
    BOOST_TEST((co_await second.acquire()).value_or(0) == 2u);
    BOOST_TEST(fake->keys().size() == 2u);  // the lease and the epoch
  });
  BOOST_TEST((std::chrono::steady_clock::now() - wall_started < 30s));
}

// A worker keeps its pipe's alive key while the pipe is open. A master drops the join of a
// worker that died before any master read it, instead of welcoming a phantom; and a pipe whose
// own Redis connection breaks says so with redis_link_failed(), not as the other end's close.
BOOST_AUTO_TEST_CASE(a_join_whose_worker_is_gone_is_dropped_and_a_broken_link_says_so) {
  auto fake = std::make_shared<coord::redis_fake>();
  // Outlive the coroutine: the acceptor may still wait when it ends.
  std::vector<std::string> peers;
  std::vector<coord::redis_stream> accepted;
  asio::cancellation_signal stop;
  run_virtually([&](asio::io_context& io) -> asio::awaitable<void> {
    coord::redis_join_options join;
    join.where = fake->endpoint();
    join.alive_ttl = 900ms;
    const coord::run_keys keys{"alive"};
    drover::run_timer pause(io.get_executor());
    const auto sleep = [&](drover::run_clock::duration d) {
      pause.expires_after(d);
      return pause.async_wait(asio::as_tuple(asio::use_awaitable));
    };
    coord::redis_stream living = co_await coord::dial_redis_master(join, keys, "living");
    {
      coord::redis_stream dead = co_await coord::dial_redis_master(join, keys, "dead");
    }  // closed: its key is no longer renewed
    co_await sleep(5s);
    redis_connection look(io.get_executor());
    co_await look.connect(fake->endpoint(), std::nullopt);
    // The fake numbers its connection ids: the living worker's pipe is the first.
    BOOST_TEST(
        (co_await look.exec(redis_command("EXISTS", keys.alive("0000000000000001")))).integer == 1);
    BOOST_TEST(
        (co_await look.exec(redis_command("EXISTS", keys.alive("0000000000000002")))).integer == 0);

    asio::co_spawn(io,
                   coord::accept_redis_workers(join, keys, "master",
                                               [&](coord::redis_stream s, std::string peer) {
                                                 peers.push_back(std::move(peer));
                                                 accepted.push_back(std::move(s));
                                               }),
                   asio::bind_cancellation_slot(stop.slot(), asio::detached));
    co_await sleep(2s);
    BOOST_TEST_REQUIRE(peers.size() == 1u);
    BOOST_TEST(peers[0].starts_with("redis:living/"), peers[0]);

    // The master's end reads; Redis restarts under it.
    auto reading = asio::co_spawn(
        io,
        [&]() -> asio::awaitable<boost::system::error_code> {
          std::array<char, 64> buffer;
          auto [ec, n] = co_await accepted[0].async_read_some(asio::buffer(buffer),
                                                              asio::as_tuple(asio::use_awaitable));
          co_return ec;
        },
        asio::use_awaitable);
    co_await sleep(100ms);
    fake->restart();
    const boost::system::error_code read_error = co_await std::move(reading);
    BOOST_TEST((read_error == coord::redis_link_failed()), read_error.message());
    BOOST_TEST((read_error != asio::error::eof));
    stop.emit(asio::cancellation_type::terminal);
    living.close();
    accepted.clear();  // closed while their io_context runs
  });
}

BOOST_AUTO_TEST_CASE(the_journal_store_appends_fenced_by_the_epoch) {
  auto fake = std::make_shared<coord::redis_fake>();
  run([&](asio::io_context& io) -> asio::awaitable<void> {
    redis_connection redis(io.get_executor());
    co_await redis.connect(fake->endpoint(), std::nullopt);
    co_await redis.exec(redis_command("SET", coord::run_keys{"j"}.epoch(), "4"));
  });
  coord::redis_journal_options o;
  o.where = fake->endpoint();
  o.run_key = "j";
  o.epoch = 4;
  o.give_up_after = 1s;
  auto store = coord::make_redis_journal_store(o);
  BOOST_TEST(!store->append("{\"a\":1}\n{\"b\":2}\n").has_value());
  BOOST_TEST(store->load() == "{\"a\":1}\n{\"b\":2}\n");
  o.epoch = 3;  // a deposed master
  const auto refused = coord::make_redis_journal_store(o)->append("{\"c\":3}\n");
  BOOST_REQUIRE(refused.has_value());
  BOOST_TEST(refused->find("epoch 4") != std::string::npos, *refused);
  BOOST_TEST(store->load() == "{\"a\":1}\n{\"b\":2}\n");
}

// workers = 0: a module that ran in the test's process would fail the run loudly.
asio::awaitable<boost::json::value> never_local(drover::module_context&) {
  throw std::logic_error("a remote module ran locally");
  co_return nullptr;
}

BOOST_AUTO_TEST_CASE(a_run_whose_workers_join_through_the_fake) {
  auto fake = std::make_shared<coord::redis_fake>();
  asio::io_context io;
  auto hub = std::make_shared<drover::worker_hub>();
  coord::master master(io.get_executor(), hub);
  coord::redis_join_options join;
  join.where = fake->endpoint();
  join.block = 200ms;
  const coord::run_keys keys{"fake-run"};
  asio::cancellation_signal stop_joins;
  asio::co_spawn(io,
                 coord::accept_redis_workers(join, keys, "master",
                                             [&](coord::redis_stream s, std::string peer) {
                                               master.accept(std::move(s), std::move(peer));
                                             }),
                 asio::bind_cancellation_slot(stop_joins.slot(), asio::detached));
  const auto resolve = [](std::string_view kind, const boost::json::value&) {
    drover::module_body body;
    if (kind == "noop") {
      body = [](drover::module_context&) -> asio::awaitable<boost::json::value> {
        co_return boost::json::value(1);
      };
    }
    return body;
  };
  std::vector<std::unique_ptr<coord::worker_client>> workers;
  int ended = 0;
  for (int w = 0; w < 3; ++w) {
    coord::worker_options wo;
    wo.worker_id = "w" + std::to_string(w);
    wo.slots = 4;
    wo.dial = coord::redis_dialer(join, keys, wo.worker_id);
    wo.dial_name = "the fake";
    workers.push_back(std::make_unique<coord::worker_client>(io.get_executor(), wo, resolve));
    workers.back()->async_run([&](coord::worker_outcome) { ++ended; });
  }
  drover::pipeline p;
  for (int i = 0; i < 120; ++i) {
    std::vector<std::string> deps;
    if (i >= 12) deps.push_back("m" + std::to_string(i - 12));
    p.add("m" + std::to_string(i), never_local, deps).kind("noop");
  }
  drover::run_options options;
  options.workers = 0;
  options.remote = hub;
  drover::engine engine(io.get_executor());
  std::optional<drover::run_report> report;
  engine.async_run(std::move(p), std::move(options), [&](drover::run_report r) {
    report = std::move(r);
    stop_joins.emit(asio::cancellation_type::terminal);
    master.stop();
  });
  const auto limit = std::chrono::steady_clock::now() + 60s;
  while ((!report || ended < 3) && std::chrono::steady_clock::now() < limit)
    io.run_one_for(100ms);
  BOOST_REQUIRE_MESSAGE(report, "the run over the fake did not finish within 60 s");
  BOOST_TEST(ended == 3);  // each worker heard the master's goodbye
  BOOST_TEST((report->status == drover::run_status::succeeded));
  BOOST_TEST(report->count(drover::module_status::succeeded) == 120u);
  std::map<std::string_view, int> by_worker;
  for (const auto& m : report->modules)
    ++by_worker[report->worker_name(m)];
  BOOST_TEST(by_worker.size() == 3u);
}

}  // namespace
