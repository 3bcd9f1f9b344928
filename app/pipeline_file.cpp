#include "pipeline_file.hpp"

#include <drover/graph.hpp>
#include <drover/modules/exec.hpp>
#include <drover/modules/interpolation.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/stream_parser.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace drover::app {

namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

const std::vector<std::string> pipeline_fields{"name", "mode", "defaults", "pools", "modules"};
const std::vector<std::string> defaults_fields{"retries", "backoff", "timeout"};
const std::vector<std::string> module_fields{
    "id",      "kind",      "params",     "deps",           "retries",
    "backoff", "timeout",   "always_run", "ignore_failure", "skip_if",
    "tags",    "priority",  "requires",   "pin_local",      "not_in_parallel",
    "claims",  "pool",      "pool_slots", "matrix",         "matrix_requires",
    "inputs",  "input_env", "outputs",    "cache",          "version"};
const std::vector<std::string> claim_fields{"resource", "mode"};
const std::vector<std::string> backoff_fields{"initial", "multiplier", "max", "jitter"};
const std::vector<std::string> skip_if_fields{"env", "env_equals", "file_exists"};

constexpr std::string_view duration_expected =
    R"(expected a duration: milliseconds as an integer, or a string such as "500ms", "30s", "2m" or "1h")";

json::parse_options file_parse_options() {
  json::parse_options options;
  options.allow_comments = true;
  options.allow_trailing_commas = true;
  options.max_depth = 64;
  return options;
}

// The index of the module `pointer` lies in ("/modules/3/deps" -> 3), if it lies in one.
std::optional<std::size_t> module_index_of(std::string_view pointer) {
  constexpr std::string_view prefix = "/modules/";
  if (!pointer.starts_with(prefix)) return std::nullopt;
  pointer.remove_prefix(prefix.size());
  std::size_t index = 0;
  auto [end, ec] = std::from_chars(pointer.data(), pointer.data() + pointer.size(), index);
  if (ec != std::errc{} || (end != pointer.data() + pointer.size() && *end != '/')) {
    return std::nullopt;
  }
  return index;
}

// The field a pointer names, as users write it: "/modules/3/backoff/jitter" -> "backoff.jitter",
// "/modules/3/deps/1" -> "deps[1]", "/defaults/retries" -> "defaults.retries".
std::string field_of(std::string_view pointer) {
  if (module_index_of(pointer)) {
    pointer.remove_prefix(std::string_view{"/modules/"}.size());
    const auto slash = pointer.find('/');
    pointer = slash == std::string_view::npos ? std::string_view{} : pointer.substr(slash);
  }
  std::string field;
  while (!pointer.empty()) {
    pointer.remove_prefix(1);
    const auto slash = pointer.find('/');
    std::string_view token = pointer.substr(0, slash);
    pointer = slash == std::string_view::npos ? std::string_view{} : pointer.substr(slash);
    const bool is_index = !token.empty() && std::all_of(token.begin(), token.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
    if (is_index && !field.empty()) {
      field += '[';
      field += token;
      field += ']';
      continue;
    }
    if (!field.empty()) field += '.';
    for (std::size_t i = 0; i < token.size(); ++i) {
      if (token.substr(i, 2) == "~1") {
        field += '/';
        ++i;
      } else if (token.substr(i, 2) == "~0") {
        field += '~';
        ++i;
      } else {
        field += token[i];
      }
    }
  }
  return field;
}

// The inverse of field_of within one module: "params.argv[2]" -> "/params/argv/2".
std::string pointer_of_field(std::string_view field) {
  std::string pointer;
  std::string token;
  auto flush = [&] {
    if (!token.empty()) pointer += '/' + pointer_token(token);
    token.clear();
  };
  for (char c : field) {
    if (c == '.' || c == '[') {
      flush();
    } else if (c != ']') {
      token += c;
    }
  }
  flush();
  return pointer;
}

// Where in a module's object the field an engine problem names is written. Most are written as
// the engine names them; a matrix's axes are the matrix itself.
std::string pointer_of_engine_field(std::string_view field) {
  if (field == "matrix.axes") return "/matrix";
  if (field == "matrix.requires_axes") return "/matrix_requires";
  return pointer_of_field(field);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment: Levenshtein plus swaps of neighbours, so "retires" is one edit
  // away from "retries".
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i)
    d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j)
    d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The id in the file of the module `id` names: `build` for its matrix instance `build[linux]`.
// A matrix module's own id may not contain brackets, so it is all before the first '['.
std::string_view file_id_of(std::string_view id) {
  return id.substr(0, id.find('['));
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  for (std::size_t at = 0;;) {
    const auto next = from.empty() ? std::string_view::npos : text.find(from, at);
    out += text.substr(at, next - at);
    if (next == std::string_view::npos) return out;
    out += to;
    at = next + from.size();
  }
}

// Which entry of `deps` a dependency problem is about, from what the problem names: the
// unknown module, the module itself, or the next one in a cycle (a -> b -> a: a's entry b).
std::optional<std::size_t> blamed_dependency(const validation_problem& problem,
                                             const std::vector<std::string>& deps) {
  auto find = [&](std::string_view name) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < deps.size(); ++i) {
      if (deps[i] == name) return i;
    }
    // A dependency on a matrix module reaches its instances: `build` for `build[linux]`.
    for (std::size_t i = 0; i < deps.size(); ++i) {
      if (deps[i] == file_id_of(name)) return i;
    }
    return std::nullopt;
  };
  switch (problem.kind) {
    case problem_kind::unknown_dependency:
    case problem_kind::self_dependency:
      if (!problem.ids.empty()) return find(problem.ids.front());
      break;
    case problem_kind::dependency_cycle:
      if (problem.ids.size() >= 2) return find(problem.ids[1]);
      break;
    default:
      break;
  }
  return std::nullopt;
}

// The JSON pointer of a path into a value: {"argv", 2} -> "/argv/2".
std::string pointer_of_path(const modules::json_path& path) {
  std::string pointer;
  for (const auto& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      pointer += '/' + pointer_token(*key);
    } else {
      pointer += '/' + std::to_string(std::get<std::size_t>(step));
    }
  }
  return pointer;
}

std::string kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

// Reads the DOM of a pipeline file into a pipeline, recording every problem with its position.
class pipeline_reader {
 public:
  pipeline_reader(const json_source_map& sources, const modules::registry& kinds)
      : sources_(sources), kinds_(kinds) {
    for (const auto& duplicate : sources_.duplicate_keys()) {
      const std::string_view member = duplicate.pointer;
      duplicates_by_object_[std::string{member.substr(0, member.rfind('/'))}].push_back(&duplicate);
    }
  }

  loaded_pipeline read(const json::value& root, std::string name);

 private:
  enum class place { value, key };

  void problem(std::string_view pointer, std::string message, place where = place::value,
               bool names_field = true);
  void warning(std::string_view pointer, std::string message);
  void check_fields(const json::object& object, const std::string& pointer,
                    const std::vector<std::string>& known);
  void check_duplicates(const std::string& pointer);

  std::optional<std::string> read_string(const json::value& v, const std::string& pointer);
  std::optional<std::int64_t> read_integer(const json::value& v, const std::string& pointer,
                                           std::int64_t min, std::string_view expected);
  std::optional<bool> read_bool(const json::value& v, const std::string& pointer);
  std::optional<double> read_number(const json::value& v, const std::string& pointer, double min,
                                    double max, std::string_view expected);
  std::optional<milliseconds> read_duration(const json::value& v, const std::string& pointer,
                                            bool positive);
  std::optional<std::vector<std::string>> read_string_list(const json::value& v,
                                                           const std::string& pointer);
  std::optional<backoff_policy> read_backoff(const json::value& v, const std::string& pointer,
                                             backoff_policy base);
  skip_condition read_skip_if(const json::value& v, const std::string& pointer);
  void read_defaults(const json::value& v, module_defaults& defaults);
  void read_pools(const json::value& v);
  std::optional<std::vector<resource_claim>> read_claims(const json::value& v,
                                                         const std::string& pointer);
  void read_pool(const json::object& object, const std::string& pointer, module_spec& spec);
  void read_constraints(const json::object& object, const std::string& pointer, module_spec& spec);
  void read_io(const json::object& object, const std::string& pointer, module_spec& spec);
  std::optional<std::vector<matrix_combination>> read_combinations(const json::value& v,
                                                                   const std::string& pointer);
  std::optional<matrix_spec> read_matrix(const json::value& v, const std::string& pointer);
  module_spec read_module(const json::value& v, std::size_t index, const module_defaults& defaults);
  void check_graph(pipeline& p);

  const json_source_map& sources_;
  const modules::registry& kinds_;
  std::vector<std::string> module_ids_;  // by place in the file; empty when unknown
  std::vector<pipeline_problem> problems_;
  std::vector<pipeline_problem> warnings_;
  std::unordered_set<std::string> blamed_pointers_;  // where problems_ point
  // The pools the file declares. A name whose slot count is wrong is in pool_names_ but not in
  // pools_, so modules that use it are not blamed for the pool's own problem.
  enum class pools_field { absent, malformed, read } pools_field_ = pools_field::absent;
  std::map<std::string, std::uint32_t> pools_;
  std::vector<std::string> pool_names_;
  std::unordered_map<std::string, std::vector<const json_source_map::duplicate_key*>>
      duplicates_by_object_;
};

void pipeline_reader::problem(std::string_view pointer, std::string message, place where,
                              bool names_field) {
  pipeline_problem p;
  p.position =
      where == place::key ? sources_.key_position(pointer) : sources_.value_position(pointer);
  if (auto index = module_index_of(pointer)) {
    if (*index < module_ids_.size() && !module_ids_[*index].empty()) {
      p.module = module_ids_[*index];
    } else {
      p.module_number = *index + 1;
    }
  }
  if (names_field) p.field = field_of(pointer);
  p.message = std::move(message);
  problems_.push_back(std::move(p));
  blamed_pointers_.emplace(pointer);
}

// Placed and named as a problem is, but it blames nothing: the file stays valid.
void pipeline_reader::warning(std::string_view pointer, std::string message) {
  const std::string at{pointer};
  const bool blamed_before = blamed_pointers_.contains(at);
  problem(pointer, std::move(message));
  if (!blamed_before) blamed_pointers_.erase(at);
  warnings_.push_back(std::move(problems_.back()));
  problems_.pop_back();
}

void pipeline_reader::check_fields(const json::object& object, const std::string& pointer,
                                   const std::vector<std::string>& known) {
  for (const auto& member : object) {
    const std::string_view key = member.key();
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string message = "unknown field '" + std::string{key} + "'";
    if (auto suggestion = closest_match(key, known); !suggestion.empty()) {
      message += " (did you mean '" + suggestion + "'?)";
    }
    problem(pointer + '/' + pointer_token(key), std::move(message), place::key, false);
  }
  check_duplicates(pointer);
}

void pipeline_reader::check_duplicates(const std::string& pointer) {
  // Reported once and forgotten: a matrix module is read once per instance, and what is left
  // at the end is in objects no field reader checks.
  if (auto it = duplicates_by_object_.find(pointer); it != duplicates_by_object_.end()) {
    for (const auto* duplicate : it->second) {
      problem(duplicate->pointer, "duplicate field: a field may appear only once", place::key);
      problems_.back().position = sources_.position_at(duplicate->offset);
    }
    duplicates_by_object_.erase(it);
  }
}

std::optional<std::string> pipeline_reader::read_string(const json::value& v,
                                                        const std::string& pointer) {
  if (!v.is_string()) {
    problem(pointer, "expected a string");
    return std::nullopt;
  }
  return std::string{v.get_string()};
}

std::optional<std::int64_t> pipeline_reader::read_integer(const json::value& v,
                                                          const std::string& pointer,
                                                          std::int64_t min,
                                                          std::string_view expected) {
  constexpr std::int64_t max = std::numeric_limits<int>::max();
  if (v.is_int64() && v.get_int64() >= min && v.get_int64() <= max) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(max)) {
    return static_cast<std::int64_t>(v.get_uint64());
  }
  problem(pointer, std::string{expected});
  return std::nullopt;
}

std::optional<bool> pipeline_reader::read_bool(const json::value& v, const std::string& pointer) {
  if (!v.is_bool()) {
    problem(pointer, "expected true or false");
    return std::nullopt;
  }
  return v.get_bool();
}

std::optional<double> pipeline_reader::read_number(const json::value& v, const std::string& pointer,
                                                   double min, double max,
                                                   std::string_view expected) {
  if (v.is_number()) {
    const double d = v.to_number<double>();
    if (d >= min && d <= max) return d;
  }
  problem(pointer, std::string{expected});
  return std::nullopt;
}

std::optional<milliseconds> pipeline_reader::read_duration(const json::value& v,
                                                           const std::string& pointer,
                                                           bool positive) {
  std::optional<milliseconds> result;
  // An upper bound far beyond any sensible limit keeps later arithmetic from overflowing.
  constexpr std::int64_t max_ms = std::int64_t{1} << 50;
  if (v.is_int64() && v.get_int64() >= 0 && v.get_int64() <= max_ms) {
    result = milliseconds{v.get_int64()};
  } else if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(max_ms)) {
    result = milliseconds{static_cast<std::int64_t>(v.get_uint64())};
  } else if (milliseconds parsed; v.is_string() && parse_duration(v.get_string(), parsed)) {
    result = parsed;
  }
  if (!result) {
    problem(pointer, std::string{duration_expected});
  } else if (positive && result->count() == 0) {
    problem(pointer, "expected a positive duration");
    result.reset();
  }
  return result;
}

std::optional<std::vector<std::string>> pipeline_reader::read_string_list(
    const json::value& v, const std::string& pointer) {
  if (!v.is_array()) {
    problem(pointer, "expected an array of strings");
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (std::size_t i = 0; i < v.get_array().size(); ++i) {
    const auto& element = v.get_array()[i];
    if (!element.is_string() || element.get_string().empty()) {
      problem(pointer + '/' + std::to_string(i), "expected a non-empty string");
      ok = false;
      continue;
    }
    out.emplace_back(element.get_string());
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<backoff_policy> pipeline_reader::read_backoff(const json::value& v,
                                                            const std::string& pointer,
                                                            backoff_policy base) {
  if (!v.is_object()) {
    problem(pointer, R"(expected an object such as {"initial": "100ms", "multiplier": 2})");
    return std::nullopt;
  }
  const auto& object = v.get_object();
  check_fields(object, pointer, backoff_fields);
  const std::size_t problems_before = problems_.size();
  if (auto* initial = object.if_contains("initial")) {
    if (auto d = read_duration(*initial, pointer + "/initial", false)) base.initial = *d;
  }
  if (auto* multiplier = object.if_contains("multiplier")) {
    if (auto m = read_number(*multiplier, pointer + "/multiplier", 1.0,
                             std::numeric_limits<double>::max(), "expected a number >= 1")) {
      base.multiplier = *m;
    }
  }
  if (auto* max = object.if_contains("max")) {
    if (auto d = read_duration(*max, pointer + "/max", false)) base.max = *d;
  }
  if (auto* jitter = object.if_contains("jitter")) {
    if (auto j =
            read_number(*jitter, pointer + "/jitter", 0.0, 1.0, "expected a number from 0 to 1")) {
      base.jitter = *j;
    }
  }
  if (problems_.size() != problems_before) return std::nullopt;
  return base;
}

skip_condition pipeline_reader::read_skip_if(const json::value& v, const std::string& pointer) {
  constexpr std::string_view expected =
      R"(expected an object with one of "env", "env_equals" or "file_exists")";
  if (!v.is_object()) {
    problem(pointer, std::string{expected});
    return {};
  }
  const auto& object = v.get_object();
  check_fields(object, pointer, skip_if_fields);
  std::size_t known = 0;
  for (const auto& name : skip_if_fields)
    known += object.contains(name) ? 1 : 0;
  if (known != 1) {
    problem(pointer, std::string{expected});
    return {};
  }
  if (auto* env = object.if_contains("env")) {
    if (!env->is_string() || env->get_string().empty()) {
      problem(pointer + "/env", "expected the name of an environment variable");
      return {};
    }
    return [name = std::string{env->get_string()}]() -> std::optional<std::string> {
      const char* value = std::getenv(name.c_str());
      if (value == nullptr || *value == '\0') return std::nullopt;
      return "skip_if: environment variable " + name + " is set";
    };
  }
  if (auto* env_equals = object.if_contains("env_equals")) {
    const std::string member_pointer = pointer + "/env_equals";
    if (!env_equals->is_object() || env_equals->get_object().size() != 1 ||
        !env_equals->get_object().begin()->value().is_string()) {
      problem(member_pointer, R"(expected an object with one member, such as {"CI": "true"})");
      return {};
    }
    const auto& member = *env_equals->get_object().begin();
    return [name = std::string{member.key()},
            wanted = std::string{member.value().get_string()}]() -> std::optional<std::string> {
      const char* value = std::getenv(name.c_str());
      if (value == nullptr || wanted != value) return std::nullopt;
      return "skip_if: environment variable " + name + " equals \"" + wanted + "\"";
    };
  }
  const auto& file = object.at("file_exists");
  if (!file.is_string() || file.get_string().empty()) {
    problem(pointer + "/file_exists", "expected a path");
    return {};
  }
  return [path = std::string{file.get_string()}]() -> std::optional<std::string> {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return std::nullopt;
    return "skip_if: file " + path + " exists";
  };
}

void pipeline_reader::read_defaults(const json::value& v, module_defaults& defaults) {
  const std::string pointer = "/defaults";
  if (!v.is_object()) {
    problem(pointer, "expected an object with any of retries, backoff, timeout");
    return;
  }
  const auto& object = v.get_object();
  check_fields(object, pointer, defaults_fields);
  if (auto* retries = object.if_contains("retries")) {
    if (auto r =
            read_integer(*retries, pointer + "/retries", 0, "expected a non-negative integer")) {
      defaults.retries = static_cast<int>(*r);
    }
  }
  if (auto* backoff = object.if_contains("backoff")) {
    if (auto b = read_backoff(*backoff, pointer + "/backoff", defaults.backoff)) {
      defaults.backoff = *b;
    }
  }
  if (auto* timeout = object.if_contains("timeout")) {
    if (auto t = read_duration(*timeout, pointer + "/timeout", true)) defaults.timeout = *t;
  }
}

void pipeline_reader::read_pools(const json::value& v) {
  const std::string pointer = "/pools";
  if (!v.is_object()) {
    problem(pointer, R"(expected an object of pool names and their slots, such as {"network": 2})");
    pools_field_ = pools_field::malformed;
    return;
  }
  pools_field_ = pools_field::read;
  for (const auto& member : v.get_object()) {
    const std::string member_pointer = pointer + '/' + pointer_token(member.key());
    if (member.key().empty()) {
      problem(member_pointer, "a pool needs a non-empty name", place::key, false);
      problems_.back().field = "pools";
      continue;
    }
    pool_names_.emplace_back(member.key());
    if (auto slots = read_integer(member.value(), member_pointer, 1,
                                  "expected the number of slots: an integer >= 1")) {
      pools_[std::string{member.key()}] = static_cast<std::uint32_t>(*slots);
    }
  }
  check_duplicates(pointer);
}

std::optional<std::vector<resource_claim>> pipeline_reader::read_claims(
    const json::value& v, const std::string& pointer) {
  if (!v.is_array()) {
    problem(pointer, R"(expected an array of claims, such as ["db/users"])");
    return std::nullopt;
  }
  std::vector<resource_claim> claims;
  const std::size_t problems_before = problems_.size();
  for (std::size_t i = 0; i < v.get_array().size(); ++i) {
    const auto& element = v.get_array()[i];
    const std::string at = pointer + '/' + std::to_string(i);
    if (element.is_string()) {
      if (element.get_string().empty()) {
        problem(at, "expected a non-empty resource name");
      } else {
        claims.push_back({std::string{element.get_string()}, claim_mode::write});
      }
      continue;
    }
    if (!element.is_object()) {
      problem(
          at,
          R"(expected a resource name such as "db/users", or an object such as {"resource": "db/users", "mode": "read"})");
      continue;
    }
    const auto& object = element.get_object();
    check_fields(object, at, claim_fields);
    resource_claim claim;
    if (const auto* resource = object.if_contains("resource")) {
      if (!resource->is_string() || resource->get_string().empty()) {
        problem(at + "/resource", "expected a non-empty resource name");
      } else {
        claim.resource = resource->get_string();
      }
    } else {
      problem(at, "missing field 'resource'");
    }
    if (const auto* mode = object.if_contains("mode")) {
      if (mode->is_string() && mode->get_string() == "read") {
        claim.mode = claim_mode::read;
      } else if (mode->is_string() && mode->get_string() == "write") {
        claim.mode = claim_mode::write;
      } else {
        problem(at + "/mode", R"(expected "read" or "write")");
      }
    }
    claims.push_back(std::move(claim));
  }
  if (problems_.size() != problems_before) return std::nullopt;
  return claims;
}

void pipeline_reader::read_pool(const json::object& object, const std::string& pointer,
                                module_spec& spec) {
  const auto* pool = object.if_contains("pool");
  const auto* slots = object.if_contains("pool_slots");
  std::optional<std::uint32_t> slot_count;
  if (slots != nullptr) {
    if (auto n = read_integer(*slots, pointer + "/pool_slots", 1, "expected an integer >= 1")) {
      slot_count = static_cast<std::uint32_t>(*n);
      if (pool == nullptr) {
        problem(pointer + "/pool_slots", R"(pool_slots needs a pool: set "pool" too)");
      }
    }
  }
  if (pool == nullptr) return;
  const std::string at = pointer + "/pool";
  if (!pool->is_string() || pool->get_string().empty()) {
    problem(at, "expected the name of a pool");
    return;
  }
  const std::string name{pool->get_string()};
  if (pools_field_ == pools_field::malformed) return;  // the pools field is blamed instead
  const auto known = pools_.find(name);
  if (known == pools_.end()) {
    // A pool whose own slot count is wrong has been reported where it is declared.
    if (std::find(pool_names_.begin(), pool_names_.end(), name) != pool_names_.end()) return;
    std::string message = "unknown pool '" + name + "'";
    if (pool_names_.empty()) {
      message +=
          R"( (declare it in the top-level "pools", such as "pools": {")" + name + R"(": 2}))";
    } else if (auto suggestion = closest_match(name, pool_names_); !suggestion.empty()) {
      message += " (did you mean '" + suggestion + "'?)";
    } else {
      message += " (known pools: " + quoted_list(pool_names_) + ")";
    }
    problem(at, std::move(message));
    return;
  }
  if (slot_count && *slot_count > known->second) {
    problem(pointer + "/pool_slots", "pool '" + name + "' has " + std::to_string(known->second) +
                                         (known->second == 1 ? " slot" : " slots") +
                                         "; a module cannot take more");
    return;
  }
  auto& constraints = spec.constraints.ensure();
  constraints.pool = name;
  if (slot_count) constraints.pool_slots = *slot_count;
}

void pipeline_reader::read_constraints(const json::object& object, const std::string& pointer,
                                       module_spec& spec) {
  // A box is made only for a setting that constrains something, so plain modules stay small.
  if (const auto* labels = object.if_contains("requires")) {
    if (auto l = read_string_list(*labels, pointer + "/requires"); l && !l->empty()) {
      spec.constraints.ensure().required_capabilities = std::move(*l);
    }
  }
  if (const auto* pin = object.if_contains("pin_local")) {
    if (read_bool(*pin, pointer + "/pin_local").value_or(false)) {
      spec.constraints.ensure().pin_local = true;
    }
  }
  if (const auto* exclusive = object.if_contains("not_in_parallel")) {
    const std::string at = pointer + "/not_in_parallel";
    if (exclusive->is_bool()) {
      if (exclusive->get_bool()) spec.constraints.ensure().run_alone = true;
    } else if (exclusive->is_array()) {
      if (auto keys = read_string_list(*exclusive, at); keys && !keys->empty()) {
        spec.constraints.ensure().not_in_parallel = std::move(*keys);
      }
    } else {
      problem(at, R"(expected true, false or an array of keys, such as ["database"])");
    }
  }
  if (const auto* claims = object.if_contains("claims")) {
    if (auto c = read_claims(*claims, pointer + "/claims"); c && !c->empty()) {
      spec.constraints.ensure().claims = std::move(*c);
    }
  }
  read_pool(object, pointer, spec);
}

void pipeline_reader::read_io(const json::object& object, const std::string& pointer,
                              module_spec& spec) {
  // As for constraints, a box is made only for a field that is set. The engine checks the
  // globs and the variable names (drover::build_graph); problems it finds point at the entry.
  for (const auto& [field, target] :
       {std::pair{"inputs", &module_io::inputs}, std::pair{"input_env", &module_io::input_env},
        std::pair{"outputs", &module_io::outputs}}) {
    if (const auto* list = object.if_contains(field)) {
      if (auto l = read_string_list(*list, pointer + '/' + field); l && !l->empty()) {
        spec.io.ensure().*target = std::move(*l);
      }
    }
  }
  if (const auto* cache = object.if_contains("cache")) {
    if (auto c = read_bool(*cache, pointer + "/cache")) spec.io.ensure().cacheable = *c;
  }
  if (const auto* version = object.if_contains("version")) {
    if (auto v = read_string(*version, pointer + "/version")) spec.io.ensure().version = *v;
  }
  // A command that runs in the workspace can read any file there: without declared inputs its
  // fingerprint sees none of them, and a cache hit could be stale (docs/caching.md).
  if (!object.contains("cache") && (!spec.io || spec.io->inputs.empty()) &&
      modules::runs_in_workspace(spec)) {
    spec.io.ensure().cacheable = false;
    warning(pointer + "/params/cwd",
            "runs in the workspace but declares no inputs, so its fingerprint cannot see the "
            "files it reads: it is not cached. Declare them in \"inputs\", or set \"cache\": "
            "true to cache it on its definition and dependencies alone");
  }
}

std::optional<std::vector<matrix_combination>> pipeline_reader::read_combinations(
    const json::value& v, const std::string& pointer) {
  constexpr std::string_view expected_entry =
      R"(expected an object of axis values, such as {"os": "linux"})";
  if (!v.is_array()) {
    problem(pointer, R"(expected an array of objects, such as [{"os": "linux"}])");
    return std::nullopt;
  }
  std::vector<matrix_combination> combinations;
  const std::size_t problems_before = problems_.size();
  for (std::size_t i = 0; i < v.get_array().size(); ++i) {
    const auto& element = v.get_array()[i];
    const std::string at = pointer + '/' + std::to_string(i);
    if (!element.is_object()) {
      problem(at, std::string{expected_entry});
      continue;
    }
    matrix_combination combination;
    for (const auto& member : element.get_object()) {
      const std::string member_pointer = at + '/' + pointer_token(member.key());
      if (!member.value().is_string() || member.value().get_string().empty()) {
        problem(member_pointer, "expected a non-empty string");
        continue;
      }
      combination.emplace_back(member.key(), member.value().get_string());
    }
    check_duplicates(at);
    combinations.push_back(std::move(combination));
  }
  if (problems_.size() != problems_before) return std::nullopt;
  return combinations;
}

std::optional<matrix_spec> pipeline_reader::read_matrix(const json::value& v,
                                                        const std::string& pointer) {
  // The engine checks what needs the whole matrix (empty or unknown axes, clashing ids); this
  // checks the shape, where positions are known.
  matrix_spec matrix;
  if (v.is_array()) {
    auto values = read_string_list(v, pointer);
    if (!values) return std::nullopt;
    matrix.axes.push_back({"", std::move(*values)});
    return matrix;
  }
  if (!v.is_object()) {
    problem(
        pointer,
        R"(expected an array of values, such as ["linux", "windows"], or an object of axes, such as {"os": ["linux", "windows"]})");
    return std::nullopt;
  }
  const std::size_t problems_before = problems_.size();
  for (const auto& member : v.get_object()) {
    const std::string at = pointer + '/' + pointer_token(member.key());
    if (member.key() == "include" || member.key() == "exclude") {
      if (auto c = read_combinations(member.value(), at)) {
        (member.key() == "include" ? matrix.include : matrix.exclude) = std::move(*c);
      }
      continue;
    }
    if (member.key().empty()) {
      problem(at, "an axis needs a non-empty name", place::key, false);
      problems_.back().field = field_of(pointer);
      continue;
    }
    if (auto values = read_string_list(member.value(), at)) {
      matrix.axes.push_back({std::string{member.key()}, std::move(*values)});
    }
  }
  check_duplicates(pointer);
  if (problems_.size() != problems_before) return std::nullopt;
  return matrix;
}

module_spec pipeline_reader::read_module(const json::value& v, std::size_t index,
                                         const module_defaults& defaults) {
  const std::string pointer = "/modules/" + std::to_string(index);
  // Every entry yields a module, even a broken one, so that the graph checks number modules
  // as the file does. Each has a body so that those checks do not complain about it.
  module_spec spec;
  spec.body = [](module_context&) -> boost::asio::awaitable<json::value> { co_return nullptr; };
  if (!v.is_object()) {
    problem(pointer, "expected a module object with at least \"id\" and \"kind\"");
    return spec;
  }
  const auto& object = v.get_object();
  // The id first, so that every other problem can name the module.
  if (auto* id = object.if_contains("id")) {
    if (!id->is_string() || id->get_string().empty()) {
      problem(pointer + "/id", "expected a non-empty string");
    } else {
      spec.id = id->get_string();
      module_ids_[index] = spec.id;
    }
  } else {
    problem(pointer, "missing field 'id'", place::value, false);
  }
  check_fields(object, pointer, module_fields);

  if (auto* kind = object.if_contains("kind")) {
    if (!kind->is_string() || kind->get_string().empty()) {
      problem(pointer + "/kind", "expected a non-empty string");
    } else {
      spec.kind = kind->get_string();
    }
  } else {
    problem(pointer, "missing field 'kind'", place::value, false);
  }
  if (auto* params = object.if_contains("params")) {
    spec.params = *params;
  } else {
    spec.params = json::object{};
  }
  if (!spec.kind.empty()) {
    if (!kinds_.contains(spec.kind)) {
      std::string message = "unknown kind '" + spec.kind + "'";
      const auto known = kinds_.kinds();
      if (auto suggestion = closest_match(spec.kind, known); !suggestion.empty()) {
        message += " (did you mean '" + suggestion + "'?)";
      } else {
        message += " (known kinds: " + quoted_list(known) + ")";
      }
      problem(pointer + "/kind", std::move(message));
    } else {
      try {
        spec.body = kinds_.make(spec.kind, spec.params);
      } catch (const modules::expression_error&) {
        // make() names the first; every malformed expression is worth knowing at once.
        const modules::params_template values{spec.params};
        for (const auto& found : values.problems()) {
          problem(pointer + "/params" + pointer_of_path(found.field), modules::describe(found));
        }
      } catch (const modules::params_error& e) {
        problem(pointer + pointer_of_field(e.field()), e.what());
      } catch (const std::exception& e) {
        problem(pointer + "/params", e.what());
      }
    }
  }
  if (auto* deps = object.if_contains("deps")) {
    if (auto d = read_string_list(*deps, pointer + "/deps")) spec.deps = std::move(*d);
  }
  if (auto* retries = object.if_contains("retries")) {
    if (auto r =
            read_integer(*retries, pointer + "/retries", 0, "expected a non-negative integer")) {
      spec.retries = static_cast<int>(*r);
    }
  }
  if (auto* backoff = object.if_contains("backoff")) {
    spec.backoff = read_backoff(*backoff, pointer + "/backoff", defaults.backoff);
  }
  if (auto* timeout = object.if_contains("timeout")) {
    spec.timeout = read_duration(*timeout, pointer + "/timeout", true);
  }
  if (auto* always_run = object.if_contains("always_run")) {
    spec.always_run = read_bool(*always_run, pointer + "/always_run").value_or(false);
  }
  if (auto* ignore_failure = object.if_contains("ignore_failure")) {
    spec.ignore_failure = read_bool(*ignore_failure, pointer + "/ignore_failure").value_or(false);
  }
  if (auto* skip_if = object.if_contains("skip_if")) {
    spec.skip_if = read_skip_if(*skip_if, pointer + "/skip_if");
  }
  if (auto* tags = object.if_contains("tags")) {
    if (auto t = read_string_list(*tags, pointer + "/tags")) spec.tags = std::move(*t);
  }
  if (auto* priority = object.if_contains("priority")) {
    if (auto p = read_integer(*priority, pointer + "/priority", std::numeric_limits<int>::min(),
                              "expected an integer")) {
      spec.priority = static_cast<int>(*p);
    }
  }
  read_constraints(object, pointer, spec);
  read_io(object, pointer, spec);
  const auto* matrix = object.if_contains("matrix");
  if (matrix != nullptr) {
    // A module without a usable id has no instance ids either; its id is what is reported.
    if (auto m = read_matrix(*matrix, pointer + "/matrix"); m && !spec.id.empty()) {
      spec.matrix = std::move(*m);
    }
  }
  if (auto* axes = object.if_contains("matrix_requires")) {
    const std::string at = pointer + "/matrix_requires";
    if (auto a = read_string_list(*axes, at)) {
      if (matrix == nullptr) {
        problem(at, R"(matrix_requires needs a matrix: set "matrix" too)");
      } else if (spec.matrix) {
        spec.matrix->requires_axes = std::move(*a);
      }
    }
  }
  return spec;
}

void pipeline_reader::check_graph(pipeline& p) {
  // Where each id is defined in the file. For a repeated id the later definition is the one
  // in error.
  std::unordered_map<std::string, std::size_t> place_of_id;
  for (std::size_t i = 0; i < module_ids_.size(); ++i) {
    if (!module_ids_[i].empty()) place_of_id[module_ids_[i]] = i;
  }
  // The dependencies as written, by place in the file: expansion turns a dependency on a
  // matrix module into one per instance.
  std::vector<std::vector<std::string>> deps_in_file;
  deps_in_file.reserve(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    const auto deps = p.module(i).deps();
    deps_in_file.emplace_back(deps.begin(), deps.end());
  }

  // Expand first, so that the graph is checked, and the pipeline loaded, with the instances.
  // A failed expansion leaves no graph worth checking.
  auto found_problems = expand_matrix(p);
  const bool expanded = found_problems.empty();
  if (expanded) found_problems = build_graph(p).problems;

  const auto reader_pointers = blamed_pointers_;
  // A problem that several instances of one matrix module share is reported once, for the
  // module as the file names it. Keyed by pointer and message (with the module's own id).
  std::unordered_map<std::string, std::size_t> shared_problems;
  // `pointer_in_module` says where in the module the problem is when its field cannot say.
  auto report = [&](const validation_problem& found, const std::string* pointer_in_module) {
    // A module without a usable id has been reported where it was read, and nothing can
    // depend on it; what the graph says about it adds nothing.
    if (found.module.empty() && (found.field == "id" || found.field == "deps")) return;
    std::optional<std::size_t> place;
    if (auto it = place_of_id.find(found.module); it != place_of_id.end()) {
      place = it->second;
    } else if (auto base = place_of_id.find(std::string{file_id_of(found.module)});
               base != place_of_id.end()) {
      place = base->second;
    }
    std::string pointer;
    if (place) {
      pointer = "/modules/" + std::to_string(*place) +
                (pointer_in_module ? *pointer_in_module : pointer_of_engine_field(found.field));
      if (found.field == "deps") {
        if (auto i = blamed_dependency(found, deps_in_file[*place])) {
          pointer += '/' + std::to_string(*i);
        }
      }
    } else if (!found.field.empty()) {
      pointer = pointer_of_engine_field(found.field);
    }
    // Already reported, with a message that fits the file better.
    if (reader_pointers.contains(pointer)) return;
    problem(pointer, found.message);
    if (!place || module_ids_[*place] == found.module) return;

    const std::string& file_id = module_ids_[*place];
    problems_.back().module = found.module;
    std::string shared_message = replace_all(found.message, found.module, file_id);
    auto [it, first] =
        shared_problems.try_emplace(pointer + '\n' + shared_message, problems_.size() - 1);
    if (!first) {
      problems_.pop_back();
      auto& shared = problems_[it->second];
      shared.module = file_id;
      shared.message = std::move(shared_message);
    }
  };
  for (const auto& found : found_problems)
    report(found, nullptr);
  // Expressions are checked against the expanded modules: a dependency on a matrix module is
  // one on each of its instances, and each instance has its own axes. Malformed ones were
  // reported where the module was read.
  if (!expanded) return;
  for (const auto& found : modules::check_expressions(p)) {
    if (found.fault == modules::expression_fault::malformed) continue;
    const std::string in_module = "/params" + pointer_of_path(found.field);
    report({found.module, modules::field_text(found.field), modules::describe(found)}, &in_module);
  }
}

loaded_pipeline pipeline_reader::read(const json::value& root, std::string name) {
  loaded_pipeline result;
  result.pipeline.name = std::move(name);
  if (!root.is_object()) {
    problem("", "expected a JSON object at the top level, got " + kind_name(root), place::value,
            false);
    result.problems = std::move(problems_);
    return result;
  }
  const auto& object = root.get_object();
  check_fields(object, "", pipeline_fields);
  if (auto* name_value = object.if_contains("name")) {
    if (auto n = read_string(*name_value, "/name")) result.pipeline.name = *n;
  }
  if (auto* mode = object.if_contains("mode")) {
    if (mode->is_string() && mode->get_string() == "fail_fast") {
      result.pipeline.mode = execution_mode::fail_fast;
    } else if (mode->is_string() && mode->get_string() == "keep_going") {
      result.pipeline.mode = execution_mode::keep_going;
    } else {
      problem("/mode", R"(expected "fail_fast" or "keep_going")");
    }
  }
  if (auto* defaults = object.if_contains("defaults")) {
    read_defaults(*defaults, result.pipeline.defaults);
  }
  // Before the modules, which name the pools wherever the file declares them.
  if (auto* pools = object.if_contains("pools")) read_pools(*pools);
  result.pipeline.pools = pools_;
  const auto* modules = object.if_contains("modules");
  if (modules == nullptr) {
    problem("", "missing field 'modules'", place::value, false);
  } else if (!modules->is_array()) {
    problem("/modules", "expected an array of modules");
  } else {
    const auto& array = modules->get_array();
    module_ids_.assign(array.size(), {});
    for (std::size_t i = 0; i < array.size(); ++i) {
      result.pipeline.add(read_module(array[i], i, result.pipeline.defaults));
    }
    check_graph(result.pipeline);
  }
  // Repeats inside objects no field reader checks (params, env, ...): Boost.JSON keeps the
  // last value, so an earlier one would be dropped without a word.
  for (const auto& [object_pointer, duplicates] : duplicates_by_object_) {
    for (const auto* duplicate : duplicates) {
      problem(duplicate->pointer, "duplicate key: only its last value would be used", place::key);
      problems_.back().position = sources_.position_at(duplicate->offset);
    }
  }
  const auto in_text_order = [](const auto& a, const auto& b) {
    return std::pair{a.position.line, a.position.column} <
           std::pair{b.position.line, b.position.column};
  };
  std::stable_sort(problems_.begin(), problems_.end(), in_text_order);
  std::stable_sort(warnings_.begin(), warnings_.end(), in_text_order);
  result.problems = std::move(problems_);
  result.warnings = std::move(warnings_);
  return result;
}

// `file:line:column: <label>module 'id': field 'name': message`, on one line.
std::string format_line(std::string_view file, const pipeline_problem& problem,
                        std::string_view label) {
  std::string out{file};
  if (problem.position.line != 0) {
    out +=
        ':' + std::to_string(problem.position.line) + ':' + std::to_string(problem.position.column);
  }
  out += ": ";
  out += label;
  if (!problem.module.empty()) {
    out += "module '" + problem.module + "': ";
  } else if (problem.module_number != 0) {
    out += "module #" + std::to_string(problem.module_number) + ": ";
  }
  if (!problem.field.empty()) out += "field '" + problem.field + "': ";
  // The engine's messages name their module for embedders, who see no prefix; here the prefix
  // already does.
  std::string_view message = problem.message;
  const std::string named = "module '" + problem.module + "': ";
  if (!problem.module.empty() && message.starts_with(named)) message.remove_prefix(named.size());
  out += message;
  // Ids and keys come from the file: keep control characters from breaking the one-line
  // format or the terminal.
  std::string printable;
  printable.reserve(out.size());
  for (char c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      printable += escaped;
    } else {
      printable += c;
    }
  }
  return printable;
}

}  // namespace

std::string format_problem(std::string_view file, const pipeline_problem& problem) {
  return format_line(file, problem, "");
}

std::string format_warning(std::string_view file, const pipeline_problem& warning) {
  return format_line(file, warning, "warning: ");
}

bool parse_duration(std::string_view text, milliseconds& out) {
  std::int64_t amount = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [unit, ec] = std::from_chars(first, last, amount);
  if (ec != std::errc{} || unit == first || amount < 0) return false;
  const std::string_view suffix{unit, static_cast<std::size_t>(last - unit)};
  std::int64_t scale = 0;
  if (suffix == "ms") {
    scale = 1;
  } else if (suffix == "s") {
    scale = 1000;
  } else if (suffix == "m") {
    scale = 60 * 1000;
  } else if (suffix == "h") {
    scale = 60 * 60 * 1000;
  } else {
    return false;
  }
  if (amount > (std::int64_t{1} << 50) / scale) return false;
  out = milliseconds{amount * scale};
  return true;
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = 3;
  for (const auto& candidate : candidates) {
    // Lengths further apart than the largest distance accepted cannot match.
    if (word.size() + 2 < candidate.size() || candidate.size() + 2 < word.size()) continue;
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

loaded_pipeline parse_pipeline(std::string_view text, const modules::registry& kinds,
                               std::string name) {
  loaded_pipeline result;
  const json_source_map positions{text};
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    result.problems.push_back({{1, 1}, {}, 0, {}, "the file is empty; expected a JSON object"});
    return result;
  }
  json::stream_parser parser{json::storage_ptr{}, file_parse_options()};
  boost::system::error_code ec;
  const std::size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    const std::string what = ec == json::error::incomplete ? "invalid JSON: unexpected end of file"
                                                           : "invalid JSON: " + ec.message();
    result.problems.push_back(
        {positions.position_at(ec == json::error::incomplete ? text.size() : consumed),
         {},
         0,
         {},
         what});
    return result;
  }
  return pipeline_reader{positions, kinds}.read(parser.release(), std::move(name));
}

loaded_pipeline load_pipeline_file(const std::filesystem::path& file,
                                   const modules::registry& kinds) {
  auto unreadable = [](std::string why) {
    loaded_pipeline result;
    result.problems.push_back({{}, {}, 0, {}, "cannot read the file: " + std::move(why)});
    return result;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) return unreadable("it is a directory");
  std::ifstream in{file, std::ios::binary};
  if (!in) return unreadable(std::strerror(errno));
  std::ostringstream contents;
  contents << in.rdbuf();
  return parse_pipeline(contents.str(), kinds, file.stem().string());
}

}  // namespace drover::app
