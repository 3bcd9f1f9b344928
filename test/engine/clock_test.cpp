// run_clock and run_timer: the steady clock and Asio's timer outside a simulation; virtual
// time, fired in order with seeded ties, inside one.

#include <drover/clock.hpp>

#define BOOST_TEST_MODULE clock
#include <boost/test/unit_test.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using drover::run_clock;
using drover::run_timer;
using drover::virtual_time;

// Runs everything ready, then advances virtual time, until nothing is left.
void run_virtually(asio::io_context& io, virtual_time& time) {
  for (;;) {
    io.restart();
    io.poll();
    if (!time.advance()) break;
  }
}

BOOST_AUTO_TEST_CASE(outside_a_simulation_the_clock_is_steady_and_timers_are_real) {
  BOOST_TEST(virtual_time::current() == nullptr);
  asio::io_context io;
  run_timer timer{io.get_executor()};
  const auto before = std::chrono::steady_clock::now();
  timer.expires_after(20ms);
  bool fired = false;
  timer.async_wait([&](boost::system::error_code ec) { fired = !ec; });
  io.run();
  BOOST_TEST(fired);
  BOOST_TEST((std::chrono::steady_clock::now() - before >= 20ms));
  BOOST_TEST((run_clock::now() >= before + 20ms));
}

BOOST_AUTO_TEST_CASE(virtual_timers_fire_in_time_order_and_time_jumps) {
  virtual_time time{1};
  virtual_time::scope installed{time};
  BOOST_TEST(virtual_time::current() == &time);
  asio::io_context io;
  const auto start = run_clock::now();
  BOOST_TEST((start == time.now()));
  std::vector<std::string> fired;
  run_timer hour{io.get_executor()}, second{io.get_executor()}, minute{io.get_executor()};
  hour.expires_after(1h);
  second.expires_after(1s);
  minute.expires_after(1min);
  hour.async_wait([&](boost::system::error_code) {
    fired.push_back("hour");
    BOOST_TEST((run_clock::now() - start == 1h));
  });
  second.async_wait([&](boost::system::error_code) { fired.push_back("second"); });
  minute.async_wait([&](boost::system::error_code) { fired.push_back("minute"); });
  const auto wall_before = std::chrono::steady_clock::now();
  run_virtually(io, time);
  BOOST_TEST((fired == std::vector<std::string>{"second", "minute", "hour"}));
  BOOST_TEST((time.elapsed() == 1h));
  BOOST_TEST(time.fired() == 3u);
  BOOST_TEST((std::chrono::steady_clock::now() - wall_before < 30s));  // an hour in moments
  // The wall clock is virtual too: a fixed origin plus the time elapsed.
  BOOST_TEST((run_clock::wall_now() - std::chrono::system_clock::time_point{} ==
              std::chrono::seconds{946'684'800} + 1h));
}

BOOST_AUTO_TEST_CASE(the_scope_uninstalls_virtual_time) {
  {
    virtual_time time{1};
    virtual_time::scope installed{time};
    BOOST_TEST(virtual_time::current() == &time);
  }
  BOOST_TEST(virtual_time::current() == nullptr);
}

// The order of timers due at the same instant is drawn from the seed: the same seed gives
// the same order, and some other seed a different one.
std::vector<int> order_of_simultaneous_timers(std::uint64_t seed) {
  virtual_time time{seed};
  virtual_time::scope installed{time};
  asio::io_context io;
  std::vector<std::unique_ptr<run_timer>> timers;
  std::vector<int> order;
  for (int k = 0; k < 8; ++k) {
    timers.push_back(std::make_unique<run_timer>(io.get_executor()));
    timers.back()->expires_after(5ms);
    timers.back()->async_wait([&order, k](boost::system::error_code) { order.push_back(k); });
  }
  run_virtually(io, time);
  return order;
}

BOOST_AUTO_TEST_CASE(ties_are_broken_by_the_seed) {
  const auto first = order_of_simultaneous_timers(7);
  BOOST_TEST(first.size() == 8u);
  BOOST_TEST((order_of_simultaneous_timers(7) == first));
  bool some_seed_differs = false;
  for (std::uint64_t seed = 8; seed < 20 && !some_seed_differs; ++seed)
    some_seed_differs = order_of_simultaneous_timers(seed) != first;
  BOOST_TEST(some_seed_differs);
}

BOOST_AUTO_TEST_CASE(cancel_and_rearm_abort_the_pending_wait) {
  virtual_time time{1};
  virtual_time::scope installed{time};
  asio::io_context io;
  run_timer timer{io.get_executor()};
  std::vector<boost::system::error_code> results;
  const auto record = [&](boost::system::error_code ec) { results.push_back(ec); };
  timer.expires_after(1s);
  timer.async_wait(record);
  BOOST_TEST(timer.cancel() == 1u);
  timer.expires_after(2s);
  timer.async_wait(record);
  BOOST_TEST(timer.expires_after(3s) == 1u);  // rearming cancels too
  timer.async_wait(record);
  run_virtually(io, time);
  BOOST_TEST_REQUIRE(results.size() == 3u);
  BOOST_TEST((results[0] == asio::error::operation_aborted));
  BOOST_TEST((results[1] == asio::error::operation_aborted));
  BOOST_TEST(!results[2]);
  BOOST_TEST((time.elapsed() == 3s));  // the cancelled expiries never moved time
}

BOOST_AUTO_TEST_CASE(a_timer_at_the_end_of_time_waits_only_for_a_cancel) {
  virtual_time time{1};
  virtual_time::scope installed{time};
  asio::io_context io;
  run_timer timer{io.get_executor()};
  timer.expires_at(run_timer::time_point::max());
  bool aborted = false;
  timer.async_wait(
      [&](boost::system::error_code ec) { aborted = ec == asio::error::operation_aborted; });
  io.poll();
  BOOST_TEST(!time.advance());  // nothing to advance to
  timer.cancel();
  io.restart();
  io.poll();
  BOOST_TEST(aborted);
}

BOOST_AUTO_TEST_CASE(a_cancelled_coroutine_stops_waiting) {
  virtual_time time{1};
  virtual_time::scope installed{time};
  asio::io_context io;
  run_timer timer{io.get_executor()};
  asio::cancellation_signal cancel;
  bool aborted = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        timer.expires_after(1h);
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        aborted = ec == asio::error::operation_aborted;
      },
      asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  io.poll();
  cancel.emit(asio::cancellation_type::terminal);
  run_virtually(io, time);
  BOOST_TEST(aborted);
  BOOST_TEST((time.elapsed() < 1h));
}

// A handler that owns the timer it waits on: only drop_pending() ends the cycle.
struct self_owning {
  explicit self_owning(bool& flag) : destroyed(flag) {}
  ~self_owning() { destroyed = true; }
  bool& destroyed;
  std::shared_ptr<run_timer> timer;
};

BOOST_AUTO_TEST_CASE(drop_pending_destroys_waiting_handlers_without_calling_them) {
  virtual_time time{1};
  virtual_time::scope installed{time};
  asio::io_context io;
  bool destroyed = false, called = false;
  {
    auto owner = std::make_shared<self_owning>(destroyed);
    owner->timer = std::make_shared<run_timer>(io.get_executor());
    owner->timer->expires_after(1h);
    owner->timer->async_wait([owner, &called](boost::system::error_code) { called = true; });
  }
  io.poll();
  BOOST_TEST(!destroyed);  // the timer holds the handler, which holds the timer
  time.drop_pending();
  BOOST_TEST(destroyed);
  BOOST_TEST(!called);
  BOOST_TEST(!time.advance());
}

}  // namespace
