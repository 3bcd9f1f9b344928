// End-to-end tests of --journal/--resume and --cache with the built binary: a master killed
// at random moments resumes without rerunning what it recorded, torn and foreign journals, and
// cache hits and misses.

#define BOOST_TEST_MODULE resume_test
#include "app_test_support.hpp"

#include <boost/json.hpp>

#include <random>
#include <set>

using namespace drover::app_test;
namespace json = boost::json;

namespace {

// Modules that append their id to `ran` (an absolute path), with random dependencies on
// earlier modules so that resumed runs must feed recorded values to dependents.
std::string appending_pipeline(std::size_t modules, const fs::path& ran, std::uint32_t seed) {
  std::mt19937 rng{seed};
  json::array list;
  for (std::size_t i = 0; i < modules; ++i) {
    json::array deps;
    if (i > 0) {
      std::uniform_int_distribution<std::size_t> pick{0, i - 1};
      const int count = static_cast<int>(rng() % 3);
      std::set<std::size_t> chosen;
      for (int d = 0; d < count; ++d)
        chosen.insert(pick(rng));
      for (auto d : chosen)
        deps.emplace_back("m" + std::to_string(d));
    }
    const std::string id = "m" + std::to_string(i);
    list.push_back(json::object{
        {"id", id},
        {"kind", "exec"},
        {"deps", deps},
        {"params",
         // The sleep keeps a run going long enough for every kill to land mid-run.
         json::object{{"shell", "sleep 0.04; echo " + id + " >> '" + ran.string() + "'"}}}});
  }
  return json::serialize(json::object{{"name", "crash-loop"}, {"modules", list}});
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// Modules the journal records as succeeded or cached (complete lines only).
std::set<std::string> recorded_successes(const fs::path& journal) {
  std::set<std::string> ids;
  for (const auto& line : lines_of(read_file(journal))) {
    boost::system::error_code ec;
    auto record = json::parse(line, ec);
    if (ec || !record.is_object()) continue;  // a torn last line
    const auto& o = record.get_object();
    if (o.contains("type") && o.at("type") == "module" &&
        (o.at("status") == "succeeded" || o.at("status") == "cached")) {
      ids.insert(std::string(o.at("id").as_string()));
    }
  }
  return ids;
}

}  // namespace

BOOST_AUTO_TEST_CASE(killed_master_resumes_without_rerunning_recorded_successes) {
  scratch_dir dir;
  const auto ran = dir / "ran.txt";
  constexpr std::size_t modules = 500;
  dir.write("p.json", appending_pipeline(modules, ran, 11));
  std::mt19937 rng{2026};
  std::uniform_int_distribution<int> delay_ms{40, 200};

  const auto run_records = [&] {
    std::size_t runs = 0;
    for (const auto& line : lines_of(read_file(dir / "run.journal")))
      runs += line.starts_with(R"({"type":"run")") && line.ends_with("}") ? 1 : 0;
    return runs;
  };
  int kills = 0;
  for (int round = 0; round < 20; ++round) {
    const std::set<std::string> recorded = recorded_successes(dir / "run.journal");
    const std::size_t lines_before = lines_of(read_file(ran)).size();
    const std::size_t runs_before = run_records();
    drover_process process{{"run", "p.json", "--journal", "run.journal", "--resume", "--progress",
                            "never", "--workers", "4"},
                           dir.path()};
    // Most kills count from the moment the run has written its run record, so that they land
    // mid-run however slowly the process starts (a sanitizer build, a loaded machine); every
    // fourth counts from the start and may hit the process before it opened the journal.
    if (round % 4 != 3) {
      const auto give_up = std::chrono::steady_clock::now() + 20s;
      while (run_records() == runs_before && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(2ms);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{delay_ms(rng)});
    process.send(SIGKILL);
    const auto killed = process.wait();
    if (killed.exit_code == -1) ++kills;
    // Orphaned exec children of the killed master may still be appending: let them finish.
    std::this_thread::sleep_for(50ms);
    const auto after = lines_of(read_file(ran));
    for (std::size_t k = lines_before; k < after.size(); ++k) {
      BOOST_TEST(!recorded.contains(after[k]), after[k] << " ran again in round " << round
                                                        << " although the journal recorded it");
    }
  }
  BOOST_TEST_MESSAGE("crash loop: " << kills << " of 20 rounds killed the master mid-run, "
                                    << run_records() << " run records");
  BOOST_TEST(kills >= 15, "most rounds must really kill the master mid-run, got " << kills);

  const std::set<std::string> recorded = recorded_successes(dir / "run.journal");
  const std::size_t lines_before = lines_of(read_file(ran)).size();
  auto last = run_drover({"run", "p.json", "--journal", "run.journal", "--resume", "--progress",
                          "never", "--report", "report.json"},
                         dir.path());
  BOOST_TEST_REQUIRE(last.exit_code == 0, last.out << last.err);
  const auto after = lines_of(read_file(ran));
  for (std::size_t k = lines_before; k < after.size(); ++k)
    BOOST_TEST(!recorded.contains(after[k]), after[k] << " ran again in the last run");
  // Every module ran at least once overall, and ended succeeded or cached.
  const std::set<std::string> ever_ran(after.begin(), after.end());
  BOOST_TEST(ever_ran.size() == modules);
  const auto report = json::parse(read_file(dir / "report.json"));
  const auto& counts = report.at("counts").as_object();
  BOOST_TEST(counts.at("succeeded").as_int64() + counts.at("cached").as_int64() ==
             static_cast<std::int64_t>(modules));
  // Each run that got as far as writing its run record took the next epoch.
  std::int64_t runs = 0;
  for (const auto& line : lines_of(read_file(dir / "run.journal")))
    runs += line.find(R"("type":"run")") != std::string::npos ? 1 : 0;
  BOOST_TEST(runs >= 2);
  BOOST_TEST(report.at("epoch").as_int64() == runs);
  // The killed runs' work directories were swept by later runs, the last run's own removed.
  std::error_code ec;
  BOOST_TEST(fs::is_empty(dir / ".drover" / "work", ec), ec.message());
}

BOOST_AUTO_TEST_CASE(resume_reuses_succeeded_modules_and_reruns_changed_ones) {
  scratch_dir dir;
  const auto ran = dir / "ran.txt";
  const auto pipeline = [&](const std::string& b_text) {
    return R"({"name": "p", "modules": [
      {"id": "a", "kind": "exec", "params": {"shell": "echo a >> ran.txt; echo '{\"n\": 41}'", "json_output": true, "cwd": "."}},
      {"id": "b", "kind": "exec", "deps": ["a"], "params": {"shell": "echo )" +
           b_text + R"( >> ran.txt", "cwd": "."}},
      {"id": "c", "kind": "exec", "deps": ["b"], "params": {"shell": "echo c >> ran.txt; exit $FAIL", "cwd": "."}}]})";
  };
  dir.write("p.json", pipeline("b"));
  auto first = run_drover({"run", "p.json", "--journal", "j", "--progress", "never"}, dir.path(),
                          {{"FAIL", "1"}});
  BOOST_TEST(first.exit_code == 1, first.out << first.err);
  BOOST_TEST(read_file(ran) == "a\nb\nc\n");

  // c failed: only c runs again.
  auto second = run_drover(
      {"run", "p.json", "--journal", "j", "--resume", "--progress", "never", "--report", "r.json"},
      dir.path(), {{"FAIL", "0"}});
  BOOST_TEST(second.exit_code == 0, second.out << second.err);
  BOOST_TEST(read_file(ran) == "a\nb\nc\nc\n");
  BOOST_TEST(second.out.find("2 from the journal") != std::string::npos, second.out);
  const auto report = json::parse(read_file(dir / "r.json"));
  BOOST_TEST(report.at("counts").at("cached").as_int64() == 2);

  // b's definition changes: b and its dependent c run, a is reused.
  dir.write("p.json", pipeline("b2"));
  auto third = run_drover({"run", "p.json", "--journal", "j", "--resume", "--progress", "never"},
                          dir.path(), {{"FAIL", "0"}});
  BOOST_TEST(third.exit_code == 0, third.out << third.err);
  BOOST_TEST(read_file(ran) == "a\nb\nc\nc\nb2\nc\n");
  BOOST_TEST(third.out.find("pipeline changed since the journal was written") != std::string::npos,
             third.out);

  // Without --resume the journal starts afresh and everything runs.
  auto fresh = run_drover({"run", "p.json", "--journal", "j", "--progress", "never"}, dir.path(),
                          {{"FAIL", "0"}});
  BOOST_TEST(fresh.exit_code == 0);
  BOOST_TEST(read_file(ran) == "a\nb\nc\nc\nb2\nc\na\nb2\nc\n");
}

BOOST_AUTO_TEST_CASE(a_torn_last_line_is_dropped_not_fatal) {
  scratch_dir dir;
  dir.write("p.json", R"({"name": "p", "modules": [
    {"id": "a", "kind": "exec", "params": {"shell": "echo a >> ran.txt", "cwd": "."}},
    {"id": "b", "kind": "exec", "deps": ["a"], "params": {"shell": "echo b >> ran.txt", "cwd": "."}}]})");
  auto first = run_drover({"run", "p.json", "--journal", "j", "--progress", "never"}, dir.path());
  BOOST_TEST_REQUIRE(first.exit_code == 0, first.err);
  // Cut the journal inside b's record, as a kill during the write would.
  auto text = read_file(dir / "j");
  const auto b_record = text.find(R"("id":"b")");
  BOOST_TEST_REQUIRE(b_record != std::string::npos);
  dir.write("j", text.substr(0, b_record + 3));

  auto resumed = run_drover({"run", "p.json", "--journal", "j", "--resume", "--progress", "never"},
                            dir.path());
  BOOST_TEST(resumed.exit_code == 0, resumed.out << resumed.err);
  BOOST_TEST(read_file(dir / "ran.txt") == "a\nb\nb\n");  // a reused, b ran again
  BOOST_TEST(resumed.out.find("last line was torn") != std::string::npos, resumed.out);
  // The torn line was cut off: every line of the journal is whole JSON.
  for (const auto& line : lines_of(read_file(dir / "j"))) {
    boost::system::error_code ec;
    json::parse(line, ec);
    BOOST_TEST(!ec, line);
  }
}

BOOST_AUTO_TEST_CASE(a_damaged_record_before_the_end_is_refused_with_its_line) {
  scratch_dir dir;
  dir.write("p.json", R"({"name": "p", "modules": [{"id": "a", "kind": "noop"}]})");
  BOOST_TEST_REQUIRE(
      run_drover({"run", "p.json", "--journal", "j", "--progress", "never"}, dir.path())
          .exit_code == 0);
  auto text = read_file(dir / "j");
  const auto after_run_record = text.find('\n') + 1;
  dir.write("j", text.substr(0, after_run_record) + "garbage\n" + text.substr(after_run_record));
  auto resumed = run_drover({"run", "p.json", "--journal", "j", "--resume", "--progress", "never"},
                            dir.path());
  BOOST_TEST(resumed.exit_code == 2);
  BOOST_TEST(resumed.err.find("j:2: not a journal record") != std::string::npos, resumed.err);
}

BOOST_AUTO_TEST_CASE(a_journal_of_another_pipeline_is_refused) {
  scratch_dir dir;
  dir.write("one.json", R"({"name": "one", "modules": [{"id": "a", "kind": "noop"}]})");
  dir.write("two.json", R"({"name": "two", "modules": [{"id": "a", "kind": "noop"}]})");
  BOOST_TEST_REQUIRE(
      run_drover({"run", "one.json", "--journal", "j", "--progress", "never"}, dir.path())
          .exit_code == 0);
  const auto before = read_file(dir / "j");
  auto other = run_drover({"run", "two.json", "--journal", "j", "--resume", "--progress", "never"},
                          dir.path());
  BOOST_TEST(other.exit_code == 2);
  BOOST_TEST(other.err.find("belongs to pipeline 'one', not 'two'") != std::string::npos,
             other.err);
  BOOST_TEST(read_file(dir / "j") == before);  // refused before writing anything
}

BOOST_AUTO_TEST_CASE(a_file_that_is_not_a_journal_is_never_overwritten) {
  scratch_dir dir;
  const std::string pipeline = R"({"name": "p", "modules": [{"id": "a", "kind": "noop"}]})";
  dir.write("p.json", pipeline);
  // The classic slip: the pipeline file given as the journal too.
  auto slip =
      run_drover({"run", "p.json", "--journal", "p.json", "--progress", "never"}, dir.path());
  BOOST_TEST(slip.exit_code == 2);
  BOOST_TEST(slip.err.find("p.json:1: not a drover journal") != std::string::npos, slip.err);
  BOOST_TEST(read_file(dir / "p.json") == pipeline);
}

BOOST_AUTO_TEST_CASE(journal_flags_are_checked) {
  scratch_dir dir;
  dir.write("p.json", R"({"name": "p", "modules": [{"id": "a", "kind": "noop"}]})");
  auto no_journal = run_drover({"run", "p.json", "--resume"}, dir.path());
  BOOST_TEST(no_journal.exit_code == 2);
  BOOST_TEST(no_journal.err.find("--resume needs --journal") != std::string::npos);
  auto bad_mode =
      run_drover({"run", "p.json", "--journal", "j", "--durability", "sometimes"}, dir.path());
  BOOST_TEST(bad_mode.exit_code == 2);
  BOOST_TEST(bad_mode.err.find("unknown --durability 'sometimes'") != std::string::npos);
  auto relaxed = run_drover(
      {"run", "p.json", "--journal", "j", "--durability", "relaxed", "--progress", "never"},
      dir.path());
  BOOST_TEST(relaxed.exit_code == 0, relaxed.err);
  BOOST_TEST(read_file(dir / "j").find(R"("type":"end")") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(cache_hit_then_miss_after_an_input_changes) {
  scratch_dir dir;
  dir.write("input.txt", "one");
  dir.write("p.json", R"({"name": "p", "modules": [
    {"id": "count", "kind": "exec", "inputs": ["input.txt"], "input_env": ["FLAVOUR"],
     "params": {"shell": "echo run >> ran.txt; wc -c < input.txt", "cwd": "."}},
    {"id": "never", "kind": "exec", "cache": false, "deps": ["count"],
     "params": {"shell": "echo never >> ran.txt", "cwd": "."}}]})");
  // "never" depends on "count" only so that the two append to ran.txt in a fixed order.
  const std::vector<std::string> run{"run", "p.json", "--cache", "cache", "--progress", "never"};
  BOOST_TEST_REQUIRE(run_drover(run, dir.path()).exit_code == 0);
  BOOST_TEST(read_file(dir / "ran.txt") == "run\nnever\n");

  auto hit = run_drover(run, dir.path());
  BOOST_TEST(hit.exit_code == 0, hit.err);
  BOOST_TEST(read_file(dir / "ran.txt") == "run\nnever\nnever\n");  // count came from the cache
  BOOST_TEST(hit.out.find("1 from the cache") != std::string::npos, hit.out);

  dir.write("input.txt", "two!");
  BOOST_TEST(run_drover(run, dir.path()).exit_code == 0);
  BOOST_TEST(read_file(dir / "ran.txt") == "run\nnever\nnever\nrun\nnever\n");

  // A declared environment variable is part of the fingerprint too.
  BOOST_TEST(run_drover(run, dir.path(), {{"FLAVOUR", "mint"}}).exit_code == 0);
  BOOST_TEST(read_file(dir / "ran.txt") == "run\nnever\nnever\nrun\nnever\nrun\nnever\n");

  // --no-cache runs it although the cache has it.
  auto forced = run;
  forced.push_back("--no-cache");
  BOOST_TEST(run_drover(forced, dir.path(), {{"FLAVOUR", "mint"}}).exit_code == 0);
  BOOST_TEST(read_file(dir / "ran.txt") ==
             "run\nnever\nnever\nrun\nnever\nrun\nnever\nrun\nnever\n");

  // DROVER_CACHE_DIR stands in for --cache.
  BOOST_TEST(run_drover({"run", "p.json", "--progress", "never"}, dir.path(),
                        {{"FLAVOUR", "mint"}, {"DROVER_CACHE_DIR", (dir / "cache").string()}})
                 .exit_code == 0);
  BOOST_TEST(lines_of(read_file(dir / "ran.txt")).back() == "never");
  BOOST_TEST(lines_of(read_file(dir / "ran.txt")).size() == 10u);
}

BOOST_AUTO_TEST_CASE(a_cache_hit_restores_declared_outputs) {
  scratch_dir dir;
  dir.write("src.txt", "hello");
  dir.write("p.json", R"({"name": "p", "modules": [
    {"id": "build", "kind": "exec", "inputs": ["src.txt"], "outputs": ["out/**"],
     "params": {"shell": "echo build >> \"$DROVER_WORKSPACE/ran.txt\"; mkdir -p out/sub && tr a-z A-Z < \"$DROVER_WORKSPACE/src.txt\" > out/sub/upper.txt"}}]})");
  const std::vector<std::string> run{"run", "p.json", "--cache", "cache", "--progress", "never"};
  auto first = run_drover(run, dir.path());
  BOOST_TEST_REQUIRE(first.exit_code == 0, first.out << first.err);
  BOOST_TEST(read_file(dir / "out/sub/upper.txt") == "HELLO");

  fs::remove_all(dir / "out");
  auto second = run_drover(run, dir.path());
  BOOST_TEST(second.exit_code == 0, second.out << second.err);
  BOOST_TEST(read_file(dir / "ran.txt") == "build\n");  // not run again
  BOOST_TEST(read_file(dir / "out/sub/upper.txt") == "HELLO");
}

BOOST_AUTO_TEST_CASE(a_damaged_cache_entry_is_a_miss) {
  scratch_dir dir;
  dir.write("p.json", R"({"name": "p", "modules": [
    {"id": "a", "kind": "exec", "cache": true,
     "params": {"shell": "echo a >> ran.txt", "cwd": "."}}]})");
  const std::vector<std::string> run{"run", "p.json", "--cache", "cache", "--progress", "never"};
  BOOST_TEST_REQUIRE(run_drover(run, dir.path()).exit_code == 0);
  BOOST_TEST(run_drover(run, dir.path()).out.find("1 from the cache") != std::string::npos);
  for (const auto& entry : fs::recursive_directory_iterator(dir / "cache")) {
    if (entry.path().extension() == ".json") {
      std::ofstream{entry.path(), std::ios::trunc} << "{\"format\": 1, \"trunc";
    }
  }
  auto again = run_drover(run, dir.path());
  BOOST_TEST(again.exit_code == 0, again.err);
  BOOST_TEST(read_file(dir / "ran.txt") == "a\na\n");
}

BOOST_AUTO_TEST_CASE(a_module_in_the_workspace_without_inputs_is_not_cached_and_says_so) {
  // What a build through its ninja graph looked like: the compile step reads sources it does
  // not declare. A cached result would survive an edit and a cleaned build tree.
  scratch_dir dir;
  dir.write("src.c", "v1");
  dir.write("p.json", R"({"name": "p", "modules": [
    {"id": "compile", "kind": "exec", "outputs": ["obj/src.o"],
     "params": {"shell": "mkdir -p obj && cp src.c obj/src.o", "cwd": "."}},
    {"id": "stamp", "kind": "exec", "cache": true,
     "params": {"shell": "echo stamp >> ran.txt", "cwd": "."}}]})");
  const std::string warning =
      "p.json:3:71: warning: module 'compile': field 'params.cwd': runs in the workspace but "
      "declares no inputs, so its fingerprint cannot see the files it reads: it is not cached. "
      "Declare them in \"inputs\", or set \"cache\": true";
  const auto valid = run_drover({"validate", "p.json"}, dir.path());
  BOOST_TEST(valid.exit_code == 0);
  BOOST_TEST(valid.err.find(warning) != std::string::npos, valid.err);
  BOOST_TEST(valid.err.find("'stamp'") == std::string::npos, "stamp opted in: " << valid.err);

  const std::vector<std::string> run{"run", "p.json", "--cache", "cache", "--progress", "never"};
  const auto first = run_drover(run, dir.path());
  BOOST_TEST(first.exit_code == 0, first.err);
  BOOST_TEST(first.err.find(warning) != std::string::npos, first.err);
  const auto without_cache = run_drover({"run", "p.json", "--progress", "never"}, dir.path());
  BOOST_TEST(without_cache.err.find("warning") == std::string::npos, "no cache, no warning");

  dir.write("src.c", "v2");
  fs::remove_all(dir / "obj");
  const auto second = run_drover(run, dir.path());
  BOOST_TEST(second.exit_code == 0, second.err);
  BOOST_TEST(read_file(dir / "obj/src.o") == "v2", "compiled again, not restored stale");
  BOOST_TEST(second.out.find("1 from the cache") != std::string::npos,
             "only stamp: " << second.out);
  BOOST_TEST(read_file(dir / "ran.txt") == "stamp\nstamp\n", "once, plus the run without cache");
}
