#include "service_state.hpp"

#include <drover/report_json.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cctype>
#include <random>
#include <stdexcept>

namespace drover::coord {

namespace asio = boost::asio;
namespace json = boost::json;
using steady = std::chrono::steady_clock;

namespace {

std::string new_run_id() {
  static thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char digits[] = "0123456789abcdef";
  std::string id = "r-";
  auto bits = generator();
  for (int i = 0; i < 12; ++i, bits >>= 4)
    id += digits[bits & 0xf];
  return id;
}

std::vector<module_view> views_of(const plan& p) {
  std::vector<module_view> views(p.size());
  for (plan::index i = 0; i < p.size(); ++i) {
    views[i].id = std::string(p.id(i));
    const auto deps = p.predecessors(i);
    views[i].deps.assign(deps.begin(), deps.end());
    if (const auto* c = p.constraints(i)) {
      for (const auto& label : c->required_capabilities) {
        std::string lower = label;
        for (auto& ch : lower)
          ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        views[i].labels.push_back(std::move(lower));
      }
    }
  }
  return views;
}

void erase_attempts_of(std::vector<busy_slot>& attempts, std::string_view run,
                       std::string_view module) {
  std::erase_if(attempts, [&](const busy_slot& a) {
    return a.run == run && (module.empty() || a.module == module);
  });
}

}  // namespace

namespace service_detail {

void histogram::observe(double seconds) {
  for (std::size_t b = 0; b < bounds.size(); ++b) {
    if (seconds <= bounds[b]) {
      ++counts[b];
      break;
    }
  }
  ++count;
  sum += seconds;
}

}  // namespace service_detail

void run_service::state::account_busy(steady::time_point now) {
  // In-process slots only: a remote worker's busy time is its own (service_workers.cpp).
  const auto local = std::count_if(attempts.begin(), attempts.end(), [](const busy_slot& a) {
    return a.worker.starts_with("local-");
  });
  busy_slot_seconds +=
      std::chrono::duration<double>(now - busy_since).count() * static_cast<double>(local);
  busy_since = now;
}

namespace {

using state = run_service::state;

void launch_ready(const std::shared_ptr<state>& s);

// Keeps `line` as the run's next event (seq next_seq), in memory (the last `kept`) and in its
// events file while that is open.
void append_event(service_run& run, std::string line, std::size_t kept) {
  if (run.events_file) *run.events_file << line << '\n';
  run.events.push_back(std::move(line));
  ++run.next_seq;
  while (run.events.size() > std::max<std::size_t>(1, kept))
    run.events.pop_front();
  run.first_seq = run.next_seq - run.events.size();
}

// The engine's events of one run, applied to its module views and kept for its stream.
void on_event(state& s, service_run& run, const event& e) {
  std::lock_guard lock(s.mutex);
  const auto now = steady::now();
  module_view* m = e.index < run.modules.size() ? &run.modules[e.index] : nullptr;
  switch (e.type) {
    case event_type::module_ready:
      if (m && m->phase != module_phase::ready) {
        m->phase = module_phase::ready;
        m->ready_at = now;
        ++s.ready_modules;
      }
      break;
    case event_type::module_started:
      if (!m) break;
      if (m->phase == module_phase::ready) {
        --s.ready_modules;
        s.assignment_latency.observe(std::chrono::duration<double>(now - m->ready_at).count());
      }
      m->phase = module_phase::running;
      m->attempts = e.attempt;
      m->worker = std::string(e.worker);
      ++s.attempts_started;
      s.account_busy(now);
      s.attempts.push_back({run.id, m->id, e.attempt, std::string(e.worker)});
      break;
    case event_type::module_retrying:
    case event_type::module_reassigned:
      if (!m) break;
      if (e.type == event_type::module_retrying) ++s.retries;
      s.account_busy(now);
      erase_attempts_of(s.attempts, run.id, m->id);
      m->phase = module_phase::pending;
      break;
    case event_type::module_finished:
      if (!m || m->phase == module_phase::finished) break;
      if (m->phase == module_phase::ready) --s.ready_modules;
      if (m->phase == module_phase::running) {
        s.account_busy(now);
        erase_attempts_of(s.attempts, run.id, m->id);
      }
      m->phase = module_phase::finished;
      m->status = e.status;
      m->reason = std::string(e.message);
      if (!e.worker.empty()) m->worker = std::string(e.worker);
      ++s.modules_finished[static_cast<std::size_t>(e.status)];
      if (run.unfinished > 0) {
        --run.unfinished;
        --s.waiting_modules;
      }
      break;
    case event_type::worker_lost:
      ++s.worker_losses;
      break;
    default:
      break;
  }
  // The run's stream numbers its events itself: the engine's follow the service's run_queued,
  // and a resumed run's follow those of its earlier life.
  auto shown = event_to_json(e);
  shown["seq"] = run.seq_base + e.seq;
  append_event(run, json::serialize(shown), s.options.events_kept_per_run);
}

// Forgets the oldest finished runs beyond finished_runs_kept (their files stay).
void forget_old_runs(state& s) {
  std::size_t finished = 0;
  for (const auto& r : s.order)
    finished += r->finished() ? 1 : 0;
  for (auto it = s.order.begin(); it != s.order.end() && finished > s.options.finished_runs_kept;) {
    if ((*it)->finished()) {
      s.runs.erase((*it)->id);
      it = s.order.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
}

void run_ended(const std::shared_ptr<state>& s, const std::shared_ptr<service_run>& run,
               run_report report) {
  detach_remote(*run);  // its workers are told the run finished, and come back
  {
    std::lock_guard lock(s->mutex);
    run->events_file.reset();  // flushed and closed
    const auto now = steady::now();
    s->account_busy(now);
    erase_attempts_of(s->attempts, run->id, {});
    for (auto& m : run->modules) {
      if (m.phase == module_phase::ready) --s->ready_modules;
    }
    s->waiting_modules -= run->unfinished;
    run->unfinished = 0;
    --s->running;
    run->finished_at = wall_clock::now();
    if (s->stopping && report.status == run_status::cancelled && !run->cancel_requested) {
      // Cancelled by the shutdown: left unfinished on disk, so the next start resumes it.
      run->phase = "interrupted";
      s->log("run " + run->id + " interrupted by the shutdown; a restart resumes it");
    } else {
      run->phase = std::string(to_string(report.status));
      auto report_json = report_to_json(report);
      run->report = report_json;
      for (std::size_t i = 0; i < report.modules.size() && i < run->modules.size(); ++i) {
        const auto& r = report.modules[i];
        auto& m = run->modules[i];
        m.phase = module_phase::finished;
        m.status = r.status;
        m.attempts = r.attempts;
        m.reason = r.reason;
        if (r.worker >= 0) m.worker = std::string(report.worker_name(r));
      }
      s->run_duration.observe(std::chrono::duration<double>(report.duration()).count());
      s->stale_results += report.remote.rejected_results;
      ++s->runs_finished[run->phase];
      s->log("run " + run->id + " (" + run->name + ") " + run->phase);
      if (!run->dir.empty()) {
        try {
          store::save_report(*run);
        } catch (const std::exception& e) {
          s->log(std::string("run ") + run->id + ": " + e.what());
        }
      }
    }
    forget_old_runs(*s);
  }
  launch_ready(s);
}

// A run the service could not even start (its journal cannot be opened): it ends failed.
void fail_before_start(const std::shared_ptr<state>& s, const std::shared_ptr<service_run>& run,
                       const std::string& why) {
  run_report report;
  report.pipeline = run->name;
  report.run_id = run->id;
  report.status = run_status::failed;
  report.started_at = report.finished_at = wall_clock::now();
  report.notes.push_back(why);
  s->log("run " + run->id + ": " + why);
  run_ended(s, run, std::move(report));
}

void start_run(const std::shared_ptr<state>& s, const std::shared_ptr<service_run>& run) {
  run_options options;
  // Alone, a run may use every in-process slot; together, runs share them by demand.
  options.workers = s->options.workers;
  options.shared_slots = s->local_slots;
  options.capabilities = s->options.capabilities;
  options.cancel_grace = s->options.cancel_grace;
  options.workspace = s->options.workspace;
  options.run_id = run->id;
  options.log_dir =
      run->dir.empty() ? s->options.workspace / ".drover" / "logs" / run->id : run->dir / "logs";
  if (!run->dir.empty()) {
    try {
      journal_options journal;
      journal.mode = s->options.journal_durability;
      journal.resume = run->resume;
      options.journal = run_journal::open(run->dir / "journal.jsonl", journal);
    } catch (const std::exception& e) {
      return fail_before_start(s, run, e.what());
    }
  }
  if (s->remote_workers()) attach_remote(*s, *run, options);
  {
    std::lock_guard lock(s->mutex);
    if (!run->dir.empty()) {
      // What the file lacks: the run_queued of this life (the rest came from it).
      run->events_file = std::make_unique<std::ofstream>(run->dir / "events.jsonl", std::ios::app);
      for (auto seq = std::max(run->first_seq, run->persisted); seq < run->next_seq; ++seq)
        *run->events_file << run->events[seq - run->first_seq] << '\n';
    }
    run->seq_base = run->next_seq;
  }
  std::weak_ptr<state> weak = s;
  options.on_event = [weak, run = run.get()](const event& e) {
    if (auto locked = weak.lock()) on_event(*locked, *run, e);
  };
  plan prepared = std::move(*run->prepared);
  run->prepared.reset();
  s->log("run " + run->id + " (" + run->name + ") started" + (run->resume ? ", resumed" : ""));
  s->engine.async_run(std::move(prepared), std::move(options),
                      asio::bind_cancellation_slot(run->cancel.slot(), [s, run](run_report report) {
                        run_ended(s, run, std::move(report));
                      }));
}

// Starts queued runs while fewer than max_running_runs run.
void launch_ready(const std::shared_ptr<state>& s) {
  std::vector<std::shared_ptr<service_run>> starting;
  {
    std::lock_guard lock(s->mutex);
    while (!s->stopping && s->started && s->running < s->options.max_running_runs &&
           !s->queue.empty()) {
      auto run = std::move(s->queue.front());
      s->queue.pop_front();
      run->phase = "running";
      run->started_at = wall_clock::now();
      ++s->running;
      starting.push_back(std::move(run));
    }
  }
  // On the executor: the engine is only ever entered from the threads that run it, whichever
  // thread submitted or finished a run.
  for (auto& run : starting)
    asio::post(s->executor, [s, run = std::move(run)] { start_run(s, run); });
}

// The service took the run, or found it unfinished at a start: run_queued, the first event
// of each of the run's lives.
void record_queued(service_run& run, std::size_t kept) {
  json::object queued{{"ts", format_timestamp(wall_clock::now())},
                      {"seq", run.next_seq},
                      {"type", to_string(event_type::run_queued)},
                      {"run", run.id},
                      {"total", run.modules.size()}};
  append_event(run, json::serialize(queued), kept);
}

std::shared_ptr<service_run>* find_run(state& s, std::string_view id) {
  auto it = s.runs.find(id);
  return it == s.runs.end() ? nullptr : &it->second;
}

}  // namespace

run_service::run_service(asio::any_io_executor executor, service_options options) {
  if (!options.parse)
    throw std::invalid_argument("run_service: service_options::parse is required");
  if (!options.worker_address) options.workers = std::max<std::size_t>(1, options.workers);
  options.max_running_runs = std::max<std::size_t>(1, options.max_running_runs);
  state_ = std::make_shared<state>(std::move(executor), std::move(options));
  if (state_->options.workers > 0)
    state_->local_slots = std::make_shared<drover::slot_share>(state_->options.workers);
}

run_service::~run_service() {
  stop();
}

void run_service::start() {
  auto& s = *state_;
  std::vector<std::shared_ptr<service_run>> found;
  if (!s.options.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(s.options.state_dir / "runs", ec);
    if (ec) {
      throw std::runtime_error("cannot use the state directory '" + s.options.state_dir.string() +
                               "': " + ec.message());
    }
    found = store::load_runs(s.options.state_dir, s.options.events_kept_per_run,
                             [&s](std::string line) { s.log(line); });
  }
  if (s.remote_workers()) open_worker_port(state_);
  for (auto& run : found) {
    if (!run->finished()) {
      auto parsed = s.options.parse(run->text, run->name);
      std::optional<prepare_result> prepared;
      if (parsed.pipeline) prepared.emplace(prepare(std::move(*parsed.pipeline)));
      if (!prepared || !prepared->ok()) {
        // Recorded as failed, so that the next start does not try again.
        const std::string why = "cannot resume: its pipeline no longer reads: " +
                                (prepared ? format_problems(prepared->problems) : parsed.problems);
        run->phase = "failed";
        run->report = json::object{{"pipeline", run->name},
                                   {"run", run->id},
                                   {"status", "failed"},
                                   {"notes", json::array{json::string(why)}}};
        s.log("run " + run->id + " " + why);
        try {
          store::save_report(*run);
        } catch (const std::exception& e) {
          s.log(std::string("run ") + run->id + ": " + e.what());
        }
      } else {
        run->modules = views_of(*prepared->plan);
        run->unfinished = run->modules.size();
        run->prepared.emplace(std::move(*prepared->plan));
        run->resume = true;
      }
    }
  }
  {
    std::lock_guard lock(s.mutex);
    for (auto& run : found) {
      s.runs.emplace(run->id, run);
      s.order.push_back(run);
      if (!run->finished()) {
        s.waiting_modules += run->unfinished;
        record_queued(*run, s.options.events_kept_per_run);
        s.queue.push_back(run);
      }
    }
    s.started = true;
  }
  launch_ready(state_);
}

void run_service::stop() {
  std::vector<std::shared_ptr<service_run>> running;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopping) return;
    state_->stopping = true;
    for (const auto& run : state_->order) {
      if (run->phase == "running") running.push_back(run);
    }
  }
  for (auto& run : running) {
    asio::post(state_->executor, [run] { run->cancel.emit(asio::cancellation_type::terminal); });
  }
  if (state_->remote_workers()) close_worker_port(*state_);
}

bool run_service::drain_worker(std::string_view worker) {
  std::vector<std::shared_ptr<master>> masters;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->idle) masters.push_back(state_->idle);
    for (const auto& run : state_->order) {
      if (run->phase == "running" && run->remote) masters.push_back(run->remote);
    }
  }
  for (const auto& m : masters) {
    if (m->drain(worker, "drained by an operator", /*rejoin=*/false)) {
      state_->log("worker " + std::string(worker) + " drained by an operator");
      return true;
    }
  }
  return false;
}

asio::ip::tcp::endpoint run_service::worker_endpoint() const {
  boost::system::error_code ignored;
  return state_->worker_acceptor.local_endpoint(ignored);
}

submit_result run_service::submit(std::string text, std::string name) {
  auto& s = *state_;
  submit_result out;
  if (name.empty()) name = "pipeline.json";
  auto parsed = s.options.parse(text, name);
  std::optional<prepare_result> prepared;
  if (parsed.pipeline) prepared.emplace(prepare(std::move(*parsed.pipeline)));
  if (!prepared || !prepared->ok()) {
    std::lock_guard lock(s.mutex);
    ++s.submissions_refused["invalid"];
    out.error = submit_error::invalid;
    out.message = prepared ? format_problems(prepared->problems) : parsed.problems;
    return out;
  }
  auto run = std::make_shared<service_run>();
  run->name = std::move(name);
  run->text = std::move(text);
  run->submitted_at = wall_clock::now();
  run->modules = views_of(*prepared->plan);
  run->unfinished = run->modules.size();
  run->prepared.emplace(std::move(*prepared->plan));
  {
    std::lock_guard lock(s.mutex);
    const bool must_wait = s.running >= s.options.max_running_runs || !s.queue.empty();
    std::string full;
    if (s.stopping || !s.started) {
      out.error = submit_error::stopping;
      out.message = "the service is not accepting runs (it is stopping)";
      return out;
    }
    if (must_wait && s.queue.size() >= s.options.max_queued_runs) {
      full = "queue full: " + std::to_string(s.queue.size()) +
             " runs are waiting to start (--max-queued-runs " +
             std::to_string(s.options.max_queued_runs) + ")";
    } else if (s.waiting_modules > 0 &&
               s.waiting_modules + run->unfinished > s.options.max_waiting_modules) {
      full = "queue full: " + std::to_string(s.waiting_modules) +
             " modules are waiting and this pipeline adds " + std::to_string(run->unfinished) +
             " (--max-waiting-modules " + std::to_string(s.options.max_waiting_modules) + ")";
    }
    if (!full.empty()) {
      ++s.submissions_refused["queue_full"];
      out.error = submit_error::queue_full;
      out.message = std::move(full);
      out.retry_after = std::chrono::seconds{5};
      return out;
    }
    do {
      run->id = new_run_id();
    } while (s.runs.contains(run->id));
    if (!s.options.state_dir.empty()) run->dir = s.options.state_dir / "runs" / run->id;
  }
  if (!run->dir.empty()) {
    try {
      store::save_submission(*run);
    } catch (const std::exception& e) {
      out.error = submit_error::stopping;
      out.message = e.what();
      return out;
    }
  }
  {
    std::lock_guard lock(s.mutex);
    s.runs.emplace(run->id, run);
    s.order.push_back(run);
    record_queued(*run, s.options.events_kept_per_run);
    s.queue.push_back(run);
    s.waiting_modules += run->unfinished;
    ++s.runs_submitted;
  }
  s.log("run " + run->id + " (" + run->name + ") queued, " + std::to_string(run->modules.size()) +
        " modules");
  out.run = run->id;
  launch_ready(state_);
  return out;
}

bool run_service::cancel(std::string_view id) {
  auto& s = *state_;
  std::shared_ptr<service_run> run;
  {
    std::lock_guard lock(s.mutex);
    auto* found = find_run(s, id);
    if (!found || (*found)->finished()) return false;
    run = *found;
    run->cancel_requested = true;
    if (run->phase == "queued") {
      std::erase(s.queue, run);
      run->phase = "cancelled";
      run->finished_at = wall_clock::now();
      s.waiting_modules -= run->unfinished;
      run->unfinished = 0;
      run->prepared.reset();
      for (auto& m : run->modules) {
        m.phase = module_phase::finished;
        m.status = module_status::cancelled;
        m.reason = "the run was cancelled before it started";
      }
      run->report =
          json::object{{"pipeline", run->name}, {"run", run->id}, {"status", "cancelled"}};
      ++s.runs_finished["cancelled"];
      if (!run->dir.empty()) {
        try {
          store::save_report(*run);
        } catch (const std::exception& e) {
          s.log(std::string("run ") + run->id + ": " + e.what());
        }
      }
      return true;
    }
  }
  asio::post(s.executor, [run] { run->cancel.emit(asio::cancellation_type::terminal); });
  return true;
}

std::optional<std::string> run_service::run_status(std::string_view id) const {
  std::lock_guard lock(state_->mutex);
  auto* found = find_run(*state_, id);
  if (!found) return std::nullopt;
  return (*found)->phase;
}

bool run_service::ready() const {
  std::lock_guard lock(state_->mutex);
  return state_->started && !state_->stopping;
}

std::optional<event_batch> run_service::events_after(std::string_view id, std::int64_t after,
                                                     std::size_t limit) const {
  std::lock_guard lock(state_->mutex);
  auto* found = find_run(*state_, id);
  if (!found) return std::nullopt;
  const auto& run = **found;
  event_batch batch;
  std::uint64_t from = after < 0 ? 0 : static_cast<std::uint64_t>(after) + 1;
  if (from < run.first_seq) {
    batch.skipped = after >= 0 || run.first_seq > 0;
    from = run.first_seq;
  }
  batch.first_seq = from;
  for (std::uint64_t seq = from; seq < run.next_seq && batch.events.size() < limit; ++seq)
    batch.events.push_back(run.events[seq - run.first_seq]);
  batch.finished = run.finished() && from + batch.events.size() >= run.next_seq;
  return batch;
}

}  // namespace drover::coord
