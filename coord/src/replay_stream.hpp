#pragma once
// A connected stream whose first reads return bytes already read from it. The service reads a
// worker's hello to see its capabilities before it picks the run's master that gets the
// connection; that master's session then reads the hello again from here.

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <string>
#include <utility>

namespace drover::coord::service_detail {

template <typename Inner>
class replay_stream {
 public:
  using executor_type = typename Inner::executor_type;

  replay_stream(Inner inner, std::string already_read)
      : inner_(std::move(inner)), replay_(std::move(already_read)) {}

  executor_type get_executor() { return inner_.get_executor(); }

  template <typename Buffers, typename Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) {
          if (offset_ >= replay_.size()) return inner_.async_read_some(b, std::move(handler));
          const std::size_t n = boost::asio::buffer_copy(b, boost::asio::buffer(replay_) + offset_);
          offset_ += n;
          if (offset_ >= replay_.size()) std::string().swap(replay_), offset_ = 0;
          boost::asio::post(inner_.get_executor(), [handler = std::move(handler), n]() mutable {
            std::move(handler)(boost::system::error_code{}, n);
          });
        },
        token, buffers);
  }

  template <typename Buffers, typename Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return inner_.async_write_some(buffers, std::forward<Token>(token));
  }

  void shutdown(boost::asio::socket_base::shutdown_type what, boost::system::error_code& ec) {
    inner_.shutdown(what, ec);
  }
  void close(boost::system::error_code& ec) { inner_.close(ec); }

 private:
  Inner inner_;
  std::string replay_;
  std::size_t offset_ = 0;
};

}  // namespace drover::coord::service_detail
