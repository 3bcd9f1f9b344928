#include "simulation_workers.hpp"

#include <algorithm>
#include <numeric>

namespace drover::coord::detail {

using std::chrono::milliseconds;

sim_worker_plans::sim_worker_plans(const simulation_options& o, milliseconds within,
                                   std::mt19937_64& rng)
    : options_(o), plans_(o.workers), labels_(o.workers) {
  const auto& f = o.faults;
  std::vector<std::size_t> order(o.workers);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::shuffle(order.begin(), order.end(), rng);
  const auto moment = [&] {
    return milliseconds{std::uniform_int_distribution<std::int64_t>{0, within.count()}(rng)};
  };
  std::size_t next = 0;
  const auto take = [&](std::size_t count, auto&& apply) {
    for (std::size_t k = 0; k < count && next < order.size(); ++k)
      apply(plans_[order[next++]]);
  };
  take(f.crash_workers, [&](plan& w) { w.dies = moment(); });
  take(f.silent_workers, [&](plan& w) { w.goes_silent = moment(); });
  take(f.slow_workers, [&](plan& w) { w.slowness = f.slowness; });
  take(f.partitioned_workers, [&](plan& w) {
    w.partitioned = moment();
    w.partition_for = milliseconds{std::uniform_int_distribution<std::int64_t>{
        f.min_partition.count(), std::max(f.min_partition, f.max_partition).count()}(rng)};
  });
  // Labels: `count` workers get each group's, in order; the workers left over get none.
  for (std::size_t w = 0, group = 0, used = 0; w < o.workers; ++w) {
    while (group < o.capability_mix.size() && used >= o.capability_mix[group].second) {
      ++group;
      used = 0;
    }
    if (group < o.capability_mix.size()) {
      labels_[w] = o.capability_mix[group].first;
      ++used;
    }
  }
}

std::optional<simulated_worker_options> sim_worker_plans::options(
    std::size_t w, std::size_t k, std::size_t join, std::chrono::nanoseconds elapsed) const {
  const simulation_options& o = options_;
  const simulation_faults& f = o.faults;
  const plan& p = plans_[w];
  const auto ahead = [&](const std::optional<milliseconds>& at) -> std::optional<milliseconds> {
    if (!at || *at < elapsed) return std::nullopt;
    return std::chrono::duration_cast<milliseconds>(*at - elapsed);
  };
  if ((p.dies && !ahead(p.dies)) || (p.goes_silent && !ahead(p.goes_silent))) return std::nullopt;
  simulated_worker_options sw;
  sw.name = "sim-" + std::to_string(w);
  sw.capabilities = labels_[w];
  sw.slots = o.slots;
  sw.min_delay = o.min_delay;
  sw.max_delay = std::max(o.min_delay, o.max_delay);
  sw.durations = o.durations;
  sw.fail_rate = f.fail_rate;
  sw.hang_rate = f.hang_rate;
  sw.duplicate_rate = f.duplicate_rate;
  sw.stale_rate = f.stale_rate;
  sw.max_message_delay = f.max_message_delay;
  sw.slowness = p.slowness;
  sw.die_after = ahead(p.dies);
  sw.silent_after = ahead(p.goes_silent);
  sw.partition_after = ahead(p.partitioned);
  sw.partition_for = p.partition_for;
  sw.seed = o.seed * 1'000'003 + w + k * 7'919 + join * 104'729;
  return sw;
}

}  // namespace drover::coord::detail
