#pragma once
// A TCP proxy between worker processes and a master, for the chaos tests. Each worker gets a
// route of its own (a listening port that forwards to the master), so the test can cut that
// worker's connections or delay its bytes without touching the others. It runs on a thread of
// its own; cut() and delay() may be called from any thread.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <thread>
#include <vector>

namespace drover::chaos {

namespace asio = boost::asio;
using asio::ip::tcp;

class chaos_proxy {
 public:
  /// Opens `routes` listening ports on loopback, each forwarding to 127.0.0.1:`master_port`.
  chaos_proxy(unsigned short master_port, std::size_t routes) : master_port_(master_port) {
    for (std::size_t i = 0; i < routes; ++i) {
      auto& r = routes_.emplace_back(io_);
      r.acceptor.open(tcp::v4());
      r.acceptor.set_option(tcp::acceptor::reuse_address(true));
      r.acceptor.bind({asio::ip::address_v4::loopback(), 0});
      r.acceptor.listen();
      asio::co_spawn(io_, accept_loop(r), asio::detached);
    }
    thread_ = std::thread{[this] { io_.run(); }};
  }
  ~chaos_proxy() {
    io_.stop();
    thread_.join();
  }
  chaos_proxy(const chaos_proxy&) = delete;
  chaos_proxy& operator=(const chaos_proxy&) = delete;

  /// The port workers of route `index` connect to.
  unsigned short port(std::size_t index) {
    return route_at(index).acceptor.local_endpoint().port();
  }

  /// Closes every open connection of route `index`, both sides, as a network cut would.
  void cut(std::size_t index) {
    asio::post(io_, [this, index] {
      auto& r = route_at(index);
      for (auto& l : r.links)
        l->close();
      r.links.clear();
    });
  }

  /// Holds every chunk of bytes on route `index`, either way, for `by` before passing it on,
  /// for the next `during`. Order is kept: each direction forwards one chunk at a time.
  void delay(std::size_t index, std::chrono::milliseconds by, std::chrono::milliseconds during) {
    asio::post(io_, [this, index, by, during] {
      auto& r = route_at(index);
      r.delay = by;
      r.delay_until = std::chrono::steady_clock::now() + during;
    });
  }

  std::size_t connections_accepted() const noexcept { return accepted_.load(); }

 private:
  /// One proxied connection: the worker's side and the master's.
  struct link {
    explicit link(asio::io_context& io) : worker_side(io), master_side(io) {}
    void close() {
      boost::system::error_code ignored;
      worker_side.close(ignored);
      master_side.close(ignored);
    }
    tcp::socket worker_side;
    tcp::socket master_side;
  };

  struct route {
    explicit route(asio::io_context& io) : acceptor(io) {}
    tcp::acceptor acceptor;
    std::vector<std::shared_ptr<link>> links;
    std::chrono::milliseconds delay{0};
    std::chrono::steady_clock::time_point delay_until{};
  };

  route& route_at(std::size_t index) {
    auto it = routes_.begin();
    std::advance(it, index);
    return *it;
  }

  asio::awaitable<void> accept_loop(route& r) {
    for (;;) {
      auto l = std::make_shared<link>(io_);
      auto [error] =
          co_await r.acceptor.async_accept(l->worker_side, asio::as_tuple(asio::use_awaitable));
      if (error) co_return;
      ++accepted_;
      auto [connect_error] = co_await l->master_side.async_connect(
          {asio::ip::address_v4::loopback(), master_port_}, asio::as_tuple(asio::use_awaitable));
      if (connect_error) {
        l->close();
        continue;
      }
      std::erase_if(r.links, [](const auto& old) { return !old->worker_side.is_open(); });
      r.links.push_back(l);
      asio::co_spawn(io_, pump(r, l, l->worker_side, l->master_side), asio::detached);
      asio::co_spawn(io_, pump(r, l, l->master_side, l->worker_side), asio::detached);
    }
  }

  /// Copies `from` to `to` until either closes; then closes both (`keep` holds the link).
  asio::awaitable<void> pump(route& r, std::shared_ptr<link> keep, tcp::socket& from,
                             tcp::socket& to) {
    std::array<char, 16 * 1024> buffer;
    asio::steady_timer timer{io_};
    for (;;) {
      auto [read_error, n] =
          co_await from.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
      if (read_error) break;
      if (std::chrono::steady_clock::now() < r.delay_until) {
        timer.expires_after(r.delay);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      auto [write_error, written] = co_await asio::async_write(to, asio::buffer(buffer.data(), n),
                                                               asio::as_tuple(asio::use_awaitable));
      if (write_error) break;
    }
    keep->close();
  }

  unsigned short master_port_;
  asio::io_context io_;
  std::list<route> routes_;  // a list: routes never move, coroutines hold references
  std::atomic<std::size_t> accepted_{0};
  std::thread thread_;
};

}  // namespace drover::chaos
