// End-to-end tests of `drover run`: real pipelines of exec modules in a scratch directory, run
// by the built binary; exit codes, report and events files, selection flags, failure modes and
// interruption.
#include "commands.hpp"

#define BOOST_TEST_MODULE run
#include "app_test_support.hpp"

#include <drover/modules/exec.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <regex>
#include <set>
#include <sstream>

namespace {

using namespace drover::app_test;
namespace json = boost::json;

json::object read_report(const fs::path& file) {
  const auto text = read_file(file);
  BOOST_TEST_REQUIRE(!text.empty(), "no report at " << file);
  return json::parse(text).as_object();
}

const json::object& module_in(const json::object& report, std::string_view id) {
  for (const auto& m : report.at("modules").as_array()) {
    if (m.as_object().at("id").as_string() == id) return m.as_object();
  }
  BOOST_FAIL("no module " << id << " in " << json::serialize(report));
  throw std::logic_error("unreachable");
}

std::string status_of(const json::object& report, std::string_view id) {
  return std::string{module_in(report, id).at("status").as_string()};
}

std::vector<std::string> module_ids(const json::object& report) {
  std::vector<std::string> ids;
  for (const auto& m : report.at("modules").as_array()) {
    ids.emplace_back(m.as_object().at("id").as_string());
  }
  return ids;
}

std::int64_t read_pid(const fs::path& file) {
  std::int64_t pid = 0;
  BOOST_TEST_REQUIRE(eventually([&] {
                       std::ifstream in{file};
                       return static_cast<bool>(in >> pid) && pid > 0;
                     }),
                     "no pid in " << file);
  return pid;
}

const std::regex rfc3339{R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"};

struct run_fixture {
  scratch_dir dir;
  drover_result drover(std::vector<std::string> args,
                       const std::map<std::string, std::string>& env = {}) {
    args.insert(args.begin(), "run");
    args.emplace_back("--progress");
    args.emplace_back("never");
    return run_drover(args, dir.path(), env);
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(run, run_fixture)

BOOST_AUTO_TEST_CASE(success_writes_report_events_and_logs) {
  dir.write("p.json", R"({
    "name": "hello",
    "modules": [
      {"id": "greet", "kind": "exec", "params": {"shell": "echo hello from greet"}},
      {"id": "answer", "kind": "exec", "deps": ["greet"],
       "params": {"argv": ["sh", "-c", "echo 42"], "json_output": true}},
      {"id": "done", "kind": "noop", "deps": ["answer"]}
    ]})");
  const auto r = drover({"p.json", "--report", "report.json", "--events", "events.jsonl"});
  BOOST_TEST(r.exit_code == 0, r.out << r.err);

  const auto report = read_report(dir / "report.json");
  BOOST_TEST(report.at("pipeline").as_string() == "hello");
  BOOST_TEST(report.at("status").as_string() == "succeeded");
  BOOST_TEST(std::regex_match(std::string{report.at("started_at").as_string()}, rfc3339));
  BOOST_TEST(std::regex_match(std::string{report.at("finished_at").as_string()}, rfc3339));
  BOOST_TEST(report.at("duration_ms").to_number<std::int64_t>() >= 0);
  BOOST_TEST(report.at("counts").as_object().at("succeeded").to_number<int>() == 3);
  BOOST_TEST(report.at("counts").as_object().at("failed").to_number<int>() == 0);
  const std::vector<std::string> ids{"greet", "answer", "done"};
  BOOST_TEST(module_ids(report) == ids, boost::test_tools::per_element());
  for (const auto& id : ids) {
    const auto& m = module_in(report, id);
    BOOST_TEST(m.at("status").as_string() == "succeeded");
    BOOST_TEST(m.at("attempts").to_number<int>() == 1);
    BOOST_TEST(m.at("worker").as_string().starts_with("local-"));
    BOOST_TEST(std::regex_match(std::string{m.at("started_at").as_string()}, rfc3339));
    BOOST_TEST(m.at("duration_ms").to_number<std::int64_t>() >= 0);
    BOOST_TEST(m.at("reason").is_null());
  }
  BOOST_TEST(module_in(report, "greet").at("value").as_object().at("exit_code") == 0);

  // Events: one JSON object per line, seq counting from 0, a start and a finish per module.
  std::istringstream lines{read_file(dir / "events.jsonl")};
  std::vector<json::object> events;
  for (std::string line; std::getline(lines, line);)
    events.push_back(json::parse(line).as_object());
  BOOST_TEST_REQUIRE(events.size() >= 8u);
  BOOST_TEST(events.front().at("type").as_string() == "run_started");
  BOOST_TEST(events.back().at("type").as_string() == "run_finished");
  std::map<std::string, int> started, finished;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    BOOST_TEST(e.at("seq").to_number<std::size_t>() == i);
    BOOST_TEST(std::regex_match(std::string{e.at("ts").as_string()}, rfc3339));
    const auto type = std::string{e.at("type").as_string()};
    if (type == "module_started") {
      ++started[std::string{e.at("module").as_string()}];
      BOOST_TEST(e.at("attempt").to_number<int>() == 1);
      BOOST_TEST(e.at("worker").as_string().starts_with("local-"));
    }
    if (type == "module_finished") {
      ++finished[std::string{e.at("module").as_string()}];
      BOOST_TEST(e.at("status").as_string() == "succeeded");
    }
  }
  for (const auto& id : ids) {
    BOOST_TEST(started[id] == 1, id);
    BOOST_TEST(finished[id] == 1, id);
  }

  BOOST_TEST(read_file(dir / ".drover/logs/greet.log").find("hello from greet") !=
             std::string::npos);
  BOOST_TEST(r.out.find("module  status     duration  attempts  worker\n") != std::string::npos,
             r.out);
  BOOST_TEST(r.out.find("\n3 succeeded, 0 failed in ") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("Failed modules") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(plain_progress_is_one_line_per_module_event) {
  dir.write("p.json", R"({"modules": [
      {"id": "one", "kind": "exec", "params": {"shell": "true"}},
      {"id": "two", "kind": "exec", "params": {"shell": "exit 4"}, "deps": ["one"]},
      {"id": "three", "kind": "noop", "deps": ["two"]}]})");
  const auto r = drover({"p.json", "--workers", "1"});
  BOOST_TEST(r.exit_code == 1);
  const std::string time = R"(\d\d:\d\d:\d\d\.\d{3} )";
  const std::regex expected{time + R"(started  one \(attempt 1, local-0\)\n)" + time +
                            R"(finished one succeeded \d+(ms|\.\ds)\n)" + time +
                            R"(started  two \(attempt 1, local-0\)\n)" + time +
                            R"(finished two failed \d+(ms|\.\ds): exit code 4\n)" + time +
                            R"(finished three skipped: dependency two failed\n\n[^]*)"};
  BOOST_TEST(std::regex_match(r.out, expected), r.out);
}

BOOST_AUTO_TEST_CASE(failure_shows_the_last_output_lines_and_exits_1) {
  dir.write("p.json", R"({"modules": [
      {"id": "compile", "kind": "exec",
       "params": {"shell": "echo starting; echo warning: something; echo error: the-last-line >&2; exit 3"}},
      {"id": "test", "kind": "noop", "deps": ["compile"]},
      {"id": "package", "kind": "noop", "deps": ["test"]}]})");
  const auto r = drover({"p.json", "--report", "report.json"});
  BOOST_TEST(r.exit_code == 1);
  const auto failed_section = r.out.find("Failed modules\n  compile (failed after 1 attempt)\n");
  BOOST_TEST_REQUIRE(failed_section != std::string::npos, r.out);
  const auto section = r.out.substr(failed_section);
  BOOST_TEST(section.find("exit code 3") != std::string::npos, section);
  BOOST_TEST(section.find("error: the-last-line") != std::string::npos, section);
  BOOST_TEST(r.out.find("\n1 failed") == std::string::npos);
  BOOST_TEST(r.out.find("0 succeeded, 1 failed, 2 skipped in ") != std::string::npos, r.out);

  const auto report = read_report(dir / "report.json");
  BOOST_TEST(report.at("status").as_string() == "failed");
  BOOST_TEST(module_in(report, "compile").at("reason").as_string().find("the-last-line") !=
             std::string::npos);
  BOOST_TEST(module_in(report, "test").at("reason").as_string() == "dependency compile failed");
  BOOST_TEST(module_in(report, "package").at("status").as_string() == "skipped");
  BOOST_TEST(module_in(report, "package").at("started_at").is_null());
  BOOST_TEST(module_in(report, "package").at("worker").is_null());
}

BOOST_AUTO_TEST_CASE(fail_fast_cancels_and_keep_going_finishes_other_branches) {
  dir.write("p.json", R"({"modules": [
      {"id": "broken", "kind": "exec", "params": {"shell": "exit 1"}},
      {"id": "slow", "kind": "exec", "params": {"shell": "sleep 1"}},
      {"id": "after_slow", "kind": "noop", "deps": ["slow"]},
      {"id": "after_broken", "kind": "noop", "deps": ["broken"]}]})");
  const auto fail_fast = drover({"p.json", "--workers", "2", "--report", "ff.json"});
  BOOST_TEST(fail_fast.exit_code == 1);
  const auto ff = read_report(dir / "ff.json");
  BOOST_TEST(status_of(ff, "broken") == "failed");
  BOOST_TEST(status_of(ff, "slow") == "cancelled");
  BOOST_TEST(status_of(ff, "after_slow") == "cancelled");
  BOOST_TEST(status_of(ff, "after_broken") == "skipped");

  const auto keep_going =
      drover({"p.json", "--workers", "2", "--keep-going", "--report", "kg.json"});
  BOOST_TEST(keep_going.exit_code == 1);
  const auto kg = read_report(dir / "kg.json");
  BOOST_TEST(status_of(kg, "broken") == "failed");
  BOOST_TEST(status_of(kg, "slow") == "succeeded");
  BOOST_TEST(status_of(kg, "after_slow") == "succeeded");
  BOOST_TEST(status_of(kg, "after_broken") == "skipped");
}

BOOST_AUTO_TEST_CASE(ignored_failures_and_own_skips_still_exit_0) {
  dir.write("p.json", R"({"modules": [
      {"id": "flaky", "kind": "exec", "params": {"shell": "exit 2"}, "ignore_failure": true},
      {"id": "after", "kind": "noop", "deps": ["flaky"]},
      {"id": "deploy", "kind": "exec", "params": {"shell": "exit 9"},
       "skip_if": {"env": "DROVER_TEST_NO_DEPLOY"}}]})");
  const auto r = drover({"p.json", "--report", "report.json"}, {{"DROVER_TEST_NO_DEPLOY", "1"}});
  BOOST_TEST(r.exit_code == 0, r.out << r.err);
  const auto report = read_report(dir / "report.json");
  BOOST_TEST(status_of(report, "flaky") == "ignored_failure");
  BOOST_TEST(status_of(report, "after") == "succeeded");
  BOOST_TEST(status_of(report, "deploy") == "skipped");
  BOOST_TEST(module_in(report, "deploy").at("reason").as_string() ==
             "skip_if: environment variable DROVER_TEST_NO_DEPLOY is set");

  const auto without_env = drover({"p.json"}, {{"DROVER_TEST_NO_DEPLOY", ""}});
  BOOST_TEST(without_env.exit_code == 1, "deploy runs and fails when the variable is empty");
}

BOOST_AUTO_TEST_CASE(retries_show_in_events_and_report) {
  dir.write("p.json", R"({"modules": [
      {"id": "third_time", "kind": "exec", "retries": 3, "backoff": {"initial": "10ms", "jitter": 0},
       "params": {"shell": "echo x >> tries; test $(wc -l < tries) -ge 3", "cwd": "."}}]})");
  const auto r = drover({"p.json", "--report", "report.json", "--events", "events.jsonl"});
  BOOST_TEST(r.exit_code == 0, r.out << r.err);
  const auto report = read_report(dir / "report.json");
  BOOST_TEST(module_in(report, "third_time").at("attempts").to_number<int>() == 3);
  const auto events = read_file(dir / "events.jsonl");
  std::size_t retries = 0;
  for (auto at = events.find("\"type\":\"module_retrying\""); at != std::string::npos;
       at = events.find("\"type\":\"module_retrying\"", at + 1)) {
    ++retries;
  }
  BOOST_TEST(retries == 2u);
  BOOST_TEST(events.find("\"delay_ms\":10") != std::string::npos, events);
  BOOST_TEST(
      r.out.find("retrying third_time in 10ms (attempt 1: exit code 1)") != std::string::npos,
      r.out);
}

BOOST_AUTO_TEST_CASE(selection_flags) {
  dir.write("p.json", R"({"modules": [
      {"id": "fetch", "kind": "exec", "params": {"shell": "true"}},
      {"id": "build", "kind": "exec", "params": {"shell": "true"}, "deps": ["fetch"]},
      {"id": "test", "kind": "exec", "params": {"shell": "true"}, "deps": ["build"], "tags": ["check"]},
      {"id": "lint", "kind": "exec", "params": {"shell": "true"}, "tags": ["check"]},
      {"id": "docs", "kind": "exec", "params": {"shell": "exit 1"}}]})");

  BOOST_TEST(drover({"p.json", "--module", "build", "--report", "m.json"}).exit_code == 0);
  BOOST_TEST(
      module_ids(read_report(dir / "m.json")) == (std::vector<std::string>{"fetch", "build"}),
      boost::test_tools::per_element());

  BOOST_TEST(drover({"p.json", "--tag", "check", "--report", "t.json"}).exit_code == 0);
  BOOST_TEST(module_ids(read_report(dir / "t.json")) ==
                 (std::vector<std::string>{"fetch", "build", "test", "lint"}),
             boost::test_tools::per_element());

  BOOST_TEST(drover({"p.json", "--module", "lint", "--tag", "check", "--module", "docs",
                     "--skip-module", "docs", "--skip-module", "build", "--report", "s.json"})
                 .exit_code == 0);
  const auto skipped = read_report(dir / "s.json");
  BOOST_TEST(module_ids(skipped).size() == 5u);
  BOOST_TEST(status_of(skipped, "docs") == "skipped");
  BOOST_TEST(module_in(skipped, "docs").at("reason").as_string() == "skipped by --skip-module");
  BOOST_TEST(status_of(skipped, "build") == "skipped");
  BOOST_TEST(status_of(skipped, "test") == "skipped", "dependents of a skipped module are skipped");
  BOOST_TEST(status_of(skipped, "fetch") == "succeeded");
  BOOST_TEST(status_of(skipped, "lint") == "succeeded");

  const auto unknown = drover({"p.json", "--skip-module", "biuld", "--report", "u.json"});
  BOOST_TEST(unknown.exit_code == 2);
  BOOST_TEST(
      unknown.err.find("--skip-module 'biuld': no module has this id (did you mean 'build'?)") !=
          std::string::npos,
      unknown.err);
  BOOST_TEST(!fs::exists(dir / "u.json"), "nothing ran");
}

BOOST_AUTO_TEST_CASE(workers_bound_how_many_modules_run_at_once, *boost::unit_test::timeout(60)) {
  std::string modules;
  for (int i = 0; i < 8; ++i) {
    modules += std::string{i == 0 ? "" : ","} + R"({"id": "s)" + std::to_string(i) +
               R"(", "kind": "sleep", "params": {"ms": 50}})";
  }
  dir.write("p.json", "{\"modules\": [" + modules + "]}");
  for (int workers : {1, 2, 8}) {
    const auto report_file = "w" + std::to_string(workers) + ".json";
    const auto r =
        drover({"p.json", "--workers", std::to_string(workers), "--report", report_file});
    BOOST_TEST(r.exit_code == 0, workers);
    const auto report = read_report(dir / report_file);
    std::set<std::string> names;
    for (const auto& m : report.at("modules").as_array()) {
      names.emplace(m.as_object().at("worker").as_string());
    }
    BOOST_TEST(names.size() <= static_cast<std::size_t>(workers), workers);
    // Eight 50 ms sleeps on one worker cannot take less than 400 ms.
    if (workers == 1) BOOST_TEST(report.at("duration_ms").to_number<int>() >= 400);
  }
}

BOOST_AUTO_TEST_CASE(log_dir_and_unwritable_outputs) {
  dir.write("p.json", R"({"modules": [
      {"id": "say", "kind": "exec", "params": {"shell": "echo into the custom log"}}]})");
  BOOST_TEST(drover({"p.json", "--log-dir", "custom/logs"}).exit_code == 0);
  BOOST_TEST(read_file(dir / "custom/logs/say.log").find("into the custom log") !=
             std::string::npos);

  // By default the logs go to the workspace's .drover/logs, wherever drover was started from.
  fs::create_directories(dir / "project");
  fs::create_directories(dir / "elsewhere");
  const auto from_elsewhere = run_drover(
      {"run", "../p.json", "--workspace", "../project", "--progress", "never"}, dir / "elsewhere");
  BOOST_TEST(from_elsewhere.exit_code == 0, from_elsewhere.err);
  BOOST_TEST(read_file(dir / "project/.drover/logs/say.log").find("into the custom log") !=
             std::string::npos);
  BOOST_TEST(!fs::exists(dir / "elsewhere/.drover"), "nothing lands where drover was started");
  BOOST_TEST(drover({"p.json"}).exit_code == 0);
  BOOST_TEST(fs::exists(dir / ".drover/logs/say.log"), "the workspace defaults to the cwd");

  const auto no_report = drover({"p.json", "--report", "no/such/dir/report.json"});
  BOOST_TEST(no_report.exit_code == 2);
  BOOST_TEST(no_report.err.find("cannot write the report file 'no/such/dir/report.json'") !=
                 std::string::npos,
             no_report.err);
  const auto no_events = drover({"p.json", "--events", "no/such/dir/events.jsonl"});
  BOOST_TEST(no_events.exit_code == 2);
  BOOST_TEST(no_events.out.empty(), "nothing ran");
}

BOOST_AUTO_TEST_CASE(interrupt_cancels_the_run_kills_children_and_writes_the_report,
                     *boost::unit_test::timeout(30)) {
  dir.write("p.json", R"({"modules": [
      {"id": "first", "kind": "exec", "params": {"shell": "echo $$ > first.pid; exec sleep 30", "cwd": "."}},
      {"id": "second", "kind": "exec", "params": {"shell": "echo $$ > second.pid; exec sleep 30", "cwd": "."}},
      {"id": "later", "kind": "noop", "deps": ["first"]}]})");
  for (int signal : {SIGINT, SIGTERM}) {
    fs::remove(dir / "first.pid");
    fs::remove(dir / "second.pid");
    drover_process process{{"run", "p.json", "--workers", "2", "--progress", "never", "--report",
                            "report.json", "--events", "events.jsonl"},
                           dir.path()};
    const auto first = read_pid(dir / "first.pid");
    const auto second = read_pid(dir / "second.pid");
    const auto sent = std::chrono::steady_clock::now();
    process.send(signal);
    const auto r = process.wait(15s);
    BOOST_TEST(r.exit_code == 130, strsignal(signal) << ": " << r.err);
    const bool prompt = std::chrono::steady_clock::now() - sent < 10s;
    BOOST_TEST(prompt, "the run ends promptly");
    BOOST_TEST(r.err.find("interrupted") != std::string::npos, r.err);

    const auto report = read_report(dir / "report.json");
    BOOST_TEST(report.at("status").as_string() == "cancelled");
    BOOST_TEST(status_of(report, "first") == "cancelled");
    BOOST_TEST(status_of(report, "second") == "cancelled");
    BOOST_TEST(status_of(report, "later") == "cancelled");
    BOOST_TEST(read_file(dir / "events.jsonl").find("\"type\":\"run_finished\"") !=
               std::string::npos);
    BOOST_TEST(eventually([&] { return process_gone(first) && process_gone(second); }),
               "child processes are gone");
  }
}

BOOST_AUTO_TEST_CASE(a_deadline_ends_the_run_failed_and_names_its_reason,
                     *boost::unit_test::timeout(60)) {
  dir.write("p.json", R"({"modules": [
      {"id": "quick", "kind": "exec", "params": {"shell": "true"}},
      {"id": "slow", "kind": "exec", "deps": ["quick"],
       "params": {"shell": "echo $$ > slow.pid; exec sleep 60", "cwd": "."}},
      {"id": "after", "kind": "noop", "deps": ["slow"]}]})");
  const auto started = std::chrono::steady_clock::now();
  const auto r =
      drover({"p.json", "--deadline", "1s", "--report", "report.json", "--events", "events.jsonl"});
  // A deadline is a failure of the run, not an interruption: exit 1, status failed.
  BOOST_TEST(r.exit_code == 1, r.out << r.err);
  const bool ended_early = std::chrono::steady_clock::now() - started < 40s;
  BOOST_TEST(ended_early, "the deadline ended the run");
  const auto report = read_report(dir / "report.json");
  BOOST_TEST(report.at("status").as_string() == "failed");
  BOOST_TEST(status_of(report, "quick") == "succeeded");
  BOOST_TEST(status_of(report, "slow") == "cancelled");
  // The reason leads with the cause; what was done to the child follows in parentheses.
  const std::string slow_reason{module_in(report, "slow").at("reason").as_string()};
  BOOST_TEST(slow_reason.starts_with("deadline exceeded"), slow_reason);
  BOOST_TEST(status_of(report, "after") == "cancelled");
  BOOST_TEST(eventually([&] { return process_gone(read_pid(dir / "slow.pid")); }),
             "the slow module's process is gone");

  // The report and every event name the same run.
  const std::string run{report.at("run").as_string()};
  BOOST_TEST(run.size() == 16u, run);
  std::istringstream lines{read_file(dir / "events.jsonl")};
  std::size_t events = 0;
  for (std::string line; std::getline(lines, line); ++events) {
    BOOST_TEST(json::parse(line).as_object().at("run").as_string() == run, line);
  }
  BOOST_TEST(events > 0u);

  for (const char* bad : {"0s", "-5s", "soon", "10"}) {
    // "--deadline=-5s": as a separate word, "-5s" would read as options.
    const std::string option = std::string("--deadline=") + bad;
    const auto usage = drover({"p.json", option});
    BOOST_TEST(usage.exit_code == 2, bad);
    BOOST_TEST(usage.err.find("--deadline expects a positive duration") != std::string::npos,
               usage.err);
  }
}

BOOST_AUTO_TEST_CASE(a_second_interrupt_exits_at_once, *boost::unit_test::timeout(30)) {
  // The child ignores SIGTERM, so the first interrupt alone would take the engine's grace
  // period to end the run and would then write the report.
  dir.write("p.json", R"({"modules": [
      {"id": "ignores_sigterm", "kind": "exec",
       "params": {"shell": "trap '' TERM; echo $$ > ignores_sigterm.pid; exec sleep 30", "kill_grace_ms": 60000, "cwd": "."}}]})");
  drover_process process{{"run", "p.json", "--progress", "never", "--report", "report.json"},
                         dir.path()};
  const auto child = read_pid(dir / "ignores_sigterm.pid");
  process.send(SIGINT);
  std::this_thread::sleep_for(200ms);
  process.send(SIGINT);
  const auto r = process.wait(5s);
  BOOST_TEST(r.exit_code == 130);
  BOOST_TEST(read_file(dir / "report.json").empty(), "exited before writing the report");
  // Clean up the sleep if it outlived drover, but only if that pid is still the sleep: a pid
  // freed and reused by another test's process must not be killed (it was, once).
  const std::string cmdline = read_file("/proc/" + std::to_string(child) + "/cmdline");
  if (cmdline.starts_with("sleep")) ::kill(static_cast<pid_t>(child), SIGKILL);
}

BOOST_AUTO_TEST_CASE(capabilities_decide_which_modules_run_locally) {
  dir.write("p.json", R"({"modules": [
      {"id": "train", "kind": "exec", "params": {"shell": "true"}, "requires": ["gpu"]},
      {"id": "publish", "kind": "noop", "deps": ["train"]},
      {"id": "lint", "kind": "noop"}]})");
  const auto lacking = drover({"p.json", "--report", "lacking.json"});
  BOOST_TEST(lacking.exit_code == 0, lacking.out << lacking.err);
  const auto skipped = read_report(dir / "lacking.json");
  BOOST_TEST(status_of(skipped, "train") == "skipped");
  const std::string reason{module_in(skipped, "train").at("reason").as_string()};
  BOOST_TEST(reason.find("gpu") != std::string::npos, reason);
  BOOST_TEST(status_of(skipped, "publish") == "skipped");
  BOOST_TEST(status_of(skipped, "lint") == "succeeded");

  // Labels compare ignoring case.
  const auto having = drover({"p.json", "--capability", "GPU", "--report", "having.json"});
  BOOST_TEST(having.exit_code == 0, having.out << having.err);
  const auto ran = read_report(dir / "having.json");
  BOOST_TEST(status_of(ran, "train") == "succeeded");
  BOOST_TEST(status_of(ran, "publish") == "succeeded");
}

BOOST_AUTO_TEST_CASE(order_chooses_which_ready_module_starts_first) {
  // With one worker, `short` and `long` are ready together; `long` heads a longer chain.
  dir.write("p.json", R"({"modules": [
      {"id": "short", "kind": "noop"},
      {"id": "long", "kind": "noop"},
      {"id": "after_long", "kind": "noop", "deps": ["long"]}]})");
  auto first_started = [&](const std::string& order) {
    const auto events_file = order + ".jsonl";
    const auto r = drover({"p.json", "--workers", "1", "--order", order, "--events", events_file});
    BOOST_TEST(r.exit_code == 0, r.out << r.err);
    std::istringstream lines{read_file(dir / events_file)};
    for (std::string line; std::getline(lines, line);) {
      const auto event = json::parse(line).as_object();
      if (event.at("type").as_string() == "module_started") {
        return std::string{event.at("module").as_string()};
      }
    }
    return std::string{};
  };
  BOOST_TEST(first_started("critical_path") == "long");
  BOOST_TEST(first_started("fifo") == "short");
}

BOOST_AUTO_TEST_CASE(exclusion_claims_and_pools_from_the_file_hold) {
  // Each pair of modules takes the same lock directory for 300 ms and fails if it is taken, so
  // a pair that overlapped would fail. With six workers, only the constraints keep them apart.
  auto locked = [](std::string_view id, std::string_view lock, std::string_view constraint) {
    return R"({"id": ")" + std::string{id} + R"(", "kind": "exec", "params": {"shell": "mkdir )" +
           std::string{lock} + R"( || exit 3; sleep 0.3; rmdir )" + std::string{lock} +
           R"(", "cwd": "."}, )" + std::string{constraint} + "}";
  };
  dir.write(
      "p.json",
      "{\"pools\": {\"network\": 2}, \"modules\": [" +
          locked("key_1", "key.lock", R"("not_in_parallel": ["db"])") + ", " +
          locked("key_2", "key.lock", R"("not_in_parallel": ["db"])") + ", " +
          locked("claim_1", "claim.lock", R"("claims": ["db/users"])") + ", " +
          locked("claim_2", "claim.lock", R"("claims": [{"resource": "db/*", "mode": "write"}])") +
          ", " + locked("pool_1", "pool.lock", R"("pool": "network", "pool_slots": 2)") + ", " +
          locked("pool_2", "pool.lock", R"("pool": "network")") + "]}");
  const auto r = drover({"p.json", "--workers", "6", "--report", "report.json"});
  BOOST_TEST(r.exit_code == 0, r.out << r.err);
  const auto report = read_report(dir / "report.json");
  for (auto id : {"key_1", "key_2", "claim_1", "claim_2", "pool_1", "pool_2"}) {
    BOOST_TEST(status_of(report, id) == "succeeded", id);
  }
}

// Needs matrix expansion.
BOOST_AUTO_TEST_CASE(matrix_instances_run_under_their_own_ids) {
  dir.write("p.json", R"({"modules": [
      {"id": "build", "kind": "exec", "params": {"shell": "echo built"},
       "matrix": ["alpha", "beta"]},
      {"id": "test", "kind": "exec", "params": {"shell": "true"},
       "matrix": {"os": ["x", "y"]}, "deps": ["build[alpha]"]}]})");
  const auto r = drover({"p.json", "--capability", "alpha", "--report", "report.json"});
  BOOST_TEST(r.exit_code == 0, r.out << r.err);
  const auto report = read_report(dir / "report.json");
  BOOST_TEST(module_ids(report) == (std::vector<std::string>{"build[alpha]", "build[beta]",
                                                             "test[os=x]", "test[os=y]"}),
             boost::test_tools::per_element());
  BOOST_TEST(status_of(report, "build[alpha]") == "succeeded");
  // The list form's value is a required capability, which no local worker has here.
  BOOST_TEST(status_of(report, "build[beta]") == "skipped");
  const std::string reason{module_in(report, "build[beta]").at("reason").as_string()};
  BOOST_TEST(reason.find("beta") != std::string::npos, reason);
  // Named axes require nothing unless matrix_requires says so.
  BOOST_TEST(status_of(report, "test[os=x]") == "succeeded");
  BOOST_TEST(status_of(report, "test[os=y]") == "succeeded");
  const auto log = drover::modules::exec_log_path(dir / ".drover/logs", "build[alpha]");
  BOOST_TEST(read_file(log).find("built") != std::string::npos, log);

  // --module names every instance of a matrix module.
  const auto selected = drover({"p.json", "--module", "build", "--report", "selected.json"});
  BOOST_TEST(selected.exit_code == 0, selected.out << selected.err);
  BOOST_TEST(module_ids(read_report(dir / "selected.json")) ==
                 (std::vector<std::string>{"build[alpha]", "build[beta]"}),
             boost::test_tools::per_element());
}

// Every file drover writes, and its stdout and stderr, show "***" where a secret was.
BOOST_AUTO_TEST_CASE(secrets_appear_in_no_file_drover_writes, *boost::unit_test::timeout(60)) {
  const std::string secret = "app-s3cret-VALUE-42";
  dir.write("p.json", R"({"mode": "keep_going", "modules": [
      {"id": "echo", "kind": "exec",
       "params": {"shell": "echo \"out $TOKEN\"; echo \"err $TOKEN\" >&2; printf '{\"token\": \"%s\"}\\n' \"$TOKEN\"",
                  "json_output": true,
                  "env": {"TOKEN": {"secret_from_env": "DROVER_APP_TEST_TOKEN"}}}},
      {"id": "broken", "kind": "exec", "retries": 1, "backoff": {"initial": "1ms"},
       "params": {"shell": "echo \"bad token $TOKEN\" >&2; exit 3",
                  "env": {"TOKEN": {"secret_from_env": "DROVER_APP_TEST_TOKEN"}}}},
      {"id": "inherited", "kind": "exec",
       "params": {"shell": "echo \"inherited $DROVER_APP_TEST_TOKEN\""}}]})");
  const std::map<std::string, std::string> env{{"DROVER_APP_TEST_TOKEN", secret}};
  fs::create_directories(dir / "out");
  const auto r = drover(
      {"p.json", "--report", "out/report.json", "--events", "out/events.jsonl", "--log-dir",
       "out/logs", "--journal", "out/run.journal", "--cache", "out/cache", "--keep-workdirs"},
      env);
  BOOST_TEST(r.exit_code == 1, r.out << r.err);

  // The secret reached the commands, and came out masked where they printed it.
  const auto report = read_report(dir / "out/report.json");
  BOOST_TEST(module_in(report, "echo").at("value").at("output") ==
             json::parse(R"({"token": "***"})"));
  const std::string reason{module_in(report, "broken").at("reason").as_string()};
  BOOST_TEST(reason == "exit code 3\nbad token ***");
  const auto echo_log = read_file(dir / "out/logs/echo.log");
  BOOST_TEST(echo_log.find("out ***\n") != std::string::npos, echo_log);
  BOOST_TEST(echo_log.find("err ***\n") != std::string::npos, echo_log);
  // A command that prints the variable without declaring it is masked too: drover collected
  // the secret from the module that declares it.
  BOOST_TEST(read_file(dir / "out/logs/inherited.log").find("inherited ***\n") !=
             std::string::npos);
  BOOST_TEST(read_file(dir / "out/events.jsonl").find("bad token ***") != std::string::npos);
  BOOST_TEST(r.out.find("bad token ***") != std::string::npos, r.out);

  // Nothing under the directory (p.json, outputs, logs, drover's stdout and stderr) holds it.
  std::size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir.path())) {
    if (!entry.is_regular_file()) continue;
    ++files;
    BOOST_TEST(read_file(entry.path()).find(secret) == std::string::npos, entry.path());
  }
  // p.json, report, events, three logs, journal, a cache entry, stdout, stderr
  BOOST_TEST(files >= 9u);
  BOOST_TEST(read_file(dir / "out/run.journal").find(R"({"token":"***"})") != std::string::npos);
  BOOST_TEST(r.out.find(secret) == std::string::npos);
  BOOST_TEST(r.err.find(secret) == std::string::npos);

  // validate and plan show nothing of the value.
  for (const char* command : {"validate", "plan"}) {
    const auto shown = run_drover({command, "p.json"}, dir.path(), env);
    BOOST_TEST(shown.exit_code == 0, command << ": " << shown.out << shown.err);
    BOOST_TEST((shown.out + shown.err).find(secret) == std::string::npos);
  }
}

BOOST_AUTO_TEST_SUITE_END()
