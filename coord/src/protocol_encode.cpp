// The protocol's encoder: every message straight into its line (protocol.hpp, encode).

#include "protocol_detail.hpp"

#include <boost/json/serializer.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <type_traits>

namespace drover::coord {

namespace json = boost::json;

namespace {

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

}  // namespace

namespace detail {

std::size_t first_invalid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t length = utf8_sequence_length(s, i);
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

// Only valid on serialized JSON: there every byte >= 0x80 is inside a string, where an
// escape is legal.
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

}  // namespace detail

namespace {

using detail::first_invalid_utf8;
using detail::repair_serialized_utf8;

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
  if (m.stay) w.key("stay").boolean(true);
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
  if (m.rejoin) w.key("rejoin").boolean(true);
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

}  // namespace

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

}  // namespace drover::coord
