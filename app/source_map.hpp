#pragma once
// Where each value of a JSON text sits. Boost.JSON's DOM keeps no positions, so error messages
// about a pipeline file look them up here by JSON pointer.

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace drover::app {

/// A 1-based line and column (counted in characters, not bytes) in a text.
struct text_position {
  std::size_t line = 0;  ///< 0 when the position is unknown
  std::size_t column = 0;
  friend bool operator==(const text_position&, const text_position&) = default;
};

/// `name` escaped as one JSON pointer token (`~` becomes `~0`, `/` becomes `~1`).
std::string pointer_token(std::string_view name);

/// The offset of every value and object key in a JSON text that may contain comments and
/// trailing commas, indexed by JSON pointer (`/modules/0/retries`). Meant for text that
/// Boost.JSON has already accepted; on anything malformed it stops indexing, never throws.
class json_source_map {
 public:
  /// A key that appears more than once in the same object. Boost.JSON keeps the last one.
  struct duplicate_key {
    std::string pointer;  ///< pointer to the member
    std::size_t offset;   ///< where the repeated key starts
  };

  /// Indexes `text`, which must outlive the map.
  explicit json_source_map(std::string_view text);

  /// Start of the value at `pointer`, or of its nearest indexed ancestor.
  text_position value_position(std::string_view pointer) const;
  /// Start of the key that names the member at `pointer`; the value's position for array
  /// elements and the root.
  text_position key_position(std::string_view pointer) const;
  /// Every repeated key, in text order.
  const std::vector<duplicate_key>& duplicate_keys() const noexcept { return duplicates_; }
  /// Line and column of a byte offset.
  text_position position_at(std::size_t offset) const noexcept;

 private:
  void skip_blanks();
  void index_value(const std::string& pointer);
  void index_object(const std::string& pointer);
  void index_array(const std::string& pointer);
  bool read_string(std::string& out);

  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t depth_ = 0;
  bool malformed_ = false;
  std::unordered_map<std::string, std::size_t> values_;
  std::unordered_map<std::string, std::size_t> keys_;
  std::vector<duplicate_key> duplicates_;
  std::vector<std::size_t> line_starts_;         // offset of the first byte of each line
  std::vector<std::size_t> continuation_bytes_;  // offsets of UTF-8 continuation bytes
};

}  // namespace drover::app
