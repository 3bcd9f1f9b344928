#pragma once
// Where each value of a JSON text sits. Boost.JSON's DOM keeps no positions, so error messages
// about a pipeline file look them up here by JSON pointer.

#include <cstddef>
#include <memory>
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
/// Appends `name` escaped as one JSON pointer token to `out`.
void append_pointer_token(std::string& out, std::string_view name);

/// The offset of every value and object key in a JSON text that may contain comments and
/// trailing commas, looked up by JSON pointer (`/modules/0/retries`). Meant for text that
/// Boost.JSON has already accepted; on anything malformed it stops indexing, never throws.
///
/// Construction only looks for repeated keys. The positions are indexed on the first lookup:
/// a valid file, which asks for none, never pays for a map of every value.
class json_source_map {
 public:
  /// A key that appears more than once in the same object. Boost.JSON keeps the last one.
  struct duplicate_key {
    std::string pointer;  ///< pointer to the member
    std::size_t offset;   ///< where the repeated key starts
  };

  /// Scans `text`, which must outlive the map, for repeated keys.
  explicit json_source_map(std::string_view text);
  ~json_source_map();

  /// Start of the value at `pointer`, or of its nearest indexed ancestor.
  text_position value_position(std::string_view pointer) const;
  /// Start of the key that names the member at `pointer`; the value's position for array
  /// elements and the root.
  text_position key_position(std::string_view pointer) const;
  /// Every repeated key, in text order.
  const std::vector<duplicate_key>& duplicate_keys() const noexcept { return duplicates_; }
  /// Line and column of a byte offset.
  text_position position_at(std::size_t offset) const noexcept;

  /// Offsets by pointer, and what turns an offset into a line and column.
  struct index {
    std::unordered_map<std::string, std::size_t> values;
    std::unordered_map<std::string, std::size_t> keys;
    std::vector<std::size_t> line_starts;         // offset of the first byte of each line
    std::vector<std::size_t> continuation_bytes;  // offsets of UTF-8 continuation bytes
  };

 private:
  const index& positions() const;

  std::string_view text_;
  std::vector<duplicate_key> duplicates_;
  mutable std::unique_ptr<index> index_;  // built by the first lookup
};

}  // namespace drover::app
