#include <drover/engine.hpp>

#define BOOST_TEST_MODULE scheduler
#include "test_support.hpp"

#include <boost/json/value_from.hpp>

#include <map>
#include <random>
#include <set>

namespace {

using namespace drover::test;

/// A random DAG of `size` modules, declared in shuffled order; each module depends on a few
/// modules created before it. Returns the pipeline and every module's dependencies.
drover::pipeline random_dag(std::uint32_t seed, int size, probe* bodies) {
  std::mt19937 rng{seed};
  std::vector<std::vector<std::string>> deps(size);
  for (int i = 1; i < size; ++i) {
    std::uniform_int_distribution<int> pick{0, i - 1};
    const int count = std::uniform_int_distribution<int>{0, std::min(i, 3)}(rng);
    std::set<int> chosen;
    for (int k = 0; k < count; ++k)
      chosen.insert(pick(rng));
    for (int d : chosen)
      deps[i].push_back("m" + std::to_string(d));
  }
  std::vector<int> order(size);
  for (int i = 0; i < size; ++i)
    order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);

  drover::pipeline p;
  p.name = "dag-" + std::to_string(seed);
  for (int i : order) {
    const auto wait = milliseconds{std::uniform_int_distribution<int>{0, 3}(rng)};
    p.add("m" + std::to_string(i), wait_body(wait, i, bodies), deps[i]);
  }
  return p;
}

/// Checks from the probe's log that every module began after all its dependencies ended.
void expect_dependency_order(const drover::pipeline& p, const probe& bodies) {
  auto log = bodies.entries();
  std::map<std::string, std::size_t> began, ended;
  for (std::size_t i = 0; i < log.size(); ++i) {
    auto& slot = log[i].begin ? began : ended;
    BOOST_TEST(slot.count(log[i].module) == 0u, "module " << log[i].module << " ran twice");
    slot[log[i].module] = i;
  }
  for (const auto& m : p.specs()) {
    BOOST_TEST_CONTEXT("module " << m.id) {
      BOOST_REQUIRE(began.count(m.id) == 1u);
      BOOST_REQUIRE(ended.count(m.id) == 1u);
      for (const auto& dep : m.deps) {
        BOOST_TEST(ended.at(dep) < began.at(m.id), "began before dependency " << dep << " ended");
      }
    }
  }
}

asio::awaitable<json::value> combine_typed_results(drover::module_context& ctx) {
  auto numbers = ctx.result<std::vector<int>>("numbers");
  auto name = ctx.result<std::string>("name");
  auto sizes = ctx.result<std::map<std::string, int>>("sizes");
  int sum = 0;
  for (int n : numbers)
    sum += n;
  json::object out;
  out["sum"] = sum;
  out["greeting"] = "hello " + name;
  out["big"] = sizes.at("big");
  out["raw_matches"] = ctx.result("numbers") == json::value_from(numbers);
  co_return out;
}

asio::awaitable<json::value> describe_context(drover::module_context& ctx) {
  json::object out;
  out["id"] = std::string{ctx.id()};
  out["attempt"] = ctx.attempt();
  out["worker"] = std::string{ctx.worker()};
  out["params"] = ctx.params();
  const auto tags = ctx.spec().tags();
  out["tags"] = json::value_from(std::vector<std::string>(tags.begin(), tags.end()));
  out["log_dir"] = ctx.log_dir().string();
  out["has_executor"] = static_cast<bool>(ctx.get_executor());
  co_return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(scheduler)

BOOST_AUTO_TEST_CASE(respects_dependency_order_on_random_dags, *boost::unit_test::timeout(60)) {
  for (std::size_t workers : worker_counts) {
    for (std::size_t pool : {std::size_t{0}, std::size_t{2}}) {
      for (std::uint32_t seed : {1u, 2u, 3u}) {
        BOOST_TEST_CONTEXT("workers " << workers << ", pool threads " << pool << ", seed "
                                      << seed) {
          probe bodies;
          auto p = random_dag(seed, 30, &bodies);
          drover::run_options options;
          options.workers = workers;
          auto run = run_pipeline(p, options, drover::engine_options{pool});
          BOOST_TEST(run.report.status == drover::run_status::succeeded);
          BOOST_TEST(run.report.count(drover::module_status::succeeded) == 30u);
          expect_dependency_order(p, bodies);
          BOOST_TEST(bodies.max_running() <= static_cast<int>(workers));
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(concurrency_reaches_but_never_exceeds_workers,
                     *boost::unit_test::timeout(60)) {
  for (std::size_t workers : worker_counts) {
    for (std::size_t pool : {std::size_t{0}, std::size_t{3}}) {
      BOOST_TEST_CONTEXT("workers " << workers << ", pool threads " << pool) {
        probe bodies;
        drover::pipeline p;
        const std::size_t modules = 2 * workers + 2;
        for (std::size_t i = 0; i < modules; ++i) {
          p.add("m" + std::to_string(i), wait_body(40ms, nullptr, &bodies));
        }
        drover::run_options options;
        options.workers = workers;
        auto run = run_pipeline(std::move(p), options, drover::engine_options{pool});
        BOOST_TEST(run.report.status == drover::run_status::succeeded);
        BOOST_TEST(bodies.max_running() == static_cast<int>(workers));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(dependent_chain_runs_one_at_a_time, *boost::unit_test::timeout(30)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      probe bodies;
      drover::pipeline p;
      p.add("c1", wait_body(5ms, nullptr, &bodies));
      for (int i = 2; i <= 6; ++i) {
        p.add("c" + std::to_string(i), wait_body(5ms, nullptr, &bodies),
              {"c" + std::to_string(i - 1)});
      }
      auto run = run_with_workers(p, workers);
      BOOST_TEST(run.report.status == drover::run_status::succeeded);
      BOOST_TEST(bodies.max_running() == 1);
      BOOST_TEST(
          (bodies.begin_order() == std::vector<std::string>{"c1", "c2", "c3", "c4", "c5", "c6"}));
    }
  }
}

BOOST_AUTO_TEST_CASE(higher_priority_runs_first_among_ready_modules,
                     *boost::unit_test::timeout(20)) {
  probe bodies;
  drover::pipeline p;
  p.add("low", wait_body(2ms, nullptr, &bodies)).priority(1);
  p.add("high", wait_body(2ms, nullptr, &bodies)).priority(5);
  p.add("middle", wait_body(2ms, nullptr, &bodies)).priority(3);
  p.add("plain", wait_body(2ms, nullptr, &bodies));
  p.add("negative", wait_body(2ms, nullptr, &bodies)).priority(-2);
  auto run = run_with_workers(std::move(p), 1);
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
  BOOST_TEST((bodies.begin_order() ==
              std::vector<std::string>{"high", "middle", "low", "plain", "negative"}));
}

BOOST_AUTO_TEST_CASE(priority_orders_modules_released_together, *boost::unit_test::timeout(20)) {
  probe bodies;
  drover::pipeline p;
  p.add("gate", wait_body(5ms, nullptr, &bodies));
  p.add("x", wait_body(2ms, nullptr, &bodies), {"gate"}).priority(1);
  p.add("y", wait_body(2ms, nullptr, &bodies), {"gate"}).priority(7);
  p.add("z", wait_body(2ms, nullptr, &bodies), {"gate"}).priority(4);
  auto run = run_with_workers(std::move(p), 1);
  BOOST_TEST(run.report.status == drover::run_status::succeeded);
  BOOST_TEST((bodies.begin_order() == std::vector<std::string>{"gate", "y", "z", "x"}));
}

BOOST_AUTO_TEST_CASE(modules_released_together_start_in_file_order,
                     *boost::unit_test::timeout(20)) {
  // docs/scheduling.md: after priority (and critical path), first come, first served. Modules
  // released by one completion come in file order, with both orders (their critical paths tie).
  for (const auto order : {drover::ready_order::fifo, drover::ready_order::critical_path}) {
    BOOST_TEST_CONTEXT("order " << static_cast<int>(order)) {
      probe bodies;
      drover::pipeline p;
      p.add("gate", wait_body(2ms, nullptr, &bodies));
      for (const char* id : {"d1", "d2", "d3", "d4"})
        p.add(id, wait_body(1ms, nullptr, &bodies), {"gate"});
      drover::run_options options;
      options.order = order;
      auto run = run_with_workers(std::move(p), 1, options);
      BOOST_TEST(run.report.status == drover::run_status::succeeded);
      BOOST_TEST(
          (bodies.begin_order() == std::vector<std::string>{"gate", "d1", "d2", "d3", "d4"}));
    }
  }
}

BOOST_AUTO_TEST_CASE(bodies_read_typed_dependency_results, *boost::unit_test::timeout(20)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      p.add("numbers", value_body(json::array{1, 2, 3}));
      p.add("name", value_body("drover"));
      p.add("sizes", value_body(json::object{{"big", 100}, {"small", 1}}));
      p.add("combine", combine_typed_results, {"numbers", "name", "sizes"});
      auto run = run_with_workers(std::move(p), workers);
      BOOST_TEST(run.report.status == drover::run_status::succeeded);
      const auto& combined = result_of(run.report, "combine");
      BOOST_TEST(combined.status == drover::module_status::succeeded);
      BOOST_TEST(
          combined.value ==
              (json::value{
                  {"sum", 6}, {"greeting", "hello drover"}, {"big", 100}, {"raw_matches", true}}),
          json::serialize(combined.value));
    }
  }
}

BOOST_AUTO_TEST_CASE(reading_a_non_dependency_fails_the_module, *boost::unit_test::timeout(20)) {
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  p.add("elsewhere", value_body(7));
  p.add("reader", coroutine_body([](drover::module_context& ctx) -> asio::awaitable<json::value> {
          co_return ctx.result<int>("elsewhere");
        }));
  p.add("asker", coroutine_body([](drover::module_context& ctx) -> asio::awaitable<json::value> {
          try {
            (void)ctx.status_of("elsewhere");
          } catch (const std::invalid_argument&) {
            co_return "rejected";
          }
          co_return "allowed";
        }));
  auto run = run_with_workers(std::move(p), 2);
  const auto& reader = result_of(run.report, "reader");
  BOOST_TEST(reader.status == drover::module_status::failed);
  BOOST_TEST(mentions(reader.reason, "elsewhere"), reader.reason);
  BOOST_TEST(reader.value.is_null());
  BOOST_TEST(result_of(run.report, "asker").value == json::value("rejected"));
  BOOST_TEST(result_of(run.report, "elsewhere").status == drover::module_status::succeeded);
  BOOST_TEST(run.report.status == drover::run_status::failed);
}

BOOST_AUTO_TEST_CASE(report_carries_every_field, *boost::unit_test::timeout(20)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      drover::pipeline p;
      p.name = "report";
      p.mode = drover::execution_mode::keep_going;
      p.add("a", wait_body(20ms, 1));
      p.add("b", wait_body(1ms, "two"), {"a"});
      p.add("c", fail_body("c broke"));
      auto run = run_with_workers(std::move(p), workers);
      const auto& r = run.report;

      BOOST_TEST(r.pipeline == "report");
      BOOST_TEST(r.status == drover::run_status::failed);
      BOOST_TEST(r.problems.empty());
      BOOST_REQUIRE(r.modules.size() == 3u);
      BOOST_TEST(r.modules[0].id == "a");
      BOOST_TEST(r.modules[1].id == "b");
      BOOST_TEST(r.modules[2].id == "c");
      BOOST_TEST(!r.find("zzz").has_value());

      const auto& a = result_of(r, "a");
      const auto& b = result_of(r, "b");
      const auto& c = result_of(r, "c");
      BOOST_TEST(a.status == drover::module_status::succeeded);
      BOOST_TEST(a.value == json::value(1));
      BOOST_TEST(a.reason.empty());
      BOOST_TEST(b.value == json::value("two"));
      BOOST_TEST(c.status == drover::module_status::failed);
      BOOST_TEST(c.value.is_null());
      BOOST_TEST(mentions(c.reason, "c broke"), c.reason);

      for (const auto* m : {&a, &b, &c}) {
        BOOST_TEST_CONTEXT("module " << m->id) {
          BOOST_TEST(m->attempts == 1u);
          BOOST_REQUIRE(m->worker >= 0);
          BOOST_REQUIRE(static_cast<std::size_t>(m->worker) < r.workers.size());
          const auto name = std::string{r.worker_name(*m)};
          BOOST_TEST(name.rfind("local-", 0) == 0u, name);
          BOOST_TEST(std::stoul(name.substr(6)) < workers);
          BOOST_TEST((r.started_at <= m->started_at));
          BOOST_TEST((m->started_at <= m->finished_at));
          BOOST_TEST((m->finished_at <= r.finished_at));
        }
      }
      if (workers == 1) BOOST_TEST(r.worker_name(a) == "local-0");
      BOOST_TEST((a.finished_at <= b.started_at));
      BOOST_TEST(a.duration().count() >= 19);
      BOOST_TEST(r.duration().count() >= 20);

      BOOST_TEST(r.count(drover::module_status::succeeded) == 2u);
      BOOST_TEST(r.count(drover::module_status::failed) == 1u);
      std::size_t total = 0;
      for (std::size_t n : r.counts)
        total += n;
      BOOST_TEST(total == 3u);
    }
  }
}

BOOST_AUTO_TEST_CASE(context_describes_the_attempt, *boost::unit_test::timeout(20)) {
  drover::pipeline p;
  auto m = p.add("inspect", describe_context);
  m.kind("", json::object{{"level", 3}});
  m.tags({"fast", "unit"});
  drover::run_options options;
  options.workers = 1;
  options.log_dir = "/tmp/drover-engine-test-logs";
  auto run = run_pipeline(std::move(p), options);
  const auto& r = result_of(run.report, "inspect");
  BOOST_TEST(r.status == drover::module_status::succeeded);
  BOOST_TEST(r.value == (json::value{{"id", "inspect"},
                                     {"attempt", 1},
                                     {"worker", "local-0"},
                                     {"params", {{"level", 3}}},
                                     {"tags", {"fast", "unit"}},
                                     {"log_dir", "/tmp/drover-engine-test-logs"},
                                     {"has_executor", true}}),
             json::serialize(r.value));
}

BOOST_AUTO_TEST_CASE(wide_fan_out_and_fan_in, *boost::unit_test::timeout(30)) {
  for (std::size_t workers : worker_counts) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      probe bodies;
      drover::pipeline p;
      p.add("root", value_body(nullptr, &bodies));
      std::vector<std::string> middle;
      for (int i = 0; i < 200; ++i) {
        middle.push_back("w" + std::to_string(i));
        p.add(middle.back(), value_body(i, &bodies), {"root"});
      }
      p.add("sink",
            coroutine_body([middle](drover::module_context& ctx) -> asio::awaitable<json::value> {
              int sum = 0;
              for (const auto& id : middle)
                sum += ctx.result<int>(id);
              co_return sum;
            }),
            middle);
      auto run = run_with_workers(p, workers);
      BOOST_TEST(run.report.status == drover::run_status::succeeded);
      BOOST_TEST(result_of(run.report, "sink").value == json::value(199 * 200 / 2));
      BOOST_TEST(bodies.max_running() <= static_cast<int>(workers));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
