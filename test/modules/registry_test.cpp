#include <drover/modules/registry.hpp>

#define BOOST_TEST_MODULE registry
#include "modules_test_support.hpp"

#include <drover/context.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace {

using namespace drover::modules_test;
using drover::modules::params_error;
using kind_registry = drover::modules::registry;

asio::awaitable<json::value> return_value(json::value v) {
  co_return v;
}

asio::awaitable<json::value> add_to_dependency(drover::module_context& ctx, std::string dep,
                                               std::int64_t n) {
  co_return ctx.result<std::int64_t>(dep) + n;
}

/// A user's kinds: `constant` returns params.value; `add` returns its dependency params.from
/// plus params.n.
kind_registry user_registry() {
  kind_registry r = drover::modules::builtin_registry();
  r.add("constant", [](const json::value& params) -> drover::module_body {
    const auto* object = params.if_object();
    if (!object || !object->contains("value")) {
      throw params_error("params.value", "constant needs 'value'");
    }
    return [v = object->at("value")](drover::module_context&) { return return_value(v); };
  });
  r.add("add", [](const json::value& params) -> drover::module_body {
    const auto* object = params.if_object();
    if (!object || !object->contains("n") || !object->at("n").is_int64()) {
      throw params_error("params.n", "add needs an integer 'n'");
    }
    if (!object->contains("from") || !object->at("from").is_string()) {
      throw params_error("params.from", "add needs the dependency name 'from'");
    }
    std::string from{object->at("from").get_string()};
    const std::int64_t n = object->at("n").get_int64();
    return [from, n](drover::module_context& ctx) { return add_to_dependency(ctx, from, n); };
  });
  return r;
}

const drover::validation_problem* problem_of(const std::vector<drover::validation_problem>& all,
                                             std::string_view module) {
  for (const auto& p : all) {
    if (p.module == module) return &p;
  }
  return nullptr;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(registry)

BOOST_AUTO_TEST_CASE(builtin_registry_holds_exec_noop_and_sleep) {
  const kind_registry r = drover::modules::builtin_registry();
  BOOST_TEST(r.kinds() == (std::vector<std::string>{"exec", "noop", "sleep"}),
             boost::test_tools::per_element());
  BOOST_TEST(r.contains("exec"));
  BOOST_TEST(r.contains("sleep"));
  BOOST_TEST(!r.contains("exce"));
  BOOST_TEST(!r.contains(""));

  kind_registry empty;
  BOOST_TEST(empty.kinds().empty());
  add_builtin_kinds(empty);
  BOOST_TEST(empty.kinds().size() == 3u);
}

BOOST_AUTO_TEST_CASE(make_reports_unknown_kinds_and_bad_params) {
  const kind_registry r = drover::modules::builtin_registry();
  BOOST_CHECK_EXCEPTION(
      r.make("exce", json::value{}), std::invalid_argument, [](const std::invalid_argument& e) {
        return std::string_view{e.what()} == "unknown kind 'exce' (known kinds: exec, noop, sleep)";
      });
  BOOST_CHECK_EXCEPTION(r.make("sleep", json::parse(R"({"ms": "10"})")), params_error,
                        [](const params_error& e) { return e.field() == "params.ms"; });
  BOOST_TEST(static_cast<bool>(r.make("sleep", json::parse(R"({"ms": 10})"))));

  BOOST_CHECK_EXCEPTION(
      kind_registry{}.make("noop", json::value{}), std::invalid_argument,
      [](const std::invalid_argument& e) { return contains(e.what(), "no kinds are registered"); });
}

BOOST_AUTO_TEST_CASE(resolve_reports_one_problem_per_bad_module) {
  drover::pipeline p;
  add_kind(p, "typo", "exce");
  add_kind(p, "fine", "noop");
  add_kind(p, "negative", "sleep", R"({"ms": -1})");
  add_kind(p, "unknown_param", "exec", R"({"argv": ["true"], "argvv": ["x"]})");
  add_kind(p, "no_argv", "exec", R"({"cwd": "/tmp"})");
  p.modules.emplace_back().id = "nothing";  // neither body nor kind: the engine's to report
  auto& own = add_kind(p, "own_body", "no_such_kind");
  own.body = [](drover::module_context&) { return return_value("own"); };

  const auto problems = drover::modules::builtin_registry().resolve(p);
  BOOST_TEST_INFO(drover::format_problems(problems));
  BOOST_REQUIRE(problems.size() == 4u);

  const auto* typo = problem_of(problems, "typo");
  BOOST_REQUIRE(typo);
  BOOST_TEST(typo->field == "kind");
  BOOST_TEST(typo->message == "unknown kind 'exce' (known kinds: exec, noop, sleep)");

  const auto* negative = problem_of(problems, "negative");
  BOOST_REQUIRE(negative);
  BOOST_TEST(negative->field == "params.ms");
  BOOST_TEST(contains(negative->message, "'ms'"));
  BOOST_TEST(contains(negative->message, "-1"));

  const auto* unknown_param = problem_of(problems, "unknown_param");
  BOOST_REQUIRE(unknown_param);
  BOOST_TEST(unknown_param->field == "params.argvv");
  BOOST_TEST(contains(unknown_param->message, "unknown param 'argvv'"));

  const auto* no_argv = problem_of(problems, "no_argv");
  BOOST_REQUIRE(no_argv);
  BOOST_TEST(no_argv->field == "params.argv");

  BOOST_TEST(static_cast<bool>(p.modules[1].body));  // fine
  BOOST_TEST(!p.modules[0].body);                    // typo keeps an empty body
  BOOST_TEST(!p.modules[2].body);
  BOOST_TEST(!p.modules[5].body);  // nothing: left alone
  BOOST_TEST(static_cast<bool>(p.modules[6].body));
}

BOOST_AUTO_TEST_CASE(module_with_neither_body_nor_kind_is_left_to_the_engine,
                     *boost::unit_test::timeout(20)) {
  drover::pipeline p;
  add_kind(p, "fine", "noop");
  p.modules.emplace_back().id = "nothing";
  const auto problems = drover::modules::builtin_registry().resolve(p);
  BOOST_TEST(problems.empty());

  asio::io_context io;
  drover::engine engine{io.get_executor()};
  std::optional<drover::run_report> report;
  engine.async_run(std::move(p), [&](drover::run_report r) { report = std::move(r); });
  io.run();
  BOOST_REQUIRE(report.has_value());
  BOOST_TEST(report->status == drover::run_status::invalid);
  BOOST_TEST(problem_of(report->problems, "nothing") != nullptr);
}

BOOST_AUTO_TEST_CASE(user_registered_kinds_run_through_the_engine, *boost::unit_test::timeout(30)) {
  const kind_registry r = user_registry();
  BOOST_TEST(r.kinds() == (std::vector<std::string>{"add", "constant", "exec", "noop", "sleep"}),
             boost::test_tools::per_element());

  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      add_kind(p, "base", "constant", R"({"value": 41})");
      add_kind(p, "answer", "add", R"({"from": "base", "n": 1})", {"base"});
      add_kind(p, "pause", "sleep", R"({"ms": 5})", {"base"});
      add_kind(p, "again", "add", R"({"from": "answer", "n": 100})", {"answer", "pause"});
      const auto out = run(std::move(p), with_workers(workers), r);
      BOOST_TEST(out.report.status == drover::run_status::succeeded);
      BOOST_TEST(out["answer"].value == json::value(42));
      BOOST_TEST(out["again"].value == json::value(142));
    }
  }
}

BOOST_AUTO_TEST_CASE(user_factories_report_their_own_fields) {
  drover::pipeline p;
  add_kind(p, "no_value", "constant", "{}");
  add_kind(p, "no_n", "add", R"({"from": "x"})");
  const auto problems = user_registry().resolve(p);
  BOOST_REQUIRE(problems.size() == 2u);
  BOOST_TEST(problems[0].module == "no_value");
  BOOST_TEST(problems[0].field == "params.value");
  BOOST_TEST(problems[1].module == "no_n");
  BOOST_TEST(problems[1].field == "params.n");
}

BOOST_AUTO_TEST_CASE(adding_a_kind_again_replaces_it, *boost::unit_test::timeout(20)) {
  kind_registry r = drover::modules::builtin_registry();
  r.add("noop", [](const json::value&) -> drover::module_body {
    return [](drover::module_context&) { return return_value("replaced"); };
  });
  BOOST_TEST(r.kinds().size() == 3u);

  drover::pipeline p;
  add_kind(p, "m", "noop");
  const auto out = run(std::move(p), {}, r);
  BOOST_TEST(out["m"].value == json::value("replaced"));
}

BOOST_AUTO_TEST_CASE(a_factory_that_throws_something_else_is_a_params_problem) {
  kind_registry r;
  r.add("fussy", [](const json::value&) -> drover::module_body {
    throw std::runtime_error("fussy refuses");
  });
  r.add("empty", [](const json::value&) { return drover::module_body{}; });
  drover::pipeline p;
  add_kind(p, "a", "fussy");
  add_kind(p, "b", "empty");
  const auto problems = r.resolve(p);
  BOOST_REQUIRE(problems.size() == 2u);
  BOOST_TEST(problems[0].field == "params");
  BOOST_TEST(problems[0].message == "fussy refuses");
  BOOST_TEST(problems[1].field == "params");
  BOOST_TEST(contains(problems[1].message, "empty body"));
}

BOOST_AUTO_TEST_SUITE_END()
