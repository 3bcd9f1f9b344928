#include <drover/coord/framing.hpp>
#include <drover/coord/simulated_worker.hpp>
#include <drover/engine.hpp>  // local_os_label

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <map>
#include <memory>
#include <random>

namespace drover::coord {

namespace asio = boost::asio;

namespace {

// Everything one simulated worker's coroutines share. They all run on one strand.
struct simulated_state {
  simulated_state(memory_stream s, simulated_worker_options o, simulation_counters& c)
      : stream(std::move(s)),
        writer(stream),
        options(std::move(o)),
        counters(c),
        rng(options.seed),
        heartbeat(stream.get_executor()),
        death(stream.get_executor()) {}

  memory_stream stream;
  line_writer<memory_stream> writer;
  simulated_worker_options options;
  simulation_counters& counters;
  std::mt19937_64 rng;
  asio::steady_timer heartbeat;
  asio::steady_timer death;
  std::string run;
  std::uint64_t epoch = 0;
  std::chrono::milliseconds heartbeat_every{1000};
  // Attempts in progress: (module, attempt) -> their timer, so a cancel can stop them.
  std::map<std::pair<std::string, std::uint32_t>, std::shared_ptr<asio::steady_timer>> running;
  bool over = false;

  void send(const message& m) { writer.send(encode(m)); }

  void stop() {
    over = true;
    heartbeat.cancel();
    death.cancel();
    for (auto& [key, timer] : running)
      timer->cancel();
    writer.close();
  }
};

asio::awaitable<void> send_heartbeats(std::shared_ptr<simulated_state> s) {
  while (!s->over) {
    s->heartbeat.expires_after(s->heartbeat_every);
    auto [ec] = co_await s->heartbeat.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || s->over) co_return;
    heartbeat_message beat;
    for (const auto& [key, timer] : s->running)
      beat.running.push_back({key.first, key.second});
    s->send(beat);
  }
}

asio::awaitable<void> die_later(std::shared_ptr<simulated_state> s,
                                std::chrono::milliseconds after) {
  s->death.expires_after(after);
  auto [ec] = co_await s->death.async_wait(asio::as_tuple(asio::use_awaitable));
  if (ec || s->over) co_return;
  ++s->counters.died;
  s->stop();
  s->stream.close();  // no bye: the master must notice on its own
}

asio::awaitable<void> run_attempt(std::shared_ptr<simulated_state> s, assign_message a) {
  const auto key = std::make_pair(a.module, a.attempt);
  auto timer = std::make_shared<asio::steady_timer>(s->stream.get_executor());
  s->running[key] = timer;
  const auto span = (s->options.max_delay - s->options.min_delay).count();
  const auto delay =
      s->options.min_delay +
      std::chrono::milliseconds(
          span > 0 ? std::uniform_int_distribution<std::int64_t>{0, span}(s->rng) : 0);
  const bool fails = std::bernoulli_distribution{s->options.fail_rate}(s->rng);
  timer->expires_after(delay);
  co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));  // a cancel shows below
  if (s->over) co_return;
  if (s->running.erase(key) == 0) co_return;  // a cancel already answered it
  result_message r;
  r.run = s->run;
  r.epoch = a.epoch;
  r.module = a.module;
  r.attempt = a.attempt;
  if (fails) {
    r.status = module_status::failed;
    r.error = "simulated failure";
    ++s->counters.failed;
  } else {
    r.status = module_status::succeeded;
    r.value = nullptr;
    ++s->counters.succeeded;
  }
  s->send(r);
}

asio::awaitable<void> read_loop(std::shared_ptr<simulated_state> s) {
  line_splitter splitter;
  for (;;) {
    read_outcome in = co_await read_line(s->stream, splitter);
    if (!in.ok() || s->over) break;
    decode_result decoded = decode(in.line);
    if (!decoded) {
      s->send(to_error_message(decoded.error()));
      continue;
    }
    message& m = decoded.value();
    if (auto* w = std::get_if<welcome_message>(&m)) {
      s->run = w->run;
      s->epoch = w->epoch;
      s->heartbeat_every = std::chrono::milliseconds{w->heartbeat_ms};
      splitter.set_max_line_bytes(w->max_line_bytes);
      ++s->counters.connected;
      asio::co_spawn(s->stream.get_executor(), send_heartbeats(s), asio::detached);
      if (s->options.die_after) {
        asio::co_spawn(s->stream.get_executor(), die_later(s, *s->options.die_after),
                       asio::detached);
      }
    } else if (auto* a = std::get_if<assign_message>(&m)) {
      ++s->counters.assignments;
      asio::co_spawn(s->stream.get_executor(), run_attempt(s, std::move(*a)), asio::detached);
    } else if (auto* c = std::get_if<cancel_message>(&m)) {
      auto it = s->running.find({c->module, c->attempt});
      if (it == s->running.end()) continue;
      it->second->cancel();
      s->running.erase(it);
      result_message r;
      r.run = s->run;
      r.epoch = c->epoch;
      r.module = c->module;
      r.attempt = c->attempt;
      r.status = module_status::cancelled;
      r.error = "cancelled: " + c->reason;
      ++s->counters.cancelled;
      s->send(r);
    } else if (std::holds_alternative<bye_message>(m)) {
      ++s->counters.run_over;
      break;
    } else if (std::holds_alternative<error_message>(m)) {
      ++s->counters.errors_received;
      if (std::get<error_message>(m).fatal) break;
    }
  }
  s->stop();
}

}  // namespace

asio::awaitable<void> run_simulated_worker(memory_stream stream, simulated_worker_options options,
                                           simulation_counters& counters) {
  auto s = std::make_shared<simulated_state>(std::move(stream), std::move(options), counters);
  hello_message hello;
  hello.versions = {protocol_version};
  hello.worker_id = s->options.name;
  hello.capabilities.emplace_back(local_os_label());  // a master requires it
  for (const auto& label : s->options.capabilities) {
    if (label != local_os_label()) hello.capabilities.push_back(label);
  }
  hello.slots = s->options.slots;
  hello.token = s->options.token;
  s->send(hello);
  asio::co_spawn(s->stream.get_executor(), read_loop(s), asio::detached);
  co_await s->writer.run();
  s->stream.close();
}

}  // namespace drover::coord
