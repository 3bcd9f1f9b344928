#include <drover/context.hpp>

#define BOOST_TEST_MODULE work_dir
#include "test_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

namespace {

using namespace drover::test;
using drover::module_status;
using drover::run_status;
namespace fs = std::filesystem;
namespace utf = boost::unit_test;

/// A fresh directory under the system temp directory, removed with everything in it.
class temp_workspace {
 public:
  temp_workspace() {
    std::string pattern = (fs::temp_directory_path() / "drover-work-dir-test-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~temp_workspace() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  temp_workspace(const temp_workspace&) = delete;
  temp_workspace& operator=(const temp_workspace&) = delete;

  const fs::path& path() const noexcept { return path_; }
  fs::path operator/(std::string_view name) const { return path_ / name; }

  /// What is left in `.drover/work/<owner>/`: the attempts' directories that were not removed.
  std::vector<fs::path> work_dirs() const {
    std::vector<fs::path> out;
    std::error_code ec;
    for (fs::directory_iterator owner(path_ / ".drover" / "work", ec), end; !ec && owner != end;
         owner.increment(ec)) {
      std::error_code inner;
      for (fs::directory_iterator it(owner->path(), inner); !inner && it != end;
           it.increment(inner))
        if (it->is_directory()) out.push_back(it->path());
    }
    return out;
  }

  /// Whether `.drover/work` holds nothing, not even an owner directory.
  bool work_root_empty() const {
    std::error_code ec;
    return fs::is_empty(path_ / ".drover" / "work", ec) || ec;
  }

 private:
  fs::path path_;
};

std::string read_text(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& file, std::string_view text) {
  fs::create_directories(file.parent_path());
  std::ofstream out{file, std::ios::binary};
  out << text;
}

/// Writes each (relative path, content) into the attempt's work directory, then waits `wait`,
/// then fails with `fail` when it is not empty. Returns the work directory's path.
asio::awaitable<json::value> write_files(drover::module_context& ctx,
                                         std::vector<std::pair<std::string, std::string>> files,
                                         milliseconds wait, std::string fail) {
  const fs::path dir = ctx.work_dir();
  for (const auto& [name, content] : files)
    write_text(dir / name, content);
  if (wait > 0ms) co_await wait_for(wait);
  if (!fail.empty()) throw std::runtime_error(fail);
  co_return json::value(dir.string());
}

drover::module_body writer(std::vector<std::pair<std::string, std::string>> files,
                           milliseconds wait = 0ms, std::string fail = {}) {
  return [files, wait, fail](drover::module_context& ctx) {
    return write_files(ctx, files, wait, fail);
  };
}

/// As exec with `cwd`: says it writes in the workspace, then writes each (relative path,
/// content) there, while a work directory exists too.
asio::awaitable<json::value> write_in_workspace(
    drover::module_context& ctx, std::vector<std::pair<std::string, std::string>> files) {
  ctx.writes_in_workspace();
  write_text(ctx.work_dir() / "scratch.tmp", "scratch");
  for (const auto& [name, content] : files)
    write_text(ctx.workspace() / name, content);
  co_return nullptr;
}

drover::module_body in_place_writer(std::vector<std::pair<std::string, std::string>> files) {
  return [files](drover::module_context& ctx) { return write_in_workspace(ctx, files); };
}

drover::module_ref with_outputs(drover::module_ref spec, std::vector<std::string> outputs) {
  spec.io().outputs = std::move(outputs);
  return spec;
}

drover::run_options in_workspace(const temp_workspace& ws, std::size_t workers = 1) {
  drover::run_options options;
  options.workers = workers;
  options.workspace = ws.path();
  return options;
}

// -------------------------------------------------------------------------------------------
// Work directories

BOOST_AUTO_TEST_SUITE(work_directories)

BOOST_AUTO_TEST_CASE(each_attempt_gets_a_fresh_directory_inside_the_workspace, *utf::timeout(30)) {
  temp_workspace ws;
  drover::pipeline p;
  // Attempt 1 leaves a file and fails; attempt 2 must not see it.
  auto body = coroutine_body([](drover::module_context& ctx) -> asio::awaitable<json::value> {
    const fs::path first = ctx.work_dir();
    BOOST_TEST(ctx.work_dir() == first, "later calls return the same directory");
    BOOST_TEST(fs::is_empty(first));
    if (ctx.attempt() == 1) {
      write_text(first / "left.txt", "from attempt 1");
      throw std::runtime_error("first attempt fails");
    }
    co_return json::value(first.string());
  });
  p.add("build[os=linux]", body).retries(1);
  p.edit(p.size() - 1).backoff(exact_backoff(0ms));
  const auto run = run_pipeline(std::move(p), in_workspace(ws));
  const auto& r = result_of(run.report, "build[os=linux]");
  BOOST_REQUIRE(r.status == module_status::succeeded);
  const fs::path dir{std::string{r.value.as_string()}};
  // In this process's owner directory, p<pid>-<random>.
  BOOST_TEST(dir.parent_path().parent_path() == ws / ".drover" / "work");
  BOOST_TEST(
      dir.parent_path().filename().string().starts_with("p" + std::to_string(::getpid()) + "-"));
  // The id is made safe for a file name; the attempt and a random suffix follow it.
  const std::string name = dir.filename().string();
  BOOST_TEST(name.starts_with("build_os_linux_.2."), name);
  BOOST_TEST(name.size() == std::string{"build_os_linux_.2."}.size() + 8, name);
  BOOST_TEST(ws.work_dirs().empty(), "both attempts' directories were removed");
  BOOST_TEST(ws.work_root_empty(), "and so was the owner directory");
}

BOOST_AUTO_TEST_CASE(workspace_is_absolute_and_defaults_to_the_current_directory,
                     *utf::timeout(30)) {
  temp_workspace ws;
  const fs::path previous = fs::current_path();
  fs::current_path(ws.path());
  std::vector<std::string> seen;
  auto record = [&seen](drover::module_context& ctx) -> asio::awaitable<json::value> {
    seen.push_back(ctx.workspace().string());
    co_return nullptr;
  };
  {
    drover::pipeline p;
    p.add("default", coroutine_body(record));
    run_pipeline(std::move(p));
  }
  {
    fs::create_directories(ws / "sub");
    drover::pipeline p;
    p.add("relative", coroutine_body(record));
    drover::run_options options;
    options.workspace = "sub/./";
    run_pipeline(std::move(p), options);
  }
  fs::current_path(previous);
  BOOST_REQUIRE(seen.size() == 2u);
  BOOST_TEST(seen[0] == fs::canonical(ws.path()).string());
  BOOST_TEST(seen[1] == (fs::canonical(ws.path()) / "sub").string());
  BOOST_TEST(!fs::exists(ws / ".drover"), "no module asked for a work directory: none made");
}

BOOST_AUTO_TEST_CASE(keep_workdirs_leaves_the_directory_in_place, *utf::timeout(30)) {
  temp_workspace ws;
  drover::pipeline p;
  with_outputs(p.add("make", writer({{"out.txt", "result"}, {"scratch.txt", "kept"}})),
               {"out.txt"});
  auto options = in_workspace(ws);
  options.keep_workdirs = true;
  const auto run = run_pipeline(std::move(p), options);
  BOOST_REQUIRE(result_of(run.report, "make").status == module_status::succeeded);
  BOOST_TEST(read_text(ws / "out.txt") == "result", "outputs are still promoted");
  const auto left = ws.work_dirs();
  BOOST_REQUIRE(left.size() == 1u);
  BOOST_TEST(read_text(left[0] / "scratch.txt") == "kept");
  BOOST_TEST(!fs::exists(left[0] / "out.txt"), "the output moved out");
}

// An owner directory as another process leaves it: owner.lock, one attempt's directory with a
// file, and a `kept` marker when asked.
fs::path plant_owner(const temp_workspace& ws, const std::string& name, bool kept) {
  const fs::path owner = ws / ".drover" / "work" / name;
  fs::create_directories(owner / "job.1.0badf00d");
  write_text(owner / "owner.lock", "");
  write_text(owner / "job.1.0badf00d" / "half.txt", "left by a killed run");
  if (kept) write_text(owner / "kept", "");
  return owner;
}

BOOST_AUTO_TEST_CASE(a_dead_owners_directories_are_swept_a_live_or_kept_ones_are_not,
                     *utf::timeout(30)) {
  temp_workspace ws;
  const fs::path dead = plant_owner(ws, "p999999-deadbeef", false);
  const fs::path kept = plant_owner(ws, "p999998-0000beef", true);
  const fs::path live = plant_owner(ws, "p999997-1111beef", false);
  const fs::path foreign = ws / ".drover" / "work" / "not-an-owner";  // no owner.lock
  fs::create_directories(foreign);
  // A live owner holds its lock: here a descriptor of this process, which conflicts with the
  // run's own flock on another descriptor just as another process's would.
  const int live_lock = ::open((live / "owner.lock").c_str(), O_RDONLY | O_CLOEXEC);
  BOOST_REQUIRE(live_lock >= 0);
  BOOST_REQUIRE(::flock(live_lock, LOCK_EX | LOCK_NB) == 0);

  drover::pipeline p;
  p.add("make", writer({{"out.txt", "x"}}));
  with_outputs(p.edit(p.size() - 1), {"out.txt"});
  const auto run = run_pipeline(std::move(p), in_workspace(ws));
  BOOST_TEST(result_of(run.report, "make").status == module_status::succeeded);
  ::close(live_lock);

  BOOST_TEST(!fs::exists(dead), "the directory of an owner whose lock is free is removed");
  BOOST_TEST(fs::exists(kept / "job.1.0badf00d" / "half.txt"), "--keep-workdirs left it");
  BOOST_TEST(fs::exists(live / "job.1.0badf00d" / "half.txt"), "its owner still runs");
  BOOST_TEST(fs::exists(foreign), "not an owner directory: not drover's to remove");
  // This run's own owner directory went with its last attempt.
  std::set<std::string> left;
  for (const auto& entry : fs::directory_iterator(ws / ".drover" / "work"))
    left.insert(entry.path().filename().string());
  BOOST_TEST(left ==
             (std::set<std::string>{"p999998-0000beef", "p999997-1111beef", "not-an-owner"}));
}

BOOST_AUTO_TEST_CASE(a_work_directory_that_cannot_be_made_fails_the_attempt, *utf::timeout(30)) {
  temp_workspace ws;
  write_text(ws / ".drover", "a file where the directory should be");
  drover::pipeline p;
  p.add("make", writer({{"out.txt", "x"}}));
  const auto run = run_pipeline(std::move(p), in_workspace(ws));
  const auto& r = result_of(run.report, "make");
  BOOST_TEST(r.status == module_status::failed);
  BOOST_TEST(mentions(r.reason, "cannot create the work directory"), r.reason);
  BOOST_TEST(mentions(r.reason, (ws / ".drover" / "work").string()), r.reason);
}

BOOST_AUTO_TEST_SUITE_END()

// -------------------------------------------------------------------------------------------
// Outputs

BOOST_AUTO_TEST_SUITE(outputs)

BOOST_AUTO_TEST_CASE(declared_outputs_appear_in_the_workspace, *utf::timeout(60)) {
  for (const std::size_t workers : worker_counts) {
    for (const std::size_t threads : {0, 3}) {  // on the caller's thread, and on a pool
      temp_workspace ws;
      drover::pipeline p;
      for (int i = 0; i < 6; ++i) {
        const std::string id = "m" + std::to_string(i);
        with_outputs(p.add(id, writer({{id + ".txt", "from " + id},
                                       {"logs/" + id + ".log", "log"},
                                       {"scratch.tmp", "not declared"}})),
                     {id + ".txt", "logs/" + id + ".*"});
      }
      drover::engine_options engine_settings;
      engine_settings.worker_threads = threads;
      const auto run = run_pipeline(std::move(p), in_workspace(ws, workers), engine_settings);
      BOOST_REQUIRE(run.report.status == run_status::succeeded);
      for (int i = 0; i < 6; ++i) {
        const std::string id = "m" + std::to_string(i);
        BOOST_TEST(read_text(ws / (id + ".txt")) == "from " + id);
        BOOST_TEST(read_text(ws / "logs" / (id + ".log")) == "log");
      }
      BOOST_TEST(!fs::exists(ws / "scratch.tmp"), "undeclared files stay behind");
      BOOST_TEST(ws.work_dirs().empty(), workers << " workers, " << threads
                                                 << " threads: every work directory was removed");
    }
  }
}

BOOST_AUTO_TEST_CASE(double_star_outputs_cross_directories, *utf::timeout(30)) {
  temp_workspace ws;
  drover::pipeline p;
  with_outputs(p.add("compile", writer({{"obj/a.o", "a"},
                                        {"obj/deep/er/b.o", "b"},
                                        {"obj/deep/notes.txt", "no"},
                                        {"c.o", "c"},
                                        {"dist/app/bin/app", "app"},
                                        {"dist/app/README", "readme"}})),
               {"**/*.o", "dist"});  // a literal directory: every file below it
  const auto run = run_pipeline(std::move(p), in_workspace(ws));
  BOOST_REQUIRE(result_of(run.report, "compile").status == module_status::succeeded);
  BOOST_TEST(read_text(ws / "obj/a.o") == "a");
  BOOST_TEST(read_text(ws / "obj/deep/er/b.o") == "b");
  BOOST_TEST(read_text(ws / "c.o") == "c");
  BOOST_TEST(read_text(ws / "dist/app/bin/app") == "app");
  BOOST_TEST(read_text(ws / "dist/app/README") == "readme");
  BOOST_TEST(!fs::exists(ws / "obj/deep/notes.txt"));
}

BOOST_AUTO_TEST_CASE(an_output_replaces_the_file_in_the_workspace, *utf::timeout(30)) {
  temp_workspace ws;
  write_text(ws / "version.txt", "old");
  drover::pipeline p;
  with_outputs(p.add("stamp", writer({{"version.txt", "new"}})), {"version.txt"});
  const auto run = run_pipeline(std::move(p), in_workspace(ws));
  BOOST_REQUIRE(result_of(run.report, "stamp").status == module_status::succeeded);
  BOOST_TEST(read_text(ws / "version.txt") == "new");
}

BOOST_AUTO_TEST_CASE(a_failing_module_leaves_no_outputs, *utf::timeout(30)) {
  temp_workspace ws;
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  with_outputs(p.add("broken", writer({{"out/a.txt", "partial"}}, 0ms, "compiler crashed")),
               {"out/*.txt"});
  with_outputs(p.add("retried", writer({{"r.txt", "x"}}, 0ms, "always fails")), {"r.txt"})
      .retries(2);
  p.edit(p.size() - 1).backoff(exact_backoff(0ms));
  const auto run = run_pipeline(std::move(p), in_workspace(ws));
  BOOST_TEST(result_of(run.report, "broken").status == module_status::failed);
  BOOST_TEST(result_of(run.report, "broken").reason == "compiler crashed");
  BOOST_TEST(result_of(run.report, "retried").attempts == 3u);
  BOOST_TEST(!fs::exists(ws / "out"), "nothing of the failed module appears");
  BOOST_TEST(!fs::exists(ws / "r.txt"));
  BOOST_TEST(ws.work_dirs().empty(), "the failed attempts' directories were removed");
}

BOOST_AUTO_TEST_CASE(a_timed_out_attempt_promotes_nothing, *utf::timeout(30)) {
  temp_workspace ws;
  drover::pipeline p;
  auto spec = with_outputs(p.add("slow", writer({{"out.txt", "too late"}}, 10s)), {"out.txt"});
  spec.timeout(50ms);
  const auto run = run_pipeline(std::move(p), in_workspace(ws));
  BOOST_TEST(result_of(run.report, "slow").status == module_status::timed_out);
  BOOST_TEST(!fs::exists(ws / "out.txt"));
  BOOST_TEST(ws.work_dirs().empty());
}

// Writes its output, then waits for `gate` without listening to cancellation, then returns
// successfully: the engine abandons it, and what it produced must never appear.
asio::awaitable<json::value> write_then_ignore_cancellation(drover::module_context& ctx,
                                                            asio::steady_timer* gate) {
  write_text(ctx.work_dir() / "out.txt", "from an abandoned body");
  try {
    co_await gate->async_wait(
        asio::bind_cancellation_slot(asio::cancellation_slot{}, asio::use_awaitable));
  } catch (const boost::system::system_error&) {
  }
  co_return "finished late";
}

BOOST_AUTO_TEST_CASE(an_abandoned_body_gets_no_outputs_promoted, *utf::timeout(30)) {
  for (const bool timed : {true, false}) {
    temp_workspace ws;
    asio::io_context io;
    asio::steady_timer gate{io, 1s};
    drover::pipeline p;
    auto spec = with_outputs(p.add("obstinate",
                                   [&gate](drover::module_context& ctx) {
                                     return write_then_ignore_cancellation(ctx, &gate);
                                   }),
                             {"out.txt"});
    // Without a timeout of its own, the body is stopped by a failing module's fail_fast.
    if (timed) {
      spec.timeout(30ms);
    } else {
      p.add("fails", fail_body("boom", 30ms));
    }
    auto options = in_workspace(ws, 2);
    options.cancel_grace = 30ms;
    drover::engine engine{io.get_executor()};
    std::optional<drover::run_report> report;
    engine.async_run(std::move(p), options, [&](drover::run_report r) { report = std::move(r); });
    io.run();  // until the abandoned body has returned, too
    BOOST_REQUIRE(report.has_value());
    const auto& r = result_of(*report, "obstinate");
    BOOST_TEST((r.status == (timed ? module_status::timed_out : module_status::cancelled)),
               to_string(r.status));
    BOOST_TEST(mentions(r.reason, "abandoned"), r.reason);
    BOOST_TEST(!fs::exists(ws / "out.txt"), (timed ? "timed" : "untimed"));
    BOOST_TEST(ws.work_dirs().empty(), "removed once the body returned");
  }
}

BOOST_AUTO_TEST_CASE(a_missing_literal_output_fails_the_attempt, *utf::timeout(30)) {
  temp_workspace ws;
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  with_outputs(p.add("forgot", writer({{"a.txt", "a"}})), {"a.txt", "b.txt"});
  with_outputs(p.add("no_dir", value_body(1)), {"report.txt"});
  with_outputs(p.add("glob_matches_nothing", writer({{"logs/a.log", "x"}})), {"logs/*.txt"});
  const auto run = run_pipeline(std::move(p), in_workspace(ws));

  const auto& forgot = result_of(run.report, "forgot");
  BOOST_TEST(forgot.status == module_status::failed);
  BOOST_TEST(forgot.reason.starts_with("declared output 'b.txt' was not produced"), forgot.reason);
  BOOST_TEST(forgot.value.is_null());
  BOOST_TEST(!fs::exists(ws / "a.txt"), "a missing output stops all of them");

  const auto& no_dir = result_of(run.report, "no_dir");
  BOOST_TEST(no_dir.status == module_status::failed);
  BOOST_TEST(no_dir.reason.starts_with("declared output 'report.txt' was not produced"),
             no_dir.reason);

  BOOST_TEST(result_of(run.report, "glob_matches_nothing").status == module_status::succeeded);
  BOOST_TEST(ws.work_dirs().empty());
}

BOOST_AUTO_TEST_CASE(outputs_of_a_module_that_writes_in_the_workspace_are_checked_there,
                     *utf::timeout(30)) {
  temp_workspace ws;
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  with_outputs(p.add("build", in_place_writer({{"sub/out.txt", "built"}, {"obj/a.o", "a"}})),
               {"sub/out.txt", "obj", "obj/*.o", "logs/*.log"});
  with_outputs(p.add("forgot", in_place_writer({{"other.txt", "x"}})), {"missing.txt"});
  const auto run = run_pipeline(std::move(p), in_workspace(ws));

  const auto& build = result_of(run.report, "build");
  BOOST_TEST(build.status == module_status::succeeded, build.reason);
  BOOST_TEST(read_text(ws / "sub/out.txt") == "built", "left where it was written");
  BOOST_TEST(read_text(ws / "obj/a.o") == "a");
  BOOST_TEST(!fs::exists(ws / "scratch.tmp"), "the work directory's files are not outputs");

  const auto& forgot = result_of(run.report, "forgot");
  BOOST_TEST(forgot.status == module_status::failed);
  BOOST_TEST(forgot.reason == "declared output 'missing.txt' was not produced: no file at '" +
                                  (ws / "missing.txt").string() + "'",
             forgot.reason);
  BOOST_TEST(ws.work_dirs().empty());
}

BOOST_AUTO_TEST_CASE(a_rename_that_fails_names_both_paths, *utf::timeout(30)) {
  temp_workspace ws;
  fs::create_directories(ws / "out.txt" / "in_the_way");  // a non-empty directory
  drover::pipeline p;
  with_outputs(p.add("make", writer({{"out.txt", "x"}})), {"out.txt"});
  const auto run = run_pipeline(std::move(p), in_workspace(ws));
  const auto& r = result_of(run.report, "make");
  BOOST_TEST(r.status == module_status::failed);
  BOOST_TEST(mentions(r.reason, "cannot move output 'out.txt'"), r.reason);
  BOOST_TEST(mentions(r.reason, "/make.1."), r.reason);
  BOOST_TEST(mentions(r.reason, (ws / ".drover" / "work").string() + "/p"), r.reason);
  BOOST_TEST(mentions(r.reason, (ws / "out.txt").string() + "'"), r.reason);
  BOOST_TEST(ws.work_dirs().empty());
}

BOOST_AUTO_TEST_CASE(symbolic_links_are_not_followed_or_moved, *utf::timeout(30)) {
  temp_workspace ws;
  write_text(ws / "elsewhere" / "precious.txt", "must stay");
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  auto link_body = [&ws](drover::module_context& ctx) -> asio::awaitable<json::value> {
    fs::create_directory_symlink(ws / "elsewhere", ctx.work_dir() / "linked");
    write_text(ctx.work_dir() / "real/file.txt", "moved");
    co_return nullptr;
  };
  with_outputs(p.add("globbed", coroutine_body(link_body)), {"**/*.txt"});
  with_outputs(p.add("literal", coroutine_body(link_body)), {"linked"});
  p.edit(p.size() - 1).deps({"globbed"});
  const auto run = run_pipeline(std::move(p), in_workspace(ws));
  BOOST_TEST(result_of(run.report, "globbed").status == module_status::succeeded);
  BOOST_TEST(read_text(ws / "real/file.txt") == "moved");
  BOOST_TEST(!fs::exists(ws / "linked"));
  const auto& literal = result_of(run.report, "literal");
  BOOST_TEST(literal.status == module_status::failed);
  BOOST_TEST(mentions(literal.reason, "'linked' is a symbolic link"), literal.reason);
  BOOST_TEST(read_text(ws / "elsewhere" / "precious.txt") == "must stay");
}

BOOST_AUTO_TEST_SUITE_END()

// -------------------------------------------------------------------------------------------
// Validation

BOOST_AUTO_TEST_SUITE(validation)

drover::pipeline two_writers(std::string a_output, std::string b_output) {
  drover::pipeline p;
  with_outputs(p.add("a", value_body()), {"unrelated/a", std::move(a_output)});
  p.add("between", value_body());
  with_outputs(p.add("b", value_body()), {std::move(b_output)});
  return p;
}

std::string problems_of(const drover::pipeline& p) {
  return drover::format_problems(drover::build_graph(p).problems);
}

BOOST_AUTO_TEST_CASE(overlapping_outputs_without_an_order_are_rejected) {
  const auto built = drover::build_graph(two_writers("out/*.txt", "out/report.txt"));
  BOOST_REQUIRE(built.problems.size() == 1u);
  const auto& problem = built.problems.front();
  BOOST_TEST(problem.module == "a");
  BOOST_TEST(problem.field == "outputs[1]");
  BOOST_TEST(problem.message ==
             "modules 'a' and 'b' can write the same output ('out/*.txt' and 'out/report.txt'), "
             "but neither depends on the other and their claims do not conflict: add a "
             "dependency between them, or claims on a shared resource with at least one write");
  BOOST_TEST(!drover::prepare(two_writers("x", "x")).ok(), "literals: the same path");
  BOOST_TEST(!drover::prepare(two_writers("**", "deep/er/x")).ok());
}

BOOST_AUTO_TEST_CASE(disjoint_outputs_are_fine) {
  BOOST_TEST(problems_of(two_writers("out/*.txt", "out/a.log")) == "");
  BOOST_TEST(problems_of(two_writers("a/**", "b/**")) == "");
  BOOST_TEST(problems_of(two_writers("x", "y")) == "");
}

BOOST_AUTO_TEST_CASE(a_dependency_path_orders_them) {
  for (const bool reversed : {false, true}) {
    auto p = two_writers("out/*", "out/x");
    // Through a module in between, in either direction.
    if (reversed) {
      p.edit(0).deps({"between"});
      p.edit(1).deps({"b"});
    } else {
      p.edit(1).deps({"a"});
      p.edit(2).deps({"between"});
    }
    BOOST_TEST(problems_of(p) == "", (reversed ? "b first" : "a first"));
  }
}

BOOST_AUTO_TEST_CASE(conflicting_claims_keep_them_apart) {
  auto p = two_writers("out/*", "out/x");
  p.edit(0).constraints().claims = {{"out/*", drover::claim_mode::read}};
  p.edit(2).constraints().claims = {{"out/x", drover::claim_mode::write}};
  BOOST_TEST(problems_of(p) == "");

  p.edit(2).constraints().claims = {{"out/x", drover::claim_mode::read}};
  BOOST_TEST(problems_of(p) != "", "two readers share: they may run at once");

  p.edit(2).constraints().claims = {{"elsewhere", drover::claim_mode::write}};
  BOOST_TEST(problems_of(p) != "", "claims on resources that do not overlap");
}

BOOST_AUTO_TEST_CASE(one_module_may_repeat_itself) {
  drover::pipeline p;
  with_outputs(p.add("a", value_body()), {"out/*", "out/x", "out/x"});
  BOOST_TEST(problems_of(p) == "");
}

BOOST_AUTO_TEST_CASE(every_unordered_pair_is_named) {
  drover::pipeline p;
  for (const char* id : {"w1", "w2", "w3"})
    with_outputs(p.add(id, value_body()), {"shared.txt"});
  p.edit(2).deps({"w1"});
  const auto built = drover::build_graph(p);
  std::set<std::string> pairs;
  for (const auto& problem : built.problems) {
    pairs.insert(problem.message.substr(0, problem.message.find(" can write")));
  }
  BOOST_TEST(pairs == (std::set<std::string>{"modules 'w1' and 'w2'", "modules 'w2' and 'w3'"}),
             drover::format_problems(built.problems));
}

BOOST_AUTO_TEST_CASE(bad_outputs_inputs_and_env_names_are_reported) {
  drover::pipeline p;
  auto& io = p.add("m", value_body()).io();
  io.outputs = {"ok/*.txt", "/abs/path", "a/../b", "./x", "a//b", "**x"};
  io.inputs = {"src/**", "bad["};
  io.input_env = {"CC", "1X", "A-B", ""};
  const auto built = drover::build_graph(p);
  std::vector<std::string> fields;
  for (const auto& problem : built.problems)
    fields.push_back(problem.field);
  BOOST_TEST(fields == (std::vector<std::string>{"inputs[1]", "outputs[1]", "outputs[2]",
                                                 "outputs[3]", "outputs[4]", "outputs[5]",
                                                 "input_env[1]", "input_env[2]", "input_env[3]"}),
             boost::test_tools::per_element());
  const std::string all = drover::format_problems(built.problems);
  BOOST_TEST(mentions(all, "module 'm': output '/abs/path' is an absolute path"), all);
  BOOST_TEST(mentions(all, "module 'm': output 'a/../b' has a '.' or '..' segment"), all);
  BOOST_TEST(mentions(all, "module 'm': output glob 'a//b' has an empty segment"), all);
  BOOST_TEST(mentions(all, "input_env entry '1X' is not an environment variable name"), all);
}

BOOST_AUTO_TEST_CASE(inputs_may_name_files_outside_the_workspace_outputs_may_not) {
  drover::pipeline p;
  auto& io = p.add("m", value_body()).io();
  // Read-only: an absolute glob, or leading '..' segments (an out-of-source build).
  io.inputs = {"../fmt/src/*.cc", "../../sdk/**", "/opt/sdk/include/**", "/etc/hosts",
               "a/../b",          "./x",          "../a/../b",           "/opt/../x",
               "/../x",           "/opt//x"};
  io.outputs = {"../out.txt", "/tmp/out.txt"};
  const auto built = drover::build_graph(p);
  std::vector<std::string> fields;
  for (const auto& problem : built.problems)
    fields.push_back(problem.field);
  BOOST_TEST(
      fields == (std::vector<std::string>{"inputs[4]", "inputs[5]", "inputs[6]", "inputs[7]",
                                          "inputs[8]", "inputs[9]", "outputs[0]", "outputs[1]"}),
      boost::test_tools::per_element());
  const std::string all = drover::format_problems(built.problems);
  BOOST_TEST(mentions(all,
                      "input 'a/../b' has a '.' or '..' segment; only a relative input may "
                      "start with '..' segments"),
             all);
  BOOST_TEST(mentions(all, "input '/opt//x' is not a valid glob"), all);
  BOOST_TEST(mentions(all,
                      "output '../out.txt' has a '.' or '..' segment; outputs name files "
                      "inside the workspace"),
             all);
  BOOST_TEST(mentions(all, "output '/tmp/out.txt' is an absolute path"), all);
}

BOOST_AUTO_TEST_CASE(large_pipelines_stay_fast, *utf::timeout(60)) {
  // A chain of 200,000 modules with writers at both ends and one unordered writer beside it.
  constexpr int n = 200'000;
  drover::pipeline p;
  p.reserve(n + 1);
  for (int i = 0; i < n; ++i) {
    auto spec = p.add("m" + std::to_string(i), value_body());
    if (i > 0) spec.deps({"m" + std::to_string(i - 1)});
  }
  with_outputs(p.edit(0), {"dist/**"});
  with_outputs(p.edit(p.size() - 1), {"dist/app"});
  const auto started = steady::now();
  BOOST_TEST(problems_of(p) == "");
  with_outputs(p.add("side", value_body()), {"dist/*"});
  const auto built = drover::build_graph(p);
  const auto elapsed = to_ms(steady::now() - started);
  BOOST_TEST(built.problems.size() == 2u, drover::format_problems(built.problems));
  BOOST_TEST(elapsed < 20s, elapsed.count() << " ms");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
