#pragma once
// A Redis connection for runs coordinated through Redis (docs/redis.md): commands go out and
// replies come back over an Asio TCP socket; RESP is written and read by Debian's hiredis
// (its command formatter and reply reader), never by hand.
//
//     auto where = drover::coord::parse_redis_url("redis://127.0.0.1:6379/0");
//     drover::coord::redis_connection redis{executor};
//     co_await redis.connect(where, password);            // AUTH and SELECT as needed
//     auto reply = co_await redis.exec(redis_command("INCR", "drover:{run}:counter"));
//     auto replies = co_await redis.exec_all(commands);  // one round trip for all of them
//
// One coroutine at a time uses a connection: commands are not queued behind each other. A
// command that blocks in Redis (XREADGROUP BLOCK) holds its connection for that time, so give
// it one of its own.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace drover::coord {

class redis_fake;

/// Where a Redis is, from `redis://[USER@]HOST[:PORT][/DB]`.
struct redis_endpoint {
  std::string host;
  std::uint16_t port = 6379;
  int db = 0;
  std::string user;  ///< an ACL user; empty: the default user
  /// Set: the connection talks to this in-memory fake instead (redis_fake.hpp).
  std::shared_ptr<redis_fake> fake;

  /// `redis://[USER@]HOST:PORT/DB`, for messages.
  std::string url() const;
};

/// Parses a coordinator address. Throws std::invalid_argument saying what is wrong with it.
/// A password in the URL is refused (it would show in `ps` and in CI logs): it comes from a
/// file. `rediss://` is refused too: Debian's hiredis (0.14) has no TLS.
redis_endpoint parse_redis_url(std::string_view url);

/// Reads a password from a file, without its trailing newline. Throws std::runtime_error naming
/// the file when it cannot be read or is empty.
std::string read_redis_password(const std::string& path);

/// A command from its words: `redis_command("SET", key, value)`. In a coroutine, prefer it to
/// a braced list of strings, which GCC 12 miscompiles across a co_await.
template <class... Words>
std::vector<std::string> redis_command(Words&&... words) {
  std::vector<std::string> command;
  command.reserve(sizeof...(words));
  (command.emplace_back(std::forward<Words>(words)), ...);
  return command;
}

/// A reply, owned (RESP2: what Redis 7 speaks unless asked for RESP3).
struct redis_reply {
  enum class kind : std::uint8_t { nil, integer, string, status, error, array };
  kind type = kind::nil;
  long long integer = 0;
  std::string text;                   ///< a string's bytes, a status or an error message
  std::vector<redis_reply> elements;  ///< an array's

  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_error() const noexcept { return type == kind::error; }
  bool is_array() const noexcept { return type == kind::array; }
};

/// Redis cannot be reached, refused the credentials, sent something that is not RESP, did not
/// answer in time, or the connection broke. The message names the address.
class redis_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class redis_connection {
 public:
  explicit redis_connection(boost::asio::any_io_executor executor);
  ~redis_connection();
  redis_connection(const redis_connection&) = delete;
  redis_connection& operator=(const redis_connection&) = delete;

  /// Connects, authenticates when `password` is set (as `where.user` when there is one),
  /// selects `where.db` and checks with a PING. Throws redis_error, naming the address and
  /// what failed, when any of it fails or takes longer than `timeout`.
  boost::asio::awaitable<void> connect(const redis_endpoint& where,
                                       std::optional<std::string> password,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(5));

  /// Sends one command and waits for its reply. An error reply is returned, not thrown. Throws
  /// redis_error, and closes the connection, when the connection breaks or no reply comes
  /// within `timeout` (which must exceed any BLOCK the command asks for).
  boost::asio::awaitable<redis_reply> exec(std::vector<std::string> command,
                                           std::chrono::milliseconds timeout = default_timeout);

  /// Sends several commands in one write and waits for all their replies, in order.
  boost::asio::awaitable<std::vector<redis_reply>> exec_all(
      std::vector<std::vector<std::string>> commands,
      std::chrono::milliseconds timeout = default_timeout);

  bool is_open() const noexcept;
  void close() noexcept;
  /// The address connected to, for messages.
  const std::string& address() const noexcept { return address_; }

  static constexpr std::chrono::milliseconds default_timeout{10'000};

 private:
  struct reader;  // hiredis's reply reader
  // AUTH, SELECT and PING after connecting.
  boost::asio::awaitable<void> hello(const redis_endpoint& where,
                                     const std::optional<std::string>& password,
                                     std::chrono::milliseconds timeout);
  boost::asio::awaitable<std::vector<redis_reply>> round_trip(
      const std::vector<std::vector<std::string>>& commands, std::chrono::milliseconds timeout);
  boost::asio::awaitable<redis_reply> read_reply(std::chrono::milliseconds timeout);
  [[noreturn]] void fail(const std::string& what);

  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer deadline_;
  // Set while connected to a redis_fake instead of a socket.
  std::shared_ptr<redis_fake> fake_;
  std::shared_ptr<void> fake_link_;
  std::unique_ptr<reader> reader_;
  std::string address_;
};

}  // namespace drover::coord
