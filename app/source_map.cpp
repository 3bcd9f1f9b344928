#include "source_map.hpp"

#include <algorithm>
#include <cstdint>

namespace drover::app {

namespace {

// Far deeper than any pipeline file; bounds the recursion on hostile input.
constexpr std::size_t max_nesting = 256;

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool parse_hex4(std::string_view s, std::uint32_t& out) {
  if (s.size() < 4) return false;
  out = 0;
  for (char c : s.substr(0, 4)) {
    out <<= 4;
    if (c >= '0' && c <= '9') {
      out |= static_cast<std::uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      out |= static_cast<std::uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      out |= static_cast<std::uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
  }
  return true;
}

// The pointer of the object or array that holds the member at `pointer`.
std::string_view parent_of(std::string_view pointer) {
  auto slash = pointer.rfind('/');
  return slash == std::string_view::npos ? std::string_view{} : pointer.substr(0, slash);
}

}  // namespace

std::string pointer_token(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

json_source_map::json_source_map(std::string_view text) : text_(text) {
  line_starts_.push_back(0);
  for (std::size_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
    if ((static_cast<unsigned char>(text_[i]) & 0xC0) == 0x80) continuation_bytes_.push_back(i);
  }
  index_value("");
}

text_position json_source_map::value_position(std::string_view pointer) const {
  for (;;) {
    if (auto it = values_.find(std::string{pointer}); it != values_.end()) {
      return position_at(it->second);
    }
    if (pointer.empty()) return {};
    pointer = parent_of(pointer);
  }
}

text_position json_source_map::key_position(std::string_view pointer) const {
  if (auto it = keys_.find(std::string{pointer}); it != keys_.end()) return position_at(it->second);
  return value_position(pointer);
}

text_position json_source_map::position_at(std::size_t offset) const noexcept {
  offset = std::min(offset, text_.size());
  const auto line = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - 1;
  // Columns count characters: UTF-8 continuation bytes do not start one.
  auto continuations_before = [&](std::size_t at) {
    return static_cast<std::size_t>(
        std::lower_bound(continuation_bytes_.begin(), continuation_bytes_.end(), at) -
        continuation_bytes_.begin());
  };
  const std::size_t bytes = offset - *line;
  const std::size_t continuations = continuations_before(offset) - continuations_before(*line);
  return {static_cast<std::size_t>(line - line_starts_.begin()) + 1, bytes - continuations + 1};
}

void json_source_map::skip_blanks() {
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++pos_;
    } else if (text_.substr(pos_, 2) == "//") {
      const auto end = text_.find('\n', pos_);
      pos_ = end == std::string_view::npos ? text_.size() : end + 1;
    } else if (text_.substr(pos_, 2) == "/*") {
      const auto end = text_.find("*/", pos_ + 2);
      pos_ = end == std::string_view::npos ? text_.size() : end + 2;
    } else {
      return;
    }
  }
}

void json_source_map::index_value(const std::string& pointer) {
  skip_blanks();
  if (pos_ >= text_.size() || malformed_) {
    malformed_ = true;
    return;
  }
  values_.insert_or_assign(pointer, pos_);
  switch (text_[pos_]) {
    case '{':
      index_object(pointer);
      return;
    case '[':
      index_array(pointer);
      return;
    case '"': {
      std::string ignored;
      if (!read_string(ignored)) malformed_ = true;
      return;
    }
    default:
      // A number or a literal: runs until a delimiter.
      while (pos_ < text_.size()) {
        const char c = text_[pos_];
        if (c == ',' || c == ']' || c == '}' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
            c == '/') {
          break;
        }
        ++pos_;
      }
  }
}

void json_source_map::index_object(const std::string& pointer) {
  if (++depth_ > max_nesting) {
    malformed_ = true;
    return;
  }
  ++pos_;
  for (;;) {
    skip_blanks();
    if (pos_ >= text_.size() || malformed_) break;
    if (text_[pos_] == '}') {
      ++pos_;
      --depth_;
      return;
    }
    const std::size_t key_offset = pos_;
    std::string key;
    if (text_[pos_] != '"' || !read_string(key)) break;
    std::string member = pointer + '/' + pointer_token(key);
    if (!keys_.emplace(member, key_offset).second) {
      duplicates_.push_back({member, key_offset});
      // The DOM keeps the last value, so positions must describe the last one too.
      keys_[member] = key_offset;
    }
    skip_blanks();
    if (pos_ >= text_.size() || text_[pos_] != ':') break;
    ++pos_;
    index_value(member);
    skip_blanks();
    if (pos_ < text_.size() && text_[pos_] == ',') ++pos_;
  }
  malformed_ = true;
}

void json_source_map::index_array(const std::string& pointer) {
  if (++depth_ > max_nesting) {
    malformed_ = true;
    return;
  }
  ++pos_;
  for (std::size_t i = 0;; ++i) {
    skip_blanks();
    if (pos_ >= text_.size() || malformed_) break;
    if (text_[pos_] == ']') {
      ++pos_;
      --depth_;
      return;
    }
    index_value(pointer + '/' + std::to_string(i));
    skip_blanks();
    if (pos_ < text_.size() && text_[pos_] == ',') ++pos_;
  }
  malformed_ = true;
}

bool json_source_map::read_string(std::string& out) {
  ++pos_;  // opening quote
  while (pos_ < text_.size()) {
    const char c = text_[pos_++];
    if (c == '"') return true;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (pos_ >= text_.size()) return false;
    const char e = text_[pos_++];
    switch (e) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        std::uint32_t cp = 0;
        if (!parse_hex4(text_.substr(pos_), cp)) return false;
        pos_ += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && text_.substr(pos_, 2) == "\\u") {
          std::uint32_t low = 0;
          if (parse_hex4(text_.substr(pos_ + 2), low) && low >= 0xDC00 && low < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            pos_ += 6;
          }
        }
        append_utf8(out, cp);
        break;
      }
      default:
        out += e;
    }
  }
  return false;
}

}  // namespace drover::app
