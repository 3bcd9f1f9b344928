#include <drover/coord/framing.hpp>

#include <algorithm>
#include <cstring>
#include <limits>

namespace drover::coord {
namespace {

// The free space, as a share of the first allocation, below which the buffer grows (while
// under its limit) rather than issue a small read. Lines of a few hundred bytes never grow a
// 4 KB buffer.
constexpr std::size_t min_free_share = 4;

std::size_t buffer_limit(std::size_t max_line_bytes) noexcept {
  return max_line_bytes == std::numeric_limits<std::size_t>::max() ? max_line_bytes
                                                                   : max_line_bytes + 1;
}

}  // namespace

line_splitter::line_splitter(std::size_t max_line_bytes, std::size_t first_read_bytes)
    : max_line_bytes_{max_line_bytes},
      first_read_bytes_{std::max<std::size_t>(first_read_bytes, 64)} {}

line_splitter::next_result line_splitter::next() {
  while (!too_long_) {
    const char* base = storage_.get();
    const void* newline = end_ > scan_ ? std::memchr(base + scan_, '\n', end_ - scan_) : nullptr;
    if (newline == nullptr) {
      scan_ = end_;
      // The buffer holds at most max + 1 bytes, so this fires as soon as a line has one byte
      // more than allowed, long before its newline would arrive.
      if (end_ - begin_ > max_line_bytes_) break;
      return {status::need_more, {}};
    }
    const std::size_t newline_at = static_cast<const char*>(newline) - base;
    std::string_view line{base + begin_, newline_at - begin_};
    if (line.size() > max_line_bytes_) break;
    begin_ = scan_ = newline_at + 1;
    if (begin_ == end_) begin_ = scan_ = end_ = 0;  // nothing left: the next read starts at 0
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) return {status::line, line};
  }
  too_long_ = true;
  return {status::too_long, {}};
}

void line_splitter::make_room() {
  if (begin_ > 0) {
    std::memmove(storage_.get(), storage_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    scan_ -= begin_;
    begin_ = 0;
  }
  const std::size_t limit = buffer_limit(max_line_bytes_);
  const std::size_t min_free_bytes = first_read_bytes_ / min_free_share;
  if (capacity_ - end_ >= min_free_bytes || capacity_ >= limit) return;
  // Grow geometrically up to the limit, so that a connection of short lines keeps a small
  // buffer and only a long line costs max_line_bytes + 1.
  const std::size_t wanted = std::max({capacity_ * 2, end_ + min_free_bytes, first_read_bytes_});
  const std::size_t new_capacity = std::min(wanted, limit);
  auto bigger = std::make_unique_for_overwrite<char[]>(new_capacity);
  if (end_ > 0) std::memcpy(bigger.get(), storage_.get(), end_);
  storage_ = std::move(bigger);
  capacity_ = new_capacity;
}

void line_splitter::set_max_line_bytes(std::size_t max_line_bytes) noexcept {
  max_line_bytes_ = max_line_bytes;
}

std::size_t line_splitter::room() const noexcept {
  // After a lowered limit the buffer may be larger than limit + 1; reading only up to the
  // limit keeps the promise of never holding more than max_line_bytes + 1 bytes.
  const std::size_t usable = std::min(capacity_, buffer_limit(max_line_bytes_));
  return usable > end_ ? usable - end_ : 0;
}

std::span<char> line_splitter::prepare() {
  if (too_long_) return {};
  make_room();
  return {storage_.get() + end_, room()};
}

void line_splitter::commit(std::size_t bytes) {
  end_ += std::min(bytes, room());
}

std::size_t line_splitter::feed(std::string_view bytes) {
  if (too_long_ || bytes.empty()) return 0;
  make_room();
  const std::size_t taken = std::min(bytes.size(), room());
  if (taken > 0) std::memcpy(storage_.get() + end_, bytes.data(), taken);
  end_ += taken;
  return taken;
}

}  // namespace drover::coord
