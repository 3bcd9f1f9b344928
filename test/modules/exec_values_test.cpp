// exec and the values of other modules: the DROVER_DEPS file, DROVER_MATRIX_TARGET, and
// `${{ ... }}` expressions in exec's params (resolved through the registry).
#include <drover/modules/exec.hpp>

#define BOOST_TEST_MODULE exec_values
#include "modules_test_support.hpp"

#include <drover/attempt.hpp>
#include <drover/context.hpp>
#include <drover/secrets.hpp>

#include <boost/json/serialize.hpp>

#include <cstdlib>
#include <memory>

namespace {

using namespace drover::modules_test;
using drover::module_status;

/// Params for a shell command, with extra members given as JSON text (without braces).
std::string shell_params(std::string_view command, std::string_view extra = "") {
  std::string params = "{\"shell\": " + json::serialize(json::value(command));
  if (!extra.empty()) params += ", " + std::string(extra);
  return params + "}";
}

drover::run_options in_workspace(const temp_dir& dir, bool keep_workdirs = false) {
  drover::run_options options;
  options.workspace = dir.path();
  options.keep_workdirs = keep_workdirs;
  return options;
}

/// A module with a C++ body that returns `value`.
drover::module_ref add_value(drover::pipeline& p, std::string id, json::value value) {
  return p.add(std::move(id), [value](drover::module_context&) -> asio::awaitable<json::value> {
    co_return value;
  });
}

/// Prints the file DROVER_DEPS names as the module's output.
const std::string print_deps = shell_params(R"(cat "$DROVER_DEPS")", R"("json_output": true)");

}  // namespace

BOOST_AUTO_TEST_SUITE(exec_values)

BOOST_AUTO_TEST_CASE(drover_deps_holds_the_status_and_value_of_every_dependency,
                     *boost::unit_test::timeout(30)) {
  temp_dir dir;
  drover::pipeline p;
  add_kind(
      p, "version", "exec",
      shell_params(R"(echo '{"version": "1.2", "files": ["a", "b"]}')", R"("json_output": true)"));
  add_kind(p, "quiet", "noop");
  add_value(p, "typed", json::parse(R"({"n": 3})"));
  add_kind(p, "package", "exec", print_deps, {"version", "quiet", "typed"});
  add_kind(p, "alone", "exec", print_deps);
  const auto out = run(std::move(p), in_workspace(dir));
  BOOST_TEST_REQUIRE(out["package"].status == module_status::succeeded, out["package"].reason);
  BOOST_TEST(out["package"].value.at("output") == json::parse(R"({
               "version": {"status": "succeeded",
                           "value": {"exit_code": 0, "output": {"version": "1.2", "files": ["a", "b"]}}},
               "quiet": {"status": "succeeded", "value": null},
               "typed": {"status": "succeeded", "value": {"n": 3}}})"));
  BOOST_TEST(out["alone"].value.at("output") == json::object{}, "no dependencies: an empty object");
}

BOOST_AUTO_TEST_CASE(an_always_run_module_sees_a_failed_dependency_without_a_value,
                     *boost::unit_test::timeout(30)) {
  temp_dir dir;
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  add_kind(p, "broken", "exec", shell_params("exit 1"));
  add_kind(p, "report", "exec", print_deps, {"broken"}).always_run(true);
  const auto out = run(std::move(p), in_workspace(dir));
  BOOST_TEST_REQUIRE(out["report"].status == module_status::succeeded, out["report"].reason);
  BOOST_TEST(out["report"].value.at("output") ==
             json::parse(R"({"broken": {"status": "failed", "value": null}})"));
}

BOOST_AUTO_TEST_CASE(drover_deps_lies_beside_the_work_directory_and_goes_with_it,
                     *boost::unit_test::timeout(30)) {
  for (const bool keep : {false, true}) {
    BOOST_TEST_CONTEXT("keep_workdirs " << keep) {
      temp_dir dir;
      drover::pipeline p;
      add_kind(p, "a", "noop");
      // Even an output glob that takes everything in the work directory cannot take it.
      add_kind(p, "where", "exec",
               shell_params(R"(printf '["%s", "%s"]\n' "$DROVER_DEPS" "$DROVER_WORK_DIR")",
                            R"("json_output": true)"),
               {"a"})
          .io()
          .outputs = {"**"};
      const auto out = run(std::move(p), in_workspace(dir, keep));
      BOOST_TEST_REQUIRE(out["where"].status == module_status::succeeded, out["where"].reason);
      const json::array seen = out["where"].value.at("output").as_array();
      const std::filesystem::path deps{std::string(seen.at(0).as_string())};
      const std::filesystem::path work{std::string(seen.at(1).as_string())};
      BOOST_TEST(deps.string() == work.string() + ".deps.json");
      BOOST_TEST(deps.is_absolute());
      BOOST_TEST(std::filesystem::exists(deps) == keep);
      BOOST_TEST(!std::filesystem::exists(dir / "deps.json"));
      if (keep)
        BOOST_TEST(json::parse(read_text(deps)) ==
                   json::parse(R"({"a": {"status": "succeeded", "value": null}})"));
    }
  }
}

BOOST_AUTO_TEST_CASE(each_attempt_gets_a_fresh_drover_deps_file, *boost::unit_test::timeout(30)) {
  temp_dir dir;
  drover::pipeline p;
  add_value(p, "a", "first");
  // The first attempt spoils its file and fails; the retry reads a file of its own.
  add_kind(p, "retried", "exec",
           shell_params(R"(if [ -e "$DROVER_WORKSPACE/once" ]; then cat "$DROVER_DEPS"; )"
                        R"(else touch "$DROVER_WORKSPACE/once"; echo spoiled > "$DROVER_DEPS"; )"
                        R"(exit 1; fi)",
                        R"("json_output": true)"),
           {"a"})
      .retries(1);
  auto options = in_workspace(dir);
  const auto out = run(std::move(p), options);
  BOOST_TEST_REQUIRE(out["retried"].status == module_status::succeeded, out["retried"].reason);
  BOOST_TEST(out["retried"].attempts == 2u);
  BOOST_TEST(out["retried"].value.at("output") ==
             json::parse(R"({"a": {"status": "succeeded", "value": "first"}})"));
}

BOOST_AUTO_TEST_CASE(drover_matrix_target_is_set_for_matrix_instances_only,
                     *boost::unit_test::timeout(30)) {
  temp_dir dir;
  drover::pipeline p;
  const auto print_target = shell_params(
      R"(if [ -n "${DROVER_MATRIX_TARGET+set}" ]; then printf '"%s"\n' "$DROVER_MATRIX_TARGET"; )"
      R"(else echo null; fi)",
      R"("json_output": true)");
  auto list = add_kind(p, "list", "exec", print_target);
  list.matrix().axes = {{"", {"linux", "mac"}}};
  list.matrix().requires_axes = std::vector<std::string>{};  // no worker capabilities needed
  auto named = add_kind(p, "named", "exec", print_target);
  named.matrix().axes = {{"os", {"linux"}}, {"cc", {"gcc"}}};
  add_kind(p, "plain", "exec", print_target);
  add_kind(p, "deps", "exec", print_deps, {"list"});
  const auto out = run(std::move(p), in_workspace(dir));
  BOOST_TEST_REQUIRE(out["list[linux]"].status == module_status::succeeded,
                     out["list[linux]"].reason);
  BOOST_TEST(out["list[linux]"].value.at("output") == json::value("linux"));
  BOOST_TEST(out["list[mac]"].value.at("output") == json::value("mac"));
  BOOST_TEST(out["named[os=linux,cc=gcc]"].value.at("output") == json::value("os=linux,cc=gcc"));
  BOOST_TEST(out["plain"].value.at("output") == json::value(nullptr));
  // A dependency on a matrix module is one on each instance, listed by instance id.
  BOOST_TEST_REQUIRE(out["deps"].status == module_status::succeeded, out["deps"].reason);
  const json::object deps = out["deps"].value.at("output").as_object();
  BOOST_TEST(deps.size() == 2u);
  BOOST_TEST(deps.contains("list[linux]"));
  BOOST_TEST(deps.contains("list[mac]"));
}

BOOST_AUTO_TEST_CASE(expressions_reach_argv_env_and_cwd, *boost::unit_test::timeout(30)) {
  temp_dir dir;
  std::filesystem::create_directories(dir / "src" / "app");
  drover::pipeline p;
  add_kind(p, "meta", "exec",
           shell_params(R"(echo '{"name": "x y", "dir": "src/app", "tags": ["a", "b"]}')",
                        R"("json_output": true)"));
  auto show = add_kind(p, "show", "exec", R"({
      "argv": ["sh", "-c", "printf '[\"%s\", \"%s\", \"%s\", \"%s\", \"%s\"]\\n' \"$1\" \"$2\" \"$V\" \"$(pwd -P)\" \"$3\"",
               "sh", "${{ deps.meta.value.output.name }}", "${{ deps.meta.value.output.tags[1] }}",
               "$${{ literal }}"],
      "env": {"V": "v=${{ deps.meta.value.exit_code }} ${{ deps.meta.status }} ${{ matrix.os }}"},
      "cwd": "${{ deps.meta.value.output.dir }}",
      "json_output": true})",
                       {"meta"});
  show.matrix().axes = {{"os", {"linux"}}};
  const auto out = run(std::move(p), in_workspace(dir));
  const auto& result = out["show[os=linux]"];
  BOOST_TEST_REQUIRE(result.status == module_status::succeeded, result.reason);
  const auto workspace = std::filesystem::canonical(dir.path());
  BOOST_TEST(result.value.at("output") ==
             json::parse(R"(["x y", "b", "v=0 succeeded linux", ")" +
                         (workspace / "src/app").string() + R"(", "${{ literal }}"])"));
}

BOOST_AUTO_TEST_CASE(a_missing_value_fails_the_attempt_before_the_command_starts,
                     *boost::unit_test::timeout(30)) {
  temp_dir dir;
  drover::pipeline p;
  add_kind(p, "meta", "exec", shell_params(R"(echo '{"name": "x"}')", R"("json_output": true)"));
  add_kind(p, "use", "exec",
           R"({"argv": ["touch", "ran", "${{ deps.meta.value.output.version }}"], "cwd": "."})",
           {"meta"})
      .retries(1);
  auto options = in_workspace(dir);
  const auto out = run(std::move(p), options);
  BOOST_TEST(out["use"].status == module_status::failed);
  BOOST_TEST(out["use"].attempts == 2u, "a failure like any other: retries apply");
  BOOST_TEST(out["use"].reason ==
             "params.argv[2]: ${{ deps.meta.value.output.version }}: 'meta' has no key 'version' "
             "in value.output");
  BOOST_TEST(!std::filesystem::exists(dir / "ran"));
}

BOOST_AUTO_TEST_CASE(params_that_become_invalid_fail_the_attempt_naming_the_field,
                     *boost::unit_test::timeout(30)) {
  drover::pipeline p;
  add_value(p, "empty", "");
  add_kind(p, "use", "exec", R"({"argv": ["${{ deps.empty.value }}"]})", {"empty"});
  const auto out = run(std::move(p));
  BOOST_TEST(out["use"].status == module_status::failed);
  BOOST_TEST(out["use"].reason ==
             "params.argv: 'argv' must start with a non-empty program name (once its ${{ }} "
             "expressions were replaced)");
}

BOOST_AUTO_TEST_CASE(interpolated_secrets_stay_masked, *boost::unit_test::timeout(30)) {
  // A dependency's value holds the text of this module's own secret_from_env: the run does not
  // know it, so the value reaches the params unmasked; exec masks it in all it writes.
  const std::string secret = "interp-s3cret-42";
  ::setenv("DROVER_EXEC_VALUES_SECRET", secret.c_str(), 1);
  temp_dir dir;
  drover::pipeline p;
  add_value(p, "leak", json::object{{"token", secret}});
  add_kind(p, "use", "exec",
           R"({"argv": ["sh", "-c", "echo \"got $1\"; echo \"err $1\" >&2; exit 3", "sh",
                        "${{ deps.leak.value.token }}"],
               "env": {"TOKEN": {"secret_from_env": "DROVER_EXEC_VALUES_SECRET"}}})",
           {"leak"});
  auto options = in_workspace(dir);
  options.log_dir = dir / "logs";
  const auto out = run(std::move(p), options);
  ::unsetenv("DROVER_EXEC_VALUES_SECRET");
  BOOST_TEST(out["use"].status == module_status::failed);
  BOOST_TEST(out["use"].reason == "exit code 3\ngot ***\nerr ***");
  const auto log = read_text(drover::modules::exec_log_path(dir / "logs", "use"));
  BOOST_TEST(contains(log, "got ***\n"), log);
  BOOST_TEST(!contains(log, secret), log);
}

BOOST_AUTO_TEST_CASE(a_run_secret_in_a_dependency_value_is_masked_before_it_is_interpolated,
                     *boost::unit_test::timeout(30)) {
  temp_dir dir;
  auto secrets = std::make_shared<drover::secret_masker>();
  secrets->add("run-secret-77");
  drover::pipeline p;
  add_value(p, "leak", "token=run-secret-77");
  add_kind(p, "use", "exec", R"({"argv": ["sh", "-c", "echo \"$1\" >&2; exit 2", "sh",
                                           "${{ deps.leak.value }}"]})",
           {"leak"});
  auto options = in_workspace(dir);
  options.log_dir = dir / "logs";
  options.secrets = secrets;
  const auto out = run(std::move(p), options);
  BOOST_TEST(out["use"].reason == "exit code 2\ntoken=***");
  const auto log = read_text(drover::modules::exec_log_path(dir / "logs", "use"));
  BOOST_TEST(!contains(log, "run-secret-77"), log);
}

BOOST_AUTO_TEST_CASE(an_attempt_runner_gives_the_same_values_as_a_run,
                     *boost::unit_test::timeout(30)) {
  // What `drover worker` does with an assign: the registry's body, the dependencies from the
  // master, the instance from matrix_target.
  temp_dir dir;
  asio::io_context io;
  drover::attempt_settings settings;
  settings.workspace = dir.path();
  drover::attempt_runner runner{io.get_executor(), settings};
  drover::attempt_request request;
  request.spec.id = "pkg[linux]";
  request.spec.kind = "exec";
  request.spec.params = json::parse(
      R"({"shell": "printf '[%s, \"%s\", \"%s\"]\\n' \"$(cat \"$DROVER_DEPS\")\" \"$DROVER_MATRIX_TARGET\" \"$V\"",
                                        "env": {"V": "${{ deps.build.value.v }}/${{ matrix.target }}"},
                                        "json_output": true})");
  request.spec.body = drover::modules::builtin_registry().make("exec", request.spec.params);
  request.spec.instance = drover::matrix_instance{"linux", {{"", "linux"}}};
  request.dependencies.push_back(
      {"build", module_status::succeeded,
       std::make_shared<const json::value>(json::parse(R"({"v": "7"})"))});
  std::optional<drover::attempt_report> report;
  runner.async_run(std::move(request), [&](drover::attempt_report r) { report = std::move(r); });
  io.run();
  BOOST_TEST_REQUIRE(report.has_value());
  BOOST_TEST_REQUIRE(report->status == module_status::succeeded, report->error);
  BOOST_TEST(
      report->value.at("output") ==
      json::parse(
          R"([{"build": {"status": "succeeded", "value": {"v": "7"}}}, "linux", "7/linux"])"));
}

BOOST_AUTO_TEST_SUITE_END()
