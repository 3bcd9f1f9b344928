#pragma once
// Shared helpers for the engine tests: run a pipeline to completion, bodies that wait, fail or
// record what they did, and an event recorder.
//
// Bodies never keep state in a coroutine lambda's captures (the lambda object may be gone
// while its coroutine still runs): they are plain lambdas that call a free coroutine taking
// its state by value, or go through coroutine_body, which copies the lambda into a frame.

#include <drover/engine.hpp>

#include "../common/printing.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace drover::test {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

using drover::testing::worker_counts;

inline milliseconds to_ms(steady::duration d) {
  return std::chrono::duration_cast<milliseconds>(d);
}

inline std::string lower(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// Case-insensitive substring test.
inline bool mentions(std::string_view text, std::string_view needle) {
  return lower(text).find(lower(needle)) != std::string::npos;
}

/// Threads in this process, from /proc/self/status (Linux).
inline int thread_count() {
  std::ifstream status{"/proc/self/status"};
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

/// Waits on a timer on the calling coroutine's executor; throws when cancelled.
inline asio::awaitable<void> wait_for(milliseconds d) {
  asio::steady_timer timer{co_await asio::this_coro::executor, d};
  co_await timer.async_wait(asio::use_awaitable);
}

/// What bodies did, recorded from any thread: when each attempt began and ended, on which
/// thread, and how many bodies were running at once.
class probe {
 public:
  struct entry {
    std::string module;
    bool begin = false;
    std::uint32_t attempt = 0;
    std::string worker;
    steady::time_point at;
    std::thread::id thread;
  };

  void begin(std::string_view module, std::uint32_t attempt, std::string_view worker) {
    std::lock_guard lock{mutex_};
    entries_.push_back({std::string{module}, true, attempt, std::string{worker}, steady::now(),
                        std::this_thread::get_id()});
    max_running_ = std::max(max_running_, ++running_);
  }

  void end(std::string_view module, std::uint32_t attempt) {
    std::lock_guard lock{mutex_};
    entries_.push_back(
        {std::string{module}, false, attempt, {}, steady::now(), std::this_thread::get_id()});
    --running_;
  }

  std::vector<entry> entries() const {
    std::lock_guard lock{mutex_};
    return entries_;
  }

  /// Module ids in the order their attempts began.
  std::vector<std::string> begin_order() const {
    std::vector<std::string> order;
    for (const auto& e : entries()) {
      if (e.begin) order.push_back(e.module);
    }
    return order;
  }

  std::size_t begins(std::string_view module) const {
    auto all = entries();
    return static_cast<std::size_t>(std::count_if(
        all.begin(), all.end(), [&](const entry& e) { return e.begin && e.module == module; }));
  }

  std::size_t ends(std::string_view module) const {
    auto all = entries();
    return static_cast<std::size_t>(std::count_if(
        all.begin(), all.end(), [&](const entry& e) { return !e.begin && e.module == module; }));
  }

  int max_running() const {
    std::lock_guard lock{mutex_};
    return max_running_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<entry> entries_;
  int running_ = 0;
  int max_running_ = 0;
};

/// Records the begin of an attempt on construction and its end on destruction, so that an
/// attempt that throws or is cancelled still ends.
class probe_scope {
 public:
  probe_scope(probe* p, const module_context& ctx)
      : probe_(p), module_(ctx.id()), attempt_(ctx.attempt()) {
    if (probe_) probe_->begin(module_, attempt_, ctx.worker());
  }
  ~probe_scope() {
    if (probe_) probe_->end(module_, attempt_);
  }
  probe_scope(const probe_scope&) = delete;
  probe_scope& operator=(const probe_scope&) = delete;

 private:
  probe* probe_;
  std::string module_;
  std::uint32_t attempt_;
};

template <class Function>
asio::awaitable<json::value> invoke_kept_alive(Function f, module_context& ctx) {
  co_return co_await f(ctx);
}

/// A body from a coroutine lambda whose captures stay alive for as long as its coroutine
/// runs: the lambda is copied into the frame of a wrapping coroutine.
template <class Function>
module_body coroutine_body(Function f) {
  return [f = std::move(f)](module_context& ctx) { return invoke_kept_alive(f, ctx); };
}

inline asio::awaitable<json::value> wait_then_return(module_context& ctx, milliseconds d,
                                                     json::value result, probe* p) {
  probe_scope scope{p, ctx};
  co_await wait_for(d);
  co_return result;
}

/// A body that waits `d` on a timer (cancellable) and returns `result`.
inline module_body wait_body(milliseconds d, json::value result = nullptr, probe* p = nullptr) {
  return [d, result, p](module_context& ctx) { return wait_then_return(ctx, d, result, p); };
}

/// A body that returns `result` at once.
inline module_body value_body(json::value result = nullptr, probe* p = nullptr) {
  return wait_body(0ms, std::move(result), p);
}

inline asio::awaitable<json::value> wait_then_throw(module_context& ctx, milliseconds d,
                                                    std::string message, probe* p) {
  probe_scope scope{p, ctx};
  if (d > 0ms) co_await wait_for(d);
  throw std::runtime_error(message);
}

/// A body that waits `d` and then throws std::runtime_error(message).
inline module_body fail_body(std::string message, milliseconds d = 0ms, probe* p = nullptr) {
  return [d, message, p](module_context& ctx) { return wait_then_throw(ctx, d, message, p); };
}

/// One event, copied out of the callback (the views in drover::event die with it).
struct recorded_event {
  event_type type;
  std::uint64_t seq = 0;
  std::string module;
  std::uint32_t index = 0;
  std::uint32_t attempt = 0;
  std::string worker;
  module_status status = module_status::pending;
  std::string message;
  milliseconds delay{0};
  std::size_t total = 0;
  std::thread::id thread;
};

/// Collects a run's events; must outlive the run.
class event_log {
 public:
  event_sink sink() {
    return [this](const event& e) {
      std::lock_guard lock{mutex_};
      events_.push_back({e.type, e.seq, std::string{e.module}, e.index, e.attempt,
                         std::string{e.worker}, e.status, std::string{e.message}, e.delay, e.total,
                         std::this_thread::get_id()});
    };
  }

  std::vector<recorded_event> events() const {
    std::lock_guard lock{mutex_};
    return events_;
  }

  /// Events about `module`, in order.
  std::vector<recorded_event> of(std::string_view module) const {
    std::vector<recorded_event> out;
    for (const auto& e : events()) {
      if (e.module == module) out.push_back(e);
    }
    return out;
  }

  std::size_t count(event_type type) const {
    auto all = events();
    return static_cast<std::size_t>(std::count_if(
        all.begin(), all.end(), [&](const recorded_event& e) { return e.type == type; }));
  }

  /// The `delay` of each module_retrying event of `module`, in order.
  std::vector<milliseconds::rep> retry_delays(std::string_view module) const {
    std::vector<milliseconds::rep> delays;
    for (const auto& e : of(module)) {
      if (e.type == event_type::module_retrying) delays.push_back(e.delay.count());
    }
    return delays;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<recorded_event> events_;
};

/// A run that completed, with its wall time measured outside the engine.
struct finished_run {
  run_report report;
  milliseconds elapsed{0};  ///< from async_run to the completion handler
  std::thread::id completion_thread;
};

/// Runs `p` on a fresh io_context on this thread until the io_context runs out of work.
/// `on_complete` runs inside the completion handler.
inline finished_run run_pipeline(pipeline p, run_options options = {},
                                 engine_options engine_settings = {},
                                 std::function<void()> on_complete = {}) {
  asio::io_context io;
  drover::engine engine{io.get_executor(), engine_settings};
  std::optional<finished_run> done;
  int completions = 0;
  const auto start = steady::now();
  engine.async_run(std::move(p), std::move(options), [&](run_report report) {
    ++completions;
    done =
        finished_run{std::move(report), to_ms(steady::now() - start), std::this_thread::get_id()};
    if (on_complete) on_complete();
  });
  io.run();
  BOOST_REQUIRE_MESSAGE(done.has_value(), "the run never completed");
  BOOST_TEST(completions == 1);
  return std::move(*done);
}

/// Runs `p` with `workers` in-process workers.
inline finished_run run_with_workers(pipeline p, std::size_t workers, run_options options = {}) {
  options.workers = workers;
  return run_pipeline(std::move(p), std::move(options));
}

/// The result of module `id`; fails the test if the report has none.
inline module_result result_of(const run_report& report, std::string_view id) {
  auto r = report.find(id);
  BOOST_REQUIRE_MESSAGE(r.has_value(), "no result for module " << id);
  return std::move(*r);
}

/// Backoff with exact delays: `initial`, then times `multiplier`, capped at `max`.
inline backoff_policy exact_backoff(milliseconds initial, double multiplier = 1.0,
                                    milliseconds max = 10s) {
  return backoff_policy{initial, multiplier, max, 0.0};
}

}  // namespace drover::test
