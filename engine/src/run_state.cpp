#include "run_state.hpp"

#include <drover/cache.hpp>
#include <drover/journal.hpp>
#include <drover/secrets.hpp>
#include "attempt_failure.hpp"
#include "text.hpp"
#include "work_dir.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cmath>

namespace drover::detail {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// Ready modules handed to the channel ahead of demand, per worker. A worker then finds its
// next module without suspending and the strand settles completions in batches; the price is
// that a module becoming ready later waits behind at most this many per worker regardless of
// priority.
constexpr std::size_t handoff_per_worker = 16;

std::string lower_case(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string describe_blocker(module_status status) {
  switch (status) {
    case module_status::failed:
      return "failed";
    case module_status::timed_out:
      return "timed out";
    case module_status::cancelled:
      return "was cancelled";
    case module_status::skipped:
      return "was skipped";
    default:
      return "did not succeed";
  }
}

}  // namespace

run_state::run_state(asio::any_io_executor run_executor, asio::any_io_executor worker_pool,
                     pipeline p, run_options options, handler_type handler)
    : pipeline_(std::move(p)),
      options_(std::move(options)),
      workspace_(absolute_workspace(options_.workspace)),
      strand_(asio::make_strand(run_executor)),
      worker_pool_(std::move(worker_pool)),
      // With remote workers, local ones take only what they can run now, so that ready
      // modules stay available to whichever worker frees up first.
      channel_capacity_(options_.remote
                            ? std::max<std::size_t>(options_.workers, 1)
                            : std::max<std::size_t>(options_.workers, 1) * handoff_per_worker),
      channel_(run_executor, channel_capacity_),
      handler_(std::move(handler)) {
  auto handler_executor = asio::get_associated_executor(handler_, run_executor);
  handler_work_ = asio::prefer(handler_executor, asio::execution::outstanding_work.tracked);
  rng_.seed(options_.seed != 0 ? options_.seed
                               : static_cast<std::uint64_t>(
                                     std::chrono::steady_clock::now().time_since_epoch().count()));
}

run_state::run_state(asio::any_io_executor run_executor, asio::any_io_executor worker_pool,
                     pipeline p, drover::graph g, run_options options, handler_type handler)
    : run_state(std::move(run_executor), std::move(worker_pool), std::move(p), std::move(options),
                std::move(handler)) {
  graph_ = std::move(g);
  prepared_ = true;
}

void run_state::start() {
  auto slot = asio::get_associated_cancellation_slot(handler_);
  if (slot.is_connected()) {
    // The slot handler runs wherever the caller emits; hop onto the strand.
    slot.assign([self = shared_from_this()](asio::cancellation_type) {
      asio::post(self->strand_, [self] { self->stop(stop_mode::everything); });
    });
  }
  asio::post(strand_, [self = shared_from_this()] { self->begin(); });
}

void run_state::begin() {
  started_at_ = wall_clock::now();
  if (!prepared_) {
    if (auto problems = expand_matrix(pipeline_); !problems.empty()) {
      return complete_invalid(std::move(problems));
    }
    auto built = build_graph(pipeline_);
    if (!built.ok()) return complete_invalid(std::move(built.problems));
    graph_ = std::move(*built.graph);
  }

  if (options_.journal || options_.cache) {
    fingerprints_ = std::make_unique<fingerprinter>(pipeline_, graph_, workspace_);
  }
  if (options_.journal) {
    if (options_.remote && options_.remote->config().epoch != options_.journal->epoch()) {
      return complete_invalid(
          {{{},
            "journal",
            "the worker hub's epoch (" + std::to_string(options_.remote->config().epoch) +
                ") is not the journal's (" + std::to_string(options_.journal->epoch()) +
                "): give the hub run_journal::epoch()"}});
    }
    if (auto refused = options_.journal->begin_run(pipeline_, pipeline_fingerprint(pipeline_))) {
      return complete_invalid({{{}, "journal", std::move(*refused)}});
    }
    if (options_.journal->resuming() && options_.journal->dropped_torn_line()) {
      notes_.push_back(
          "the journal's last line was torn (the process died while writing it) "
          "and was dropped");
    }
    if (options_.journal->pipeline_changed()) {
      notes_.push_back(
          "the pipeline changed since the journal was written: only modules whose "
          "fingerprint is unchanged were reused");
    }
  }

  capabilities_.push_back(lower_case(local_os_label()));
  for (const auto& label : options_.capabilities)
    capabilities_.push_back(lower_case(label));

  const std::size_t n = graph_.size();
  local_workers_ = options_.remote ? options_.workers : std::max<std::size_t>(options_.workers, 1);
  if (options_.remote) setup_remote();
  ready_.resize(n);
  gate_ = constraint_gate(pipeline_, [this](index i) { return ready_key(i); });
  // Handing modules out ahead of demand is what makes tiny modules cheap, but a module in the
  // channel can no longer be overtaken by one that becomes ready later with a higher priority
  // or a longer critical path. So when modules differ in those, hand out only one per worker
  // (two with a pool, whose workers cannot refill the channel themselves); a worker sharing
  // the run's strand refills it inline when it reports, so it loses nothing.
  handoff_limit_ = channel_capacity_;
  for (index i = 1; i < n; ++i) {
    if (ready_key(i) != ready_key(0)) {
      const std::size_t per_worker = worker_pool_ ? 2 : 1;
      handoff_limit_ =
          std::min(channel_capacity_, std::max<std::size_t>(local_workers_, 1) * per_worker);
      break;
    }
  }
  pending_deps_.resize(n);
  for (index i = 0; i < n; ++i)
    pending_deps_[i] = graph_.in_degree(i);
  blocker_.assign(n, no_module);
  results_.resize(n);
  remaining_ = n;

  emit(event_type::run_started);
  // Workers first, so that a fail_fast triggered while settling can reach them.
  for (std::size_t w = 0; w < local_workers_; ++w)
    spawn_worker();
  for (index i = 0; i < n; ++i) {
    if (pending_deps_[i] == 0) worklist_.push_back(i);
  }
  std::reverse(worklist_.begin(), worklist_.end());  // settle pops from the back: keep file order
  settle();
}

// Processes modules whose dependencies are all terminal, then reacts to what that changed:
// fail_fast, completion, or more work for the channel.
void run_state::settle() {
  while (!worklist_.empty()) {
    const index next = worklist_.back();
    worklist_.pop_back();
    became_ready(next);
  }
  if (fail_fast_cause_ != no_module && stop_.load() == stop_mode::none) {
    return stop(stop_mode::unless_always_run);
  }
  if (remaining_ == 0) return complete();
  pump();
  if (in_flight_ == 0 && remote_in_flight_ == 0 && ready_.empty() && startable_.empty() &&
      backoff_timers_.empty() && awaiting_durable_.empty() && gate_.parked() > 0) {
    fail_stuck_waiters();
    settle();
  }
}

void run_state::spawn_worker() {
  const auto id = static_cast<std::uint32_t>(workers_.size());
  // Without a pool the workers share the run's strand: a worker then settles its own
  // completion inline and usually finds the successor already in the channel, so a chain of
  // modules runs without a single executor hop. A pool gives each worker its own strand.
  worker& w = workers_.emplace_back(id, worker_pool_ ? asio::make_strand(worker_pool_) : strand_);
  worker_names_.push_back(w.name);
  ++live_workers_;
  asio::co_spawn(w.strand, worker_loop(w),
                 asio::bind_cancellation_slot(w.signal.slot(),
                                              [self = shared_from_this()](std::exception_ptr) {}));
}

// A worker takes ready modules from the channel and awaits their bodies directly: no
// co_spawn per module, so the only per-module allocation is the body's own frame.
asio::awaitable<void> run_state::worker_loop(worker& w) {
  // The run outlives every worker. On exit the reference travels to the strand behind the
  // worker's last reports, so the strand can use raw `this` for them, and the strand delivers
  // the report only once every worker has exited: nothing bound to the workers' executor (a
  // pool the engine owns) is left to be destroyed after that pool.
  auto self = shared_from_this();
  struct release_on_exit {
    std::shared_ptr<run_state>& self;
    worker& w;
    ~release_on_exit() {
      w.grace_timer.cancel();
      if (w.retired) return;  // on_abandoned already stopped waiting for this worker
      auto& strand = self->strand_;
      asio::post(strand, [keep = std::move(self)] { keep->on_worker_exit(); });
    }
  } release{self, w};
  for (;;) {
    index i = no_module;
    bool closed = false;
    const bool got = channel_.try_receive([&](boost::system::error_code ec, index v) {
      if (ec)
        closed = true;
      else
        i = v;
    });
    if (!got) {
      auto [ec, v] = co_await channel_.async_receive(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      i = v;
    } else if (closed) {
      co_return;
    }

    const module_spec& spec = pipeline_.modules[i];
    const stop_mode stopping = stop_.load(std::memory_order_acquire);
    const bool failing_fast = stopping == stop_mode::unless_always_run ||
                              fail_fast_pending_.load(std::memory_order_acquire);
    if (stopping == stop_mode::everything || (failing_fast && !spec.always_run)) {
      report_to_strand({worker_report::kind::not_started, module_status::cancelled, w.index, i, 0});
      continue;
    }

    module_result& slot = results_[i];
    const std::uint32_t attempt = ++slot.attempts;
    if (attempt == 1) slot.started_at = wall_clock::now();
    slot.worker = static_cast<std::int32_t>(w.index);
    w.current = i;
    w.current_attempt = attempt;
    w.cancel_sent = false;
    if (options_.on_event) {
      report_to_strand({worker_report::kind::started, module_status::pending, w.index, i, attempt});
    }

    // The direct path stores the value straight into the slot: no copies on the hot path.
    module_status status = module_status::failed;
    std::string error;
    if (auto timeout = timeout_of(i)) {
      w.current_is_timed = true;
      attempt_outcome outcome = co_await run_timed(w, i, attempt, *timeout);
      status = outcome.status;
      error = std::move(outcome.error);
      if (!w.retired) slot.value = std::move(outcome.value);
    } else {
      w.current_is_timed = false;
      module_context ctx(*this, i, attempt, w);
      boost::json::value value;
      try {
        value = co_await spec.body(ctx);
        status = module_status::succeeded;
      } catch (...) {
        classify_failure(std::current_exception(), status, error);
      }
      if (w.retired) {
        attempt_files::discard(ctx);  // abandoned: whatever it produced is not promoted
      } else {
        attempt_files::settle(ctx, spec, status, error);
        if (status == module_status::succeeded) slot.value = std::move(value);
      }
    }

    w.current = no_module;
    if ((co_await asio::this_coro::cancellation_state).cancelled() !=
        asio::cancellation_type::none) {
      // The engine cancelled this attempt: "Operation canceled" from the aborted wait says
      // nothing the strand's own reason does not.
      if (status == module_status::cancelled) error.clear();
      co_await asio::this_coro::reset_cancellation_state();
    } else if (status == module_status::cancelled) {
      status = module_status::failed;  // an abort the body met on its own is a failure
    }
    if (w.retired) {
      // The strand already gave up on this attempt and may have finished the run: the slot is
      // no longer ours to write.
      co_return;
    }
    if (!error.empty() || !slot.reason.empty()) slot.reason = std::move(error);
    if (ends_in_fail_fast(i, attempt, status)) {
      // Modules already handed to this or another worker must not start before the strand
      // reads this report and raises stop_: they see this flag instead.
      fail_fast_pending_.store(true, std::memory_order_release);
    }
    report_to_strand({worker_report::kind::finished, status, w.index, i, attempt});
  }
}

void run_state::report_to_strand(const worker_report& report) {
  if (!worker_pool_) return handle(report);  // the worker is on strand_ already
  bool post_drain = false;
  {
    std::lock_guard lock(outbox_mutex_);
    outbox_.push_back(report);
    post_drain = !std::exchange(drain_posted_, true);
  }
  if (post_drain) {
    // Raw `this` is safe: a worker loop holds the run alive and, before it exits, posts its
    // reference behind everything it reported (see worker_loop's exit path).
    asio::post(strand_, [this] { drain_outbox(); });
  }
}

void run_state::handle(const worker_report& r) {
  switch (r.what) {
    case worker_report::kind::started:
      emit(event_type::module_started, r.module, r.attempt, static_cast<std::int32_t>(r.worker));
      break;
    case worker_report::kind::finished:
      --in_flight_;
      release_constraints(r.module);
      on_attempt_done(r.module, r.attempt, r.status);
      break;
    case worker_report::kind::not_started:
      --in_flight_;
      release_constraints(r.module);
      on_not_started(r.module);
      break;
  }
}

void run_state::drain_outbox() {
  std::vector<worker_report> batch;
  {
    std::lock_guard lock(outbox_mutex_);
    batch.swap(outbox_);
    drain_posted_ = false;
  }
  for (const worker_report& r : batch)
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

namespace {

// One attempt of a module with a timeout. It runs as its own coroutine so that the worker can
// walk away from a body that ignores cancellation.
struct timed_attempt {
  timed_attempt(run_state& run, index i, std::uint32_t attempt, const worker& w)
      : module(i), ctx(run, i, attempt, w), timer(w.strand) {}
  index module;
  module_context ctx;
  asio::cancellation_signal signal;
  asio::steady_timer timer;
  bool done = false;
  bool abandoned = false;  // run_timed stopped waiting: the body cleans up after itself
  attempt_outcome outcome;
};

}  // namespace

asio::awaitable<attempt_outcome> run_state::run_timed(worker& w, index i, std::uint32_t attempt,
                                                      std::chrono::milliseconds timeout) {
  auto self = shared_from_this();
  auto t = std::make_shared<timed_attempt>(*this, i, attempt, w);
  t->timer.expires_after(timeout);
  asio::co_spawn(
      w.strand,
      [self, t]() -> asio::awaitable<void> {
        try {
          t->outcome.value = co_await self->pipeline_.modules[t->module].body(t->ctx);
          t->outcome.status = module_status::succeeded;
        } catch (...) {
          classify_failure(std::current_exception(), t->outcome.status, t->outcome.error);
        }
        if (t->abandoned) attempt_files::discard(t->ctx);
      },
      asio::bind_cancellation_slot(t->signal.slot(), [t](std::exception_ptr) {
        t->done = true;
        t->timer.cancel();
      }));

  auto [ec] = co_await t->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (t->done) {
    // Nobody cancelled it yet: an abort it met was its own doing.
    if (t->outcome.status == module_status::cancelled) t->outcome.status = module_status::failed;
    attempt_files::settle(t->ctx, pipeline_.modules[i], t->outcome.status, t->outcome.error);
    if (t->outcome.status != module_status::succeeded) t->outcome.value = nullptr;
    co_return std::move(t->outcome);
  }

  // Either the limit passed (no error) or the run cancelled this worker (aborted wait).
  const bool timed_out = !ec;
  if (!timed_out) co_await asio::this_coro::reset_cancellation_state();
  t->signal.emit(asio::cancellation_type::terminal);
  if (!t->done) {
    t->timer.expires_after(options_.cancel_grace);
    co_await t->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  // The attempt ends timed out or cancelled whatever the body returned: nothing is promoted.
  if (t->done) {
    attempt_files::discard(t->ctx);
  } else {
    t->abandoned = true;
  }
  attempt_outcome outcome;
  outcome.status = timed_out ? module_status::timed_out : module_status::cancelled;
  outcome.error = stop_error(timed_out, timeout);
  add_stop_detail(outcome.error, !t->done, options_.cancel_grace, t->outcome.status,
                  t->outcome.error);
  co_return outcome;
}

// Mirrors on_attempt_done's decision, from immutable spec fields only, so workers may call it.
bool run_state::ends_in_fail_fast(index i, std::uint32_t attempt, module_status status) const {
  if (pipeline_.mode != execution_mode::fail_fast) return false;
  if (status != module_status::failed && status != module_status::timed_out) return false;
  const module_spec& spec = pipeline_.modules[i];
  return !spec.ignore_failure && static_cast<int>(counted_attempt(i, attempt)) >
                                     spec.retries.value_or(pipeline_.defaults.retries);
}

std::optional<std::chrono::milliseconds> run_state::timeout_of(index i) const {
  const auto& m = pipeline_.modules[i];
  return m.timeout ? m.timeout : pipeline_.defaults.timeout;
}

// Moves ready modules into the channel while it has room; the rest wait in priority order.
// Modules in the channel are a subset of those in flight, so counting in-flight modules tells
// when a send will succeed without a failed try_send (and its lock) per call.
//
// Modules governed by constraints pass the gate first; one that may not start yet is parked
// there and comes back through startable_ once what it waits for is released.
void run_state::pump() {
  if (hub_) return pump_distributed();
  const std::size_t limit = handoff_limit_;
  while (in_flight_ < limit) {
    index i = no_module;
    if (!startable_.empty()) {
      i = startable_.front();
      startable_.pop_front();
    } else if (!ready_.empty()) {
      i = ready_.pop();
      if (gate_.governs(i) && !gate_.try_start(i)) continue;
    } else {
      return;
    }
    if (!channel_.try_send(boost::system::error_code{}, i)) {
      startable_.push_front(i);  // it may hold gate resources: it goes first next time
      return;
    }
    ++in_flight_;
  }
}

ready_queue::key_type run_state::ready_key(index i) const {
  const std::uint32_t rank =
      options_.order == ready_order::critical_path ? graph_.critical_path(i) : 0;
  return ready_queue::make_key(pipeline_.modules[i].priority, rank);
}

void run_state::release_constraints(index i) {
  if (!gate_.governs(i)) return;
  gate_started_.clear();
  gate_.release(i, gate_started_);
  startable_.insert(startable_.end(), gate_started_.begin(), gate_started_.end());
}

// A module needs every label it requires among the local workers' labels (case-insensitive).
std::optional<std::string> run_state::missing_capabilities(index i) const {
  const module_constraints* c = pipeline_.modules[i].constraints.get();
  if (c == nullptr || c->required_capabilities.empty()) return std::nullopt;
  std::string missing;
  for (const auto& label : c->required_capabilities) {
    const std::string wanted = lower_case(label);
    if (std::find(capabilities_.begin(), capabilities_.end(), wanted) != capabilities_.end())
      continue;
    missing += (missing.empty() ? "" : ", ") + label;
  }
  if (missing.empty()) return std::nullopt;
  std::string have;
  for (const auto& label : capabilities_)
    have += (have.empty() ? "" : ", ") + label;
  return "no worker has the capabilities it requires: " + missing +
         " (local workers have: " + have + ")";
}

// The gate's waits always end when what they wait for is released, so this never fires; it
// is the guarantee that a bug there fails the waiting modules instead of hanging the run.
void run_state::fail_stuck_waiters() {
  for (index i : gate_.take_parked()) {
    finish(i, module_status::failed,
           "internal error: waited for a constraint that nothing running could release");
  }
}

void run_state::became_ready(index i) {
  const module_spec& spec = pipeline_.modules[i];
  const stop_mode stopping = stop_.load(std::memory_order_relaxed);
  if (stopping == stop_mode::everything) {
    return finish(i, module_status::cancelled, stop_reason());
  }
  if (blocker_[i] != no_module && !spec.always_run) {
    const index b = blocker_[i];
    const module_status bs = results_[b].status;
    const module_status status =
        bs == module_status::cancelled ? module_status::cancelled : module_status::skipped;
    return finish(i, status, "dependency " + pipeline_.modules[b].id + " " + describe_blocker(bs));
  }
  if (stopping == stop_mode::unless_always_run && !spec.always_run) {
    return finish(i, module_status::cancelled, stop_reason());
  }
  if (spec.skip_if) {
    std::optional<std::string> reason;
    try {
      reason = spec.skip_if();
    } catch (const std::exception& e) {
      return finish(i, module_status::failed, std::string("skip condition threw: ") + e.what());
    }
    if (reason) return finish(i, module_status::skipped, std::move(*reason));
  }
  if (!hub_) {
    // Every worker of a local run is known: a module none of them can run is skipped.
    if (auto missing = missing_capabilities(i)) {
      return finish(i, module_status::skipped, std::move(*missing));
    }
  } else if (local_workers_ == 0 && spec.constraints && spec.constraints->pin_local) {
    return finish(i, module_status::failed,
                  "pin_local, but the run has no local workers (workers = 0)");
  }
  if (fingerprints_ && reuse_earlier_result(i)) return;
  push_ready(i);
  emit(event_type::module_ready, i);
}

bool run_state::cacheable(index i) const {
  const module_spec& spec = pipeline_.modules[i];
  if (spec.io && !spec.io->cacheable) return false;
  return !spec.kind.empty() || (spec.io && !spec.io->version.empty());
}

// A module whose fingerprint matches a success recorded in the journal, or an entry of the
// cache, ends as cached with that value instead of running.
bool run_state::reuse_earlier_result(index i) {
  const module_spec& spec = pipeline_.modules[i];
  std::string fingerprint;
  try {
    fingerprint = fingerprints_->compute(i);
  } catch (const std::exception& e) {
    finish(i, module_status::failed, e.what());
    return true;
  }
  if (options_.journal) {
    const auto* earlier = options_.journal->previous(spec.id);
    if (earlier != nullptr && earlier->fingerprint == fingerprint &&
        (earlier->status == module_status::succeeded || earlier->status == module_status::cached)) {
      results_[i].value = earlier->value;
      ++from_journal_;
      finish(i, module_status::cached, "reused from the journal of an earlier run");
      return true;
    }
  }
  if (options_.cache && cacheable(i)) {
    if (auto value = options_.cache->restore(fingerprint, workspace_)) {
      results_[i].value = std::move(*value);
      ++from_cache_;
      finish(i, module_status::cached, "reused from the cache");
      return true;
    }
  }
  return false;
}

// Records a terminal state and releases dependents. Successors whose last dependency this was
// go on worklist_ for settle() rather than being processed here, so a long chain of skips
// cannot recurse.
// A succeeded module keeps the value its worker stored, a cached one the value it reused; any
// other state has none.
void run_state::finish(index i, module_status status, std::string reason) {
  module_result& r = results_[i];
  r.status = status;
  if (!reason.empty() || !r.reason.empty()) r.reason = std::move(reason);
  const bool has_value = status == module_status::succeeded || status == module_status::cached;
  if (!has_value && !r.value.is_null()) r.value = nullptr;
  if (options_.secrets && !options_.secrets->empty()) {
    // Before anything reads them: events, the journal, the cache, dependents, the report.
    options_.secrets->mask_in_place(r.reason);
    options_.secrets->mask_in_place(r.value);
  }
  r.finished_at = wall_clock::now();
  if (r.attempts == 0) r.started_at = r.finished_at;
  --remaining_;
  emit(event_type::module_finished, i, r.attempts, r.worker, status, r.reason);
  if (is_failure(status) && status != module_status::cancelled &&
      pipeline_.mode == execution_mode::fail_fast && fail_fast_cause_ == no_module) {
    fail_fast_cause_ = i;
  }
  if (fingerprints_ && record_terminal(i)) return;  // dependents released once it is durable
  release_dependents(i);
}

// Stores a success in the cache and appends the terminal record to the journal. Returns true
// when the module's dependents must wait for the record to be durable: with fsync durability
// a resumed run must never find a dependent's success without the success it built on.
bool run_state::record_terminal(index i) {
  const module_result& r = results_[i];
  const module_spec& spec = pipeline_.modules[i];
  if (r.status == module_status::succeeded && options_.cache && cacheable(i)) {
    const bool has_outputs = spec.io && !spec.io->outputs.empty();
    const bool ran_remotely =
        has_outputs && std::any_of(remotes_.begin(), remotes_.end(), [&](const remote_entry& e) {
          return static_cast<std::int32_t>(e.number) == r.worker;
        });
    if (ran_remotely) {
      // Its outputs are on the worker's machine: storing the value alone would restore none.
    } else if (auto problem = options_.cache->store(fingerprints_->of(i), spec.id, r.value,
                                                    workspace_, promoted_outputs(i))) {
      notes_.push_back(std::move(*problem));
    }
  }
  if (!options_.journal) return false;
  const std::uint64_t seq = options_.journal->append_module(spec.id, fingerprints_->of(i), r.status,
                                                            r.attempts, r.value, r.reason);
  if (options_.journal->mode() != durability::fsync || graph_.successors(i).empty()) {
    return false;
  }
  awaiting_durable_.push_back({seq, i});
  request_durable();
  return true;
}

// Promotion moved them to the same relative paths in the workspace, where no module unordered
// with this one may write (validation rejects overlapping outputs).
std::vector<std::string> run_state::promoted_outputs(index i) const {
  const module_spec& spec = pipeline_.modules[i];
  if (!spec.io || spec.io->outputs.empty()) return {};
  return match_files(workspace_, spec.io->outputs);
}

void run_state::request_durable() {
  if (durable_wait_requested_ || awaiting_durable_.empty()) return;
  durable_wait_requested_ = true;
  const std::uint64_t seq = awaiting_durable_.back().seq;
  options_.journal->when_durable(seq, [self = shared_from_this(), seq] {
    asio::post(self->strand_, [self, seq] { self->on_durable(seq); });
  });
}

// Everything up to `seq` is durable: release the dependents of those modules, in record order.
void run_state::on_durable(std::uint64_t seq) {
  durable_wait_requested_ = false;
  if (finished_) return;
  while (!awaiting_durable_.empty() && awaiting_durable_.front().seq <= seq) {
    release_dependents(awaiting_durable_.front().module);
    awaiting_durable_.pop_front();
  }
  request_durable();
  settle();
}

void run_state::release_dependents(index i) {
  const bool ok = lets_dependents_run(results_[i].status);
  for (index s : graph_.successors(i)) {
    if (!ok && blocker_[s] == no_module) blocker_[s] = i;
    if (--pending_deps_[s] == 0) worklist_.push_back(s);
  }
}

// The worker has stored the attempt's value and error text in results_[i].
void run_state::on_attempt_done(index i, std::uint32_t attempt, module_status status) {
  module_result& r = results_[i];
  if (is_done(i) || attempt != r.attempts) return;  // abandoned earlier: stale
  const module_spec& spec = pipeline_.modules[i];
  if (status == module_status::succeeded) {
    finish(i, module_status::succeeded, {});
  } else if (stop_applies(i) && status != module_status::timed_out) {
    finish(i, module_status::cancelled,
           stop_reason() + (r.reason.empty() ? "" : " (" + r.reason + ")"));
  } else if (status == module_status::cancelled) {
    finish(i, module_status::cancelled, std::move(r.reason));
  } else {
    const int retries = spec.retries.value_or(pipeline_.defaults.retries);
    if (static_cast<int>(counted_attempt(i, attempt)) <= retries && !stop_applies(i)) {
      r.value = nullptr;
      schedule_retry(i, attempt, r.reason);
    } else if (spec.ignore_failure) {
      finish(i, module_status::ignored_failure, std::move(r.reason));
    } else {
      finish(i, status, std::move(r.reason));
    }
  }
  settle();
}

void run_state::on_not_started(index i) {
  if (is_done(i)) return;
  finish(i, module_status::cancelled, stop_reason());
  settle();
}

void run_state::on_abandoned(std::uint32_t worker_index, index i, std::uint32_t attempt) {
  if (is_done(i) || attempt != results_[i].attempts) return;
  ++abandoned_;
  --in_flight_;            // its retired worker will not report it
  --live_workers_;         // nor will the run wait for it to exit
  release_constraints(i);  // the body may still run, but the run has given up on it
  finish(i, module_status::cancelled,
         stop_reason() + "; the body ignored cancellation for " +
             std::to_string(options_.cancel_grace.count()) + " ms and was abandoned on " +
             worker_names_[worker_index]);
  if (remaining_ > 0) spawn_worker();  // the stuck worker retired; keep the promised concurrency
  settle();
}

void run_state::schedule_retry(index i, std::uint32_t attempt, const std::string& error) {
  const module_spec& spec = pipeline_.modules[i];
  const backoff_policy& b = spec.backoff ? *spec.backoff : pipeline_.defaults.backoff;
  double delay_ms = static_cast<double>(b.initial.count()) *
                    std::pow(b.multiplier, static_cast<double>(attempt - 1));
  delay_ms = std::min(delay_ms, static_cast<double>(b.max.count()));
  if (b.jitter > 0) {
    std::uniform_real_distribution<double> factor(1.0 - b.jitter, 1.0 + b.jitter);
    delay_ms *= factor(rng_);
  }
  const auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(delay_ms)));
  emit(event_type::module_retrying, i, attempt, results_[i].worker, module_status::pending, error,
       delay);

  auto& timer = backoff_timers_[i];
  if (!timer) timer = std::make_unique<asio::steady_timer>(strand_);
  timer->expires_after(delay);
  timer->async_wait([self = shared_from_this(), i](boost::system::error_code) {
    if (self->is_done(i) || self->finished_) return;
    self->backoff_timers_.erase(i);
    if (self->stop_applies(i)) {
      self->finish(i, module_status::cancelled, self->stop_reason());
    } else {
      self->push_ready(i);
    }
    self->settle();
  });
}

bool run_state::stop_applies(index i) const {
  switch (stop_.load(std::memory_order_relaxed)) {
    case stop_mode::none:
      return false;
    case stop_mode::unless_always_run:
      return !pipeline_.modules[i].always_run;
    case stop_mode::everything:
      return true;
  }
  return false;
}

std::string run_state::stop_reason() const {
  if (stop_.load(std::memory_order_relaxed) == stop_mode::everything) return "run cancelled";
  if (fail_fast_cause_ != no_module) {
    return "cancelled by fail_fast after " + in_quotes(pipeline_.modules[fail_fast_cause_].id) +
           " " + describe_blocker(results_[fail_fast_cause_].status);
  }
  return "cancelled";
}

// Cancels what the mode covers: ready and backing-off modules end cancelled at once, running
// ones are asked to stop and abandoned if they do not within cancel_grace.
void run_state::stop(stop_mode mode) {
  if (finished_ || static_cast<int>(mode) <= static_cast<int>(stop_.load())) return;
  stop_.store(mode, std::memory_order_release);
  if (results_.empty()) return;  // not begun: begin() cancels everything it finds

  for (worker& w : workers_) {
    asio::post(w.strand,
               [self = shared_from_this(), &w, mode] { self->cancel_on_worker(w, mode); });
  }
  std::vector<index> waiting = ready_.take_all();
  std::vector<index> parked = gate_.take_parked();
  waiting.insert(waiting.end(), parked.begin(), parked.end());
  for (auto& group : groups_) {
    waiting.insert(waiting.end(), group.waiting.begin(), group.waiting.end());
    group.waiting.clear();
  }
  cancel_remote_attempts();
  for (index i : waiting) {
    if (stop_applies(i)) {
      finish(i, module_status::cancelled, stop_reason());
    } else {
      push_ready(i);
    }
  }
  for (auto& [i, timer] : backoff_timers_) {
    if (stop_applies(i)) timer->cancel();
  }
  settle();
}

void run_state::cancel_on_worker(worker& w, stop_mode mode) {
  if (w.current == no_module || w.retired || w.cancel_sent) return;
  if (mode == stop_mode::unless_always_run && pipeline_.modules[w.current].always_run) return;
  w.cancel_sent = true;
  w.signal.emit(asio::cancellation_type::terminal);
  if (w.current_is_timed) return;  // run_timed waits out the grace period itself
  w.grace_timer.expires_after(options_.cancel_grace);
  w.grace_timer.async_wait([self = shared_from_this(), &w, i = w.current,
                            attempt = w.current_attempt](boost::system::error_code ec) {
    if (ec || w.current != i || w.current_attempt != attempt) return;
    w.retired = true;
    asio::post(self->strand_,
               [self, wi = w.index, i, attempt] { self->on_abandoned(wi, i, attempt); });
  });
}

void run_state::emit(event_type type, index i, std::uint32_t attempt, std::int32_t worker,
                     module_status status, std::string_view message,
                     std::chrono::milliseconds delay) {
  if (!options_.on_event) return;
  event e{};
  e.type = type;
  e.seq = next_seq_++;
  e.ts = wall_clock::now();
  if (i != no_module) {
    e.module = pipeline_.modules[i].id;
    e.index = i;
  }
  e.attempt = attempt;
  if (worker >= 0) e.worker = worker_names_[static_cast<std::size_t>(worker)];
  e.status = status;
  std::string masked;
  if (options_.secrets && !options_.secrets->empty() && !message.empty()) {
    masked = options_.secrets->mask(message);
    message = masked;
  }
  e.message = message;
  e.delay = delay;
  e.total = pipeline_.modules.size();
  try {
    options_.on_event(e);
  } catch (...) {
    // A subscriber's failure must not break the run.
  }
}

void run_state::complete() {
  if (finished_) return;
  finished_ = true;
  channel_.close();
  for (auto& [i, timer] : backoff_timers_)
    timer->cancel();

  run_report report;
  report.pipeline = pipeline_.name;
  report.started_at = started_at_;
  report.finished_at = wall_clock::now();
  report.workers = worker_names_;
  // Abandoned bodies may still read ids and results through their context, so copy then.
  if (abandoned_ == 0) {
    report.modules = std::move(results_);
    for (std::size_t i = 0; i < report.modules.size(); ++i) {
      report.modules[i].id = std::move(pipeline_.modules[i].id);
    }
  } else {
    report.modules = results_;
    for (std::size_t i = 0; i < report.modules.size(); ++i) {
      report.modules[i].id = pipeline_.modules[i].id;
    }
  }
  report.remote = remote_stats_;
  report.epoch = hub_ ? hub_->config().epoch : (options_.journal ? options_.journal->epoch() : 0);
  report.reused_from_journal = from_journal_;
  report.reused_from_cache = from_cache_;
  if (hub_) {
    for (auto& r : remotes_) {
      if (r.alive) r.link->run_finished("run finished");
    }
    hub_->unbind();
    for (auto& group : groups_) {
      if (group.capability_timer) group.capability_timer->cancel();
    }
    if (remote_cancel_timer_) remote_cancel_timer_->cancel();
    if (overdue_timer_) overdue_timer_->cancel();
  }
  bool any_failure = false;
  for (const auto& m : report.modules) {
    ++report.counts[static_cast<std::size_t>(m.status)];
    any_failure = any_failure || is_failure(m.status);
  }
  report.status = stop_.load() == stop_mode::everything ? run_status::cancelled
                  : any_failure                         ? run_status::failed
                                                        : run_status::succeeded;
  if (options_.journal) {
    options_.journal->end_run(report.status);  // waits for the last records to be durable
    if (auto failure = options_.journal->failure()) {
      notes_.push_back(*failure + "; a resume would rerun what it did not record");
    }
  }
  report.notes = std::move(notes_);
  emit(event_type::run_finished, no_module, 0, -1, module_status::pending,
       to_string(report.status));

  if (live_workers_ == 0) return deliver(std::move(report));
  pending_report_ = std::move(report);  // delivered by the last worker's exit
}

void run_state::on_worker_exit() {
  --live_workers_;
  if (live_workers_ == 0 && pending_report_) {
    auto report = std::move(*pending_report_);
    pending_report_.reset();
    deliver(std::move(report));
  }
}

void run_state::deliver(run_report report) {
  auto slot = asio::get_associated_cancellation_slot(handler_);
  if (slot.is_connected()) slot.clear();
  const auto executor = handler_work_;
  asio::dispatch(executor, [handler = std::move(handler_), report = std::move(report),
                            work = std::move(handler_work_)]() mutable {
    std::move(handler)(std::move(report));
  });
}

void run_state::complete_invalid(std::vector<validation_problem> problems) {
  finished_ = true;
  channel_.close();
  if (options_.remote) {
    // Workers that attached before validation ran are told it is over when their attach
    // reaches the strand; later ones by the hub itself.
    hub_ = options_.remote;
    bind_hub();
    hub_->unbind();
  }
  run_report report;
  report.pipeline = pipeline_.name;
  report.status = run_status::invalid;
  report.started_at = started_at_;
  report.finished_at = wall_clock::now();
  report.problems = std::move(problems);
  deliver(std::move(report));
}

// ---- remote workers ------------------------------------------------------------------------

void run_state::bind_hub() {
  // The hub keeps the run alive until unbind(): remote completions may be all that is left.
  hub_->bind([self = shared_from_this()](std::function<void(run_state&)> call) {
    asio::post(self->strand_, [self, call = std::move(call)] { call(*self); });
  });
}

void run_state::setup_remote() {
  hub_ = options_.remote;
  const std::size_t n = pipeline_.modules.size();
  group_of_.assign(n, 0);
  losses_.assign(n, 0);
  groups_.emplace_back();  // group 0: no requirements
  std::unordered_map<std::string, std::uint32_t> group_by_signature;
  for (std::size_t i = 0; i < n; ++i) {
    const module_constraints* c = pipeline_.modules[i].constraints.get();
    if (c == nullptr || (c->required_capabilities.empty() && !c->pin_local)) continue;
    std::vector<std::string> labels;
    for (const auto& label : c->required_capabilities)
      labels.push_back(lower_case(label));
    std::sort(labels.begin(), labels.end());
    labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
    std::string signature = c->pin_local ? "local:" : "any:";
    for (const auto& label : labels)
      signature += label + ',';
    auto [it, added] =
        group_by_signature.emplace(signature, static_cast<std::uint32_t>(groups_.size()));
    if (added) {
      placement_group& g = groups_.emplace_back();
      g.pin_local = c->pin_local;
      g.capabilities = std::move(labels);
    }
    group_of_[i] = it->second;
  }
  bind_hub();
}

bool run_state::group_fits(const placement_group& g,
                           const std::vector<std::string>& capabilities) const {
  for (const auto& label : g.capabilities) {
    if (std::find(capabilities.begin(), capabilities.end(), label) == capabilities.end())
      return false;
  }
  return true;
}

bool run_state::group_has_capable_worker(const placement_group& g) const {
  if (local_workers_ > 0 && group_fits(g, capabilities_)) return true;
  if (g.pin_local) return false;
  for (const auto& r : remotes_) {
    if (r.alive && !r.draining && group_fits(g, r.capabilities)) return true;
  }
  return false;
}

// The worker for module i now: a free local worker first (no network hop), else the capable
// remote worker with the most free slots.
run_state::target run_state::find_target(index i) const {
  const placement_group& g = groups_[group_of_[i]];
  if (local_workers_ > 0 && in_flight_ < channel_capacity_ && group_fits(g, capabilities_)) {
    return {target_kind::local, 0};
  }
  if (g.pin_local) return {};
  // Only workers with a free slot are looked at; without requirements, the first one does.
  for (auto it = free_remotes_.rbegin(); it != free_remotes_.rend(); ++it) {
    if (g.capabilities.empty() || group_fits(g, remotes_[*it].capabilities)) {
      return {target_kind::remote, *it};
    }
  }
  return {};
}

// Keeps free_remotes_ listing exactly the live remote workers with a free slot.
void run_state::update_free(std::size_t r) {
  remote_entry& w = remotes_[r];
  const bool free = w.alive && !w.draining && w.running.size() + w.overdue.size() < w.slots;
  if (free && w.free_position == no_position) {
    w.free_position = free_remotes_.size();
    free_remotes_.push_back(r);
  } else if (!free && w.free_position != no_position) {
    const std::size_t last = free_remotes_.back();
    free_remotes_[w.free_position] = last;
    remotes_[last].free_position = w.free_position;
    free_remotes_.pop_back();
    w.free_position = no_position;
  }
}

void run_state::send(index i, const target& t) {
  if (t.kind == target_kind::local) {
    if (!channel_.try_send(boost::system::error_code{}, i)) {
      startable_.push_front(i);  // cannot happen while in_flight_ < capacity; keep it safe
      return;
    }
    ++in_flight_;
  } else {
    send_remote(i, remotes_[t.remote]);
  }
}

// Like pump(), but each module goes to a particular worker that can run it. A module no free
// worker can take waits in its placement group, so it does not hold up modules other
// workers could run; groups are few (one per distinct set of requirements).
void run_state::pump_distributed() {
  for (auto it = startable_.begin(); it != startable_.end();) {
    const target t = find_target(*it);
    if (t.kind == target_kind::none) {
      ++it;
      continue;
    }
    const index i = *it;
    it = startable_.erase(it);
    send(i, t);
  }
  for (auto& g : groups_) {
    while (!g.waiting.empty()) {
      const index i = g.waiting.front();
      const target t = find_target(i);
      if (t.kind == target_kind::none) break;
      g.waiting.pop_front();
      if (gate_.governs(i) && !gate_.try_start(i)) continue;
      send(i, t);
    }
  }
  // Leave modules in the ready queue, in key order, while no worker has room at all.
  // With no worker connected at all they move on too, so that the capability clock runs.
  const bool no_worker = local_workers_ == 0 && live_remotes_ == 0;
  while (!ready_.empty() && ((local_workers_ > 0 && in_flight_ < channel_capacity_) ||
                             remote_free_slots_ > 0 || no_worker)) {
    const index i = ready_.pop();
    placement_group& g = groups_[group_of_[i]];
    const target t = g.waiting.empty() ? find_target(i) : target{};
    if (t.kind == target_kind::none) {
      g.waiting.push_back(i);
      if (g.waiting.size() == 1) check_capability_timers();
      continue;
    }
    if (gate_.governs(i) && !gate_.try_start(i)) continue;
    send(i, t);
  }
}

void run_state::send_remote(index i, remote_entry& r) {
  module_result& slot = results_[i];
  const std::uint32_t attempt = ++slot.attempts;
  if (attempt == 1) slot.started_at = wall_clock::now();
  slot.worker = static_cast<std::int32_t>(r.number);
  r.running.emplace_back(i, attempt);
  ++remote_in_flight_;
  --remote_free_slots_;
  update_free(static_cast<std::size_t>(&r - remotes_.data()));

  const module_spec& spec = pipeline_.modules[i];
  assignment a;
  a.epoch = hub_->config().epoch;
  a.module = i;
  a.id = spec.id;
  a.attempt = attempt;
  a.kind = spec.kind;
  a.params = &spec.params;
  a.timeout = timeout_of(i);
  for (index d : graph_.predecessors(i)) {
    a.deps.push_back(pipeline_.modules[d].id);
    if (r.sent.insert(d).second) {
      // Workers know no cached status: to them it is a success like any other.
      const module_status status = results_[d].status == module_status::cached
                                       ? module_status::succeeded
                                       : results_[d].status;
      a.new_results.push_back({pipeline_.modules[d].id, status, &results_[d].value});
      ++remote_stats_.dependency_results_sent;
    }
  }
  if (spec.instance) a.matrix_target = spec.instance->target;
  if (spec.io) a.outputs = spec.io->outputs;
  emit(event_type::module_started, i, attempt, static_cast<std::int32_t>(r.number));
  r.link->assign(a);
  if (a.timeout) {
    watch_remote_deadline(i, attempt, static_cast<std::size_t>(&r - remotes_.data()), *a.timeout);
  }
}

// The worker enforces the timeout; the master only steps in when no result came long after
// it (a worker that heartbeats but hangs), so one timer serves every deadline.
void run_state::watch_remote_deadline(index i, std::uint32_t attempt, std::size_t remote,
                                      std::chrono::milliseconds timeout) {
  const auto at = std::chrono::steady_clock::now() + timeout + hub_->config().overdue_grace;
  remote_deadlines_.push({at, i, attempt, remote});
  if (at < overdue_timer_at_) arm_overdue_timer(at);  // else it fires earlier and rearms
}

void run_state::arm_overdue_timer(std::chrono::steady_clock::time_point at) {
  if (!overdue_timer_) overdue_timer_ = std::make_unique<asio::steady_timer>(strand_);
  overdue_timer_at_ = at;
  overdue_timer_->expires_at(at);
  overdue_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->finished_) return;  // rearmed earlier, or the run is over
    self->overdue_timer_at_ = std::chrono::steady_clock::time_point::max();
    self->end_overdue_remote_attempts();
  });
}

// An attempt past its deadline is cancelled on its worker and ends timed_out; its slot stays
// taken until the worker answers, so the worker never gets more than its slots.
void run_state::end_overdue_remote_attempts() {
  const auto now = std::chrono::steady_clock::now();
  while (!remote_deadlines_.empty() && remote_deadlines_.top().at <= now) {
    const remote_deadline d = remote_deadlines_.top();
    remote_deadlines_.pop();
    remote_entry& r = remotes_[d.remote];
    const std::pair<index, std::uint32_t> key{d.module, d.attempt};
    auto running = std::find(r.running.begin(), r.running.end(), key);
    if (!r.alive || running == r.running.end() || is_done(d.module) ||
        d.attempt != results_[d.module].attempts || stop_applies(d.module)) {
      continue;  // it ended, moved on, or the run's own cancellation deals with it
    }
    r.running.erase(running);
    r.overdue.push_back(key);
    --remote_in_flight_;
    ++remote_stats_.overdue;
    const auto timeout = timeout_of(d.module).value_or(std::chrono::milliseconds{0});
    const std::string why = "no result from worker " + worker_names_[r.number] +
                            " within the timeout of " + std::to_string(timeout.count()) +
                            " ms and " + std::to_string(hub_->config().overdue_grace.count()) +
                            " ms more; cancelled it there";
    r.link->cancel(d.module, pipeline_.modules[d.module].id, d.attempt, why);
    release_constraints(d.module);
    results_[d.module].reason = why;
    if (ends_in_fail_fast(d.module, d.attempt, module_status::timed_out)) {
      fail_fast_pending_.store(true);
    }
    on_attempt_done(d.module, d.attempt, module_status::timed_out);  // settles
    if (finished_) return;
  }
  if (!remote_deadlines_.empty()) arm_overdue_timer(remote_deadlines_.top().at);
}

// A group whose modules no connected worker can run waits capability_timeout for one to
// join, then fails them; a worker joining in time stops the clock.
void run_state::check_capability_timers() {
  for (auto& g : groups_) {
    if (g.waiting.empty() || group_has_capable_worker(g)) {
      if (g.capability_timer) g.capability_timer->cancel();
      continue;
    }
    if (g.capability_timer && g.capability_timer->expiry() > asio::steady_timer::clock_type::now())
      continue;  // already counting
    if (!g.capability_timer) g.capability_timer = std::make_unique<asio::steady_timer>(strand_);
    g.capability_timer->expires_after(hub_->config().capability_timeout);
    const auto group_index = static_cast<std::size_t>(&g - groups_.data());
    g.capability_timer->async_wait([self = shared_from_this(),
                                    group_index](boost::system::error_code ec) {
      if (ec || self->finished_) return;
      placement_group& group = self->groups_[group_index];
      if (self->group_has_capable_worker(group)) return;
      std::string labels;
      for (const auto& label : group.capabilities)
        labels += (labels.empty() ? "" : ", ") + label;
      const std::string reason =
          (group.pin_local ? std::string("pin_local, and no local worker")
           : group.capabilities.empty()
               ? std::string("no worker connected")
               : "no connected worker has the capabilities it requires: " + labels) +
          " (waited " + std::to_string(self->hub_->config().capability_timeout.count()) + " ms)";
      std::deque<index> waiting;
      waiting.swap(group.waiting);
      for (index i : waiting)
        self->finish(i, module_status::failed, reason);
      self->settle();
    });
  }
}

void run_state::cancel_remote_attempts() {
  bool any = false;
  for (auto& r : remotes_) {
    if (!r.alive) continue;
    for (auto [i, attempt] : r.running) {
      if (!stop_applies(i)) continue;
      r.link->cancel(i, pipeline_.modules[i].id, attempt, stop_reason());
      any = true;
    }
  }
  if (!any) return;
  // A worker that does not confirm within cancel_grace is not waited for.
  if (!remote_cancel_timer_) remote_cancel_timer_ = std::make_unique<asio::steady_timer>(strand_);
  remote_cancel_timer_->expires_after(options_.cancel_grace);
  remote_cancel_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->finished_) return;
    for (auto& r : self->remotes_) {
      std::erase_if(r.running, [&](const std::pair<index, std::uint32_t>& running) {
        const index i = running.first;
        if (!self->stop_applies(i) || self->is_done(i)) return false;
        --self->remote_in_flight_;
        if (!r.draining) ++self->remote_free_slots_;
        self->update_free(static_cast<std::size_t>(&r - self->remotes_.data()));
        self->release_constraints(i);
        self->finish(i, module_status::cancelled,
                     self->stop_reason() + "; " + self->worker_names_[r.number] +
                         " did not confirm the cancellation within " +
                         std::to_string(self->options_.cancel_grace.count()) + " ms");
        return true;
      });
    }
    self->settle();
  });
}

void run_state::on_remote_attach(worker_hub::worker_id id, std::shared_ptr<remote_worker> link,
                                 std::string name, std::vector<std::string> capabilities,
                                 std::uint32_t slots) {
  if (finished_) return link->run_finished("run finished");
  remote_entry& r = remotes_.emplace_back();
  r.id = id;
  r.link = std::move(link);
  r.number = static_cast<std::uint32_t>(worker_names_.size());
  worker_names_.push_back(std::move(name));
  for (auto& label : capabilities)
    r.capabilities.push_back(lower_case(label));
  r.slots = std::max<std::uint32_t>(slots, 1);
  remote_free_slots_ += r.slots;
  ++live_remotes_;
  remote_of_[id] = remotes_.size() - 1;
  update_free(remotes_.size() - 1);
  ++remote_stats_.workers_attached;
  check_capability_timers();
  settle();
}

void run_state::on_remote_detach(worker_hub::worker_id id, std::string reason) {
  auto found = remote_of_.find(id);
  if (found == remote_of_.end() || finished_) return;
  remote_entry& r = remotes_[found->second];
  if (!r.alive) return;
  r.alive = false;
  if (!r.draining) {
    --live_remotes_;
    remote_free_slots_ -= r.slots - r.running.size() - r.overdue.size();
  }
  ++remote_stats_.workers_lost;
  r.overdue.clear();
  update_free(found->second);
  std::vector<std::pair<index, std::uint32_t>> running;
  running.swap(r.running);
  for (auto [i, attempt] : running) {
    --remote_in_flight_;
    release_constraints(i);
    if (is_done(i) || attempt != results_[i].attempts) continue;
    reassign_lost(i, attempt, "worker " + worker_names_[r.number] + " was lost: " + reason);
  }
  check_capability_timers();
  settle();
}

// An attempt whose worker went away, or gave it back, without a result: assigned again with
// the next attempt number, outside the module's retries; poison after max_worker_losses.
void run_state::reassign_lost(index i, std::uint32_t attempt, const std::string& why) {
  if (stop_applies(i)) {
    finish(i, module_status::cancelled, stop_reason() + "; " + why);
  } else if (++losses_[i] >= hub_->config().max_worker_losses) {
    finish(i, module_status::failed,
           "poison: " + std::to_string(losses_[i]) +
               " of its attempts ended with their worker lost or giving it back (last: " + why +
               ")");
  } else {
    ++remote_stats_.reassigned;
    emit(event_type::module_retrying, i, attempt, results_[i].worker, module_status::pending, why,
         std::chrono::milliseconds{0});
    push_ready(i);
  }
}

// The worker gets nothing more; what it runs still counts. Its free slots leave the pool now,
// and the ones its attempts free later never join it.
void run_state::drain_remote(remote_entry& r, std::string_view reason) {
  if (!r.alive || r.draining) return;
  r.draining = true;
  --live_remotes_;
  remote_free_slots_ -= r.slots - r.running.size() - r.overdue.size();
  update_free(static_cast<std::size_t>(&r - remotes_.data()));
  r.link->drain(reason);
  check_capability_timers();
}

void run_state::on_remote_drain(worker_hub::worker_id id, std::string reason) {
  auto found = remote_of_.find(id);
  if (found == remote_of_.end() || finished_) return;
  drain_remote(remotes_[found->second], reason);
  settle();
}

bool run_state::has_module(std::string_view id) {
  if (module_ids_.empty()) {
    module_ids_.reserve(pipeline_.modules.size());
    for (std::size_t i = 0; i < pipeline_.modules.size(); ++i)
      module_ids_.emplace(pipeline_.modules[i].id, static_cast<index>(i));
  }
  return module_ids_.contains(id);
}

void run_state::on_remote_rejected(worker_hub::worker_id id, rejected_result rejected) {
  auto found = remote_of_.find(id);
  if (found == remote_of_.end() || finished_) return;
  ++remote_stats_.rejected_results;
  remote_entry& r = remotes_[found->second];
  if (!r.alive) return;
  if (rejected.code.empty()) {
    const bool known = has_module(rejected.module);
    rejected.code = known ? "stale_result" : "unknown_module";
    rejected.reason = known ? "that attempt was not assigned to this worker"
                            : "no module of this run has that id";
  }
  r.link->rejected(rejected.module, rejected.attempt, rejected.code, rejected.reason);
}

void run_state::on_remote_complete(worker_hub::worker_id id, remote_completion c) {
  auto found = remote_of_.find(id);
  if (found == remote_of_.end() || finished_) return;  // after the end: the workers got bye
  remote_entry& r = remotes_[found->second];
  const bool known_module = c.module < pipeline_.modules.size();
  auto late = std::find(r.overdue.begin(), r.overdue.end(),
                        std::pair<index, std::uint32_t>{c.module, c.attempt});
  if (late != r.overdue.end() && c.epoch == hub_->config().epoch) {
    // The answer to an attempt that already ended timed_out: stale, but its slot is free again.
    r.overdue.erase(late);
    if (!r.draining) ++remote_free_slots_;
    update_free(found->second);
    ++remote_stats_.rejected_results;
    r.link->rejected(pipeline_.modules[c.module].id, c.attempt, "stale_result",
                     "the attempt had already ended timed_out (no result in time)");
    settle();
    return;
  }
  auto running = std::find(r.running.begin(), r.running.end(),
                           std::pair<index, std::uint32_t>{c.module, c.attempt});
  if (!r.alive || !known_module || running == r.running.end() || c.epoch != hub_->config().epoch) {
    ++remote_stats_.rejected_results;
    const std::string_view module_id =
        known_module ? std::string_view{pipeline_.modules[c.module].id} : std::string_view{};
    if (r.alive) {
      r.link->rejected(module_id, c.attempt, known_module ? "stale_result" : "unknown_module",
                       known_module ? "not the current attempt of this module on this worker"
                                    : "no such module in this run");
    }
    return;
  }
  r.running.erase(running);
  --remote_in_flight_;
  if (!r.draining) ++remote_free_slots_;
  update_free(found->second);
  const index i = c.module;
  release_constraints(i);
  if (is_done(i) || c.attempt != results_[i].attempts) {
    settle();
    return;
  }
  if (c.status == module_status::cancelled && !stop_applies(i)) {
    // Cancelled without being asked (overdue attempts were dealt with above): the worker gave
    // the attempt back, as one that is shutting down may. It is taken to be leaving, so it gets
    // nothing more (else the module could go straight back to it), and the attempt moves on
    // like a lost worker's.
    const std::string& worker = worker_names_[r.number];
    drain_remote(r, "it gave back " + in_quotes(pipeline_.modules[i].id) + " attempt " +
                        std::to_string(c.attempt));
    reassign_lost(i, c.attempt,
                  "worker " + worker + " gave the attempt back" +
                      (c.error.empty() ? std::string() : ": " + c.error));
    settle();
    return;
  }
  module_result& slot = results_[i];
  module_status status = c.status;
  if (status == module_status::succeeded) {
    slot.value = std::move(c.value);
  } else if (status != module_status::failed && status != module_status::timed_out &&
             status != module_status::cancelled) {
    status = module_status::failed;
    c.error = "worker reported status " + std::string(to_string(c.status)) + " for an attempt";
  }
  if (!c.error.empty() || !slot.reason.empty()) slot.reason = std::move(c.error);
  if (ends_in_fail_fast(i, c.attempt, status)) fail_fast_pending_.store(true);
  on_attempt_done(i, c.attempt, status);
}

}  // namespace drover::detail
