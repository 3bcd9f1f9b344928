// scheduler_core: remote workers. Placement by capability and its timeout, slots, retries that
// avoid the worker that failed, reassignment and poison after losses, overdue attempts, the
// fence on completions (docs/protocol.md section 5), drains and unconfirmed cancellations.
#include <drover/detail/scheduler_core.hpp>

#define BOOST_TEST_MODULE core_remote
#include "core_harness.hpp"

namespace {

using namespace drover::test;
using drover::event_type;
using drover::module_status;
using drover::run_status;
using kind = action::kind;

constexpr std::uint64_t epoch = 7;

/// Remote workers only (no local ones), with short timeouts to read the rules by.
core_settings remote_only() {
  core_settings s;
  s.remote = true;
  s.local_workers = 0;
  s.local_capacity = 0;
  s.epoch = epoch;
  s.capability_timeout = 5s;
  s.overdue_grace = 500ms;
  s.cancel_grace = 2s;
  return s;
}

drover::module_ref requires_labels(drover::module_ref m, std::vector<std::string> labels) {
  m.constraints().required_capabilities = std::move(labels);
  return m;
}

drover::backoff_policy no_wait() {
  drover::backoff_policy b;
  b.initial = 1ms;
  b.jitter = 0;
  return b;
}

/// The rejections the core asked for, as (module id, code) pairs.
std::vector<std::pair<std::string, rejection>> rejections(const core_harness& h) {
  std::vector<std::pair<std::string, rejection>> out;
  for (const action& a : h.actions_of(kind::reject)) {
    out.emplace_back(a.module < h.modules().size() ? h.id(a.module) : std::string("?"), a.code);
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(core_remote)

BOOST_AUTO_TEST_CASE(a_module_goes_only_to_a_worker_with_its_labels) {
  drover::pipeline p;
  requires_labels(p.add("win", no_body()), {"Windows"}).priority(5);
  p.add("a", no_body());
  p.add("b", no_body());
  core_harness h{std::move(p), remote_only()};
  const worker_number linux_worker = h.attach_worker("w1", {"linux"}, 1);
  h.start();
  // "win" waits in its group and does not hold up the others.
  BOOST_TEST(h.dispatched() == ids{"a"});
  BOOST_TEST(h.running_attempt("a").worker == linux_worker);
  BOOST_TEST(!h.running_attempt("a").local);
  h.succeed("a");
  BOOST_TEST(h.dispatched() == ids{"b"});
  const worker_number windows_worker = h.attach_worker("w2", {"WINDOWS", "docker"}, 1);
  BOOST_TEST(h.dispatched() == ids{"win"});
  BOOST_TEST(h.running_attempt("win").worker == windows_worker);
  h.succeed("win");
  h.succeed("b");
  BOOST_TEST(h.result() == run_status::succeeded);
  BOOST_TEST(h.core().worker_names() == (ids{"w1", "w2"}));
}

BOOST_AUTO_TEST_CASE(a_module_without_labels_leaves_a_worker_with_rare_labels_free) {
  drover::pipeline p;
  p.add("plain", no_body());
  requires_labels(p.add("gpu", no_body(), {"plain"}), {"gpu"});
  p.add("other", no_body(), {"plain"});
  core_harness h{std::move(p), remote_only()};
  // The gpu worker attaches last, so that it would be the first pick without best fit.
  h.attach_worker("plain", {"linux"}, 1);
  h.attach_worker("plain-2", {"linux"}, 1);
  const worker_number gpu_worker = h.attach_worker("gpu", {"linux", "gpu"}, 1);
  h.start();
  BOOST_TEST(h.dispatched() == ids{"plain"});
  BOOST_TEST(h.running_attempt("plain").worker != gpu_worker);
  h.succeed("plain");
  // Both become ready at once: "other" takes a plain worker although the gpu one is free
  // too, and "gpu" gets the gpu worker instead of waiting for it.
  BOOST_TEST(h.dispatched() == (ids{"gpu", "other"}));
  BOOST_TEST(h.running_attempt("gpu").worker == gpu_worker);
  BOOST_TEST(h.running_attempt("other").worker != gpu_worker);
  h.succeed("gpu");
  h.succeed("other");
  BOOST_TEST(h.result() == run_status::succeeded);
}

BOOST_AUTO_TEST_CASE(no_capable_worker_within_the_timeout_fails_the_module) {
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  requires_labels(p.add("win", no_body()), {"windows", "gpu"});
  p.add("after", no_body(), {"win"});
  p.add("other", no_body());
  core_harness h{std::move(p), remote_only()};
  h.attach_worker("w1", {"linux", "gpu"}, 2);
  h.start();
  BOOST_TEST(h.dispatched() == ids{"other"});
  h.advance(4999ms);
  BOOST_TEST(h.status("win") == module_status::pending);
  h.advance(1ms);
  BOOST_TEST(h.status("win") == module_status::failed);
  BOOST_TEST(h.reason("win") ==
             "no connected worker has the capabilities it requires: gpu, windows (waited 5000 ms)");
  BOOST_TEST(h.status("after") == module_status::skipped);
  BOOST_TEST(h.status("other") == module_status::pending);
}

BOOST_AUTO_TEST_CASE(a_capable_worker_joining_in_time_stops_the_clock) {
  drover::pipeline p;
  requires_labels(p.add("win", no_body()), {"windows"});
  core_harness h{std::move(p), remote_only()};
  h.attach_worker("w1", {"linux"}, 1);
  h.start();
  h.advance(3s);
  h.attach_worker("w2", {"windows"}, 1);
  BOOST_TEST(h.dispatched() == ids{"win"});
  h.advance(1h);
  BOOST_TEST(h.status("win") == module_status::pending);
  h.succeed("win");
  BOOST_TEST(h.status("win") == module_status::succeeded);
}

BOOST_AUTO_TEST_CASE(without_any_worker_modules_wait_then_fail) {
  drover::pipeline p;
  p.add("a", no_body());
  core_harness h{std::move(p), remote_only()};
  h.start();
  h.advance(5s);
  BOOST_TEST(h.status("a") == module_status::failed);
  BOOST_TEST(h.reason("a") == "no worker connected (waited 5000 ms)");
  BOOST_TEST(h.finished());
}

BOOST_AUTO_TEST_CASE(a_worker_never_gets_more_attempts_than_slots) {
  drover::pipeline p;
  for (int k = 0; k < 8; ++k)
    p.add("m" + std::to_string(k), no_body());
  core_harness h{std::move(p), remote_only()};
  const worker_number one = h.attach_worker("one", {}, 1);
  const worker_number three = h.attach_worker("three", {}, 3);
  h.start();
  BOOST_TEST(h.dispatched().size() == 4u);
  while (!h.finished()) {
    std::size_t on_one = 0, on_three = 0;
    for (const auto& a : h.running()) {
      on_one += a.worker == one;
      on_three += a.worker == three;
    }
    BOOST_TEST_REQUIRE(on_one <= 1u);
    BOOST_TEST_REQUIRE(on_three <= 3u);
    BOOST_TEST_REQUIRE(!h.running().empty());
    h.succeed(h.id(h.running().front().module));
  }
  BOOST_TEST(h.count(kind::dispatch) == 8u);
}

BOOST_AUTO_TEST_CASE(a_local_worker_comes_first_and_pin_local_stays_local) {
  drover::pipeline p;
  p.add("pinned", no_body()).constraints().pin_local = true;
  p.add("a", no_body());
  requires_labels(p.add("docker", no_body()), {"docker"});
  core_settings s = remote_only();
  s.local_workers = 1;
  s.local_capacity = 1;
  s.local_labels = {"linux"};
  s.order_by_critical_path = false;
  core_harness h{std::move(p), s};
  const worker_number w = h.attach_worker("w1", {"linux", "docker"}, 2);
  h.start();
  BOOST_TEST(h.dispatched() == (ids{"pinned", "a", "docker"}));
  BOOST_TEST(h.running_attempt("pinned").local);
  BOOST_TEST(h.running_attempt("a").worker == w);
  BOOST_TEST(h.running_attempt("docker").worker == w);
  // Without local workers, a pinned module cannot run at all.
  drover::pipeline q;
  q.add("pinned", no_body()).constraints().pin_local = true;
  core_harness none{std::move(q), remote_only()};
  none.attach_worker("w1", {}, 1);
  none.start();
  BOOST_TEST(none.status("pinned") == module_status::failed);
  BOOST_TEST(none.reason("pinned") == "pin_local, but the run has no local workers (workers = 0)");
}

BOOST_AUTO_TEST_CASE(a_retry_avoids_the_worker_that_failed_when_another_is_free) {
  drover::pipeline p;
  auto m = p.add("flaky", no_body());
  m.retries(2);
  m.backoff(no_wait());
  core_harness h{std::move(p), remote_only()};
  h.attach_worker("w1", {}, 1);
  h.attach_worker("w2", {}, 1);
  h.start();
  const worker_number first = h.running_attempt("flaky").worker;
  h.fail("flaky");
  h.advance(1ms);
  const worker_number second = h.running_attempt("flaky").worker;
  BOOST_TEST(second != first);
  h.fail("flaky");
  h.advance(10ms);
  BOOST_TEST(h.running_attempt("flaky").worker == first);
  BOOST_TEST(h.running_attempt("flaky").attempt == 3u);
}

BOOST_AUTO_TEST_CASE(a_retry_uses_the_same_worker_when_it_is_the_only_one) {
  drover::pipeline p;
  auto m = requires_labels(p.add("flaky", no_body()), {"gpu"});
  m.retries(1);
  m.backoff(no_wait());
  core_harness h{std::move(p), remote_only()};
  const worker_number gpu = h.attach_worker("gpu", {"gpu"}, 1);
  h.attach_worker("cpu", {}, 1);  // free, but not capable
  h.start();
  h.fail("flaky");
  h.advance(1ms);
  BOOST_TEST(h.running_attempt("flaky").worker == gpu);
  BOOST_TEST(h.running_attempt("flaky").attempt == 2u);
}

BOOST_AUTO_TEST_CASE(a_retry_does_not_wait_for_a_busy_worker_to_avoid_the_failed_one) {
  drover::pipeline p;
  auto m = p.add("flaky", no_body());
  m.retries(1);
  m.backoff(no_wait());
  m.priority(1);
  p.add("busy", no_body());
  core_harness h{std::move(p), remote_only()};
  h.attach_worker("w1", {}, 1);
  h.attach_worker("w2", {}, 1);
  h.start();
  const worker_number first = h.running_attempt("flaky").worker;
  BOOST_TEST(h.is_running("busy"));
  h.fail("flaky");
  h.advance(1ms);
  BOOST_TEST(h.running_attempt("flaky").worker == first);
  BOOST_TEST(h.running_attempt("flaky").attempt == 2u);
}

BOOST_AUTO_TEST_CASE(a_lost_worker_attempt_is_reassigned_without_counting_as_a_retry) {
  drover::pipeline p;
  auto m = p.add("m", no_body());
  m.retries(1);
  m.backoff(no_wait());
  core_harness h{std::move(p), remote_only()};
  const worker_number w1 = h.attach_worker("w1", {}, 1);
  h.start();
  BOOST_TEST(h.running_attempt("m").worker == w1);
  const worker_number w2 = h.attach_worker("w2", {}, 1);
  h.lose_worker(w1, "connection reset");
  const auto reassigned = h.events_of(event_type::module_reassigned);
  BOOST_TEST_REQUIRE(reassigned.size() == 1u);
  BOOST_TEST(reassigned[0].module == h.index("m"));
  BOOST_TEST(reassigned[0].attempt == 1u);
  BOOST_TEST(reassigned[0].worker == w1);
  BOOST_TEST(reassigned[0].message == "worker w1 was lost: connection reset");
  BOOST_TEST(h.events_of(event_type::worker_lost).size() == 1u);
  BOOST_TEST(h.running_attempt("m").worker == w2);
  BOOST_TEST(h.running_attempt("m").attempt == 2u);
  // The loss did not use up the retry.
  h.fail("m");
  h.advance(10ms);
  BOOST_TEST(h.running_attempt("m").attempt == 3u);
  h.succeed("m");
  BOOST_TEST(h.status("m") == module_status::succeeded);
  BOOST_TEST(h.core().remote_counters().reassigned == 1u);
  BOOST_TEST(h.core().remote_counters().workers_lost == 1u);
  BOOST_TEST(h.core().live_remote_workers() == 1u);
}

BOOST_AUTO_TEST_CASE(a_module_that_loses_max_worker_losses_workers_is_poison) {
  drover::pipeline p;
  p.add("poison", no_body());
  core_settings s = remote_only();
  s.max_worker_losses = 2;
  core_harness h{std::move(p), s};
  std::vector<worker_number> workers;
  for (const char* name : {"w1", "w2", "w3"})
    workers.push_back(h.attach_worker(name, {}, 1));
  h.start();
  h.lose_worker(h.running_attempt("poison").worker);
  BOOST_TEST(h.status("poison") == module_status::pending);
  const worker_number second = h.running_attempt("poison").worker;
  h.lose_worker(second, "killed by the kernel");
  BOOST_TEST(h.status("poison") == module_status::failed);
  BOOST_TEST(h.reason("poison") == "poison: 2 of its attempts ended with their worker lost or " +
                                       std::string("giving it back (last: worker ") +
                                       h.core().worker_names()[second] +
                                       " was lost: killed by the kernel)");
  BOOST_TEST(h.count(kind::dispatch) == 2u);
}

// A Redis restart breaks the master's link to every worker at once: the attempts are
// reassigned, but such losses are no sign against a module, and are not retries either.
BOOST_AUTO_TEST_CASE(losses_the_master_link_caused_are_neither_poison_nor_retries) {
  drover::pipeline p;
  auto m = p.add("m", no_body());
  m.retries(1);
  m.backoff(no_wait());
  core_settings s = remote_only();
  s.max_worker_losses = 2;
  core_harness h{std::move(p), s};
  for (int k = 0; k < 5; ++k) {
    const worker_number w = h.attach_worker("w" + std::to_string(k), {}, 1);
    if (k == 0) h.start();
    BOOST_TEST_REQUIRE(h.running_attempt("m").worker == w);
    h.lose_worker(w, "connection error: the link to Redis failed", false);
    BOOST_TEST(h.status("m") == module_status::pending);
  }
  BOOST_TEST(h.events_of(event_type::module_reassigned).size() == 5u);
  // Its one retry is still there: a failure runs it again, a second one ends it.
  const worker_number last = h.attach_worker("w5", {}, 1);
  BOOST_TEST(h.running_attempt("m").attempt == 6u);
  h.fail("m");
  h.advance(10ms);
  BOOST_TEST(h.running_attempt("m").worker == last);
  BOOST_TEST(h.running_attempt("m").attempt == 7u);
  // Losses the workers caused still count: the second makes it poison (max_worker_losses 2).
  h.lose_worker(last, "connection reset");
  BOOST_TEST(h.status("m") == module_status::pending);
  const worker_number other = h.attach_worker("w6", {}, 1);
  BOOST_TEST(h.running_attempt("m").worker == other);
  h.lose_worker(other, "connection reset");
  BOOST_TEST(h.status("m") == module_status::failed);
  BOOST_TEST(h.reason("m").starts_with("poison: 2 of its attempts"));
}

// A module's losses are counted in a byte: a larger limit must not wrap it round forever.
BOOST_AUTO_TEST_CASE(max_worker_losses_above_255_acts_as_255) {
  drover::pipeline p;
  p.add("m", no_body());
  core_settings s = remote_only();
  s.max_worker_losses = 1000;
  core_harness h{std::move(p), s};
  for (int k = 0; k < 255; ++k) {
    BOOST_TEST_REQUIRE(h.status("m") == module_status::pending);
    const worker_number w = h.attach_worker("w" + std::to_string(k), {}, 1);
    if (k == 0) h.start();
    h.lose_worker(w);
  }
  BOOST_TEST(h.status("m") == module_status::failed);
  BOOST_TEST(h.reason("m").starts_with("poison: 255 of its attempts"), h.reason("m"));
}

BOOST_AUTO_TEST_CASE(an_overdue_attempt_times_out_and_its_late_answer_frees_the_slot) {
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  auto slow = p.add("slow", no_body());
  slow.timeout(1000ms);
  slow.priority(1);
  p.add("next", no_body());
  core_harness h{std::move(p), remote_only()};
  const worker_number w = h.attach_worker("w1", {}, 1);
  h.start();
  BOOST_TEST(h.dispatched() == ids{"slow"});
  h.advance(1499ms);
  BOOST_TEST(h.status("slow") == module_status::pending);
  h.advance(1ms);
  BOOST_TEST(h.status("slow") == module_status::timed_out);
  BOOST_TEST(h.reason("slow") ==
             "no result from worker w1 within the timeout of 1000 ms and 500 ms more; "
             "cancelled it there");
  const auto cancels = h.actions_of(kind::cancel);
  BOOST_TEST_REQUIRE(cancels.size() == 1u);
  BOOST_TEST(cancels[0].module == h.index("slow"));
  BOOST_TEST(cancels[0].attempt == 1u);
  BOOST_TEST(cancels[0].worker == w);
  BOOST_TEST(!cancels[0].local);
  BOOST_TEST(h.core().remote_counters().overdue == 1u);
  // The worker may still be running it: its slot stays taken.
  BOOST_TEST(h.dispatched().empty());
  h.succeed("slow");
  BOOST_TEST(rejections(h) ==
             (std::vector<std::pair<std::string, rejection>>{{"slow", rejection::given_up}}));
  BOOST_TEST(to_string(rejection::given_up) == "stale_result");
  BOOST_TEST(h.status("slow") == module_status::timed_out);
  BOOST_TEST(h.dispatched() == ids{"next"});
  BOOST_TEST(h.core().remote_counters().rejected_results == 1u);
}

BOOST_AUTO_TEST_CASE(an_overdue_attempt_with_retries_left_runs_again) {
  drover::pipeline p;
  auto slow = p.add("slow", no_body());
  slow.timeout(1000ms);
  slow.retries(1);
  slow.backoff(no_wait());
  core_harness h{std::move(p), remote_only()};
  h.attach_worker("w1", {}, 1);
  h.attach_worker("w2", {}, 1);
  h.start();
  const worker_number hung = h.running_attempt("slow").worker;
  h.advance(1501ms);
  BOOST_TEST(h.running_attempt("slow").attempt == 2u);
  BOOST_TEST(h.running_attempt("slow").worker != hung);
  h.succeed("slow");
  BOOST_TEST(h.status("slow") == module_status::succeeded);
}

BOOST_AUTO_TEST_CASE(the_fence_rejects_what_is_not_the_current_attempt_of_that_worker) {
  drover::pipeline p;
  auto a = p.add("a", no_body());
  a.retries(1);
  a.backoff({.initial = 1h});
  p.add("b", no_body());
  core_harness h{std::move(p), remote_only()};
  const worker_number stranger = h.attach_worker("stranger", {}, 1);
  const worker_number w = h.attach_worker("w1", {}, 2);
  h.start();
  BOOST_TEST(h.running_attempt("a").worker == w);
  BOOST_TEST(h.running_attempt("b").worker == w);
  const module_index ia = h.index("a"), ib = h.index("b");

  h.remote_end(w, drover::detail::no_module, 1, module_status::succeeded);
  h.remote_end(w, ia, 1, module_status::succeeded, epoch + 1);
  h.remote_end(stranger, ia, 1, module_status::succeeded);
  h.remote_end(w, ia, 2, module_status::succeeded);
  BOOST_TEST(h.status("a") == module_status::pending);
  BOOST_TEST(h.core().attempts(ia) == 1u);
  // The real one is accepted (a failure, so "a" waits to retry); its repeat is a duplicate.
  h.remote_end(w, ia, 1, module_status::failed);
  BOOST_TEST(h.events_of(event_type::module_retrying).size() == 1u);
  h.remote_end(w, ia, 1, module_status::failed);
  h.remote_end(w, ib, 1, module_status::succeeded);
  h.remote_end(w, ib, 1, module_status::succeeded);
  BOOST_TEST(h.status("b") == module_status::succeeded);

  using row = std::pair<std::string, rejection>;
  const auto got = rejections(h);
  BOOST_TEST_REQUIRE(got.size() == 6u);
  BOOST_TEST(got[0].second == rejection::unknown_module);
  BOOST_TEST((got[1] == row{"a", rejection::other_epoch}));
  BOOST_TEST((got[2] == row{"a", rejection::not_running}));
  BOOST_TEST((got[3] == row{"a", rejection::not_running}));
  BOOST_TEST((got[4] == row{"a", rejection::duplicate}));
  BOOST_TEST((got[5] == row{"b", rejection::duplicate}));
  const auto actions = h.actions_of(kind::reject);
  BOOST_TEST(actions[1].epoch == epoch + 1);
  BOOST_TEST(actions[2].worker == stranger);
  BOOST_TEST(h.core().remote_counters().rejected_results == 6u);
  // The wire codes of docs/protocol.md.
  BOOST_TEST(to_string(rejection::unknown_module) == "unknown_module");
  BOOST_TEST(to_string(rejection::duplicate) == "duplicate_result");
  BOOST_TEST(to_string(rejection::other_epoch) == "stale_result");
  BOOST_TEST(to_string(rejection::not_running) == "stale_result");
}

BOOST_AUTO_TEST_CASE(a_repeat_of_a_refused_result_is_stale_not_a_duplicate) {
  // docs/protocol.md: duplicate_result only repeats a result that arrived and was accepted;
  // a repeat of a refused one, or the answer to an attempt the master gave up on, is stale.
  drover::pipeline p;
  p.mode = drover::execution_mode::keep_going;
  auto slow = p.add("slow", no_body());
  slow.timeout(1000ms);
  slow.priority(1);
  p.add("long", no_body());
  core_harness h{std::move(p), remote_only()};
  const worker_number w = h.attach_worker("w1", {}, 2);
  h.start();
  h.advance(1500ms);
  BOOST_TEST(h.status("slow") == module_status::timed_out);
  const module_index i = h.index("slow");
  h.remote_end(w, i, 1, module_status::succeeded);
  h.remote_end(w, i, 1, module_status::succeeded);
  const auto got = rejections(h);
  BOOST_TEST_REQUIRE(got.size() == 2u);
  BOOST_TEST(got[0].second == rejection::given_up);
  BOOST_TEST(got[1].second == rejection::not_running);
}

BOOST_AUTO_TEST_CASE(the_answer_to_a_cancel_given_up_on_is_stale_and_so_is_its_repeat) {
  drover::pipeline p;
  requires_labels(p.add("remote", no_body()), {"remote-only"});
  p.add("local", no_body()).constraints().pin_local = true;
  core_settings s = remote_only();
  s.local_workers = 1;
  s.local_capacity = 1;
  s.local_labels = {"linux"};
  core_harness h{std::move(p), s};
  const worker_number w = h.attach_worker("w1", {"remote-only"}, 1);
  h.start();
  BOOST_TEST(h.running_attempt("remote").worker == w);
  BOOST_TEST(h.running_attempt("local").local);
  h.cancel();
  h.advance(2s);
  BOOST_TEST(h.status("remote") == module_status::cancelled);
  BOOST_TEST(!h.finished());  // the local attempt has not ended
  h.remote_end(w, h.index("remote"), 1, module_status::cancelled);
  h.remote_end(w, h.index("remote"), 1, module_status::cancelled);
  const auto got = rejections(h);
  BOOST_TEST_REQUIRE(got.size() == 2u);
  BOOST_TEST(got[0].second == rejection::unconfirmed);
  BOOST_TEST(got[1].second == rejection::not_running);
}

BOOST_AUTO_TEST_CASE(a_lost_worker_late_result_is_counted_but_not_answered) {
  drover::pipeline p;
  p.add("m", no_body());
  core_harness h{std::move(p), remote_only()};
  const worker_number w1 = h.attach_worker("w1", {}, 1);
  h.start();
  h.lose_worker(w1);
  h.remote_end(w1, h.index("m"), 1, module_status::succeeded);
  BOOST_TEST(h.count(kind::reject) == 0u);
  BOOST_TEST(h.core().remote_counters().rejected_results == 1u);
  BOOST_TEST(h.status("m") == module_status::pending);
}

BOOST_AUTO_TEST_CASE(a_cancelled_result_nobody_asked_for_gives_the_attempt_back) {
  drover::pipeline p;
  p.add("m", no_body()).priority(1);
  p.add("later", no_body());
  core_harness h{std::move(p), remote_only()};
  const worker_number w1 = h.attach_worker("w1", {}, 1);
  h.start();
  BOOST_TEST(h.running_attempt("m").worker == w1);
  const worker_number w2 = h.attach_worker("w2", {}, 1);
  BOOST_TEST(h.running_attempt("later").worker == w2);
  h.end("m", module_status::cancelled, "shutting down");
  const auto drains = h.actions_of(kind::drain_worker);
  BOOST_TEST_REQUIRE(drains.size() == 1u);
  BOOST_TEST(drains[0].worker == w1);
  BOOST_TEST(h.core().drain_reason(w1) == "it gave back 'm' attempt 1");
  const auto reassigned = h.events_of(event_type::module_reassigned);
  BOOST_TEST_REQUIRE(reassigned.size() == 1u);
  BOOST_TEST(reassigned[0].message == "worker w1 gave the attempt back: shutting down");
  BOOST_TEST(h.status("m") == module_status::pending);
  // Not back to the worker that gave it up: it waits for w2.
  BOOST_TEST(!h.is_running("m"));
  h.succeed("later");
  BOOST_TEST(h.running_attempt("m").worker == w2);
  BOOST_TEST(h.running_attempt("m").attempt == 2u);
  h.succeed("m");
  BOOST_TEST(h.result() == run_status::succeeded);
}

BOOST_AUTO_TEST_CASE(a_drained_worker_finishes_its_attempts_and_gets_no_more) {
  drover::pipeline p;
  for (const char* id : {"a", "b", "c", "d"})
    p.add(id, no_body());
  core_settings s = remote_only();
  s.order_by_critical_path = false;
  core_harness h{std::move(p), s};
  const worker_number w1 = h.attach_worker("w1", {}, 2);
  h.start();
  BOOST_TEST(h.dispatched() == (ids{"a", "b"}));
  h.drain_worker(w1, "operator drain");
  BOOST_TEST(h.count(kind::drain_worker) == 1u);
  BOOST_TEST(h.core().drain_reason(w1) == "operator drain");
  BOOST_TEST(h.core().live_remote_workers() == 0u);
  h.succeed("a");
  BOOST_TEST(h.status("a") == module_status::succeeded);
  BOOST_TEST(h.dispatched().empty());
  const worker_number w2 = h.attach_worker("w2", {}, 1);
  BOOST_TEST(h.dispatched() == ids{"c"});
  BOOST_TEST(h.running_attempt("c").worker == w2);
  h.succeed("b");
  h.succeed("c");
  h.succeed("d");
  BOOST_TEST(h.finished());
  // Every worker still attached is released at the end, before complete.
  const auto releases = h.actions_of(kind::release_worker);
  BOOST_TEST(releases.size() == 2u);
  BOOST_TEST(h.actions().back().what == kind::complete);
  h.attach_worker("late", {}, 1);
  BOOST_TEST(h.count(kind::release_worker) == 3u);
}

BOOST_AUTO_TEST_CASE(an_unconfirmed_remote_cancel_is_given_up_after_cancel_grace) {
  drover::pipeline p;
  p.add("m", no_body());
  p.add("waiting", no_body(), {"m"});
  core_harness h{std::move(p), remote_only()};
  const worker_number w = h.attach_worker("w1", {}, 1);
  h.start();
  h.advance(100ms);
  h.cancel();
  const auto cancels = h.actions_of(kind::cancel);
  BOOST_TEST_REQUIRE(cancels.size() == 1u);
  BOOST_TEST(cancels[0].module == h.index("m"));
  BOOST_TEST(cancels[0].worker == w);
  BOOST_TEST(!cancels[0].local);
  h.advance(1999ms);
  BOOST_TEST(!h.finished());
  h.advance(1ms);
  BOOST_TEST(h.status("m") == module_status::cancelled);
  BOOST_TEST(h.reason("m") == "run cancelled; w1 did not confirm the cancellation within 2000 ms");
  BOOST_TEST(h.finished());
  BOOST_TEST(h.result() == run_status::cancelled);
}

BOOST_AUTO_TEST_CASE(an_attempt_whose_cancel_was_given_up_on_holds_its_slot_until_it_answers) {
  // docs/protocol.md: an attempt counts against its worker's slots until its result arrives,
  // even one the master gave up on. Under fail_fast an always_run module still needs workers.
  drover::pipeline p;
  p.add("bad", no_body()).priority(2);
  p.add("busy", no_body()).priority(1);
  requires_labels(p.add("cleanup", no_body()), {"gpu"}).always_run(true);
  core_harness h{std::move(p), remote_only()};
  const worker_number gpu = h.attach_worker("gpu", {"gpu"}, 1);
  h.attach_worker("cpu", {}, 1);
  h.start();
  BOOST_TEST(h.running_attempt("busy").worker == gpu);
  h.fail("bad");
  BOOST_TEST(h.count(kind::cancel) == 1u);
  h.advance(2s);
  BOOST_TEST(h.status("busy") == module_status::cancelled);
  BOOST_TEST(h.dispatched() == (ids{"bad", "busy"}));
  h.end("busy", module_status::cancelled);
  BOOST_TEST(rejections(h).size() == 1u);
  BOOST_TEST(h.dispatched() == ids{"cleanup"});
  BOOST_TEST(h.running_attempt("cleanup").worker == gpu);
}

BOOST_AUTO_TEST_CASE(a_gated_module_waiting_for_a_remote_worker_is_not_sent_after_a_stop) {
  drover::pipeline p;
  p.pools["two"] = 2;
  auto& wide = p.add("wide", no_body()).constraints();
  wide.pool = "two";
  wide.pool_slots = 2;
  p.add("narrow1", no_body()).constraints().pool = "two";
  p.add("narrow2", no_body()).constraints().pool = "two";
  p.add("other", no_body());
  core_settings s = remote_only();
  s.order_by_critical_path = false;
  core_harness h{std::move(p), s};
  h.attach_worker("w1", {}, 1);
  h.attach_worker("w2", {}, 1);
  h.start();
  BOOST_TEST(h.dispatched() == (ids{"wide", "other"}));
  h.succeed("wide");
  BOOST_TEST(h.dispatched() == ids{"narrow1"});
  h.cancel();
  BOOST_TEST(h.status("narrow2") == module_status::cancelled);
  h.end("other", module_status::cancelled);
  h.end("narrow1", module_status::cancelled);
  BOOST_TEST(h.dispatched().empty());
  BOOST_TEST(h.finished());
}

BOOST_AUTO_TEST_SUITE_END()
