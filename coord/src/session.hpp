#pragma once
// What a master's sessions share: the options, the hub, the names in use, the counters and
// the log. Sessions run on their own strands, so everything mutable here is under a mutex.

#include <drover/coord/detail/master_session.hpp>
#include <drover/coord/master.hpp>

#include "connection_gate.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace drover::coord::detail {

class master_state {
 public:
  master_state(std::shared_ptr<worker_hub> hub, master_options options);

  const master_options& options() const noexcept { return options_; }
  worker_hub& hub() const noexcept { return *hub_; }
  const std::string& run_id() const noexcept { return options_.run_id; }
  std::uint64_t epoch() const noexcept { return epoch_; }

  /// Hands `line` to the log sink, if any; serialises calls from different strands.
  void log(std::string_view line) const;

  /// Changes the counters under the lock.
  template <typename Change>
  void count(Change change) {
    std::lock_guard lock(mutex_);
    change(stats_);
  }
  void count_error_sent(std::string_view code);
  master_stats stats() const;

  /// A name no connected worker has: the one the worker asked for when it is free, else one
  /// made from it (or from its host and pid, or "worker") and a counter.
  std::string claim_name(const hello_message& hello, std::weak_ptr<session_core> session);
  void release_name(const std::string& name);
  /// The connected worker's session with that name, or null.
  std::shared_ptr<session_core> session_named(std::string_view name) const;

  /// Counts and registers a new connection. Returns false once stopped: the caller stops the
  /// session right after starting it.
  bool enroll(const std::shared_ptr<session_core>& session);
  void session_closed();

  /// A TCP connection from `address` may begin its handshake: false (counted, and logged at
  /// most once a second) when that would pass a connection or handshake limit of the options.
  /// An admitted connection calls handshake_ended() once past its handshake (welcomed or not)
  /// and connection_ended() when it closes.
  bool admit(const std::string& address);
  void handshake_ended(const std::string& address);
  void connection_ended(const std::string& address);
  std::size_t open_sessions() const;
  /// Stopping, first step: from now on a worker that completes its handshake gets welcome and
  /// at once bye. Returns the open sessions, to stop them; returns nothing when stopping
  /// had already begun.
  std::vector<std::shared_ptr<session_core>> begin_stop();
  /// Stopping, last step: refuses new connections from now on and returns the open ones, to
  /// stop them (those still waiting for a hello close).
  std::vector<std::shared_ptr<session_core>> stop();
  bool stopping() const;
  bool stopped() const;
  /// The workers that completed a handshake and are still connected.
  std::vector<connected_worker> workers() const;

 private:
  master_options options_;
  std::shared_ptr<worker_hub> hub_;
  std::uint64_t epoch_;
  mutable std::mutex mutex_;
  mutable std::mutex log_mutex_;
  master_stats stats_;
  struct named_worker {
    std::weak_ptr<session_core> session;
    std::vector<std::string> capabilities;
    std::uint32_t slots = 1;
  };
  std::map<std::string, named_worker, std::less<>> names_;  // connected workers
  std::uint64_t name_counter_ = 0;
  std::vector<std::weak_ptr<session_core>> sessions_;
  std::size_t prune_at_ = 64;  // sessions_'s size at which closed ones are dropped
  std::size_t open_ = 0;
  connection_gate gate_;  // admitted TCP connections
  bool stopping_ = false;
  bool stopped_ = false;
};

/// `text` for a log line or an error message: control characters replaced, cut to `limit`
/// bytes, so a worker's strings cannot forge log lines or bloat replies.
std::string printable(std::string_view text, std::size_t limit = 120);

}  // namespace drover::coord::detail
