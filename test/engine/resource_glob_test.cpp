#include "../../engine/src/resource_glob.hpp"

#define BOOST_TEST_MODULE resource_glob
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

// Counts heap allocations, so a test can assert that the overlap test allocates nothing. Never
// inlined: g++ would otherwise see memory from the standard operator new reach free() and warn
// (-Wmismatched-new-delete) in optimised builds.
namespace {
std::atomic<std::size_t> allocation_count{0};
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t size) {
  allocation_count.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using drover::detail::resource_glob_matches;
using drover::detail::resource_glob_problem;
using drover::detail::resource_globs_overlap;

bool overlap(std::string_view a, std::string_view b) {
  BOOST_TEST_REQUIRE(!resource_glob_problem(a), a);
  BOOST_TEST_REQUIRE(!resource_glob_problem(b), b);
  const bool forward = resource_globs_overlap(a, b);
  BOOST_TEST(forward == resource_globs_overlap(b, a),
             "overlap is not symmetric for '" << a << "' and '" << b << "'");
  return forward;
}

std::string problem(std::string_view glob) {
  return resource_glob_problem(glob).value_or("");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(resource_glob)

BOOST_AUTO_TEST_CASE(the_examples_of_the_claims_documentation) {
  BOOST_TEST(overlap("db/*", "db/users"));
  BOOST_TEST(overlap("db/*", "*/users"));
  BOOST_TEST(!overlap("a/*", "b/*"));
  BOOST_TEST(overlap("artifacts/**", "artifacts/x/y/z"));
  BOOST_TEST(overlap("artifacts/**", "artifacts"));
  BOOST_TEST(!overlap("db/*", "db"));
  BOOST_TEST(!overlap("db/*", "db/a/b"));
}

BOOST_AUTO_TEST_CASE(literals_overlap_only_when_equal) {
  BOOST_TEST(overlap("db/users", "db/users"));
  BOOST_TEST(!overlap("db/users", "db/user"));
  BOOST_TEST(!overlap("db/users", "db/users/x"));
  BOOST_TEST(!overlap("db", "cache"));
  BOOST_TEST(overlap("a]b!", "a]b!"));
  BOOST_TEST(!overlap("a]b!", "a]b"));
}

BOOST_AUTO_TEST_CASE(a_double_star_matches_zero_or_more_whole_segments) {
  BOOST_TEST(overlap("a/**/z", "a/b/c/z"));
  BOOST_TEST(overlap("a/**/z", "a/z"));
  BOOST_TEST(overlap("a/**/z", "a/b/z"));
  BOOST_TEST(!overlap("a/**/z", "a/b/c"));
  BOOST_TEST(!overlap("a/**/z", "a/zz"));
  BOOST_TEST(!overlap("a/**/z", "z"));
  BOOST_TEST(overlap("**", "x"));
  BOOST_TEST(overlap("**", "x/y/z"));
  BOOST_TEST(overlap("**/z", "z"));
  BOOST_TEST(overlap("a/**/**/b", "a/b"));
  BOOST_TEST(overlap("**/a/**", "**/b/**"));  // a/b
  BOOST_TEST(!overlap("a/**", "b/**"));
  BOOST_TEST(!overlap("a/**/b", "a/**/c"));
  BOOST_TEST(overlap("a/**/b", "**/c/**"));  // a/c/b
  BOOST_TEST(overlap("a/**", "*"));          // a
  BOOST_TEST(!overlap("a/**", "b"));
  BOOST_TEST(overlap("a/**/b", "*/*/*/*"));  // a/x/y/b
  BOOST_TEST(!overlap("a/*/*/b", "**/c/**/d"));
  BOOST_TEST(overlap("x/**/y/**/z", "**/y/y/**"));  // x/y/y/z

  BOOST_TEST(resource_glob_matches("artifacts/**", "artifacts"));
  BOOST_TEST(resource_glob_matches("artifacts/**", "artifacts/x/y/z"));
  BOOST_TEST(!resource_glob_matches("artifacts/**", "artifactsx"));
  BOOST_TEST(resource_glob_matches("a/**/z", "a/z"));
  BOOST_TEST(resource_glob_matches("**/z", "z"));
  BOOST_TEST(!resource_glob_matches("**/z", "az"));
}

BOOST_AUTO_TEST_CASE(a_star_stays_within_one_segment) {
  BOOST_TEST(!overlap("a*", "a/b"));
  BOOST_TEST(!overlap("*", "a/b"));
  BOOST_TEST(overlap("*/*", "a/b"));
  BOOST_TEST(!resource_glob_matches("a*c", "ab/c"));
  BOOST_TEST(!resource_glob_matches("a?c", "a/c"));
  BOOST_TEST(!resource_glob_matches("a[!b]c", "a/c"));
  BOOST_TEST(resource_glob_matches("a[!b]c", "axc"));
}

BOOST_AUTO_TEST_CASE(stars_on_both_sides) {
  BOOST_TEST(overlap("a*b", "*c*"));  // acb
  BOOST_TEST(overlap("a*", "*b"));    // ab
  BOOST_TEST(!overlap("a*", "b*"));
  BOOST_TEST(overlap("a*", "*a"));    // a
  BOOST_TEST(overlap("ab*", "*ba"));  // aba
  BOOST_TEST(!overlap("a*a", "a"));
  BOOST_TEST(overlap("a*a", "aa"));
  BOOST_TEST(overlap("*a*b*", "*b*a*"));  // aba
  BOOST_TEST(!overlap("*a", "*b"));
  BOOST_TEST(!overlap("a*b", "b*a"));
  BOOST_TEST(overlap("x*/y", "x/*"));  // x/y
  BOOST_TEST(overlap("*", "*"));
  BOOST_TEST(overlap("db/*", "db/*s"));
}

BOOST_AUTO_TEST_CASE(question_marks_match_exactly_one_byte) {
  BOOST_TEST(!overlap("?", "ab"));
  BOOST_TEST(overlap("??", "ab"));
  BOOST_TEST(!overlap("???", "ab"));
  BOOST_TEST(overlap("?*", "a"));
  BOOST_TEST(!overlap("??*", "a"));
  BOOST_TEST(overlap("a?", "?b"));
  BOOST_TEST(!overlap("a?", "b?"));
  BOOST_TEST(overlap("a*", "?"));
  BOOST_TEST(!overlap("??", "*???*"));
  // Bytes, not UTF-8 characters: "é" is two bytes.
  BOOST_TEST(resource_glob_matches("caf??", "caf\xc3\xa9"));
  BOOST_TEST(!resource_glob_matches("caf?", "caf\xc3\xa9"));
}

BOOST_AUTO_TEST_CASE(character_classes) {
  BOOST_TEST(overlap("[abc]", "b"));
  BOOST_TEST(!overlap("[abc]", "d"));
  BOOST_TEST(overlap("[a-c]x", "bx"));
  BOOST_TEST(!overlap("[a-c]x", "dx"));
  BOOST_TEST(!overlap("[!a]", "a"));
  BOOST_TEST(overlap("[!a]", "b"));
  BOOST_TEST(!overlap("[!abc]", "[abc]"));
  BOOST_TEST(overlap("[!a]", "[!b]"));
  BOOST_TEST(!overlap("[a-m]", "[n-z]"));
  BOOST_TEST(overlap("[a-m]", "[m-z]"));
  BOOST_TEST(overlap("[!a-y]", "[x-z]"));  // z
  BOOST_TEST(!overlap("[!a-z]", "[a-z]"));
  BOOST_TEST(!overlap("[!a-z]", "[b-y]"));
  BOOST_TEST(overlap("[!a-z]", "?"));
  BOOST_TEST(overlap("[^ab]", "c"));
  BOOST_TEST(!overlap("[^ab]", "[ab]"));
  BOOST_TEST(!overlap("[^ab]", "b"));
  BOOST_TEST(overlap("[a-cx-z]", "y"));
  BOOST_TEST(!overlap("[a-cx-z]", "m"));
  BOOST_TEST(overlap("v[0-9]*", "v1.2"));
  BOOST_TEST(!overlap("v[0-9]*", "vx"));
  // Inside a class, '*', '?' and '[' stand for themselves; a '-' first or last too.
  BOOST_TEST(!overlap("[*?]", "a"));
  BOOST_TEST(overlap("[*]", "[?*]"));
  BOOST_TEST(resource_glob_matches("[*?[]", "["));
  BOOST_TEST(resource_glob_matches("[-a]", "-"));
  BOOST_TEST(resource_glob_matches("[a-]", "-"));
  BOOST_TEST(!resource_glob_matches("[a-c]", "-"));
  BOOST_TEST(overlap("x[!*]", "x?"));
  BOOST_TEST(!overlap("x[!*]", "x[*]"));
  BOOST_TEST(resource_glob_matches("x[!*]", "xy"));
  BOOST_TEST(!resource_glob_matches("x[!*]", "x*"));
}

// A segment may hold any byte but '/', and a glob cannot name control bytes; so two negated
// classes that together exclude every byte a glob can name still share the control bytes.
BOOST_AUTO_TEST_CASE(negated_classes_are_compared_over_every_byte) {
  const std::string below_slash = "[! -.]";     // excludes 0x20..0x2e
  const std::string from_zero = "[!0-\xff]";    // excludes 0x30..0xff
  BOOST_TEST(overlap(below_slash, from_zero));  // 0x00..0x1f remain in both
  BOOST_TEST(resource_glob_matches(below_slash, "\x01"));
  BOOST_TEST(resource_glob_matches(from_zero, "\x01"));
  BOOST_TEST(!overlap(below_slash, "[ -.]"));
  BOOST_TEST(!overlap(from_zero, "[0-\xff]"));
  BOOST_TEST(!overlap("[! -.0-\xff]", "[ -~]"));
  BOOST_TEST(overlap("[! -.0-\xff]", "?"));
  BOOST_TEST(overlap("[\x80-\xff]", "\xc3"));
  BOOST_TEST(!overlap("[\x80-\xfe]", "\xff"));
}

BOOST_AUTO_TEST_CASE(overlap_is_symmetric_and_reflexive) {
  const std::vector<std::string> globs = {
      "db/users", "db/*",    "*/users", "db",      "**",     "a/**/z", "a/z",
      "a/b/c/z",  "**/z",    "a*b",     "*c*",     "a*",     "*b",     "b*",
      "?",        "??",      "a?",      "[abc]",   "[!abc]", "[a-z]",  "[!a-z]",
      "[^b]*",    "a/**",    "*/*",     "*/**/*",  "x[!*]",  "a]b!",   "[*?[]",
      "**/a/**",  "**/b/**", "a/*/*/b", "v[0-9]*", "[! -.]", "a/b",    "b/a"};
  for (const std::string& a : globs) {
    BOOST_TEST(resource_globs_overlap(a, a), a);
    for (const std::string& b : globs) {
      BOOST_TEST(resource_globs_overlap(a, b) == resource_globs_overlap(b, a),
                 "'" << a << "' vs '" << b << "'");
    }
  }
}

BOOST_AUTO_TEST_CASE(matching_a_path) {
  BOOST_TEST(resource_glob_matches("db/users", "db/users"));
  BOOST_TEST(!resource_glob_matches("db/users", "db/user"));
  BOOST_TEST(resource_glob_matches("db/*", "db/users"));
  BOOST_TEST(!resource_glob_matches("db/*", "db"));
  BOOST_TEST(!resource_glob_matches("db/*", "db/a/b"));
  BOOST_TEST(resource_glob_matches("**", "x"));
  BOOST_TEST(resource_glob_matches("*", "*"));
  BOOST_TEST(!resource_glob_matches("a", "*"));
  BOOST_TEST(resource_glob_matches("[*]", "*"));
  BOOST_TEST(!resource_glob_matches("[*]", "a"));
  // Not concrete paths: matched by nothing.
  for (const char* path : {"", "/", "/a", "a/", "a//b"}) {
    BOOST_TEST(!resource_glob_matches("**", path), path);
    BOOST_TEST(!resource_glob_matches("*/**", path), path);
  }
  BOOST_TEST(!resource_glob_matches("a/*", "a/"));
}

BOOST_AUTO_TEST_CASE(valid_globs_have_no_problem) {
  for (const char* glob :
       {"db/users", "**", "a/**/b", "**/**", "[!a-z]x?", "[a-]", "[-a]", "a]b!", "[*?[]", "*",
        "a*b*c", "[^ab]", "[a-a]", "\xc3\xa9/\xc3\xbc", "x\x7fy", "a b", "[ -~]"}) {
    BOOST_TEST(!resource_glob_problem(glob), glob << ": " << problem(glob));
  }
}

BOOST_AUTO_TEST_CASE(malformed_globs_are_named_with_their_offset) {
  BOOST_TEST(problem("") == "resource glob '' is empty");
  BOOST_TEST(problem("/db") ==
             "resource glob '/db' has an empty segment at offset 0 (it starts with '/')");
  BOOST_TEST(problem("/") ==
             "resource glob '/' has an empty segment at offset 0 (it starts with '/')");
  BOOST_TEST(problem("db/") ==
             "resource glob 'db/' has an empty segment at offset 3 (it ends with '/')");
  BOOST_TEST(problem("db//users") ==
             "resource glob 'db//users' has an empty segment at offset 3 (two '/' in a row)");
  BOOST_TEST(problem("a**") ==
             "resource glob 'a**' has '**' at offset 1 in a segment with other characters; "
             "'**' must be a whole segment");
  BOOST_TEST(problem("**b") ==
             "resource glob '**b' has '**' at offset 0 in a segment with other characters; "
             "'**' must be a whole segment");
  BOOST_TEST(problem("x/***/y") ==
             "resource glob 'x/***/y' has '**' at offset 2 in a segment with other "
             "characters; '**' must be a whole segment");
  BOOST_TEST(problem("a/b**/c") ==
             "resource glob 'a/b**/c' has '**' at offset 3 in a segment with other "
             "characters; '**' must be a whole segment");
  BOOST_TEST(problem("a[bc") == "resource glob 'a[bc' has an unclosed '[' at offset 1");
  BOOST_TEST(problem("a/[!") == "resource glob 'a/[!' has an unclosed '[' at offset 2");
  BOOST_TEST(problem("a[b/c]") ==
             "resource glob 'a[b/c]' has an unclosed '[' at offset 1 (a character class "
             "cannot contain '/')");
  BOOST_TEST(problem("[]") == "resource glob '[]' has an empty character class '[]' at offset 0");
  BOOST_TEST(problem("x[!]") ==
             "resource glob 'x[!]' has an empty character class '[!]' at offset 1");
  BOOST_TEST(problem("[]]") == "resource glob '[]]' has an empty character class '[]' at offset 0");
  BOOST_TEST(problem("[z-a]") ==
             "resource glob '[z-a]' has a reversed range 'z-a' at offset 1 in a character class");
  BOOST_TEST(problem("v/[a-cz-a]") ==
             "resource glob 'v/[a-cz-a]' has a reversed range 'z-a' at offset 6 in a character "
             "class");
  BOOST_TEST(problem("a\tb") == "resource glob 'a\\x09b' has control character 0x09 at offset 1");
  BOOST_TEST(problem(std::string_view("a\0b", 3)) ==
             "resource glob 'a\\x00b' has control character 0x00 at offset 1");
  BOOST_TEST(problem("[a\x1f]") ==
             "resource glob '[a\\x1f]' has control character 0x1f at offset 2");
  BOOST_TEST(problem("a\\b") ==
             "resource glob 'a\\b' has a backslash at offset 1; backslashes are reserved in "
             "resource globs");
  BOOST_TEST(problem("[a\\]") ==
             "resource glob '[a\\]' has a backslash at offset 2; backslashes are reserved in "
             "resource globs");
}

BOOST_AUTO_TEST_CASE(the_first_problem_is_reported) {
  BOOST_TEST(problem("a//b\\") ==
             "resource glob 'a//b\\' has an empty segment at offset 2 (two '/' in a row)");
  BOOST_TEST(problem("\\//") ==
             "resource glob '\\//' has a backslash at offset 0; backslashes are reserved in "
             "resource globs");
}

// Longer than the inline scratch space (32 segments, 64 bytes a segment): the heap fallback.
BOOST_AUTO_TEST_CASE(long_globs) {
  std::string deep_literal;
  std::string deep_glob;
  for (int i = 0; i < 100; ++i) {
    deep_literal += (i ? "/s" : "s") + std::to_string(i);
    deep_glob += i ? "/s*" : "s*";
  }
  BOOST_TEST(overlap(deep_literal, deep_glob));
  BOOST_TEST(!overlap(deep_literal, deep_glob + "/x"));
  BOOST_TEST(overlap(deep_literal, "**/s99"));
  BOOST_TEST(overlap("s0/**/s50/**", deep_glob));
  BOOST_TEST(!overlap("s0/**/t/**", deep_literal));

  const std::string wide(200, 'a');
  BOOST_TEST(overlap(wide, std::string(150, '?') + "*"));
  BOOST_TEST(!overlap(wide, std::string(201, '?')));
  BOOST_TEST(overlap(wide + "*", "*" + wide));
  BOOST_TEST(!overlap(wide + "*b", "*" + wide + "c"));
}

BOOST_AUTO_TEST_CASE(the_overlap_test_allocates_nothing_for_common_globs) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"db/users", "db/groups"},           {"db/*", "*/users"}, {"a/*", "b/*"},
      {"artifacts/**", "artifacts/x/y/z"}, {"a*b", "*c*"},      {"[!a-z]?", "[x-z]*"},
      {"cache/**/[0-9]*", "**/tmp/**"}};
  const std::size_t before = allocation_count.load();
  std::size_t overlapping = 0;
  for (const auto& [a, b] : pairs)
    overlapping += resource_globs_overlap(a, b) ? 1 : 0;
  const std::size_t allocations = allocation_count.load() - before;
  BOOST_TEST(allocations == 0u);
  BOOST_TEST(overlapping == 4u);
}

// Bad input gives some answer, never a crash or a read out of bounds (the asan preset checks
// the latter).
BOOST_AUTO_TEST_CASE(invalid_globs_are_handled_safely) {
  std::mt19937 rng(7);
  const std::string bytes = "ab/*?[]!^-\\\x01";
  for (int round = 0; round < 2000; ++round) {
    std::string a;
    std::string b;
    for (std::size_t n = rng() % 8; n > 0; --n)
      a += bytes[rng() % bytes.size()];
    for (std::size_t n = rng() % 8; n > 0; --n)
      b += bytes[rng() % bytes.size()];
    (void)resource_glob_problem(a);
    (void)resource_globs_overlap(a, b);
    (void)resource_glob_matches(a, b);
  }
  BOOST_TEST(!resource_globs_overlap("a[", "b["));
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------
// Brute-force cross-check: random small globs against every concrete path up to a length.

namespace {

// Every concrete path of 1..max_length bytes over `segment_bytes` and '/'.
std::vector<std::string> concrete_paths(const std::string& segment_bytes, std::size_t max_length) {
  std::vector<std::string> paths;
  std::vector<std::string> frontier = {""};
  const std::string bytes = segment_bytes + "/";
  for (std::size_t length = 1; length <= max_length; ++length) {
    std::vector<std::string> longer;
    for (const std::string& prefix : frontier) {
      for (const char c : bytes) {
        if (c == '/' && (prefix.empty() || prefix.back() == '/')) continue;
        longer.push_back(prefix + c);
        if (c != '/') paths.push_back(longer.back());
      }
    }
    frontier = std::move(longer);
  }
  return paths;
}

std::vector<std::string> random_valid_globs(const std::vector<std::string>& tokens,
                                            std::size_t max_tokens, std::size_t wanted,
                                            std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::set<std::string> seen;
  std::vector<std::string> globs;
  for (int attempt = 0; attempt < 200000 && globs.size() < wanted; ++attempt) {
    std::string glob;
    for (std::size_t n = 1 + rng() % max_tokens; n > 0; --n)
      glob += tokens[rng() % tokens.size()];
    if (!resource_glob_problem(glob) && seen.insert(glob).second) globs.push_back(glob);
  }
  return globs;
}

// Bytes that must be matched one by one in a segment: all but stars; a class counts once.
std::size_t singles_in(std::string_view segment) {
  std::size_t count = 0;
  for (std::size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] == '*') continue;
    if (segment[i] == '[') {
      i = segment.find(']', i + 2);
      if (i == std::string_view::npos) break;
    }
    ++count;
  }
  return count;
}

// Sum over the glob's ordinary segments of (max(1, singles) + 1).
std::size_t witness_budget(std::string_view glob) {
  std::size_t budget = 0;
  for (std::size_t begin = 0;;) {
    const std::size_t slash = glob.find('/', begin);
    const std::string_view segment = glob.substr(begin, slash - begin);
    if (segment != "**") budget += std::max<std::size_t>(1, singles_in(segment)) + 1;
    if (slash == std::string_view::npos) break;
    begin = slash + 1;
  }
  return budget;
}

// If two globs overlap, some common path has at most this many bytes. Take any common path;
// drop the segments that a `**` matches on both sides, and within a segment the bytes that a
// `*` matches on both sides: both globs still match. Each remaining segment then uses up an
// ordinary segment of one glob or of both, and each of its remaining bytes a non-star item of
// one or of both, so it is at most max(1, singles) bytes per ordinary segment used, plus the
// separators. When neither glob has an ordinary segment, "a" is common. The brute force only
// holds as exact where this bound is within its search length, and where every single's byte
// set meets the search alphabet as it meets the full one (the tokens below are chosen so).
std::size_t witness_bound(std::string_view a, std::string_view b) {
  const std::size_t total = witness_budget(a) + witness_budget(b);
  return total == 0 ? 1 : total - 1;
}

struct cross_check_result {
  std::size_t pairs = 0;
  std::size_t overlapping = 0;
  std::size_t exact_pairs = 0;  // pairs whose witness bound is within the search length
};

cross_check_result cross_check(const std::vector<std::string>& globs,
                               const std::vector<std::string>& paths, std::size_t max_length) {
  // Which paths each glob matches, as bits.
  const std::size_t words = (paths.size() + 63) / 64;
  std::vector<std::vector<std::uint64_t>> matched(globs.size(),
                                                  std::vector<std::uint64_t>(words, 0));
  for (std::size_t g = 0; g < globs.size(); ++g) {
    for (std::size_t p = 0; p < paths.size(); ++p) {
      if (resource_glob_matches(globs[g], paths[p])) matched[g][p / 64] |= 1ull << (p % 64);
    }
  }
  cross_check_result result;
  for (std::size_t i = 0; i < globs.size(); ++i) {
    for (std::size_t j = 0; j < globs.size(); ++j) {
      bool witnessed = false;
      for (std::size_t w = 0; w < words && !witnessed; ++w)
        witnessed = (matched[i][w] & matched[j][w]) != 0;
      const bool overlaps = resource_globs_overlap(globs[i], globs[j]);
      const bool exact = witness_bound(globs[i], globs[j]) <= max_length;
      ++result.pairs;
      result.overlapping += overlaps ? 1 : 0;
      result.exact_pairs += exact ? 1 : 0;
      if (witnessed) {
        BOOST_TEST(overlaps, "false negative: '" << globs[i] << "' vs '" << globs[j] << "'");
      } else if (exact) {
        BOOST_TEST(!overlaps, "false positive: '" << globs[i] << "' vs '" << globs[j]
                                                  << "' (no common path up to " << max_length
                                                  << " bytes)");
      }
    }
  }
  BOOST_TEST_MESSAGE(result.pairs << " ordered pairs, " << result.overlapping << " overlapping, "
                                  << result.exact_pairs << " within the witness bound");
  return result;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(resource_glob_brute_force)

// Globs over {a, b, /, *, ?, **}; paths over {a, b, /} up to 7 bytes. Every pair: a common
// path found means the DP says yes (no false negative). Pairs whose witness bound is at most
// 7 bytes: the DP says yes only if a common path was found (no false positive).
BOOST_AUTO_TEST_CASE(wildcards_against_every_short_path) {
  const std::size_t max_length = 7;
  const auto globs = random_valid_globs({"a", "b", "/", "*", "?", "**"}, 6, 300, 20240611);
  const auto paths = concrete_paths("ab", max_length);
  BOOST_TEST_REQUIRE(globs.size() == 300u);
  const cross_check_result result = cross_check(globs, paths, max_length);
  BOOST_TEST(result.overlapping > result.pairs / 10);
  BOOST_TEST(result.overlapping < result.pairs * 9 / 10);
  BOOST_TEST(result.exact_pairs > result.pairs * 2 / 5);
}

// The same with classes, over paths of {a, b, c, /} up to 6 bytes. The negated classes only
// exclude a and b, so two singles that share a byte share one of a, b, c.
BOOST_AUTO_TEST_CASE(classes_against_every_short_path) {
  const std::size_t max_length = 6;
  const auto globs = random_valid_globs(
      {"a", "b", "c", "/", "*", "?", "**", "[ab]", "[b-c]", "[!a]", "[!b]", "[^ab]"}, 5, 300, 7);
  const auto paths = concrete_paths("abc", max_length);
  BOOST_TEST_REQUIRE(globs.size() == 300u);
  const cross_check_result result = cross_check(globs, paths, max_length);
  BOOST_TEST(result.overlapping > result.pairs / 10);
  BOOST_TEST(result.overlapping < result.pairs * 9 / 10);
  BOOST_TEST(result.exact_pairs > result.pairs * 3 / 10);
}

BOOST_AUTO_TEST_SUITE_END()
