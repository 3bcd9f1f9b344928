#include <drover/coord/protocol.hpp>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/serializer.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

namespace drover::coord {
namespace {

namespace json = boost::json;

constexpr std::uint64_t no_max = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t u32_max = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t int_max = INT_MAX;

// --- UTF-8 ------------------------------------------------------------------------------

/// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not one. Strict as
/// RFC 3629 (no overlong forms, surrogates or code points above U+10FFFF), as Boost.JSON is.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // range of the first continuation byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (s.size() - i < length) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return length;
}

/// Offset of the first byte that does not start a valid UTF-8 sequence, or npos.
std::size_t first_invalid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t length = utf8_sequence_length(s, i);
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

/// Replaces every byte that does not start a valid sequence by the escape \ufffd. Only valid
/// on serialized JSON: there every byte >= 0x80 is inside a string, where an escape is legal.
std::string repair_serialized_utf8(std::string_view serialized, std::size_t first_bad) {
  std::string out;
  out.reserve(serialized.size() + 16);
  out.append(serialized.substr(0, first_bad));
  for (std::size_t i = first_bad; i < serialized.size();) {
    const std::size_t length = utf8_sequence_length(serialized, i);
    if (length == 0) {
      out += "\\ufffd";
      ++i;
    } else {
      out.append(serialized.substr(i, length));
      i += length;
    }
  }
  return out;
}

// --- describing what was received -------------------------------------------------------

std::string number_text(double d) {
  std::array<char, 32> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), d);
  if (ec != std::errc{}) return "a number";
  return std::string(buffer.data(), end);
}

/// The first number in `line`, outside strings, that reads as `d`, as the peer wrote it
/// ("1.0", "2e0"): Boost.JSON keeps only the double, and "got 1" for a line that said 1.0
/// would hide why an integer field refused it. Falls back to the double's shortest text.
std::string number_as_received(std::string_view line, double d) {
  constexpr std::size_t max_shown = 40;
  constexpr std::string_view number_chars = "0123456789+-.eE";
  bool in_string = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) continue;
    std::size_t end = i;
    while (end < line.size() && number_chars.find(line[end]) != std::string_view::npos)
      ++end;
    const std::string_view token = line.substr(i, end - i);
    i = end - 1;
    // Integers that fit 64 bits were read as integers, not as `d`.
    std::int64_t as_signed = 0;
    std::uint64_t as_unsigned = 0;
    const char* token_end = token.data() + token.size();
    const auto whole = [&](std::from_chars_result r) {
      return r.ec == std::errc{} && r.ptr == token_end;
    };
    if (whole(std::from_chars(token.data(), token_end, as_signed)) ||
        whole(std::from_chars(token.data(), token_end, as_unsigned))) {
      continue;
    }
    double parsed = 0;
    const auto [stop, ec] = std::from_chars(token.data(), token_end, parsed);
    const bool same =
        stop == token_end && ((ec == std::errc{} && parsed == d) ||
                              (ec == std::errc::result_out_of_range && std::isinf(d)));
    if (same) {
      return token.size() <= max_shown ? std::string(token)
                                       : std::string(token.substr(0, max_shown)) + "...";
    }
  }
  return number_text(d);
}

/// "got ..." text for an error message. Strings are shown only when `show_strings` (never
/// for a token), short, and cut at a UTF-8 boundary so the error line itself stays valid.
/// Numbers that are not integers are shown as written in `line`, when given.
std::string describe(const json::value& v, bool show_strings = true, std::string_view line = {}) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return v.get_bool() ? "true" : "false";
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    case json::kind::double_:
      return number_as_received(line, v.get_double());
    case json::kind::string: {
      if (!show_strings) return "a string";
      constexpr std::size_t max_shown = 40;
      std::string_view s = v.get_string();
      if (s.size() <= max_shown) return json::serialize(json::string_view{s.data(), s.size()});
      std::size_t cut = max_shown;
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
        --cut;
      const std::string_view head = s.substr(0, cut);
      return json::serialize(json::string_view{head.data(), head.size()}) + "...";
    }
    case json::kind::array:
      return v.get_array().empty() ? "an empty array" : "an array";
    case json::kind::object:
      return "an object";
  }
  return "something else";
}

std::string integer_range(std::uint64_t min, std::uint64_t max) {
  std::string text = "an integer >= " + std::to_string(min);
  if (max != no_max) text += " and <= " + std::to_string(max);
  return text;
}

// --- reading fields ---------------------------------------------------------------------

/// A field's name as error messages show it: "slots", "versions[1]", "running[0].attempt",
/// "results.fetch.status". Only turned into text when there is an error to report, so that
/// decoding a valid message builds no strings for it.
class field_name {
 public:
  field_name(std::string_view top) : top_{top} {}
  field_name(const char* top) : top_{top} {}
  /// "top[index]" or "top[index].member".
  field_name(std::string_view top, std::size_t index, std::string_view member = {})
      : top_{top}, index_{index}, member_{member} {}
  /// "top.key" or "top.key.member".
  static field_name keyed(std::string_view top, std::string_view key,
                          std::string_view member = {}) {
    field_name name{top};
    name.key_ = key;
    name.member_ = member;
    return name;
  }

  std::string text() const {
    std::string out(top_);
    if (index_) out.append("[").append(std::to_string(*index_)).append("]");
    if (!key_.empty()) out.append(".").append(key_);
    if (!member_.empty()) out.append(".").append(member_);
    return out;
  }

 private:
  std::string_view top_;
  std::optional<std::size_t> index_;  ///< "[index]" after top
  std::string_view key_;              ///< ".key" after that
  std::string_view member_;           ///< ".member" after that
};

/// Reads typed fields out of a message object and remembers the first problem. After a
/// problem every read returns a default, so a decoder reads all its fields unconditionally
/// and checks failed() once at the end.
class field_reader {
 public:
  /// `line` is the text the object was parsed from, for error messages.
  field_reader(const json::object& object, std::string_view line) : object_{object}, line_{line} {}

  bool failed() const noexcept { return problem_.has_value(); }
  std::string take_problem() { return std::move(*problem_); }

  // Top-level fields: `key` is both the lookup key and the name in messages.

  std::string required_string(std::string_view key, bool non_empty = true) {
    return string_at(find(key), key, /*required=*/true, non_empty).value_or(std::string{});
  }
  std::optional<std::string> optional_string(std::string_view key, bool show = true) {
    return string_at(find(key), key, /*required=*/false, /*non_empty=*/false, show);
  }
  std::string string_or_empty(std::string_view key) {
    return optional_string(key).value_or(std::string{});
  }

  std::uint64_t required_uint(std::string_view key, std::uint64_t min, std::uint64_t max) {
    return uint_at(find(key), key, min, max, /*required=*/true).value_or(min);
  }
  std::optional<std::uint64_t> optional_uint(std::string_view key, std::uint64_t min,
                                             std::uint64_t max) {
    return uint_at(find(key), key, min, max, /*required=*/false);
  }

  bool bool_or(std::string_view key, bool fallback) {
    const json::value* v = find(key);
    if (v == nullptr || v->is_null()) return fallback;
    if (!v->is_bool()) return fail(key, "a boolean", v), fallback;
    return v->get_bool();
  }

  /// Any JSON; absent is null. The copy lives in the default storage, whatever memory the
  /// parsed line lives in.
  json::value any(std::string_view key) {
    const json::value* v = find(key);
    return v == nullptr ? json::value{} : json::value(*v, json::storage_ptr{});
  }

  std::vector<std::string> string_array_or_empty(std::string_view key) {
    std::vector<std::string> out;
    const json::array* items = array_at(key, "an array of strings");
    if (items == nullptr) return out;
    out.reserve(items->size());
    for (std::size_t i = 0; i < items->size() && !failed(); ++i) {
      out.push_back(string_at(&(*items)[i], {key, i}, true, false).value_or(""));
    }
    return out;
  }

  /// The array at `key`, or nullptr when absent/null or after reporting a wrong type.
  const json::array* array_at(std::string_view key, std::string_view expected) {
    const json::value* v = find(key);
    if (v == nullptr || v->is_null()) return nullptr;
    if (!v->is_array()) return fail(key, expected, v), nullptr;
    return &v->get_array();
  }

  // Values anywhere: `name` is the path that messages show, e.g. "running[2].attempt".

  std::optional<std::string> string_at(const json::value* v, const field_name& name, bool required,
                                       bool non_empty, bool show = true) {
    if (failed()) return std::nullopt;
    const std::string_view expected = non_empty ? "a non-empty string" : "a string";
    if (v == nullptr || v->is_null()) {
      if (required) missing(name, expected);
      return std::nullopt;
    }
    if (!v->is_string() || (non_empty && v->get_string().empty())) {
      fail(name, expected, v, show);
      return std::nullopt;
    }
    const json::string& s = v->get_string();
    return std::string(s.data(), s.size());
  }

  std::optional<std::uint64_t> uint_at(const json::value* v, const field_name& name,
                                       std::uint64_t min, std::uint64_t max, bool required) {
    if (failed()) return std::nullopt;
    if (v == nullptr || v->is_null()) {
      if (required) missing(name, integer_range(min, max));
      return std::nullopt;
    }
    std::optional<std::uint64_t> number;
    if (v->is_uint64()) number = v->get_uint64();
    if (v->is_int64() && v->get_int64() >= 0) number = static_cast<std::uint64_t>(v->get_int64());
    if (!number || *number < min || *number > max) {
      fail(name, integer_range(min, max), v);
      return std::nullopt;
    }
    return number;
  }

  void missing(const field_name& name, std::string_view expected) {
    if (failed()) return;
    problem_ = "field '" + name.text() + "': missing, expected " + std::string(expected);
  }

  void fail(const field_name& name, std::string_view expected, const json::value* got,
            bool show = true) {
    if (failed()) return;
    problem_ = "field '" + name.text() + "': expected " + std::string(expected);
    if (got != nullptr) problem_->append(", got ").append(describe(*got, show, line_));
  }

  const json::value* find(std::string_view key) const { return object_.if_contains(key); }

 private:
  const json::object& object_;
  std::string_view line_;
  std::optional<std::string> problem_;
};

// --- statuses ---------------------------------------------------------------------------

bool is_attempt_outcome(module_status s) noexcept {
  return s == module_status::succeeded || s == module_status::failed ||
         s == module_status::timed_out || s == module_status::cancelled;
}

constexpr std::string_view attempt_outcomes =
    "one of \"succeeded\", \"failed\", \"timed_out\", \"cancelled\"";
constexpr std::string_view dependency_statuses =
    "one of \"succeeded\", \"failed\", \"timed_out\", \"cancelled\", \"skipped\", "
    "\"ignored_failure\"";

/// Reads a status name at `v` that `allowed` accepts; reports the allowed names otherwise.
template <typename Allowed>
module_status status_at(field_reader& in, const json::value* v, const field_name& name,
                        std::string_view expected, Allowed allowed) {
  if (in.failed()) return module_status::pending;
  if (v == nullptr || v->is_null()) {
    in.missing(name, expected);
    return module_status::pending;
  }
  std::optional<module_status> status;
  if (v->is_string()) status = module_status_from_string(v->get_string());
  if (!status || !allowed(*status)) {
    in.fail(name, expected, v);
    return module_status::pending;
  }
  return *status;
}

// --- decoders, one per message type -----------------------------------------------------

hello_message read_hello(field_reader& in) {
  hello_message m;
  if (const json::value* versions = in.find("versions"); versions == nullptr) {
    in.missing("versions", "a non-empty array of integers >= 1");
  } else if (!versions->is_array() || versions->get_array().empty()) {
    in.fail("versions", "a non-empty array of integers >= 1", versions);
  } else {
    const json::array& items = versions->get_array();
    for (std::size_t i = 0; i < items.size() && !in.failed(); ++i) {
      const auto version = in.uint_at(&items[i], {"versions", i}, 1, int_max, true);
      m.versions.push_back(static_cast<int>(version.value_or(1)));
    }
  }
  m.worker_id = in.optional_string("worker_id");
  m.capabilities = in.string_array_or_empty("capabilities");
  m.slots = static_cast<std::uint32_t>(in.optional_uint("slots", 1, u32_max).value_or(1));
  m.token = in.optional_string("token", /*show=*/false);
  m.pid = in.optional_uint("pid", 0, no_max);
  m.host = in.optional_string("host");
  return m;
}

welcome_message read_welcome(field_reader& in) {
  welcome_message m;
  m.protocol = static_cast<int>(in.required_uint("protocol", 1, int_max));
  m.worker = in.required_string("worker");
  m.run = in.required_string("run");
  m.epoch = in.required_uint("epoch", 0, no_max);
  m.heartbeat_ms = static_cast<std::uint32_t>(in.required_uint("heartbeat_ms", 1, u32_max));
  m.lost_after_ms = static_cast<std::uint32_t>(in.required_uint("lost_after_ms", 1, u32_max));
  m.max_line_bytes = in.required_uint("max_line_bytes", 1, no_max);
  return m;
}

std::vector<dependency_result> read_dependency_results(field_reader& in) {
  std::vector<dependency_result> out;
  const json::value* v = in.find("results");
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_object()) {
    in.fail("results", "an object of {\"status\", \"value\"} objects keyed by module id", v);
    return out;
  }
  const json::object& results = v->get_object();
  out.reserve(results.size());
  for (const auto& [key, entry] : results) {
    if (in.failed()) break;
    const std::string_view id{key.data(), key.size()};
    if (!entry.is_object()) {
      in.fail(field_name::keyed("results", id), "an object with \"status\" and \"value\"", &entry);
      break;
    }
    const json::object& fields = entry.get_object();
    dependency_result r;
    r.module = std::string(id);
    r.status =
        status_at(in, fields.if_contains("status"), field_name::keyed("results", id, "status"),
                  dependency_statuses, [](module_status s) {
                    // A master sends a cached dependency as succeeded (docs/protocol.md).
                    return s != module_status::pending && s != module_status::cached;
                  });
    if (const json::value* value = fields.if_contains("value")) r.value = *value;
    out.push_back(std::move(r));
  }
  return out;
}

assign_message read_assign(field_reader& in) {
  assign_message m;
  m.run = in.required_string("run");
  m.epoch = in.required_uint("epoch", 0, no_max);
  m.module = in.required_string("module");
  m.attempt = static_cast<std::uint32_t>(in.required_uint("attempt", 1, u32_max));
  m.kind = in.required_string("kind");
  m.params = in.any("params");
  m.timeout_ms = in.optional_uint("timeout_ms", 1, no_max);
  m.deps = in.string_array_or_empty("deps");
  m.results = read_dependency_results(in);
  m.matrix_target = in.optional_string("matrix_target");
  m.outputs = in.string_array_or_empty("outputs");
  return m;
}

result_message read_result(field_reader& in) {
  result_message m;
  m.run = in.required_string("run");
  m.epoch = in.required_uint("epoch", 0, no_max);
  m.module = in.required_string("module");
  m.attempt = static_cast<std::uint32_t>(in.required_uint("attempt", 1, u32_max));
  m.status = status_at(in, in.find("status"), "status", attempt_outcomes, is_attempt_outcome);
  if (m.status == module_status::succeeded) {
    m.value = in.any("value");
  } else if (!in.failed()) {
    m.error = in.required_string("error", /*non_empty=*/false);
  }
  const auto started = in.optional_uint("started_at_ms", 0, INT64_MAX);
  const auto finished = in.optional_uint("finished_at_ms", 0, INT64_MAX);
  if (started) m.started_at_ms = static_cast<std::int64_t>(*started);
  if (finished) m.finished_at_ms = static_cast<std::int64_t>(*finished);
  return m;
}

heartbeat_message read_heartbeat(field_reader& in) {
  heartbeat_message m;
  const json::array* running = in.array_at("running", "an array of {module, attempt} objects");
  if (running == nullptr) return m;
  m.running.reserve(running->size());
  for (std::size_t i = 0; i < running->size() && !in.failed(); ++i) {
    const json::value& entry = (*running)[i];
    if (!entry.is_object()) {
      in.fail({"running", i}, "an object with \"module\" and \"attempt\"", &entry);
      break;
    }
    const json::object& fields = entry.get_object();
    running_attempt r;
    r.module = in.string_at(fields.if_contains("module"), {"running", i, "module"}, true, true)
                   .value_or(std::string{});
    r.attempt = static_cast<std::uint32_t>(
        in.uint_at(fields.if_contains("attempt"), {"running", i, "attempt"}, 1, u32_max, true)
            .value_or(1));
    m.running.push_back(std::move(r));
  }
  return m;
}

cancel_message read_cancel(field_reader& in) {
  cancel_message m;
  m.run = in.required_string("run");
  m.epoch = in.required_uint("epoch", 0, no_max);
  m.module = in.required_string("module");
  m.attempt = static_cast<std::uint32_t>(in.required_uint("attempt", 1, u32_max));
  m.reason = in.string_or_empty("reason");
  return m;
}

error_message read_error(field_reader& in) {
  error_message m;
  m.code = in.required_string("code");
  m.message = in.string_or_empty("message");
  m.fatal = in.bool_or("fatal", false);
  m.module = in.optional_string("module");
  if (auto attempt = in.optional_uint("attempt", 1, u32_max)) {
    m.attempt = static_cast<std::uint32_t>(*attempt);
  }
  return m;
}

using reader_function = message (*)(field_reader&);

struct message_kind {
  std::string_view name;
  reader_function read;
};

constexpr message_kind message_kinds[] = {
    {"hello", [](field_reader& in) -> message { return read_hello(in); }},
    {"welcome", [](field_reader& in) -> message { return read_welcome(in); }},
    {"assign", [](field_reader& in) -> message { return read_assign(in); }},
    {"result", [](field_reader& in) -> message { return read_result(in); }},
    {"heartbeat", [](field_reader& in) -> message { return read_heartbeat(in); }},
    {"cancel", [](field_reader& in) -> message { return read_cancel(in); }},
    {"drain",
     [](field_reader& in) -> message { return drain_message{in.string_or_empty("reason")}; }},
    {"bye", [](field_reader& in) -> message { return bye_message{in.string_or_empty("reason")}; }},
    {"error", [](field_reader& in) -> message { return read_error(in); }},
};

static_assert(std::size(message_kinds) == std::variant_size_v<message>,
              "message_kinds lists every message type in variant order");

// --- encoders ---------------------------------------------------------------------------
// Each message is written straight into the output string, its fields in the order
// docs/protocol.md lists them, with no JSON document in between: a line costs no allocation
// beyond the string's own growth. Values of any shape (params, results) that are not a scalar
// go through Boost.JSON's serializer, so they read exactly as boost::json::serialize writes.

/// Appends the members of a JSON object to a line under construction.
class json_writer {
 public:
  explicit json_writer(std::string& out) : out_{out} {}

  /// `"name":`, after a comma unless it is the object's first member. For our own ASCII field
  /// names, which need no escaping.
  json_writer& key(std::string_view name) {
    separate();
    out_ += '"';
    out_ += name;
    out_ += "\":";
    return *this;
  }
  /// The same for a key that comes from data (a module id): escaped.
  json_writer& key_escaped(std::string_view name) {
    separate();
    string(name);
    out_ += ':';
    return *this;
  }

  /// A JSON string, escaped as Boost.JSON escapes: quote, backslash and control characters.
  /// Bytes >= 0x80 are copied; encode_to() repairs invalid UTF-8 once the line is complete.
  void string(std::string_view s) {
    if (s.size() <= 62 && std::none_of(s.begin(), s.end(), needs_escape)) {
      // Ids, names and statuses: one append.
      char text[64];
      text[0] = '"';
      std::memcpy(text + 1, s.data(), s.size());
      text[s.size() + 1] = '"';
      out_.append(text, s.size() + 2);
      return;
    }
    out_ += '"';
    std::size_t plain = 0;  // the first byte not copied yet
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (!needs_escape(s[i])) continue;
      out_.append(s.data() + plain, i - plain);
      plain = i + 1;
      escape(static_cast<unsigned char>(s[i]));
    }
    out_.append(s.data() + plain, s.size() - plain);
    out_ += '"';
  }

  void number(std::uint64_t n) { append_chars(n); }
  void number(std::int64_t n) { append_chars(n); }
  void boolean(bool b) { out_.append(b ? "true" : "false"); }

  /// Any JSON value; a null pointer is null.
  void value(const json::value* v) {
    if (v == nullptr || v->is_null()) {
      out_.append("null");
    } else if (v->is_string()) {
      const json::string& s = v->get_string();
      string({s.data(), s.size()});
    } else if (v->is_int64()) {
      number(v->get_int64());
    } else if (v->is_uint64()) {
      number(v->get_uint64());
    } else if (v->is_bool()) {
      boolean(v->get_bool());
    } else {
      json::serializer serializer;
      serializer.reset(v);
      char buffer[1024];
      while (!serializer.done())
        out_.append(serializer.read(buffer));
    }
  }

  template <typename Strings>
  void strings(const Strings& items) {
    out_ += '[';
    bool first = true;
    for (const auto& item : items) {
      if (!first) out_ += ',';
      first = false;
      string(item);
    }
    out_ += ']';
  }

  /// A nested object: begin_object(), its members, end_object().
  void begin_object() {
    out_ += '{';
    first_ = true;
  }
  void end_object() {
    out_ += '}';
    first_ = false;
  }
  void begin_array() { out_ += '['; }
  void end_array() { out_ += ']'; }
  void comma() { out_ += ','; }

 private:
  void separate() {
    if (!first_) out_ += ',';
    first_ = false;
  }

  static bool needs_escape(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == '"' || u == '\\';
  }

  void escape(unsigned char c) {
    switch (c) {
      case '"':
        out_.append("\\\"");
        return;
      case '\\':
        out_.append("\\\\");
        return;
      case '\b':
        out_.append("\\b");
        return;
      case '\f':
        out_.append("\\f");
        return;
      case '\n':
        out_.append("\\n");
        return;
      case '\r':
        out_.append("\\r");
        return;
      case '\t':
        out_.append("\\t");
        return;
      default: {
        constexpr char hex[] = "0123456789abcdef";
        const char escaped[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
        out_.append(escaped, sizeof escaped);
      }
    }
  }

  template <typename Integer>
  void append_chars(Integer n) {
    char buffer[24];  // any 64-bit integer fits
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, n);
    out_.append(buffer, result.ptr);
  }

  std::string& out_;
  bool first_ = true;
};

// A member present only when the optional holds a value: a string or an integer.
template <typename T>
void put_optional(json_writer& w, std::string_view key, const std::optional<T>& v) {
  if (!v) return;
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    w.key(key).string(*v);
  } else if constexpr (std::is_signed_v<T>) {
    w.key(key).number(std::int64_t{*v});
  } else {
    w.key(key).number(std::uint64_t{*v});
  }
}

void put(json_writer& w, const hello_message& m) {
  w.key("versions").begin_array();
  for (std::size_t i = 0; i < m.versions.size(); ++i) {
    if (i > 0) w.comma();
    w.number(std::int64_t{m.versions[i]});
  }
  w.end_array();
  put_optional(w, "worker_id", m.worker_id);
  w.key("capabilities").strings(m.capabilities);
  w.key("slots").number(std::uint64_t{m.slots});
  put_optional(w, "token", m.token);
  put_optional(w, "pid", m.pid);
  put_optional(w, "host", m.host);
}

void put(json_writer& w, const welcome_message& m) {
  w.key("protocol").number(std::int64_t{m.protocol});
  w.key("worker").string(m.worker);
  w.key("run").string(m.run);
  w.key("epoch").number(m.epoch);
  w.key("heartbeat_ms").number(std::uint64_t{m.heartbeat_ms});
  w.key("lost_after_ms").number(std::uint64_t{m.lost_after_ms});
  w.key("max_line_bytes").number(m.max_line_bytes);
}

void put(json_writer& w, const assign_view& m) {
  w.key("run").string(m.run);
  w.key("epoch").number(m.epoch);
  w.key("module").string(m.module);
  w.key("attempt").number(std::uint64_t{m.attempt});
  w.key("kind").string(m.kind);
  w.key("params").value(m.params);
  put_optional(w, "timeout_ms", m.timeout_ms);
  w.key("deps").strings(m.deps);
  w.key("results").begin_object();
  for (const drover::dependency_result& r : m.results) {
    w.key_escaped(r.id).begin_object();
    w.key("status").string(to_string(r.status));
    w.key("value").value(r.value);
    w.end_object();
  }
  w.end_object();
  put_optional(w, "matrix_target", m.matrix_target);
  if (!m.outputs.empty()) w.key("outputs").strings(m.outputs);
}

void put(json_writer& w, const assign_message& m) {
  std::vector<std::string_view> deps(m.deps.begin(), m.deps.end());
  // A repeated module id keeps its first place and its last content, as a JSON object would.
  std::vector<drover::dependency_result> results;
  results.reserve(m.results.size());
  for (const dependency_result& r : m.results) {
    auto same = std::find_if(results.begin(), results.end(),
                             [&](const drover::dependency_result& x) { return x.id == r.module; });
    if (same != results.end()) {
      *same = {r.module, r.status, &r.value};
    } else {
      results.push_back({r.module, r.status, &r.value});
    }
  }
  assign_view view;
  view.run = m.run;
  view.epoch = m.epoch;
  view.module = m.module;
  view.attempt = m.attempt;
  view.kind = m.kind;
  view.params = &m.params;
  view.timeout_ms = m.timeout_ms;
  view.deps = deps;
  view.results = results;
  if (m.matrix_target) view.matrix_target = *m.matrix_target;
  view.outputs = m.outputs;
  put(w, view);
}

void put(json_writer& w, const result_message& m) {
  w.key("run").string(m.run);
  w.key("epoch").number(m.epoch);
  w.key("module").string(m.module);
  w.key("attempt").number(std::uint64_t{m.attempt});
  w.key("status").string(to_string(m.status));
  if (m.status == module_status::succeeded) {
    w.key("value").value(&m.value);
  } else {
    w.key("error").string(m.error);
  }
  put_optional(w, "started_at_ms", m.started_at_ms);
  put_optional(w, "finished_at_ms", m.finished_at_ms);
}

void put(json_writer& w, const heartbeat_message& m) {
  w.key("running").begin_array();
  for (std::size_t i = 0; i < m.running.size(); ++i) {
    if (i > 0) w.comma();
    w.begin_object();
    w.key("module").string(m.running[i].module);
    w.key("attempt").number(std::uint64_t{m.running[i].attempt});
    w.end_object();
  }
  w.end_array();
}

void put(json_writer& w, const cancel_message& m) {
  w.key("run").string(m.run);
  w.key("epoch").number(m.epoch);
  w.key("module").string(m.module);
  w.key("attempt").number(std::uint64_t{m.attempt});
  w.key("reason").string(m.reason);
}

void put(json_writer& w, const drain_message& m) {
  w.key("reason").string(m.reason);
}

void put(json_writer& w, const bye_message& m) {
  w.key("reason").string(m.reason);
}

void put(json_writer& w, const error_message& m) {
  w.key("code").string(m.code);
  w.key("message").string(m.message);
  w.key("fatal").boolean(m.fatal);
  put_optional(w, "module", m.module);
  put_optional(w, "attempt", m.attempt);
}

/// True when a byte of `text` is >= 0x80: only then can it hold invalid UTF-8. Looks at eight
/// bytes at a time, since lines are almost always plain ASCII.
bool has_non_ascii(std::string_view text) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    if ((word & 0x8080808080808080ull) != 0) return true;
  }
  for (; i < text.size(); ++i) {
    if (static_cast<unsigned char>(text[i]) >= 0x80) return true;
  }
  return false;
}

/// Writes `{"type":"<type>", ...members...}\n` to `out` and repairs invalid UTF-8 in it.
template <typename Message>
std::size_t write_line(std::string& out, std::string_view type, const Message& m) {
  const std::size_t start = out.size();
  json_writer w{out};
  w.begin_object();
  w.key("type").string(type);
  put(w, m);
  w.end_object();
  out += '\n';
  const std::string_view line{out.data() + start, out.size() - start};
  if (has_non_ascii(line)) {
    if (const std::size_t bad = first_invalid_utf8(line); bad != std::string_view::npos) {
      std::string repaired = repair_serialized_utf8(line, bad);
      out.resize(start);
      out.append(repaired);
    }
  }
  return out.size() - start;
}

protocol_error make_error(error_code code, std::string text, bool fatal = false) {
  protocol_error e;
  e.code = code;
  e.message = std::move(text);
  e.fatal = fatal;
  return e;
}

decode_result decode_object(const json::object& object, std::string_view line) {
  const json::value* type = object.if_contains("type");
  if (type == nullptr || type->is_null()) {
    return make_error(error_code::missing_type, "field 'type': missing, expected a string");
  }
  if (!type->is_string()) {
    return make_error(error_code::bad_field,
                      "field 'type': expected a string, got " + describe(*type, true, line));
  }
  const std::string_view name = type->get_string();
  const auto kind = std::find_if(std::begin(message_kinds), std::end(message_kinds),
                                 [&](const message_kind& k) { return k.name == name; });
  if (kind == std::end(message_kinds)) {
    return make_error(error_code::unknown_type, "unknown message type " + describe(*type));
  }

  field_reader in{object, line};
  message m = kind->read(in);
  if (!in.failed()) return m;

  protocol_error e =
      make_error(error_code::bad_field, std::string(kind->name) + ": " + in.take_problem());
  e.type = std::string(kind->name);
  // Name the assignment the bad message was about, when it says so validly.
  field_reader module_reader{object, line};
  e.module = module_reader.optional_string("module");
  field_reader attempt_reader{object, line};
  if (auto attempt = attempt_reader.optional_uint("attempt", 1, u32_max)) {
    e.attempt = static_cast<std::uint32_t>(*attempt);
  }
  return e;
}

}  // namespace

std::string_view to_string(error_code code) noexcept {
  switch (code) {
    case error_code::malformed_json:
      return "malformed_json";
    case error_code::line_too_long:
      return "line_too_long";
    case error_code::too_deep:
      return "too_deep";
    case error_code::not_an_object:
      return "not_an_object";
    case error_code::missing_type:
      return "missing_type";
    case error_code::unknown_type:
      return "unknown_type";
    case error_code::bad_field:
      return "bad_field";
    case error_code::handshake_required:
      return "handshake_required";
    case error_code::version_mismatch:
      return "version_mismatch";
    case error_code::unauthorized:
      return "unauthorized";
    case error_code::handshake_timeout:
      return "handshake_timeout";
    case error_code::unknown_module:
      return "unknown_module";
    case error_code::stale_result:
      return "stale_result";
    case error_code::duplicate_result:
      return "duplicate_result";
    case error_code::internal:
      return "internal";
  }
  return "internal";
}

std::optional<error_code> parse_error_code(std::string_view name) noexcept {
  for (auto i = static_cast<std::uint8_t>(error_code::malformed_json);
       i <= static_cast<std::uint8_t>(error_code::internal); ++i) {
    const auto code = static_cast<error_code>(i);
    if (to_string(code) == name) return code;
  }
  return std::nullopt;
}

std::string_view type_name(const message& m) noexcept {
  return message_kinds[m.index()].name;
}

std::string encode(const message& m) {
  std::string line;
  encode_to(line, m);
  return line;
}

std::size_t encode_to(std::string& out, const message& m) {
  return std::visit([&](const auto& typed) { return write_line(out, type_name(m), typed); }, m);
}

std::size_t encode_to(std::string& out, const assign_view& m) {
  return write_line(out, "assign", m);
}

namespace {

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
  // with their escapes, so that a bracket inside one does not count.
  bool read_nested(std::string_view& out) {
    const std::size_t start = pos_;
    std::size_t depth = 0;
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
        if (++depth > deepest) return false;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) {
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

/// The message when `line` is a plain assign or result, else nullopt.
std::optional<message> decode_plain(std::string_view line, std::size_t max_depth) {
  constexpr std::string_view assign_start = R"({"type":"assign",)";
  constexpr std::string_view result_start = R"({"type":"result",)";
  static_assert(assign_start.size() == result_start.size());
  const bool assign = line.starts_with(assign_start);
  if (!assign && !line.starts_with(result_start)) return std::nullopt;
  plain_reader in{line, assign_start.size(), max_depth};
  return assign ? decode_plain_assign(in, max_depth) : decode_plain_result(in, max_depth);
}

// --- decoding ---------------------------------------------------------------------------

// Lines up to this size are parsed into the decoder's own buffer, with no allocation for the
// document; longer ones spill over to the heap.
constexpr std::size_t decoder_scratch_bytes = 8192;

json::parse_options parse_options_for(const limits& l) {
  json::parse_options o;
  o.max_depth = l.max_depth;
  return o;
}

}  // namespace

struct line_decoder::state {
  explicit state(const limits& l)
      : receiver_limits{l}, parser{json::storage_ptr{}, parse_options_for(l)} {}

  limits receiver_limits;
  std::uint64_t plain_lines = 0;
  json::parser parser;
};

// The first bytes of every decoded document's memory. One per thread, not per connection:
// decode() never suspends or nests, and a master with 10,000 workers saves 80 MB.
unsigned char* decoder_scratch() {
  thread_local const std::unique_ptr<unsigned char[]> scratch =
      std::make_unique_for_overwrite<unsigned char[]>(decoder_scratch_bytes);
  return scratch.get();
}

line_decoder::line_decoder(const limits& receiver_limits)
    : state_{std::make_unique<state>(receiver_limits)} {}
line_decoder::~line_decoder() = default;
line_decoder::line_decoder(line_decoder&&) noexcept = default;
line_decoder& line_decoder::operator=(line_decoder&&) noexcept = default;

const limits& line_decoder::receiver_limits() const noexcept {
  return state_->receiver_limits;
}

std::uint64_t line_decoder::plain_lines() const noexcept {
  return state_->plain_lines;
}

void line_decoder::set_limits(const limits& receiver_limits) {
  if (receiver_limits.max_depth != state_->receiver_limits.max_depth) {
    const std::uint64_t plain_lines = state_->plain_lines;
    state_ = std::make_unique<state>(receiver_limits);  // the parser's depth is set when made
    state_->plain_lines = plain_lines;
  }
  state_->receiver_limits = receiver_limits;
}

namespace {

protocol_error line_too_long_error(std::string_view line, const limits& receiver_limits) {
  return make_error(error_code::line_too_long,
                    "line of " + std::to_string(line.size()) + " bytes exceeds the limit of " +
                        std::to_string(receiver_limits.max_line_bytes) + " bytes",
                    /*fatal=*/true);
}

/// The full decoder: parses the line into a document with `parser`, whose values live in
/// `storage` until the message has copied what it keeps, then reads the message from it.
decode_result decode_document(std::string_view line, const limits& receiver_limits,
                              json::parser& parser, json::storage_ptr storage) {
  parser.reset(std::move(storage));
  // Whatever the parser still holds (a document half built when the line was bad) goes while
  // its memory is still there.
  struct reset_on_exit {
    json::parser& parser;
    ~reset_on_exit() { parser.reset(); }
  } reset{parser};
  json::error_code ec;
  const std::size_t consumed = parser.write(line.data(), line.size(), ec);
  if (ec == json::error::too_deep) {
    return make_error(error_code::too_deep,
                      "JSON nests deeper than the limit of " +
                          std::to_string(receiver_limits.max_depth) + " levels (at offset " +
                          std::to_string(consumed) + ")",
                      /*fatal=*/true);
  }
  if (ec) {
    if (const std::size_t bad = first_invalid_utf8(line); bad != std::string_view::npos) {
      return make_error(error_code::malformed_json,
                        "malformed JSON: invalid UTF-8 at offset " + std::to_string(bad));
    }
    return make_error(error_code::malformed_json,
                      "malformed JSON at offset " + std::to_string(consumed) + ": " + ec.message());
  }
  const json::value value = parser.release();
  if (!value.is_object()) {
    return make_error(error_code::not_an_object,
                      "expected a JSON object, got " + describe(value, true, line));
  }
  return decode_object(value.get_object(), line);
}

decode_result internal_error(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) {
    return make_error(error_code::internal, "out of memory while decoding a line");
  }
  return make_error(error_code::internal, std::string("decoding failed: ") + e.what());
}

}  // namespace

decode_result line_decoder::decode(std::string_view line) {
  const limits& receiver_limits = state_->receiver_limits;
  if (line.size() > receiver_limits.max_line_bytes) {
    return line_too_long_error(line, receiver_limits);
  }
  try {
    if (std::optional<message> plain = decode_plain(line, receiver_limits.max_depth)) {
      ++state_->plain_lines;
      return std::move(*plain);
    }
    json::monotonic_resource document_memory{decoder_scratch(), decoder_scratch_bytes};
    return decode_document(line, receiver_limits, state_->parser,
                           json::storage_ptr{&document_memory});
  } catch (const std::exception& e) {
    return internal_error(e);
  }
}

decode_result decode(std::string_view line, const limits& receiver_limits) {
  if (line.size() > receiver_limits.max_line_bytes) {
    return line_too_long_error(line, receiver_limits);
  }
  try {
    json::parser parser{json::storage_ptr{}, parse_options_for(receiver_limits)};
    return decode_document(line, receiver_limits, parser, json::storage_ptr{});
  } catch (const std::exception& e) {
    return internal_error(e);
  }
}

error_message to_error_message(const protocol_error& e) {
  error_message m;
  m.code = std::string(to_string(e.code));
  m.message = e.message;
  m.fatal = e.fatal;
  m.module = e.module;
  m.attempt = e.attempt;
  return m;
}

error_message make_error_message(error_code code, std::string text, bool fatal) {
  error_message m;
  m.code = std::string(to_string(code));
  m.message = std::move(text);
  m.fatal = fatal;
  return m;
}

std::optional<int> choose_version(std::span<const int> offered,
                                  std::span<const int> supported) noexcept {
  std::optional<int> best;
  for (int v : offered) {
    if (std::find(supported.begin(), supported.end(), v) == supported.end()) continue;
    if (!best || v > *best) best = v;
  }
  return best;
}

bool token_matches(std::string_view expected, std::string_view presented) noexcept {
  // Every byte of `expected` is compared against something, whatever `presented` holds, and
  // the differences are OR-ed together with no early exit.
  unsigned difference = expected.size() == presented.size() ? 0u : 1u;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const unsigned char other =
        presented.empty() ? 0 : static_cast<unsigned char>(presented[i % presented.size()]);
    difference |= static_cast<unsigned char>(expected[i]) ^ other;
  }
  // An empty expected token matches only an empty presented one.
  return difference == 0;
}

}  // namespace drover::coord
