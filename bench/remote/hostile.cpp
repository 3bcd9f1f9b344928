#include "remote/hostile.hpp"

#include "common/children.hpp"
#include "common/table.hpp"
#include "common/timing.hpp"
#include "remote/remote.hpp"

#include <drover/coord/master.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <thread>

namespace drover::bench {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::ip::tcp;
using namespace std::chrono_literals;

asio::ip::address_v4 loopback(unsigned last_byte) {
  return asio::ip::address_v4{(127u << 24) | last_byte};
}

/// A socket bound to `from`, so that the master counts it against that address.
std::optional<tcp::socket> socket_from(asio::io_context& io, asio::ip::address_v4 from) {
  tcp::socket socket{io};
  boost::system::error_code error;
  socket.open(tcp::v4(), error);
  if (!error) socket.bind({from, 0}, error);
  if (error) return std::nullopt;
  return socket;
}

/// Connects from `from`, writes what `bytes()` gives, reads until the master closes, waits
/// `pause` and starts over, for ever.
asio::awaitable<void> stranger(asio::io_context& io, tcp::endpoint master,
                               asio::ip::address_v4 from, std::function<std::string()> bytes,
                               std::chrono::milliseconds pause) {
  asio::steady_timer timer{io};
  char sink[512];
  for (;;) {
    if (auto socket = socket_from(io, from)) {
      auto [connect_error] =
          co_await socket->async_connect(master, asio::as_tuple(asio::use_awaitable));
      if (!connect_error) {
        const std::string text = bytes();
        co_await asio::async_write(*socket, asio::buffer(text),
                                   asio::as_tuple(asio::use_awaitable));
        for (;;) {
          auto [read_error, n] = co_await socket->async_read_some(
              asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
          if (read_error) break;
        }
      }
    }
    timer.expires_after(pause);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

/// Every 100 ms, 50 connections from `from` that are reset as soon as they connect.
asio::awaitable<void> flood(asio::io_context& io, tcp::endpoint master, asio::ip::address_v4 from) {
  asio::steady_timer timer{io};
  for (;;) {
    for (int i = 0; i < 50; ++i) {
      auto socket = socket_from(io, from);
      if (!socket) continue;
      socket->set_option(tcp::socket::linger(true, 0));  // a reset: no TIME_WAIT left behind
      auto shared = std::make_shared<tcp::socket>(std::move(*socket));
      shared->async_connect(master, [shared](boost::system::error_code) {
        boost::system::error_code ignored;
        shared->close(ignored);
      });
    }
    timer.expires_after(100ms);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

hostile_measurement measure_one(std::size_t workers, const hostile_settings& settings,
                                std::ostream& progress) {
  hostile_measurement m;
  m.workers = workers;
  m.modules = settings.modules;
  try {
    for (std::size_t round = 1; round <= settings.rounds; ++round) {
      m.clean_ns.push_back(run_tcp_round(settings.modules, workers).run_ns);

      child_group strangers;
      coord::master* master = nullptr;
      tcp_round_hooks hooks;
      hooks.listening = [&](coord::master& listening, std::uint16_t port) {
        master = &listening;
        strangers.spawn("/proc/self/exe", {"--hostile-client", std::to_string(port)},
                        "hostile client");
        std::this_thread::sleep_for(500ms);  // the strangers are at the port before the workers
      };
      hooks.ended = [&] {
        m.connections = master->stats().connections;
        m.refused = master->stats().connections_refused;
        strangers.kill(0);
      };
      m.hostile_ns.push_back(run_tcp_round(settings.modules, workers, hooks).run_ns);
      progress << "hostile " << workers << " workers, round " << round << ": clean "
               << milliseconds_text(m.clean_ns.back()) << " ms, hostile "
               << milliseconds_text(m.hostile_ns.back()) << " ms (" << m.connections
               << " connections accepted, " << m.refused << " refused)\n";
    }
  } catch (const std::exception& e) {
    m.error = e.what();
  }
  return m;
}

}  // namespace

double hostile_measurement::slowdown() const {
  if (clean_ns.empty() || hostile_ns.empty()) return 0;
  return static_cast<double>(median_of(hostile_ns)) / static_cast<double>(median_of(clean_ns)) - 1;
}

std::vector<hostile_measurement> measure_hostile(const hostile_settings& settings,
                                                 std::ostream& progress) {
  std::vector<hostile_measurement> results;
  for (std::size_t workers : settings.workers)
    results.push_back(measure_one(workers, settings, progress));
  return results;
}

void print_hostile_table(std::ostream& out, const std::vector<hostile_measurement>& results,
                         std::size_t rounds, bool markdown) {
  table t({{"workers", true},
           {"modules", true},
           {"clean ms", true},
           {"hostile ms", true},
           {"slowdown", true},
           {"connections", true},
           {"refused", true}});
  for (const auto& m : results) {
    std::vector<std::string> row = {std::to_string(m.workers),
                                    grouped(static_cast<double>(m.modules))};
    if (!m.ok()) {
      row.insert(row.end(), {"FAILED", "-", "-", "-", "-"});
    } else {
      row.insert(
          row.end(),
          {milliseconds_text(median_of(m.clean_ns)), milliseconds_text(median_of(m.hostile_ns)),
           fixed(m.slowdown() * 100, 1) + "%", grouped(static_cast<double>(m.connections)),
           grouped(static_cast<double>(m.refused))});
    }
    t.add(std::move(row));
  }
  out << (markdown ? "### " : "") << "Hostile peers (median of " << rounds << " rounds each)\n"
      << (markdown ? "\n" : "");
  t.print(out, markdown);
  for (const auto& m : results)
    if (!m.ok()) out << "FAILED " << m.workers << " workers: " << m.error << '\n';
}

json::object hostile_to_json(const std::vector<hostile_measurement>& results, std::size_t rounds) {
  json::array rows;
  for (const auto& m : results) {
    json::object o;
    o["workers"] = m.workers;
    o["modules"] = m.modules;
    o["clean_ns"] = json::array(m.clean_ns.begin(), m.clean_ns.end());
    o["hostile_ns"] = json::array(m.hostile_ns.begin(), m.hostile_ns.end());
    o["slowdown"] = m.slowdown();
    o["connections"] = m.connections;
    o["refused"] = m.refused;
    if (!m.ok()) o["error"] = m.error;
    rows.push_back(std::move(o));
  }
  return {{"rounds", rounds}, {"results", std::move(rows)}};
}

int run_hostile_client(std::uint16_t port) {
  asio::io_context io{1};
  const tcp::endpoint master{loopback(1), port};
  std::mt19937 random{20261207};
  const auto half_hello = [] { return std::string{R"({"type":"hello","protocol":1,"wor)"}; };
  const auto garbage = [&random] {
    std::string bytes(1 + random() % 300, '\0');
    for (auto& c : bytes)
      c = static_cast<char>(random() % 256);
    return bytes + "\n";
  };
  for (int i = 0; i < 200; ++i) {
    asio::co_spawn(io, stranger(io, master, loopback(2 + i % 4), half_hello, 100ms),
                   asio::detached);
    asio::co_spawn(io, stranger(io, master, loopback(6 + i % 4), garbage, 1s), asio::detached);
  }
  asio::co_spawn(io, flood(io, master, loopback(10)), asio::detached);
  io.run();
  return 0;
}

}  // namespace drover::bench
