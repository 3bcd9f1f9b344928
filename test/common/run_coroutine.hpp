#pragma once
// Runs a test's coroutine to its end on an io_context of its own.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <functional>

namespace drover::testing {

/// Runs `body` as a coroutine on `io` until `io` has no more work; rethrows what the coroutine
/// threw. Give the io_context yourself when objects that use it must outlive the coroutine.
inline void run_coroutine(
    boost::asio::io_context& io,
    std::function<boost::asio::awaitable<void>(boost::asio::io_context&)> body) {
  auto done = boost::asio::co_spawn(io, body(io), boost::asio::use_future);
  io.run();
  done.get();
}

/// The same on a fresh io_context.
inline void run_coroutine(
    std::function<boost::asio::awaitable<void>(boost::asio::io_context&)> body) {
  boost::asio::io_context io;
  run_coroutine(io, std::move(body));
}

}  // namespace drover::testing
