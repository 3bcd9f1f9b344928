#pragma once
// What the master's tests share: a fake worker written with the codec, pipelines of remote
// modules, and a harness with a master listening on loopback, a hub and an engine on one
// io_context.

#include <drover/coord/framing.hpp>
#include <drover/coord/master.hpp>
#include <drover/coord/protocol.hpp>
#include <drover/engine.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace drover::master_test {

namespace asio = boost::asio;
namespace json = boost::json;
namespace coord = drover::coord;
namespace utf = boost::unit_test;
using asio::ip::tcp;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

// --- a fake worker ---------------------------------------------------------------------------

struct fake_options {
  std::optional<std::string> worker_id{};
  std::vector<std::string> capabilities{};
  /// Adds "linux" to the capabilities unless they hold an OS label (a hello needs one).
  bool os_label = true;
  std::uint32_t slots = 1;
  std::optional<std::string> token{};
  std::vector<int> versions{1};
  std::optional<std::string> host{};
  std::optional<std::uint64_t> pid{};
  bool send_hello = true;
  milliseconds result_delay{1};
};

/// A worker speaking the protocol with the codec: hello, heartbeats at the interval the
/// master asks for, and for each assign a result {"id": module, "n": 1 + the deps' n} (modulo
/// 1,000,000,007).
/// `on_assign` may take over an assign (return true: the default answer is not sent).
class fake_worker : public std::enable_shared_from_this<fake_worker> {
 public:
  fake_worker(asio::io_context& io, fake_options options)
      : io_(io),
        options_(std::move(options)),
        socket_(io),
        writer_(socket_),
        splitter_(64u << 20) {}

  void connect(tcp::endpoint at) {
    asio::co_spawn(io_, run(shared_from_this(), at), [](std::exception_ptr) {});
  }

  /// Queues bytes as they are: a line needs its own '\n'.
  void send_raw(std::string bytes) { writer_.send(bytes); }
  void send(const coord::message& m) { writer_.send(coord::encode(m)); }

  /// The result the default behaviour sends for `a`.
  coord::result_message result_for(const coord::assign_message& a) {
    std::int64_t n = 1;
    for (const auto& dep : a.deps) {
      auto found = cache_.find(dep);
      if (found != cache_.end() && found->second.is_object()) {
        // Modulo a prime: in a dense graph the count of paths outgrows 64 bits.
        n = (n + found->second.as_object().at("n").as_int64()) % 1'000'000'007;
      }
    }
    coord::result_message r;
    r.run = a.run;
    r.epoch = a.epoch;
    r.module = a.module;
    r.attempt = a.attempt;
    r.status = drover::module_status::succeeded;
    r.value = json::object{{"id", a.module}, {"n", n}};
    return r;
  }

  /// Sends the default result for `a` after the result delay.
  void answer(const coord::assign_message& a) {
    auto timer = std::make_shared<asio::steady_timer>(io_, options_.result_delay);
    timer->async_wait([self = shared_from_this(), timer, r = result_for(a)](auto) {
      if (!self->silent && !self->ended) self->send(r);
    });
  }

  /// Stops heartbeats and answers, as a hung worker would.
  bool silent = false;
  std::function<bool(fake_worker&, const coord::assign_message&)> on_assign;
  std::function<void(fake_worker&, const coord::cancel_message&)> on_cancel;

  std::optional<coord::welcome_message> welcome;
  std::vector<coord::assign_message> assigns;
  std::vector<coord::cancel_message> cancels;
  std::vector<coord::error_message> errors;
  std::optional<coord::bye_message> bye;
  std::optional<coord::drain_message> drain;
  std::size_t drain_after_assigns = 0;  ///< assigns received before the drain
  int heartbeats_received = 0;
  int undecodable_lines = 0;  ///< lines from the master our codec rejected: always a bug
  bool connected = false;
  bool ended = false;  ///< the master closed (or the connection failed)

  bool has_module(std::string_view id) const {
    return std::any_of(assigns.begin(), assigns.end(),
                       [&](const coord::assign_message& a) { return a.module == id; });
  }

 private:
  static asio::awaitable<void> run(std::shared_ptr<fake_worker> self, tcp::endpoint at) {
    auto [error] = co_await self->socket_.async_connect(at, asio::as_tuple(asio::use_awaitable));
    if (error) {
      self->ended = true;
      co_return;
    }
    self->connected = true;
    asio::co_spawn(self->io_, self->writer_.run(),
                   [self](std::exception_ptr, boost::system::error_code) {});
    asio::co_spawn(self->io_, heartbeat_loop(self), [](std::exception_ptr) {});
    if (self->options_.send_hello) {
      coord::hello_message hello;
      hello.versions = self->options_.versions;
      hello.worker_id = self->options_.worker_id;
      hello.capabilities = self->options_.capabilities;
      const bool has_os = std::any_of(
          hello.capabilities.begin(), hello.capabilities.end(), [](const std::string& label) {
            std::string lower = label;
            for (char& c : lower)
              c = static_cast<char>(std::tolower(c));
            return lower == "linux" || lower == "windows" || lower == "macos" || lower == "unknown";
          });
      if (self->options_.os_label && !has_os)
        hello.capabilities.insert(hello.capabilities.begin(), "linux");
      hello.slots = self->options_.slots;
      hello.token = self->options_.token;
      hello.host = self->options_.host;
      hello.pid = self->options_.pid;
      self->send(hello);
    }
    for (;;) {
      const coord::read_outcome in = co_await coord::read_line(self->socket_, self->splitter_);
      if (!in.ok()) break;
      coord::decode_result decoded = coord::decode(in.line, coord::limits{64u << 20, 64});
      if (!decoded.ok()) {
        ++self->undecodable_lines;
        continue;
      }
      self->handle(std::move(decoded).value());
    }
    self->ended = true;
    self->writer_.close();
    boost::system::error_code ignored;
    self->socket_.close(ignored);
  }

  static asio::awaitable<void> heartbeat_loop(std::shared_ptr<fake_worker> self) {
    asio::steady_timer timer{self->io_};
    while (!self->ended) {
      timer.expires_after(self->welcome ? milliseconds{self->welcome->heartbeat_ms} : 20ms);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (self->welcome && !self->silent && !self->ended) self->send(coord::heartbeat_message{});
    }
  }

  void handle(coord::message m) {
    if (auto* w = std::get_if<coord::welcome_message>(&m)) {
      welcome = *w;
    } else if (auto* a = std::get_if<coord::assign_message>(&m)) {
      for (const auto& r : a->results)
        cache_[r.module] = r.value;
      assigns.push_back(*a);
      if (silent) return;
      if (on_assign && on_assign(*this, *a)) return;
      answer(*a);
    } else if (auto* c = std::get_if<coord::cancel_message>(&m)) {
      cancels.push_back(*c);
      if (on_cancel) on_cancel(*this, *c);
    } else if (auto* e = std::get_if<coord::error_message>(&m)) {
      errors.push_back(*e);
    } else if (auto* d = std::get_if<coord::drain_message>(&m)) {
      drain = *d;
      drain_after_assigns = assigns.size();
    } else if (auto* b = std::get_if<coord::bye_message>(&m)) {
      bye = *b;
    } else if (std::holds_alternative<coord::heartbeat_message>(m)) {
      ++heartbeats_received;
    }
  }

  asio::io_context& io_;
  fake_options options_;
  tcp::socket socket_;
  coord::line_writer<tcp::socket> writer_;
  coord::line_splitter splitter_;
  std::map<std::string, json::value> cache_;
};

// --- pipelines -------------------------------------------------------------------------------

inline drover::module_body never_local() {
  return [](drover::module_context&) -> asio::awaitable<json::value> {
    throw std::runtime_error("ran on a local worker");
    co_return nullptr;
  };
}

inline drover::module_ref add_remote(drover::pipeline& p, std::string id,
                                     std::vector<std::string> deps = {}) {
  auto m = p.add(std::move(id), never_local(), std::move(deps));
  m.kind("noop", json::object{{"note", "params travel"}});
  return m;
}

/// a0..a3, then b_i after a_i and a_(i+1), then final after every b: a wide first wave, so
/// two one-slot workers both get work, and dependency results to carry.
inline drover::pipeline layered() {
  drover::pipeline p;
  p.name = "layered";
  for (int i = 0; i < 4; ++i)
    add_remote(p, "a" + std::to_string(i));
  std::vector<std::string> bs;
  for (int i = 0; i < 4; ++i) {
    bs.push_back("b" + std::to_string(i));
    add_remote(p, bs.back(), {"a" + std::to_string(i), "a" + std::to_string((i + 1) % 4)});
  }
  add_remote(p, "final", bs);
  return p;
}

/// `layers` layers of `width` modules, each module after every module of the layer before.
inline drover::pipeline dense(int layers, int width) {
  drover::pipeline p;
  p.name = "dense";
  std::vector<std::string> previous;
  for (int l = 0; l < layers; ++l) {
    std::vector<std::string> current;
    for (int i = 0; i < width; ++i) {
      current.push_back("l" + std::to_string(l) + "m" + std::to_string(i));
      add_remote(p, current.back(), previous);
    }
    previous = std::move(current);
  }
  return p;
}

inline std::int64_t n_of(const drover::run_report& report, std::string_view id) {
  for (const auto& m : report.modules) {
    if (m.id == id && m.value.is_object()) return m.value.as_object().at("n").as_int64();
  }
  return -1;
}

inline void require_all_succeeded(const drover::run_report& report) {
  BOOST_TEST(report.status == drover::run_status::succeeded);
  for (const auto& m : report.modules)
    BOOST_TEST(m.status == drover::module_status::succeeded, m.id << ": " << m.reason);
}

// --- the harness -----------------------------------------------------------------------------

inline coord::master_options quick_options() {
  coord::master_options o;
  o.run_id = "r-test";
  o.heartbeat_interval = 50ms;
  o.lost_worker_timeout = 1500ms;
  o.handshake_timeout = 3s;
  o.close_timeout = 500ms;
  return o;
}

/// One io_context on this thread with a hub, a master listening on an ephemeral loopback
/// port, an engine and fake workers.
struct harness {
  asio::io_context io;
  std::shared_ptr<drover::worker_hub> hub;
  std::vector<std::string> log;
  std::unique_ptr<coord::master> master;
  tcp::endpoint endpoint;
  drover::engine engine{io.get_executor()};
  std::optional<drover::run_report> report;
  std::vector<std::shared_ptr<fake_worker>> workers;
  bool stop_with_run = true;  ///< stop the master when the run completes, as drover run does

  explicit harness(coord::master_options o = quick_options(), drover::worker_hub::settings s = {}) {
    hub = std::make_shared<drover::worker_hub>(s);
    o.log = [this](std::string_view line) { log.emplace_back(line); };
    master = std::make_unique<coord::master>(io.get_executor(), hub, o);
    endpoint = master->listen();
  }

  ~harness() {
    master->stop();
    run_until([&] { return master->open_connections() == 0; }, 3s);
  }

  std::shared_ptr<fake_worker> worker(fake_options o = {}) {
    auto w = std::make_shared<fake_worker>(io, std::move(o));
    w->connect(endpoint);
    workers.push_back(w);
    return w;
  }

  /// Runs the io_context until `done` or `limit` passed; returns whether `done` held.
  bool run_until(const std::function<bool()>& done, milliseconds limit) {
    const auto deadline = clock_type::now() + limit;
    while (!done()) {
      if (clock_type::now() >= deadline) return false;
      if (io.stopped()) io.restart();
      io.run_one_for(10ms);
    }
    return true;
  }

  void welcomed(const std::vector<std::shared_ptr<fake_worker>>& ws) {
    BOOST_REQUIRE_MESSAGE(run_until(
                              [&] {
                                return std::all_of(ws.begin(), ws.end(),
                                                   [](auto& w) { return w->welcome.has_value(); });
                              },
                              5s),
                          "the workers were not welcomed in time");
  }

  void start(drover::pipeline p) {
    drover::run_options options;
    options.workers = 0;
    options.remote = hub;
    engine.async_run(std::move(p), std::move(options), [this](drover::run_report r) {
      report = std::move(r);
      if (stop_with_run) master->stop();
    });
  }

  /// Waits for the run's report; fails (never hangs) after `limit`.
  const drover::run_report& finish(milliseconds limit = 15s) {
    BOOST_REQUIRE_MESSAGE(run_until([&] { return report.has_value(); }, limit),
                          "the run did not complete within " << limit.count() << " ms");
    return *report;
  }

  /// Waits until every connection closed on the master's side and each worker saw it.
  bool all_closed(milliseconds limit = 5s) {
    return run_until(
        [&] {
          return master->open_connections() == 0 &&
                 std::all_of(workers.begin(), workers.end(), [](auto& w) { return w->ended; });
        },
        limit);
  }

  bool log_mentions(std::string_view text) const {
    return std::any_of(log.begin(), log.end(), [&](const std::string& line) {
      return line.find(text) != std::string::npos;
    });
  }
};

inline std::vector<std::string> codes(const fake_worker& w) {
  std::vector<std::string> out;
  for (const auto& e : w.errors)
    out.push_back(e.code);
  return out;
}

}  // namespace drover::master_test
