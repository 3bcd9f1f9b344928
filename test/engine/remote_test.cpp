// Remote workers through worker_hub, with in-process fakes standing in for the transport:
// dispatch with credits, dependency results sent once per worker, reassignment of a lost
// worker's attempts, poison, fencing of stale results, capability routing and timeouts,
// pin_local, cancellation and constraints across local and remote workers.

#include <drover/engine.hpp>
#include <drover/journal.hpp>

#include <unistd.h>

#include <filesystem>

#define BOOST_TEST_MODULE remote
#include "test_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <map>
#include <memory>
#include <set>

namespace {

using namespace drover::test;
using drover::assignment;
using drover::remote_completion;
using drover::worker_hub;

struct seen_assignment {
  std::string id;
  std::uint32_t attempt;
  std::vector<std::string> new_results;
  std::map<std::string, json::value> values;  // every dependency value it was sent
};

/// Shared across fakes: how many attempts of modules in `counted` run at once anywhere.
struct overlap_counter {
  std::set<std::string> counted;
  int now = 0, most = 0;
  void enter(const std::string& id) {
    if (counted.count(id)) most = std::max(most, ++now);
  }
  void leave(const std::string& id) {
    if (counted.count(id)) --now;
  }
};

/// A remote worker that completes each attempt after `delay` with the value {"id": ...} and
/// the sum of its dependencies' "n" fields plus one. `silent` ones never complete.
class fake_remote : public drover::remote_worker, public std::enable_shared_from_this<fake_remote> {
 public:
  fake_remote(asio::io_context& io, std::shared_ptr<worker_hub> hub, std::string name,
              milliseconds delay = 2ms)
      : io_(io), hub_(std::move(hub)), name_(std::move(name)), delay_(delay) {}

  void join(std::vector<std::string> capabilities = {}, std::uint32_t slots = 2) {
    slots_ = slots;
    id_ = hub_->attach(shared_from_this(), name_, std::move(capabilities), slots);
  }
  void leave(std::string reason = "connection closed") { hub_->detach(id_, std::move(reason)); }

  void assign(const assignment& a) override {
    seen_assignment seen{std::string(a.id), a.attempt, {}, {}};
    for (const auto& r : a.new_results) {
      seen.new_results.emplace_back(r.id);
      cache_[std::string(r.id)] = *r.value;
    }
    std::int64_t n = 1;
    for (auto dep : a.deps) {
      auto it = cache_.find(std::string(dep));
      BOOST_TEST((it != cache_.end()), name_ << " was never sent the result of " << dep);
      if (it == cache_.end()) continue;
      seen.values[std::string(dep)] = it->second;
      n += it->second.as_object().at("n").as_int64();
    }
    assignments.push_back(seen);
    running_.insert({a.module, a.attempt});
    most_running = std::max(most_running, static_cast<int>(running_.size()));
    BOOST_TEST(running_.size() <= slots_, name_ << " got more attempts than its slots");
    if (overlaps) overlaps->enter(seen.id);
    if (silent || hang_on.count(seen.id)) return;
    auto timer = std::make_shared<asio::steady_timer>(io_, delay_);
    timer->async_wait([self = shared_from_this(), timer, module = a.module, epoch = a.epoch,
                       attempt = a.attempt, id = seen.id, n](boost::system::error_code) {
      if (!self->running_.erase({module, attempt})) return;  // cancelled meanwhile
      if (self->overlaps) self->overlaps->leave(id);
      remote_completion c;
      c.module = module;
      c.epoch = epoch;
      c.attempt = attempt;
      c.status = drover::module_status::succeeded;
      c.value = json::object{{"id", id}, {"n", n}};
      if (self->give_back.count(id)) {
        // As a worker that is shutting down may: cancelled, though nobody asked.
        c.status = drover::module_status::cancelled;
        c.value = nullptr;
        c.error = "worker shutting down";
        self->given_back_at.push_back(self->assignments.size());
      }
      self->hub_->complete(self->id_, c);
      if (self->duplicate_results) self->hub_->complete(self->id_, c);
    });
  }

  void cancel(std::uint32_t module, std::string_view id, std::uint32_t attempt,
              std::string_view reason) override {
    cancelled.emplace_back(id);
    cancel_reasons.emplace_back(reason);
    if (ignore_cancels) return;  // hung for good: not even a cancelled result
    if (!running_.erase({module, attempt})) return;
    if (overlaps) overlaps->leave(std::string(id));
    remote_completion c;
    c.module = module;
    c.epoch = hub_->config().epoch;
    c.attempt = attempt;
    c.status = drover::module_status::cancelled;
    c.error = "cancelled";
    hub_->complete(id_, c);
  }

  void rejected(std::string_view id, std::uint32_t attempt, std::string_view code,
                std::string_view) override {
    rejections.push_back(std::string(code) + ":" + std::string(id) + "#" + std::to_string(attempt));
  }

  void run_finished(std::string_view) override { finished = true; }
  void drain(std::string_view reason) override {
    drains.emplace_back(reason);
    assignments_when_drained.push_back(assignments.size());
  }

  worker_hub::worker_id id() const { return id_; }

  std::vector<seen_assignment> assignments;
  std::vector<std::string> cancelled, cancel_reasons, rejections, drains;
  std::vector<std::size_t> assignments_when_drained;
  std::set<std::string> give_back;         ///< modules it answers cancelled without being asked
  std::vector<std::size_t> given_back_at;  ///< assignments.size() at each give-back
  int most_running = 0;
  bool finished = false;
  bool silent = false;
  std::set<std::string> hang_on;  ///< modules it never completes (it still answers a cancel)
  bool ignore_cancels = false;
  bool duplicate_results = false;
  overlap_counter* overlaps = nullptr;

 private:
  asio::io_context& io_;
  std::shared_ptr<worker_hub> hub_;
  std::string name_;
  milliseconds delay_;
  std::uint32_t slots_ = 1;
  worker_hub::worker_id id_ = 0;
  std::set<std::pair<std::uint32_t, std::uint32_t>> running_;
  std::map<std::string, json::value> cache_;
};

/// A module whose kind only a remote worker resolves: in-process it has no body, so the
/// tests give it one that fails loudly if a local worker ever runs it.
drover::module_ref add_remote_module(drover::pipeline& p, std::string id,
                                     std::vector<std::string> deps = {}) {
  auto m = p.add(std::move(id), fail_body("ran on a local worker"), std::move(deps));
  m.kind("noop");
  return m;
}

/// A diamond-rich DAG: m0; m1..m(k) depend on m0; every later module on the two before it.
drover::pipeline layered(int size) {
  drover::pipeline p;
  p.name = "layered";
  for (int i = 0; i < size; ++i) {
    std::vector<std::string> deps;
    if (i > 0) deps.push_back("m" + std::to_string(i - 1));
    if (i > 1) deps.push_back("m" + std::to_string(i / 2));
    add_remote_module(p, "m" + std::to_string(i), deps);
  }
  return p;
}

struct remote_run {
  asio::io_context io;
  std::shared_ptr<worker_hub> hub;
  drover::engine engine{io.get_executor()};
  std::optional<drover::run_report> report;
  steady::time_point started;
  milliseconds elapsed{0};

  explicit remote_run(worker_hub::settings settings = {})
      : hub(std::make_shared<worker_hub>(settings)) {}

  std::shared_ptr<fake_remote> worker(std::string name, milliseconds delay = 2ms) {
    return std::make_shared<fake_remote>(io, hub, std::move(name), delay);
  }

  void start(drover::pipeline p, drover::run_options options = {}) {
    options.remote = hub;
    started = steady::now();
    engine.async_run(std::move(p), std::move(options), [this](drover::run_report r) {
      elapsed = to_ms(steady::now() - started);
      report = std::move(r);
    });
  }

  /// Runs until the run completes or `limit` passes (a failure, never a hang).
  const drover::run_report& finish(milliseconds limit = 20s) {
    asio::steady_timer guard{io, limit};
    guard.async_wait([this](boost::system::error_code ec) {
      if (!ec) io.stop();
    });
    while (!report && !io.stopped())
      io.run_one();
    guard.cancel();
    io.poll();
    BOOST_REQUIRE_MESSAGE(report.has_value(), "the run did not complete within the limit");
    return *report;
  }

  void after(milliseconds d, std::function<void()> f) {
    auto timer = std::make_shared<asio::steady_timer>(io, d);
    timer->async_wait([timer, f = std::move(f)](boost::system::error_code) { f(); });
  }
};

drover::run_options remote_only() {
  drover::run_options options;
  options.workers = 0;
  return options;
}

BOOST_AUTO_TEST_CASE(remote_workers_run_everything_within_their_slots) {
  remote_run run;
  auto a = run.worker("remote-a");
  auto b = run.worker("remote-b");
  a->join({}, 2);
  b->join({}, 3);
  run.start(layered(60), remote_only());
  const auto& report = run.finish();

  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_TEST(report.count(drover::module_status::succeeded) == 60u);
  BOOST_TEST(a->assignments.size() + b->assignments.size() == 60u);
  BOOST_TEST(!a->assignments.empty());
  BOOST_TEST(!b->assignments.empty());
  BOOST_TEST(a->most_running <= 2);
  BOOST_TEST(b->most_running <= 3);
  BOOST_TEST(a->finished);
  BOOST_TEST(b->finished);
  // m(i) = 1 + m(i-1) + m(i/2): the values travelled from worker to worker through the run.
  std::vector<std::int64_t> expected(60);
  for (int i = 0; i < 60; ++i) {
    // m2 lists m1 twice; the engine deduplicates dependencies.
    expected[i] = 1 + (i > 0 ? expected[i - 1] : 0) + (i > 2 ? expected[i / 2] : 0);
  }
  for (int i = 0; i < 60; ++i) {
    const auto& r = result_of(report, "m" + std::to_string(i));
    BOOST_TEST(r.value.as_object().at("n").as_int64() == expected[i], "m" << i);
    BOOST_TEST(r.attempts == 1u);
    BOOST_TEST((report.worker_name(r) == "remote-a" || report.worker_name(r) == "remote-b"));
  }
  // A dependency result crosses to a given worker at most once.
  for (const auto* w : {a.get(), b.get()}) {
    std::multiset<std::string> sent;
    for (const auto& s : w->assignments)
      sent.insert(s.new_results.begin(), s.new_results.end());
    for (const auto& id : sent)
      BOOST_TEST(sent.count(id) == 1u, id << " was sent twice to the same worker");
  }
  BOOST_TEST(report.remote.workers_attached == 2u);
  BOOST_TEST(report.remote.dependency_results_sent > 0u);
}

BOOST_AUTO_TEST_CASE(a_worker_that_joins_late_gets_work_at_once) {
  remote_run run;
  auto late = run.worker("late");
  run.start(layered(10), remote_only());
  run.after(150ms, [&] { late->join(); });
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_TEST(late->assignments.size() == 10u);
  BOOST_TEST(run.elapsed >= 150ms);
}

BOOST_AUTO_TEST_CASE(a_lost_workers_attempts_are_reassigned_with_the_next_attempt) {
  remote_run run;
  auto lost = run.worker("lost");
  auto good = run.worker("good");
  lost->silent = true;
  lost->join({}, 4);
  drover::pipeline p;
  for (int i = 0; i < 4; ++i)
    add_remote_module(p, "m" + std::to_string(i));  // retries stay 0: losses are not failures
  run.start(std::move(p), remote_only());
  run.after(100ms, [&] {
    good->join({}, 4);
    lost->leave("heartbeats stopped");
  });
  const auto& report = run.finish();

  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_TEST(lost->assignments.size() == 4u);
  BOOST_TEST(good->assignments.size() == 4u);
  for (const auto& s : good->assignments)
    BOOST_TEST(s.attempt == 2u, s.id);
  BOOST_TEST(report.remote.workers_lost == 1u);
  BOOST_TEST(report.remote.reassigned == 4u);
  for (const auto& m : report.modules) {
    BOOST_TEST(m.attempts == 2u);
    BOOST_TEST(report.worker_name(m) == "good");
  }
}

BOOST_AUTO_TEST_CASE(a_module_that_loses_too_many_workers_fails_as_poison) {
  worker_hub::settings settings;
  settings.max_worker_losses = 2;
  remote_run run{settings};
  auto first = run.worker("first");
  auto second = run.worker("second");
  first->silent = second->silent = true;
  drover::pipeline p;
  add_remote_module(p, "poison");
  run.start(std::move(p), remote_only());
  first->join();
  run.after(50ms, [&] {
    second->join();
    first->leave("killed");
  });
  run.after(100ms, [&] { second->leave("killed again"); });
  const auto& report = run.finish();
  const auto& r = result_of(report, "poison");
  BOOST_TEST(r.status == drover::module_status::failed);
  BOOST_TEST(mentions(r.reason, "poison"), r.reason);
  BOOST_TEST(mentions(r.reason, "second"), r.reason);
  BOOST_TEST(report.remote.workers_lost == 2u);
}

// A worker that heartbeats (it stays attached) but never answers: an attempt with a timeout
// ends timed_out once timeout + overdue_grace passed, and the module's retries apply.
BOOST_AUTO_TEST_CASE(an_overdue_remote_attempt_is_cancelled_and_times_out) {
  worker_hub::settings settings;
  settings.overdue_grace = 100ms;
  remote_run run{settings};
  auto hung = run.worker("hung");
  hung->silent = true;
  hung->ignore_cancels = true;  // its slot stays taken for good
  auto good = run.worker("good");
  drover::pipeline p;
  auto slow = add_remote_module(p, "slow");
  slow.timeout(50ms);
  slow.retries(1);
  slow.backoff(drover::backoff_policy{1ms, 1.0, 1ms, 0.0});
  hung->join({}, 1);
  run.start(std::move(p), remote_only());
  run.after(60ms, [&] { good->join({}, 1); });
  const auto& report = run.finish();

  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_TEST(run.elapsed >= 150ms);
  const auto& r = result_of(report, "slow");
  BOOST_TEST(r.attempts == 2u);
  BOOST_TEST(report.worker_name(r) == "good");
  BOOST_REQUIRE(hung->cancelled.size() == 1u);
  BOOST_TEST(hung->cancelled.front() == "slow");
  BOOST_TEST(mentions(hung->cancel_reasons.front(),
                      "no result from worker hung within the timeout of 50 ms and 100 ms more"),
             hung->cancel_reasons.front());
  BOOST_REQUIRE(good->assignments.size() == 1u);
  BOOST_TEST(good->assignments.front().attempt == 2u);
  BOOST_TEST(report.remote.overdue == 1u);
  BOOST_TEST(report.remote.workers_lost == 0u);
}

BOOST_AUTO_TEST_CASE(an_overdue_attempt_without_retries_ends_timed_out_and_frees_its_slot_late) {
  worker_hub::settings settings;
  settings.overdue_grace = 50ms;
  remote_run run{settings};
  auto hung = run.worker("hung");
  hung->hang_on = {"first"};  // answers its cancel only, with a cancelled result
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  add_remote_module(p, "first").timeout(30ms);
  add_remote_module(p, "second").priority(-1);  // waits for the one slot
  hung->join({}, 1);
  run.start(std::move(p), remote_only());
  const auto& report = run.finish();

  const auto& first = result_of(report, "first");
  BOOST_TEST(first.status == drover::module_status::timed_out);
  BOOST_TEST(mentions(first.reason, "within the timeout of 30 ms and 50 ms more"), first.reason);
  // Only the cancelled answer freed the one slot for the second module, whose own attempt has
  // no timeout and is never cut short.
  BOOST_TEST(result_of(report, "second").status == drover::module_status::succeeded);
  BOOST_REQUIRE(hung->assignments.size() == 2u);
  BOOST_TEST(hung->assignments.back().id == "second");
  BOOST_TEST(hung->most_running == 1);
  BOOST_TEST(report.remote.overdue == 1u);
  // The late cancelled answer is stale: rejected and counted.
  BOOST_TEST(report.remote.rejected_results == 1u);
  BOOST_REQUIRE(hung->rejections.size() == 1u);
  BOOST_TEST(hung->rejections.front() == "stale_result:first#1");
}

BOOST_AUTO_TEST_CASE(stale_and_duplicate_results_are_rejected_and_counted) {
  remote_run run;
  auto w = run.worker("dup");
  w->duplicate_results = true;
  w->join({}, 1);
  drover::pipeline p;
  add_remote_module(p, "a");
  add_remote_module(p, "b", {"a"});
  run.start(std::move(p), remote_only());
  // A result for an attempt that was never assigned (attempt 7), sent before the real one.
  run.after(0ms, [&] {
    remote_completion c;
    c.module = 0;
    c.epoch = run.hub->config().epoch;
    c.attempt = 7;
    c.status = drover::module_status::failed;
    c.error = "from a worker presumed dead";
    run.hub->complete(w->id(), c);
  });
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_TEST(result_of(report, "a").attempts == 1u);
  // Attempt 7 and a's duplicate; b's duplicate arrives after the run is over and the hub
  // drops it.
  BOOST_TEST(report.remote.rejected_results == 2u);
  BOOST_REQUIRE(w->rejections.size() == 2u);
  BOOST_TEST(w->rejections[0].rfind("stale_result:a#7", 0) == 0u, w->rejections[0]);
  BOOST_TEST(w->rejections[1].rfind("duplicate_result:a#1", 0) == 0u, w->rejections[1]);
}

// A worker may answer `cancelled` for an attempt nobody cancelled (it is shutting down): the
// attempt goes elsewhere like a lost worker's, never fails the module or ends a fail_fast run,
// and the worker, taken to be leaving, is drained.
BOOST_AUTO_TEST_CASE(a_cancelled_result_nobody_asked_for_gives_the_attempt_back) {
  remote_run run;
  auto leaving = run.worker("leaving", 20ms);
  leaving->give_back = {"a"};
  auto staying = run.worker("staying");
  drover::pipeline p;  // fail_fast: a failure of `a` would end the run
  add_remote_module(p, "a");
  add_remote_module(p, "b");
  add_remote_module(p, "c", {"a", "b"});
  auto options = remote_only();
  std::vector<std::string> retrying;
  options.on_event = [&](const drover::event& e) {
    if (e.type == drover::event_type::module_reassigned) retrying.push_back(std::string(e.message));
  };
  leaving->join({}, 2);
  run.start(std::move(p), options);
  run.after(100ms, [&] { staying->join({}, 2); });
  const auto& report = run.finish();

  BOOST_TEST(report.status == drover::run_status::succeeded);
  const auto& a = result_of(report, "a");
  BOOST_TEST(a.status == drover::module_status::succeeded);
  BOOST_TEST(a.attempts == 2u);
  BOOST_TEST(report.worker_name(a) == "staying");
  BOOST_TEST(report.remote.reassigned == 1u);
  BOOST_TEST(report.remote.rejected_results == 0u);
  BOOST_REQUIRE(retrying.size() == 1u);
  BOOST_TEST(
      mentions(retrying.front(), "worker leaving gave the attempt back: worker shutting down"),
      retrying.front());
  // Drained when it gave `a` back: b, which it ran already, still counted; nothing new came.
  BOOST_REQUIRE(leaving->drains.size() == 1u);
  BOOST_TEST(leaving->drains.front() == "it gave back 'a' attempt 1");
  BOOST_REQUIRE(leaving->given_back_at.size() == 1u);
  BOOST_TEST(leaving->assignments.size() == leaving->given_back_at.front());
  BOOST_TEST(report.worker_name(result_of(report, "b")) == "leaving");
  BOOST_TEST(report.worker_name(result_of(report, "c")) == "staying");
  BOOST_TEST(staying->drains.empty());
}

BOOST_AUTO_TEST_CASE(a_module_given_back_too_often_fails_as_poison) {
  worker_hub::settings settings;
  settings.max_worker_losses = 2;
  remote_run run{settings};
  auto first = run.worker("first");
  auto second = run.worker("second");
  first->give_back = second->give_back = {"p"};
  drover::pipeline p;
  add_remote_module(p, "p");
  first->join({}, 1);
  second->join({}, 1);
  run.start(std::move(p), remote_only());
  const auto& report = run.finish();
  const auto& r = result_of(report, "p");
  BOOST_TEST(r.status == drover::module_status::failed);
  BOOST_TEST(mentions(r.reason,
                      "poison: 2 of its attempts ended with their worker lost or "
                      "giving it back (last: worker "),
             r.reason);
  BOOST_TEST(mentions(r.reason, "gave the attempt back"), r.reason);
  BOOST_TEST(first->assignments.size() == 1u);  // each got it once, then was drained
  BOOST_TEST(second->assignments.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_drained_worker_finishes_its_attempts_and_gets_nothing_more) {
  remote_run run;
  auto drained = run.worker("drained", 100ms);
  auto other = run.worker("other");
  drover::pipeline p;
  add_remote_module(p, "a");
  add_remote_module(p, "b");
  add_remote_module(p, "c");
  drained->join({}, 1);
  run.start(std::move(p), remote_only());
  run.after(30ms, [&] {
    BOOST_TEST(drained->assignments.size() == 1u);
    run.hub->drain(drained->id(), "maintenance");
    run.hub->drain(drained->id(), "twice");  // a second drain changes nothing
  });
  // No other worker yet: the drained one's free capacity must not count, so the rest wait.
  run.after(200ms, [&] {
    BOOST_TEST(drained->assignments.size() == 1u);
    drained->leave("drained");
    other->join({}, 1);
  });
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_REQUIRE(drained->drains.size() == 1u);
  BOOST_TEST(drained->drains.front() == "maintenance");
  BOOST_REQUIRE(drained->assignments.size() == 1u);
  const auto& first = result_of(report, drained->assignments.front().id);
  BOOST_TEST(report.worker_name(first) == "drained");  // its result counted
  BOOST_TEST(first.attempts == 1u);
  BOOST_TEST(other->assignments.size() == 2u);
  BOOST_TEST(report.remote.reassigned == 0u);  // it left with nothing unreported
}

BOOST_AUTO_TEST_CASE(a_drained_worker_that_leaves_early_has_its_attempts_reassigned) {
  remote_run run;
  auto drained = run.worker("drained");
  drained->silent = true;  // never reports its attempt
  auto other = run.worker("other");
  drover::pipeline p;
  add_remote_module(p, "a");
  drained->join({}, 1);
  run.start(std::move(p), remote_only());
  run.after(30ms, [&] {
    run.hub->drain(drained->id(), "maintenance");
    other->join({}, 1);
  });
  run.after(100ms, [&] { drained->leave("closed before reporting"); });
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::succeeded);
  const auto& a = result_of(report, "a");
  BOOST_TEST(a.attempts == 2u);
  BOOST_TEST(report.worker_name(a) == "other");
  BOOST_TEST(report.remote.reassigned == 1u);
}

BOOST_AUTO_TEST_CASE(results_the_transport_refused_are_answered_and_counted) {
  remote_run run;
  auto w = run.worker("w", 50ms);
  w->join({}, 1);
  drover::pipeline p;
  add_remote_module(p, "a");
  run.start(std::move(p), remote_only());
  run.after(0ms, [&] {
    run.hub->reject(w->id(), {"a", 3, "", ""});     // a module of the run, not assigned here
    run.hub->reject(w->id(), {"nope", 1, "", ""});  // no such module
    run.hub->reject(w->id(), {"a", 1, "duplicate_result", "a repeat"});
  });
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_TEST(report.remote.rejected_results == 3u);
  BOOST_TEST(w->rejections == (std::vector<std::string>{"stale_result:a#3", "unknown_module:nope#1",
                                                        "duplicate_result:a#1"}));
}

BOOST_AUTO_TEST_CASE(modules_go_only_to_workers_with_their_capabilities) {
  remote_run run;
  auto gpu = run.worker("gpu-box");
  auto plain = run.worker("plain");
  gpu->join({"GPU", "linux"}, 2);
  plain->join({"linux"}, 2);
  drover::pipeline p;
  for (int i = 0; i < 6; ++i) {
    add_remote_module(p, "train" + std::to_string(i)).constraints().required_capabilities = {"gpu"};
    add_remote_module(p, "lint" + std::to_string(i));
  }
  run.start(std::move(p), remote_only());
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::succeeded);
  for (const auto& s : plain->assignments)
    BOOST_TEST(s.id.rfind("train", 0) != 0u, s.id << " went to a worker without gpu");
  std::size_t trained = 0;
  for (const auto& s : gpu->assignments)
    trained += s.id.rfind("train", 0) == 0u;
  BOOST_TEST(trained == 6u);
}

BOOST_AUTO_TEST_CASE(a_module_no_connected_worker_can_run_fails_after_capability_timeout) {
  worker_hub::settings settings;
  settings.capability_timeout = 200ms;
  remote_run run{settings};
  auto w = run.worker("linux-only");
  w->join({"linux"});
  drover::pipeline p;
  add_remote_module(p, "win").constraints().required_capabilities = {"windows"};
  add_remote_module(p, "after", {"win"});
  add_remote_module(p, "other");
  drover::run_options options = remote_only();
  run.start(std::move(p), options);
  const auto& report = run.finish();
  const auto& win = result_of(report, "win");
  BOOST_TEST(win.status == drover::module_status::failed);
  BOOST_TEST(mentions(win.reason, "windows"), win.reason);
  BOOST_TEST(result_of(report, "after").status == drover::module_status::skipped);
  BOOST_TEST(run.elapsed >= 200ms);
}

BOOST_AUTO_TEST_CASE(a_remote_only_run_that_no_worker_joins_fails_after_capability_timeout) {
  worker_hub::settings settings;
  settings.capability_timeout = 200ms;
  remote_run run{settings};
  drover::pipeline p;
  add_remote_module(p, "nobody-runs-me");
  run.start(std::move(p), remote_only());
  const auto& report = run.finish(10s);
  const auto& r = result_of(report, "nobody-runs-me");
  BOOST_TEST(r.status == drover::module_status::failed);
  BOOST_TEST(mentions(r.reason, "no worker connected"), r.reason);
  BOOST_TEST(run.elapsed >= 200ms);
}

BOOST_AUTO_TEST_CASE(a_capable_worker_joining_in_time_stops_the_capability_clock) {
  worker_hub::settings settings;
  settings.capability_timeout = 2s;
  remote_run run{settings};
  auto win = run.worker("win-box");
  drover::pipeline p;
  add_remote_module(p, "win").constraints().required_capabilities = {"windows"};
  run.start(std::move(p), remote_only());
  run.after(100ms, [&] { win->join({"Windows"}); });
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_TEST(win->assignments.size() == 1u);
}

BOOST_AUTO_TEST_CASE(pin_local_modules_never_go_to_remote_workers) {
  remote_run run;
  auto w = run.worker("remote");
  w->join({}, 4);
  drover::pipeline p;
  for (int i = 0; i < 8; ++i) {
    auto local = p.add("local" + std::to_string(i), value_body(i));
    local.constraints().pin_local = true;
    p.add("any" + std::to_string(i), value_body(i)).kind("noop");
  }
  drover::run_options options;
  options.workers = 1;
  run.start(std::move(p), options);
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::succeeded, report.status);
  for (const auto& s : w->assignments)
    BOOST_TEST(s.id.rfind("local", 0) != 0u, s.id << " went to a remote worker");
}

BOOST_AUTO_TEST_CASE(pin_local_without_local_workers_fails_at_once) {
  remote_run run;
  auto w = run.worker("remote");
  w->join();
  drover::pipeline p;
  p.add("needs-master", value_body(1)).constraints().pin_local = true;
  run.start(std::move(p), remote_only());
  const auto& report = run.finish();
  const auto& r = result_of(report, "needs-master");
  BOOST_TEST(r.status == drover::module_status::failed);
  BOOST_TEST(mentions(r.reason, "pin_local"), r.reason);
  BOOST_TEST(w->assignments.empty());
}

BOOST_AUTO_TEST_CASE(cancelling_the_run_cancels_remote_attempts) {
  remote_run run;
  auto w = run.worker("slow", 30s);
  w->join({}, 2);
  drover::pipeline p;
  add_remote_module(p, "a");
  add_remote_module(p, "b");
  add_remote_module(p, "c", {"a"});
  asio::cancellation_signal cancel;
  drover::run_options options = remote_only();
  options.remote = run.hub;
  run.started = steady::now();
  run.engine.async_run(std::move(p), options,
                       asio::bind_cancellation_slot(cancel.slot(), [&](drover::run_report r) {
                         run.elapsed = to_ms(steady::now() - run.started);
                         run.report = std::move(r);
                       }));
  run.after(100ms, [&] { cancel.emit(asio::cancellation_type::terminal); });
  const auto& report = run.finish(10s);
  BOOST_TEST(report.status == drover::run_status::cancelled);
  BOOST_TEST(w->cancelled.size() == 2u);
  for (const auto& m : report.modules)
    BOOST_TEST(m.status == drover::module_status::cancelled, m.id);
  BOOST_TEST(run.elapsed < 5s);
}

BOOST_AUTO_TEST_CASE(pools_and_keys_hold_across_local_and_remote_workers) {
  remote_run run;
  overlap_counter overlaps;
  auto a = run.worker("a", 5ms);
  auto b = run.worker("b", 5ms);
  a->overlaps = b->overlaps = &overlaps;
  a->join({}, 4);
  b->join({}, 4);
  drover::pipeline p;
  p.pools["deploy"] = 1;
  for (int i = 0; i < 12; ++i) {
    const std::string id = "deploy" + std::to_string(i);
    add_remote_module(p, id).constraints().pool = "deploy";
    overlaps.counted.insert(id);
    add_remote_module(p, "free" + std::to_string(i));
  }
  run.start(std::move(p), remote_only());
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_TEST(overlaps.most == 1);
  BOOST_TEST(a->most_running + b->most_running > 2);  // the rest did run in parallel
}

BOOST_AUTO_TEST_CASE(a_worker_attaching_after_the_run_finished_is_told_at_once) {
  remote_run run;
  auto w = run.worker("early");
  w->join();
  drover::pipeline p;
  add_remote_module(p, "only");
  run.start(std::move(p), remote_only());
  run.finish();
  auto late = run.worker("too-late");
  late->join();
  BOOST_TEST(late->finished);
  BOOST_TEST(run.hub->finished());
}

BOOST_AUTO_TEST_CASE(an_invalid_pipeline_tells_attached_workers_the_run_is_over) {
  remote_run run;
  auto w = run.worker("early");
  w->join();
  drover::pipeline p;
  add_remote_module(p, "a", {"missing"});
  run.start(std::move(p), remote_only());
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::invalid);
  BOOST_TEST(w->finished);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_resumed_run_fences_off_results_of_the_earlier_epoch) {
  namespace fs = std::filesystem;
  const fs::path journal_file =
      fs::temp_directory_path() / ("drover-remote-epoch-" + std::to_string(::getpid()));
  fs::remove(journal_file);
  {
    // An earlier run recorded in the journal, killed or not: it took epoch 1.
    auto first = drover::run_journal::open(journal_file, {});
    BOOST_TEST(first->epoch() == 1u);
    drover::pipeline p;
    p.name = "fenced";
    p.add("warm", value_body(1));
    drover::run_options options;
    options.journal = first;
    BOOST_TEST(run_pipeline(std::move(p), options).report.status == drover::run_status::succeeded);
  }
  auto journal =
      drover::run_journal::open(journal_file, {.mode = drover::durability::fsync, .resume = true});
  BOOST_TEST(journal->epoch() == 2u);
  worker_hub::settings settings;
  settings.epoch = journal->epoch();
  remote_run run{settings};
  auto w = run.worker("w");
  w->join({}, 1);
  drover::pipeline p;
  p.name = "fenced";
  add_remote_module(p, "a");
  auto options = remote_only();
  options.journal = journal;
  run.start(std::move(p), options);
  run.after(0ms, [&] {
    // A worker of the earlier run answers for the same module and attempt.
    remote_completion c;
    c.module = 0;
    c.epoch = 1;
    c.attempt = 1;
    c.status = drover::module_status::failed;
    c.error = "from the earlier epoch";
    run.hub->complete(w->id(), c);
  });
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::succeeded);
  BOOST_TEST(report.epoch == 2u);
  BOOST_TEST(report.remote.rejected_results == 1u);
  fs::remove(journal_file);
}

BOOST_AUTO_TEST_CASE(a_hub_with_another_epoch_than_the_journal_is_refused) {
  namespace fs = std::filesystem;
  const fs::path journal_file =
      fs::temp_directory_path() / ("drover-remote-epoch-bad-" + std::to_string(::getpid()));
  fs::remove(journal_file);
  auto journal = drover::run_journal::open(journal_file, {});
  worker_hub::settings settings;
  settings.epoch = journal->epoch() + 5;
  remote_run run{settings};
  drover::pipeline p;
  add_remote_module(p, "a");
  auto options = remote_only();
  options.journal = journal;
  run.start(std::move(p), options);
  const auto& report = run.finish();
  BOOST_TEST(report.status == drover::run_status::invalid);
  BOOST_TEST_REQUIRE(report.problems.size() == 1u);
  BOOST_TEST(mentions(report.problems[0].message, "epoch"), report.problems[0].message);
  fs::remove(journal_file);
}
