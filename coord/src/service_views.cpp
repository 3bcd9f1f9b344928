// What run_service shows: the JSON of its runs, runs and workers, and its Prometheus metrics.

#include "service_state.hpp"

#include <drover/report_json.hpp>

#include <cstdio>
#include <sstream>

namespace drover::coord {

namespace json = boost::json;
using steady = std::chrono::steady_clock;

namespace {

json::value timestamp_or_null(wall_clock::time_point t) {
  if (t == wall_clock::time_point{}) return nullptr;
  return json::string(format_timestamp(t));
}

constexpr std::array<std::string_view, 3> live_phases{"pending", "ready", "running"};

// A float the way Prometheus reads it.
std::string number(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

void header(std::ostringstream& out, std::string_view name, std::string_view type,
            std::string_view help) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

void write_histogram(std::ostringstream& out, std::string_view name, std::string_view help,
                     const histogram& h) {
  header(out, name, "histogram", help);
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < h.bounds.size(); ++b) {
    cumulative += h.counts[b];
    out << name << "_bucket{le=\"" << number(h.bounds[b]) << "\"} " << cumulative << '\n';
  }
  out << name << "_bucket{le=\"+Inf\"} " << h.count << '\n';
  out << name << "_sum " << number(h.sum) << '\n';
  out << name << "_count " << h.count << '\n';
}

}  // namespace

namespace service_detail {

std::string_view phase_name(const module_view& m) {
  if (m.phase == module_phase::finished) return to_string(m.status);
  return live_phases[static_cast<std::size_t>(m.phase)];
}

json::object run_summary(const service_run& run) {
  json::object out;
  out["run"] = run.id;
  out["name"] = run.name;
  out["status"] = run.phase;
  out["submitted_at"] = timestamp_or_null(run.submitted_at);
  out["started_at"] = timestamp_or_null(run.started_at);
  out["finished_at"] = timestamp_or_null(run.finished_at);
  out["total"] = run.modules.size();
  json::object counts;
  for (auto phase : live_phases)
    counts[phase] = 0;
  for (std::size_t s = 0; s < module_status_count; ++s) {
    const auto status = static_cast<module_status>(s);
    if (status != module_status::pending) counts[to_string(status)] = 0;
  }
  for (const auto& m : run.modules) {
    auto& count = counts[phase_name(m)];
    count = count.as_int64() + 1;
  }
  out["counts"] = std::move(counts);
  return out;
}

}  // namespace service_detail

json::object run_service::runs_json() const {
  std::lock_guard lock(state_->mutex);
  const auto& s = *state_;
  json::array runs;
  for (const auto& run : s.order)
    runs.push_back(run_summary(*run));
  json::object queue{{"queued_runs", s.queue.size()},
                     {"running_runs", s.running},
                     {"max_queued_runs", s.options.max_queued_runs},
                     {"waiting_modules", s.waiting_modules},
                     {"max_waiting_modules", s.options.max_waiting_modules}};
  return json::object{{"runs", std::move(runs)}, {"queue", std::move(queue)}};
}

std::optional<json::object> run_service::run_json(std::string_view id) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->runs.find(id);
  if (it == state_->runs.end()) return std::nullopt;
  const auto& run = *it->second;
  auto out = run_summary(run);
  json::array modules;
  modules.reserve(run.modules.size());
  for (const auto& m : run.modules) {
    json::array deps;
    for (auto d : m.deps) {
      if (d < run.modules.size()) deps.emplace_back(run.modules[d].id);
    }
    modules.push_back(
        json::object{{"id", m.id},
                     {"deps", std::move(deps)},
                     {"status", phase_name(m)},
                     {"attempts", m.attempts},
                     {"worker", m.worker.empty() ? json::value() : json::value(m.worker)},
                     {"reason", m.reason.empty() ? json::value() : json::value(m.reason)}});
  }
  out["modules"] = std::move(modules);
  out["report"] = run.report ? json::value(*run.report) : json::value();
  return out;
}

json::object run_service::workers_json() const {
  std::lock_guard lock(state_->mutex);
  auto& s = *state_;
  s.account_busy(steady::now());
  const double uptime = std::chrono::duration<double>(steady::now() - s.created).count();
  json::array capabilities{json::string(local_os_label())};
  for (const auto& c : s.options.capabilities)
    capabilities.emplace_back(c);
  json::array attempts;
  for (const auto& a : s.attempts) {
    if (!a.worker.starts_with("local-")) continue;  // a remote worker's: listed with it
    attempts.push_back(json::object{
        {"run", a.run}, {"module", a.module}, {"attempt", a.attempt}, {"worker", a.worker}});
  }
  const std::size_t busy = attempts.size();
  const double capacity = uptime * static_cast<double>(s.options.workers);
  json::object local{{"name", "local"},
                     {"kind", "local"},
                     {"capabilities", std::move(capabilities)},
                     {"slots", s.options.workers},
                     {"busy", busy},
                     {"utilisation", capacity > 0 ? s.busy_slot_seconds / capacity : 0.0},
                     {"attempts", std::move(attempts)}};
  json::array workers;
  if (s.options.workers > 0) workers.push_back(std::move(local));
  list_remote_workers(s, workers);
  return json::object{{"workers", std::move(workers)}};
}

std::string run_service::metrics_text() const {
  std::lock_guard lock(state_->mutex);
  auto& s = *state_;
  s.account_busy(steady::now());
  std::ostringstream out;
  std::map<std::string, std::size_t> modules_now;
  std::size_t queued = 0, running = 0;
  for (const auto& run : s.order) {
    queued += run->phase == "queued" ? 1 : 0;
    running += run->phase == "running" ? 1 : 0;
    if (run->phase != "running") continue;
    for (const auto& m : run->modules)
      ++modules_now[std::string(phase_name(m))];
  }
  header(out, "drover_runs", "gauge",
         "Runs known to the service that have not finished, by state.");
  out << "drover_runs{state=\"queued\"} " << queued << '\n';
  out << "drover_runs{state=\"running\"} " << running << '\n';
  header(out, "drover_runs_submitted_total", "counter", "Runs accepted by the service.");
  out << "drover_runs_submitted_total " << s.runs_submitted << '\n';
  header(out, "drover_runs_finished_total", "counter", "Runs that finished, by status.");
  for (std::string_view status : {"succeeded", "failed", "cancelled", "invalid"}) {
    auto it = s.runs_finished.find(status);
    out << "drover_runs_finished_total{status=\"" << status << "\"} "
        << (it == s.runs_finished.end() ? 0 : it->second) << '\n';
  }
  header(out, "drover_submissions_refused_total", "counter",
         "Submissions refused, by reason (invalid, queue_full).");
  for (std::string_view reason : {"invalid", "queue_full"}) {
    auto it = s.submissions_refused.find(reason);
    out << "drover_submissions_refused_total{reason=\"" << reason << "\"} "
        << (it == s.submissions_refused.end() ? 0 : it->second) << '\n';
  }
  header(out, "drover_modules", "gauge", "Modules of running runs, by status.");
  for (const auto& [status, count] : modules_now)
    out << "drover_modules{status=\"" << status << "\"} " << count << '\n';
  header(out, "drover_modules_finished_total", "counter", "Modules that reached a final status.");
  for (std::size_t i = 0; i < module_status_count; ++i) {
    const auto status = static_cast<module_status>(i);
    if (status == module_status::pending) continue;
    out << "drover_modules_finished_total{status=\"" << to_string(status) << "\"} "
        << s.modules_finished[i] << '\n';
  }
  header(out, "drover_attempts_total", "counter", "Module attempts started.");
  out << "drover_attempts_total " << s.attempts_started << '\n';
  header(out, "drover_retries_total", "counter", "Attempts that failed and were retried.");
  out << "drover_retries_total " << s.retries << '\n';
  header(out, "drover_queue_runs", "gauge", "Runs waiting to start.");
  out << "drover_queue_runs " << s.queue.size() << '\n';
  header(out, "drover_queue_modules_ready", "gauge",
         "Modules whose dependencies are done, waiting for a worker slot.");
  out << "drover_queue_modules_ready " << s.ready_modules << '\n';
  header(out, "drover_queue_modules_waiting", "gauge",
         "Unfinished modules of queued and running runs (bounded by --max-waiting-modules).");
  out << "drover_queue_modules_waiting " << s.waiting_modules << '\n';
  write_histogram(out, "drover_assignment_latency_seconds",
                  "Time from a module becoming ready to its attempt starting.",
                  s.assignment_latency);
  write_histogram(out, "drover_run_duration_seconds", "Duration of finished runs.", s.run_duration);
  header(out, "drover_workers_connected", "gauge", "Workers serving runs, by kind.");
  const auto [remote_workers, remote_slots] = remote_worker_count(s);
  std::size_t local_busy = 0;
  for (const auto& a : s.attempts)
    local_busy += a.worker.starts_with("local-") ? 1 : 0;
  out << "drover_workers_connected{kind=\"local\"} " << (s.options.workers > 0 ? 1 : 0) << '\n';
  out << "drover_workers_connected{kind=\"remote\"} " << remote_workers << '\n';
  header(out, "drover_worker_slots", "gauge", "Worker slots, by kind.");
  out << "drover_worker_slots{kind=\"local\"} " << s.options.workers << '\n';
  out << "drover_worker_slots{kind=\"remote\"} " << remote_slots << '\n';
  header(out, "drover_worker_slots_busy", "gauge", "Worker slots running an attempt, by kind.");
  out << "drover_worker_slots_busy{kind=\"local\"} " << local_busy << '\n';
  out << "drover_worker_slots_busy{kind=\"remote\"} " << s.attempts.size() - local_busy << '\n';
  header(out, "drover_worker_busy_seconds_total", "counter",
         "Slot-seconds spent running attempts; divide its rate by drover_worker_slots for "
         "utilisation.");
  out << "drover_worker_busy_seconds_total{kind=\"local\"} " << number(s.busy_slot_seconds) << '\n';
  header(out, "drover_stale_results_rejected_total", "counter",
         "Remote results rejected as stale, duplicate or unknown.");
  out << "drover_stale_results_rejected_total " << s.stale_results << '\n';
  header(out, "drover_worker_losses_total", "counter", "Remote workers lost during runs.");
  out << "drover_worker_losses_total " << s.worker_losses << '\n';
  return out.str();
}

}  // namespace drover::coord
