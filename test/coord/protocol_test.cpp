#include <drover/coord/protocol.hpp>

#define BOOST_TEST_MODULE protocol
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace coord = drover::coord;
namespace json = boost::json;
using drover::module_status;

bool mentions(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

/// The error message of a failed decode, for test output. Boost.Test evaluates a message
/// argument even when the check passes, so it must be safe to call on a success.
std::string problem(const coord::decode_result& r) {
  return r.ok() ? std::string{} : r.error().message;
}

/// encode() then decode() of the line, checking the line's shape on the way.
template <typename Message>
Message round_trip(const Message& original) {
  const std::string line = coord::encode(original);
  BOOST_TEST_CONTEXT(line) {
    BOOST_TEST(!line.empty());
    BOOST_TEST(line.back() == '\n');
    BOOST_TEST(std::count(line.begin(), line.end(), '\n') == 1);
    BOOST_TEST(std::count(line.begin(), line.end(), '\r') == 0);
    const coord::decode_result decoded =
        coord::decode(std::string_view{line}.substr(0, line.size() - 1));
    BOOST_REQUIRE_MESSAGE(decoded.ok(), problem(decoded));
    BOOST_REQUIRE(std::holds_alternative<Message>(decoded.value()));
    const Message& back = std::get<Message>(decoded.value());
    BOOST_TEST((back == original));
    return back;
  }
  return {};
}

template <typename Message>
Message decode_as(std::string_view line) {
  const coord::decode_result decoded = coord::decode(line);
  BOOST_TEST_CONTEXT(line) {
    BOOST_REQUIRE_MESSAGE(decoded.ok(), problem(decoded));
    BOOST_REQUIRE(std::holds_alternative<Message>(decoded.value()));
  }
  return std::get<Message>(decoded.value());
}

/// Decodes `line`, which must fail with `code` and a message mentioning every needle.
coord::protocol_error expect_error(std::string_view line, coord::error_code code,
                                   std::vector<std::string_view> needles,
                                   const coord::limits& limits = {}) {
  const coord::decode_result decoded = coord::decode(line, limits);
  BOOST_TEST_CONTEXT("line: " << line) {
    BOOST_REQUIRE(!decoded.ok());
    const coord::protocol_error& e = decoded.error();
    BOOST_TEST_CONTEXT("message: " << e.message) {
      BOOST_TEST(coord::to_string(e.code) == coord::to_string(code));
      for (std::string_view needle : needles)
        BOOST_TEST(mentions(e.message, needle), needle);
    }
    return e;
  }
  return {};
}

std::string without(std::string_view object_text, std::string_view key) {
  json::object o = json::parse(object_text).as_object();
  o.erase(key);
  return json::serialize(o);
}

std::string with(std::string_view object_text, std::string_view key, std::string_view value) {
  json::object o = json::parse(object_text).as_object();
  o[key] = json::parse(value);
  return json::serialize(o);
}

constexpr std::string_view valid_hello = R"({"type":"hello","versions":[1]})";
constexpr std::string_view valid_welcome =
    R"({"type":"welcome","protocol":1,"worker":"w1","run":"r1","epoch":3,)"
    R"("heartbeat_ms":1000,"lost_after_ms":5000,"max_line_bytes":1048576})";
constexpr std::string_view valid_assign =
    R"({"type":"assign","run":"r1","epoch":3,"module":"build","attempt":1,"kind":"noop"})";
constexpr std::string_view valid_result =
    R"({"type":"result","run":"r1","epoch":3,"module":"build","attempt":1,)"
    R"("status":"failed","error":"exit code 2"})";
constexpr std::string_view valid_cancel =
    R"({"type":"cancel","run":"r1","epoch":3,"module":"build","attempt":2})";

coord::hello_message full_hello() {
  coord::hello_message m;
  m.versions = {1, 2};
  m.worker_id = "builder-7";
  m.capabilities = {"linux", "gpu"};
  m.slots = 4;
  m.token = "s3cret";
  m.pid = 4242;
  m.host = "box.example";
  return m;
}

coord::assign_message full_assign() {
  coord::assign_message m;
  m.run = "r1";
  m.epoch = 7;
  m.module = "test[os=linux]";
  m.attempt = 2;
  m.kind = "exec";
  m.params = json::parse(R"({"argv":["make","test"],"env":{"CI":"1"}})");
  m.timeout_ms = 30000;
  m.deps = {"build", "fetch"};
  m.results = {{"build", module_status::succeeded, json::parse(R"({"artifact":"a.out"})")},
               {"fetch", module_status::ignored_failure, nullptr}};
  m.matrix_target = "linux";
  m.outputs = {"dist/*.tar.gz", "VERSION"};
  return m;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(protocol)

// --- round trips ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(hello_round_trips_with_and_without_optional_fields) {
  round_trip(full_hello());
  coord::hello_message minimal;
  minimal.versions = {1};
  round_trip(minimal);

  const auto defaults = decode_as<coord::hello_message>(valid_hello);
  BOOST_TEST(defaults.versions == std::vector<int>{1});
  BOOST_TEST(!defaults.worker_id.has_value());
  BOOST_TEST(defaults.capabilities.empty());
  BOOST_TEST(defaults.slots == 1u);
  BOOST_TEST(!defaults.token.has_value());
  BOOST_TEST(!defaults.pid.has_value());
  BOOST_TEST(!defaults.host.has_value());
}

BOOST_AUTO_TEST_CASE(welcome_round_trips) {
  coord::welcome_message m;
  m.protocol = 1;
  m.worker = "builder-7";
  m.run = "r1";
  m.epoch = 18446744073709551615ull;  // the whole uint64 range survives
  m.heartbeat_ms = 250;
  m.lost_after_ms = 1500;
  m.max_line_bytes = 65536;
  round_trip(m);
  const auto decoded = decode_as<coord::welcome_message>(valid_welcome);
  BOOST_TEST(decoded.worker == "w1");
  BOOST_TEST(decoded.epoch == 3u);
  BOOST_TEST(decoded.max_line_bytes == 1048576u);
}

BOOST_AUTO_TEST_CASE(assign_round_trips_with_and_without_optional_fields) {
  const auto back = round_trip(full_assign());
  BOOST_TEST(back.results.size() == 2u);

  coord::assign_message minimal;
  minimal.run = "r1";
  minimal.module = "a";
  minimal.kind = "noop";
  round_trip(minimal);

  const auto defaults = decode_as<coord::assign_message>(valid_assign);
  BOOST_TEST(defaults.params.is_null());
  BOOST_TEST(!defaults.timeout_ms.has_value());
  BOOST_TEST(defaults.deps.empty());
  BOOST_TEST(defaults.results.empty());
  BOOST_TEST(!defaults.matrix_target.has_value());
  BOOST_TEST(defaults.outputs.empty());
  BOOST_TEST(coord::encode(minimal).find("outputs") == std::string::npos, "no outputs: no field");
}

BOOST_AUTO_TEST_CASE(assign_dependency_results_default_value_to_null) {
  const auto m = decode_as<coord::assign_message>(
      with(valid_assign, "results", R"({"a":{"status":"skipped"}})"));
  BOOST_REQUIRE(m.results.size() == 1u);
  BOOST_TEST(m.results[0].module == "a");
  BOOST_TEST((m.results[0].status == module_status::skipped));
  BOOST_TEST(m.results[0].value.is_null());
}

BOOST_AUTO_TEST_CASE(result_round_trips_for_every_outcome) {
  coord::result_message succeeded;
  succeeded.run = "r1";
  succeeded.epoch = 7;
  succeeded.module = "build";
  succeeded.attempt = 3;
  succeeded.status = module_status::succeeded;
  succeeded.value = json::parse(R"({"lines":[1,2,3],"ok":true,"ratio":0.5})");
  succeeded.started_at_ms = 1700000000000;
  succeeded.finished_at_ms = 1700000000123;
  round_trip(succeeded);

  for (module_status status :
       {module_status::failed, module_status::timed_out, module_status::cancelled}) {
    coord::result_message m;
    m.run = "r1";
    m.module = "build";
    m.status = status;
    m.error = "went wrong";
    round_trip(m);
  }

  coord::result_message minimal;
  minimal.run = "r1";
  minimal.module = "a";
  const auto back = round_trip(minimal);
  BOOST_TEST(back.value.is_null());
  BOOST_TEST(!back.started_at_ms.has_value());
  BOOST_TEST(!back.finished_at_ms.has_value());
}

BOOST_AUTO_TEST_CASE(result_sends_value_only_on_success_and_error_only_otherwise) {
  coord::result_message m;
  m.run = "r1";
  m.module = "a";
  m.status = module_status::failed;
  m.value = 5;
  m.error = "boom";
  const std::string failed = coord::encode(m);
  BOOST_TEST(!mentions(failed, "\"value\""));
  BOOST_TEST(mentions(failed, R"("error":"boom")"));

  m.status = module_status::succeeded;
  const std::string succeeded = coord::encode(m);
  BOOST_TEST(mentions(succeeded, R"("value":5)"));
  BOOST_TEST(!mentions(succeeded, "\"error\""));

  // An empty error text is allowed; only its absence is an error.
  const auto empty_error = decode_as<coord::result_message>(with(valid_result, "error", R"("")"));
  BOOST_TEST(empty_error.error.empty());
}

BOOST_AUTO_TEST_CASE(heartbeat_round_trips_with_and_without_running_attempts) {
  coord::heartbeat_message m;
  m.running = {{"build", 1}, {"test[os=linux]", 3}};
  round_trip(m);
  round_trip(coord::heartbeat_message{});
  BOOST_TEST(decode_as<coord::heartbeat_message>(R"({"type":"heartbeat"})").running.empty());
}

BOOST_AUTO_TEST_CASE(cancel_drain_and_bye_round_trip_with_and_without_reason) {
  coord::cancel_message cancel;
  cancel.run = "r1";
  cancel.epoch = 2;
  cancel.module = "build";
  cancel.attempt = 2;
  cancel.reason = "fail_fast: 'lint' failed";
  round_trip(cancel);
  BOOST_TEST(decode_as<coord::cancel_message>(valid_cancel).reason.empty());

  round_trip(coord::drain_message{"master shutting down"});
  round_trip(coord::drain_message{});
  round_trip(coord::bye_message{"run finished"});
  BOOST_TEST(decode_as<coord::bye_message>(R"({"type":"bye"})").reason.empty());
  BOOST_TEST(decode_as<coord::drain_message>(R"({"type":"drain"})").reason.empty());
}

BOOST_AUTO_TEST_CASE(error_round_trips_and_keeps_codes_it_does_not_know) {
  coord::error_message full;
  full.code = "stale_result";
  full.message = "attempt 1 of 'build' is not current (attempt 2 is)";
  full.fatal = false;
  full.module = "build";
  full.attempt = 1;
  round_trip(full);

  const auto minimal = decode_as<coord::error_message>(R"({"type":"error","code":"from_v9"})");
  BOOST_TEST(minimal.code == "from_v9");
  BOOST_TEST(minimal.message.empty());
  BOOST_TEST(!minimal.fatal);
  BOOST_TEST(!minimal.module.has_value());
  BOOST_TEST(!minimal.attempt.has_value());
  BOOST_TEST(!coord::parse_error_code(minimal.code).has_value());
}

BOOST_AUTO_TEST_CASE(encode_writes_the_documented_bytes) {
  BOOST_TEST(coord::encode(coord::bye_message{"run finished"}) ==
             "{\"type\":\"bye\",\"reason\":\"run finished\"}\n");
  BOOST_TEST(coord::encode(coord::heartbeat_message{{{"a", 1}}}) ==
             "{\"type\":\"heartbeat\",\"running\":[{\"module\":\"a\",\"attempt\":1}]}\n");
}

BOOST_AUTO_TEST_CASE(type_name_matches_the_encoded_type_for_every_message) {
  const std::vector<coord::message> all = {full_hello(),
                                           coord::welcome_message{},
                                           full_assign(),
                                           coord::result_message{},
                                           coord::heartbeat_message{},
                                           coord::cancel_message{},
                                           coord::drain_message{},
                                           coord::bye_message{},
                                           coord::error_message{}};
  const std::vector<std::string_view> names = {"hello",  "welcome", "assign", "result", "heartbeat",
                                               "cancel", "drain",   "bye",    "error"};
  BOOST_REQUIRE(all.size() == std::variant_size_v<coord::message>);
  for (std::size_t i = 0; i < all.size(); ++i) {
    BOOST_TEST(coord::type_name(all[i]) == names[i]);
    const json::value encoded = json::parse(coord::encode(all[i]));
    BOOST_TEST(encoded.at("type").as_string() == names[i]);
  }
}

BOOST_AUTO_TEST_CASE(strings_with_newlines_and_quotes_stay_on_one_line) {
  coord::result_message m;
  m.run = "r1";
  m.module = "a";
  m.status = module_status::failed;
  m.error = "line one\nline two\r\n\t\"quoted\" \\ \x01 end";
  const auto back = round_trip(m);
  BOOST_TEST(back.error == m.error);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_in_strings_is_replaced_so_the_line_still_decodes) {
  coord::result_message m;
  m.run = "r1";
  m.module = "a";
  m.status = module_status::failed;
  m.error = "bad \xff byte, cut \xe2\x82 sequence, fine \xe2\x82\xac";
  const std::string line = coord::encode(m);
  const auto back = decode_as<coord::result_message>(line);
  BOOST_TEST(back.error ==
             "bad \xef\xbf\xbd byte, cut \xef\xbf\xbd\xef\xbf\xbd sequence, "
             "fine \xe2\x82\xac");

  coord::assign_message a = full_assign();
  a.params = json::object{{"k\xc0", "v\xed\xa0\x80"}};  // bad key, a UTF-16 surrogate
  BOOST_TEST(coord::decode(coord::encode(a)).ok());
}

BOOST_AUTO_TEST_CASE(unknown_fields_are_ignored) {
  const auto hello = decode_as<coord::hello_message>(
      R"({"type":"hello","versions":[1,2],"from_the_future":{"x":[1,2,3]},"slots":2})");
  BOOST_TEST(hello.slots == 2u);
  const auto result = decode_as<coord::result_message>(with(valid_result, "extra", "[true]"));
  BOOST_TEST(result.error == "exit code 2");
}

BOOST_AUTO_TEST_CASE(null_optional_fields_count_as_absent) {
  const auto hello = decode_as<coord::hello_message>(
      R"({"type":"hello","versions":[1],"worker_id":null,"capabilities":null,"slots":null,)"
      R"("token":null,"pid":null,"host":null})");
  BOOST_TEST(!hello.worker_id.has_value());
  BOOST_TEST(hello.slots == 1u);
  const auto assign = decode_as<coord::assign_message>(
      with(with(valid_assign, "timeout_ms", "null"), "deps", "null"));
  BOOST_TEST(!assign.timeout_ms.has_value());
  BOOST_TEST(assign.deps.empty());
}

BOOST_AUTO_TEST_CASE(a_trailing_carriage_return_or_newline_is_tolerated) {
  decode_as<coord::bye_message>("{\"type\":\"bye\"}\r");
  decode_as<coord::bye_message>("{\"type\":\"bye\"}\r\n");
  decode_as<coord::bye_message>(coord::encode(coord::bye_message{}));
}

BOOST_AUTO_TEST_CASE(nesting_up_to_the_limit_is_accepted) {
  coord::limits limits;
  limits.max_depth = 3;
  // The message object is depth 1, params' array 2, the inner array 3.
  const std::string line = with(valid_assign, "params", "[[1]]");
  BOOST_TEST(coord::decode(line, limits).ok());
  limits.max_line_bytes = line.size();
  BOOST_TEST(coord::decode(line, limits).ok());
}

// --- bad input --------------------------------------------------------------------------

struct bad_case {
  std::string line;
  coord::error_code code;
  std::vector<std::string_view> needles;
};

BOOST_AUTO_TEST_CASE(bad_lines_name_what_is_wrong) {
  using enum coord::error_code;
  const std::vector<bad_case> cases = {
      // Not JSON.
      {R"({"type":"bye")", malformed_json, {"malformed JSON", "incomplete"}},
      {R"({"type":"bye"} {"type":"bye"})", malformed_json, {"offset 15", "extra data"}},
      {R"({type:"bye"})", malformed_json, {"offset 1"}},
      {R"({"type":"bye",})", malformed_json, {"malformed JSON"}},
      {R"({"type":"bye"} // comment)", malformed_json, {"malformed JSON"}},
      {R"({"type":'bye'})", malformed_json, {"malformed JSON"}},
      {"", malformed_json, {"malformed JSON"}},
      {"{\"type\":\"bye\",\"reason\":\"\xff\"}", malformed_json, {"UTF-8", "offset 24"}},
      {"{\"type\":\"bye\",\"reason\":\"\xed\xa0\x80\"}", malformed_json, {"UTF-8"}},
      {"{\"type\":\"bye\",\"reason\":\"a\x01\"}", malformed_json, {"malformed JSON"}},
      // Not a message.
      {"[1,2]", not_an_object, {"expected a JSON object", "array"}},
      {R"("hello")", not_an_object, {"expected a JSON object"}},
      {"42", not_an_object, {"42"}},
      {"{}", missing_type, {"field 'type'", "missing"}},
      {R"({"type":null})", missing_type, {"field 'type'"}},
      {R"({"type":7})", bad_field, {"field 'type'", "expected a string", "got 7"}},
      {R"({"type":"nope"})", unknown_type, {"unknown message type", "\"nope\""}},
      {R"({"type":"Hello","versions":[1]})", unknown_type, {"\"Hello\""}},
      // hello
      {R"({"type":"hello"})", bad_field, {"field 'versions'", "missing"}},
      {R"({"type":"hello","versions":[]})",
       bad_field,
       {"field 'versions'", "non-empty", "got an empty array"}},
      {R"({"type":"hello","versions":1})", bad_field, {"field 'versions'", "got 1"}},
      {R"({"type":"hello","versions":[1,"2"]})",
       bad_field,
       {"field 'versions[1]'", "expected an integer >= 1", "got \"2\""}},
      {R"({"type":"hello","versions":[0]})", bad_field, {"field 'versions[0]'"}},
      {R"({"type":"hello","versions":[1],"slots":"2"})",
       bad_field,
       {"field 'slots': expected an integer >= 1", "got \"2\""}},
      {R"({"type":"hello","versions":[1],"slots":0})",
       bad_field,
       {"field 'slots': expected an integer >= 1", "got 0"}},
      // A number that is not an integer is shown as it was written.
      {R"({"type":"hello","versions":[1],"slots":2.0})",
       bad_field,
       {"field 'slots': expected an integer >= 1", "got 2.0"}},
      {R"({"type":"hello","versions":[1],"slots":2e0})",
       bad_field,
       {"field 'slots': expected an integer >= 1", "got 2e0"}},
      {R"({"type":"hello","host":"1.0","versions":[1],"slots":-0.5E+1})",
       bad_field,
       {"field 'slots'", "got -0.5E+1"}},
      {R"({"type":"hello","versions":[1.0]})", bad_field, {"field 'versions[0]'", "got 1.0"}},
      {R"({"type":"hello","versions":[1],"slots":1.0})", bad_field, {"field 'slots'", "got 1.0"}},
      {R"({"type":"hello","versions":[1],"pid":123456789012345678901234567890})",
       bad_field,
       {"field 'pid'", "got 123456789012345678901234567890"}},
      {R"({"type":"hello","versions":[1],"slots":4294967296})",
       bad_field,
       {"field 'slots'", "<= 4294967295"}},
      {R"({"type":"hello","versions":[1],"capabilities":["gpu",3]})",
       bad_field,
       {"field 'capabilities[1]': expected a string", "got 3"}},
      {R"({"type":"hello","versions":[1],"capabilities":"gpu"})",
       bad_field,
       {"field 'capabilities': expected an array of strings"}},
      {R"({"type":"hello","versions":[1],"worker_id":5})", bad_field, {"field 'worker_id'"}},
      {R"({"type":"hello","versions":[1],"token":123})",
       bad_field,
       {"field 'token': expected a string"}},
      {R"({"type":"hello","versions":[1],"pid":-1})",
       bad_field,
       {"field 'pid': expected an integer >= 0", "got -1"}},
      // welcome
      {with(valid_welcome, "protocol", "0"), bad_field, {"field 'protocol'"}},
      {with(valid_welcome, "heartbeat_ms", "0"), bad_field, {"field 'heartbeat_ms'"}},
      {with(valid_welcome, "worker", R"("")"),
       bad_field,
       {"field 'worker': expected a non-empty string"}},
      // assign
      {with(valid_assign, "attempt", "-1"),
       bad_field,
       {"field 'attempt': expected an integer >= 1", "got -1"}},
      {with(valid_assign, "attempt", "0"), bad_field, {"field 'attempt'"}},
      {R"({"type":"assign","run":"r1","epoch":3,"module":"build","attempt":1.0,"kind":"noop"})",
       bad_field,
       {"field 'attempt'", "got 1.0"}},
      {R"({"type":"assign","run":"r1","epoch":3,"module":"build","attempt":1e400,"kind":"noop"})",
       bad_field,
       {"field 'attempt'", "got 1e400"}},
      {with(valid_assign, "epoch", "1.5"),
       bad_field,
       {"field 'epoch': expected an integer >= 0", "got 1.5"}},
      {with(valid_assign, "epoch", "-3"), bad_field, {"field 'epoch'", "got -3"}},
      {with(valid_assign, "epoch", "1e30"), bad_field, {"field 'epoch'"}},
      {with(valid_assign, "epoch", R"("3")"), bad_field, {"field 'epoch'"}},
      {with(valid_assign, "timeout_ms", "0"),
       bad_field,
       {"field 'timeout_ms': expected an integer >= 1"}},
      {with(valid_assign, "module", R"("")"), bad_field, {"field 'module'", "non-empty"}},
      {with(valid_assign, "deps", R"(["a",1])"), bad_field, {"field 'deps[1]'"}},
      {with(valid_assign, "results", R"([])"), bad_field, {"field 'results'"}},
      {with(valid_assign, "results", R"({"a":5})"), bad_field, {"field 'results.a'"}},
      {with(valid_assign, "results", R"({"a":{}})"),
       bad_field,
       {"field 'results.a.status'", "missing"}},
      {with(valid_assign, "results", R"({"a":{"status":"pending"}})"),
       bad_field,
       {"field 'results.a.status'", "\"pending\""}},
      {with(valid_assign, "matrix_target", "[]"), bad_field, {"field 'matrix_target'"}},
      // result
      {with(valid_result, "status", R"("skipped")"),
       bad_field,
       {"field 'status'", "\"succeeded\"", "got \"skipped\""}},
      {with(valid_result, "status", "1"), bad_field, {"field 'status'"}},
      {without(valid_result, "error"), bad_field, {"field 'error'", "missing"}},
      {with(valid_result, "error", "5"), bad_field, {"field 'error'"}},
      {with(valid_result, "started_at_ms", "-5"), bad_field, {"field 'started_at_ms'"}},
      {with(valid_result, "finished_at_ms", "1.25"), bad_field, {"field 'finished_at_ms'"}},
      // heartbeat
      {R"({"type":"heartbeat","running":"x"})", bad_field, {"field 'running'"}},
      {R"({"type":"heartbeat","running":[3]})", bad_field, {"field 'running[0]'"}},
      {R"({"type":"heartbeat","running":[{"module":"a","attempt":1},{"module":"b"}]})",
       bad_field,
       {"field 'running[1].attempt'", "missing"}},
      // cancel, error
      {with(valid_cancel, "attempt", R"("1")"), bad_field, {"field 'attempt'"}},
      {R"({"type":"error"})", bad_field, {"field 'code'", "missing"}},
      {R"({"type":"error","code":"internal","fatal":"yes"})",
       bad_field,
       {"field 'fatal': expected a boolean"}},
      {R"({"type":"drain","reason":7})", bad_field, {"field 'reason'"}},
  };
  BOOST_TEST(cases.size() >= 25u);
  for (const bad_case& c : cases) {
    const coord::protocol_error e = expect_error(c.line, c.code, c.needles);
    BOOST_TEST(!e.fatal, c.line);
    BOOST_TEST(e.message.find('\n') == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(every_required_field_missing_is_named) {
  const std::vector<std::pair<std::string_view, std::vector<std::string_view>>> messages = {
      {valid_hello, {"versions"}},
      {valid_welcome,
       {"protocol", "worker", "run", "epoch", "heartbeat_ms", "lost_after_ms", "max_line_bytes"}},
      {valid_assign, {"run", "epoch", "module", "attempt", "kind"}},
      {valid_result, {"run", "epoch", "module", "attempt", "status", "error"}},
      {valid_cancel, {"run", "epoch", "module", "attempt"}},
  };
  for (const auto& [valid, fields] : messages) {
    BOOST_TEST(coord::decode(valid).ok(), valid);
    for (std::string_view field : fields) {
      const std::string needle = "field '" + std::string(field) + "': missing";
      expect_error(without(valid, field), coord::error_code::bad_field, {needle});
    }
  }
}

BOOST_AUTO_TEST_CASE(a_bad_field_error_names_the_message_type_and_the_assignment) {
  const coord::protocol_error e =
      expect_error(with(valid_result, "status", R"("skipped")"), coord::error_code::bad_field,
                   {"result: field 'status'"});
  BOOST_TEST(e.type == "result");
  BOOST_TEST((e.module == std::optional<std::string>{"build"}));
  BOOST_TEST((e.attempt == std::optional<std::uint32_t>{1u}));

  const coord::error_message reply = coord::to_error_message(e);
  BOOST_TEST(reply.code == "bad_field");
  BOOST_TEST(reply.message == e.message);
  BOOST_TEST(!reply.fatal);
  BOOST_TEST((reply.module == e.module));
  BOOST_TEST((reply.attempt == e.attempt));

  const coord::protocol_error no_module = expect_error(
      with(valid_result, "module", "5"), coord::error_code::bad_field, {"field 'module'"});
  BOOST_TEST(!no_module.module.has_value());
}

BOOST_AUTO_TEST_CASE(a_bad_token_is_never_echoed) {
  // A token given where another string was expected must not appear in the message.
  const coord::protocol_error e =
      expect_error(R"({"type":"hello","versions":[1],"token":["s3cret-token"]})",
                   coord::error_code::bad_field, {"field 'token'", "got an array"});
  BOOST_TEST(!mentions(e.message, "s3cret"));
}

BOOST_AUTO_TEST_CASE(long_strings_are_cut_in_messages) {
  const std::string long_status(200, 'x');
  const coord::protocol_error e =
      expect_error(with(valid_result, "status", "\"" + long_status + "\""),
                   coord::error_code::bad_field, {"field 'status'", "..."});
  BOOST_TEST(e.message.size() < 250u);
}

BOOST_AUTO_TEST_CASE(too_deep_is_fatal_and_names_the_limit) {
  std::string line = R"({"type":"assign","run":"r1","epoch":3,"module":"m","attempt":1,)"
                     R"("kind":"noop","params":)";
  line.append(40, '[');
  line.append(40, ']');
  line += '}';
  const coord::protocol_error deep =
      expect_error(line, coord::error_code::too_deep, {"limit of 32 levels"});
  BOOST_TEST(deep.fatal);

  coord::limits shallow;
  shallow.max_depth = 3;
  const coord::protocol_error e = expect_error(with(valid_assign, "params", "[[[1]]]"),
                                               coord::error_code::too_deep, {"3 levels"}, shallow);
  BOOST_TEST(e.fatal);
}

BOOST_AUTO_TEST_CASE(a_line_over_the_limit_is_fatal) {
  coord::limits limits;
  limits.max_line_bytes = 16;
  const coord::protocol_error e =
      expect_error(R"({"type":"bye","reason":"long"})", coord::error_code::line_too_long,
                   {"30 bytes", "limit of 16 bytes"}, limits);
  BOOST_TEST(e.fatal);
}

// --- error codes and handshake helpers ----------------------------------------------------

BOOST_AUTO_TEST_CASE(error_codes_have_wire_names_that_parse_back) {
  const std::vector<std::string_view> names = {
      "malformed_json",   "line_too_long",    "too_deep",          "not_an_object",
      "missing_type",     "unknown_type",     "bad_field",         "handshake_required",
      "version_mismatch", "unauthorized",     "handshake_timeout", "unknown_module",
      "stale_result",     "duplicate_result", "internal"};
  for (std::string_view name : names) {
    const auto code = coord::parse_error_code(name);
    BOOST_REQUIRE_MESSAGE(code.has_value(), name);
    BOOST_TEST(coord::to_string(*code) == name);
  }
  const coord::error_message made =
      coord::make_error_message(coord::error_code::unauthorized, "wrong token", true);
  BOOST_TEST(made.code == "unauthorized");
  BOOST_TEST(made.message == "wrong token");
  BOOST_TEST(made.fatal);
  BOOST_TEST(!coord::parse_error_code("").has_value());
  BOOST_TEST(!coord::parse_error_code("Stale_Result").has_value());
}

BOOST_AUTO_TEST_CASE(choose_version_picks_the_highest_common_version) {
  const int master[] = {1, 2, 3};
  BOOST_TEST((coord::choose_version(std::vector<int>{1}) == std::optional<int>{1}));
  BOOST_TEST((coord::choose_version(std::vector<int>{3, 1, 2}, master) == std::optional<int>{3}));
  BOOST_TEST((coord::choose_version(std::vector<int>{2, 7}, master) == std::optional<int>{2}));
  BOOST_TEST(!coord::choose_version(std::vector<int>{4, 5}, master).has_value());
  BOOST_TEST(!coord::choose_version(std::vector<int>{}).has_value());
  BOOST_TEST(!coord::choose_version(std::vector<int>{2}).has_value());
}

BOOST_AUTO_TEST_CASE(token_matches_only_the_same_token) {
  BOOST_TEST(coord::token_matches("s3cret", "s3cret"));
  BOOST_TEST(!coord::token_matches("s3cret", "s3creT"));
  BOOST_TEST(!coord::token_matches("s3cret", "s3cre"));
  BOOST_TEST(!coord::token_matches("s3cret", "s3crets"));
  BOOST_TEST(!coord::token_matches("s3cret", ""));
  BOOST_TEST(!coord::token_matches("", "x"));
  BOOST_TEST(coord::token_matches("", ""));
  // Repeating a prefix must not fool the comparison of unequal lengths.
  BOOST_TEST(!coord::token_matches("abab", "ab"));
}

// The encoder writes JSON itself: it must read exactly as Boost.JSON would serialize the same
// object, field order included, so that the documented bytes never change.
BOOST_AUTO_TEST_CASE(encode_writes_what_boost_json_would_serialize) {
  coord::hello_message hello = full_hello();
  hello.worker_id = "w\"7\n\\";
  hello.capabilities = {"linux", "g\x01pu\x1f"};
  coord::assign_message assign = full_assign();
  assign.params = json::parse(
      R"({"d":1.5e300,"neg":-3,"u":18446744073709551615,"t":true,"s":"\u0001\u007f/","a":[]})");
  assign.outputs = {"dist/*.tar.gz"};
  coord::result_message failed;
  failed.run = "r";
  failed.module = "m";
  failed.status = module_status::failed;
  failed.error = "x\ty\x1f\\ \b\f";
  failed.started_at_ms = 5;
  coord::result_message succeeded;
  succeeded.run = "r";
  succeeded.module = "m";
  succeeded.value = json::parse(R"([1,2.5,"x",{"k":null}])");
  coord::error_message error = coord::make_error_message(coord::error_code::internal, "m", true);
  error.module = "x";
  error.attempt = 3;
  const std::vector<coord::message> all = {hello,
                                           coord::welcome_message{},
                                           assign,
                                           coord::assign_message{},
                                           failed,
                                           succeeded,
                                           coord::heartbeat_message{{{"a", 1}, {"b", 2}}},
                                           coord::heartbeat_message{},
                                           coord::cancel_message{},
                                           coord::drain_message{"d"},
                                           coord::bye_message{},
                                           error};
  for (const coord::message& m : all) {
    const std::string line = coord::encode(m);
    BOOST_TEST(line == json::serialize(json::parse(line)) + "\n");
    std::string appended = "before\n";
    const std::size_t size = coord::encode_to(appended, m);
    BOOST_TEST(size == line.size());
    BOOST_TEST(appended == "before\n" + line);
  }
}

BOOST_AUTO_TEST_CASE(an_assign_view_encodes_as_the_same_assign_message) {
  const coord::assign_message owned = full_assign();
  const json::value artifact = json::parse(R"({"artifact":"a.out"})");
  const std::vector<std::string_view> deps{"build", "fetch"};
  const std::vector<drover::dependency_result> results{
      {"build", module_status::succeeded, &artifact},
      {"fetch", module_status::ignored_failure, nullptr}};
  coord::assign_view view;
  view.run = owned.run;
  view.epoch = owned.epoch;
  view.module = owned.module;
  view.attempt = owned.attempt;
  view.kind = owned.kind;
  view.params = &owned.params;
  view.timeout_ms = owned.timeout_ms;
  view.deps = deps;
  view.results = results;
  view.matrix_target = *owned.matrix_target;
  view.outputs = owned.outputs;
  std::string line;
  const std::size_t size = coord::encode_to(line, view);
  BOOST_TEST(size == line.size());
  BOOST_TEST(line == coord::encode(owned));
}

namespace {

/// Decodes `line` with a line_decoder and with decode(), which must agree exactly.
void expect_same_decoding(coord::line_decoder& decoder, std::string_view line,
                          const coord::limits& limits) {
  const coord::decode_result fast = decoder.decode(line);
  const coord::decode_result full = coord::decode(line, limits);
  BOOST_TEST_CONTEXT("line: " << line) {
    BOOST_REQUIRE(fast.ok() == full.ok());
    if (fast.ok()) {
      BOOST_TEST((fast.value() == full.value()));
    } else {
      BOOST_TEST(coord::to_string(fast.error().code) == coord::to_string(full.error().code));
      BOOST_TEST(fast.error().message == full.error().message);
      BOOST_TEST(fast.error().fatal == full.error().fatal);
      BOOST_TEST((fast.error().module == full.error().module));
      BOOST_TEST((fast.error().attempt == full.error().attempt));
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_line_decoder_reads_plain_lines_in_one_pass_and_agrees_with_decode) {
  coord::result_message result;
  result.run = "r-1";
  result.epoch = 3;
  result.module = "m17";
  result.attempt = 2;
  result.started_at_ms = 1700000000000;
  result.finished_at_ms = 1700000000001;
  coord::assign_message assign;
  assign.run = "r-1";
  assign.epoch = 3;
  assign.module = "m17";
  assign.attempt = 2;
  assign.kind = "noop";
  const std::vector<std::string> plain = {
      coord::encode(assign),
      coord::encode(result),
      R"({"type":"assign","run":"r","epoch":0,"module":"a","attempt":1,"kind":"exec",)"
      R"("params":{"argv":["make","-j4"],"env":{"CI":"1"}},"timeout_ms":60000,)"
      R"("deps":["x","y"],"results":{},"matrix_target":"os=linux","outputs":["dist/a"]})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,"kind":"k",)"
      R"("params":"text","timeout_ms":null,"deps":null,"results":null,"matrix_target":null})",
      R"({"type":"result","run":"r","epoch":1,"module":"a","attempt":4294967295,)"
      R"("status":"failed","error":""})",
      R"({"type":"result","run":"r","epoch":18446744073709551615,"module":"a","attempt":1,)"
      R"("status":"succeeded","value":{"files":["a","b"],"n":3}} )",
      R"({"type":"result","run":"r","epoch":1,"module":"a","attempt":1,"status":"timed_out",)"
      R"("error":"timed out after 5 ms","value":null,"started_at_ms":null})",
  };
  coord::line_decoder decoder;
  for (const std::string& line : plain) {
    std::string_view text = line;
    if (text.ends_with('\n')) text.remove_suffix(1);
    expect_same_decoding(decoder, text, {});
  }
  BOOST_TEST(decoder.plain_lines() == plain.size());

  // Lines that are not plain go to the full decoder, with its messages and its errors.
  const std::vector<std::string> other = {
      R"({"type":"assign","run":"r\u0041","epoch":1,"module":"a","attempt":1,"kind":"k"})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,"kind":"k","x":1})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,"kind":"k","run":"s"})",
      R"({"type":"assign","run":"","epoch":1,"module":"a","attempt":1,"kind":"k"})",
      R"({"type":"assign","run":"r","epoch":-1,"module":"a","attempt":1,"kind":"k"})",
      R"({"type":"assign","run":"r","epoch":1.0,"module":"a","attempt":1,"kind":"k"})",
      R"({"type":"assign","run":"r","epoch":01,"module":"a","attempt":1,"kind":"k"})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":0,"kind":"k"})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":4294967296,"kind":"k"})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,"kind":"k","params":7})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,"kind":"k","deps":[1]})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,"kind":"k","deps":{}})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,"kind":"k",)"
      R"("results":{"x":{"status":"succeeded","value":1}}})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,"kind":"k",)"
      R"("params":{"a":[1,2})",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,"kind":"k"} x)",
      R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,"kind":"k",})",
      R"({"type":"assign","run":"r","epoch":18446744073709551616,"module":"a","attempt":1,)"
      R"("kind":"k"})",
      "{\"type\":\"assign\",\"run\":\"r\xff\",\"epoch\":1,\"module\":\"a\",\"attempt\":1,"
      "\"kind\":\"k\"}",
      "{\"type\":\"assign\",\"run\":\"caf\xc3\xa9\",\"epoch\":1,\"module\":\"a\",\"attempt\":1,"
      "\"kind\":\"k\"}",
      R"({"type":"result","run":"r","epoch":1,"module":"a","attempt":1,"status":"pending"})",
      R"({"type":"result","run":"r","epoch":1,"module":"a","attempt":1,"status":"failed"})",
      R"({"type":"result","run":"r","epoch":1,"module":"a","attempt":1,"status":"failed",)"
      R"("error":7})",
      R"({"type":"result","run":"r","epoch":1,"module":"a","attempt":1,"status":"succeeded",)"
      R"("value":true})",
      R"({"type":"result","run":"r","epoch":1,"module":"a","attempt":1,"status":"succeeded",)"
      R"("started_at_ms":9223372036854775808})",
      R"({ "type":"result","run":"r","epoch":1,"module":"a","attempt":1,"status":"succeeded"})",
      R"({"type":"heartbeat","running":[]})",
  };
  for (const std::string& line : other)
    expect_same_decoding(decoder, line, {});

  // Nesting near the limit: the one-pass reader stays a level short of it and leaves the
  // rest to the full decoder, which enforces the limit.
  for (std::size_t depth = 1; depth <= 6; ++depth) {
    const coord::limits shallow{coord::default_max_line_bytes, depth};
    coord::line_decoder limited{shallow};
    const std::string params = std::string(depth, '[') + std::string(depth, ']');
    expect_same_decoding(limited,
                         R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,)"
                         R"("kind":"k","params":)" +
                             params + "}",
                         shallow);
    expect_same_decoding(limited,
                         R"({"type":"assign","run":"r","epoch":1,"module":"a","attempt":1,)"
                         R"("kind":"k","deps":["x"]})",
                         shallow);
  }
}

// Mutations of plain lines (a byte removed, doubled or replaced) must decode the same either
// way, whether or not they are still plain.
BOOST_AUTO_TEST_CASE(mutated_lines_decode_the_same_either_way) {
  const std::vector<std::string> seeds = {
      R"({"type":"assign","run":"r","epoch":2,"module":"m1","attempt":1,"kind":"exec",)"
      R"("params":{"argv":["a","b"]},"timeout_ms":5,"deps":["x"],"results":{},"outputs":["o"]})",
      R"({"type":"result","run":"r","epoch":2,"module":"m1","attempt":1,"status":"succeeded",)"
      R"("value":{"k":[1,"v"]},"started_at_ms":10,"finished_at_ms":12})",
      R"({"type":"result","run":"r","epoch":2,"module":"m1","attempt":3,"status":"failed",)"
      R"("error":"exit code 1"})",
  };
  const std::string replacements = "\"{}[],:0123456789-.eE \\antrufl\x80";
  coord::line_decoder decoder;
  std::uint64_t state = 7;
  auto next = [&state](std::size_t n) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::size_t>((state >> 33) % n);
  };
  std::size_t checked = 0;
  for (const std::string& seed : seeds) {
    for (int round = 0; round < 1500; ++round) {
      std::string line = seed;
      const std::size_t at = next(line.size());
      switch (next(3)) {
        case 0:
          line.erase(at, 1);
          break;
        case 1:
          line.insert(at, 1, line[at]);
          break;
        default:
          line[at] = replacements[next(replacements.size())];
      }
      expect_same_decoding(decoder, line, {});
      ++checked;
    }
  }
  BOOST_TEST(checked == 4500u);
  BOOST_TEST(decoder.plain_lines() > 0u);
}

// Found by the protocol fuzz target: the fast path took `[ }` for an empty list and `{ ]` for
// an empty object.
BOOST_AUTO_TEST_CASE(brackets_that_do_not_match_are_malformed_either_way) {
  coord::line_decoder decoder;
  for (const std::string field :
       {R"("deps":[})", "\"deps\":[ \t}", "\"deps\":[\t\t\t}}", R"("results":{])",
        R"("results":{ ]})", R"("params":{"a":[1}})", R"("outputs":[{]})"}) {
    const std::string line =
        R"({"type":"assign","run":"r","epoch":1,"module":"m","attempt":1,"kind":"exec",)" + field +
        "}";
    BOOST_TEST(!coord::decode(line).ok(), line);
    expect_same_decoding(decoder, line, {});
  }
}

// docs/protocol.md promises that its example lines are exactly what drover's encoder writes:
// every transcript line (section 9) and every error line (section 8) must decode and encode
// back to itself, byte for byte, and go in a direction its type may.
BOOST_AUTO_TEST_CASE(the_documented_lines_are_what_the_encoder_writes) {
  std::ifstream file{DROVER_PROTOCOL_DOC};
  BOOST_REQUIRE_MESSAGE(file, "cannot read " << DROVER_PROTOCOL_DOC);
  static const std::regex transcript{R"(^ *[0-9]+\.[0-9]{3} (W>M|M>W) (\{.*\})$)"};
  const std::set<std::string, std::less<>> from_worker{"hello", "result", "heartbeat", "bye",
                                                       "error"};
  const std::set<std::string, std::less<>> from_master{"welcome", "assign", "heartbeat", "cancel",
                                                       "drain",   "bye",    "error"};
  std::size_t transcript_lines = 0, error_lines = 0;
  std::set<std::string> types_seen;
  std::string text;
  for (std::size_t number = 1; std::getline(file, text); ++number) {
    std::smatch match;
    std::string json_text, direction;
    if (std::regex_match(text, match, transcript)) {
      direction = match[1];
      json_text = match[2];
      ++transcript_lines;
    } else if (text.starts_with(R"({"type":"error")")) {
      json_text = text;
      ++error_lines;
    } else {
      continue;
    }
    BOOST_TEST_CONTEXT("protocol.md:" << number << ": " << json_text) {
      coord::decode_result decoded = coord::decode(json_text);
      if (!decoded.ok()) BOOST_FAIL(decoded.error().message);
      BOOST_TEST(coord::encode(decoded.value()) == json_text + "\n");
      const std::string type{coord::type_name(decoded.value())};
      types_seen.insert(type);
      if (direction == "W>M") BOOST_TEST(from_worker.contains(type), type << " from a worker");
      if (direction == "M>W") BOOST_TEST(from_master.contains(type), type << " from the master");
    }
  }
  BOOST_TEST(transcript_lines >= 25u);
  BOOST_TEST(error_lines >= 6u);
  // The transcripts show every message type.
  BOOST_TEST(types_seen.size() == 9u);
}

BOOST_AUTO_TEST_SUITE_END()
