#include <drover/secrets.hpp>

#define BOOST_TEST_MODULE secrets
#include "test_support.hpp"

#include <boost/json/parse.hpp>

#include <memory>

namespace {

using namespace drover::test;
using drover::module_status;
using drover::secret_masker;

secret_masker masker_of(std::initializer_list<std::string_view> secrets) {
  secret_masker m;
  for (auto s : secrets)
    m.add(s);
  return m;
}

/// A body that returns what it saw of dependency `dep`'s value.
drover::module_body echo_dependency(std::string dep) {
  return coroutine_body([dep](drover::module_context& ctx) -> asio::awaitable<json::value> {
    co_return ctx.result(dep);
  });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(secrets)

BOOST_AUTO_TEST_CASE(every_occurrence_is_replaced) {
  const auto m = masker_of({"hunter2"});
  BOOST_TEST(m.mask("password hunter2, again hunter2.") == "password ***, again ***.");
  BOOST_TEST(m.mask("hunter2 at the start") == "*** at the start");
  BOOST_TEST(m.mask("at the end hunter2") == "at the end ***");
  BOOST_TEST(m.mask("hunter2") == "***");
  BOOST_TEST(m.mask("hunter2hunter2") == "******");
  BOOST_TEST(m.mask("hunter") == "hunter");
  BOOST_TEST(m.mask("") == "");
  BOOST_TEST(m.longest() == 7u);

  std::string text = "no secret here";
  BOOST_TEST(!m.mask_in_place(text));
  BOOST_TEST(text == "no secret here");
  text = "x hunter2 y";
  BOOST_TEST(m.mask_in_place(text));
  BOOST_TEST(text == "x *** y");
}

BOOST_AUTO_TEST_CASE(empty_and_blank_secrets_are_ignored) {
  auto m = masker_of({"", " ", "\t\n"});
  BOOST_TEST(m.empty());
  BOOST_TEST(m.longest() == 0u);
  BOOST_TEST(m.mask("a b\tc\n") == "a b\tc\n");
  std::string text = "a b";
  BOOST_TEST(!m.mask_in_place(text));
  json::value v = json::parse(R"({"a b": " "})");
  BOOST_TEST(!m.mask_in_place(v));
  m.add("x");
  BOOST_TEST(!m.empty());
  m.add("x");  // a duplicate changes nothing
  BOOST_TEST(m.mask("a x b") == "a *** b");
}

BOOST_AUTO_TEST_CASE(overlapping_secrets_leave_no_part_visible) {
  // One secret inside another: the longer one is masked whole.
  const auto nested = masker_of({"abc", "xxabcxx"});
  BOOST_TEST(nested.mask("1 xxabcxx 2 abc 3") == "1 *** 2 *** 3");
  // Two secrets that overlap: neither keeps a visible tail.
  const auto overlapping = masker_of({"abcd", "cdef"});
  BOOST_TEST(overlapping.mask("-abcdef-") == "-***-");
  BOOST_TEST(overlapping.mask("-cdefab-abcd") == "-***ab-***");
  BOOST_TEST(overlapping.mask("abcdabcd") == "******");
  // Self-overlapping occurrences of one secret.
  const auto repeating = masker_of({"aa"});
  BOOST_TEST(repeating.mask("baaab") == "b***b");
}

BOOST_AUTO_TEST_CASE(a_multi_line_secret_is_masked_whole_and_line_by_line) {
  const std::string key = "-----BEGIN KEY-----\r\nAAAABBBB\r\n-----END KEY-----\n";
  const auto m = masker_of({key});
  BOOST_TEST(m.longest() == key.size());
  BOOST_TEST(m.mask("key: " + key + "done") == "key: ***done");
  // A log read line by line sees each line on its own.
  BOOST_TEST(m.mask("line AAAABBBB") == "line ***");
  BOOST_TEST(m.mask("-----END KEY-----") == "***");
  BOOST_TEST(m.mask("AAAA BBBB") == "AAAA BBBB");
}

BOOST_AUTO_TEST_CASE(json_strings_keys_and_numbers_are_masked) {
  const auto m = masker_of({"s3cr3t", "4711"});
  json::value v = json::parse(R"({
      "plain": "nothing",
      "token": "s3cr3t",
      "nested": [1, "a s3cr3t b", {"deep": ["x", "s3cr3t"]}, true, null],
      "key with s3cr3t": {"inner s3cr3t": 2},
      "pin": 4711,
      "account": 947110,
      "ratio": 0.5})");
  BOOST_TEST(m.mask_in_place(v));
  BOOST_TEST(v == json::parse(R"({
      "plain": "nothing",
      "token": "***",
      "nested": [1, "a *** b", {"deep": ["x", "***"]}, true, null],
      "key with ***": {"inner ***": 2},
      "pin": "***",
      "account": "9***0",
      "ratio": 0.5})"));
  BOOST_TEST(json::serialize(v).find("s3cr3t") == std::string::npos);

  json::value clean = json::parse(R"({"a": ["b", 1, 2.5, false], "c": {"d": null}})");
  const json::value before = clean;
  BOOST_TEST(!m.mask_in_place(clean));
  BOOST_TEST(clean == before);
}

BOOST_AUTO_TEST_CASE(stream_cut_never_cuts_a_secret) {
  const auto m = masker_of({"secret"});
  const std::string text = "0123secret89";
  BOOST_TEST(m.stream_cut(text, 2) == 2u);    // before the secret
  BOOST_TEST(m.stream_cut(text, 4) == 4u);    // at its start
  BOOST_TEST(m.stream_cut(text, 6) == 10u);   // inside it: after its end
  BOOST_TEST(m.stream_cut(text, 10) == 10u);  // at its end
  BOOST_TEST(m.stream_cut(text, 99) == text.size());
  // Cutting there and masking both pieces gives what masking the whole gives.
  const auto cut = m.stream_cut(text, 7);
  BOOST_TEST(m.mask(text.substr(0, cut)) + m.mask(text.substr(cut)) == m.mask(text));
}

BOOST_AUTO_TEST_CASE(a_run_masks_reasons_values_and_events, *boost::unit_test::timeout(30)) {
  const std::string secret = "tok-9f8e7d";
  auto secrets = std::make_shared<secret_masker>();
  secrets->add(secret);

  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  p.add("value", value_body(json::value{{"token", secret},
                                        {"list", json::array{"a " + secret + " b", 1}},
                                        {secret, "as a key"}}));
  p.add("reader", echo_dependency("value"), {"value"});
  auto failing = p.add("failing", fail_body("login with " + secret + " refused"));
  failing.retries(1);
  failing.backoff(exact_backoff(1ms));
  p.add("skipping", value_body()).skip_if([secret] {
    return std::optional<std::string>{"skipped because " + secret + " is set"};
  });

  event_log events;
  drover::run_options options;
  options.secrets = secrets;
  options.on_event = events.sink();
  const auto run = run_pipeline(std::move(p), std::move(options));
  const auto& report = run.report;

  const json::value expected_value =
      json::parse(R"({"token": "***", "list": ["a *** b", 1], "***": "as a key"})");
  BOOST_TEST(result_of(report, "value").status == module_status::succeeded);
  BOOST_TEST(result_of(report, "value").value == expected_value);
  // Dependents read the masked value, as every later reader does.
  BOOST_TEST(result_of(report, "reader").value == expected_value);
  BOOST_TEST(result_of(report, "failing").status == module_status::failed);
  BOOST_TEST(result_of(report, "failing").attempts == 2u);
  BOOST_TEST(result_of(report, "failing").reason == "login with *** refused");
  BOOST_TEST(result_of(report, "skipping").status == module_status::skipped);
  BOOST_TEST(mentions(result_of(report, "skipping").reason, "skipped because *** is set"));

  std::size_t masked_messages = 0;
  for (const auto& e : events.events()) {
    BOOST_TEST(e.message.find(secret) == std::string::npos, e.message);
    if (e.message.find("***") != std::string::npos) ++masked_messages;
  }
  // The retry, the failure and the skip each said it with the secret masked.
  BOOST_TEST(masked_messages >= 3u);
  const auto failing_events = events.of("failing");
  const bool retry_masked =
      std::any_of(failing_events.begin(), failing_events.end(), [](const recorded_event& e) {
        return e.type == drover::event_type::module_retrying &&
               e.message == "login with *** refused";
      });
  BOOST_TEST(retry_masked);
}

BOOST_AUTO_TEST_CASE(a_run_without_secrets_changes_nothing, *boost::unit_test::timeout(30)) {
  drover::pipeline p;
  p.add("value", value_body(json::value{{"token", "***-free text"}}));
  p.add("failing", fail_body("plain failure"));
  drover::run_options options;
  options.secrets = std::make_shared<secret_masker>();  // present but empty
  const auto run = run_pipeline(std::move(p), std::move(options));
  BOOST_TEST(result_of(run.report, "value").value == json::parse(R"({"token": "***-free text"})"));
  BOOST_TEST(result_of(run.report, "failing").reason == "plain failure");
}

BOOST_AUTO_TEST_SUITE_END()
