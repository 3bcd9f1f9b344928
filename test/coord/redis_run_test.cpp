// One run over several `drover run --coordinator` processes that meet only in a Redis the test
// starts (docs/redis.md): the roles, one summary everywhere, a killed master replaced by
// another instance that resumes from the journal in Redis, a killed worker, a Redis restart,
// capability routing, credentials, and keys that expire after the run.

#define BOOST_TEST_MODULE redis_run
#include "../app/app_test_support.hpp"
#include "../common/redis_server.hpp"
#include "../common/run_coroutine.hpp"

#include <drover/coord/redis.hpp>

#include <boost/json/parse.hpp>

#include <signal.h>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace coord = drover::coord;
namespace utf = boost::unit_test;
using namespace drover::app_test;
using drover::testing::redis_server;

/// `count` exec modules in `lanes` lanes (with 6: m6 after m0, ...), each appending its id to
/// ran.txt in `dir` and sleeping. `requires_of` gives some a capability.
std::string lanes_pipeline(const scratch_dir& dir, int count, double sleep_seconds,
                           const std::map<int, std::string>& requires_of = {}, int lanes = 6) {
  std::string text = R"({"name": "over-redis", "modules": [)";
  for (int i = 0; i < count; ++i) {
    const std::string id = "m" + std::to_string(i);
    text += (i ? "," : "") + std::string(R"({"id": ")") + id +
            R"(", "kind": "exec", "params": {"shell": "echo )" + id + " >> " +
            (dir / "ran.txt").string() + "; sleep " + std::to_string(sleep_seconds) + R"("})";
    if (i >= lanes) text += R"(, "deps": ["m)" + std::to_string(i - lanes) + R"("])";
    if (auto it = requires_of.find(i); it != requires_of.end()) {
      text += R"(, "requires": [")" + it->second + R"("])";
    }
    text += "}";
  }
  return text + "]}";
}

std::map<std::string, int> ran_counts(const scratch_dir& dir) {
  std::map<std::string, int> counts;
  std::istringstream in{read_file(dir / "ran.txt")};
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) ++counts[line];
  return counts;
}

std::size_t lines_ran(const scratch_dir& dir) {
  std::size_t n = 0;
  for (const auto& [id, times] : ran_counts(dir))
    n += static_cast<std::size_t>(times);
  return n;
}

/// One `drover run --coordinator` instance in its own directory under `dir`.
struct instance_args {
  int index = 0;
  int total = 3;
  std::string key;
  std::vector<std::string> extra;
};

std::unique_ptr<drover_process> start_instance(const scratch_dir& dir, const redis_server& redis,
                                               const instance_args& a) {
  const std::string name = "i" + std::to_string(a.index);
  fs::create_directories(dir / name);
  std::vector<std::string> args{"run",           "../pipeline.json",
                                "--coordinator", redis.url(),
                                "--run-key",     a.key,
                                "--instance",    std::to_string(a.index),
                                "--total",       std::to_string(a.total),
                                "--workers",     "2",
                                "--progress",    "never",
                                "--report",      "../report-" + name + ".json"};
  args.insert(args.end(), a.extra.begin(), a.extra.end());
  return std::make_unique<drover_process>(args, dir / name);
}

/// module id -> the worker that ran its accepted attempt, from a report.
std::map<std::string, std::string> workers_in(const fs::path& report_file) {
  std::map<std::string, std::string> out;
  const auto report = json::parse(read_file(report_file)).as_object();
  for (const auto& m : report.at("modules").as_array()) {
    const auto& module = m.as_object();
    const auto* worker = module.if_contains("worker");
    out[std::string(module.at("id").as_string())] =
        worker && worker->is_string() ? std::string(worker->as_string()) : "";
  }
  return out;
}

std::string status_of(const fs::path& report_file) {
  return std::string(json::parse(read_file(report_file)).as_object().at("status").as_string());
}

/// The keys of run `key` still in Redis.
std::size_t keys_left(const redis_server& redis, const std::string& key) {
  std::size_t n = 0;
  drover::testing::run_coroutine([&](asio::io_context& io) -> asio::awaitable<void> {
    coord::redis_connection c(io.get_executor());
    co_await c.connect(coord::parse_redis_url(redis.url()), redis.password());
    auto reply = co_await c.exec(coord::redis_command("KEYS", "drover:{" + key + "}:*"));
    n = reply.elements.size();
  });
  return n;
}

/// The journal stream of run `key`: every entry's lines, in order.
std::string journal_in_redis(const redis_server& redis, const std::string& key) {
  std::string text;
  drover::testing::run_coroutine([&](asio::io_context& io) -> asio::awaitable<void> {
    coord::redis_connection c(io.get_executor());
    co_await c.connect(coord::parse_redis_url(redis.url()), redis.password());
    auto reply =
        co_await c.exec(coord::redis_command("XRANGE", "drover:{" + key + "}:journal", "-", "+"));
    for (const auto& entry : reply.elements)
      text += entry.elements.at(1).elements.at(1).text;
  });
  return text;
}

/// The journal's records of the first master (those before the second `run` record) that say
/// a module succeeded.
std::set<std::string> journaled_by_first_master(const std::string& journal) {
  std::set<std::string> out;
  int runs = 0;
  std::istringstream lines{journal};
  for (std::string line; std::getline(lines, line);) {
    const auto record = json::parse(line).as_object();
    if (record.at("type").as_string() == "run") ++runs;
    if (runs == 1 && record.at("type").as_string() == "module" &&
        record.at("status").as_string() == "succeeded") {
      out.insert(std::string(record.at("id").as_string()));
    }
  }
  return out;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

BOOST_AUTO_TEST_CASE(instances_and_a_joining_worker_share_one_run_and_print_one_summary,
                     *utf::timeout(120)) {
  redis_server redis;
  scratch_dir dir;
  dir.write("pipeline.json", lanes_pipeline(dir, 48, 0.3, {}, 16));
  // One more worker joins with `drover worker`, before any master is there to answer it.
  fs::create_directories(dir / "w");
  drover_process joiner{{"worker", "--coordinator", redis.url(), "--run-key", "shared", "--slots",
                         "2", "--id", "joiner", "--keep-for", "2s"},
                        dir / "w"};
  std::vector<std::unique_ptr<drover_process>> instances;
  for (int i = 0; i < 4; ++i) {
    instances.push_back(start_instance(dir, redis, {i, 4, "shared", {"--keep-for", "2s"}}));
  }

  std::vector<drover_result> results;
  for (auto& p : instances)
    results.push_back(p->wait(90s));
  for (std::size_t i = 0; i < results.size(); ++i)
    BOOST_TEST(results[i].exit_code == 0, "instance " << i << ": " << results[i].err);
  const auto joined = joiner.wait(30s);
  BOOST_TEST(joined.exit_code == 0, joined.err);

  // Every instance prints the master's summary; the master printed events before it.
  for (std::size_t i = 1; i < results.size(); ++i) {
    BOOST_TEST(!results[i].out.empty());
    BOOST_TEST(results[0].out.ends_with(results[i].out), "instance " << i << " printed\n"
                                                                     << results[i].out
                                                                     << "\nthe master\n"
                                                                     << results[0].out);
  }
  BOOST_TEST(results[1].out.find("48 succeeded, 0 failed") != std::string::npos);

  // Each module ran exactly once, and every instance and the joining worker ran some.
  const auto counts = ran_counts(dir);
  BOOST_TEST(counts.size() == 48u);
  for (const auto& [id, times] : counts)
    BOOST_TEST(times == 1, id << " ran " << times << " times");
  std::set<std::string> ran_on;
  for (const auto& [id, worker] : workers_in(dir / "report-i1.json"))
    ran_on.insert(worker.starts_with("local-") ? "local" : worker);
  for (const std::string who : {"local", "instance-1", "instance-2", "instance-3", "joiner"})
    BOOST_TEST(ran_on.contains(who), who << " ran no module");
  BOOST_TEST(status_of(dir / "report-i3.json") == "succeeded");

  // Nothing is left behind.
  BOOST_TEST(eventually([&] { return keys_left(redis, "shared") == 0; }, 15s),
             keys_left(redis, "shared") << " keys of the run are still in Redis");
}

BOOST_AUTO_TEST_CASE(a_killed_master_is_replaced_and_nothing_it_journaled_runs_again,
                     *utf::timeout(240)) {
  for (const std::size_t kill_after : {4u, 15u}) {
    BOOST_TEST_CONTEXT("master killed after " << kill_after << " modules started") {
      redis_server redis;
      scratch_dir dir;
      dir.write("pipeline.json", lanes_pipeline(dir, 36, 0.2));
      const std::string key = "failover-" + std::to_string(kill_after);
      std::vector<std::unique_ptr<drover_process>> instances;
      for (int i = 0; i < 3; ++i) {
        instances.push_back(start_instance(
            dir, redis, {i, 3, key, {"--lease-ttl", "2s", "--journal", "copy.journal"}}));
      }
      BOOST_REQUIRE(eventually([&] { return lines_ran(dir) >= kill_after; }, 30s));
      instances[0]->send(SIGKILL);
      const auto killed_at = std::chrono::steady_clock::now();
      const auto one = instances[1]->wait(90s);
      const auto two = instances[2]->wait(90s);
      BOOST_TEST_MESSAGE("failover and the rest of the run took "
                         << std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - killed_at)
                                .count()
                         << " ms");
      BOOST_TEST(one.exit_code == 0, one.err);
      BOOST_TEST(two.exit_code == 0, two.err);
      // The new master printed events before the summary; the other instance, the summary.
      BOOST_TEST((one.out.ends_with(two.out) || two.out.ends_with(one.out)), one.out << two.out);
      const bool took_over = one.err.find("took the master lease") != std::string::npos ||
                             two.err.find("took the master lease") != std::string::npos;
      BOOST_TEST(took_over, one.err << two.err);
      BOOST_TEST(status_of(dir / "report-i1.json") == "succeeded");

      // What the first master journaled as succeeded ran once; every module ran.
      const auto counts = ran_counts(dir);
      BOOST_TEST(counts.size() == 36u);
      const std::string journal = journal_in_redis(redis, key);
      const auto journaled = journaled_by_first_master(journal);
      for (const auto& id : journaled)
        BOOST_TEST(counts.at(id) == 1, id << " was journaled, and ran " << counts.at(id));
      // At most the attempts under way at the kill ran twice: 3 instances x 2 slots.
      std::size_t again = 0;
      for (const auto& [id, times] : counts)
        again += static_cast<std::size_t>(times - 1);
      BOOST_TEST(again <= 6u);

      // The master that took over kept a copy of the whole journal: the first master's records
      // and its own. The other survivor was never master and wrote none.
      const bool one_took_over = fs::exists(dir / "i1" / "copy.journal");
      const fs::path copy = dir / (one_took_over ? "i1" : "i2") / "copy.journal";
      BOOST_TEST(!fs::exists(dir / (one_took_over ? "i2" : "i1") / "copy.journal"));
      BOOST_TEST_REQUIRE(fs::exists(copy));
      const std::string copied = read_file(copy);
      BOOST_TEST(copied == journal);
      BOOST_TEST(count_of(copied, R"("type":"run")") == 2u);
      BOOST_TEST(count_of(copied, R"("type":"end")") == 1u);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_killed_worker_instance_loses_no_module, *utf::timeout(120)) {
  redis_server redis;
  scratch_dir dir;
  dir.write("pipeline.json", lanes_pipeline(dir, 36, 0.2));
  std::vector<std::unique_ptr<drover_process>> instances;
  for (int i = 0; i < 3; ++i)
    instances.push_back(start_instance(dir, redis, {i, 3, "worker-dies", {}}));
  BOOST_REQUIRE(eventually([&] { return lines_ran(dir) >= 8; }, 30s));
  instances[1]->send(SIGKILL);
  const auto master = instances[0]->wait(90s);
  const auto other = instances[2]->wait(90s);
  BOOST_TEST(master.exit_code == 0, master.err);
  BOOST_TEST(other.exit_code == 0, other.err);
  BOOST_TEST(status_of(dir / "report-i0.json") == "succeeded");
  BOOST_TEST(ran_counts(dir).size() == 36u);
}

BOOST_AUTO_TEST_CASE(a_redis_restart_stalls_the_run_and_does_not_fail_it, *utf::timeout(120)) {
  redis_server redis;  // AOF on: the streams, the lease and the journal survive the restart
  scratch_dir dir;
  dir.write("pipeline.json", lanes_pipeline(dir, 36, 0.2));
  std::vector<std::unique_ptr<drover_process>> instances;
  for (int i = 0; i < 3; ++i)
    instances.push_back(start_instance(dir, redis, {i, 3, "restarted", {}}));
  BOOST_REQUIRE(eventually([&] { return lines_ran(dir) >= 8; }, 30s));
  redis.restart();
  for (auto& p : instances) {
    const auto r = p->wait(90s);
    BOOST_TEST(r.exit_code == 0, r.err);
    BOOST_TEST(r.out.find("36 succeeded, 0 failed") != std::string::npos, r.out);
  }
  BOOST_TEST(ran_counts(dir).size() == 36u);
}

// Redis goes away for good mid-run: every instance, master and workers alike, gives up once
// it has been out of reach for --coordinator-timeout, exits 1, and says which Redis.
BOOST_AUTO_TEST_CASE(a_redis_that_stays_away_fails_every_instance_after_the_coordinator_timeout,
                     *utf::timeout(120)) {
  redis_server redis;
  scratch_dir dir;
  dir.write("pipeline.json", lanes_pipeline(dir, 60, 0.3));
  std::vector<std::unique_ptr<drover_process>> instances;
  for (int i = 0; i < 3; ++i) {
    instances.push_back(start_instance(
        dir, redis, {i, 3, "gone", {"--coordinator-timeout", "3s", "--lease-ttl", "3s"}}));
  }
  BOOST_REQUIRE(eventually([&] { return lines_ran(dir) >= 6; }, 30s));
  const std::string url = redis.url();
  const auto stopped = std::chrono::steady_clock::now();
  redis.kill();
  for (auto& p : instances) {
    const auto r = p->wait(60s);
    BOOST_TEST(r.exit_code == 1, "exit " << r.exit_code << ": " << r.err);
    BOOST_TEST(r.err.find(url) != std::string::npos, r.err);
    BOOST_TEST(r.err.find("gave up on the coordinator, out of reach for --coordinator-timeout "
                          "(3.0s): Redis at " +
                          url) != std::string::npos,
               r.err);
    // Said once, not at every retry.
    BOOST_TEST(count_of(r.err, "workers cannot join for now") <= 2u, r.err);
  }
  // Each gave up after about the timeout (plus a lease's life for the master to notice), not
  // after the 60 s default.
  BOOST_TEST((std::chrono::steady_clock::now() - stopped < 45s));
  BOOST_TEST(lines_ran(dir) < 60u);
}

BOOST_AUTO_TEST_CASE(capabilities_route_modules_to_the_instance_that_offers_them,
                     *utf::timeout(120)) {
  redis_server redis;
  scratch_dir dir;
  dir.write("pipeline.json", lanes_pipeline(dir, 12, 0.05, {{3, "gpu"}, {7, "gpu"}}));
  std::vector<std::unique_ptr<drover_process>> instances;
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> extra;
    if (i == 2) extra = {"--capability", "gpu"};
    instances.push_back(start_instance(dir, redis, {i, 3, "labels", extra}));
  }
  for (auto& p : instances) {
    const auto r = p->wait(90s);
    BOOST_TEST(r.exit_code == 0, r.err);
  }
  const auto workers = workers_in(dir / "report-i0.json");
  BOOST_TEST(workers.at("m3") == "instance-2");
  BOOST_TEST(workers.at("m7") == "instance-2");
}

BOOST_AUTO_TEST_CASE(credentials_come_from_a_file_and_a_wrong_one_is_named, *utf::timeout(60)) {
  redis_server redis{"s3cret"};
  scratch_dir dir;
  dir.write("pipeline.json", lanes_pipeline(dir, 2, 0.0));
  dir.write("wrong.txt", "not-it\n");
  dir.write("right.txt", "s3cret\n");
  fs::create_directories(dir / "i0");
  const std::vector<std::string> base{"run",       "../pipeline.json", "--coordinator",
                                      redis.url(), "--run-key",        "auth"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return run_drover(args, dir / "i0");
  };
  const auto wrong = with({"--coordinator-password-file", "../wrong.txt"});
  BOOST_TEST(wrong.exit_code == 1);
  BOOST_TEST(wrong.err.find("credentials were refused") != std::string::npos, wrong.err);
  BOOST_TEST(wrong.err.find("not-it") == std::string::npos, "the password was printed");
  const auto none = with({});
  BOOST_TEST(none.exit_code == 1);
  BOOST_TEST(none.err.find("requires a password") != std::string::npos, none.err);
  const auto right = with({"--coordinator-password-file", "../right.txt"});
  BOOST_TEST(right.exit_code == 0, right.err);
}

BOOST_AUTO_TEST_CASE(bad_coordinator_arguments_are_usage_errors) {
  redis_server redis;
  scratch_dir dir;
  dir.write("pipeline.json", lanes_pipeline(dir, 1, 0.0));
  const std::map<std::string, std::string> no_ci{{"GITHUB_RUN_ID", ""}, {"CI_PIPELINE_ID", ""}};
  struct bad_case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<bad_case> cases{
      {{"--coordinator", redis.url(), "--run-key", "k", "--instance", "3", "--total", "3"},
       "--instance must be from 0 to 2"},
      {{"--coordinator", redis.url()}, "needs --run-key"},
      {{"--coordinator", "rediss://127.0.0.1:1", "--run-key", "k"}, "rediss"},
      {{"--coordinator", redis.url(), "--run-key", "a b"}, "--run-key"},
      {{"--run-key", "k"}, "--run-key needs --coordinator"},
      {{"--coordinator", redis.url(), "--run-key", "k", "--journal", "j", "--resume"},
       "always resumes from the journal in Redis"},
      {{"--coordinator", redis.url(), "--run-key", "k", "--listen", "127.0.0.1:0"},
       "workers join through Redis"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"run", "pipeline.json"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = run_drover(args, dir.path(), no_ci);
    BOOST_TEST(r.exit_code == 2, r.err);
    BOOST_TEST(r.err.find(c.says) != std::string::npos, r.err);
  }
  // The environment stands in for the flags.
  const auto from_env = run_drover({"run", "pipeline.json", "--progress", "never"}, dir.path(),
                                   {{"DROVER_COORDINATOR", redis.url()},
                                    {"DROVER_RUN_KEY", "env"},
                                    {"DROVER_INSTANCE", "0"},
                                    {"DROVER_TOTAL", "1"}});
  BOOST_TEST(from_env.exit_code == 0, from_env.err);
  BOOST_TEST(from_env.err.find("master of run env") != std::string::npos, from_env.err);
}

}  // namespace
