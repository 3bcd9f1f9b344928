#pragma once
// A byte pipe carried by two Redis Streams, with the Asio stream interface, so that a master's
// sessions and a worker's framing run over Redis as they run over a socket (docs/redis.md,
// "Connections over Redis Streams").
//
//     redis_stream_options o;
//     o.where = parse_redis_url(url);
//     o.in = "...:down";
//     o.out = "...:up";
//     redis_stream stream{executor, o};
//     co_await stream.open();  // two Redis connections: read and write
//     co_await asio::async_write(stream, asio::buffer(line), asio::use_awaitable);
//     auto n = co_await stream.async_read_some(asio::buffer(buf), asio::use_awaitable);
//     stream.close();  // the other end reads eof
//
// Each write is one stream entry (XADD, with the key's expiry pushed back in the same round
// trip); a read waits (XREAD BLOCK) for entries and returns their bytes in order. close() adds
// an end-of-stream entry, so the other end reads asio::error::eof, and ends this end's reads
// with operation_aborted. Entries this end has read are trimmed from its input with its next
// write. One read and one write may be under way at once, as on a socket. Everything runs on
// the stream's own strand (get_executor()).

#include <drover/clock.hpp>
#include <drover/coord/redis.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace drover::coord {

struct redis_stream_options {
  redis_endpoint where;
  std::optional<std::string> password;
  std::string in;   ///< the key this end reads
  std::string out;  ///< the key this end writes
  /// Entries read are from after this id ("0": from the start).
  std::string start_after = "0";
  /// How long one XREAD blocks in Redis before it is asked again.
  std::chrono::milliseconds block{1000};
  /// The keys expire this long after this end's last write (docs/redis.md).
  std::chrono::milliseconds keep_for{std::chrono::hours(1)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  /// When set (the worker end of a joined pipe), this end keeps the key alive while it is open:
  /// `SET key 1 PX alive_ttl` when it opens and every third of alive_ttl after, over a third
  /// Redis connection. A master answering a join checks it, so that a worker that died before
  /// any master read its join does not become a phantom that takes attempts and never answers.
  std::string alive_key;
  std::chrono::milliseconds alive_ttl{std::chrono::seconds(3)};
};

/// What a redis_stream's read or write ends with when this end's own connection to Redis failed
/// (Redis restarted or cannot be reached), as opposed to the other end closing the pipe. A
/// master's session that sees it detaches the worker as worker_hub::detach_cause::
/// master_link_failed: the worker did nothing wrong, so the loss does not count against its
/// attempts.
boost::system::error_code redis_link_failed() noexcept;

class redis_stream {
 public:
  using executor_type = boost::asio::strand<boost::asio::any_io_executor>;

  redis_stream(boost::asio::any_io_executor executor, redis_stream_options options);
  ~redis_stream();
  redis_stream(redis_stream&&) = default;

  executor_type get_executor() const noexcept { return state_->strand; }

  /// Connects both of its Redis connections (and, with alive_key, sets that key and keeps it
  /// alive until close()). Throws redis_error.
  boost::asio::awaitable<void> open();

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [state = state_](auto handler, const MutableBuffers& buffers) {
          std::vector<boost::asio::mutable_buffer> targets(
              boost::asio::buffer_sequence_begin(buffers),
              boost::asio::buffer_sequence_end(buffers));
          spawn_for(state, read_some(state, std::move(targets)), std::move(handler));
        },
        token, buffers);
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [state = state_](auto handler, const ConstBuffers& buffers) {
          std::string bytes(boost::asio::buffer_size(buffers), '\0');
          boost::asio::buffer_copy(boost::asio::buffer(bytes), buffers);
          spawn_for(state, write_some(state, std::move(bytes)), std::move(handler));
        },
        token, buffers);
  }

  /// Ends the pipe: the other end reads eof after what was written; reads here end.
  void close();
  /// Ends reading at this end (a pending read and later ones end with operation_aborted);
  /// writes still go out until close().
  void cancel();

  /// Both keys' names, for logs.
  const std::string& in_key() const noexcept { return state_->options.in; }
  const std::string& out_key() const noexcept { return state_->options.out; }

 private:
  struct state {
    state(boost::asio::any_io_executor executor, redis_stream_options o);
    executor_type strand;
    redis_stream_options options;
    redis_connection reader;
    redis_connection writer;
    redis_connection keeper;                // keeps alive_key, when there is one
    std::optional<run_timer> keeper_pause;  // between two SETs of it
    std::string pending;                    // bytes read from entries, not yet returned
    std::string last_id;                    // of the last entry read
    std::string trimmed_upto;               // entries up to this id were trimmed
    bool eof_seen = false;
    bool closed = false;
    bool reading_cancelled = false;
    bool writing = false;  // the writer connection is in use (a write, or the end)
  };
  using result = std::pair<boost::system::error_code, std::size_t>;

  static boost::asio::awaitable<result> read_some(std::shared_ptr<state> s,
                                                  std::vector<boost::asio::mutable_buffer> to);
  static boost::asio::awaitable<result> write_some(std::shared_ptr<state> s, std::string bytes);
  static boost::asio::awaitable<void> send_end(std::shared_ptr<state> s);
  static boost::asio::awaitable<void> keep_alive(std::shared_ptr<state> s);

  // Runs `op` on the strand and completes `handler` with its (error, bytes), on the handler's
  // own executor.
  template <typename Handler>
  static void spawn_for(const std::shared_ptr<state>& s, boost::asio::awaitable<result> op,
                        Handler handler) {
    auto executor = boost::asio::get_associated_executor(handler, s->strand);
    boost::asio::co_spawn(
        s->strand, std::move(op),
        [handler = std::move(handler), executor](std::exception_ptr failed, result r) mutable {
          if (failed) r = {boost::asio::error::broken_pipe, 0};
          boost::asio::dispatch(executor,
                                boost::asio::append(std::move(handler), r.first, r.second));
        });
  }

  std::shared_ptr<state> state_;
};

}  // namespace drover::coord
