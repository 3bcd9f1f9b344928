// The simulation harness: one thread, one virtual clock, a master and its simulated workers
// on an io_context, run step by step: everything ready runs, then virtual time jumps to the
// next timer. A master that dies is frozen with its io_context and its workers (they notice
// the connection close and reconnect); the next master resumes from the in-memory journal.

#include <drover/clock.hpp>
#include <drover/coord/master.hpp>
#include <drover/coord/memory_stream.hpp>
#include <drover/coord/redis_journal.hpp>
#include <drover/coord/simulation.hpp>
#include <drover/engine.hpp>
#include <drover/journal.hpp>

#include "simulation_redis.hpp"
#include "simulation_trace.hpp"
#include "simulation_workers.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <random>

namespace drover::coord {

namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

// `count` moments in (0, within], drawn from `rng`, earliest first.
std::vector<milliseconds> sorted_moments(std::size_t count, milliseconds within,
                                         std::mt19937_64& rng) {
  std::vector<milliseconds> moments;
  for (std::size_t k = 0; k < count; ++k) {
    moments.push_back(
        milliseconds{std::uniform_int_distribution<std::int64_t>{1, within.count()}(rng)});
  }
  std::sort(moments.begin(), moments.end());
  return moments;
}

// One master with its workers on an io_context of their own. When the master dies the whole
// incarnation is frozen: nothing of it runs again.
struct incarnation {
  asio::io_context io{1};
  std::shared_ptr<worker_hub> hub;
  std::unique_ptr<master> coordinator;
  std::unique_ptr<engine> runner;
  asio::cancellation_signal cancel;
  std::unique_ptr<run_timer> death;
  std::vector<std::unique_ptr<run_timer>> redis_restarts;  // those still ahead when it started
  // Both directions of every connection, to close them when the simulation ends: a read
  // waiting in a pipe holds its coroutine, which holds the pipe.
  std::vector<std::shared_ptr<detail::memory_channel>> pipes;
  bool done = false;
  bool dead = false;
  bool cancelled = false;

  ~incarnation() {
    death.reset();
    redis_restarts.clear();
    runner.reset();
    coordinator.reset();
  }
};

milliseconds longest_attempt(const simulation_options& o) {
  milliseconds longest = o.max_delay;
  if (o.durations) {
    for (const auto& [id, d] : *o.durations)
      longest = std::max(longest, d);
  }
  return longest;
}

// The modules `journal` (opened with resume) records as succeeded.
std::unordered_set<std::string> journaled_successes(const run_journal& journal, const plan& p) {
  std::unordered_set<std::string> succeeded;
  for (plan::index i = 0; i < p.size(); ++i) {
    std::string id(p.id(i));
    const auto* m = journal.previous(id);
    if (m && (m->status == module_status::succeeded || m->status == module_status::cached))
      succeeded.insert(std::move(id));
  }
  return succeeded;
}

}  // namespace

simulation_outcome simulate(pipeline p, const simulation_options& o) {
  const auto wall_started = std::chrono::steady_clock::now();
  simulation_outcome out;
  virtual_time time{o.seed};
  virtual_time::scope on_this_thread{time};
  std::mt19937_64 rng{o.seed * 0x9E3779B97F4A7C15ull + 1};
  const simulation_faults& f = o.faults;

  if (f.hang_rate > 0 && !p.defaults.timeout) {
    p.defaults.timeout = o.hang_timeout > milliseconds{0}
                             ? o.hang_timeout
                             : 4 * longest_attempt(o) + milliseconds{1000};
  }
  // The simulated master has no local workers: modules pinned to it run on simulated workers.
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (const auto* c = p.module(i).constraints(); c && c->pin_local)
      p.edit(i).constraints().pin_local = false;
  }
  std::optional<pipeline> again;  // the definition a restarted master prepares anew
  if (f.master_restarts > 0) again = p;
  auto prepared = prepare(std::move(p));
  if (!prepared.ok()) {
    out.report.status = run_status::invalid;
    out.report.problems = std::move(prepared.problems);
    return out;
  }
  std::optional<plan> next_plan = std::move(prepared.plan);
  invariant_checker check{*next_plan};
  milliseconds longest_timeout{0};
  for (plan::index i = 0; i < next_plan->size(); ++i)
    longest_timeout = std::max(longest_timeout, next_plan->timeout(i).value_or(milliseconds{0}));

  const std::size_t capacity = std::max<std::size_t>(o.workers * o.slots, 1);
  const milliseconds mean = (o.min_delay + std::max(o.min_delay, o.max_delay)) / 2;
  const milliseconds within = f.within.value_or(
      std::max(milliseconds{50}, mean * static_cast<std::int64_t>(check.size() / capacity + 1)));
  const detail::sim_worker_plans worker_plans(o, within, rng);
  const std::vector<milliseconds> master_deaths = sorted_moments(f.master_restarts, within, rng);
  // Drawn last: runs without them keep their draws.
  const std::vector<milliseconds> redis_restarts =
      sorted_moments(o.over_redis ? f.redis_restarts : 0, within, rng);
  std::size_t next_redis_restart = 0;
  // Quiet for longer than any attempt, hang or partition can legitimately last: stalled.
  const milliseconds slowest_attempt{static_cast<std::int64_t>(
      static_cast<double>(longest_attempt(o).count()) * std::max(1.0, f.slowness))};
  const milliseconds stall_after =
      std::max({o.stall_after, 2 * (slowest_attempt + f.max_partition) + o.lost_worker_timeout,
                2 * (longest_timeout + o.lost_worker_timeout)});

  detail::recorder rec{time, check, o.keep_trace};
  for (std::size_t w = 0; w < o.workers; ++w) {  // idle ones count for utilisation too
    std::string name = "sim-" + std::to_string(w);
    rec.usage.emplace(name, worker_usage{name});
  }
  rec.running.resize(check.size());
  rec.last_progress = time.now();
  const run_clock::time_point start = time.now();
  const auto journal_storage = f.master_restarts > 0 && !o.over_redis
                                   ? std::make_shared<std::string>()
                                   : std::shared_ptr<std::string>();
  std::optional<detail::sim_redis> redis;
  if (o.over_redis)
    redis.emplace(
        detail::sim_redis{std::make_shared<redis_fake>(), run_keys{"simulation"}, o.lease_ttl});
  simulation_counters counters;
  std::vector<std::unique_ptr<incarnation>> incarnations;
  bool completed = false;
  std::chrono::nanoseconds ended_at{0};

  // Worker w's options for its join-th connection to master k, or nothing when it is gone.
  const auto worker_options = [&](std::size_t w, std::size_t k, std::size_t join) {
    return worker_plans.options(w, k, join, time.now() - start);
  };

  for (std::size_t k = 0; !completed; ++k) {
    auto inc = std::make_unique<incarnation>();
    incarnation* current = inc.get();
    incarnations.push_back(std::move(inc));
    if (k > 0) {
      rec.line("- master restarted\n");
      for (auto& a : rec.running)
        a.worker = nullptr;  // frozen with the dead master
    }
    // Makes this incarnation's master and starts the run, once its journal is open.
    const auto start_master = [&, current, k](std::shared_ptr<run_journal> journal,
                                              std::uint64_t epoch) {
      if (journal && k > 0) {
        next_plan = std::move(prepare(*again).plan);
        check.resume(journaled_successes(*journal, *next_plan));
      }
      worker_hub::settings hub_settings;
      hub_settings.overdue_grace = o.lost_worker_timeout;
      if (journal) hub_settings.epoch = epoch;
      current->hub = std::make_shared<worker_hub>(hub_settings);
      master_options master_settings;
      master_settings.run_id = "simulation";
      master_settings.heartbeat_interval = o.heartbeat_interval;
      master_settings.lost_worker_timeout = o.lost_worker_timeout;
      current->coordinator =
          std::make_unique<master>(current->io.get_executor(), current->hub, master_settings);
      run_options run;
      run.workers = 0;
      run.remote = current->hub;
      run.seed = o.seed;
      run.run_id = "simulation";
      run.journal = journal;
      run.on_event = [&rec](const event& e) { rec.on_event(e); };
      current->runner = std::make_unique<engine>(current->io.get_executor());
      current->runner->async_run(
          std::move(*next_plan), std::move(run),
          asio::bind_cancellation_slot(current->cancel.slot(), [&, current](run_report report) {
            out.report = std::move(report);
            ended_at = time.now() - start;
            current->done = true;
            current->coordinator->stop();
          }));
      next_plan.reset();
    };
    if (redis) {
      // The lease first, then the journal in the fake (read whole by every master after the
      // first), then the master, which accepts workers from the join stream.
      asio::co_spawn(
          current->io,
          detail::hold_the_lease(
              *redis, "master-" + std::to_string(k),
              [&, current, k, start_master](std::uint64_t epoch) {
                redis_journal_options jo;
                jo.where = redis->fake->endpoint();
                jo.run_key = redis->keys.key();
                jo.epoch = epoch;
                auto journal = run_journal::open_store(
                    make_redis_journal_store(jo),
                    {.mode = durability::relaxed, .resume = k > 0, .inline_writes = true});
                start_master(journal, epoch);
                asio::co_spawn(
                    current->io,
                    serve_redis_joins(redis->join(), redis->keys, "master-" + std::to_string(k),
                                      [current](redis_stream s, std::string peer) {
                                        current->coordinator->accept(std::move(s), std::move(peer));
                                      }),
                    asio::detached);
              }),
          asio::detached);
    } else {
      std::shared_ptr<run_journal> journal;
      if (journal_storage)
        journal = run_journal::open_in_memory(journal_storage, {.resume = k > 0});
      start_master(journal, journal ? journal->epoch() : 0);
    }
    // A pipe between a master's session and a worker (the worker's end first), closed when the
    // simulation ends.
    const auto new_pipe = [current] {
      auto to_worker = std::make_shared<detail::memory_channel>();
      auto to_master = std::make_shared<detail::memory_channel>();
      current->pipes.push_back(to_worker);
      current->pipes.push_back(to_master);
      return std::pair{memory_stream{current->io.get_executor(), to_worker, to_master},
                       memory_stream{current->io.get_executor(), to_master, to_worker}};
    };
    for (std::size_t w = 0; w < o.workers; ++w) {
      if (redis) {  // the master end is pumped through a pipe over the fake
        detail::sim_worker_joins joins{
            new_pipe, [&, w, k](std::size_t join) { return worker_options(w, k, join); }};
        asio::co_spawn(
            current->io,
            detail::run_worker_over_redis(*redis, std::move(joins), counters, out.workers_rejoined),
            asio::detached);
        continue;
      }
      auto sw = worker_options(w, k, 0);
      if (!sw) continue;
      auto [worker_end, master_end] = new_pipe();
      current->coordinator->accept(std::move(master_end), sw->name);
      asio::co_spawn(current->io,
                     run_simulated_worker(std::move(worker_end), std::move(*sw), counters),
                     asio::detached);
    }

    for (std::size_t r = next_redis_restart; r < redis_restarts.size(); ++r) {
      auto& restart = current->redis_restarts.emplace_back(
          std::make_unique<run_timer>(current->io.get_executor()));
      restart->expires_at(start + redis_restarts[r]);
      restart->async_wait([&, current](boost::system::error_code ec) {
        if (ec || current->done) return;
        rec.line("- redis restarted\n");
        ++next_redis_restart;
        ++out.redis_restarts;
        redis->fake->restart();
      });
    }

    if (k < master_deaths.size()) {
      current->death = std::make_unique<run_timer>(current->io.get_executor());
      current->death->expires_at(start + master_deaths[k]);
      current->death->async_wait([current](boost::system::error_code ec) {
        if (!ec && !current->done) current->dead = true;
      });
    }

    const auto give_up = [&](std::string why) {
      if (!current->cancelled) {
        check.add({"the run finishes", rec.events, "", std::move(why)});
        out.hit_limit = true;
        current->cancelled = true;
        rec.last_progress = time.now();
        current->cancel.emit(asio::cancellation_type::terminal);
        return false;
      }
      check.add({"the run finishes", rec.events, "", "still running after it was cancelled"});
      return true;
    };
    for (;;) {
      current->io.restart();
      current->io.poll();
      if (current->done) {
        completed = true;
        break;
      }
      if (current->dead) {
        ++out.master_restarts;
        break;
      }
      const auto quiet = time.now() - rec.last_progress;
      if (quiet > stall_after) {
        if (give_up("nothing happened to any module for " +
                    std::to_string(std::chrono::duration_cast<milliseconds>(quiet).count()) +
                    " ms of virtual time")) {
          break;
        }
      } else if (time.now() - start > o.limit) {
        if (give_up("past the limit of " + std::to_string(o.limit.count()) + " ms")) break;
      }
      if (!time.advance() && give_up("nothing left to happen and the run not over")) break;
    }
    if (!completed && !current->dead) break;  // gave up
  }

  if (completed) check.finish(out.report);
  out.virtual_elapsed = completed ? ended_at : time.now() - start;
  out.violations = check.violations();
  out.trace = std::move(rec.trace);
  out.trace_hash = rec.hash;
  out.events = rec.events;
  out.timers_fired = time.fired();
  for (auto& [name, usage] : rec.usage)
    out.workers.push_back(std::move(usage));

  // The critical path: from the module that finished last, back through the dependency
  // each one waited for longest.
  if (out.report.modules.size() == check.size()) {
    std::vector<std::optional<wall_clock::time_point>> finished(check.size());
    std::optional<plan::index> at;
    for (plan::index i = 0; i < check.size(); ++i) {
      const module_result m = out.report.modules[i];
      if (m.attempts == 0) continue;  // never ran here: reused, skipped or cancelled
      finished[i] = m.finished_at;
      if (!at || m.finished_at > *finished[*at]) at = i;
    }
    while (at) {
      out.critical_path.emplace_back(out.report.modules[*at].id);
      std::optional<plan::index> before;
      for (plan::index d : check.deps(*at)) {
        if (finished[d] && (!before || *finished[d] > *finished[*before])) before = d;
      }
      at = before;
    }
  }

  out.assignments = counters.assignments.load();
  out.failed_attempts = counters.failed.load();
  out.workers_died = counters.died.load();
  out.workers_silent = counters.went_silent.load();
  out.workers_partitioned = counters.partitioned.load();
  out.hung_attempts = counters.hung.load();
  out.duplicates_sent = counters.duplicates_sent.load();
  out.stale_sent = counters.stale_sent.load();
  // Break what still waits (frozen masters, workers that never heard the bye) before the
  // io_contexts go: pipes complete their reads into their io_context, which destroys them;
  // virtual timers drop their handlers.
  for (auto& inc : incarnations) {
    for (auto& pipe : inc->pipes)
      pipe->close();
    // A frozen master's run never completed, so its hub still holds it (and it the hub). Over
    // Redis, one that died waiting for the lease has none.
    if (inc->hub) inc->hub->unbind();
  }
  time.drop_pending();
  incarnations.clear();
  out.elapsed =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - wall_started);
  return out;
}

}  // namespace drover::coord
