#pragma once
// The syntax of one `${{ ... }}` expression (interpolation.hpp): where it ends in a string, and
// what the text between the braces means.

#include <drover/modules/interpolation.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace drover::modules::detail {

inline constexpr std::string_view open_braces = "${{";
inline constexpr std::string_view escaped_open_braces = "$${{";

/// What is wrong with an expression's text.
struct syntax_error {
  std::string detail;
};

/// Letters, digits, '_' and '-': what a dotted name (deps.<id>, .key, matrix.<axis>) is made of.
bool is_name_char(char c);

/// Where the `}}` that closes the expression starting at `open` (at "${{") is in `s`, skipping
/// quoted keys; npos when nothing closes it.
std::size_t closing_braces(std::string_view s, std::size_t open);

/// The expression whose text between the braces is `inner` (its `text` is left empty). Throws
/// syntax_error.
expression parse_expression(std::string_view inner);

}  // namespace drover::modules::detail
