#pragma once
// The master lease in Redis (docs/redis.md, "The master lease"): the lease_keeper decides, this
// asks Redis. Each operation is one Lua script, so it is atomic in Redis.
//
//     redis_lease lease{connection, run_keys{"build-42"}, "ci-job-3", settings.ttl};
//     if (auto epoch = co_await lease.acquire()) ...   // the master, with this epoch
//     bool still_ours = co_await lease.renew(epoch);
//     co_await lease.release(epoch);                   // at the end of the run

#include <drover/coord/lease.hpp>
#include <drover/coord/redis.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace drover::coord {

/// The keys of one run. All share the hash tag {KEY}, so on Redis Cluster they live in one slot
/// and a script may touch several of them.
struct run_keys {
  /// Throws std::invalid_argument unless `key` is 1 to 128 of [A-Za-z0-9._:-].
  explicit run_keys(std::string_view key);

  const std::string& key() const noexcept { return key_; }
  /// drover:{KEY}:lease: a string "EPOCH INSTANCE" with a TTL; whoever holds it is the master.
  std::string lease() const { return prefix_ + "lease"; }
  /// drover:{KEY}:epoch: an integer, incremented by each new master.
  std::string epoch() const { return prefix_ + "epoch"; }
  /// drover:{KEY}:join: a stream of entries {conn, instance}, read by the group "masters".
  std::string join() const { return prefix_ + "join"; }
  /// drover:{KEY}:journal: a stream of entries {r: lines}, the master's journal, fenced by the
  /// epoch.
  std::string journal() const { return prefix_ + "journal"; }
  /// drover:{KEY}:result: a string, the finished run's outcome.
  std::string result() const { return prefix_ + "result"; }
  /// drover:{KEY}:c:CONN:up (what the worker end writes) or :down.
  std::string pipe(std::string_view conn, bool up) const {
    return prefix_ + "c:" + std::string(conn) + (up ? ":up" : ":down");
  }
  /// drover:{KEY}:c:CONN:alive: a string with a short TTL, kept by the worker end of the pipe
  /// while it is open; a join whose key is gone is a worker that is gone.
  std::string alive(std::string_view conn) const {
    return prefix_ + "c:" + std::string(conn) + ":alive";
  }

 private:
  std::string key_;
  std::string prefix_;  // drover:{KEY}:
};

/// Who holds the lease, as Redis says.
struct lease_holder {
  std::uint64_t epoch = 0;
  std::string instance;
};

class redis_lease {
 public:
  /// `timeout` bounds each request; keep it below lease_settings::margin, so that a renewal
  /// that hangs ends before the holder stops trusting its lease.
  redis_lease(redis_connection& redis, run_keys keys, std::string instance,
              std::chrono::milliseconds ttl,
              std::chrono::milliseconds timeout = std::chrono::seconds(1));

  /// Takes the lease if nobody holds it: the next epoch, or nothing when another instance
  /// holds it. Throws redis_error when Redis cannot be asked.
  boost::asio::awaitable<std::optional<std::uint64_t>> acquire();
  /// Extends the lease if this instance still holds it with `epoch`.
  boost::asio::awaitable<bool> renew(std::uint64_t epoch);
  /// Gives the lease up if this instance holds it with `epoch`.
  boost::asio::awaitable<bool> release(std::uint64_t epoch);
  /// Who holds it now, if anyone.
  boost::asio::awaitable<std::optional<lease_holder>> holder();
  redis_connection& connection() noexcept { return redis_; }

 private:
  std::string value(std::uint64_t epoch) const;

  redis_connection& redis_;
  run_keys keys_;
  std::string instance_;
  std::chrono::milliseconds ttl_;
  std::chrono::milliseconds timeout_;
};

/// Takes and keeps the lease as `keeper` says, against `lease`, until cancelled (a master that
/// stops calling this loses its lease within its ttl). When the connection is closed (after
/// an error) it calls `reconnect` before the next request; a request that fails counts as
/// refused (acquire) or failed (renew), never as an end. `on_role(master, epoch)` runs each
/// time the instance becomes or stops being the master.
boost::asio::awaitable<void> keep_lease(
    redis_lease& lease, lease_keeper& keeper,
    std::function<boost::asio::awaitable<void>()> reconnect,
    std::function<void(bool master, std::uint64_t epoch)> on_role);

}  // namespace drover::coord
