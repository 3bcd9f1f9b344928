// End-to-end tests of work directories and outputs through the built binary: `drover run` with
// outputs, --workspace and --keep-workdirs, output conflicts in a file, and a `drover worker`
// that promotes outputs into its own --workspace.

#define BOOST_TEST_MODULE workspace
#include "app_test_support.hpp"

#include <boost/json/parse.hpp>

#include <string>
#include <vector>

namespace {

namespace json = boost::json;
namespace utf = boost::unit_test;
using namespace drover::app_test;

/// What is in `dir/.drover/work/<owner>/`: the work directories that were kept.
std::vector<fs::path> work_dirs_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator owner(dir / ".drover" / "work", ec), end; !ec && owner != end;
       owner.increment(ec)) {
    std::error_code inner;
    for (fs::directory_iterator it(owner->path(), inner); !inner && it != end; it.increment(inner))
      if (it->is_directory()) out.push_back(it->path());
  }
  return out;
}

// `make` writes two outputs and a scratch file; `broken` writes its output, then fails.
constexpr std::string_view make_and_broken = R"({"modules": [
    {"id": "make", "kind": "exec", "outputs": ["dist/*.txt", "VERSION"],
     "params": {"shell": "mkdir -p dist && echo app > dist/app.txt && echo 1.0 > VERSION && echo x > scratch"}},
    {"id": "broken", "kind": "exec", "outputs": ["broken.txt"],
     "params": {"shell": "echo half > broken.txt; exit 3"}}]})";

BOOST_AUTO_TEST_CASE(outputs_of_a_run_land_in_the_workspace_and_failures_leave_none,
                     *utf::timeout(30)) {
  scratch_dir dir;
  dir.write("p.json", make_and_broken);
  const auto r = run_drover({"run", "p.json", "--progress", "never", "--keep-going"}, dir.path());
  BOOST_TEST(r.exit_code == 1, r.out << r.err);
  BOOST_TEST(read_file(dir / "dist" / "app.txt") == "app\n");
  BOOST_TEST(read_file(dir / "VERSION") == "1.0\n");
  BOOST_TEST(!fs::exists(dir / "scratch"), "undeclared files stay in the work directory");
  BOOST_TEST(!fs::exists(dir / "broken.txt"), "a failed module's outputs never appear");
  BOOST_TEST(work_dirs_in(dir.path()).empty(), "work directories are removed");
}

BOOST_AUTO_TEST_CASE(workspace_and_keep_workdirs_flags, *utf::timeout(30)) {
  scratch_dir dir;
  dir.write("p.json", make_and_broken);
  fs::create_directory(dir / "ws");
  const auto r = run_drover({"run", "p.json", "--progress", "never", "--keep-going", "--workspace",
                             "ws", "--keep-workdirs"},
                            dir.path());
  BOOST_TEST(r.exit_code == 1, r.out << r.err);
  BOOST_TEST(read_file(dir / "ws" / "dist" / "app.txt") == "app\n");
  BOOST_TEST(!fs::exists(dir / "dist"), "nothing lands outside the workspace");
  const auto kept = work_dirs_in(dir / "ws");
  BOOST_REQUIRE(kept.size() == 2u);
  for (const auto& work_dir : kept) {
    const std::string name = work_dir.filename().string();
    if (name.starts_with("make.1.")) {
      BOOST_TEST(read_file(work_dir / "scratch") == "x\n");
    } else {
      BOOST_TEST(name.starts_with("broken.1."), name);
      BOOST_TEST(read_file(work_dir / "broken.txt") == "half\n", "kept for a look");
    }
  }

  const auto missing = run_drover({"run", "p.json", "--workspace", "nowhere"}, dir.path());
  BOOST_TEST(missing.exit_code == 2);
  BOOST_TEST(missing.err.find("the workspace 'nowhere' is not a directory") != std::string::npos,
             missing.err);
}

BOOST_AUTO_TEST_CASE(a_module_that_runs_in_the_workspace_has_its_outputs_checked_there,
                     *utf::timeout(60)) {
  scratch_dir dir;
  dir.write("src.txt", "hello");
  // Outputs are relative to the workspace, also for `nested`, which runs in sub/.
  dir.write("p.json", R"({"modules": [
    {"id": "build", "kind": "exec", "inputs": ["src.txt"], "outputs": ["sub/out.txt"],
     "params": {"shell": "echo build >> ran.txt; mkdir -p sub && tr a-z A-Z < src.txt > sub/out.txt",
                "cwd": "."}},
    {"id": "nested", "kind": "exec", "deps": ["build"], "outputs": ["sub/deeper/n.txt"],
     "cache": false, "params": {"shell": "mkdir -p deeper && echo n > deeper/n.txt", "cwd": "sub"}},
    {"id": "forgot", "kind": "exec", "deps": ["nested"], "outputs": ["never.txt"],
     "cache": false, "params": {"shell": "true", "cwd": "."}}]})");
  const auto valid = run_drover({"validate", "p.json"}, dir.path());
  BOOST_TEST(valid.exit_code == 0, valid.err);
  BOOST_TEST(valid.out == "p.json: ok, 3 modules\n");

  const std::vector<std::string> run{"run",     "p.json", "--progress",  "never",
                                     "--cache", "cache",  "--keep-going"};
  const auto first = run_drover(run, dir.path());
  BOOST_TEST(first.exit_code == 1, first.out << first.err);
  BOOST_TEST(read_file(dir / "sub/out.txt") == "HELLO");
  BOOST_TEST(read_file(dir / "sub/deeper/n.txt") == "n\n");
  BOOST_TEST(first.out.find("declared output 'never.txt' was not produced: no file at '" +
                            (dir / "never.txt").string() + "'") != std::string::npos,
             first.out);

  // The cache stored the file where it was written, and a hit puts it back there.
  fs::remove(dir / "sub/out.txt");
  const auto second = run_drover(run, dir.path());
  BOOST_TEST(second.out.find("1 from the cache") != std::string::npos, second.out);
  BOOST_TEST(read_file(dir / "ran.txt") == "build\n");
  BOOST_TEST(read_file(dir / "sub/out.txt") == "HELLO");
}

BOOST_AUTO_TEST_CASE(an_output_conflict_is_reported_at_its_place, *utf::timeout(30)) {
  scratch_dir dir;
  dir.write("p.json", R"({"modules": [
    {"id": "a", "kind": "noop", "outputs": ["dist/**"]},
    {"id": "b", "kind": "noop", "outputs": ["dist/app"]}]})");
  const auto r = run_drover({"run", "p.json"}, dir.path());
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("p.json:2:45: module 'a': field 'outputs[0]': modules 'a' and 'b' can "
                        "write the same output ('dist/**' and 'dist/app')") != std::string::npos,
             r.err);
  BOOST_TEST(r.out.empty(), "nothing ran");
}

BOOST_AUTO_TEST_CASE(a_remote_worker_promotes_outputs_into_its_own_workspace, *utf::timeout(90)) {
  scratch_dir dir;
  dir.write("p.json", R"({"modules": [
    {"id": "make", "kind": "exec", "outputs": ["dist/app.txt"],
     "params": {"shell": "mkdir -p dist && echo remote > dist/app.txt"}}]})");
  fs::create_directories(dir / "master");
  fs::create_directories(dir / "worker");
  fs::create_directories(dir / "worker_ws");
  drover_process master{
      {"run", "../p.json", "--listen", "127.0.0.1:0", "--workers", "0", "--progress", "never"},
      dir / "master"};
  const auto port = wait_for_port(dir / "master");
  BOOST_REQUIRE_MESSAGE(port, "the master never said where it listens");
  drover_process worker{
      {"worker", "--connect", "127.0.0.1:" + *port, "--workspace", "../worker_ws"}, dir / "worker"};
  const auto result = master.wait(60s);
  BOOST_TEST(result.exit_code == 0, result.out << result.err);
  BOOST_TEST(read_file(dir / "worker_ws" / "dist" / "app.txt") == "remote\n");
  BOOST_TEST(!fs::exists(dir / "master" / "dist"), "the master's directory gets nothing");
  BOOST_TEST(!fs::exists(dir / "worker" / "dist"), "nor the worker's current directory");
  BOOST_TEST(work_dirs_in(dir / "worker_ws").empty());
  const auto done = worker.wait(20s);
  BOOST_TEST(done.exit_code == 0, done.err);
}

}  // namespace
