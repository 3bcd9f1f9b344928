// drover inside an application that already runs an io_context with work of its own (here a
// heartbeat timer). The engine starts no threads: module bodies run on the application's
// thread, between its heartbeats, and the run completes through an ordinary callback.
#include <drover/drover.hpp>

#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <iostream>
#include <thread>

namespace asio = boost::asio;
using json = boost::json::value;
using namespace std::chrono_literals;

namespace {

// The application's own periodic work, which keeps going while pipelines run.
class heartbeat {
 public:
  explicit heartbeat(asio::io_context& io) : timer_(io) {}

  void start() {
    timer_.expires_after(10ms);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      ++beats_;
      start();
    });
  }
  void stop() { timer_.cancel(); }
  int beats() const { return beats_; }

 private:
  asio::steady_timer timer_;
  int beats_ = 0;
};

// Waits without blocking the thread, and records which thread it ran on.
asio::awaitable<json> wait_and_record_thread(drover::module_context& ctx,
                                             std::chrono::milliseconds delay,
                                             std::thread::id* ran_on) {
  *ran_on = std::this_thread::get_id();
  co_await asio::steady_timer(ctx.get_executor(), delay).async_wait(asio::use_awaitable);
  co_return ctx.id();
}

// The lambda is not itself a coroutine: it copies its captures into the coroutine's
// parameters, so nothing refers back to the lambda object once the body is suspended.
drover::module_body wait_and_record(std::chrono::milliseconds delay, std::thread::id* ran_on) {
  return [delay, ran_on](drover::module_context& ctx) {
    return wait_and_record_thread(ctx, delay, ran_on);
  };
}

}  // namespace

int main() {
  asio::io_context io;
  heartbeat beat{io};
  beat.start();

  std::thread::id download_thread, convert_thread;
  drover::pipeline p;
  p.name = "ingest";
  p.add("download", wait_and_record(100ms, &download_thread));
  p.add("convert", wait_and_record(100ms, &convert_thread), {"download"});

  drover::engine engine{io.get_executor()};
  int beats_before_run = beat.beats();
  engine.async_run(std::move(p), [&](drover::run_report report) {
    std::cout << "pipeline " << report.pipeline << ": " << to_string(report.status) << "\n";
    bool same_thread = download_thread == std::this_thread::get_id() &&
                       convert_thread == std::this_thread::get_id();
    std::cout << "modules ran on the application's thread: " << (same_thread ? "yes" : "no")
              << "\n";
    std::cout << "heartbeat kept beating during the run: "
              << (beat.beats() - beats_before_run >= 2 ? "yes" : "no") << "\n";
    beat.stop();
  });
  io.run();
}
