#include <drover/modules/exec.hpp>
#include <drover/modules/registry.hpp>

#include <drover/context.hpp>

#include "detail/params.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>

namespace drover::modules {

namespace {

namespace asio = boost::asio;

// About 31 years: far beyond any real wait, far below steady_clock overflow.
constexpr std::int64_t max_sleep_ms = 1'000'000'000'000;

module_body make_noop(const boost::json::value& params) {
  detail::param_reader check("noop", params, {});
  return [](module_context&) -> asio::awaitable<boost::json::value> { co_return nullptr; };
}

asio::awaitable<boost::json::value> sleep_for(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::use_awaitable);
  co_return nullptr;
}

module_body make_sleep(const boost::json::value& params) {
  detail::param_reader in("sleep", params, {"ms"});
  auto ms = in.integer("ms", 0, max_sleep_ms);
  if (!ms) in.fail("ms", "sleep needs 'ms': how long to wait, in milliseconds");
  return
      [duration = std::chrono::milliseconds(*ms)](module_context&) { return sleep_for(duration); };
}

}  // namespace

void add_builtin_kinds(registry& r) {
  r.add("exec",
        [](const boost::json::value& params) { return exec_body(parse_exec_params(params)); });
  r.add("noop", make_noop);
  r.add("sleep", make_sleep);
}

}  // namespace drover::modules
