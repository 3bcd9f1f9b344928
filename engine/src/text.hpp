#pragma once
// Small text helpers for the engine's messages.

#include <string>
#include <string_view>

namespace drover::detail {

/// `s` in single quotes, as messages name ids: 'build'.
inline std::string in_quotes(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '\'';
  out += s;
  out += '\'';
  return out;
}

}  // namespace drover::detail
