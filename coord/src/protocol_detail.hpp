#pragma once
// What the protocol codec's three files share (protocol.cpp decodes, protocol_encode.cpp
// encodes, protocol_plain.cpp is the decoder's fast path for plain assigns and results).
// Internal to coord.

#include <drover/coord/protocol.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace drover::coord::detail {

/// The statuses a result may report for an attempt.
inline bool is_attempt_outcome(module_status s) noexcept {
  return s == module_status::succeeded || s == module_status::failed ||
         s == module_status::timed_out || s == module_status::cancelled;
}

/// Offset of the first byte of `s` that does not start a valid UTF-8 sequence, or npos.
std::size_t first_invalid_utf8(std::string_view s) noexcept;

/// `serialized` with every byte from `first_bad` on that does not start a valid UTF-8 sequence
/// replaced by the escape \ufffd. Only for serialized JSON, where every byte >= 0x80 is inside
/// a string.
std::string repair_serialized_utf8(std::string_view serialized, std::size_t first_bad);

/// The message when `line` is a plain assign or result (protocol_plain.cpp explains "plain"),
/// else nullopt: the full decoder then reads it.
std::optional<message> decode_plain(std::string_view line, std::size_t max_depth);

}  // namespace drover::coord::detail
