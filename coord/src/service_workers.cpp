// The service's remote workers. They all connect to one port. Each new connection goes to the
// running run with the fewest worker slots for what it can use now (its ready and running
// modules), or to the idle master while no run runs. Every master of the service says `stay`
// in welcome, so a worker connects again when its run ends. Once a second the service
// rebalances: idle workers are released (they connect again and are routed) as soon as a run
// runs, and a run holding more than its share of the slots has one worker drained with
// `rejoin`, so that it finishes its attempts there, connects again and goes where it is needed.

#include "replay_stream.hpp"
#include "service_state.hpp"

#include <drover/coord/protocol.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

namespace drover::coord::service_detail {

namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using state = run_service::state;

namespace {

constexpr std::chrono::seconds rebalance_interval{1};

master_options master_settings(const state& s, std::string run_id) {
  master_options o;
  o.listen_address = *s.options.worker_address;
  o.token = s.options.worker_token;
  o.run_id = std::move(run_id);
  o.heartbeat_interval = s.options.heartbeat;
  o.lost_worker_timeout = s.options.lost_worker_timeout;
  o.stay = true;
  if (s.options.log) {
    o.log = [log = s.options.log](std::string_view line) { log(line); };
  }
  return o;
}

// What a run can use now: its ready and running modules (at least 1).
std::size_t demand(const service_run& run) {
  std::size_t n = 0;
  for (const auto& m : run.modules)
    n += m.phase == module_phase::ready || m.phase == module_phase::running ? 1 : 0;
  return std::max<std::size_t>(1, n);
}

std::size_t slots_of(const std::vector<connected_worker>& workers) {
  std::size_t n = 0;
  for (const auto& w : workers)
    n += w.slots;
  return n;
}

using worker_stream = replay_stream<tcp::socket>;

// The longest hello the service reads before it hands the connection over; the run's master
// applies its own line limit to what follows.
constexpr std::size_t max_hello_bytes = std::size_t{1} << 20;

std::vector<std::string> lower_case(const std::vector<std::string>& labels) {
  std::vector<std::string> out;
  for (auto label : labels) {
    for (auto& c : label)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.push_back(std::move(label));
  }
  return out;
}

// Whether a worker offering `offered` (lower case) has every label in `wanted`.
bool fits(const std::vector<std::string>& offered, const std::vector<std::string>& wanted) {
  return std::all_of(wanted.begin(), wanted.end(), [&](const std::string& label) {
    return std::find(offered.begin(), offered.end(), label) != offered.end();
  });
}

// Each worker's labels in lower case, made once per look at a run (not once per module).
std::vector<std::vector<std::string>> labels_of(const std::vector<connected_worker>& workers) {
  std::vector<std::vector<std::string>> out;
  out.reserve(workers.size());
  for (const auto& w : workers)
    out.push_back(lower_case(w.capabilities));
  return out;
}

// Whether one of the workers with these labels can run a module that needs `wanted`.
bool someone_fits(const std::vector<std::vector<std::string>>& workers,
                  const std::vector<std::string>& wanted) {
  return std::any_of(workers.begin(), workers.end(), [&](const std::vector<std::string>& offered) {
    return fits(offered, wanted);
  });
}

// What a worker offering `offered` is to a run: of no use (it can run none of the modules
// left), of use, or needed (a ready module waits for labels only it has there).
enum class worth : std::uint8_t { none, useful, needed };

worth worth_to(const service_run& run, const std::vector<connected_worker>& workers,
               const std::vector<std::string>& offered) {
  const auto present = labels_of(workers);
  worth best = worth::none;
  for (const auto& m : run.modules) {
    if (m.phase == module_phase::finished || !fits(offered, m.labels)) continue;
    if (!m.labels.empty() && m.phase == module_phase::ready && !someone_fits(present, m.labels))
      return worth::needed;
    best = worth::useful;
  }
  return best;
}

// Hands a connection whose hello offered `offered` (empty: unknown) to a run's master: one
// that needs it first, then the one with the fewest slots for what it can use now; to the
// idle master when no running run can use it.
void route(const std::shared_ptr<state>& s, worker_stream stream, std::string peer,
           const std::vector<std::string>& offered) {
  std::shared_ptr<master> target;
  {
    std::lock_guard lock(s->mutex);
    std::pair<int, double> best{2, std::numeric_limits<double>::infinity()};
    service_run* chosen = nullptr;
    for (const auto& run : s->order) {
      if (run->phase != "running" || !run->remote) continue;
      const auto workers = run->remote->workers();
      const worth w = offered.empty() ? worth::useful : worth_to(*run, workers, offered);
      if (w == worth::none) continue;
      const double served = static_cast<double>(slots_of(workers) + run->arriving) /
                            static_cast<double>(demand(*run));
      const std::pair<int, double> key{w == worth::needed ? 0 : 1, served};
      if (key < best) {
        best = key;
        chosen = run.get();
      }
    }
    if (chosen) {
      ++chosen->arriving;
      target = chosen->remote;
    } else {
      target = s->idle;
      ++s->idle_routed;
    }
  }
  if (target) target->accept(std::move(stream), std::move(peer));
}

std::string describe(const tcp::endpoint& e) {
  const auto address = e.address().to_string();
  return (e.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(e.port());
}

// Reads the connection's first line (its hello) within the handshake timeout, then routes it
// with that line still to be read by the master that gets it.
// `address` is the peer's IP address, admitted by s->greeting; `peer` describes it for logs.
asio::awaitable<void> greet(std::shared_ptr<state> s, std::shared_ptr<tcp::socket> socket,
                            std::string address, std::string peer) {
  struct counted {
    state& s;
    std::string address;
    ~counted() {
      std::lock_guard lock(s.mutex);
      s.greeting.handshake_ended(address);
      s.greeting.connection_ended(address);
    }
  } in_flight{*s, std::move(address)};
  asio::steady_timer deadline(socket->get_executor(), handshake_timeout);
  deadline.async_wait([weak = std::weak_ptr<tcp::socket>(socket)](boost::system::error_code e) {
    if (auto open = weak.lock(); open && !e) {
      boost::system::error_code ignored;
      open->cancel(ignored);
    }
  });
  std::string first;
  auto [read_error, line_bytes] =
      co_await asio::async_read_until(*socket, asio::dynamic_buffer(first, max_hello_bytes), '\n',
                                      asio::as_tuple(asio::use_awaitable));
  deadline.cancel();
  if (read_error && first.empty()) co_return;  // gone, or silent: nothing to route
  std::vector<std::string> offered;
  if (!read_error) {
    auto decoded = decode(std::string_view(first).substr(0, line_bytes - 1));
    if (decoded.ok()) {
      if (const auto* hello = std::get_if<hello_message>(&decoded.value()))
        offered = lower_case(hello->capabilities);
    }
  }
  route(s, worker_stream(std::move(*socket), std::move(first)), std::move(peer), offered);
}

// Counts a new connection from `address` as waiting for its hello, or refuses it and logs
// that (at most once a second).
bool admit_greeting(state& s, const std::string& address) {
  std::string line;
  {
    std::lock_guard lock(s.mutex);
    const auto refused = s.greeting.admit(address);
    if (!refused) return true;
    if (!refused->log_now) return false;
    line = "worker port: " + refused->summary(address) + ": " +
           std::to_string(refused->limit_value) + " connections" +
           (refused->which == detail::connection_gate::refusal::limit::handshakes
                ? ""
                : " from " + address) +
           " are still to say hello";
  }
  s.log(line);
  return false;
}

asio::awaitable<void> accept_workers(std::shared_ptr<state> s) {
  asio::steady_timer backoff(s->executor);
  while (s->worker_acceptor.is_open()) {
    auto [ec, socket] =
        co_await s->worker_acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (!s->worker_acceptor.is_open()) break;
    if (ec) {
      s->log("worker port: accept failed: " + ec.message());
      backoff.expires_after(std::chrono::milliseconds{50});
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    // Connections that have not said hello yet are bounded, in all and per address: a flood
    // of silent ones is closed at once instead of holding a descriptor each for the handshake
    // timeout, and one address cannot take every place from the others.
    boost::system::error_code peer_error;
    const auto remote = socket.remote_endpoint(peer_error);
    std::string address = peer_error ? std::string("unknown") : remote.address().to_string();
    if (!admit_greeting(*s, address)) {
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    asio::co_spawn(s->executor,
                   greet(s, std::make_shared<tcp::socket>(std::move(socket)), std::move(address),
                         peer_error ? std::string("unknown peer") : describe(remote)),
                   asio::detached);
  }
}

void rebalance(const std::shared_ptr<state>& s) {
  std::vector<std::pair<std::shared_ptr<master>, std::string>> drains;
  std::vector<std::string> releases;
  std::shared_ptr<master> idle;
  {
    std::lock_guard lock(s->mutex);
    idle = s->idle;
    std::vector<std::pair<service_run*, std::vector<connected_worker>>> running;
    std::size_t total = 0, wanted = 0;
    for (const auto& run : s->order) {
      if (run->phase != "running" || !run->remote) continue;
      run->arriving = 0;
      auto workers = run->remote->workers();
      std::erase_if(run->moving, [&](const std::string& name) {
        return std::none_of(workers.begin(), workers.end(),
                            [&](const connected_worker& w) { return w.name == name; });
      });
      total += slots_of(workers);
      wanted += demand(*run);
      running.emplace_back(run.get(), std::move(workers));
    }
    if (!running.empty() && idle) {
      for (const auto& w : idle->workers())
        releases.push_back(w.name);
    }
    // The idle master's hub is bound to no run, so it keeps what every worker that came and
    // went told it: a fresh one, now and then, while none is connected, keeps that bounded.
    if (idle && s->idle_routed > 1000 && idle->open_connections() == 0) {
      idle->stop();
      s->idle = std::make_shared<master>(s->executor, std::make_shared<worker_hub>(),
                                         master_settings(*s, "idle"));
      s->idle_routed = 0;
      idle = s->idle;
    }
    // A run's share: the slots in proportion to what it can use now. A run is short when it
    // has no worker, or fewer slots than the whole part of its share; only then are workers
    // moved, one a second from each run that keeps at least that whole part (and one worker).
    auto share_of = [&](const service_run& run) {
      return static_cast<double>(total) * static_cast<double>(demand(run)) /
             static_cast<double>(std::max<std::size_t>(1, wanted));
    };
    // Short: a run with a ready module any worker can run (one that needs labels is the
    // business of the loop below) and fewer slots than the whole part of its share.
    bool someone_short = false;
    for (const auto& [run, workers] : running) {
      const bool wants_any = std::any_of(
          run->modules.begin(), run->modules.end(),
          [](const auto& m) { return m.phase == module_phase::ready && m.labels.empty(); });
      const auto have = slots_of(workers) + run->arriving;
      someone_short =
          someone_short ||
          (wants_any && (have == 0 || static_cast<double>(have) < std::floor(share_of(*run))));
    }
    // A ready module that waits for labels no worker of its run has: a worker with them moves
    // over from a run that keeps another worker (idle ones were released above).
    for (auto& [run, workers] : running) {
      const auto present = labels_of(workers);
      const auto blocked =
          std::find_if(run->modules.begin(), run->modules.end(), [&](const auto& m) {
            return m.phase == module_phase::ready && !m.labels.empty() &&
                   !someone_fits(present, m.labels);
          });
      if (blocked == run->modules.end()) continue;
      for (auto& [other, others] : running) {
        if (other == run || others.size() < 2) continue;
        const auto& moving = other->moving;  // clang 14 cannot capture a structured binding
        const auto fitting = std::find_if(others.begin(), others.end(), [&](const auto& w) {
          return !moving.contains(w.name) && fits(lower_case(w.capabilities), blocked->labels);
        });
        if (fitting == others.end()) continue;
        other->moving.insert(fitting->name);
        drains.emplace_back(other->remote, fitting->name);
        break;
      }
    }
    for (auto& [run, workers] : running) {
      if (!someone_short) break;
      const double keep = std::max(1.0, std::floor(share_of(*run)));
      std::size_t kept = 0;
      for (const auto& w : workers)
        kept += run->moving.contains(w.name) ? 0 : w.slots;
      for (const auto& w : workers) {
        if (run->moving.contains(w.name) || kept <= w.slots) continue;
        if (static_cast<double>(kept - w.slots) >= keep) {
          run->moving.insert(w.name);
          drains.emplace_back(run->remote, w.name);
          break;
        }
      }
    }
  }
  for (const auto& name : releases)
    idle->release(name, "a run of the service needs this worker");
  for (const auto& [m, name] : drains) {
    s->log("moving worker " + name + " to a run with less than its share");
    m->drain(name, "moved to another run of the service", /*rejoin=*/true);
  }
}

void schedule_rebalance(const std::shared_ptr<state>& s) {
  s->rebalance_timer.expires_after(rebalance_interval);
  s->rebalance_timer.async_wait([s](boost::system::error_code ec) {
    if (ec || !s->worker_acceptor.is_open()) return;
    rebalance(s);
    schedule_rebalance(s);
  });
}

}  // namespace

void open_worker_port(const std::shared_ptr<state>& s) {
  const auto& text = *s->options.worker_address;
  const std::string where = text + ":" + std::to_string(s->options.worker_port);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(text == "localhost" ? "127.0.0.1" : text, ec);
  if (ec) throw std::runtime_error("worker address '" + text + "' is not an IP address");
  if (!address.is_loopback() && !s->options.worker_token) {
    throw std::runtime_error("worker address " + where +
                             " is not a loopback address; serving it without a token is refused");
  }
  const tcp::endpoint endpoint{address, s->options.worker_port};
  auto& acceptor = s->worker_acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen for workers on " + where + ": " + ec.message());
  s->idle = std::make_shared<master>(s->executor, std::make_shared<worker_hub>(),
                                     master_settings(*s, "idle"));
  asio::co_spawn(s->executor, accept_workers(s), asio::detached);
  schedule_rebalance(s);
}

void close_worker_port(state& s) {
  asio::post(s.executor, [s = s.shared_from_this()] {
    boost::system::error_code ignored;
    s->worker_acceptor.close(ignored);
    s->rebalance_timer.cancel();
    if (s->idle) s->idle->stop();
  });
}

void attach_remote(state& s, service_run& run, run_options& options) {
  worker_hub::settings settings;
  settings.capability_timeout = s.options.capability_timeout;
  settings.overdue_grace = s.options.lost_worker_timeout;
  if (options.journal) settings.epoch = options.journal->epoch();
  run.hub = std::make_shared<worker_hub>(settings);
  run.remote = std::make_shared<master>(s.executor, run.hub, master_settings(s, run.id));
  options.remote = run.hub;
}

void detach_remote(service_run& run) {
  if (run.remote) run.remote->stop();
}

void list_remote_workers(const state& s, json::array& out) {
  auto add = [&](const master& m, const std::string& run) {
    for (const auto& w : m.workers()) {
      json::array capabilities;
      for (const auto& c : w.capabilities)
        capabilities.emplace_back(c);
      json::array attempts;
      for (const auto& a : s.attempts) {
        if (a.run == run && a.worker == w.name) {
          attempts.push_back(json::object{
              {"run", a.run}, {"module", a.module}, {"attempt", a.attempt}, {"worker", a.worker}});
        }
      }
      const auto busy = attempts.size();
      out.push_back(
          json::object{{"name", w.name},
                       {"kind", "remote"},
                       {"run", run.empty() ? json::value() : json::value(run)},
                       {"capabilities", std::move(capabilities)},
                       {"slots", w.slots},
                       {"busy", busy},
                       {"utilisation", static_cast<double>(busy) / std::max<double>(1, w.slots)},
                       {"attempts", std::move(attempts)}});
    }
  };
  if (s.idle) add(*s.idle, "");
  for (const auto& run : s.order) {
    if (run->phase == "running" && run->remote) add(*run->remote, run->id);
  }
}

std::pair<std::size_t, std::size_t> remote_worker_count(const state& s) {
  std::size_t workers = 0, slots = 0;
  auto add = [&](const master& m) {
    for (const auto& w : m.workers()) {
      ++workers;
      slots += w.slots;
    }
  };
  if (s.idle) add(*s.idle);
  for (const auto& run : s.order) {
    if (run->phase == "running" && run->remote) add(*run->remote);
  }
  return {workers, slots};
}

}  // namespace drover::coord::service_detail
