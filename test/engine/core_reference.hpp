#pragma once
// For core_property_test: random cases (a DAG, its policies and constraints, the outcome of
// every attempt, the workers) and a deliberately plain reference model of the statuses the
// modules must end in when nothing stops the run. The model reads the case, never the plan or
// the core, and follows the rules as docs/architecture.md states them, one module at a time in
// dependency order.

#include <drover/detail/scheduler_core.hpp>
#include <drover/pipeline.hpp>

#include "core_harness.hpp"

#include <cstdint>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace drover::test::property {

enum class reuse_answer : std::uint8_t { miss, journal, cache, error };
enum class skip_answer : std::uint8_t { none, run, skip, throws };

struct module_case {
  std::vector<std::size_t> deps;  // indices of earlier modules
  int retries = 0;
  bool always_run = false;
  bool ignore_failure = false;
  skip_answer skip = skip_answer::none;
  int priority = 0;
  int pool = -1;  // index into random_case::pools
  std::uint32_t pool_slots = 1;
  int key = -1;  // not_in_parallel key
  /// How counted attempt k (1, 2, ...) ends: succeeded, failed, timed_out or cancelled.
  std::vector<module_status> outcomes;
  reuse_answer reuse = reuse_answer::miss;
};

struct random_case {
  std::uint64_t seed = 0;
  execution_mode mode = execution_mode::keep_going;
  std::vector<module_case> modules;
  std::vector<std::uint32_t> pools;  // capacities
  int keys = 0;
  bool remote = false;
  std::size_t local_workers = 1, local_capacity = 1;
  std::vector<std::uint32_t> remote_slots;  // remote workers attached before the start
  std::uint32_t max_worker_losses = 3;
  double loss_rate = 0, give_back_rate = 0;  // per remote answer
  bool check_reuse = false, record = false, wait_for_records = false;
  std::optional<milliseconds> deadline;
  std::optional<std::size_t> cancel_at_step;
};

inline std::string module_id(std::size_t i) {
  return "m" + std::to_string(i);
}

/// A case from its seed: mostly small (a few dozen modules), now and then a few hundred.
inline random_case make_case(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  random_case c;
  c.seed = seed;
  c.mode = chance(0.5) ? execution_mode::fail_fast : execution_mode::keep_going;
  const int n = chance(0.03) ? pick(100, 300) : pick(1, 30);
  for (int p = pick(0, 2); p > 0; --p)
    c.pools.push_back(static_cast<std::uint32_t>(pick(1, 3)));
  c.keys = pick(0, 2);
  c.remote = chance(0.4);
  if (c.remote) {
    c.local_workers = static_cast<std::size_t>(pick(0, 1));
    c.local_capacity = c.local_workers;
    for (int w = pick(1, 3); w > 0; --w)
      c.remote_slots.push_back(static_cast<std::uint32_t>(pick(1, 3)));
    c.max_worker_losses = static_cast<std::uint32_t>(pick(1, 3));
    c.loss_rate = chance(0.5) ? 0.05 : 0;
    c.give_back_rate = chance(0.3) ? 0.03 : 0;
  } else {
    c.local_workers = static_cast<std::size_t>(pick(1, 4));
    c.local_capacity = c.local_workers * static_cast<std::size_t>(pick(1, 3));
  }
  c.check_reuse = chance(0.2);
  c.record = chance(0.3);
  c.wait_for_records = c.record && chance(0.5);
  if (chance(0.1)) c.deadline = milliseconds(pick(1, 200));
  if (chance(0.15)) c.cancel_at_step = static_cast<std::size_t>(pick(0, 4 * n));

  for (int i = 0; i < n; ++i) {
    module_case m;
    for (int d = i == 0 ? 0 : pick(0, 3); d > 0; --d) {
      const auto dep = static_cast<std::size_t>(pick(std::max(0, i - 8), i - 1));
      if (std::find(m.deps.begin(), m.deps.end(), dep) == m.deps.end()) m.deps.push_back(dep);
    }
    m.retries = chance(0.3) ? pick(1, 2) : 0;
    m.always_run = chance(0.08);
    m.ignore_failure = chance(0.08);
    if (chance(0.06)) m.skip = static_cast<skip_answer>(pick(1, 3));
    if (chance(0.2)) m.priority = pick(-1, 2);
    if (!c.pools.empty() && chance(0.25)) {
      m.pool = pick(0, static_cast<int>(c.pools.size()) - 1);
      m.pool_slots = static_cast<std::uint32_t>(pick(1, static_cast<int>(c.pools[m.pool])));
    }
    if (c.keys > 0 && chance(0.15)) m.key = pick(0, c.keys - 1);
    for (int k = 0; k <= m.retries; ++k) {
      const int roll = pick(0, 99);
      module_status s = roll < 65   ? module_status::succeeded
                        : roll < 85 ? module_status::failed
                                    : module_status::timed_out;
      // A remote worker answering cancelled unasked gives the attempt back: the driver
      // makes those itself, so scripts of remote runs have none.
      if (!c.remote && roll >= 97) s = module_status::cancelled;
      m.outcomes.push_back(s);
    }
    if (c.check_reuse) {
      const int roll = pick(0, 99);
      m.reuse = roll < 75   ? reuse_answer::miss
                : roll < 85 ? reuse_answer::journal
                : roll < 95 ? reuse_answer::cache
                            : reuse_answer::error;
    }
    c.modules.push_back(std::move(m));
  }
  return c;
}

inline pipeline to_pipeline(const random_case& c) {
  pipeline p;
  p.mode = c.mode;
  for (std::size_t k = 0; k < c.pools.size(); ++k)
    p.pools["pool" + std::to_string(k)] = c.pools[k];
  std::mt19937_64 rng(c.seed ^ 0x5eed);
  for (std::size_t i = 0; i < c.modules.size(); ++i) {
    const module_case& m = c.modules[i];
    std::vector<std::string> deps;
    for (std::size_t d : m.deps)
      deps.push_back(module_id(d));
    module_ref s = p.add(module_id(i), no_body(), std::move(deps));
    s.retries(m.retries);
    backoff_policy b;
    b.initial = milliseconds(std::uniform_int_distribution<int>(1, 20)(rng));
    b.jitter = std::uniform_real_distribution<double>(0, 0.5)(rng);
    s.backoff(b);
    s.always_run(m.always_run);
    s.ignore_failure(m.ignore_failure);
    s.priority(m.priority);
    switch (m.skip) {
      case skip_answer::none:
        break;
      case skip_answer::run:
        s.skip_if([] { return std::optional<std::string>(); });
        break;
      case skip_answer::skip:
        s.skip_if([] { return std::optional<std::string>("condition"); });
        break;
      case skip_answer::throws:
        s.skip_if([]() -> std::optional<std::string> { throw std::runtime_error("bad"); });
        break;
    }
    if (m.pool >= 0) {
      s.constraints().pool = "pool" + std::to_string(m.pool);
      s.constraints().pool_slots = m.pool_slots;
    }
    if (m.key >= 0) s.constraints().not_in_parallel = {"key" + std::to_string(m.key)};
  }
  return p;
}

inline detail::core_settings to_settings(const random_case& c) {
  detail::core_settings s;
  s.local_workers = c.local_workers;
  s.local_capacity = c.local_capacity;
  s.seed = c.seed;
  s.remote = c.remote;
  s.epoch = c.seed % 5;
  s.max_worker_losses = c.max_worker_losses;
  s.check_reuse = c.check_reuse;
  s.record = c.record;
  s.wait_for_records = c.wait_for_records;
  s.deadline = c.deadline;
  return s;
}

/// The status each module ends in when nothing stops the run. `losses` are the attempts each
/// module lost with its worker (the driver's doing, so an input here, like the script).
inline std::vector<module_status> reference_statuses(const random_case& c,
                                                     const std::vector<std::uint32_t>& losses) {
  const std::size_t n = c.modules.size();
  std::vector<module_status> out(n, module_status::pending);
  auto lets_run = [](module_status s) {
    return s == module_status::succeeded || s == module_status::ignored_failure ||
           s == module_status::cached;
  };
  for (std::size_t i = 0; i < n; ++i) {
    const module_case& m = c.modules[i];
    bool blocked = false, only_cancelled = true;
    for (std::size_t d : m.deps) {
      if (lets_run(out[d])) continue;
      blocked = true;
      if (out[d] != module_status::cancelled) only_cancelled = false;
    }
    if (blocked && !m.always_run) {
      out[i] = only_cancelled ? module_status::cancelled : module_status::skipped;
    } else if (m.skip == skip_answer::skip) {
      out[i] = module_status::skipped;
    } else if (m.skip == skip_answer::throws || m.reuse == reuse_answer::error) {
      out[i] = module_status::failed;
    } else if (m.reuse == reuse_answer::journal || m.reuse == reuse_answer::cache) {
      out[i] = module_status::cached;
    } else if (c.remote && losses[i] >= c.max_worker_losses) {
      out[i] = module_status::failed;  // poison
    } else {
      module_status last = module_status::pending;
      for (module_status s : m.outcomes) {  // one per counted attempt: 1 + retries
        last = s;
        if (s == module_status::succeeded || s == module_status::cancelled) break;
      }
      const bool failure = last == module_status::failed || last == module_status::timed_out;
      out[i] = failure && m.ignore_failure ? module_status::ignored_failure : last;
    }
  }
  return out;
}

}  // namespace drover::test::property
