#pragma once
// Events through a channel: for embedding code that would rather `co_await` a run's events
// than take them in a callback on the run's strand.
//
//     auto events = std::make_shared<drover::event_channel>(io.get_executor(), 1024);
//     drover::run_options options;
//     options.on_event = drover::channel_sink(events);
//     engine.async_run(std::move(p), options, ...);
//     for (;;) {
//       auto e = co_await events->async_receive(asio::use_awaitable);
//       ...                                   // e.type, e.module, e.status, ...
//       if (e.type == drover::event_type::run_finished) break;
//     }
//
// The run never waits for the reader: an event that finds the channel full is dropped and
// counted (channel_sink's `dropped`). Size the channel for the bursts you expect.

#include <drover/event.hpp>

#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/system/error_code.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace drover {

/// An event that owns its text, so that it can wait in a channel after the callback returned.
struct owned_event {
  event_type type = event_type::run_started;
  std::uint64_t seq = 0;
  wall_clock::time_point ts{};
  std::string module;
  std::uint32_t index = 0;
  std::uint32_t attempt = 0;
  std::string worker;
  module_status status = module_status::pending;
  std::string message;
  std::chrono::milliseconds delay{0};
  std::size_t total = 0;
  std::string run;

  owned_event() = default;
  explicit owned_event(const event& e)
      : type(e.type),
        seq(e.seq),
        ts(e.ts),
        module(e.module),
        index(e.index),
        attempt(e.attempt),
        worker(e.worker),
        status(e.status),
        message(e.message),
        delay(e.delay),
        total(e.total),
        run(e.run) {}
};

/// A channel of events; concurrent, so the run and its reader may be on different threads.
using event_channel =
    boost::asio::experimental::concurrent_channel<void(boost::system::error_code, owned_event)>;

/// An event_sink that hands every event to `channel` without waiting: when the channel is
/// full the event is dropped and `dropped` (if given) counts it.
inline event_sink channel_sink(std::shared_ptr<event_channel> channel,
                               std::shared_ptr<std::atomic<std::uint64_t>> dropped = {}) {
  return [channel = std::move(channel), dropped = std::move(dropped)](const event& e) {
    if (!channel->try_send(boost::system::error_code{}, owned_event(e)) && dropped) {
      dropped->fetch_add(1, std::memory_order_relaxed);
    }
  };
}

}  // namespace drover
