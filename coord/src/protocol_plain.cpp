// The decoder's fast path for plain assigns and results (protocol_detail.hpp).

#include "protocol_detail.hpp"

#include <boost/json/parse.hpp>

#include <charconv>
#include <cstring>
#include <limits>

namespace drover::coord {

namespace json = boost::json;

namespace {

constexpr std::uint64_t no_max = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t u32_max = std::numeric_limits<std::uint32_t>::max();

using detail::is_attempt_outcome;

// --- the plain fast path ----------------------------------------------------------------
// Assigns and results are the lines a connection carries by the thousand. When such a line is
// plain, decode_plain reads it in one pass without building a document; anything else (an
// escape in a string, a byte >= 0x80, a number that is not a small unsigned integer, a field
// it does not know, a repeated field, a missing or mistyped one, dependency results) makes it
// give up, and the full decoder reads the line and reports whatever is wrong. Nested values
// (params, value, deps, outputs) are checked by Boost.JSON itself. So both paths accept the
// same lines and make the same messages; protocol_test compares them.

/// One member of the message object, as found.
struct plain_field {
  enum class kind : std::uint8_t { absent, string, number, null, nested };
  kind what = kind::absent;
  std::string_view text;  ///< the string's bytes, or a nested value's JSON text
  std::uint64_t number = 0;
};

class plain_reader {
 public:
  /// Reads `line` from `start`, just after the comma that follows its first member.
  plain_reader(std::string_view line, std::size_t start, std::size_t max_depth)
      : line_{line}, max_depth_{max_depth}, pos_{start} {}

  /// Reads the other members; calls `field(key)` for each, which returns where to store it
  /// (null: give up). False when the line is not plain.
  template <typename FieldFor>
  bool read_members(FieldFor field) {
    skip_space();
    for (;;) {
      std::string_view key;
      if (!read_string(key)) return false;
      skip_space();
      if (!take(':')) return false;
      skip_space();
      plain_field* into = field(key);
      if (into == nullptr || into->what != plain_field::kind::absent) return false;
      if (!read_value(*into)) return false;
      skip_space();
      if (take(',')) {
        skip_space();
        continue;
      }
      return take('}') && at_end();
    }
  }

 private:
  bool read_value(plain_field& out) {
    if (pos_ >= line_.size()) return false;
    const char c = line_[pos_];
    if (c == '"') {
      out.what = plain_field::kind::string;
      return read_string(out.text);
    }
    if (c >= '0' && c <= '9') {
      out.what = plain_field::kind::number;
      return read_number(out.number);
    }
    if (c == 'n') {
      out.what = plain_field::kind::null;
      return take_word("null");
    }
    if (c == '{' || c == '[') {
      out.what = plain_field::kind::nested;
      return read_nested(out.text);
    }
    return false;  // true, false, a negative or other number: the full decoder's business
  }

  bool read_string(std::string_view& out) {
    if (!take('"')) return false;
    const std::size_t start = pos_;
    for (; pos_ < line_.size(); ++pos_) {
      const auto c = static_cast<unsigned char>(line_[pos_]);
      if (c == '"') {
        out = line_.substr(start, pos_ - start);
        ++pos_;
        return true;
      }
      if (c == '\\' || c < 0x20 || c >= 0x80) return false;
    }
    return false;
  }

  // An unsigned integer as JSON writes it: no sign, fraction, exponent or leading zero.
  bool read_number(std::uint64_t& out) {
    const std::size_t start = pos_;
    std::uint64_t value = 0;
    while (pos_ < line_.size() && line_[pos_] >= '0' && line_[pos_] <= '9') {
      const auto digit = static_cast<std::uint64_t>(line_[pos_] - '0');
      if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return false;
      value = value * 10 + digit;
      ++pos_;
    }
    if (pos_ - start > 1 && line_[start] == '0') return false;
    if (pos_ < line_.size() && (line_[pos_] == '.' || line_[pos_] == 'e' || line_[pos_] == 'E'))
      return false;
    out = value;
    return true;
  }

  // The extent of an array or object; Boost.JSON checks its content later. Strings are skipped
  // with their escapes, so that a bracket inside one does not count. Brackets must match:
  // found by the protocol fuzz target, `[ }` and `{ ]` once passed for an empty list or object.
  bool read_nested(std::string_view& out) {
    const std::size_t start = pos_;
    std::string closers;  // what closes each open level, innermost last
    // The message object is level 1; stay a level below the limit so that every line this
    // accepts is one the full decoder accepts too.
    const std::size_t deepest = max_depth_ > 2 ? max_depth_ - 2 : 0;
    for (; pos_ < line_.size(); ++pos_) {
      const char c = line_[pos_];
      if (c == '"') {
        for (++pos_; pos_ < line_.size() && line_[pos_] != '"'; ++pos_) {
          if (line_[pos_] == '\\') ++pos_;
        }
        if (pos_ >= line_.size()) return false;
      } else if (c == '{' || c == '[') {
        closers.push_back(c == '{' ? '}' : ']');
        if (closers.size() > deepest) return false;
      } else if (c == '}' || c == ']') {
        if (closers.empty() || closers.back() != c) return false;
        closers.pop_back();
        if (closers.empty()) {
          ++pos_;
          out = line_.substr(start, pos_ - start);
          return true;
        }
      }
    }
    return false;
  }

  bool take(char c) {
    if (pos_ >= line_.size() || line_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  bool take_word(std::string_view word) {
    if (line_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  void skip_space() {
    while (pos_ < line_.size() && (line_[pos_] == ' ' || line_[pos_] == '\t' ||
                                   line_[pos_] == '\n' || line_[pos_] == '\r'))
      ++pos_;
  }

  bool at_end() {
    skip_space();
    return pos_ == line_.size();
  }

  std::string_view line_;
  std::size_t max_depth_;
  std::size_t pos_;
};

/// The nested JSON text as a value in the default storage, or nullopt when Boost.JSON rejects
/// it (the full decoder then says why).
std::optional<json::value> plain_nested(std::string_view text, std::size_t max_depth) {
  json::parse_options options;
  options.max_depth = max_depth;
  json::error_code ec;
  json::value v = json::parse(text, ec, json::storage_ptr{}, options);
  if (ec) return std::nullopt;
  return v;
}

bool plain_required_string(const plain_field& f, std::string& out) {
  if (f.what != plain_field::kind::string || f.text.empty()) return false;
  out.assign(f.text);
  return true;
}

bool plain_uint(const plain_field& f, std::uint64_t min, std::uint64_t max, std::uint64_t& out) {
  if (f.what != plain_field::kind::number || f.number < min || f.number > max) return false;
  out = f.number;
  return true;
}

/// An optional unsigned integer: absent or null is nullopt; false when it is something else.
template <typename Integer>
bool plain_optional_uint(const plain_field& f, std::uint64_t min, std::uint64_t max,
                         std::optional<Integer>& out) {
  if (f.what == plain_field::kind::absent || f.what == plain_field::kind::null) return true;
  std::uint64_t n = 0;
  if (!plain_uint(f, min, max, n)) return false;
  out = static_cast<Integer>(n);
  return true;
}

/// Any JSON value the fast path can read: null, a plain string, an array or object.
bool plain_any(const plain_field& f, std::size_t max_depth, json::value& out) {
  switch (f.what) {
    case plain_field::kind::absent:
    case plain_field::kind::null:
      out = nullptr;
      return true;
    case plain_field::kind::string:
      out = json::string_view{f.text.data(), f.text.size()};
      return true;
    case plain_field::kind::nested: {
      auto v = plain_nested(f.text, max_depth);
      if (!v) return false;
      out = std::move(*v);
      return true;
    }
    case plain_field::kind::number:
      return false;  // int64 or uint64 as Boost.JSON would store it: leave it to the full path
  }
  return false;
}

/// An array of strings (absent or null: empty), as string_array_or_empty reads it.
bool plain_strings(const plain_field& f, std::size_t max_depth, std::vector<std::string>& out) {
  if (f.what == plain_field::kind::absent || f.what == plain_field::kind::null) return true;
  if (f.what != plain_field::kind::nested || f.text.front() != '[') return false;
  if (f.text.find_first_not_of(" \t\r\n", 1) == f.text.size() - 1) return true;  // []
  auto v = plain_nested(f.text, max_depth);
  if (!v || !v->is_array()) return false;
  const json::array& items = v->get_array();
  out.reserve(items.size());
  for (const json::value& item : items) {
    if (!item.is_string()) return false;
    out.emplace_back(item.get_string().data(), item.get_string().size());
  }
  return true;
}

std::optional<message> decode_plain_assign(plain_reader& in, std::size_t max_depth) {
  plain_field run, epoch, module, attempt, kind, params, timeout, deps, results, target, outputs;
  const bool plain = in.read_members([&](std::string_view key) -> plain_field* {
    if (key == "run") return &run;
    if (key == "epoch") return &epoch;
    if (key == "module") return &module;
    if (key == "attempt") return &attempt;
    if (key == "kind") return &kind;
    if (key == "params") return &params;
    if (key == "timeout_ms") return &timeout;
    if (key == "deps") return &deps;
    if (key == "results") return &results;
    if (key == "matrix_target") return &target;
    if (key == "outputs") return &outputs;
    return nullptr;
  });
  if (!plain) return std::nullopt;
  assign_message m;
  std::uint64_t number = 0;
  if (!plain_required_string(run, m.run) || !plain_uint(epoch, 0, no_max, m.epoch) ||
      !plain_required_string(module, m.module) || !plain_uint(attempt, 1, u32_max, number) ||
      !plain_required_string(kind, m.kind) || !plain_any(params, max_depth, m.params) ||
      !plain_optional_uint(timeout, 1, no_max, m.timeout_ms) ||
      !plain_strings(deps, max_depth, m.deps) || !plain_strings(outputs, max_depth, m.outputs)) {
    return std::nullopt;
  }
  m.attempt = static_cast<std::uint32_t>(number);
  // Dependency results are sent once per worker: the full decoder reads them.
  if (results.what == plain_field::kind::nested) {
    if (results.text.front() != '{' ||
        results.text.find_first_not_of(" \t\r\n", 1) != results.text.size() - 1) {
      return std::nullopt;
    }
  } else if (results.what != plain_field::kind::absent && results.what != plain_field::kind::null) {
    return std::nullopt;
  }
  if (target.what == plain_field::kind::string) {
    m.matrix_target.emplace(target.text);
  } else if (target.what != plain_field::kind::absent && target.what != plain_field::kind::null) {
    return std::nullopt;
  }
  return message{std::move(m)};
}

std::optional<message> decode_plain_result(plain_reader& in, std::size_t max_depth) {
  plain_field run, epoch, module, attempt, status, value, error, started, finished;
  const bool plain = in.read_members([&](std::string_view key) -> plain_field* {
    if (key == "run") return &run;
    if (key == "epoch") return &epoch;
    if (key == "module") return &module;
    if (key == "attempt") return &attempt;
    if (key == "status") return &status;
    if (key == "value") return &value;
    if (key == "error") return &error;
    if (key == "started_at_ms") return &started;
    if (key == "finished_at_ms") return &finished;
    return nullptr;
  });
  if (!plain || status.what != plain_field::kind::string) return std::nullopt;
  result_message m;
  std::uint64_t number = 0;
  const std::optional<module_status> outcome = module_status_from_string(status.text);
  if (!outcome || !is_attempt_outcome(*outcome) || !plain_required_string(run, m.run) ||
      !plain_uint(epoch, 0, no_max, m.epoch) || !plain_required_string(module, m.module) ||
      !plain_uint(attempt, 1, u32_max, number)) {
    return std::nullopt;
  }
  m.attempt = static_cast<std::uint32_t>(number);
  m.status = *outcome;
  // The member the status does not read must still be a value the fast path can read.
  json::value unused;
  if (m.status == module_status::succeeded) {
    if (!plain_any(value, max_depth, m.value)) return std::nullopt;
    if (error.what != plain_field::kind::absent && !plain_any(error, max_depth, unused))
      return std::nullopt;
  } else {
    if (error.what != plain_field::kind::string) return std::nullopt;  // "" is allowed
    m.error.assign(error.text);
    if (!plain_any(value, max_depth, unused)) return std::nullopt;
  }
  if (!plain_optional_uint(started, 0, INT64_MAX, m.started_at_ms) ||
      !plain_optional_uint(finished, 0, INT64_MAX, m.finished_at_ms)) {
    return std::nullopt;
  }
  return message{std::move(m)};
}

}  // namespace

namespace detail {

std::optional<message> decode_plain(std::string_view line, std::size_t max_depth) {
  constexpr std::string_view assign_start = R"({"type":"assign",)";
  constexpr std::string_view result_start = R"({"type":"result",)";
  static_assert(assign_start.size() == result_start.size());
  const bool assign = line.starts_with(assign_start);
  if (!assign && !line.starts_with(result_start)) return std::nullopt;
  plain_reader in{line, assign_start.size(), max_depth};
  return assign ? decode_plain_assign(in, max_depth) : decode_plain_result(in, max_depth);
}

}  // namespace detail

}  // namespace drover::coord
