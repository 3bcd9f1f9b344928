#pragma once
// Time as every part of a run reads it: the scheduler's driver, the master's sessions and the
// simulated workers. Outside a simulation it is the steady clock and Asio's steady_timer. A
// simulation installs a virtual_time on its thread; then run_clock::now() reads virtual time
// and a run_timer fires only when the simulation advances virtual time to it. A simulated hour
// passes in moments, and the same seed gives the same order of events (docs/simulation.md).
//
//     drover::virtual_time time{seed};
//     drover::virtual_time::scope on_this_thread{time};
//     // ... create the io_context, the run, its master and workers on this thread, then:
//     for (;;) {
//       io.restart();
//       io.poll();                        // everything that is ready now
//       if (done || !time.advance()) break;  // then jump to the next timer
//     }

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace drover {

/// The steady clock, or on a thread with a virtual_time installed, that virtual time.
struct run_clock {
  using duration = std::chrono::steady_clock::duration;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::steady_clock::time_point;
  static constexpr bool is_steady = true;

  static time_point now() noexcept;
  /// The system clock, or in a simulation a fixed origin (2000-01-01T00:00:00Z) plus the
  /// virtual time elapsed, so that the same seed gives the same timestamps.
  static std::chrono::system_clock::time_point wall_now() noexcept;
};

/// Virtual time for one simulation, and its timers in the order they are due. Timers due at
/// the same instant fire in an order drawn from the seed. Single-threaded: use it, and every
/// run_timer created under its scope, on one thread.
class virtual_time {
 public:
  explicit virtual_time(std::uint64_t seed);
  ~virtual_time();
  virtual_time(const virtual_time&) = delete;
  virtual_time& operator=(const virtual_time&) = delete;

  run_clock::time_point now() const noexcept { return now_; }
  /// Virtual time since construction.
  std::chrono::nanoseconds elapsed() const noexcept { return now_ - start_; }
  std::chrono::system_clock::time_point wall_now() const noexcept;

  /// Moves time forward to the earliest pending timer (never backward) and completes its
  /// wait: the handler is posted to its executor, so run the executor afterwards. Returns
  /// false when no timer is pending.
  bool advance();
  /// Timers fired so far.
  std::uint64_t fired() const noexcept { return fired_; }

  /// Destroys, without calling them, the handlers of every wait still pending on a timer of
  /// this virtual time, as destroying an io_context destroys its pending operations. A
  /// simulation calls it when it ends, before destroying its io_contexts: a pending handler
  /// may own the timer it waits on (a coroutine frame that holds its timer), a cycle nothing
  /// else breaks.
  void drop_pending();

  /// The virtual_time installed on this thread, if any.
  static virtual_time* current() noexcept;

  /// Installs `time` on this thread for the scope's life (the previous one after).
  class scope {
   public:
    explicit scope(virtual_time& time) noexcept;
    ~scope();
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

   private:
    virtual_time* previous_;
  };

  struct waiter;  // one virtual timer's state (clock.cpp)

 private:
  friend class run_timer;
  void schedule(const std::shared_ptr<waiter>& w);
  void track(const std::shared_ptr<waiter>& w);

  struct entry {
    run_clock::time_point at;
    std::uint64_t tie;  // seeded: orders timers due at the same instant
    std::uint64_t generation;
    std::weak_ptr<waiter> timer;
  };
  struct later {
    bool operator()(const entry& a, const entry& b) const noexcept {
      return a.at != b.at ? a.at > b.at : a.tie > b.tie;
    }
  };

  run_clock::time_point start_, now_;
  std::mt19937_64 ties_;
  std::vector<entry> heap_;
  std::vector<std::weak_ptr<waiter>> timers_;  // every timer made under this time
  std::size_t prune_timers_at_ = 1024;
  std::uint64_t fired_ = 0;
};

/// A timer on run_clock with the part of Asio's timer interface drover uses. Created on a
/// thread with a virtual_time installed, it is virtual; otherwise it is an asio::steady_timer.
/// As with Asio's timers, expires_at() and cancel() complete a pending wait with
/// boost::asio::error::operation_aborted.
class run_timer {
 public:
  using executor_type = boost::asio::any_io_executor;
  using clock_type = run_clock;
  using time_point = run_clock::time_point;
  using duration = run_clock::duration;
  using wait_signature = void(boost::system::error_code);

  explicit run_timer(executor_type executor);
  ~run_timer();
  run_timer(const run_timer&) = delete;
  run_timer& operator=(const run_timer&) = delete;

  executor_type get_executor() const noexcept { return executor_; }
  time_point expiry() const;
  /// Sets the expiry; cancels a pending wait. Returns the number of waits cancelled.
  std::size_t expires_at(time_point at);
  std::size_t expires_after(duration d) { return expires_at(run_clock::now() + d); }
  /// Completes pending waits with operation_aborted. Returns how many.
  std::size_t cancel();

  template <boost::asio::completion_token_for<wait_signature> Token =
                boost::asio::default_completion_token_t<executor_type>>
  auto async_wait(Token&& token = Token{}) {
    return boost::asio::async_initiate<Token, wait_signature>(
        [this](boost::asio::any_completion_handler<wait_signature> handler) {
          start_wait(std::move(handler));
        },
        token);
  }

 private:
  void start_wait(boost::asio::any_completion_handler<wait_signature> handler);

  executor_type executor_;
  virtual_time* time_ = nullptr;
  std::unique_ptr<boost::asio::steady_timer> real_;
  std::shared_ptr<virtual_time::waiter> virtual_;
};

}  // namespace drover
