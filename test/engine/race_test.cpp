// Races on one module: its remote result arrives at the same moment as a rival event, from
// another thread of a pool:
//  - fail_fast: a sibling's failure, which cancels it;
//  - timeout: its timeout (a remote attempt is given up on when it passes);
//  - worker loss: its worker is detached (and connects again as a new worker);
//  - duplicate: the same result a second time.
// 1,000 rounds at each of 1, 2 and 4 threads. Every round must end, within a bound that holds
// on a loaded machine, with the module in a terminal state its race explains, its value the
// one its accepted attempt sent, and a result accepted at most once.

#define BOOST_TEST_MODULE race
#include "test_support.hpp"

#include <drover/remote.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/test/unit_test.hpp>

#include <array>
#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>

namespace {

using namespace drover::test;
using drover::module_status;
using drover::remote_completion;
using drover::worker_hub;
namespace utf = boost::unit_test;

enum class rival : int { fail_fast, timeout, worker_loss, duplicate };
constexpr int rival_count = 4;

const char* name(rival r) {
  switch (r) {
    case rival::fail_fast:
      return "fail_fast";
    case rival::timeout:
      return "timeout";
    case rival::worker_loss:
      return "worker_loss";
    case rival::duplicate:
      return "duplicate";
  }
  return "?";
}

/// A remote worker that answers each attempt of "m" with its attempt number as the value,
/// posted to the pool at the same moment as the round's rival event.
class racer : public drover::remote_worker, public std::enable_shared_from_this<racer> {
 public:
  /// `rival_first`: the rival event is posted before the result (or, for the timeout, the
  /// result comes 2 ms after the attempt rather than at once), so each side wins often.
  racer(asio::thread_pool& pool, std::shared_ptr<worker_hub> hub, rival r, bool rival_first)
      : pool_(pool), hub_(std::move(hub)), rival_(r), rival_first_(rival_first) {}

  // The run may assign to the new worker before attach() has returned its id: assign() waits
  // for the id under the same lock, as a transport's connection would read it on its strand.
  void join() {
    std::lock_guard lock(id_mutex_);
    id_ = hub_->attach(shared_from_this(), "racer", {}, 2);
  }

  void assign(const drover::assignment& a) override {
    history += "assign " + std::string(a.id) + "#" + std::to_string(a.attempt) + "; ";
    remote_completion c;
    c.module = a.module;
    c.epoch = a.epoch;
    c.attempt = a.attempt;
    c.status = module_status::succeeded;
    c.value = static_cast<std::int64_t>(a.attempt);
    const auto id = current_id();
    if (a.id == "f") {  // the sibling of fail_fast: fails as m succeeds
      c.status = module_status::failed;
      c.value = nullptr;
      c.error = "f fails";
      sibling_ = c;
      fire_when_both_assigned(id);
      return;
    }
    mine_ = c;
    switch (rival_) {
      case rival::fail_fast:
        fire_when_both_assigned(id);
        return;
      case rival::timeout:
        // The run gives the attempt up when its 1 ms timeout passes: answer about then.
        asio::post(pool_, [self = shared_from_this(), id, c, late = rival_first_] {
          std::this_thread::sleep_for(late ? 2ms : 0ms);
          self->hub_->complete(id, c);
        });
        return;
      case rival::worker_loss:
        if (a.attempt > 1) {
          asio::post(pool_, [self = shared_from_this(), id, c] { self->hub_->complete(id, c); });
          return;
        }
        post_in_order([self = shared_from_this(), id, c] { self->hub_->complete(id, c); },
                      [self = shared_from_this(), id] {
                        self->hub_->detach(id, "lost in a race");
                        self->join();  // connects again, as a new worker
                      });
        return;
      case rival::duplicate:
        for (int i = 0; i < 2; ++i)
          asio::post(pool_, [self = shared_from_this(), id, c] { self->hub_->complete(id, c); });
        return;
    }
  }

  void cancel(std::uint32_t module, std::string_view, std::uint32_t attempt,
              std::string_view reason) override {
    history += "cancel #" + std::to_string(attempt) + "; ";
    remote_completion c;
    c.module = module;
    c.epoch = hub_->config().epoch;
    c.attempt = attempt;
    c.status = module_status::cancelled;
    c.error = "cancelled: " + std::string(reason);
    asio::post(pool_,
               [self = shared_from_this(), id = current_id(), c] { self->hub_->complete(id, c); });
  }

  void rejected(std::string_view id, std::uint32_t attempt, std::string_view code,
                std::string_view) override {
    history += "rejected " + std::string(id) + "#" + std::to_string(attempt) + " " +
               std::string(code) + "; ";
    ++rejections;
  }
  void run_finished(std::string_view) override {}

  std::atomic<int> rejections{0};
  std::string history;  ///< what the run asked of it, on the run's strand: for failure messages

 private:
  // Both of fail_fast's results, m's and f's, go out together once both were assigned.
  void fire_when_both_assigned(worker_hub::worker_id id) {
    if (!mine_ || !sibling_) return;
    post_in_order([self = shared_from_this(), id, c = *mine_] { self->hub_->complete(id, c); },
                  [self = shared_from_this(), id, c = *sibling_] { self->hub_->complete(id, c); });
  }

  template <typename Result, typename Rival>
  void post_in_order(Result result, Rival rival) {
    if (rival_first_) {
      asio::post(pool_, std::move(rival));
      asio::post(pool_, std::move(result));
    } else {
      asio::post(pool_, std::move(result));
      asio::post(pool_, std::move(rival));
    }
  }

  asio::thread_pool& pool_;
  std::shared_ptr<worker_hub> hub_;
  rival rival_;
  bool rival_first_;
  worker_hub::worker_id current_id() {
    std::lock_guard lock(id_mutex_);
    return id_;
  }

  std::mutex id_mutex_;
  worker_hub::worker_id id_ = 0;
  std::optional<remote_completion> mine_, sibling_;  // on the run's strand only
};

drover::module_ref add_remote(drover::pipeline& p, std::string id) {
  auto m = p.add(std::move(id), fail_body("ran on a local worker"));
  m.kind("noop");
  return m;
}

struct round_result {
  std::string broken;   ///< what broke, or empty
  std::string outcome;  ///< m's status, for the tally
};

/// One round of race `r` on `pool`.
round_result race_once(asio::thread_pool& pool, rival r, bool rival_first) {
  worker_hub::settings settings;
  settings.overdue_grace = 0ms;
  auto hub = std::make_shared<worker_hub>(settings);
  auto worker = std::make_shared<racer>(pool, hub, r, rival_first);
  worker->join();

  drover::pipeline p;
  p.name = "race";
  auto m = add_remote(p, "m");
  if (r == rival::timeout) m.timeout(1ms);
  if (r == rival::fail_fast) add_remote(p, "f");
  drover::run_options options;
  options.workers = 0;
  options.remote = hub;
  options.cancel_grace = 100ms;

  auto engine = std::make_unique<drover::engine>(pool.get_executor());
  auto done = std::make_shared<std::promise<drover::run_report>>();
  auto report_future = done->get_future();
  engine->async_run(std::move(p), std::move(options),
                    [done](drover::run_report report) { done->set_value(std::move(report)); });
  if (report_future.wait_for(20s) != std::future_status::ready) {
    // The run still holds the engine, hub and worker: leak them rather than destroy them
    // under it, so that the message gets out.
    new std::shared_ptr<racer>(worker);
    engine.release();
    return {std::string(name(r)) + (rival_first ? " (rival first)" : "") +
                ": the run did not end within 20 s; the worker saw: " + worker->history,
            ""};
  }
  const auto report = report_future.get();
  const auto result = *report.find("m");
  const std::string outcome =
      std::string(to_string(result.status)) + " after " + std::to_string(result.attempts);
  const std::string where = std::string(name(r)) + ": m " + std::string(to_string(result.status)) +
                            " after " + std::to_string(result.attempts) + " attempts (" +
                            result.reason + ")";

  const auto broken = [&]() -> std::string {
    if (result.status == module_status::succeeded &&
        result.value != json::value(static_cast<std::int64_t>(result.attempts))) {
      return where + ": its value is not its accepted attempt's";
    }
    switch (r) {
      case rival::fail_fast:
        if (result.status != module_status::succeeded && result.status != module_status::cancelled)
          return where;
        if (report.find("f")->status != module_status::failed) return where + ": f did not fail";
        if (report.status != drover::run_status::failed) return where + ": the run did not fail";
        return {};
      case rival::timeout:
        if (result.status != module_status::succeeded && result.status != module_status::timed_out)
          return where;
        return {};
      case rival::worker_loss:
        if (result.status != module_status::succeeded || result.attempts > 2) return where;
        // The loss counts unless the run was over before it arrived; a second attempt
        // means it arrived first.
        if (report.remote.workers_lost > 1 ||
            (result.attempts == 2 && report.remote.workers_lost != 1)) {
          return where + ": the loss was not counted once";
        }
        return {};
      case rival::duplicate:
        if (result.status != module_status::succeeded || result.attempts != 1) return where;
        if (report.remote.rejected_results > 1) return where + ": more than one rejection";
        return {};
    }
    return {};
  }();
  return {broken, outcome};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(race)

BOOST_AUTO_TEST_CASE(a_result_racing_cancel_timeout_loss_and_its_copy_ends_one_way,
                     *utf::timeout(600)) {
  for (const int threads : {1, 2, 4}) {
    asio::thread_pool pool{static_cast<std::size_t>(threads)};
    std::array<int, rival_count> rounds{};
    std::array<std::map<std::string, int>, rival_count> outcomes;  // m's status per race
    std::mt19937 random{static_cast<std::uint32_t>(threads)};
    for (int round = 0; round < 1000; ++round) {
      const auto r = static_cast<rival>(random() % rival_count);
      const auto result = race_once(pool, r, random() % 2 == 0);
      BOOST_REQUIRE_MESSAGE(result.broken.empty(), "round " << round << " at " << threads
                                                            << " threads: " << result.broken);
      ++rounds[static_cast<int>(r)];
      ++outcomes[static_cast<int>(r)][result.outcome];
    }
    for (int r = 0; r < rival_count; ++r) {
      std::string tally;
      for (const auto& [status, n] : outcomes[r])
        tally += ", " + status + ": " + std::to_string(n);
      BOOST_TEST_MESSAGE(threads << " threads, " << name(static_cast<rival>(r)) << ": " << rounds[r]
                                 << " rounds" << tally);
      BOOST_TEST(rounds[r] > 150);  // every race ran, often
    }
    pool.join();
  }
}

BOOST_AUTO_TEST_SUITE_END()
