#pragma once
// Resource-claim globs: validation, and the exact overlap test the dispatcher uses to decide
// whether two claims conflict. Pure functions; internal to the engine.
//
// A concrete resource path is one or more non-empty segments separated by '/'; a segment may
// hold any byte but '/'. A glob is one or more non-empty segments separated by '/', where
//   - a segment that is exactly `**` matches zero or more whole segments: `artifacts/**`
//     matches `artifacts`, `artifacts/x` and `artifacts/x/y/z`; `a/**/z` matches `a/z`;
//     `**` alone matches every path;
//   - in any other segment, `*` matches any run of bytes within the segment (possibly none),
//     `?` exactly one byte, `[abc]` / `[a-z]` one byte of the class and `[!abc]` (or `[^abc]`)
//     one byte outside it; everything else matches itself. None of them ever matches '/', so
//     `db/*` matches `db/users` but neither `db` nor `db/a/b`.
// Inside a class, `*`, `?` and `[` stand for themselves, `-` between two bytes is a range of
// unsigned byte values and `-` first or last stands for itself; the first `]` closes the class,
// so `]` cannot be a member. Matching is by bytes: `?` matches one byte of a UTF-8 sequence.
// Reserved or meaningless, and rejected: backslashes (kept for a future escape syntax) and
// control characters (below 0x20). Wildcards and negated classes still match control bytes in
// a path, since a segment may hold any byte but '/'.

#include <optional>
#include <string>
#include <string_view>

namespace drover::detail {

/// What is wrong with `glob`, as one sentence that quotes it and gives the 0-based byte offset
/// of the problem, e.g. "resource glob 'db//users' has an empty segment at offset 3 (two '/'
/// in a row)"; nothing if `glob` is valid. Control bytes are shown as \xNN in the quote.
std::optional<std::string> resource_glob_problem(std::string_view glob);

/// Whether some concrete path is matched by both globs, so that claims on them conflict when
/// either writes. Exact, symmetric, and true for a glob and itself:
///     resource_globs_overlap("db/*", "*/users")       // true: db/users
///     resource_globs_overlap("a/*", "b/*")            // false
///     resource_globs_overlap("artifacts/**", "artifacts")  // true: `**` may be no segment
/// Precondition: both globs are valid (resource_glob_problem returned nothing). An invalid
/// glob gives an unspecified answer but is never read out of bounds.
/// Cost: a string comparison when neither glob has a wildcard; otherwise a dynamic programme
/// over the two globs, O(|a| * |b|) time, allocating nothing unless a glob has more than 32
/// segments or a segment more than 64 bytes.
bool resource_globs_overlap(std::string_view a, std::string_view b);

/// True when `glob` has no wildcard (`*`, `?`, `[`): it names exactly one resource, and two
/// such globs overlap exactly when they are equal.
bool resource_glob_is_literal(std::string_view glob) noexcept;

/// Whether the valid glob `glob` matches the concrete path `path`. False when `path` is not a
/// concrete path (empty, or with an empty segment such as "a//b" or "a/").
///     resource_glob_matches("artifacts/**", "artifacts/x/y")  // true
bool resource_glob_matches(std::string_view glob, std::string_view path);

}  // namespace drover::detail
