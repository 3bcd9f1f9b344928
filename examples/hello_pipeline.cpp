// Three modules: `package` waits for `compile` and `test` and reads compile's value.
#include <drover/drover.hpp>

#include <boost/asio.hpp>
#include <iostream>

namespace asio = boost::asio;
using json = boost::json::value;
using namespace std::chrono_literals;

asio::awaitable<void> build(drover::engine& engine) {
  drover::pipeline p;
  p.add("compile", [](drover::module_context&) -> asio::awaitable<json> { co_return 12; });
  p.add("test", [](drover::module_context& ctx) -> asio::awaitable<json> {
    co_await asio::steady_timer(ctx.get_executor(), 50ms).async_wait(asio::use_awaitable);
    co_return "all passed";
  });
  auto package = [](drover::module_context& ctx) -> asio::awaitable<json> {
    co_return std::to_string(ctx.result<int>("compile")) + " objects packed";
  };
  p.add("package", package, {"compile", "test"});

  drover::run_report report = co_await engine.async_run(std::move(p), asio::use_awaitable);
  for (const auto& m : report.modules)
    std::cout << m.id << ": " << to_string(m.status) << ", " << m.value << "\n";
}

int main() {
  asio::io_context io;
  drover::engine engine{io.get_executor()};
  asio::co_spawn(io, build(engine), asio::detached);
  io.run();
}
