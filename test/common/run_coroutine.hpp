#pragma once
// Runs a test's coroutine to its end on an io_context of its own.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <functional>

namespace drover::testing {

/// Runs `body` as a coroutine on a fresh io_context until the io_context has no more work;
/// rethrows what the coroutine threw.
inline void run_coroutine(
    std::function<boost::asio::awaitable<void>(boost::asio::io_context&)> body) {
  boost::asio::io_context io;
  auto done = boost::asio::co_spawn(io, body(io), boost::asio::use_future);
  io.run();
  done.get();
}

}  // namespace drover::testing
