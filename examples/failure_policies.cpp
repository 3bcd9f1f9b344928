// What happens when modules fail: retries with backoff, a per-attempt timeout, dependents
// skipped with a reason, keep_going finishing the independent branches, and an always_run
// cleanup that runs whatever happened before it.
#include <drover/drover.hpp>

#include <boost/asio.hpp>
#include <boost/json/serialize.hpp>
#include <iomanip>
#include <iostream>
#include <stdexcept>
#include <string>

namespace asio = boost::asio;
using json = boost::json::value;
using namespace std::chrono_literals;

// Fails its first two attempts, as a flaky network call might.
asio::awaitable<json> flaky(drover::module_context& ctx) {
  if (ctx.attempt() < 3)
    throw std::runtime_error("connection reset (attempt " + std::to_string(ctx.attempt()) + ")");
  co_return "downloaded";
}

// Takes far longer than its timeout allows; the timeout cancels the wait.
asio::awaitable<json> slow(drover::module_context& ctx) {
  co_await asio::steady_timer(ctx.get_executor(), 10s).async_wait(asio::use_awaitable);
  co_return "finished";
}

asio::awaitable<json> broken(drover::module_context&) {
  throw std::runtime_error("disk full");
  co_return nullptr;
}

asio::awaitable<json> succeed(drover::module_context& ctx) {
  co_return ctx.id();
}

// Runs even though `broken` failed, and can see how its dependencies ended.
asio::awaitable<json> cleanup(drover::module_context& ctx) {
  std::string broken_status{to_string(ctx.status_of("broken"))};
  co_return "removed temporary files (broken: " + broken_status + ")";
}

int main() {
  drover::pipeline p;
  p.name = "nightly";
  p.mode = drover::execution_mode::keep_going;
  p.defaults.backoff = {.initial = 10ms, .multiplier = 2.0, .max = 100ms, .jitter = 0.0};

  p.add("flaky", flaky).retries(2);
  p.add("slow", slow).timeout(50ms);
  p.add("broken", broken);
  p.add("report", succeed, {"broken"});
  p.add("docs", succeed);
  p.add("cleanup", cleanup, {"flaky", "broken"}).always_run();

  drover::run_options options;
  options.workers = 4;

  asio::io_context io;
  drover::engine engine{io.get_executor()};
  engine.async_run(std::move(p), std::move(options), [](drover::run_report report) {
    for (const auto& m : report.modules) {
      std::string detail = m.reason.empty() ? boost::json::serialize(m.value) : m.reason;
      std::cout << std::left << std::setw(9) << m.id << std::setw(11) << to_string(m.status)
                << "attempts=" << m.attempts << "  " << detail << "\n";
    }
    std::cout << "run: " << to_string(report.status) << "\n";
  });
  io.run();
}
