// scheduler_core: pools, not_in_parallel keys, resource claims and run_alone, as the core applies
// them through its constraint gate (constraint_gate.hpp): never more in flight than allowed,
// and a module parked behind another starts when that one's attempt ends.
#include <drover/detail/scheduler_core.hpp>

#define BOOST_TEST_MODULE core_constraints
#include "core_harness.hpp"

#include <map>
#include <set>

namespace {

using namespace drover::test;
using drover::module_status;
using drover::run_status;
using kind = action::kind;

core_settings capacity(std::size_t n) {
  core_settings s;
  s.local_workers = n;
  s.local_capacity = n;
  return s;
}

drover::module_constraints& constraints(drover::module_ref m) {
  return m.constraints();
}

/// Ends running attempts, oldest first, until the run is over, and checks after every step
/// that `allowed` holds for the set of running modules.
template <class Check>
void run_to_end(core_harness& h, Check allowed) {
  for (int steps = 0; !h.finished() && steps < 1000; ++steps) {
    std::set<std::string> running;
    for (const auto& a : h.running())
      running.insert(h.id(a.module));
    BOOST_TEST_REQUIRE(allowed(running));
    BOOST_TEST_REQUIRE(!h.running().empty());
    h.succeed(h.id(h.running().front().module));
  }
  BOOST_TEST(h.finished());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(core_constraints)

BOOST_AUTO_TEST_CASE(a_pool_never_has_more_attempts_than_slots) {
  drover::pipeline p;
  p.pools["network"] = 2;
  for (int k = 0; k < 6; ++k)
    constraints(p.add("fetch" + std::to_string(k), no_body())).pool = "network";
  p.add("free", no_body());
  core_harness h{std::move(p), capacity(8)};
  h.start();
  // Two take the pool, the one without a pool goes beside them; the rest wait in the gate.
  BOOST_TEST(h.dispatched() == (ids{"fetch0", "fetch1", "free"}));
  h.succeed("fetch1");
  BOOST_TEST(h.dispatched() == ids{"fetch2"});
  run_to_end(h, [](const std::set<std::string>& running) {
    return std::count_if(running.begin(), running.end(),
                         [](const std::string& id) { return id.starts_with("fetch"); }) <= 2;
  });
  BOOST_TEST(h.result() == run_status::succeeded);
}

BOOST_AUTO_TEST_CASE(pool_slots_count_per_attempt) {
  drover::pipeline p;
  p.pools["gpu"] = 3;
  auto& big = constraints(p.add("big", no_body()));
  big.pool = "gpu";
  big.pool_slots = 2;
  auto& big2 = constraints(p.add("big2", no_body()));
  big2.pool = "gpu";
  big2.pool_slots = 2;
  constraints(p.add("small", no_body())).pool = "gpu";
  core_settings s = capacity(8);
  s.order_by_critical_path = false;
  core_harness h{std::move(p), s};
  h.start();
  // big holds 2 of 3; big2 waits. small would fit, but does not overtake big2, which was first.
  BOOST_TEST(h.dispatched() == ids{"big"});
  h.succeed("big");
  BOOST_TEST(h.dispatched() == (ids{"big2", "small"}));
}

BOOST_AUTO_TEST_CASE(the_best_ordered_parked_module_starts_first) {
  drover::pipeline p;
  p.pools["one"] = 1;
  constraints(p.add("holder", no_body())).pool = "one";
  p.edit(p.size() - 1).priority(10);
  constraints(p.add("low", no_body())).pool = "one";
  auto high = p.add("high", no_body());
  high.priority(5);
  constraints(high).pool = "one";
  core_harness h{std::move(p), capacity(4)};
  h.start();
  BOOST_TEST(h.dispatched() == ids{"holder"});
  h.succeed("holder");
  BOOST_TEST(h.dispatched() == ids{"high"});
  h.succeed("high");
  BOOST_TEST(h.dispatched() == ids{"low"});
}

BOOST_AUTO_TEST_CASE(modules_sharing_a_key_run_one_at_a_time) {
  drover::pipeline p;
  for (const char* id : {"db1", "db2", "db3"})
    constraints(p.add(id, no_body())).not_in_parallel = {"database"};
  constraints(p.add("ui", no_body())).not_in_parallel = {"browser"};
  auto& both = constraints(p.add("both", no_body()));
  both.not_in_parallel = {"browser", "database"};
  core_harness h{std::move(p), capacity(8)};
  h.start();
  BOOST_TEST(h.dispatched() == (ids{"db1", "ui"}));
  run_to_end(h, [](const std::set<std::string>& running) {
    const int database = static_cast<int>(running.count("db1") + running.count("db2") +
                                          running.count("db3") + running.count("both"));
    const int browser = static_cast<int>(running.count("ui") + running.count("both"));
    return database <= 1 && browser <= 1;
  });
  BOOST_TEST(h.count(kind::dispatch) == 5u);
}

BOOST_AUTO_TEST_CASE(readers_share_a_claim_and_a_writer_has_it_alone) {
  drover::pipeline p;
  auto read = [](drover::module_ref m, const char* resource) {
    constraints(m).claims.push_back({resource, drover::claim_mode::read});
  };
  auto write = [](drover::module_ref m, const char* resource) {
    constraints(m).claims.push_back({resource, drover::claim_mode::write});
  };
  read(p.add("reader1", no_body()), "db/users");
  read(p.add("reader2", no_body()), "db/users");
  write(p.add("migrate", no_body()), "db/*");
  read(p.add("reader3", no_body()), "db/users");
  write(p.add("other", no_body()), "cache/keys");
  core_settings s = capacity(8);
  s.order_by_critical_path = false;
  core_harness h{std::move(p), s};
  h.start();
  // The writer waits for both readers; the reader after it does not overtake it.
  BOOST_TEST(h.dispatched() == (ids{"reader1", "reader2", "other"}));
  h.succeed("reader1");
  BOOST_TEST(h.dispatched().empty());
  h.succeed("reader2");
  BOOST_TEST(h.dispatched() == ids{"migrate"});
  h.succeed("migrate");
  BOOST_TEST(h.dispatched() == ids{"reader3"});
}

BOOST_AUTO_TEST_CASE(run_alone_runs_with_nothing_beside_it) {
  drover::pipeline p;
  p.add("a", no_body());
  p.add("b", no_body());
  constraints(p.add("alone", no_body())).run_alone = true;
  p.add("c", no_body());
  p.add("d", no_body());
  core_settings s = capacity(8);
  s.order_by_critical_path = false;
  core_harness h{std::move(p), s};
  h.start();
  BOOST_TEST(h.dispatched() == (ids{"a", "b"}));
  run_to_end(h, [](const std::set<std::string>& running) {
    return running.count("alone") == 0 || running.size() == 1;
  });
  const auto order = h.named_by(kind::dispatch);
  BOOST_TEST(order == (ids{"a", "b", "alone", "c", "d"}));
}

BOOST_AUTO_TEST_CASE(an_attempt_in_backoff_holds_nothing) {
  drover::pipeline p;
  p.pools["one"] = 1;
  auto flaky = p.add("flaky", no_body());
  flaky.retries(1);
  constraints(flaky).pool = "one";
  constraints(p.add("other", no_body())).pool = "one";
  core_settings s = capacity(4);
  s.order_by_critical_path = false;
  core_harness h{std::move(p), s};
  h.start();
  BOOST_TEST(h.dispatched() == ids{"flaky"});
  h.fail("flaky");
  BOOST_TEST(h.dispatched() == ids{"other"});
  h.advance(1h);  // the retry is ready, but the pool is taken
  BOOST_TEST(h.dispatched().empty());
  h.succeed("other");
  BOOST_TEST(h.dispatched() == ids{"flaky"});
}

BOOST_AUTO_TEST_CASE(a_cancel_ends_the_modules_parked_in_the_gate) {
  drover::pipeline p;
  p.pools["one"] = 1;
  for (const char* id : {"first", "second", "third"})
    constraints(p.add(id, no_body())).pool = "one";
  core_settings s = capacity(4);
  s.order_by_critical_path = false;
  core_harness h{std::move(p), s};
  h.start();
  BOOST_TEST(h.dispatched() == ids{"first"});
  h.cancel();
  BOOST_TEST(h.status("second") == module_status::cancelled);
  BOOST_TEST(h.status("third") == module_status::cancelled);
  h.end("first", module_status::cancelled);
  BOOST_TEST(h.dispatched().empty());
  BOOST_TEST(h.finished());
  BOOST_TEST(h.result() == run_status::cancelled);
}

BOOST_AUTO_TEST_CASE(a_gated_module_waiting_for_a_worker_is_cancelled_by_a_stop) {
  // When "wide" ends, "narrow1" and "narrow2" both pass the gate, but one worker is busy with
  // "other": "narrow2" waits for a worker, holding its pool slot. A cancel must end it there,
  // not hand it out once "other" ends.
  drover::pipeline p;
  p.pools["two"] = 2;
  auto& wide = constraints(p.add("wide", no_body()));
  wide.pool = "two";
  wide.pool_slots = 2;
  constraints(p.add("narrow1", no_body())).pool = "two";
  constraints(p.add("narrow2", no_body())).pool = "two";
  p.add("other", no_body());
  core_settings s = capacity(2);
  s.order_by_critical_path = false;
  core_harness h{std::move(p), s};
  h.start();
  BOOST_TEST(h.dispatched() == (ids{"wide", "other"}));
  h.succeed("wide");
  BOOST_TEST(h.dispatched() == ids{"narrow1"});
  h.cancel();
  BOOST_TEST(h.status("narrow2") == module_status::cancelled);
  BOOST_TEST(h.reason("narrow2") == "run cancelled");
  h.end("other", module_status::cancelled);
  BOOST_TEST(h.dispatched().empty());
  h.end("narrow1", module_status::cancelled);
  BOOST_TEST(h.finished());
  BOOST_TEST(h.result() == run_status::cancelled);
}

BOOST_AUTO_TEST_CASE(the_plan_numbers_pools_keys_and_resources_once) {
  drover::pipeline p;
  p.pools["cpu"] = 4;
  p.pools["net"] = 1;
  auto& a = constraints(p.add("a", no_body()));
  a.pool = "net";
  a.claims = {{"db/users", drover::claim_mode::write}, {"cache", drover::claim_mode::read}};
  auto& b = constraints(p.add("b", no_body()));
  b.not_in_parallel = {"deploy", "deploy", "lock"};
  b.claims = {{"cache", drover::claim_mode::write}};
  p.add("plain", no_body());
  constraints(p.add("labels_only", no_body())).required_capabilities = {"gpu"};
  auto& g = constraints(p.add("glob", no_body()));
  g.claims = {{"db/*", drover::claim_mode::read}};
  drover::prepare_result prepared = drover::prepare(std::move(p));
  BOOST_TEST_REQUIRE(prepared.ok());
  const auto& t = prepared.plan->constraint_table();
  const auto index_of = [&](std::string_view id) { return *prepared.plan->find(id); };

  BOOST_TEST(t.pool_capacity == (std::vector<std::uint32_t>{4, 1}));  // in name order
  BOOST_TEST(t.key_count == 2u);
  BOOST_TEST(t.literal_count == 2u);  // db/users and cache, each once
  BOOST_TEST(t.needs_for(index_of("plain")) == nullptr);
  BOOST_TEST(t.needs_for(index_of("labels_only")) == nullptr);  // routing is not the gate's

  const auto* na = t.needs_for(index_of("a"));
  BOOST_TEST_REQUIRE(na != nullptr);
  BOOST_TEST(na->pool == 1u);
  BOOST_TEST(na->slots == 1u);
  const auto ca = t.claims(*na);
  BOOST_TEST_REQUIRE(ca.size() == 2u);
  BOOST_TEST(ca[0].write);
  BOOST_TEST(!ca[1].write);

  const auto* nb = t.needs_for(index_of("b"));
  BOOST_TEST_REQUIRE(nb != nullptr);
  BOOST_TEST(t.keys(*nb).size() == 2u);  // "deploy" given twice counts once
  BOOST_TEST(nb->pool == drover::detail::constraint_table::none);
  const auto cb = t.claims(*nb);
  BOOST_TEST_REQUIRE(cb.size() == 1u);
  BOOST_TEST(cb[0].resource == ca[1].resource);  // the same text, the same number
  BOOST_TEST(cb[0].resource != ca[0].resource);

  // With a glob in the plan, claims keep their texts for comparing by pattern.
  const auto cg = t.claims(*t.needs_for(index_of("glob")));
  BOOST_TEST_REQUIRE(cg.size() == 1u);
  BOOST_TEST(!cg[0].literal);
  BOOST_TEST(t.has_globs());
  BOOST_TEST(t.text(cg[0]) == "db/*");
  BOOST_TEST(t.text(ca[0]) == "db/users");
  BOOST_TEST(t.text(cb[0]) == "cache");
}

BOOST_AUTO_TEST_CASE(many_distinct_claims_get_distinct_numbers_and_a_shared_one_one) {
  // The numbering table's probing and growth on many distinct texts, plus one shared by all.
  drover::pipeline p;
  constexpr int n = 100000;
  for (int k = 0; k < n; ++k) {
    auto& c = constraints(p.add("m" + std::to_string(k), no_body()));
    c.claims = {{"out/" + std::to_string(k), drover::claim_mode::write},
                {"shared", drover::claim_mode::read}};
  }
  drover::prepare_result prepared = drover::prepare(std::move(p));
  BOOST_TEST_REQUIRE(prepared.ok());
  const auto& t = prepared.plan->constraint_table();
  BOOST_TEST(t.literal_count == static_cast<std::uint32_t>(n + 1));
  BOOST_TEST(!t.has_globs());
  std::vector<bool> seen(n + 1, false);
  std::uint32_t shared = drover::detail::constraint_table::none;
  for (int k = 0; k < n; ++k) {
    const auto c = t.claims(*t.needs_for(static_cast<std::uint32_t>(k)));
    BOOST_TEST_REQUIRE(c.size() == 2u);
    BOOST_TEST_REQUIRE(!seen[c[0].resource]);
    seen[c[0].resource] = true;
    if (k == 0) shared = c[1].resource;
    BOOST_TEST_REQUIRE(c[1].resource == shared);
  }
}

BOOST_AUTO_TEST_SUITE_END()
