#pragma once
// Any connected byte stream behind one type: a tcp::socket, a redis_stream (a pipe carried by
// Redis Streams), one end of a memory pipe. A worker_client speaks the protocol over whatever
// its dialer returns (worker_options::dial), so the same worker runs over TCP and over Redis.
//
//     drover::coord::byte_stream stream{std::move(socket)};
//     auto n = co_await stream.async_read_some(asio::buffer(buf), asio::use_awaitable);
//     stream.cancel();  // ends a pending read with operation_aborted; writes still go out
//     stream.close();   // the peer sees the end
//
// A wrapped stream needs get_executor(), async_read_some and async_write_some; cancel() uses
// its cancel(error_code&) or cancel() when it has one, and close() its shutdown(shutdown_both,
// error_code&) (sockets) and close(error_code&) or close().

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <memory>
#include <utility>

namespace drover::coord {

class byte_stream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using io_signature = void(boost::system::error_code, std::size_t);

  template <typename Stream>
  explicit byte_stream(Stream stream) : impl_(std::make_unique<model<Stream>>(std::move(stream))) {}
  byte_stream(byte_stream&&) noexcept = default;
  byte_stream& operator=(byte_stream&&) noexcept = default;

  executor_type get_executor() const noexcept { return impl_->executor(); }

  /// Reads into the first non-empty buffer of `buffers`.
  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    const auto first = first_of<boost::asio::mutable_buffer>(buffers);
    return boost::asio::async_initiate<Token, io_signature>(
        [impl = impl_.get(), first](boost::asio::any_completion_handler<io_signature> handler) {
          impl->read_some(first, std::move(handler));
        },
        token);
  }

  /// Writes from the first non-empty buffer of `buffers` (asio::async_write writes the rest).
  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    const auto first = first_of<boost::asio::const_buffer>(buffers);
    return boost::asio::async_initiate<Token, io_signature>(
        [impl = impl_.get(), first](boost::asio::any_completion_handler<io_signature> handler) {
          impl->write_some(first, std::move(handler));
        },
        token);
  }

  /// Ends a pending read (operation_aborted). What is written after it still goes out.
  void cancel() { impl_->cancel(); }
  /// Ends the stream both ways; the peer reads its end.
  void close() { impl_->close(); }

 private:
  template <typename Buffer, typename Buffers>
  static Buffer first_of(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      Buffer b(*it);
      if (b.size() != 0) return b;
    }
    return Buffer{};
  }

  struct concept_t {
    virtual ~concept_t() = default;
    virtual executor_type executor() noexcept = 0;
    virtual void read_some(boost::asio::mutable_buffer to,
                           boost::asio::any_completion_handler<io_signature> handler) = 0;
    virtual void write_some(boost::asio::const_buffer from,
                            boost::asio::any_completion_handler<io_signature> handler) = 0;
    virtual void cancel() = 0;
    virtual void close() = 0;
  };

  template <typename Stream>
  struct model final : concept_t {
    explicit model(Stream s) : stream(std::move(s)) {}
    executor_type executor() noexcept override { return stream.get_executor(); }
    void read_some(boost::asio::mutable_buffer to,
                   boost::asio::any_completion_handler<io_signature> handler) override {
      stream.async_read_some(to, std::move(handler));
    }
    void write_some(boost::asio::const_buffer from,
                    boost::asio::any_completion_handler<io_signature> handler) override {
      stream.async_write_some(from, std::move(handler));
    }
    void cancel() override {
      if constexpr (requires(boost::system::error_code & ec) { stream.cancel(ec); }) {
        boost::system::error_code ignored;
        stream.cancel(ignored);
      } else if constexpr (requires { stream.cancel(); }) {
        stream.cancel();
      }
    }
    void close() override {
      boost::system::error_code ignored;
      if constexpr (requires(boost::system::error_code & ec) {
                      stream.shutdown(boost::asio::socket_base::shutdown_both, ec);
                    }) {
        stream.shutdown(boost::asio::socket_base::shutdown_both, ignored);
      }
      if constexpr (requires(boost::system::error_code & ec) { stream.close(ec); }) {
        stream.close(ignored);
      } else {
        stream.close();
      }
    }
    Stream stream;
  };

  std::unique_ptr<concept_t> impl_;
};

}  // namespace drover::coord
