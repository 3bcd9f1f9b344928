// In-process slots shared by several runs (drover/slot_share.hpp): the share's rules alone, then
// runs of one engine sharing it, with and without a worker pool.

#include <drover/slot_share.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#define BOOST_TEST_MODULE slot_share
#include "test_support.hpp"

#include <array>

namespace {

using namespace drover::test;
using drover::slot_share;

// ---------------------------------------------------------------------------------------------
// The share on its own

BOOST_AUTO_TEST_CASE(slots_are_taken_up_to_the_number_and_given_back) {
  slot_share share{2};
  const auto a = share.join();
  BOOST_TEST(share.try_acquire(a));
  BOOST_TEST(share.try_acquire(a));
  BOOST_TEST(!share.try_acquire(a));
  BOOST_TEST(share.busy() == 2u);
  share.release(a);
  BOOST_TEST(share.busy() == 1u);
  BOOST_TEST(share.try_acquire(a));
  BOOST_CHECK_THROW(slot_share{0}, std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(a_wait_with_a_free_slot_is_granted_at_once) {
  slot_share share{1};
  const auto a = share.join();
  int woken = 0;
  auto w = share.wait(a, [&] { ++woken; });
  BOOST_TEST(woken == 1);
  BOOST_TEST(share.granted(w));
  BOOST_TEST(!share.withdraw(w));  // granted: the member holds the slot
  BOOST_TEST(share.busy() == 1u);
}

BOOST_AUTO_TEST_CASE(a_freed_slot_goes_to_the_member_with_fewest_slots_for_its_demand) {
  slot_share share{4};
  const auto a = share.join(), b = share.join(), c = share.join();
  share.set_demand(a, 10);
  share.set_demand(b, 30);
  share.set_demand(c, 1);
  for (int i = 0; i < 3; ++i)
    BOOST_REQUIRE(share.try_acquire(a));
  BOOST_REQUIRE(share.try_acquire(b));
  std::vector<char> woken;
  auto wa = share.wait(a, [&] { woken.push_back('a'); });
  auto wb = share.wait(b, [&] { woken.push_back('b'); });
  auto wc = share.wait(c, [&] { woken.push_back('c'); });
  BOOST_TEST(woken.empty());
  // c holds nothing: it goes first, though it queued last.
  share.release(a);
  BOOST_TEST((woken == std::vector<char>{'c'}));
  BOOST_TEST(share.granted(wc));
  // a: 2 held for 10 ready, b: 1 for 30. b is the further behind.
  share.release(a);
  BOOST_TEST((woken == std::vector<char>{'c', 'b'}));
  share.release(b);
  BOOST_TEST((woken == std::vector<char>{'c', 'b', 'a'}));
  BOOST_TEST(share.granted(wa));
  BOOST_TEST(share.busy() == 4u);
}

BOOST_AUTO_TEST_CASE(equals_are_served_in_the_order_they_queued) {
  slot_share share{1};
  const auto a = share.join(), b = share.join(), c = share.join();
  BOOST_REQUIRE(share.try_acquire(a));
  std::vector<char> woken;
  auto wc = share.wait(c, [&] { woken.push_back('c'); });
  auto wb = share.wait(b, [&] { woken.push_back('b'); });
  share.release(a);
  share.release(c);
  BOOST_TEST((woken == std::vector<char>{'c', 'b'}));
}

BOOST_AUTO_TEST_CASE(a_withdrawn_wait_gets_nothing) {
  slot_share share{1};
  const auto a = share.join(), b = share.join();
  BOOST_REQUIRE(share.try_acquire(a));
  int woken = 0;
  auto w = share.wait(b, [&] { ++woken; });
  BOOST_TEST(share.withdraw(w));
  share.release(a);
  BOOST_TEST(woken == 0);
  BOOST_TEST(!share.granted(w));
  BOOST_TEST(share.busy() == 0u);
}

BOOST_AUTO_TEST_CASE(a_member_that_leaves_gives_back_what_it_held_and_stops_waiting) {
  slot_share share{2};
  const auto a = share.join(), b = share.join();
  BOOST_REQUIRE(share.try_acquire(a));
  BOOST_REQUIRE(share.try_acquire(a));
  int a_woken = 0, b_woken = 0;
  auto wa = share.wait(a, [&] { ++a_woken; });
  auto wb = share.wait(b, [&] { ++b_woken; });
  share.leave(a);
  BOOST_TEST(a_woken == 0);
  BOOST_TEST(b_woken == 1);
  BOOST_TEST(share.busy() == 1u);
  share.release(a);  // late, after leaving: changes nothing
  BOOST_TEST(share.busy() == 1u);
  const auto c = share.join();  // takes a's id again, with nothing held
  BOOST_TEST(c == a);
  BOOST_TEST(share.try_acquire(c));
  BOOST_TEST(!share.try_acquire(c));
}

// ---------------------------------------------------------------------------------------------
// Runs that share slots

/// Records each attempt in the run's own probe and in one for every run.
asio::awaitable<json::value> counted(drover::module_context& ctx, milliseconds d, probe* all,
                                     probe* mine) {
  probe_scope in_all{all, ctx};
  probe_scope in_mine{mine, ctx};
  co_await wait_for(d);
  co_return nullptr;
}

drover::module_body counted_body(milliseconds d, probe* all, probe* mine) {
  return [=](drover::module_context& ctx) { return counted(ctx, d, all, mine); };
}

drover::pipeline independent(std::string name, int n, milliseconds d, probe* all, probe* mine) {
  drover::pipeline p;
  p.name = std::move(name);
  for (int i = 0; i < n; ++i)
    p.add("m" + std::to_string(i), counted_body(d, all, mine));
  return p;
}

drover::pipeline chain(std::string name, int n, milliseconds d, probe* all, probe* mine) {
  drover::pipeline p;
  p.name = std::move(name);
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> after;
    if (i > 0) after.push_back("m" + std::to_string(i - 1));
    p.add("m" + std::to_string(i), counted_body(d, all, mine), after);
  }
  return p;
}

/// Runs on one engine, all sharing one slot_share, each with as many workers as the share has
/// slots. Run r starts start_after[r] after the first, and is cancelled cancel_after[r] after
/// its start (0 or none: never).
struct shared_runs {
  std::vector<drover::run_report> reports;
  std::vector<milliseconds> finished_at;
};

shared_runs run_sharing(std::vector<drover::pipeline> pipelines, std::size_t slots,
                        std::size_t threads, std::vector<milliseconds> start_after = {},
                        std::vector<milliseconds> cancel_after = {}) {
  asio::io_context io;
  drover::engine engine{io.get_executor(), drover::engine_options{.worker_threads = threads}};
  auto share = std::make_shared<slot_share>(slots);
  const std::size_t n = pipelines.size();
  shared_runs out;
  out.reports.resize(n);
  out.finished_at.resize(n);
  std::vector<int> completions(n, 0);
  std::deque<asio::cancellation_signal> cancels(n);
  std::deque<asio::steady_timer> timers;
  const auto begin = steady::now();
  for (std::size_t r = 0; r < n; ++r) {
    auto launch = [&, r] {
      drover::run_options options;
      options.workers = slots;
      options.shared_slots = share;
      options.cancel_grace = 2s;
      engine.async_run(
          std::move(pipelines[r]), std::move(options),
          asio::bind_cancellation_slot(cancels[r].slot(), [&, r](drover::run_report rep) {
            ++completions[r];
            out.finished_at[r] = to_ms(steady::now() - begin);
            out.reports[r] = std::move(rep);
          }));
      if (r < cancel_after.size() && cancel_after[r] > 0ms) {
        auto& timer = timers.emplace_back(io, cancel_after[r]);
        timer.async_wait([&, r](boost::system::error_code) {
          cancels[r].emit(asio::cancellation_type::terminal);
        });
      }
    };
    const milliseconds delay = r < start_after.size() ? start_after[r] : 0ms;
    if (delay == 0ms) {
      launch();
    } else {
      auto& timer = timers.emplace_back(io, delay);
      timer.async_wait([launch](boost::system::error_code) { launch(); });
    }
  }
  io.run();
  for (std::size_t r = 0; r < n; ++r)
    BOOST_REQUIRE_MESSAGE(completions[r] == 1, "run " << r << " completed " << completions[r]);
  BOOST_TEST(share->busy() == 0u);
  return out;
}

constexpr std::array<std::size_t, 2> thread_counts{0, 2};

BOOST_AUTO_TEST_CASE(runs_together_never_use_more_than_the_shared_slots) {
  for (const std::size_t threads : thread_counts) {
    BOOST_TEST_CONTEXT("threads " << threads) {
      probe all, a, b;
      std::vector<drover::pipeline> runs;
      runs.push_back(independent("a", 8, 15ms, &all, &a));
      runs.push_back(independent("b", 8, 15ms, &all, &b));
      auto done = run_sharing(std::move(runs), 2, threads);
      for (const auto& report : done.reports)
        BOOST_TEST(report.status == drover::run_status::succeeded);
      BOOST_TEST(all.max_running() <= 2);
      BOOST_TEST(all.max_running() >= 1);
      BOOST_TEST(a.begin_order().size() == 8u);
      BOOST_TEST(b.begin_order().size() == 8u);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_run_that_needs_one_slot_leaves_the_rest_to_the_other) {
  // 3 slots: the chain can only ever use one, so the wide run gets the other two. A static
  // split would have given each run one (3 / 2).
  for (const std::size_t threads : thread_counts) {
    BOOST_TEST_CONTEXT("threads " << threads) {
      probe all, narrow, wide;
      std::vector<drover::pipeline> runs;
      runs.push_back(chain("narrow", 6, 30ms, &all, &narrow));
      runs.push_back(independent("wide", 12, 30ms, &all, &wide));
      auto done = run_sharing(std::move(runs), 3, threads);
      for (const auto& report : done.reports)
        BOOST_TEST(report.status == drover::run_status::succeeded);
      BOOST_TEST(all.max_running() <= 3);
      BOOST_TEST(narrow.max_running() == 1);
      BOOST_TEST(wide.max_running() >= 2);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_late_run_is_not_starved) {
  // The first run has work for every slot for a long while; the second, started later, gets a
  // slot as soon as one frees up and finishes long before the first.
  for (const std::size_t threads : thread_counts) {
    BOOST_TEST_CONTEXT("threads " << threads) {
      probe all, big, late;
      std::vector<drover::pipeline> runs;
      runs.push_back(independent("big", 60, 20ms, &all, &big));
      runs.push_back(independent("late", 2, 20ms, &all, &late));
      auto done = run_sharing(std::move(runs), 2, threads, {0ms, 50ms});
      for (const auto& report : done.reports)
        BOOST_TEST(report.status == drover::run_status::succeeded);
      BOOST_TEST(all.max_running() <= 2);
      BOOST_TEST(done.finished_at[1] < done.finished_at[0]);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_run_cancelled_while_it_waits_for_slots_ends_at_once) {
  // The first run holds both slots for 3 s; the second waits for one and is cancelled. It ends
  // cancelled without waiting for a slot; the first is untouched.
  for (const std::size_t threads : thread_counts) {
    BOOST_TEST_CONTEXT("threads " << threads) {
      probe all, holder, waiter;
      std::vector<drover::pipeline> runs;
      runs.push_back(independent("holder", 2, 3s, &all, &holder));
      runs.push_back(independent("waiter", 3, 10ms, &all, &waiter));
      auto done = run_sharing(std::move(runs), 2, threads, {0ms, 100ms}, {0ms, 200ms});
      BOOST_TEST(done.reports[0].status == drover::run_status::succeeded);
      BOOST_TEST(done.reports[1].status == drover::run_status::cancelled);
      BOOST_TEST(waiter.begin_order().empty());
      BOOST_TEST(done.finished_at[1] < done.finished_at[0]);
      BOOST_TEST(done.finished_at[1] < 2500ms);
    }
  }
}

}  // namespace
