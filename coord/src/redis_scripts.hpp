#pragma once
// The Lua scripts drover runs in Redis (EVAL), in one place: the lease and the journal send
// them, and redis_fake recognises them by their text and does what they do.

#include <string_view>

namespace drover::coord::detail {

// Takes the lease when nobody holds it, with the next epoch. KEYS: lease, epoch. ARGV:
// instance, ttl in ms. Returns the epoch, or 0 when another instance holds the lease.
constexpr std::string_view acquire_script = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], epoch .. ' ' .. ARGV[1], 'PX', ARGV[2])
return epoch
)lua";

// Extends the lease if it is still ARGV[1]. KEYS: lease. ARGV: value, ttl in ms.
constexpr std::string_view renew_script = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
)lua";

// Deletes the lease if it is still ARGV[1]. KEYS: lease. ARGV: value.
constexpr std::string_view release_script = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

// Appends ARGV[2] to the journal while the run's epoch is still ARGV[1]. KEYS: epoch, journal.
// ARGV: epoch, lines, keep_for in ms. Returns 1, or the error "FENCED <the epoch now>".
constexpr std::string_view append_script = R"lua(
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then return redis.error_reply('FENCED ' .. (epoch or '')) end
redis.call('XADD', KEYS[2], '*', 'r', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
)lua";

}  // namespace drover::coord::detail
