#include <drover/clock.hpp>
#include <drover/coord/framing.hpp>
#include <drover/coord/simulated_worker.hpp>
#include <drover/engine.hpp>  // local_os_label

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <memory>
#include <random>

namespace drover::coord {

namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

// A small generator for each simulated worker: std::mt19937_64 keeps 2.5 KB of state, which
// 10,000 workers pay in memory and in page faults. xoshiro256** (Blackman and Vigna), seeded
// through splitmix64, satisfies UniformRandomBitGenerator in 32 bytes.
class worker_random {
 public:
  using result_type = std::uint64_t;
  explicit worker_random(std::uint64_t seed) {
    for (auto& word : state_) {
      seed += 0x9E3779B97F4A7C15ull;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      word = z ^ (z >> 31);
    }
  }
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }
  result_type operator()() {
    const result_type result = rotl(state_[1] * 5, 7) * 9;
    const result_type t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

 private:
  static result_type rotl(result_type x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<result_type, 4> state_{};
};

// A line on its way to the master, and when it arrives (message delay, partition).
struct outgoing {
  run_clock::time_point due;
  std::string line;
};

// Everything one simulated worker's coroutines share. They all run on the stream's executor,
// one thread.
struct simulated_state : std::enable_shared_from_this<simulated_state> {
  simulated_state(memory_stream s, simulated_worker_options o, simulation_counters& c)
      : stream(std::move(s)),
        writer(stream),
        options(std::move(o)),
        counters(c),
        rng(options.seed),
        heartbeat(stream.get_executor()),
        fault(stream.get_executor()),
        flush(stream.get_executor()),
        heal(stream.get_executor()) {}

  memory_stream stream;
  line_writer<memory_stream> writer;
  simulated_worker_options options;
  simulation_counters& counters;
  worker_random rng;
  run_timer heartbeat, fault, flush, heal;
  std::string run;
  std::uint64_t epoch = 0;
  milliseconds heartbeat_every{1000};
  // Attempts in progress: (module, attempt) -> their timer, so a cancel can stop them.
  std::map<std::pair<std::string, std::uint32_t>, std::shared_ptr<run_timer>> running;
  std::deque<outgoing> outbox;
  run_clock::time_point partitioned_until{};
  bool flushing = false;
  bool silent = false;
  bool over = false;

  bool delays_messages() const {
    return options.max_message_delay > milliseconds{0} || run_clock::now() < partitioned_until;
  }

  milliseconds uniform(milliseconds low, milliseconds high) {
    if (high <= low) return low;
    return milliseconds{
        std::uniform_int_distribution<std::int64_t>{low.count(), high.count()}(rng)};
  }

  bool chance(double p) { return p > 0.0 && std::bernoulli_distribution{p}(rng); }

  void send(const message& m);

  void stop() {
    over = true;
    heartbeat.cancel();
    fault.cancel();
    flush.cancel();
    heal.cancel();
    for (auto& [key, timer] : running)
      timer->cancel();
    writer.close();
  }
};

// Sends the outbox's lines as they fall due, in order.
asio::awaitable<void> flush_outbox(std::shared_ptr<simulated_state> s) {
  s->flushing = true;
  while (!s->over && !s->outbox.empty()) {
    s->flush.expires_at(s->outbox.front().due);
    co_await s->flush.async_wait(asio::as_tuple(asio::use_awaitable));
    while (!s->over && !s->outbox.empty() && s->outbox.front().due <= run_clock::now()) {
      s->writer.send(s->outbox.front().line);
      s->outbox.pop_front();
    }
  }
  s->flushing = false;
}

void simulated_state::send(const message& m) {
  if (silent || over) return;
  std::string line = encode(m);
  if (!delays_messages() && outbox.empty()) {
    writer.send(line);
    return;
  }
  // In order, like a connection: never before the line ahead of it, nor during a partition.
  auto due = run_clock::now() + uniform(options.min_message_delay, options.max_message_delay);
  if (!outbox.empty()) due = std::max(due, outbox.back().due);
  due = std::max(due, partitioned_until);
  outbox.push_back({due, std::move(line)});
  if (!flushing)
    asio::co_spawn(stream.get_executor(), flush_outbox(shared_from_this()), asio::detached);
}

// Every heartbeat interval, the attempts it runs. A timer callback rather than a coroutine,
// to keep each of 10,000 simulated workers small.
void send_heartbeats(std::shared_ptr<simulated_state> s) {
  s->heartbeat.expires_after(s->heartbeat_every);
  s->heartbeat.async_wait([s](boost::system::error_code ec) {
    if (ec || s->over) return;
    heartbeat_message beat;
    for (const auto& [key, timer] : s->running)
      beat.running.push_back({key.first, key.second});
    s->send(beat);
    send_heartbeats(s);
  });
}

// The worker's own faults, at the moments drawn for it: it dies, goes silent or is cut off.
asio::awaitable<void> misbehave(std::shared_ptr<simulated_state> s) {
  struct planned {
    milliseconds at;
    int what;  // 0 dies, 1 goes silent, 2 partitioned
  };
  std::vector<planned> plan;
  if (s->options.die_after) plan.push_back({*s->options.die_after, 0});
  if (s->options.silent_after) plan.push_back({*s->options.silent_after, 1});
  if (s->options.partition_after) plan.push_back({*s->options.partition_after, 2});
  std::stable_sort(plan.begin(), plan.end(),
                   [](const planned& a, const planned& b) { return a.at < b.at; });
  const auto start = run_clock::now();
  for (const planned& p : plan) {
    s->fault.expires_at(start + p.at);
    auto [ec] = co_await s->fault.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || s->over) co_return;
    if (p.what == 0) {
      ++s->counters.died;
      s->stop();
      s->stream.close();  // no bye: the master must notice on its own
      co_return;
    }
    if (p.what == 1) {
      ++s->counters.went_silent;
      s->silent = true;
    } else {
      ++s->counters.partitioned;
      s->partitioned_until = run_clock::now() + s->options.partition_for;
    }
  }
}

// What an attempt reports when its time is up. A callback, not a coroutine: tens of
// thousands run at once in a large simulation, and a coroutine frame each costs more.
struct attempt_end {
  std::shared_ptr<simulated_state> s;
  std::shared_ptr<run_timer> timer;
  std::pair<std::string, std::uint32_t> key;
  std::uint64_t epoch;
  bool fails;

  void operator()(boost::system::error_code) {
    if (s->over) return;
    if (s->running.erase(key) == 0) return;  // a cancel already answered it
    result_message r;
    r.run = s->run;
    r.epoch = epoch;
    r.module = key.first;
    r.attempt = key.second;
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
    if (s->chance(s->options.duplicate_rate)) {
      ++s->counters.duplicates_sent;
      s->send(r);
    }
    if (s->chance(s->options.stale_rate)) {
      // The same result again, later: by then the master has settled the attempt.
      timer->expires_after(s->uniform(milliseconds{1}, milliseconds{50}));
      run_timer& t = *timer;  // the handler keeps it alive until it fires
      t.async_wait([s = s, timer = timer, r = std::move(r)](boost::system::error_code ec) {
        if (ec || s->over) return;
        ++s->counters.stale_sent;
        s->send(r);
      });
    }
  }
};

void start_attempt(const std::shared_ptr<simulated_state>& s, assign_message& a) {
  auto timer = std::make_shared<run_timer>(s->stream.get_executor());
  auto key = std::make_pair(std::move(a.module), a.attempt);
  s->running[key] = timer;
  milliseconds delay = s->uniform(s->options.min_delay, s->options.max_delay);
  if (s->options.durations) {
    if (auto it = s->options.durations->find(key.first); it != s->options.durations->end())
      delay = it->second;
  }
  delay = milliseconds{
      static_cast<std::int64_t>(static_cast<double>(delay.count()) * s->options.slowness)};
  const bool fails = s->chance(s->options.fail_rate);
  const bool hangs = s->chance(s->options.hang_rate);
  if (hangs) {
    ++s->counters.hung;
    timer->expires_at(run_clock::time_point::max());  // until a cancel
  } else {
    timer->expires_after(delay);
  }
  run_timer& t = *timer;
  t.async_wait(attempt_end{s, std::move(timer), std::move(key), a.epoch, fails});
}

void answer_cancel(simulated_state& s, const cancel_message& c) {
  auto it = s.running.find({c.module, c.attempt});
  if (it == s.running.end()) return;
  it->second->cancel();
  s.running.erase(it);
  result_message r;
  r.run = s.run;
  r.epoch = c.epoch;
  r.module = c.module;
  r.attempt = c.attempt;
  r.status = module_status::cancelled;
  r.error = "cancelled: " + c.reason;
  ++s.counters.cancelled;
  s.send(r);
}

asio::awaitable<void> read_loop(std::shared_ptr<simulated_state> s) {
  line_splitter splitter{default_max_line_bytes, first_read_bytes<memory_stream>};
  for (;;) {
    read_outcome in = co_await read_line(s->stream, splitter);
    if (!in.ok() || s->over) break;
    if (run_clock::now() < s->partitioned_until) {
      // Cut off: this line (and all behind it) arrives when the partition heals.
      s->heal.expires_at(s->partitioned_until);
      co_await s->heal.async_wait(asio::as_tuple(asio::use_awaitable));
      if (s->over) break;
    }
    if (s->silent) continue;  // reads, but never answers
    decode_result decoded = decode(in.line);
    if (!decoded) {
      s->send(to_error_message(decoded.error()));
      continue;
    }
    message& m = decoded.value();
    if (auto* w = std::get_if<welcome_message>(&m)) {
      s->run = w->run;
      s->epoch = w->epoch;
      s->heartbeat_every = milliseconds{w->heartbeat_ms};
      splitter.set_max_line_bytes(w->max_line_bytes);
      ++s->counters.connected;
      send_heartbeats(s);
      if (s->options.die_after || s->options.silent_after || s->options.partition_after)
        asio::co_spawn(s->stream.get_executor(), misbehave(s), asio::detached);
    } else if (auto* a = std::get_if<assign_message>(&m)) {
      ++s->counters.assignments;
      start_attempt(s, *a);
    } else if (auto* c = std::get_if<cancel_message>(&m)) {
      answer_cancel(*s, *c);
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

namespace {

// Not in run_simulated_worker's frame: that frame lives as long as the worker, and a
// message there would cost each of 10,000 workers 3 KB.
void say_hello(simulated_state& s) {
  hello_message hello;
  hello.versions = {protocol_version};
  hello.worker_id = s.options.name;
  hello.capabilities.emplace_back(local_os_label());  // a master requires it
  for (const auto& label : s.options.capabilities) {
    if (label != local_os_label()) hello.capabilities.push_back(label);
  }
  hello.slots = s.options.slots;
  hello.token = s.options.token;
  s.send(hello);
}

}  // namespace

asio::awaitable<void> run_simulated_worker(memory_stream stream, simulated_worker_options options,
                                           simulation_counters& counters) {
  auto s = std::make_shared<simulated_state>(std::move(stream), std::move(options), counters);
  say_hello(*s);
  asio::co_spawn(s->stream.get_executor(), read_loop(s), asio::detached);
  co_await s->writer.run();
  s->stream.close();
}

}  // namespace drover::coord
