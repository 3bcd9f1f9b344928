// The journal and the cache through the embedding API: records durable before dependents
// start, resume feeding recorded values to dependents, fingerprints that notice changes, and
// which modules the cache takes.

#include <drover/cache.hpp>
#include <drover/engine.hpp>
#include <drover/journal.hpp>

#define BOOST_TEST_MODULE journal
#include "test_support.hpp"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <thread>

namespace {
using namespace drover::test;
namespace fs = std::filesystem;

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "drover-journal-test-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string read_text(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A body that counts its runs and returns `value`.
drover::module_body counting_body(std::atomic<int>& runs, json::value value) {
  return [&runs, value](drover::module_context&) -> asio::awaitable<json::value> {
    ++runs;
    co_return value;
  };
}

/// A journal_store in memory whose appends can be made to fail.
class test_store : public drover::journal_store {
 public:
  std::atomic<bool> refuse{false};

  std::string name() const override { return "test-store"; }
  std::string load() override {
    std::lock_guard lock(mutex_);
    ++loads_;
    return lines_;
  }
  std::optional<std::string> append(std::string_view lines) override {
    if (refuse) return "the test store refuses";
    std::lock_guard lock(mutex_);
    lines_ += lines;
    append_threads_.insert(std::this_thread::get_id());
    return std::nullopt;
  }
  /// The threads append() was called on.
  std::set<std::thread::id> append_threads() const {
    std::lock_guard lock(mutex_);
    return append_threads_;
  }
  std::string lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  void set_lines(std::string lines) {
    std::lock_guard lock(mutex_);
    lines_ = std::move(lines);
  }
  int loads() const {
    std::lock_guard lock(mutex_);
    return loads_;
  }

 private:
  mutable std::mutex mutex_;
  std::set<std::thread::id> append_threads_;
  std::string lines_;
  int loads_ = 0;
};

drover::run_options with_journal(std::shared_ptr<drover::run_journal> journal,
                                 std::size_t workers = 2) {
  drover::run_options options;
  options.workers = workers;
  options.journal = std::move(journal);
  return options;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_dependent_starts_only_after_its_dependency_is_in_the_journal) {
  for (const auto workers : {1u, 2u, 8u}) {
    temp_dir dir;
    const auto file = dir.path / "j";
    drover::pipeline p;
    p.name = "durable";
    std::vector<std::string> seen_missing;
    constexpr int chain = 20;
    for (int i = 0; i < chain; ++i) {
      const std::string id = "m" + std::to_string(i);
      std::vector<std::string> deps;
      if (i > 0) deps.push_back("m" + std::to_string(i - 1));
      p.add(
          id,
          [&, i](drover::module_context&) -> asio::awaitable<json::value> {
            if (i > 0) {
              const std::string record = "\"id\":\"m" + std::to_string(i - 1) + "\"";
              if (read_text(file).find(record) == std::string::npos) {
                seen_missing.push_back("m" + std::to_string(i));
              }
            }
            co_return i;
          },
          deps);
    }
    auto journal = drover::run_journal::open(file, {});
    const auto run = run_pipeline(std::move(p), with_journal(journal, workers));
    BOOST_TEST(run.report.status == drover::run_status::succeeded);
    BOOST_TEST(seen_missing.empty(), seen_missing.size() << " modules started before their "
                                                            "dependency's record was written");
  }
}

/// A two-module pipeline for resume tests: "a" returns 41; "b" fails while `b_fails` is set
/// and otherwise returns a's value plus one. Both count their runs.
struct a_then_flaky_b {
  std::atomic<int> a_runs{0};
  std::atomic<int> b_runs{0};
  std::atomic<bool> b_fails{true};

  drover::pipeline make(std::string name) {
    drover::pipeline p;
    p.name = std::move(name);
    p.add("a", counting_body(a_runs, 41));
    p.add("b",
          [this](drover::module_context& ctx) -> asio::awaitable<json::value> {
            ++b_runs;
            if (b_fails) throw std::runtime_error("b is not ready yet");
            co_return ctx.result<int>("a") + 1;
          },
          {"a"});
    return p;
  }
};

BOOST_AUTO_TEST_CASE(resume_feeds_recorded_values_to_dependents_and_reruns_the_rest) {
  temp_dir dir;
  const auto file = dir.path / "j";
  a_then_flaky_b pair;
  const auto make = [&] { return pair.make("resume"); };
  {
    auto journal = drover::run_journal::open(file, {});
    const auto run = run_pipeline(make(), with_journal(journal));
    BOOST_TEST(run.report.status == drover::run_status::failed);
  }
  pair.b_fails = false;
  auto journal =
      drover::run_journal::open(file, {.mode = drover::durability::fsync, .resume = true});
  BOOST_TEST(journal->resuming());
  BOOST_TEST(journal->epoch() == 2u);
  const auto run = run_pipeline(make(), with_journal(journal));
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
  BOOST_TEST(pair.a_runs == 1);
  BOOST_TEST(pair.b_runs == 2);
  const auto& a = result_of(run.report, "a");
  BOOST_TEST(a.status == drover::module_status::cached);
  BOOST_TEST(a.value == json::value(41));
  BOOST_TEST(a.attempts == 0u);
  BOOST_TEST(result_of(run.report, "b").value == json::value(42));
  BOOST_TEST(run.report.reused_from_journal == 1u);
  BOOST_TEST(run.report.epoch == 2u);
}

BOOST_AUTO_TEST_CASE(an_in_memory_journal_resumes_like_a_file) {
  a_then_flaky_b pair;
  const auto make = [&] { return pair.make("memory"); };
  auto storage = std::make_shared<std::string>();
  {
    auto journal = drover::run_journal::open_in_memory(storage, {});
    BOOST_TEST(journal->path() == "<memory>");
    BOOST_TEST(run_pipeline(make(), with_journal(journal)).report.status ==
               drover::run_status::failed);
  }
  BOOST_TEST(storage->find("\"id\":\"a\"") != std::string::npos);  // the records are there
  *storage += "{\"type\":\"mod";  // a torn last line, as a dying master leaves it
  pair.b_fails = false;
  auto journal = drover::run_journal::open_in_memory(storage, {.resume = true});
  BOOST_TEST(journal->resuming());
  BOOST_TEST(journal->dropped_torn_line());
  BOOST_TEST(journal->epoch() == 2u);
  const auto run = run_pipeline(make(), with_journal(journal));
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
  BOOST_TEST(pair.a_runs == 1);
  BOOST_TEST(result_of(run.report, "a").status == drover::module_status::cached);
  BOOST_TEST(result_of(run.report, "b").value == json::value(42));
}

BOOST_AUTO_TEST_CASE(a_changed_version_reruns_the_module_and_its_dependents) {
  temp_dir dir;
  const auto file = dir.path / "j";
  std::atomic<int> a_runs{0}, b_runs{0}, c_runs{0};
  const auto make = [&](std::string b_version) {
    drover::pipeline p;
    p.name = "versions";
    p.add("a", counting_body(a_runs, 1));
    p.add("b", counting_body(b_runs, 2), {"a"}).io().version = std::move(b_version);
    p.add("c", counting_body(c_runs, 3), {"b"});
    return p;
  };
  run_pipeline(make("1"), with_journal(drover::run_journal::open(file, {})));
  run_pipeline(make("1"), with_journal(drover::run_journal::open(file, {.resume = true})));
  BOOST_TEST(a_runs == 1);
  BOOST_TEST(b_runs == 1);
  BOOST_TEST(c_runs == 1);
  const auto run =
      run_pipeline(make("2"), with_journal(drover::run_journal::open(file, {.resume = true})));
  BOOST_TEST(a_runs == 1);
  BOOST_TEST(b_runs == 2);
  BOOST_TEST(c_runs == 2);
  BOOST_TEST(result_of(run.report, "a").status == drover::module_status::cached);
  BOOST_TEST(result_of(run.report, "c").status == drover::module_status::succeeded);
}

BOOST_AUTO_TEST_CASE(relaxed_durability_records_everything_by_the_end) {
  temp_dir dir;
  const auto file = dir.path / "j";
  drover::pipeline p;
  p.name = "relaxed";
  for (int i = 0; i < 200; ++i)
    p.add("m" + std::to_string(i), value_body(i));
  auto journal = drover::run_journal::open(file, {.mode = drover::durability::relaxed});
  const auto run = run_pipeline(std::move(p), with_journal(journal));
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
  const auto text = read_text(file);
  std::size_t records = 0;
  for (std::size_t at = text.find("\"type\":\"module\""); at != std::string::npos;
       at = text.find("\"type\":\"module\"", at + 1))
    ++records;
  BOOST_TEST(records == 200u);
  BOOST_TEST(text.find("\"type\":\"end\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_journal_of_another_pipeline_makes_the_run_invalid) {
  temp_dir dir;
  const auto file = dir.path / "j";
  drover::pipeline one;
  one.name = "one";
  one.add("a", value_body(1));
  run_pipeline(std::move(one), with_journal(drover::run_journal::open(file, {})));
  drover::pipeline two;
  two.name = "two";
  two.add("a", value_body(1));
  const auto run =
      run_pipeline(std::move(two), with_journal(drover::run_journal::open(file, {.resume = true})));
  BOOST_TEST(run.report.status == drover::run_status::invalid);
  BOOST_TEST_REQUIRE(run.report.problems.size() == 1u);
  BOOST_TEST(mentions(run.report.problems[0].message, "belongs to pipeline 'one'"));
}

BOOST_AUTO_TEST_CASE(open_reports_a_damaged_journal_with_its_line) {
  temp_dir dir;
  const auto file = dir.path / "j";
  std::ofstream{file} << R"({"type":"run","format":1,"pipeline":"p","fingerprint":"x","epoch":1})"
                      << "\n{oops\n"
                      << R"({"type":"end","status":"failed"})"
                      << "\n";
  try {
    drover::run_journal::open(file, {.resume = true});
    BOOST_ERROR("a damaged journal was accepted");
  } catch (const drover::journal_error& e) {
    BOOST_TEST(mentions(e.what(), file.string() + ":2:"), e.what());
  }
  // Without resume the damage does not matter: the journal starts afresh.
  auto fresh = drover::run_journal::open(file, {});
  BOOST_TEST(fresh->epoch() == 2u);
  BOOST_TEST(read_text(file).empty());
}

// Found by the journal fuzz target: the largest epoch made the next run's epoch 0.
BOOST_AUTO_TEST_CASE(an_epoch_out_of_range_is_refused_with_its_line) {
  auto storage = std::make_shared<std::string>(
      R"({"type":"run","format":1,"pipeline":"p","fingerprint":"x","epoch":18446744073709551615})"
      "\n");
  try {
    drover::run_journal::open_in_memory(storage, {.resume = true});
    BOOST_ERROR("a journal whose epoch cannot be followed was accepted");
  } catch (const drover::journal_error& e) {
    BOOST_TEST(mentions(e.what(), "<memory>:1: epoch 18446744073709551615 is out of range"),
               e.what());
  }
}

BOOST_AUTO_TEST_CASE(open_refuses_a_file_that_is_not_a_journal_and_leaves_it_alone) {
  temp_dir dir;
  const auto file = dir.path / "pipeline.json";
  const std::string text = "{\n  \"name\": \"p\"\n}\n";
  for (const bool resume : {false, true}) {
    std::ofstream{file} << text;
    try {
      drover::run_journal::open(file, {.resume = resume});
      BOOST_ERROR("a file that is not a journal was accepted, resume " << resume);
    } catch (const drover::journal_error& e) {
      BOOST_TEST(mentions(e.what(), file.string() + ":1: not a drover journal"), e.what());
    }
    BOOST_TEST(read_text(file) == text);
  }
  // One complete line that is JSON but not a run record is not a journal either.
  std::ofstream{file} << R"({"type":"end","status":"succeeded"})"
                      << "\n";
  BOOST_CHECK_THROW(drover::run_journal::open(file, {}), drover::journal_error);
}

BOOST_AUTO_TEST_CASE(a_journal_torn_inside_its_first_record_or_empty_is_opened) {
  temp_dir dir;
  const auto file = dir.path / "j";
  // The process died while writing the run record, before or after its type.
  for (const std::string torn : {R"({"typ)", R"({"type":"run","format":1,"pipel)", ""}) {
    std::ofstream{file, std::ios::trunc} << torn;
    auto journal = drover::run_journal::open(file, {.resume = true});
    BOOST_TEST(journal->epoch() == 1u, torn);
    BOOST_TEST(read_text(file).empty(), torn);
  }
}

BOOST_AUTO_TEST_CASE(the_cache_takes_kinds_and_versioned_bodies_only) {
  temp_dir dir;
  std::atomic<int> plain_runs{0}, versioned_runs{0}, opted_out_runs{0};
  const auto make = [&] {
    drover::pipeline p;
    p.name = "cache";
    p.add("plain", counting_body(plain_runs, 1));
    p.add("versioned", counting_body(versioned_runs, 2)).io().version = "v1";
    auto& opted_out = p.add("opted_out", counting_body(opted_out_runs, 3)).io();
    opted_out.version = "v1";
    opted_out.cacheable = false;
    return p;
  };
  for (int round = 0; round < 2; ++round) {
    drover::run_options options;
    options.workspace = dir.path;
    options.cache = std::make_shared<drover::result_cache>(dir.path / "cache");
    const auto run = run_pipeline(make(), options);
    BOOST_TEST(run.report.status == drover::run_status::succeeded);
    if (round == 1) {
      BOOST_TEST(result_of(run.report, "versioned").status == drover::module_status::cached);
      BOOST_TEST(result_of(run.report, "versioned").value == json::value(2));
      BOOST_TEST(run.report.reused_from_cache == 1u);
    }
  }
  BOOST_TEST(plain_runs == 2);
  BOOST_TEST(versioned_runs == 1);
  BOOST_TEST(opted_out_runs == 2);
}

BOOST_AUTO_TEST_CASE(an_input_file_change_misses_the_cache) {
  temp_dir dir;
  fs::create_directories(dir.path / "src" / "deep");
  std::ofstream{dir.path / "src" / "deep" / "a.c"} << "int a;";
  std::ofstream{dir.path / "src" / "b.h"} << "// header";
  std::atomic<int> runs{0};
  const auto run_once = [&] {
    drover::pipeline p;
    p.name = "inputs";
    auto& io = p.add("compile", counting_body(runs, 1)).io();
    io.version = "1";
    io.inputs = {"src/**/*.c"};
    drover::run_options options;
    options.workspace = dir.path;
    options.cache = std::make_shared<drover::result_cache>(dir.path / "cache");
    return run_pipeline(std::move(p), options);
  };
  run_once();
  run_once();
  BOOST_TEST(runs == 1);
  std::ofstream{dir.path / "src" / "b.h"} << "// not an input";
  run_once();
  BOOST_TEST(runs == 1);
  std::ofstream{dir.path / "src" / "deep" / "a.c"} << "int a = 2;";
  run_once();
  BOOST_TEST(runs == 2);
  std::ofstream{dir.path / "src" / "new.c"} << "int n;";  // a new file the glob matches
  run_once();
  BOOST_TEST(runs == 3);
}

BOOST_AUTO_TEST_CASE(inputs_outside_the_workspace_are_fingerprinted) {
  // An out-of-source build: the workspace is build/, the sources are beside it, and an SDK is
  // named by its absolute path.
  temp_dir dir;
  fs::create_directories(dir.path / "build");
  fs::create_directories(dir.path / "src");
  fs::create_directories(dir.path / "sdk" / "include");
  std::ofstream{dir.path / "src" / "a.cc"} << "int a;";
  std::ofstream{dir.path / "sdk" / "include" / "sdk.h"} << "// v1";
  std::atomic<int> runs{0};
  const auto run_once = [&] {
    drover::pipeline p;
    p.name = "out-of-source";
    auto& io = p.add("compile", counting_body(runs, 1)).io();
    io.version = "1";
    io.inputs = {"../src/*.cc", (dir.path / "sdk").string() + "/include/**"};
    drover::run_options options;
    options.workspace = dir.path / "build";
    options.cache = std::make_shared<drover::result_cache>(dir.path / "cache");
    return run_pipeline(std::move(p), options);
  };
  BOOST_TEST(run_once().report.status == drover::run_status::succeeded);
  run_once();
  BOOST_TEST(runs == 1);
  std::ofstream{dir.path / "src" / "a.cc"} << "int a = 2;";
  run_once();
  BOOST_TEST(runs == 2);
  std::ofstream{dir.path / "sdk" / "include" / "sdk.h"} << "// v2";
  run_once();
  BOOST_TEST(runs == 3);
  std::ofstream{dir.path / "sdk" / "include" / "new.h"} << "// new";
  run_once();
  BOOST_TEST(runs == 4);
  run_once();
  BOOST_TEST(runs == 4);
}

BOOST_AUTO_TEST_CASE(a_journal_in_a_store_resumes_like_a_file) {
  a_then_flaky_b pair;
  const auto make = [&] { return pair.make("store"); };
  auto store = std::make_shared<test_store>();
  {
    auto journal = drover::run_journal::open_store(store, {});
    BOOST_TEST(journal->path() == "test-store");
    BOOST_TEST(store->loads() == 0);  // without resume the store is not read
    const auto run = run_pipeline(make(), with_journal(journal));
    BOOST_TEST(run.report.status == drover::run_status::failed);
    BOOST_TEST(!journal->failure());
  }
  const std::string first_run = store->lines();
  BOOST_TEST(first_run.starts_with(R"({"type":"run")"));
  BOOST_TEST(first_run.find(R"("type":"end","status":"failed")") != std::string::npos);

  auto reread = drover::run_journal::open_store(store, {.resume = true});
  BOOST_TEST(reread->resuming());
  BOOST_TEST(reread->epoch() == 2u);
  BOOST_TEST(reread->recorded_pipeline() == "store");
  const auto* a = reread->previous("a");
  BOOST_TEST_REQUIRE(a != nullptr);
  BOOST_TEST(a->status == drover::module_status::succeeded);
  BOOST_TEST(a->value == json::value(41));
  const auto* b = reread->previous("b");
  BOOST_TEST_REQUIRE(b != nullptr);
  BOOST_TEST(b->status == drover::module_status::failed);

  pair.b_fails = false;
  const auto run = run_pipeline(make(), with_journal(reread));
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
  BOOST_TEST(pair.a_runs == 1);
  BOOST_TEST(result_of(run.report, "a").status == drover::module_status::cached);
  BOOST_TEST(result_of(run.report, "b").value == json::value(42));
  BOOST_TEST(store->lines().starts_with(first_run));  // appended after the first run's lines
}

BOOST_AUTO_TEST_CASE(inline_writes_append_to_the_store_on_the_recording_thread) {
  // A simulation's journal in its fake Redis: no writer thread, each record in the store as
  // soon as it is recorded, on the thread that runs the engine.
  auto store = std::make_shared<test_store>();
  drover::pipeline p;
  p.name = "inline";
  for (int i = 0; i < 20; ++i)
    p.add("m" + std::to_string(i), value_body(i));
  auto journal = drover::run_journal::open_store(store, {.inline_writes = true});
  const auto run = run_pipeline(std::move(p), with_journal(journal));
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
  BOOST_TEST((store->append_threads() == std::set<std::thread::id>{std::this_thread::get_id()}));
  const std::string lines = store->lines();
  BOOST_TEST(std::count(lines.begin(), lines.end(), '\n') == 22);  // run, 20 modules, end
  BOOST_TEST(!journal->failure());
}

BOOST_AUTO_TEST_CASE(a_torn_line_in_a_store_is_dropped_from_what_is_read_and_left_there) {
  auto store = std::make_shared<test_store>();
  const std::string lines =
      R"({"type":"run","format":1,"pipeline":"p","fingerprint":"x","epoch":3})"
      "\n"
      R"({"type":"module","id":"a","fingerprint":"f","status":"succeeded","value":7})"
      "\n"
      R"({"type":"mod)";
  store->set_lines(lines);
  auto journal = drover::run_journal::open_store(store, {.resume = true});
  BOOST_TEST(journal->dropped_torn_line());
  BOOST_TEST(journal->epoch() == 4u);
  BOOST_TEST_REQUIRE(journal->previous("a") != nullptr);
  BOOST_TEST(journal->previous("a")->value == json::value(7));
  BOOST_TEST(store->lines() == lines);
  // Without resume the content is ignored, not emptied: the caller gives a fresh store.
  auto fresh = drover::run_journal::open_store(store, {});
  BOOST_TEST(!fresh->resuming());
  BOOST_TEST(fresh->epoch() == 1u);
  BOOST_TEST(store->lines() == lines);
}

BOOST_AUTO_TEST_CASE(a_store_that_refuses_appends_fails_the_journal_without_hanging_the_run) {
  // Called directly: the waiter of a record the store refused is still released.
  {
    auto store = std::make_shared<test_store>();
    auto journal = drover::run_journal::open_store(store, {});
    drover::pipeline p;
    p.name = "refused";
    p.add("a", value_body(1));
    BOOST_TEST(!journal->begin_run(p, "fingerprint"));
    store->refuse = true;
    const auto seq =
        journal->append_module("a", "f", drover::module_status::succeeded, 1, json::value(1), "");
    auto released = std::make_shared<std::promise<void>>();  // kept alive by the writer's call
    journal->when_durable(seq, [released] { released->set_value(); });
    BOOST_TEST_REQUIRE((released->get_future().wait_for(10s) == std::future_status::ready));
    journal->end_run(drover::run_status::succeeded);
    const auto failure = journal->failure();
    BOOST_TEST_REQUIRE(failure.has_value());
    BOOST_TEST(*failure == "the test store refuses");
    BOOST_TEST(store->lines().find(R"("type":"module")") == std::string::npos);
  }
  // Through a run: a chain whose every link waits for its dependency's record completes, and
  // the report says the journal failed.
  for (const auto mode : {drover::durability::fsync, drover::durability::relaxed}) {
    auto store = std::make_shared<test_store>();
    store->refuse = true;
    drover::pipeline p;
    p.name = "chain";
    for (int i = 0; i < 10; ++i) {
      std::vector<std::string> deps;
      if (i > 0) deps.push_back("m" + std::to_string(i - 1));
      p.add("m" + std::to_string(i), value_body(i), deps);
    }
    auto journal = drover::run_journal::open_store(store, {.mode = mode});
    const auto run = run_pipeline(std::move(p), with_journal(journal));
    BOOST_TEST(run.report.status == drover::run_status::succeeded);
    BOOST_TEST(journal->failure().value_or("") == "the test store refuses");
    BOOST_TEST(std::any_of(run.report.notes.begin(), run.report.notes.end(),
                           [](const std::string& note) { return mentions(note, "refuses"); }));
    BOOST_TEST(store->lines().empty());
  }
}
