// The run's in-process workers: loops that take dispatched attempts from the ready channel,
// await their bodies and report how they ended.

#include "run_driver.hpp"

#include "attempt_failure.hpp"
#include "work_dir.hpp"

#include <drover/context.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace drover::detail {

namespace asio = boost::asio;

namespace {

// A worker that finds its next attempt inline (a chain) never returns to the executor on its
// own. It yields once it has run inline for this long, so timers, cancellation and other work
// get their turn within about a millisecond (or one module, if a module takes longer). A
// yield is not free: with a second thread it hands the worker to that thread through a
// wake-up, which a yield every few hundred short modules made the chain's largest cost.
constexpr std::chrono::milliseconds inline_slice{1};
// ... or after this many modules, where time does not pass while they run (a simulation's
// virtual time).
constexpr unsigned inline_run_limit = 16384;

}  // namespace

ready_channel::ready_channel(const asio::any_io_executor& executor, std::size_t capacity,
                             bool locked) {
  if (locked) {
    locked_.emplace(executor, capacity);
  } else {
    unlocked_.emplace(executor, capacity);
  }
}

bool ready_channel::try_send(ticket t) {
  return unlocked_ ? unlocked_->try_send(boost::system::error_code{}, t)
                   : locked_->try_send(boost::system::error_code{}, t);
}

bool ready_channel::try_receive(ticket& t, bool& closed) {
  auto take = [&](boost::system::error_code ec, ticket v) {
    if (ec) {
      closed = true;
    } else {
      t = v;
    }
  };
  return unlocked_ ? unlocked_->try_receive(take) : locked_->try_receive(take);
}

asio::awaitable<std::optional<ticket>> ready_channel::receive() {
  if (unlocked_) {
    auto [ec, t] = co_await unlocked_->async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return std::nullopt;
    co_return t;
  }
  auto [ec, t] = co_await locked_->async_receive(asio::as_tuple(asio::use_awaitable));
  if (ec) co_return std::nullopt;
  co_return t;
}

void ready_channel::close() {
  if (unlocked_) {
    unlocked_->close();
  } else {
    locked_->close();
  }
}

void run_driver::spawn_worker() {
  const auto number = static_cast<worker_number>(workers_.size());
  // Without a pool the workers share the run's strand: a worker then reports inline and
  // usually takes the successor it released itself, so a chain of modules runs without a single
  // executor hop. A pool gives each worker its own strand.
  local_worker& w = workers_.emplace_back(number, "local-" + std::to_string(number),
                                          worker_pool_ ? asio::make_strand(worker_pool_) : strand_);
  ++live_workers_;
  asio::co_spawn(w.strand, worker_loop(w),
                 asio::bind_cancellation_slot(w.signal.slot(),
                                              [self = shared_from_this()](std::exception_ptr) {}));
}

// Whether a dispatched attempt may still begin. On the run strand the core says; a pool worker
// reads the mirror of the core's stop, and fail_fast_pending_, raised by a worker whose failure
// is about to stop the run.
bool run_driver::may_start(module_index i) const {
  if (!worker_pool_) return !core_->stop_applies(i);
  const stop_mode stopping = stop_mirror_.load(std::memory_order_acquire);
  if (stopping == stop_mode::everything) return false;
  const bool failing = stopping == stop_mode::unless_always_run ||
                       fail_fast_pending_.load(std::memory_order_acquire);
  return !failing || plan_->record(i).has(module_flag::always_run);
}

asio::awaitable<void> run_driver::worker_loop(local_worker& w) {
  // The run outlives every worker. On exit the reference travels to the strand behind the
  // worker's last reports, and the strand delivers the report only once every worker has
  // exited: nothing bound to a pool the engine owns is left after that pool.
  auto self = shared_from_this();
  struct release_on_exit {
    std::shared_ptr<run_driver>& self;
    local_worker& w;
    ~release_on_exit() {
      w.grace_timer.cancel();
      if (w.retired) return;  // the run stopped waiting for this worker when it retired it
      auto& strand = self->strand_;
      asio::post(strand, [keep = std::move(self)] { keep->on_worker_exit(); });
    }
  } release{self, w};
  unsigned inline_run = 0;
  time_point last_end{};
  time_point inline_since{};  // when this worker last came from the executor
  for (;;) {
    ticket t = 0;
    bool taken_inline = false;
    if (w.next) {
      t = *w.next;
      w.next.reset();
      taken_inline = true;
    } else {
      bool closed = false;
      if (!channel_.try_receive(t, closed)) {
        std::optional<ticket> received = co_await channel_.receive();
        if (!received) co_return;
        t = *received;
      } else if (closed) {
        co_return;
      }
    }
    if (!taken_inline) {
      inline_run = 0;
    } else if (++inline_run >= inline_run_limit || last_end - inline_since >= inline_slice) {
      inline_run = 0;
      co_await asio::post(w.strand, asio::use_awaitable);
      inline_since = core_clock::now();
    }
    const auto i = static_cast<module_index>(t & 0xffffffffu);
    const auto attempt = static_cast<std::uint32_t>(t >> 32);
    if (!may_start(i)) {
      not_started(w, i, attempt);
      continue;
    }
    if (slot_member_ && (!co_await take_shared_slot(w, i) || !may_start(i))) {
      release_shared_slot(w);
      not_started(w, i, attempt);
      continue;
    }
    // A module taken inline starts when the previous one ended: no clock read for it.
    const time_point started = taken_inline ? last_end : core_clock::now();
    if (!taken_inline) inline_since = started;
    if (options_.on_event) began(w, i, attempt, started);
    attempt_scope scope;
    scope.module = plan_->module(i);
    scope.index = i;
    scope.attempt = attempt;
    scope.worker = w.name;
    scope.executor = &w.executor;
    scope.environment = &environment_;
    scope.dependencies = this;
    scope.may_have_io = plan_->record(i).has(module_flag::has_io);
    w.current = i;
    w.current_attempt = attempt;
    w.current_started = started;
    w.cancel_sent = false;
    attempt_outcome outcome;
    if (plan_->record(i).has(module_flag::has_timeout)) {
      w.current_is_supervised = true;
      outcome = co_await run_supervised(scope, *plan_->timeout(i));
    } else {
      // Without a timeout the body runs on this worker's own stack: no co_spawn per module. A
      // stop reaches it through the worker's cancellation signal; a body that ignores it for
      // the grace period is abandoned and this worker retires (cancel_on_worker).
      w.current_is_supervised = false;
      module_context ctx(scope);
      try {
        boost::json::value value = co_await plan_->body(i)(ctx);
        outcome.status = module_status::succeeded;
        if (!value.is_null()) outcome.value = std::move(value);
      } catch (...) {
        classify_failure(std::current_exception(), outcome.status, outcome.error);
      }
      if (w.cancel_sent) {
        // The run cancelled this attempt: "Operation canceled" from the aborted wait says
        // nothing the core's own reason does not.
        if (outcome.status == module_status::cancelled) outcome.error.clear();
        co_await asio::this_coro::reset_cancellation_state();
      } else if (outcome.status == module_status::cancelled) {
        outcome.status = module_status::failed;  // an abort the body met on its own is a failure
      }
      if (w.retired) {
        attempt_files::discard(scope);  // abandoned: whatever it produced is not promoted
      } else {
        attempt_files::settle(scope, outcome.status, outcome.error);
        if (outcome.status != module_status::succeeded && !outcome.value.is_null()) {
          outcome.value = nullptr;  // settling its files failed it
        }
      }
    }
    release_shared_slot(w);
    w.current = no_module;
    if (w.retired) co_return;  // the run gave up on this attempt and may be over
    last_end = core_clock::now();
    if (worker_pool_ && !options_.remote &&
        scheduler_core::triggers_fail_fast(*plan_, i, attempt, outcome.status)) {
      // Attempts already handed to this or another worker must not start before the strand
      // reads this report and stops the run: they see this flag instead.
      fail_fast_pending_.store(true, std::memory_order_release);
    }
    ended(w, i, attempt, started, outcome, last_end);
  }
}

// A module with a timeout runs under an attempt_control: its body is a coroutine of its own,
// so the worker can walk away from a body that ignores its timeout or a stop.
asio::awaitable<attempt_outcome> run_driver::run_supervised(attempt_scope& scope,
                                                            std::chrono::milliseconds timeout) {
  auto control =
      std::make_shared<attempt_control>(scope, timeout, options_.cancel_grace, shared_from_this());
  supervised_result result =
      co_await asio::async_initiate<decltype(asio::use_awaitable), void(supervised_result)>(
          [&control](auto handler) {
            auto slot = asio::get_associated_cancellation_slot(handler);
            if (slot.is_connected()) {
              // The run stops the attempt through the worker's signal.
              slot.assign(
                  [control](asio::cancellation_type) { control->stop(module_status::cancelled); });
            }
            control->start(std::move(handler));
          },
          asio::use_awaitable);
  co_await asio::this_coro::reset_cancellation_state();
  co_return std::move(result.outcome);
}

// How a worker reports to the run strand: inline when it runs there (the common case, with no
// copy of the outcome), through the outbox when it runs on a pool.
void run_driver::began(local_worker& w, module_index i, std::uint32_t attempt, time_point at) {
  if (!worker_pool_) {
    // A start only emits module_started: no action follows from it, so no process().
    if (!finished_) core_->attempt_started(i, attempt, w.number, at);
    return;
  }
  worker_report r;
  r.what = worker_report::kind::started;
  r.worker = w.number;
  r.module = i;
  r.attempt = attempt;
  r.at = at;
  post_report(std::move(r));
}

void run_driver::not_started(local_worker& w, module_index i, std::uint32_t attempt) {
  if (!worker_pool_) {
    if (finished_) return;
    taking_for_ = &w;
    core_->attempt_not_started(i, attempt, core_clock::now());
    process();
    taking_for_ = nullptr;
    return;
  }
  worker_report r;
  r.what = worker_report::kind::not_started;
  r.worker = w.number;
  r.module = i;
  r.attempt = attempt;
  post_report(std::move(r));
}

// The worker that reports inline takes the first attempt its end releases (hand_out).
void run_driver::ended(local_worker& w, module_index i, std::uint32_t attempt, time_point started,
                       attempt_outcome& outcome, time_point at) {
  if (!worker_pool_) {
    if (finished_) return;
    taking_for_ = &w;
    core_->attempt_ended(i, attempt, w.number, started, std::move(outcome), at);
    process();
    taking_for_ = nullptr;
    return;
  }
  worker_report r;
  r.what = worker_report::kind::ended;
  r.worker = w.number;
  r.module = i;
  r.attempt = attempt;
  r.started = started;
  r.at = at;
  r.outcome = std::move(outcome);
  post_report(std::move(r));
}

void run_driver::post_report(worker_report r) {
  bool post_drain = false;
  {
    std::lock_guard lock(outbox_mutex_);
    outbox_.push_back(std::move(r));
    post_drain = !std::exchange(drain_posted_, true);
  }
  if (post_drain) {
    // Raw `this` is safe: a worker loop holds the run alive and, before it exits, posts its
    // reference behind everything it reported (see worker_loop's exit path).
    asio::post(strand_, [this] { drain_outbox(); });
  }
}

void run_driver::handle(worker_report& r) {
  if (finished_) return;
  switch (r.what) {
    case worker_report::kind::started:
      core_->attempt_started(r.module, r.attempt, r.worker, r.at);
      break;
    case worker_report::kind::ended:
      core_->attempt_ended(r.module, r.attempt, r.worker, r.started, std::move(r.outcome), r.at);
      break;
    case worker_report::kind::not_started:
      core_->attempt_not_started(r.module, r.attempt, core_clock::now());
      break;
    case worker_report::kind::abandoned:
      ++abandoned_;
      core_->attempt_ended(r.module, r.attempt, r.worker, r.started, std::move(r.outcome), r.at);
      break;
  }
  process();
}

void run_driver::drain_outbox() {
  std::vector<worker_report> batch;
  {
    std::lock_guard lock(outbox_mutex_);
    batch.swap(outbox_);
    drain_posted_ = false;
  }
  for (worker_report& r : batch)
    handle(r);
  {
    // Hand the (now empty) buffer back so its capacity is reused instead of reallocated.
    std::lock_guard lock(outbox_mutex_);
    if (outbox_.empty() && batch.capacity() > outbox_.capacity()) {
      batch.clear();
      outbox_.swap(batch);
    }
  }
}

// A local dispatch: the worker reporting inline takes it as its next attempt, so a chain runs
// on one worker without touching the channel; the rest go through the channel.
void run_driver::hand_out(ticket t) {
  if (taking_for_ && !taking_for_->next && !taking_for_->retired) {
    taking_for_->next = t;
    return;
  }
  channel_.try_send(t);  // never full: the core hands out at most the channel's capacity
}

void run_driver::mirror_stop() {
  if (worker_pool_ && core_) stop_mirror_.store(core_->stopping(), std::memory_order_release);
}

void run_driver::cancel_local_attempts() {
  mirror_stop();
  const stop_mode mode = core_->stopping();
  for (local_worker& w : workers_) {
    if (!worker_pool_) {
      cancel_on_worker(w, mode);
    } else {
      asio::post(w.strand,
                 [self = shared_from_this(), &w, mode] { self->cancel_on_worker(w, mode); });
    }
  }
  wake_slot_waiters();
}

void run_driver::cancel_on_worker(local_worker& w, stop_mode mode) {
  if (w.current == no_module || w.retired || w.cancel_sent) return;
  if (mode == stop_mode::unless_always_run && plan_->record(w.current).has(module_flag::always_run))
    return;
  w.cancel_sent = true;
  w.signal.emit(asio::cancellation_type::terminal);
  if (w.current_is_supervised) return;  // its attempt_control waits out the grace itself
  w.grace_timer.expires_after(options_.cancel_grace);
  w.grace_timer.async_wait([self = shared_from_this(), &w, i = w.current,
                            attempt = w.current_attempt](boost::system::error_code ec) {
    if (ec || w.current != i || w.current_attempt != attempt) return;
    // The body ignored cancellation: the run ends the attempt without it, and this worker
    // retires (it exits once the body returns) while a new one takes its place.
    w.retired = true;
    self->release_shared_slot(w);
    worker_report r{.what = worker_report::kind::abandoned,
                    .worker = w.number,
                    .module = i,
                    .attempt = attempt,
                    .started = w.current_started,
                    .at = core_clock::now(),
                    .outcome = {}};
    r.outcome.status = module_status::cancelled;
    r.outcome.error = "the body ignored cancellation for " +
                      std::to_string(self->options_.cancel_grace.count()) +
                      " ms and was abandoned on " + w.name;
    asio::post(self->strand_, [self, r = std::move(r)]() mutable {
      --self->live_workers_;  // the run does not wait for the retired worker to exit
      if (!self->finished_) self->spawn_worker();  // keep the promised concurrency
      self->handle(r);
    });
  });
}

void run_driver::on_worker_exit() {
  --live_workers_;
  if (live_workers_ == 0 && pending_report_) {
    auto report = std::move(*pending_report_);
    pending_report_.reset();
    deliver(std::move(report));
  }
}

}  // namespace drover::detail
