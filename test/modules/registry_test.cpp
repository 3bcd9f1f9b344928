#include <drover/modules/registry.hpp>

#define BOOST_TEST_MODULE registry
#include "modules_test_support.hpp"

#include <drover/context.hpp>

#include <drover/modules/interpolation.hpp>

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

asio::awaitable<json::value> echo(drover::module_context& ctx, std::string text) {
  co_return json::object{{"text", text}, {"as_written", ctx.params()}};
}

/// A user's kinds: `constant` returns params.value; `add` returns its dependency params.from
/// plus params.n; `echo` returns params.text (a non-empty string) and the params as written.
kind_registry user_registry() {
  kind_registry r = drover::modules::builtin_registry();
  r.add("echo", [](const json::value& params) -> drover::module_body {
    const auto* text = params.is_object() ? params.as_object().if_contains("text") : nullptr;
    if (!text || !text->is_string() || text->get_string().empty()) {
      throw params_error("params.text", "'text' must be a non-empty string");
    }
    return
        [t = std::string(text->get_string())](drover::module_context& ctx) { return echo(ctx, t); };
  });
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
  p.add("nothing", {});  // neither body nor kind: the engine's to report
  auto own = add_kind(p, "own_body", "no_such_kind");
  own.body([](drover::module_context&) { return return_value("own"); });

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

  BOOST_TEST(static_cast<bool>(p.module(1).body()));  // fine
  BOOST_TEST(!p.module(0).body());                    // typo keeps an empty body
  BOOST_TEST(!p.module(2).body());
  BOOST_TEST(!p.module(5).body());  // nothing: left alone
  BOOST_TEST(static_cast<bool>(p.module(6).body()));
}

BOOST_AUTO_TEST_CASE(module_with_neither_body_nor_kind_is_left_to_the_engine,
                     *boost::unit_test::timeout(20)) {
  drover::pipeline p;
  add_kind(p, "fine", "noop");
  p.add("nothing", {});
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
  BOOST_TEST(
      r.kinds() == (std::vector<std::string>{"add", "constant", "echo", "exec", "noop", "sleep"}),
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

BOOST_AUTO_TEST_CASE(expressions_in_params_are_resolved_for_every_kind,
                     *boost::unit_test::timeout(30)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      add_kind(p, "base", "constant", R"({"value": {"name": "app", "n": 1}})");
      add_kind(p, "nested", "constant",
               R"({"value": {"got": ["${{ deps.base.value.name }}", "${{ deps.base.value.n }}"]}})",
               {"base"});
      add_kind(p, "greet", "echo", R"({"text": "hi ${{ deps.base.value.name }}"})", {"base"});
      add_kind(p, "escaped", "constant", R"({"value": "$${{ deps.base.value }}"})");
      const auto out = run(std::move(p), with_workers(workers), user_registry());
      BOOST_TEST(out.report.status == drover::run_status::succeeded);
      BOOST_TEST(out["nested"].value == json::parse(R"({"got": ["app", "1"]})"));
      BOOST_TEST(out["greet"].value.at("text") == json::value("hi app"));
      // ctx.params() keeps the params as written.
      BOOST_TEST(out["greet"].value.at("as_written") ==
                 json::parse(R"({"text": "hi ${{ deps.base.value.name }}"})"));
      BOOST_TEST(out["escaped"].value == json::value("${{ deps.base.value }}"));
    }
  }
}

BOOST_AUTO_TEST_CASE(make_rejects_a_malformed_expression_naming_its_field) {
  const kind_registry r = user_registry();
  BOOST_CHECK_EXCEPTION(
      r.make("constant", json::parse(R"({"value": ["ok", "${{ deps.a.valeu }}"]})")),
      drover::modules::expression_error, [](const drover::modules::expression_error& e) {
        return e.field() == "params.value[1]" &&
               e.problem().fault == drover::modules::expression_fault::malformed &&
               e.problem().expression == "${{ deps.a.valeu }}";
      });
  // A params_error like any other, for whoever catches those.
  BOOST_CHECK_THROW(r.make("echo", json::parse(R"({"text": "${{ }}"})")), params_error);
  // The shape is checked with each expression's text in its place: an expression cannot make
  // an integer.
  BOOST_CHECK_EXCEPTION(r.make("sleep", json::parse(R"({"ms": "${{ deps.a.value }}"})")),
                        params_error,
                        [](const params_error& e) { return e.field() == "params.ms"; });
}

BOOST_AUTO_TEST_CASE(resolve_reports_references_a_module_cannot_make) {
  drover::pipeline p;
  add_kind(p, "base", "constant", R"({"value": 1})");
  add_kind(p, "stranger", "echo", R"({"text": "${{ deps.base.value }}"})");
  add_kind(p, "no_matrix", "echo", R"({"text": "${{ matrix.target }}"})");
  auto grid = add_kind(p, "grid", "echo", R"({"text": "${{ matrix.os }} ${{ matrix.cpu }}"})");
  grid.matrix().axes = {{"os", {"linux"}}};
  add_kind(p, "fine", "echo",
           R"({"text": "${{ deps['grid[os=linux]'].status }} ${{ deps.base.value }}"})",
           {"grid", "base"});
  const auto problems = user_registry().resolve(p);
  BOOST_TEST_INFO(drover::format_problems(problems));
  BOOST_REQUIRE(problems.size() == 3u);
  BOOST_TEST(problems[0].module == "stranger");
  BOOST_TEST(problems[0].field == "params.text");
  BOOST_TEST(problems[0].message ==
             "${{ deps.base.value }}: 'base' is not one of the module's dependencies (a module "
             "reads only the values of its deps)");
  BOOST_TEST(problems[1].module == "no_matrix");
  BOOST_TEST(problems[1].message == "${{ matrix.target }}: the module has no matrix");
  BOOST_TEST(problems[2].module == "grid");
  BOOST_TEST(problems[2].message == "${{ matrix.cpu }}: the module's matrix has no axis 'cpu'");
}

BOOST_AUTO_TEST_CASE(a_value_missing_at_run_time_fails_the_attempt_and_is_retried,
                     *boost::unit_test::timeout(30)) {
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  add_kind(p, "base", "constant", R"({"value": {"name": "app"}})");
  auto use = add_kind(p, "use", "echo", R"({"text": "${{ deps.base.value.version }}"})", {"base"});
  use.retries(2);
  use.backoff(
      drover::backoff_policy{std::chrono::milliseconds(1), 1.0, std::chrono::milliseconds(1), 0.0});
  add_kind(p, "empty", "constant", R"({"value": ""})");
  add_kind(p, "blank", "echo", R"({"text": "${{ deps.empty.value }}"})", {"empty"});
  const auto out = run(std::move(p), {}, user_registry());
  BOOST_TEST(out["use"].status == drover::module_status::failed);
  BOOST_TEST(out["use"].attempts == 3u);
  BOOST_TEST(out["use"].reason ==
             "params.text: ${{ deps.base.value.version }}: 'base' has no key 'version' in its "
             "value");
  // Params the factory rejects once the expressions are replaced fail the attempt too.
  BOOST_TEST(out["blank"].status == drover::module_status::failed);
  BOOST_TEST(out["blank"].reason ==
             "params.text: 'text' must be a non-empty string (once its ${{ }} expressions were "
             "replaced)");
}

BOOST_AUTO_TEST_SUITE_END()
