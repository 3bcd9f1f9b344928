#pragma once
// The failover rounds of drover-bench --redis (redis.hpp describes them).

#include "redis/redis.hpp"
#include "redis/support.hpp"

#include <cstdint>
#include <string>

namespace drover::bench {

/// Nanoseconds from the master's SIGKILL; -1 when it did not happen.
struct failover_round {
  std::int64_t lease_taken_ns = -1;
  std::int64_t resumed_ns = -1;
};

/// One round: 3 `drover run --coordinator` instances of a fresh run `key`, the master killed
/// once it journaled a quarter of the modules, and its successor timed. Throws when no
/// instance took over within 60 s or a survivor did not exit 0.
failover_round run_failover_round(const redis_server& server, const redis_settings& settings,
                                  const std::string& key);

}  // namespace drover::bench
