#include "resource_glob.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace drover::detail {

namespace {

// ---------------------------------------------------------------------------------------------
// Validation

bool is_control(unsigned char c) {
  return c < 0x20;
}

char hex_digit(unsigned value) {
  return "0123456789abcdef"[value & 0xf];
}

std::string hex_byte(unsigned char c) {
  return {'0', 'x', hex_digit(c >> 4), hex_digit(c)};
}

// The glob in single quotes with control bytes written as \xNN, so that a message never sends
// a raw escape sequence to a terminal.
std::string quoted_glob(std::string_view glob) {
  std::string out = "resource glob '";
  for (const char ch : glob) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_control(c)) {
      out += "\\x";
      out += hex_digit(c >> 4);
      out += hex_digit(c);
    } else {
      out += ch;
    }
  }
  out += '\'';
  return out;
}

std::string at_offset(std::size_t offset) {
  return " at offset " + std::to_string(offset);
}

std::optional<std::string> byte_problem(std::string_view glob, std::size_t i) {
  const auto c = static_cast<unsigned char>(glob[i]);
  if (is_control(c)) {
    return quoted_glob(glob) + " has control character " + hex_byte(c) + at_offset(i);
  }
  if (c == '\\') {
    return quoted_glob(glob) + " has a backslash" + at_offset(i) +
           "; backslashes are reserved in resource globs";
  }
  return std::nullopt;
}

// Checks the class whose '[' is at glob[open]; on success stores the offset of its ']'.
std::optional<std::string> class_problem(std::string_view glob, std::size_t open,
                                         std::size_t& close) {
  std::size_t first = open + 1;
  if (first < glob.size() && (glob[first] == '!' || glob[first] == '^')) ++first;
  std::size_t i = first;
  for (; i < glob.size() && glob[i] != ']'; ++i) {
    if (glob[i] == '/') {
      return quoted_glob(glob) + " has an unclosed '['" + at_offset(open) +
             " (a character class cannot contain '/')";
    }
    if (auto problem = byte_problem(glob, i)) return problem;
  }
  if (i == glob.size()) return quoted_glob(glob) + " has an unclosed '['" + at_offset(open);
  if (i == first) {
    return quoted_glob(glob) + " has an empty character class '" +
           std::string(glob.substr(open, i + 1 - open)) + "'" + at_offset(open);
  }
  for (std::size_t k = first; k < i;) {
    if (k + 2 < i && glob[k + 1] == '-') {
      if (static_cast<unsigned char>(glob[k]) > static_cast<unsigned char>(glob[k + 2])) {
        return quoted_glob(glob) + " has a reversed range '" + std::string(glob.substr(k, 3)) +
               "'" + at_offset(k) + " in a character class";
      }
      k += 3;
    } else {
      ++k;
    }
  }
  close = i;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Scratch space: inline for the sizes claims have in practice, on the heap beyond them.

template <class T, std::size_t inline_capacity>
class scratch_array {
 public:
  explicit scratch_array(std::size_t size) {
    if (size > inline_capacity) heap_ = std::make_unique<T[]>(size);
    data_ = size > inline_capacity ? heap_.get() : inline_.data();
  }
  scratch_array(const scratch_array&) = delete;
  scratch_array& operator=(const scratch_array&) = delete;

  T* data() noexcept { return data_; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }

 private:
  std::array<T, inline_capacity> inline_;
  std::unique_ptr<T[]> heap_;
  T* data_;
};

// ---------------------------------------------------------------------------------------------
// The common-expansion test, used at both levels: segments of a path, and bytes of a segment.
//
// Each pattern is a sequence of elements, each either a star (any run of units, possibly none)
// or a single (exactly one unit from a set). At the segment level a unit is a segment, `**` is
// the star and every other segment a single; at the byte level a unit is a byte, `*` is the
// star and literals, `?` and classes are singles. The sets of singles are never empty in a
// valid glob (a class never names '/', and a negated class keeps the control bytes a glob
// cannot name), so a star can always consume a unit that a single produces.
//
// meets(i, j): the suffixes a[i..] and b[j..] have a common expansion. It holds at (end, end)
// and otherwise when
//   - a[i] or b[j] is a star, and the suffixes meet with that star skipped or with it
//     consuming the other side's unit: meets(i + 1, j) or meets(i, j + 1) (each where it
//     exists; a star facing a star covers both skipping and consuming);
//   - both are singles whose sets intersect (singles_meet) and meets(i + 1, j + 1).
// Rows are computed from the end of `a`, keeping two; a row that is all false makes every
// earlier row all false, which ends the search early.
template <class AIsStar, class BIsStar, class SinglesMeet>
bool sequences_meet(std::size_t a_size, std::size_t b_size, AIsStar a_is_star, BIsStar b_is_star,
                    SinglesMeet singles_meet) {
  scratch_array<bool, 66> rows_a(b_size + 1);
  scratch_array<bool, 66> rows_b(b_size + 1);
  bool* later = rows_a.data();  // row i + 1
  bool* row = rows_b.data();    // row i
  std::fill(later, later + b_size + 1, false);
  for (std::size_t i = a_size + 1; i-- > 0;) {
    bool any = false;
    for (std::size_t j = b_size + 1; j-- > 0;) {
      bool meets;
      if (i == a_size && j == b_size) {
        meets = true;
      } else {
        const bool a_star = i < a_size && a_is_star(i);
        const bool b_star = j < b_size && b_is_star(j);
        if (a_star || b_star) {
          meets = (i < a_size && later[j]) || (j < b_size && row[j + 1]);
        } else {
          meets = i < a_size && j < b_size && later[j + 1] && singles_meet(i, j);
        }
      }
      row[j] = meets;
      any = any || meets;
    }
    if (!any) return false;
    std::swap(later, row);
  }
  return later[0];
}

// ---------------------------------------------------------------------------------------------
// Byte level

// A plain loop: find_first_of("*?[") calls memchr on the three needles once per byte.
bool has_wildcard(std::string_view s) {
  for (const char c : s) {
    if (c == '*' || c == '?' || c == '[') return true;
  }
  return false;
}

// Trivial, so that an item buffer on the stack costs nothing to create.
struct glob_item {
  enum class kind : std::uint8_t { literal, any_byte, byte_class, star };
  kind what;
  bool negated;               // byte_class only
  unsigned char byte;         // literal only
  const char* members_begin;  // byte_class only: what is between '[' (and '!') and ']'
  const char* members_end;

  std::string_view members() const {
    return {members_begin, static_cast<std::size_t>(members_end - members_begin)};
  }
};

// Splits a segment into items; `out` has room for segment.size() items, since an item is at
// least one byte. On an invalid glob an unclosed '[' becomes a literal.
std::size_t split_items(std::string_view segment, glob_item* out) {
  std::size_t count = 0;
  for (std::size_t i = 0; i < segment.size();) {
    glob_item& item = out[count++];
    item = glob_item{glob_item::kind::literal, false, 0, nullptr, nullptr};
    const char c = segment[i];
    if (c == '*') {
      item.what = glob_item::kind::star;
    } else if (c == '?') {
      item.what = glob_item::kind::any_byte;
    } else if (c == '[') {
      std::size_t first = i + 1;
      const bool negated =
          first < segment.size() && (segment[first] == '!' || segment[first] == '^');
      if (negated) ++first;
      const std::size_t close = segment.find(']', first);
      if (close != std::string_view::npos) {
        item.what = glob_item::kind::byte_class;
        item.negated = negated;
        item.members_begin = segment.data() + first;
        item.members_end = segment.data() + close;
        i = close + 1;
        continue;
      }
      item.byte = '[';
    } else {
      item.byte = static_cast<unsigned char>(c);
    }
    ++i;
  }
  return count;
}

// Whether a class item matches byte c, which comes from a segment and so is never '/'.
bool class_contains(const glob_item& item, unsigned char c) {
  bool member = false;
  const std::string_view m = item.members();
  for (std::size_t k = 0; k < m.size() && !member;) {
    if (k + 2 < m.size() && m[k + 1] == '-') {
      member = static_cast<unsigned char>(m[k]) <= c && c <= static_cast<unsigned char>(m[k + 2]);
      k += 3;
    } else {
      member = static_cast<unsigned char>(m[k]) == c;
      ++k;
    }
  }
  return member != item.negated;
}

// Whether a single item matches byte c; c is never '/' (it comes from one segment of a path).
bool item_accepts(const glob_item& item, unsigned char c) {
  switch (item.what) {
    case glob_item::kind::literal:
      return item.byte == c;
    case glob_item::kind::any_byte:
      return true;
    case glob_item::kind::byte_class:
      return class_contains(item, c);
    case glob_item::kind::star:
      break;
  }
  return true;
}

// The bytes a single item matches, as 256 bits; '/' is never among them.
struct byte_set {
  std::array<std::uint64_t, 4> words{};

  void add(unsigned char c) { words[c >> 6] |= std::uint64_t{1} << (c & 63); }
  void add_range(unsigned char lo, unsigned char hi) {
    for (unsigned c = lo; c <= hi; ++c)
      add(static_cast<unsigned char>(c));
  }
  bool intersects(const byte_set& other) const {
    for (std::size_t w = 0; w < words.size(); ++w) {
      if (words[w] & other.words[w]) return true;
    }
    return false;
  }
};

byte_set set_of(const glob_item& item) {
  byte_set set;
  switch (item.what) {
    case glob_item::kind::literal:
      set.add(item.byte);
      return set;
    case glob_item::kind::any_byte:
    case glob_item::kind::star:
      set.words.fill(~std::uint64_t{0});
      break;
    case glob_item::kind::byte_class: {
      const std::string_view m = item.members();
      for (std::size_t k = 0; k < m.size();) {
        if (k + 2 < m.size() && m[k + 1] == '-') {
          set.add_range(static_cast<unsigned char>(m[k]), static_cast<unsigned char>(m[k + 2]));
          k += 3;
        } else {
          set.add(static_cast<unsigned char>(m[k]));
          ++k;
        }
      }
      if (item.negated) {
        for (std::uint64_t& w : set.words)
          w = ~w;
      }
      break;
    }
  }
  set.words['/' >> 6] &= ~(std::uint64_t{1} << ('/' & 63));
  return set;
}

bool singles_meet(const glob_item& x, const glob_item& y) {
  using kind = glob_item::kind;
  if (x.what == kind::literal && y.what == kind::literal) return x.byte == y.byte;
  if (x.what == kind::literal) return item_accepts(y, x.byte);
  if (y.what == kind::literal) return item_accepts(x, y.byte);
  return set_of(x).intersects(set_of(y));
}

// Item buffers hold one item per byte of the segment.
using item_buffer = scratch_array<glob_item, 64>;

bool segments_overlap(std::string_view x, std::string_view y) {
  if (!has_wildcard(x) && !has_wildcard(y)) return x == y;
  item_buffer x_items(x.size());
  item_buffer y_items(y.size());
  const std::size_t x_count = split_items(x, x_items.data());
  const std::size_t y_count = split_items(y, y_items.data());
  const auto is_star = [](const glob_item& item) { return item.what == glob_item::kind::star; };
  return sequences_meet(
      x_count, y_count, [&](std::size_t i) { return is_star(x_items[i]); },
      [&](std::size_t j) { return is_star(y_items[j]); },
      [&](std::size_t i, std::size_t j) { return singles_meet(x_items[i], y_items[j]); });
}

bool segment_matches(std::string_view pattern, std::string_view text) {
  if (!has_wildcard(pattern)) return pattern == text;
  item_buffer items(pattern.size());
  const std::size_t count = split_items(pattern, items.data());
  return sequences_meet(
      count, text.size(), [&](std::size_t i) { return items[i].what == glob_item::kind::star; },
      [](std::size_t) { return false; },
      [&](std::size_t i, std::size_t j) {
        return item_accepts(items[i], static_cast<unsigned char>(text[j]));
      });
}

// ---------------------------------------------------------------------------------------------
// Segment level

using segment_buffer = scratch_array<std::string_view, 32>;

std::size_t segment_count(std::string_view s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '/')) + 1;
}

void split_segments(std::string_view s, std::string_view* out) {
  std::size_t begin = 0;
  for (std::size_t slash; (slash = s.find('/', begin)) != std::string_view::npos;
       begin = slash + 1) {
    *out++ = s.substr(begin, slash - begin);
  }
  *out = s.substr(begin);
}

bool is_any_segments(std::string_view segment) {
  return segment == "**";
}

bool is_concrete_path(std::string_view path) {
  return !path.empty() && path.front() != '/' && path.back() != '/' &&
         path.find("//") == std::string_view::npos;
}

// How many leading bytes every path a valid glob matches starts with: the bytes before the
// first wildcard, less the '/' before a `**`, which may match no segment (`a/**` matches `a`).
std::size_t fixed_prefix_length(std::string_view glob) {
  const std::size_t wildcard = glob.find_first_of("*?[");
  if (wildcard == std::string_view::npos) return glob.size();
  const bool starts_any_segments = glob.substr(wildcard, 2) == "**";
  return starts_any_segments && wildcard > 0 ? wildcard - 1 : wildcard;
}

}  // namespace

std::optional<std::string> resource_glob_problem(std::string_view glob) {
  if (glob.empty()) return quoted_glob(glob) + " is empty";
  std::size_t segment_begin = 0;
  for (std::size_t i = 0; i <= glob.size();) {
    if (i == glob.size() || glob[i] == '/') {
      if (i == segment_begin) {
        const char* why = i == 0             ? " (it starts with '/')"
                          : i == glob.size() ? " (it ends with '/')"
                                             : " (two '/' in a row)";
        return quoted_glob(glob) + " has an empty segment" + at_offset(i) + why;
      }
      segment_begin = ++i;
      continue;
    }
    if (auto problem = byte_problem(glob, i)) return problem;
    if (glob[i] == '*' && i + 1 < glob.size() && glob[i + 1] == '*') {
      const bool whole_segment = i == segment_begin && (i + 2 == glob.size() || glob[i + 2] == '/');
      if (!whole_segment) {
        return quoted_glob(glob) + " has '**'" + at_offset(i) +
               " in a segment with other characters; '**' must be a whole segment";
      }
      i += 2;
      continue;
    }
    if (glob[i] == '[') {
      std::size_t close = 0;
      if (auto problem = class_problem(glob, i, close)) return problem;
      i = close + 1;
      continue;
    }
    ++i;
  }
  return std::nullopt;
}

bool resource_glob_is_literal(std::string_view glob) noexcept {
  return !has_wildcard(glob);
}

bool resource_globs_overlap(std::string_view a, std::string_view b) {
  if (a == b) return true;
  // Most claims name different resources with no wildcard, or differ before the first one.
  const std::size_t a_fixed = fixed_prefix_length(a);
  const std::size_t b_fixed = fixed_prefix_length(b);
  const std::size_t common = std::min(a_fixed, b_fixed);
  if (a.substr(0, common) != b.substr(0, common)) return false;
  if (a_fixed == a.size() && b_fixed == b.size()) return false;
  if (a_fixed == a.size()) return resource_glob_matches(b, a);
  if (b_fixed == b.size()) return resource_glob_matches(a, b);

  const std::size_t a_count = segment_count(a);
  const std::size_t b_count = segment_count(b);
  segment_buffer a_segments(a_count);
  segment_buffer b_segments(b_count);
  split_segments(a, a_segments.data());
  split_segments(b, b_segments.data());
  return sequences_meet(
      a_count, b_count, [&](std::size_t i) { return is_any_segments(a_segments[i]); },
      [&](std::size_t j) { return is_any_segments(b_segments[j]); },
      [&](std::size_t i, std::size_t j) { return segments_overlap(a_segments[i], b_segments[j]); });
}

bool resource_glob_matches(std::string_view glob, std::string_view path) {
  if (!is_concrete_path(path)) return false;
  if (!has_wildcard(glob)) return glob == path;
  const std::size_t glob_count = segment_count(glob);
  const std::size_t path_count = segment_count(path);
  segment_buffer glob_segments(glob_count);
  segment_buffer path_segments(path_count);
  split_segments(glob, glob_segments.data());
  split_segments(path, path_segments.data());
  return sequences_meet(
      glob_count, path_count, [&](std::size_t i) { return is_any_segments(glob_segments[i]); },
      [](std::size_t) { return false; },
      [&](std::size_t i, std::size_t j) {
        return segment_matches(glob_segments[i], path_segments[j]);
      });
}

}  // namespace drover::detail
