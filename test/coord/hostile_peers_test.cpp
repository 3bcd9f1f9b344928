// Hostile peers on the master's port: the connection and handshake limits per address
// (master_options), and a run that goes on while hundreds of slow, garbage and flooding
// connections arrive on the same port (docs/reliability.md, "Bad input").

#define BOOST_TEST_MODULE hostile_peers
#include "../common/printing.hpp"
#include "master_harness.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <cstddef>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace drover::master_test;

namespace {

/// A raw connection that writes `bytes` (possibly nothing, possibly half a line) and then
/// reads until the master closes it.
struct raw_peer {
  explicit raw_peer(asio::io_context& io) : socket(io) {}
  tcp::socket socket;
  bool connected = false;
  bool closed = false;  ///< the master closed it (or the connection failed)
};

std::shared_ptr<raw_peer> open_raw(asio::io_context& io, tcp::endpoint at, std::string bytes) {
  auto peer = std::make_shared<raw_peer>(io);
  asio::co_spawn(
      io,
      [peer, at, bytes]() -> asio::awaitable<void> {
        auto [connect_error] =
            co_await peer->socket.async_connect(at, asio::as_tuple(asio::use_awaitable));
        if (connect_error) {
          peer->closed = true;
          co_return;
        }
        peer->connected = true;
        if (!bytes.empty()) {
          co_await asio::async_write(peer->socket, asio::buffer(bytes),
                                     asio::as_tuple(asio::use_awaitable));
        }
        char sink[512];
        for (;;) {
          auto [read_error, n] = co_await peer->socket.async_read_some(
              asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
          if (read_error) break;
        }
        peer->closed = true;
      },
      asio::detached);
  return peer;
}

std::size_t count_closed(const std::vector<std::shared_ptr<raw_peer>>& peers) {
  std::size_t n = 0;
  for (const auto& p : peers)
    n += p->closed ? 1 : 0;
  return n;
}

std::string garbage(std::mt19937& random) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string bytes(1 + random() % 300, '\0');
  for (auto& c : bytes)
    c = static_cast<char>(byte(random));
  return bytes + "\n";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(hostile_peers)

BOOST_AUTO_TEST_CASE(handshakes_past_the_limit_of_an_address_are_closed_at_once,
                     *utf::timeout(30)) {
  auto o = quick_options();
  o.max_handshakes_per_address = 3;
  o.handshake_timeout = 10s;  // the admitted silent ones stay for the whole test
  harness h{o};
  std::vector<std::shared_ptr<raw_peer>> silent;
  for (int i = 0; i < 5; ++i)
    silent.push_back(open_raw(h.io, h.endpoint, ""));
  BOOST_REQUIRE(h.run_until([&] { return count_closed(silent) == 2; }, 5s));
  BOOST_TEST(h.master->stats().connections_refused == 2u);
  BOOST_TEST(h.master->open_connections() == 3u);
  BOOST_TEST(h.log_mentions("max_handshakes_per_address 3"));

  // A worker arriving now is refused too: the limit counts every connection without a hello.
  auto early = h.worker();
  BOOST_REQUIRE(h.run_until([&] { return early->ended; }, 5s));
  BOOST_TEST(!early->welcome.has_value());
  BOOST_TEST(h.master->stats().connections_refused == 3u);

  // Once the silent ones go, a worker is welcomed, and then it no longer counts as a
  // handshake: three more silent connections are all admitted beside it.
  for (auto& p : silent) {
    boost::system::error_code ignored;
    p->socket.close(ignored);
  }
  BOOST_REQUIRE(h.run_until([&] { return h.master->open_connections() == 0; }, 5s));
  auto w = h.worker();
  h.welcomed({w});
  std::vector<std::shared_ptr<raw_peer>> more;
  for (int i = 0; i < 3; ++i)
    more.push_back(open_raw(h.io, h.endpoint, R"({"type":"hel)"));
  BOOST_REQUIRE(h.run_until([&] { return h.master->open_connections() == 4; }, 5s));
  h.run_until([] { return false; }, 200ms);
  BOOST_TEST(count_closed(more) == 0u);
  BOOST_TEST(h.master->stats().connections_refused == 3u);
  BOOST_TEST(!w->ended);
}

BOOST_AUTO_TEST_CASE(connections_past_the_limit_of_an_address_are_closed_at_once,
                     *utf::timeout(30)) {
  auto o = quick_options();
  o.max_connections_per_address = 2;
  harness h{o};
  auto a = h.worker();
  auto b = h.worker();
  h.welcomed({a, b});
  auto c = h.worker();
  BOOST_REQUIRE(h.run_until([&] { return c->ended; }, 5s));
  BOOST_TEST(!c->welcome.has_value());
  BOOST_TEST(h.master->stats().connections_refused == 1u);
  BOOST_TEST(h.log_mentions("max_connections_per_address 2"));
  BOOST_TEST(!a->ended);
  BOOST_TEST(!b->ended);
}

BOOST_AUTO_TEST_CASE(zero_means_no_limit, *utf::timeout(30)) {
  auto o = quick_options();
  o.max_handshakes_per_address = 0;
  o.max_handshakes = 0;
  o.max_connections_per_address = 0;
  harness h{o};
  std::vector<std::shared_ptr<raw_peer>> silent;
  for (int i = 0; i < 100; ++i)
    silent.push_back(open_raw(h.io, h.endpoint, ""));
  BOOST_REQUIRE(h.run_until([&] { return h.master->open_connections() == 100; }, 10s));
  BOOST_TEST(h.master->stats().connections_refused == 0u);
  BOOST_TEST(count_closed(silent) == 0u);
}

BOOST_AUTO_TEST_CASE(a_run_goes_on_through_slow_garbage_and_flooding_peers, *utf::timeout(90)) {
  auto o = quick_options();
  o.handshake_timeout = 2s;
  harness h{o};  // the default limits: 64 handshakes per address, 1024 in all
  auto first = h.worker({.slots = 2, .result_delay = 2ms});
  auto second = h.worker({.slots = 2, .result_delay = 2ms});
  h.welcomed({first, second});
  h.start(dense(20, 10));  // 200 modules, each layer after the one before

  std::mt19937 random{20261207};
  std::vector<std::shared_ptr<raw_peer>> hostile;
  for (int i = 0; i < 200; ++i) {
    hostile.push_back(open_raw(h.io, h.endpoint, R"({"type":"hello","versions":[1],"capab)"));
    hostile.push_back(open_raw(h.io, h.endpoint, garbage(random)));
  }
  // A flood: connections opened and closed at once, over and over, while the run goes on.
  std::size_t flooded = 0;
  std::vector<std::shared_ptr<raw_peer>> flood;
  while (!h.report && flooded < 2000) {
    for (int i = 0; i < 50; ++i, ++flooded) {
      auto p = open_raw(h.io, h.endpoint, "");
      flood.push_back(p);
    }
    h.run_until([] { return false; }, 5ms);
    for (auto& p : flood) {
      boost::system::error_code ignored;
      if (p->connected) p->socket.close(ignored);
    }
    std::erase_if(flood, [](const auto& p) { return p->connected || p->closed; });
  }

  const auto& report = h.finish(60s);
  require_all_succeeded(report);
  BOOST_TEST(report.modules.size() == 200u);
  for (const auto& w : {first, second}) {
    BOOST_TEST(w->errors.empty());
    BOOST_TEST(w->undecodable_lines == 0);
  }
  const auto stats = h.master->stats();
  BOOST_TEST_MESSAGE("connections " << stats.connections << ", refused "
                                    << stats.connections_refused << ", flood " << flooded);
  BOOST_TEST(stats.connections_refused > 0u);  // 400 at once is past 64 per address
  BOOST_TEST(stats.workers_welcomed == 2u);
  // Every hostile connection ends: refused at once, closed for its garbage, or for its
  // silence when the handshake time runs out.
  BOOST_TEST(h.run_until([&] { return count_closed(hostile) == hostile.size(); }, 10s));
}

BOOST_AUTO_TEST_SUITE_END()
