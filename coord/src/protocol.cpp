#include <drover/coord/protocol.hpp>

#include <boost/json/object.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <climits>
#include <limits>
#include <new>
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

/// "got ..." text for an error message. Strings are shown only when `show_strings` (never
/// for a token), short, and cut at a UTF-8 boundary so the error line itself stays valid.
std::string describe(const json::value& v, bool show_strings = true) {
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
      return number_text(v.get_double());
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
  explicit field_reader(const json::object& object) : object_{object} {}

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

  /// Any JSON; absent is null.
  json::value any(std::string_view key) {
    const json::value* v = find(key);
    return v == nullptr ? json::value{} : *v;
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
    if (got != nullptr) problem_->append(", got ").append(describe(*got, show));
  }

  const json::value* find(std::string_view key) const { return object_.if_contains(key); }

 private:
  const json::object& object_;
  std::optional<std::string> problem_;
};

// --- statuses ---------------------------------------------------------------------------

std::optional<module_status> parse_module_status(std::string_view name) noexcept {
  for (std::size_t i = 0; i < module_status_count; ++i) {
    const auto status = static_cast<module_status>(i);
    if (to_string(status) == name) return status;
  }
  return std::nullopt;
}

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
  if (v->is_string()) status = parse_module_status(v->get_string());
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
                  dependency_statuses, [](module_status s) { return s != module_status::pending; });
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

json::array to_json(const std::vector<std::string>& strings) {
  json::array out;
  out.reserve(strings.size());
  for (const std::string& s : strings)
    out.emplace_back(s);
  return out;
}

template <typename Value>
void put_optional(json::object& o, std::string_view key, const std::optional<Value>& v) {
  if (v) o[key] = *v;
}

void put(json::object& o, const hello_message& m) {
  json::array versions;
  for (int v : m.versions)
    versions.emplace_back(v);
  o["versions"] = std::move(versions);
  put_optional(o, "worker_id", m.worker_id);
  o["capabilities"] = to_json(m.capabilities);
  o["slots"] = m.slots;
  put_optional(o, "token", m.token);
  put_optional(o, "pid", m.pid);
  put_optional(o, "host", m.host);
}

void put(json::object& o, const welcome_message& m) {
  o["protocol"] = m.protocol;
  o["worker"] = m.worker;
  o["run"] = m.run;
  o["epoch"] = m.epoch;
  o["heartbeat_ms"] = m.heartbeat_ms;
  o["lost_after_ms"] = m.lost_after_ms;
  o["max_line_bytes"] = m.max_line_bytes;
}

void put(json::object& o, const assign_message& m) {
  o["run"] = m.run;
  o["epoch"] = m.epoch;
  o["module"] = m.module;
  o["attempt"] = m.attempt;
  o["kind"] = m.kind;
  o["params"] = m.params;
  put_optional(o, "timeout_ms", m.timeout_ms);
  o["deps"] = to_json(m.deps);
  json::object results;
  results.reserve(m.results.size());
  for (const dependency_result& r : m.results) {
    results[r.module] = json::object{{"status", to_string(r.status)}, {"value", r.value}};
  }
  o["results"] = std::move(results);
  put_optional(o, "matrix_target", m.matrix_target);
}

void put(json::object& o, const result_message& m) {
  o["run"] = m.run;
  o["epoch"] = m.epoch;
  o["module"] = m.module;
  o["attempt"] = m.attempt;
  o["status"] = to_string(m.status);
  if (m.status == module_status::succeeded) {
    o["value"] = m.value;
  } else {
    o["error"] = m.error;
  }
  put_optional(o, "started_at_ms", m.started_at_ms);
  put_optional(o, "finished_at_ms", m.finished_at_ms);
}

void put(json::object& o, const heartbeat_message& m) {
  json::array running;
  running.reserve(m.running.size());
  for (const running_attempt& r : m.running) {
    running.emplace_back(json::object{{"module", r.module}, {"attempt", r.attempt}});
  }
  o["running"] = std::move(running);
}

void put(json::object& o, const cancel_message& m) {
  o["run"] = m.run;
  o["epoch"] = m.epoch;
  o["module"] = m.module;
  o["attempt"] = m.attempt;
  o["reason"] = m.reason;
}

void put(json::object& o, const drain_message& m) {
  o["reason"] = m.reason;
}

void put(json::object& o, const bye_message& m) {
  o["reason"] = m.reason;
}

void put(json::object& o, const error_message& m) {
  o["code"] = m.code;
  o["message"] = m.message;
  o["fatal"] = m.fatal;
  put_optional(o, "module", m.module);
  put_optional(o, "attempt", m.attempt);
}

protocol_error make_error(error_code code, std::string text, bool fatal = false) {
  protocol_error e;
  e.code = code;
  e.message = std::move(text);
  e.fatal = fatal;
  return e;
}

decode_result decode_object(const json::object& object) {
  const json::value* type = object.if_contains("type");
  if (type == nullptr || type->is_null()) {
    return make_error(error_code::missing_type, "field 'type': missing, expected a string");
  }
  if (!type->is_string()) {
    return make_error(error_code::bad_field,
                      "field 'type': expected a string, got " + describe(*type));
  }
  const std::string_view name = type->get_string();
  const auto kind = std::find_if(std::begin(message_kinds), std::end(message_kinds),
                                 [&](const message_kind& k) { return k.name == name; });
  if (kind == std::end(message_kinds)) {
    return make_error(error_code::unknown_type, "unknown message type " + describe(*type));
  }

  field_reader in{object};
  message m = kind->read(in);
  if (!in.failed()) return m;

  protocol_error e =
      make_error(error_code::bad_field, std::string(kind->name) + ": " + in.take_problem());
  e.type = std::string(kind->name);
  // Name the assignment the bad message was about, when it says so validly.
  field_reader module_reader{object};
  e.module = module_reader.optional_string("module");
  field_reader attempt_reader{object};
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
  json::object o;
  o["type"] = type_name(m);
  std::visit([&](const auto& typed) { put(o, typed); }, m);
  std::string line = json::serialize(o);
  if (const std::size_t bad = first_invalid_utf8(line); bad != std::string::npos) {
    line = repair_serialized_utf8(line, bad);
  }
  line += '\n';
  return line;
}

decode_result decode(std::string_view line, const limits& receiver_limits) {
  if (line.size() > receiver_limits.max_line_bytes) {
    return make_error(error_code::line_too_long,
                      "line of " + std::to_string(line.size()) + " bytes exceeds the limit of " +
                          std::to_string(receiver_limits.max_line_bytes) + " bytes",
                      /*fatal=*/true);
  }
  try {
    json::parse_options options;
    options.max_depth = receiver_limits.max_depth;
    json::parser parser{json::storage_ptr{}, options};
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
      return make_error(
          error_code::malformed_json,
          "malformed JSON at offset " + std::to_string(consumed) + ": " + ec.message());
    }
    const json::value value = parser.release();
    if (!value.is_object()) {
      return make_error(error_code::not_an_object,
                        "expected a JSON object, got " + describe(value));
    }
    return decode_object(value.get_object());
  } catch (const std::bad_alloc&) {
    return make_error(error_code::internal, "out of memory while decoding a line");
  } catch (const std::exception& e) {
    return make_error(error_code::internal, std::string("decoding failed: ") + e.what());
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
