#include <drover/coord/master.hpp>

#include "session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <limits>
#include <random>
#include <sstream>

namespace drover::coord {

namespace asio = boost::asio;
using asio::ip::tcp;

std::uint64_t master_stats::errors(error_code code) const {
  const auto found = errors_sent.find(to_string(code));
  return found == errors_sent.end() ? 0 : found->second;
}

namespace detail {
namespace {

std::string make_run_id() {
  std::random_device random;
  std::ostringstream id;
  id << "r-" << std::hex << (static_cast<std::uint64_t>(random()) << 32 | random());
  return id.str();
}

master_options checked(master_options options) {
  if (options.run_id.empty()) options.run_id = make_run_id();
  using std::chrono::milliseconds;
  auto at_least_1ms = [](milliseconds& d) { d = std::max(d, milliseconds{1}); };
  at_least_1ms(options.heartbeat_interval);
  at_least_1ms(options.lost_worker_timeout);
  at_least_1ms(options.handshake_timeout);
  if (options.line_limits.max_line_bytes == 0) options.line_limits.max_line_bytes = 1;
  const std::size_t line = options.line_limits.max_line_bytes;
  const std::size_t two_lines = line > std::numeric_limits<std::size_t>::max() / 2
                                    ? std::numeric_limits<std::size_t>::max()
                                    : 2 * line;
  options.max_send_queue_bytes = std::max(options.max_send_queue_bytes, two_lines);
  return options;
}

}  // namespace

master_state::master_state(std::shared_ptr<worker_hub> hub, master_options options)
    : options_(checked(std::move(options))),
      hub_(std::move(hub)),
      gate_({options_.max_connections_per_address, options_.max_handshakes_per_address,
             options_.max_handshakes}) {
  if (!hub_) throw std::invalid_argument("drover::coord::master needs a worker_hub");
  epoch_ = options_.epoch.value_or(hub_->config().epoch);
}

void master_state::log(std::string_view line) const {
  if (!options_.log) return;
  std::lock_guard lock(log_mutex_);
  options_.log(line);
}

void master_state::count_error_sent(std::string_view code) {
  std::lock_guard lock(mutex_);
  auto found = stats_.errors_sent.find(code);
  if (found == stats_.errors_sent.end()) {
    stats_.errors_sent.emplace(std::string(code), 1);
  } else {
    ++found->second;
  }
}

master_stats master_state::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::string master_state::claim_name(const hello_message& hello,
                                     std::weak_ptr<session_core> session) {
  // Names appear in every log line, report and welcome: a long or unprintable one is replaced.
  auto usable = [](const std::optional<std::string>& name) {
    return name && !name->empty() && name->size() <= 128 &&
           std::none_of(name->begin(), name->end(),
                        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
  };
  std::lock_guard lock(mutex_);
  const named_worker entry{session, hello.capabilities, hello.slots};
  if (usable(hello.worker_id) && names_.emplace(*hello.worker_id, entry).second) {
    return *hello.worker_id;
  }
  std::string base = "worker";
  if (usable(hello.worker_id)) {
    base = *hello.worker_id;
  } else if (usable(hello.host)) {
    base = *hello.host + (hello.pid ? "-" + std::to_string(*hello.pid) : std::string());
  }
  for (;;) {
    std::string name = base + "-" + std::to_string(++name_counter_);
    if (names_.emplace(name, entry).second) return name;
  }
}

void master_state::release_name(const std::string& name) {
  std::lock_guard lock(mutex_);
  names_.erase(name);
}

std::shared_ptr<session_core> master_state::session_named(std::string_view name) const {
  std::lock_guard lock(mutex_);
  const auto found = names_.find(name);
  return found == names_.end() ? nullptr : found->second.session.lock();
}

std::vector<connected_worker> master_state::workers() const {
  std::lock_guard lock(mutex_);
  std::vector<connected_worker> out;
  out.reserve(names_.size());
  for (const auto& [name, entry] : names_)
    out.push_back({name, entry.capabilities, entry.slots});
  return out;
}

bool master_state::enroll(const std::shared_ptr<session_core>& session) {
  std::lock_guard lock(mutex_);
  ++stats_.connections;
  ++open_;
  if (stopped_) return false;
  // Forget closed sessions now and then, not on every connection: with thousands of workers
  // a sweep per connection is quadratic.
  if (sessions_.size() >= prune_at_) {
    std::erase_if(sessions_, [](const std::weak_ptr<session_core>& s) { return s.expired(); });
    prune_at_ = std::max<std::size_t>(64, 2 * sessions_.size());
  }
  sessions_.push_back(session);
  return true;
}

bool master_state::admit(const std::string& address) {
  std::string line;
  {
    std::lock_guard lock(mutex_);
    const auto refused = gate_.admit(address);
    if (!refused) return true;
    ++stats_.connections_refused;
    if (!refused->log_now) return false;
    using limit = connection_gate::refusal::limit;
    const std::string count = std::to_string(refused->count);
    const std::string limit_value = std::to_string(refused->limit_value);
    line = "master: " + refused->summary(address) + ": ";
    switch (refused->which) {
      case limit::connections_per_address:
        line += count + " connections from it are open (limit max_connections_per_address " +
                limit_value + ")";
        break;
      case limit::handshakes_per_address:
        line += count +
                " connections from it have not finished their handshake (limit "
                "max_handshakes_per_address " +
                limit_value + ")";
        break;
      case limit::handshakes:
        line += count + " connections have not finished their handshake (limit max_handshakes " +
                limit_value + ")";
        break;
    }
  }
  log(line);
  return false;
}

void master_state::handshake_ended(const std::string& address) {
  std::lock_guard lock(mutex_);
  gate_.handshake_ended(address);
}

void master_state::connection_ended(const std::string& address) {
  std::lock_guard lock(mutex_);
  gate_.connection_ended(address);
}

void master_state::session_closed() {
  std::lock_guard lock(mutex_);
  --open_;
}

std::size_t master_state::open_sessions() const {
  std::lock_guard lock(mutex_);
  return open_;
}

std::vector<std::shared_ptr<session_core>> master_state::begin_stop() {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<session_core>> open;
  if (stopping_) return open;
  stopping_ = true;
  for (const auto& weak : sessions_) {
    if (auto s = weak.lock()) open.push_back(std::move(s));
  }
  return open;
}

std::vector<std::shared_ptr<session_core>> master_state::stop() {
  std::lock_guard lock(mutex_);
  stopping_ = stopped_ = true;
  std::vector<std::shared_ptr<session_core>> open;
  for (const auto& weak : sessions_) {
    if (auto s = weak.lock()) open.push_back(std::move(s));
  }
  sessions_.clear();
  return open;
}

bool master_state::stopping() const {
  std::lock_guard lock(mutex_);
  return stopping_;
}

bool master_state::stopped() const {
  std::lock_guard lock(mutex_);
  return stopped_;
}

}  // namespace detail

namespace detail {

// The acceptor lives on its own strand; stop() may come from any thread.
struct master_listener {
  explicit master_listener(asio::any_io_executor executor)
      : io(executor), strand(asio::make_strand(executor)), acceptor(strand) {}
  asio::any_io_executor io;  // accepted sockets live here, each session adds its own strand
  asio::strand<asio::any_io_executor> strand;
  tcp::acceptor acceptor;
  tcp::endpoint bound;
};

}  // namespace detail

namespace {

std::string endpoint_text(const tcp::endpoint& e) {
  const std::string address = e.address().to_string();
  return (e.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(e.port());
}

void start_tcp_session(const std::shared_ptr<detail::master_state>& state, tcp::socket socket) {
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);  // lines are small and each one matters now
  const tcp::endpoint remote = socket.remote_endpoint(ec);
  if (ec) return;  // it closed already; nothing to serve
  std::string address = remote.address().to_string();
  if (!state->admit(address)) {
    socket.close(ec);  // before reading a byte of it
    return;
  }
  auto s = std::make_shared<detail::session<tcp::socket>>(state, std::move(socket),
                                                          endpoint_text(remote));
  s->count_against(std::move(address));
  const bool open = state->enroll(s);
  s->start();
  if (!open) s->post_stop();
}

asio::awaitable<void> accept_loop(std::shared_ptr<detail::master_state> state,
                                  std::shared_ptr<detail::master_listener> l) {
  for (;;) {
    auto [error, socket] =
        co_await l->acceptor.async_accept(l->io, asio::as_tuple(asio::use_awaitable));
    if (!l->acceptor.is_open() || error == asio::error::operation_aborted) break;
    if (error) {
      // Out of file descriptors, say: the connections already open carry on; retry shortly.
      state->log("master: accepting a connection failed: " + error.message());
      asio::steady_timer pause{l->strand, std::chrono::milliseconds{100}};
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    start_tcp_session(state, std::move(socket));
  }
}

}  // namespace

master::master(asio::any_io_executor executor, std::shared_ptr<worker_hub> hub,
               master_options options)
    : executor_(std::move(executor)),
      state_(std::make_shared<detail::master_state>(std::move(hub), std::move(options))) {}

master::~master() {
  stop();
}

tcp::endpoint master::listen() {
  const master_options& o = state_->options();
  boost::system::error_code ec;
  const asio::ip::address address = o.listen_address == "localhost"
                                        ? asio::ip::address{asio::ip::address_v4::loopback()}
                                        : asio::ip::make_address(o.listen_address, ec);
  if (ec) {
    throw master_error(
        "cannot listen on '" + o.listen_address +
        "': not an IP address (use 127.0.0.1, ::1, 0.0.0.0 or an interface's address)");
  }
  const tcp::endpoint wanted{address, o.port};
  if (!address.is_loopback() && !o.token) {
    throw master_error("refusing to listen on " + endpoint_text(wanted) +
                       " without a token: any host that can reach it could join the run as a "
                       "worker");
  }
  if (o.token && o.token->empty()) {
    throw master_error("refusing to listen on " + endpoint_text(wanted) + " with an empty token");
  }
  if (listener_) throw master_error("already listening on " + endpoint_text(listener_->bound));

  auto l = std::make_shared<detail::master_listener>(executor_);
  auto fail = [&](std::string_view step) {
    throw master_error("cannot listen on " + endpoint_text(wanted) + ": " + std::string(step) +
                       ": " + ec.message());
  };
  l->acceptor.open(wanted.protocol(), ec);
  if (ec) fail("open");
  l->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  l->acceptor.bind(wanted, ec);
  if (ec) fail("bind");
  l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("listen");
  l->bound = l->acceptor.local_endpoint(ec);
  if (ec) fail("local_endpoint");
  listener_ = l;
  asio::co_spawn(l->strand, accept_loop(state_, l), [](std::exception_ptr) {});
  return l->bound;
}

void master::accept(tcp::socket socket) {
  start_tcp_session(state_, std::move(socket));
}

bool master::enroll(const std::shared_ptr<detail::session_core>& s) {
  return state_->enroll(s);
}

void master::stop() {
  auto finish = [](const std::shared_ptr<detail::master_state>& state,
                   const std::shared_ptr<detail::master_listener>& l) {
    if (l) {
      boost::system::error_code ignored;
      l->acceptor.close(ignored);
    }
    for (auto& s : state->stop())
      s->post_stop();
  };
  const bool first = !state_->stopping();  // a second call (the destructor's) adds nothing
  for (const auto& s : state_->begin_stop())
    s->post_stop();
  if (!listener_) return finish(state_, nullptr);
  if (!first) return;
  // The port stays open for close_timeout: a worker that connects now, or whose hello comes
  // now, is told the run is over (welcome, bye) instead of finding nothing or no answer.
  auto linger = std::make_shared<asio::steady_timer>(listener_->strand);
  linger->expires_after(state_->options().close_timeout);
  linger->async_wait([state = state_, l = listener_, linger, finish](boost::system::error_code) {
    finish(state, l);
  });
}

bool master::drain(std::string_view worker, std::string reason, bool rejoin) {
  auto s = state_->session_named(worker);
  if (!s) return false;
  s->post_drain(std::move(reason), rejoin);
  return true;
}

bool master::release(std::string_view worker, std::string reason) {
  auto s = state_->session_named(worker);
  if (!s) return false;
  s->post_release(std::move(reason));
  return true;
}

tcp::endpoint master::local_endpoint() const {
  return listener_ ? listener_->bound : tcp::endpoint{};
}

const std::string& master::run_id() const noexcept {
  return state_->run_id();
}

master_stats master::stats() const {
  return state_->stats();
}

std::vector<connected_worker> master::workers() const {
  return state_->workers();
}

std::size_t master::open_connections() const {
  return state_->open_sessions();
}

}  // namespace drover::coord
