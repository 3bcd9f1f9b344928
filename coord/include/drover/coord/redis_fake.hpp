#pragma once
// An in-memory stand-in for the Redis that a coordinated run uses (docs/redis.md): the few
// commands and the Lua scripts drover sends, answered as Redis answers them, with no server.
// For tests and the deterministic simulation: key expiry, stream ids and BLOCK timeouts read
// run_clock, so under a virtual_time (drover/clock.hpp) they follow virtual time.
//
//     auto fake = std::make_shared<drover::coord::redis_fake>();
//     drover::coord::redis_connection redis{executor};
//     co_await redis.connect(fake->endpoint(), std::nullopt);   // as to a Redis
//     fake->restart();   // every connection breaks; the data stays, as with AOF
//
// What it answers: PING, AUTH, SELECT, GET, SET [NX] [PX], DEL, EXISTS, INCR, PEXPIRE, KEYS,
// FLUSHALL, XADD, XTRIM MINID, XRANGE, XREVRANGE, XREAD [COUNT] [BLOCK], XGROUP CREATE
// [MKSTREAM], XREADGROUP [COUNT] [BLOCK] with '>', XACK, XAUTOCLAIM, and EVAL of the scripts in
// coord/src/redis_scripts.hpp. Anything else gets an error reply naming it. Connections may live
// on several threads (the journal's writer has its own): one mutex guards the data.

#include <drover/coord/redis.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace drover::coord {

class redis_fake : public std::enable_shared_from_this<redis_fake> {
 public:
  /// With a password, connections must AUTH with it, as with `requirepass`.
  explicit redis_fake(std::optional<std::string> password = std::nullopt);
  ~redis_fake();
  redis_fake(const redis_fake&) = delete;
  redis_fake& operator=(const redis_fake&) = delete;

  /// Where to connect to reach this fake (redis_endpoint::fake is set; url() says "fake").
  redis_endpoint endpoint();

  /// Breaks every open connection: a pending or next command fails with redis_error, and the
  /// connection must connect again. The data stays, as in a Redis restarted with AOF.
  void restart();
  /// While down, connecting fails as to a Redis that is not running (and restart() happened).
  void set_down(bool down);

  /// Keys that exist now (expired ones do not).
  std::vector<std::string> keys();

  /// A connection id for dial_redis_master: numbered, not random, so that a simulation's
  /// pipes have the same names for the same seed.
  std::string next_connection_id();

  // --- used by redis_connection ---------------------------------------------------------------

  /// One connection's link to the fake.
  struct link;
  /// Opens a link, or throws redis_error when the fake is down. The hello (AUTH, PING) goes
  /// through execute() like any command.
  std::shared_ptr<link> open_link();
  /// Runs `commands` in order, each atomically; a blocking read waits for an XADD to its key,
  /// its BLOCK time, or the link's end. Throws redis_error when the link is broken or closed.
  boost::asio::awaitable<std::vector<redis_reply>> execute(
      std::shared_ptr<link> l, std::vector<std::vector<std::string>> commands);
  /// Ends the link; a command waiting on it fails.
  void close_link(const std::shared_ptr<link>& l);

 private:
  struct state;
  redis_reply answer(const std::vector<std::string>& command, const std::string& name);
  std::unique_ptr<state> state_;
};

}  // namespace drover::coord
