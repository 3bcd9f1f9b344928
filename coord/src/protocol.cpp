#include <drover/coord/protocol.hpp>

#include "protocol_detail.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>

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

using detail::decode_plain;
using detail::first_invalid_utf8;
using detail::is_attempt_outcome;

constexpr std::uint64_t no_max = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t u32_max = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t int_max = INT_MAX;

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
  m.stay = in.bool_or("stay", false);
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
     [](field_reader& in) -> message {
       drain_message m;
       m.reason = in.string_or_empty("reason");
       m.rejoin = in.bool_or("rejoin", false);
       return m;
     }},
    {"bye", [](field_reader& in) -> message { return bye_message{in.string_or_empty("reason")}; }},
    {"error", [](field_reader& in) -> message { return read_error(in); }},
};

static_assert(std::size(message_kinds) == std::variant_size_v<message>,
              "message_kinds lists every message type in variant order");

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

namespace {

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
