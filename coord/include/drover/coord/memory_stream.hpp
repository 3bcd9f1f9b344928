#pragma once
// An in-process byte pipe with the Asio stream interface, for simulating thousands of remote
// workers in one process: the master and the simulated workers speak the real protocol,
// encoded and framed, over pairs of memory_streams instead of sockets.
//
//     auto [master_end, worker_end] = drover::coord::make_memory_pipe(io.get_executor());
//     // master_end and worker_end each have async_read_some / async_write_some / close
//
// Writes never block (the pipe buffers without limit); a read waits for bytes or for the
// other end to close (then boost::asio::error::eof once the buffer is drained). Thread-safe:
// each end may be used from its own strand.

#include <drover/coord/framing.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace drover::coord {

namespace detail {

// Bytes flowing one way, and the read waiting for them.
class memory_channel {
 public:
  using read_handler =
      boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;

  void write(const char* data, std::size_t size) {
    std::unique_lock lock(mutex_);
    if (closed_) return;
    bytes_.append(data, size);
    complete_waiting(lock);
  }

  void close() {
    std::unique_lock lock(mutex_);
    closed_ = true;
    complete_waiting(lock);
  }

  bool closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }

  void read(boost::asio::mutable_buffer into, boost::asio::any_io_executor executor,
            read_handler handler) {
    std::unique_lock lock(mutex_);
    if (waiting_) {
      // One read at a time, as with a socket.
      lock.unlock();
      finish(std::move(handler), executor, boost::asio::error::in_progress, 0);
      return;
    }
    waiting_.emplace(pending{into, std::move(executor), std::move(handler)});
    complete_waiting(lock);
  }

 private:
  struct pending {
    boost::asio::mutable_buffer into;
    boost::asio::any_io_executor executor;
    read_handler handler;
  };

  // Completes through the handler's associated executor (a strand, a coroutine's executor),
  // never inline in the writer's call.
  static void finish(read_handler handler, const boost::asio::any_io_executor& io,
                     boost::system::error_code ec, std::size_t bytes) {
    boost::asio::post(io, boost::asio::append(std::move(handler), ec, bytes));
  }

  void complete_waiting(std::unique_lock<std::mutex>& lock) {
    if (!waiting_ || (bytes_.size() == read_from_ && !closed_)) return;
    pending p = std::move(*waiting_);
    waiting_.reset();
    const std::size_t copied = std::min(p.into.size(), bytes_.size() - read_from_);
    if (copied > 0) std::memcpy(p.into.data(), bytes_.data() + read_from_, copied);
    read_from_ += copied;
    if (read_from_ == bytes_.size()) {
      bytes_.clear();  // keeps the capacity for the next lines
      read_from_ = 0;
    } else if (read_from_ >= bytes_.size() / 2) {
      bytes_.erase(0, read_from_);  // a slow reader: do not let read bytes pile up
      read_from_ = 0;
    }
    lock.unlock();
    const boost::system::error_code ec = copied == 0
                                             ? boost::system::error_code{boost::asio::error::eof}
                                             : boost::system::error_code{};
    finish(std::move(p.handler), p.executor, ec, copied);
  }

  mutable std::mutex mutex_;
  std::string bytes_;  // written; the unread ones start at read_from_
  std::size_t read_from_ = 0;
  std::optional<pending> waiting_;
  bool closed_ = false;
};

}  // namespace detail

/// One end of an in-memory pipe.
class memory_stream {
 public:
  using executor_type = boost::asio::any_io_executor;

  memory_stream(executor_type executor, std::shared_ptr<detail::memory_channel> in,
                std::shared_ptr<detail::memory_channel> out)
      : executor_(std::move(executor)), in_(std::move(in)), out_(std::move(out)) {}

  executor_type get_executor() const noexcept { return executor_; }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, boost::asio::mutable_buffer into) {
          in_->read(into, executor_, std::move(handler));
        },
        token, boost::asio::buffer(*boost::asio::buffer_sequence_begin(buffers)));
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& data) {
          std::size_t written = 0;
          boost::system::error_code ec;
          if (out_->closed() || closed_) {
            ec = boost::asio::error::broken_pipe;
          } else {
            for (auto it = boost::asio::buffer_sequence_begin(data);
                 it != boost::asio::buffer_sequence_end(data); ++it) {
              boost::asio::const_buffer b = *it;
              out_->write(static_cast<const char*>(b.data()), b.size());
              written += b.size();
            }
          }
          boost::asio::post(executor_, boost::asio::append(std::move(handler), ec, written));
        },
        token, buffers);
  }

  /// Closes both directions: the other end reads eof, writes here fail.
  void close() {
    closed_ = true;
    in_->close();
    out_->close();
  }
  bool is_open() const noexcept { return !closed_; }

 private:
  executor_type executor_;
  std::shared_ptr<detail::memory_channel> in_, out_;
  bool closed_ = false;
};

/// Two connected ends: what one writes, the other reads.
/// A pipe's read costs no system call: small buffers keep 10,000 simulated workers small.
template <>
inline constexpr std::size_t first_read_bytes<memory_stream> = 512;

inline std::pair<memory_stream, memory_stream> make_memory_pipe(
    const boost::asio::any_io_executor& executor) {
  auto a_to_b = std::make_shared<detail::memory_channel>();
  auto b_to_a = std::make_shared<detail::memory_channel>();
  return {memory_stream{executor, b_to_a, a_to_b}, memory_stream{executor, a_to_b, b_to_a}};
}

}  // namespace drover::coord
