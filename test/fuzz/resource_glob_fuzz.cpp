// Fuzz target: the resource-claim glob checker and overlap matcher (engine/src/resource_glob.hpp).
// The input is up to three lines: glob a, glob b and a concrete path. Beyond not crashing, the
// answers must be consistent: overlap is symmetric and reflexive, literal globs overlap exactly
// when equal, and a path both globs match proves that they overlap.

#include "fuzz_target.hpp"

#include "resource_glob.hpp"

#include <string_view>

namespace detail = drover::detail;

namespace {

std::string_view take_line(std::string_view& rest) {
  const auto newline = rest.find('\n');
  const auto line = rest.substr(0, newline);
  rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
  return line;
}

}  // namespace

DROVER_FUZZ_TARGET(resource_glob) {
  std::string_view rest = drover::fuzz::as_text(data, size);
  const auto a = take_line(rest);
  const auto b = take_line(rest);
  const auto path = take_line(rest);

  const bool a_valid = !detail::resource_glob_problem(a).has_value();
  const bool b_valid = !detail::resource_glob_problem(b).has_value();
  // Out of contract, but must not read out of bounds (the header's promise).
  (void)detail::resource_globs_overlap(a, b);
  (void)detail::resource_glob_matches(a, path);
  if (!a_valid || !b_valid) return 0;

  const bool overlap = detail::resource_globs_overlap(a, b);
  drover::fuzz::check(overlap == detail::resource_globs_overlap(b, a), "overlap is symmetric");
  drover::fuzz::check(detail::resource_globs_overlap(a, a), "a glob overlaps itself");
  if (detail::resource_glob_is_literal(a) && detail::resource_glob_is_literal(b)) {
    drover::fuzz::check(overlap == (a == b), "literal globs overlap exactly when equal");
    drover::fuzz::check(detail::resource_glob_matches(a, a), "a literal glob matches itself");
  }
  if (detail::resource_glob_matches(a, path) && detail::resource_glob_matches(b, path))
    drover::fuzz::check(overlap, "a path both globs match means they overlap");
  return 0;
}
