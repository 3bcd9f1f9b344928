// `drover simulate` end to end: the built binary, run in its own processes.

#include "simulate_command.hpp"

#define BOOST_TEST_MODULE simulate
#include "app_test_support.hpp"

#include <regex>
#include <string>
#include <vector>

namespace {

using namespace drover::app_test;

std::string trace_hash(const std::string& out) {
  static const std::regex hash{"trace hash ([0-9a-f]{16})"};
  std::smatch match;
  return std::regex_search(out, match, hash) ? std::string(match[1]) : std::string();
}

BOOST_AUTO_TEST_CASE(two_processes_with_the_same_seed_write_identical_traces_and_reports) {
  scratch_dir dir;
  const std::vector<std::string> common{"simulate", "--workers", "40",   "--slots",
                                        "2",        "--modules", "1500", "--delay-ms",
                                        "0..3",     "--faults",  "all",  "--constrained"};
  auto with = [&](std::string seed, std::string name) {
    auto args = common;
    args.insert(args.end(),
                {"--seed", seed, "--trace", name + ".trace", "--report", name + ".json"});
    return args;
  };
  const auto first = run_drover(with("9", "first"), dir.path());
  const auto second = run_drover(with("9", "second"), dir.path());
  BOOST_TEST(first.exit_code == 0, first.err);
  BOOST_TEST(second.exit_code == 0, second.err);
  BOOST_TEST(first.out.find("invariants: all held") != std::string::npos);
  const std::string trace = read_file(dir.path() / "first.trace");
  BOOST_TEST(trace.size() > 50'000u);
  BOOST_TEST(trace == read_file(dir.path() / "second.trace"));
  BOOST_TEST(read_file(dir.path() / "first.json") == read_file(dir.path() / "second.json"));
  BOOST_TEST(!trace_hash(first.out).empty());
  BOOST_TEST(trace_hash(first.out) == trace_hash(second.out));
  // The faults really happened: a master restart is in the trace.
  BOOST_TEST(trace.find("- master restarted") != std::string::npos);

  const auto other = run_drover(with("10", "other"), dir.path());
  BOOST_TEST(trace_hash(other.out) != trace_hash(first.out));
}

BOOST_AUTO_TEST_CASE(a_sweep_runs_every_seed_and_says_how_many_broke_an_invariant) {
  scratch_dir dir;
  const auto r = run_drover({"simulate", "--workers", "20", "--modules", "300", "--delay-ms",
                             "0..2", "--faults", "all", "--seeds", "1..30", "--jobs", "2"},
                            dir.path());
  BOOST_TEST(r.exit_code == 0, r.out + r.err);
  BOOST_TEST(r.out.find("30 seeds in") != std::string::npos, r.out);
  BOOST_TEST(r.out.find(": 0 broke an invariant") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(the_replay_command_keeps_the_options_and_names_the_seed) {
  const std::vector<std::string> args{"--workers", "20",  "--seeds",  "1..30",   "--jobs", "2",
                                      "--faults",  "all", "--seed=4", "--trace", "t.txt"};
  BOOST_TEST(drover::app::simulate_replay_command(args, 17) ==
             "drover simulate --workers 20 --faults all --seed 17");
}

BOOST_AUTO_TEST_CASE(a_pipeline_with_durations_shows_its_time_critical_path_and_utilisation) {
  scratch_dir dir;
  dir.write("ci.json", R"({
    "name": "ci",
    "modules": [
      {"id": "build", "kind": "exec", "params": {"shell": "exit 1"}},
      {"id": "test", "kind": "exec", "deps": ["build"], "params": {"shell": "exit 1"}},
      {"id": "gpu-test", "kind": "exec", "deps": ["build"], "requires": ["gpu"],
       "params": {"shell": "exit 1"}},
      {"id": "docs", "kind": "exec", "params": {"shell": "exit 1"}}
    ]
  })");
  // What an earlier run took: the commands never run in a simulation.
  dir.write("earlier.json", R"({"modules": [
    {"id": "build", "duration_ms": 4000, "attempts": 1},
    {"id": "test", "duration_ms": 6000, "attempts": 2},
    {"id": "gpu-test", "duration_ms": 5000, "attempts": 1},
    {"id": "docs", "duration_ms": 1000, "attempts": 1}]})");
  const auto r = run_drover({"simulate", "--pipeline", "ci.json", "--workers", "3",
                             "--capability-mix", "gpu:1", "--durations", "earlier.json"},
                            dir.path());
  BOOST_TEST(r.exit_code == 0, r.out + r.err);
  // build 4 s, then gpu-test 5 s on the one gpu worker; test 3 s a attempt beside it.
  BOOST_TEST(r.out.find("run succeeded in 9.0") != std::string::npos, r.out);
  BOOST_TEST(
      r.out.find("critical path (2 modules): gpu-test (5.0s) <- build (4.0s)") != std::string::npos,
      r.out);
  BOOST_TEST(r.out.find("worker utilisation 48.1%") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(a_run_that_fails_under_its_faults_exits_1_and_bad_options_exit_2) {
  scratch_dir dir;
  const auto failed = run_drover(
      {"simulate", "--workers", "5", "--modules", "50", "--fail-rate", "1", "--retries", "0"},
      dir.path());
  BOOST_TEST(failed.exit_code == 1, failed.out + failed.err);
  BOOST_TEST(failed.out.find("invariants: all held") != std::string::npos);

  const std::vector<std::pair<std::vector<std::string>, std::string>> bad{
      {{"--seeds", "9..3"}, "--seeds must be A..B with A <= B, got 9..3"},
      {{"--faults", "crash,meteor"}, "--faults: unknown fault 'meteor'"},
      {{"--capability-mix", "gpu"}, "--capability-mix: 'gpu' is not LABELS:COUNT"},
      {{"--durations", "missing.json"}, "cannot read --durations file 'missing.json'"},
      {{"--jobs", "0"}, "--jobs must be between 1 and 256"},
  };
  for (const auto& [args, message] : bad) {
    std::vector<std::string> all{"simulate"};
    all.insert(all.end(), args.begin(), args.end());
    const auto r = run_drover(all, dir.path());
    BOOST_TEST(r.exit_code == 2, args.front());
    BOOST_TEST(r.err.find(message) != std::string::npos, r.err);
  }
}

}  // namespace
