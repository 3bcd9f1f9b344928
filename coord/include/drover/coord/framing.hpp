#pragma once
// Line framing for the protocol: cut a byte stream into lines under a length limit, read
// lines from any Asio stream, and write queued lines in order.
//
//     drover::coord::line_splitter splitter{limits.max_line_bytes};
//     for (;;) {
//       drover::coord::read_outcome in = co_await drover::coord::read_line(socket, splitter);
//       if (in.status == drover::coord::read_status::line_too_long) { ...fatal error, close }
//       if (!in.ok()) break;  // in.error: eof when the peer closed, or why the read failed
//       handle(drover::coord::decode(in.line, limits));
//     }
//
// Nothing here knows about messages; protocol.hpp decodes the lines.

#include <drover/clock.hpp>
#include <drover/coord/protocol.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace drover::coord {

/// Cuts bytes into lines ending in '\n', drops a '\r' before the '\n', and skips empty
/// lines. A line longer than max_line_bytes (counted without its '\n', with any '\r') is
/// detected as soon as the limit is passed, without waiting for its newline, and the
/// splitter never holds more than max_line_bytes + 1 bytes. Once a line was too long the
/// splitter stays in that state: the connection cannot be resynchronised and must close.
///
/// Not thread-safe; one splitter per connection, used by its reading coroutine.
///
///     line_splitter splitter{1024};
///     std::string_view rest = "{\"type\":\"bye\"}\r\n{\"ty";
///     rest.remove_prefix(splitter.feed(rest));
///     auto next = splitter.next();  // next.what == status::line, next.line == {"type":"bye"}
///     next = splitter.next();       // status::need_more: "{\"ty" waits for the rest
class line_splitter {
 public:
  enum class status : std::uint8_t {
    line,       ///< `line` holds the next line, without "\n" or "\r\n"
    need_more,  ///< no complete line buffered: feed() or prepare()/commit() more bytes
    too_long,   ///< the current line exceeds max_line_bytes; final
  };

  struct next_result {
    status what = status::need_more;
    /// Valid until the next call to a non-const member function.
    std::string_view line;
  };

  /// `first_read_bytes`: the buffer's first size; it grows when free space falls below a
  /// quarter of that. A socket reads 4 KB to take several lines per system call.
  explicit line_splitter(std::size_t max_line_bytes = default_max_line_bytes,
                         std::size_t first_read_bytes = 4096);

  line_splitter(line_splitter&&) noexcept = default;
  line_splitter& operator=(line_splitter&&) noexcept = default;

  /// The next complete non-empty line, or why there is none.
  next_result next();

  /// Copies as many bytes as fit and returns how many it took; may take fewer than given
  /// when complete lines are still buffered. Call next() until need_more, then feed the rest.
  std::size_t feed(std::string_view bytes);

  /// Free space to read into directly, then commit() the bytes read. Call only after next()
  /// returned need_more. Never empty in that state; empty once too_long.
  std::span<char> prepare();
  void commit(std::size_t bytes);

  std::size_t max_line_bytes() const noexcept { return max_line_bytes_; }
  /// Changes the limit for every line not yet returned, e.g. to welcome.max_line_bytes once
  /// the handshake is done. Buffered bytes are kept; a lower limit applies to them too.
  void set_max_line_bytes(std::size_t max_line_bytes) noexcept;
  /// Bytes received and not yet returned as lines.
  std::size_t buffered_bytes() const noexcept { return end_ - begin_; }
  /// Bytes allocated for the buffer; never more than max_line_bytes() + 1 (unless the limit
  /// was lowered: then reads are capped to it instead).
  std::size_t capacity() const noexcept { return capacity_; }
  bool too_long() const noexcept { return too_long_; }

 private:
  void make_room();
  std::size_t room() const noexcept;

  std::size_t max_line_bytes_;
  std::size_t first_read_bytes_;
  std::unique_ptr<char[]> storage_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;  ///< start of the first unreturned byte
  std::size_t scan_ = 0;   ///< bytes before this offset hold no '\n' of the current line
  std::size_t end_ = 0;    ///< end of the received bytes
  bool too_long_ = false;
};

enum class read_status : std::uint8_t {
  line,           ///< read_outcome::line holds a line
  line_too_long,  ///< the peer sent a line over the limit; answer line_too_long and close
  stream_error,   ///< the read failed: read_outcome::error says why (eof: the peer closed)
};

/// The first buffer size of a connection's line_splitter, by stream type: a socket reads
/// 4 KB at a time; an in-memory pipe specialises it smaller (memory_stream.hpp), because a
/// read costs it no system call and a simulation holds thousands of them.
template <typename Stream>
inline constexpr std::size_t first_read_bytes = 4096;

/// What read_line produced.
struct read_outcome {
  read_status status = read_status::stream_error;
  /// The line, without its terminator; valid until the splitter is used again.
  std::string_view line;
  /// Set with stream_error: boost::asio::error::eof when the peer closed the connection
  /// (any partial line is still counted in the splitter's buffered_bytes()),
  /// operation_aborted when the read was cancelled, or the stream's own error.
  boost::system::error_code error;

  bool ok() const noexcept { return status == read_status::line; }
};

/// Do not call it again on a stream after it returned stream_error: with Asio 1.81 on Linux a
/// read after end-of-file can wait forever; close the stream instead.
///
/// Reads the next line from `stream` (anything with async_read_some: a tcp::socket, a
/// local socket, an in-memory pipe). Returns at once when the splitter already holds a
/// line, and never reads more than the splitter has room for. Waits as long as the peer
/// sends nothing, or half a line: the caller enforces timeouts, by cancelling the read
/// (the bytes received so far stay in the splitter, and a later read_line continues the
/// line) or by closing the stream.
///
/// `before_read()` is called each time the splitter holds no complete line and a read is about
/// to start: a reader that batches what it does per line (results it forwards, say) hands the
/// batch on there, so nothing waits for bytes that may be slow to come.
template <typename AsyncReadStream, typename BeforeRead>
boost::asio::awaitable<read_outcome> read_line(AsyncReadStream& stream, line_splitter& splitter,
                                               BeforeRead before_read) {
  for (;;) {
    const line_splitter::next_result next = splitter.next();
    if (next.what == line_splitter::status::line) {
      co_return read_outcome{read_status::line, next.line, {}};
    }
    if (next.what == line_splitter::status::too_long) {
      co_return read_outcome{read_status::line_too_long, {}, {}};
    }
    before_read();
    const std::span<char> room = splitter.prepare();
    auto [error, bytes] =
        co_await stream.async_read_some(boost::asio::buffer(room.data(), room.size()),
                                        boost::asio::as_tuple(boost::asio::use_awaitable));
    splitter.commit(bytes);
    if (error) co_return read_outcome{read_status::stream_error, {}, error};
  }
}

template <typename AsyncReadStream>
boost::asio::awaitable<read_outcome> read_line(AsyncReadStream& stream, line_splitter& splitter) {
  return read_line(stream, splitter, [] {});
}

/// Writes lines in the order they were sent, one write at a time, and sends every line
/// queued during a write together in the next one. send() may be called at any time; run()
/// does the writing and lives as long as the connection does.
///
///     line_writer writer{socket};
///     co_spawn(executor, writer.run(), [](std::exception_ptr, boost::system::error_code) {});
///     writer.send(encode(heartbeat_message{}));
///     ...
///     writer.send(encode(bye_message{"run finished"}));
///     writer.close();  // run() completes once the bye is written
///
/// Not thread-safe: call send(), close() and run() from the executor (or strand) that runs
/// run(). The stream and the writer must outlive run().
template <typename AsyncWriteStream>
class line_writer {
 public:
  explicit line_writer(AsyncWriteStream& stream) : stream_{stream}, wake_{stream.get_executor()} {}

  line_writer(const line_writer&) = delete;
  line_writer& operator=(const line_writer&) = delete;

  /// Queues a complete line (ending in '\n', as encode() makes them). Returns false, and
  /// drops the line, once close() was called or run() has stopped.
  bool send(std::string_view line) {
    if (closed_ || stopped_) return false;
    queued_.append(line);
    wake_.cancel();
    return true;
  }

  /// No more lines are accepted; run() completes after writing what is queued.
  void close() {
    closed_ = true;
    wake_.cancel();
  }

  /// Writes until close() and an empty queue (returns no error), a failed write (returns its
  /// error) or cancellation (returns operation_aborted). Queued lines are then dropped.
  boost::asio::awaitable<boost::system::error_code> run() {
    namespace asio = boost::asio;
    boost::system::error_code result;
    for (;;) {
      if (!queued_.empty()) {
        in_flight_.swap(queued_);
        queued_.clear();
        ++writes_;
        writing_ = true;
        auto [error, written] = co_await asio::async_write(stream_, asio::buffer(in_flight_),
                                                           asio::as_tuple(asio::use_awaitable));
        writing_ = false;
        (void)written;
        if (error) {
          result = error;
          break;
        }
        continue;
      }
      if (closed_) break;
      wake_.expires_at(run_timer::time_point::max());
      co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
      // send() and close() wake us by cancelling the timer; only a cancellation of run()
      // itself shows in the coroutine's cancellation state.
      const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
      if (state.cancelled() != asio::cancellation_type::none) {
        result = asio::error::operation_aborted;
        break;
      }
    }
    stopped_ = true;
    queued_.clear();
    co_return result;
  }

  /// Bytes sent but not yet handed to a write; callers may cap it to drop a slow peer.
  std::size_t queued_bytes() const noexcept { return queued_.size(); }
  /// A write is under way: queued bytes wait behind it. A peer that stops reading keeps a
  /// write under way for good while the queue grows.
  bool writing() const noexcept { return writing_; }
  /// Writes started so far; fewer than lines sent when lines were batched.
  std::uint64_t writes() const noexcept { return writes_; }

 private:
  AsyncWriteStream& stream_;
  run_timer wake_;         // a wake-up only: it never expires
  std::string queued_;     ///< lines sent since the current write started
  std::string in_flight_;  ///< the lines of the current write
  std::uint64_t writes_ = 0;
  bool writing_ = false;
  bool closed_ = false;
  bool stopped_ = false;
};

}  // namespace drover::coord
