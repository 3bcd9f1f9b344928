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

void append_pointer_token(std::string& out, std::string_view name) {
  for (char c : name) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
}

std::string pointer_token(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  append_pointer_token(out, name);
  return out;
}

namespace {

// One pass over the text. It always finds repeated keys; given an index, it also records
// where every value and key starts. `path_` is the current JSON pointer, grown and cut back as
// the walk descends, so that a value costs no string of its own unless it is recorded.
class json_walker {
 public:
  json_walker(std::string_view text, std::vector<json_source_map::duplicate_key>* duplicates,
              json_source_map::index* positions)
      : text_(text), duplicates_(duplicates), positions_(positions) {}

  void walk() {
    value();
    if (duplicates_ != nullptr) {
      std::stable_sort(duplicates_->begin(), duplicates_->end(),
                       [](const auto& a, const auto& b) { return a.offset < b.offset; });
    }
  }

 private:
  struct member_key {
    std::string name;
    std::size_t offset;
  };

  void skip_blanks();
  void value();
  void object();
  void array();
  bool read_string(std::string& out);
  void report_repeated(std::vector<member_key>& keys);

  std::string_view text_;
  std::vector<json_source_map::duplicate_key>* duplicates_;
  json_source_map::index* positions_;
  std::size_t pos_ = 0;
  std::size_t depth_ = 0;
  bool malformed_ = false;
  std::string path_;
  std::vector<std::vector<member_key>> keys_by_depth_;  // reused: no allocation per object
};

void json_walker::skip_blanks() {
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

void json_walker::value() {
  skip_blanks();
  if (pos_ >= text_.size() || malformed_) {
    malformed_ = true;
    return;
  }
  if (positions_ != nullptr) positions_->values.insert_or_assign(path_, pos_);
  switch (text_[pos_]) {
    case '{':
      object();
      return;
    case '[':
      array();
      return;
    case '"': {
      std::string ignored;
      if (!read_string(ignored)) malformed_ = true;
      return;
    }
    default: {
      // A number or a literal: runs until a delimiter. Nothing before the delimiter is no
      // value at all (`[}`, say): malformed, or the array or object around it would wait for
      // one forever.
      const std::size_t start = pos_;
      while (pos_ < text_.size()) {
        const char c = text_[pos_];
        if (c == ',' || c == ']' || c == '}' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
            c == '/') {
          break;
        }
        ++pos_;
      }
      if (pos_ == start) malformed_ = true;
    }
  }
}

void json_walker::object() {
  if (++depth_ > max_nesting) {
    malformed_ = true;
    return;
  }
  // By index, not by reference: a nested object may grow keys_by_depth_ and move its vectors.
  const std::size_t level = depth_ - 1;
  if (keys_by_depth_.size() <= level) keys_by_depth_.resize(level + 1);
  keys_by_depth_[level].clear();
  const std::size_t path_length = path_.size();
  ++pos_;
  for (;;) {
    skip_blanks();
    if (pos_ >= text_.size() || malformed_) break;
    if (text_[pos_] == '}') {
      ++pos_;
      report_repeated(keys_by_depth_[level]);
      --depth_;
      return;
    }
    const std::size_t key_offset = pos_;
    std::string key;
    if (text_[pos_] != '"' || !read_string(key)) break;
    path_ += '/';
    append_pointer_token(path_, key);
    // The DOM keeps the last value, so positions describe the last one too.
    if (positions_ != nullptr) positions_->keys.insert_or_assign(path_, key_offset);
    keys_by_depth_[level].push_back({std::move(key), key_offset});
    skip_blanks();
    if (pos_ >= text_.size() || text_[pos_] != ':') break;
    ++pos_;
    value();
    path_.resize(path_length);
    skip_blanks();
    if (pos_ < text_.size() && text_[pos_] == ',') ++pos_;
  }
  malformed_ = true;
}

// Every key of a finished object that an earlier key of the same object already named.
void json_walker::report_repeated(std::vector<member_key>& keys) {
  if (duplicates_ == nullptr || keys.size() < 2) return;
  std::stable_sort(keys.begin(), keys.end(),
                   [](const member_key& a, const member_key& b) { return a.name < b.name; });
  for (std::size_t k = 1; k < keys.size(); ++k) {
    if (keys[k].name == keys[k - 1].name) {
      duplicates_->push_back({path_ + '/' + pointer_token(keys[k].name), keys[k].offset});
    }
  }
}

void json_walker::array() {
  if (++depth_ > max_nesting) {
    malformed_ = true;
    return;
  }
  const std::size_t path_length = path_.size();
  ++pos_;
  for (std::size_t i = 0;; ++i) {
    skip_blanks();
    if (pos_ >= text_.size() || malformed_) break;
    if (text_[pos_] == ']') {
      ++pos_;
      --depth_;
      return;
    }
    path_ += '/';
    path_ += std::to_string(i);
    value();
    path_.resize(path_length);
    skip_blanks();
    if (pos_ < text_.size() && text_[pos_] == ',') ++pos_;
  }
  malformed_ = true;
}

bool json_walker::read_string(std::string& out) {
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

}  // namespace

json_source_map::json_source_map(std::string_view text) : text_(text) {
  json_walker(text_, &duplicates_, nullptr).walk();
}

json_source_map::~json_source_map() = default;

const json_source_map::index& json_source_map::positions() const {
  if (!index_) {
    auto built = std::make_unique<index>();
    built->line_starts.push_back(0);
    for (std::size_t i = 0; i < text_.size(); ++i) {
      if (text_[i] == '\n') built->line_starts.push_back(i + 1);
      if ((static_cast<unsigned char>(text_[i]) & 0xC0) == 0x80) {
        built->continuation_bytes.push_back(i);
      }
    }
    json_walker(text_, nullptr, built.get()).walk();
    index_ = std::move(built);
  }
  return *index_;
}

text_position json_source_map::value_position(std::string_view pointer) const {
  const auto& values = positions().values;
  for (;;) {
    if (auto it = values.find(std::string{pointer}); it != values.end()) {
      return position_at(it->second);
    }
    if (pointer.empty()) return {};
    pointer = parent_of(pointer);
  }
}

text_position json_source_map::key_position(std::string_view pointer) const {
  const auto& keys = positions().keys;
  if (auto it = keys.find(std::string{pointer}); it != keys.end()) return position_at(it->second);
  return value_position(pointer);
}

text_position json_source_map::position_at(std::size_t offset) const noexcept {
  const auto& [values, keys, line_starts, continuation_bytes] = positions();
  offset = std::min(offset, text_.size());
  const auto line = std::upper_bound(line_starts.begin(), line_starts.end(), offset) - 1;
  // Columns count characters: UTF-8 continuation bytes do not start one.
  // Captured by name: clang 14 cannot capture a structured binding.
  auto continuations_before = [&continuations = continuation_bytes](std::size_t at) {
    return static_cast<std::size_t>(
        std::lower_bound(continuations.begin(), continuations.end(), at) - continuations.begin());
  };
  const std::size_t bytes = offset - *line;
  const std::size_t continuations = continuations_before(offset) - continuations_before(*line);
  return {static_cast<std::size_t>(line - line_starts.begin()) + 1, bytes - continuations + 1};
}

}  // namespace drover::app
