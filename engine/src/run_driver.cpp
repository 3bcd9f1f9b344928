#include "run_driver.hpp"

#include <drover/cache.hpp>
#include <drover/journal.hpp>
#include <drover/secrets.hpp>
#include "work_dir.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include <algorithm>
#include <random>

namespace drover::detail {

namespace asio = boost::asio;

namespace {

// Ready modules handed to the local workers ahead of demand, per worker. A worker then finds
// its next module without waiting and completions are settled in batches; the price is that a
// module becoming ready later waits behind at most this many per worker regardless of priority.
constexpr std::size_t handoff_per_worker = 16;

std::uint64_t seed_from_clock() {
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

std::string make_run_id() {
  std::random_device device;
  const std::uint64_t bits =
      (static_cast<std::uint64_t>(device()) << 32) ^ device() ^ seed_from_clock();
  static constexpr char digits[] = "0123456789abcdef";
  std::string id(16, '0');
  for (int k = 0; k < 16; ++k)
    id[static_cast<std::size_t>(k)] = digits[(bits >> (4 * k)) & 0xf];
  return id;
}

}  // namespace

run_driver::run_driver(asio::any_io_executor run_executor, asio::any_io_executor worker_pool,
                       pipeline p, run_options options, handler_type handler)
    : unprepared_(std::move(p)),
      options_(std::move(options)),
      strand_(asio::make_strand(run_executor)),
      worker_pool_(std::move(worker_pool)),
      local_workers_(options_.remote ? options_.workers
                                     : std::max<std::size_t>(options_.workers, 1)),
      // With remote workers, local ones take only what they can run now, so that ready
      // modules stay available to whichever worker frees up first.
      capacity_(options_.remote ? std::max<std::size_t>(local_workers_, 1)
                                : local_workers_ * handoff_per_worker),
      channel_(run_executor, capacity_, static_cast<bool>(worker_pool_)),
      timer_(strand_),
      handler_(std::move(handler)) {
  if (options_.run_id.empty()) options_.run_id = make_run_id();
  environment_.workspace = absolute_workspace(options_.workspace);
  environment_.log_dir = options_.log_dir;
  environment_.secrets = options_.secrets;
  environment_.keep_workdirs = options_.keep_workdirs;
  environment_.note = [notes = body_notes_](std::string line) {
    std::lock_guard lock(notes->mutex);
    notes->lines.push_back(std::move(line));
  };
  auto handler_executor = asio::get_associated_executor(handler_, run_executor);
  handler_work_ = asio::prefer(handler_executor, asio::execution::outstanding_work.tracked);
  if (options_.shared_slots) slot_member_ = options_.shared_slots->join();
}

run_driver::run_driver(asio::any_io_executor run_executor, asio::any_io_executor worker_pool,
                       plan p, run_options options, handler_type handler)
    : run_driver(std::move(run_executor), std::move(worker_pool), pipeline{}, std::move(options),
                 std::move(handler)) {
  plan_ = &tables_->plan.emplace(std::move(p));
}

void run_driver::start() {
  auto slot = asio::get_associated_cancellation_slot(handler_);
  if (slot.is_connected()) {
    // The slot handler runs wherever the caller emits; hop onto the strand.
    slot.assign([self = shared_from_this()](asio::cancellation_type) {
      asio::post(self->strand_, [self] {
        if (!self->core_ || self->finished_) return;
        self->core_->cancel(core_clock::now());
        self->process();
      });
    });
  }
  asio::post(strand_, [self = shared_from_this()] { self->begin(); });
}

void run_driver::begin() {
  wall_start_ = run_clock::wall_now();
  steady_start_ = core_clock::now();
  if (!plan_) {
    std::string name = unprepared_.name;
    prepare_result prepared = prepare(std::move(unprepared_));
    unprepared_.name = std::move(name);
    if (!prepared.ok()) return complete_invalid(std::move(prepared.problems));
    plan_ = &tables_->plan.emplace(std::move(*prepared.plan));
  }
  const pipeline& p = plan_->pipeline();
  if (options_.journal || options_.cache) {
    fingerprints_ = std::make_unique<fingerprinter>(p, plan_->graph(), environment_.workspace);
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
    if (auto refused = options_.journal->begin_run(p, pipeline_fingerprint(p))) {
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
  core_ = &tables_->core.emplace(*plan_, make_settings());
  tables_->wall_start = wall_start_;
  for (std::size_t w = 0; w < local_workers_; ++w)
    spawn_worker();
  if (options_.remote) bind_hub();
  core_->start(steady_start_);
  process();
}

core_settings run_driver::make_settings() {
  core_settings s;
  s.local_workers = local_workers_;
  s.local_labels.emplace_back(local_os_label());
  for (const auto& label : options_.capabilities)
    s.local_labels.push_back(label);
  s.order_by_critical_path = options_.order == ready_order::critical_path;
  s.seed = options_.seed != 0 ? options_.seed : seed_from_clock();
  s.deadline = options_.deadline;
  // Handing modules out ahead of demand is what makes tiny modules cheap, but a module handed
  // out can no longer be overtaken by one that becomes ready later with a higher priority or
  // a longer critical path. So when modules differ in those, hand out one per worker (two with
  // a pool, whose workers cannot take their next module inline).
  s.local_capacity = capacity_;
  const plan& p = *plan_;
  auto key = [&](plan::index i) {
    return ready_queue::make_key(p.record(i).priority,
                                 s.order_by_critical_path ? p.critical_path(i) : 0);
  };
  for (plan::index i = 1; i < p.size(); ++i) {
    if (key(i) != key(0)) {
      const std::size_t per_worker = worker_pool_ ? 2 : 1;
      s.local_capacity = std::min(capacity_, std::max<std::size_t>(local_workers_, 1) * per_worker);
      break;
    }
  }
  if (options_.remote) {
    const worker_hub::settings& hub = options_.remote->config();
    s.remote = true;
    s.epoch = hub.epoch;
    s.capability_timeout = hub.capability_timeout;
    s.max_worker_losses = hub.max_worker_losses;
    s.overdue_grace = hub.overdue_grace;
  }
  s.cancel_grace = options_.cancel_grace;
  s.check_reuse = static_cast<bool>(fingerprints_);
  s.record = static_cast<bool>(fingerprints_);
  s.wait_for_records = options_.journal && options_.journal->mode() == durability::fsync;
  s.secrets = options_.secrets.get();
  if (options_.on_event) s.on_event = [this](const core_event& e) { forward_event(e); };
  return s;
}

// Carries out what the core asks until it asks nothing more. Answers given here (reuse checks)
// are inputs that add actions to the same loop.
void run_driver::process() {
  if (processing_) return;
  processing_ = true;
  for (action a; core_->next_action(a);)
    carry_out(a);
  processing_ = false;
  mirror_stop();
  if (slot_member_) publish_demand();
}

void run_driver::carry_out(const action& a) {
  switch (a.what) {
    case action::kind::dispatch:
      if (a.local) return hand_out(make_ticket(a.module, a.attempt));
      return assign_remote(a.module, a.attempt, a.worker);
    case action::kind::cancel:
      if (a.local) return cancel_local_attempts();
      return cancel_remote(a.module, a.attempt, a.worker);
    case action::kind::reject:
      return reject_remote(a.module, a.attempt, a.worker, a.code, a.epoch);
    case action::kind::check_reuse:
      return check_reuse(a.module);
    case action::kind::record:
      return record(a.module);
    case action::kind::arm_timer:
      return arm_timer(a.at);
    case action::kind::drain_worker:
      return drain_remote(a.worker);
    case action::kind::release_worker:
      return release_remote(a.worker);
    case action::kind::complete:
      return complete();
  }
}

void run_driver::arm_timer(time_point at) {
  timer_.expires_at(at);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->finished_) return;  // rearmed, or the run is over
    self->core_->timer_fired(core_clock::now());
    self->process();
  });
}

// A module whose fingerprint matches a success recorded in the journal, or an entry of the
// cache, is reused instead of run.
void run_driver::check_reuse(module_index i) {
  const time_point now = core_clock::now();
  std::string fingerprint;
  try {
    fingerprint = fingerprints_->compute(i);
  } catch (const std::exception& e) {
    return core_->reuse_checked(i, std::nullopt, reuse_source::none, e.what(), now);
  }
  if (options_.journal) {
    const auto* earlier = options_.journal->previous(std::string(plan_->id(i)));
    if (earlier != nullptr && earlier->fingerprint == fingerprint &&
        (earlier->status == module_status::succeeded || earlier->status == module_status::cached)) {
      return core_->reuse_checked(i, earlier->value, reuse_source::journal, {}, now);
    }
  }
  if (options_.cache && plan_->record(i).has(module_flag::cacheable)) {
    static const std::vector<std::string> no_outputs;
    const module_io* io = plan_->module(i).io();
    const auto& outputs = io ? io->outputs : no_outputs;
    if (auto value = options_.cache->restore(fingerprint, environment_.workspace, outputs)) {
      return core_->reuse_checked(i, std::move(*value), reuse_source::cache, {}, now);
    }
  }
  core_->reuse_checked(i, std::nullopt, reuse_source::none, {}, now);
}

// Stores a success in the cache and appends the terminal record to the journal. With fsync
// durability the core holds the module's dependents until the record is durable: a resumed run
// must never find a dependent's success without the success it built on.
void run_driver::record(module_index i) {
  const module_status status = core_->status(i);
  const module_io* io = plan_->module(i).io();
  const std::string id(plan_->id(i));
  if (status == module_status::succeeded && options_.cache &&
      plan_->record(i).has(module_flag::cacheable)) {
    const bool has_outputs = io && !io->outputs.empty();
    if (has_outputs && core_->is_remote(core_->worker_of(i))) {
      // Its outputs are on the worker's machine: storing the value alone would restore none.
    } else {
      std::vector<std::string> outputs;
      if (has_outputs) outputs = match_files(environment_.workspace, io->outputs);
      if (auto problem = options_.cache->store(fingerprints_->of(i), id, core_->value(i),
                                               environment_.workspace, outputs)) {
        notes_.push_back(std::move(*problem));
      }
    }
  }
  if (!options_.journal) return;
  const std::uint64_t seq = options_.journal->append_module(
      id, fingerprints_->of(i), status, static_cast<std::uint16_t>(core_->attempts(i)),
      core_->value(i), std::string(core_->reason(i)));
  if (options_.journal->mode() != durability::fsync || plan_->successors(i).empty()) return;
  awaiting_durable_.push_back({seq, i});
  request_durable();
}

void run_driver::request_durable() {
  if (durable_wait_requested_ || awaiting_durable_.empty()) return;
  durable_wait_requested_ = true;
  const std::uint64_t seq = awaiting_durable_.back().seq;
  options_.journal->when_durable(seq, [self = shared_from_this(), seq] {
    asio::post(self->strand_, [self, seq] { self->on_durable(seq); });
  });
}

// Everything up to `seq` is durable: the core may release those modules' dependents.
void run_driver::on_durable(std::uint64_t seq) {
  durable_wait_requested_ = false;
  if (finished_) return;
  const time_point now = core_clock::now();
  while (!awaiting_durable_.empty() && awaiting_durable_.front().seq <= seq) {
    core_->recorded(awaiting_durable_.front().module, now);
    awaiting_durable_.pop_front();
  }
  request_durable();
  process();
}

namespace {

std::string_view id_in_plan(const void* p, std::uint32_t i) noexcept {
  return static_cast<const plan*>(p)->id(i);
}

}  // namespace

// One event object serves the whole run: filling its fields costs less than building (and
// zero-initializing) one per event. A subscriber that makes the run emit again from inside its
// callback gets a fresh one for that nested event.
void run_driver::forward_event(const core_event& e) {
  if (delivering_) {
    event nested;
    fill_run_fields(nested);
    return deliver_event(e, nested);
  }
  if (event_.run.empty()) fill_run_fields(event_);  // once: they do not change during a run
  delivering_ = true;
  deliver_event(e, event_);
  delivering_ = false;
}

void run_driver::deliver_event(const core_event& e, event& out) {
  out.type = e.type;
  out.seq = next_seq_++;
  out.ts = wall_start_ + std::chrono::duration_cast<wall_clock::duration>(e.at - steady_start_);
  if (e.module != no_module) {
    out.module = event_module(plan_, &id_in_plan, e.module);
    out.index = e.module;
  } else {
    out.module = event_module{};
    out.index = 0;
  }
  out.attempt = e.attempt;
  out.worker = e.worker != no_worker ? std::string_view(core_->worker_names()[e.worker])
                                     : std::string_view{};
  out.status = e.status;
  out.delay = e.delay;
  if (e.message.empty()) {
    // Most events. Not `out.message = e.message`: one 16-byte load of a view the core has just
    // stored as two halves cannot be forwarded from the store buffer, and stalled every event.
    out.message = {};
    return call_subscriber(out);
  }
  if (options_.secrets && !options_.secrets->empty()) {
    const std::string masked = options_.secrets->mask(e.message);
    out.message = masked;
    return call_subscriber(out);
  }
  out.message = e.message;
  call_subscriber(out);
}

void run_driver::fill_run_fields(event& out) const {
  out.total = plan_->size();
  out.run = options_.run_id;
}

void run_driver::call_subscriber(const event& out) {
  try {
    options_.on_event(out);
  } catch (...) {
    // A subscriber's failure must not break the run.
  }
}

std::optional<dependency_results::entry> run_driver::find(std::uint32_t module,
                                                          std::string_view id) const {
  // A module has few dependencies: scanning them beats keeping an id map alive for the run.
  for (module_index d : plan_->predecessors(module)) {
    if (plan_->id(d) == id) {
      const boost::json::value& value = core_->value(d);
      return entry{core_->status(d), value.is_null() ? nullptr : &value};
    }
  }
  return std::nullopt;
}

std::vector<std::string_view> run_driver::ids(std::uint32_t module) const {
  std::vector<std::string_view> out;
  for (module_index d : plan_->predecessors(module))
    out.emplace_back(plan_->id(d));
  return out;
}

void run_driver::complete() {
  finished_ = true;
  timer_.cancel();
  channel_.close();
  slots_closed_.store(true, std::memory_order_release);
  wake_slot_waiters();
  if (hub_) hub_->unbind();
  core_->release_scheduling_state();
  run_report report = make_report();
  if (options_.journal) {
    options_.journal->end_run(report.status);  // waits for the last records to be durable
    if (auto failure = options_.journal->failure()) {
      report.notes.push_back(*failure + "; a resume would rerun what it did not record");
    }
  }
  if (live_workers_ == 0) return deliver(std::move(report));
  pending_report_ = std::move(report);  // delivered by the last worker's exit
}

module_result run_tables::get(std::size_t index) const {
  const auto i = static_cast<module_index>(index);
  module_result m;
  m.id = plan->id(i);
  m.status = core->status(i);
  m.value = core->value(i);
  m.attempts = static_cast<std::uint16_t>(core->attempts(i));
  m.worker = core->worker_of(i) == no_worker ? -1 : static_cast<std::int32_t>(core->worker_of(i));
  m.started_at = wall_start + core->started_at(i);
  m.finished_at = wall_start + core->finished_at(i);
  m.reason = core->reason(i);
  return m;
}

run_report run_driver::make_report() {
  const scheduler_core& core = *core_;
  run_report report;
  report.pipeline = plan_->pipeline().name;
  report.run_id = options_.run_id;
  report.status = core.result();
  report.started_at = wall_start_;
  report.finished_at = run_clock::wall_now();
  report.workers = core.worker_names();
  // The report reads the run's tables (shared, never copied whole): nothing per module here.
  report.modules = module_results{tables_};
  for (module_index i = 0; i < plan_->size(); ++i)
    ++report.counts[static_cast<std::size_t>(core.status(i))];
  report.remote = core.remote_counters();
  report.remote.dependency_results_sent = dependency_results_sent_;
  report.remote.rejected_results += transport_rejections_;
  report.epoch = hub_ ? hub_->config().epoch : (options_.journal ? options_.journal->epoch() : 0);
  report.reused_from_journal = core.reused_from_journal();
  report.reused_from_cache = core.reused_from_cache();
  report.notes = std::move(notes_);
  {
    std::lock_guard lock(body_notes_->mutex);
    for (auto& line : body_notes_->lines)
      report.notes.push_back(std::move(line));
    body_notes_->lines.clear();
  }
  if (core.deadline_passed()) {
    report.notes.push_back("deadline exceeded: the run was cancelled " +
                           std::to_string(options_.deadline->count()) + " ms after it started");
  }
  return report;
}

void run_driver::deliver(run_report report) {
  auto slot = asio::get_associated_cancellation_slot(handler_);
  if (slot.is_connected()) slot.clear();
  const auto executor = handler_work_;
  asio::dispatch(executor, [handler = std::move(handler_), report = std::move(report),
                            work = std::move(handler_work_)]() mutable {
    std::move(handler)(std::move(report));
  });
}

void run_driver::complete_invalid(std::vector<validation_problem> problems) {
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
  report.pipeline = plan_ ? plan_->pipeline().name : unprepared_.name;
  report.run_id = options_.run_id;
  report.status = run_status::invalid;
  report.started_at = wall_start_;
  report.finished_at = run_clock::wall_now();
  report.problems = std::move(problems);
  deliver(std::move(report));
}

}  // namespace drover::detail
