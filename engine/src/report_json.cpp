#include <drover/report_json.hpp>

#include <array>
#include <cstdio>
#include <ctime>
#include <utility>

namespace drover {

namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

json::value timestamp_or_null(wall_clock::time_point t) {
  if (t == wall_clock::time_point{}) return nullptr;
  return json::string{format_timestamp(t)};
}

// Splits `t` into calendar time and the milliseconds within its second.
std::pair<std::time_t, int> seconds_and_millis(wall_clock::time_point t) {
  const auto ms = std::chrono::floor<milliseconds>(t.time_since_epoch()).count();
  const auto seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  return {static_cast<std::time_t>(seconds), static_cast<int>(ms - seconds * 1000)};
}

}  // namespace

std::string format_timestamp(wall_clock::time_point t) {
  const auto [seconds, millis] = seconds_and_millis(t);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
  return buffer;
}

json::object report_to_json(const run_report& report) {
  json::object out;
  out["pipeline"] = report.pipeline;
  if (!report.run_id.empty()) out["run"] = report.run_id;
  out["status"] = to_string(report.status);
  out["started_at"] = timestamp_or_null(report.started_at);
  out["finished_at"] = timestamp_or_null(report.finished_at);
  out["duration_ms"] = report.duration().count();
  json::object counts;
  for (std::size_t s = 0; s < module_status_count; ++s) {
    const auto status = static_cast<module_status>(s);
    counts[to_string(status)] = report.count(status);
  }
  out["counts"] = std::move(counts);
  json::array modules;
  modules.reserve(report.modules.size());
  for (const auto& m : report.modules) {
    json::object entry;
    entry["id"] = m.id;
    entry["status"] = to_string(m.status);
    entry["attempts"] = m.attempts;
    const auto worker = report.worker_name(m);
    entry["worker"] = worker.empty() ? json::value{} : json::value(worker);
    const bool started = m.attempts > 0;
    entry["started_at"] = started ? timestamp_or_null(m.started_at) : json::value{};
    entry["finished_at"] = timestamp_or_null(m.finished_at);
    entry["duration_ms"] = started ? json::value(m.duration().count()) : json::value{};
    entry["reason"] = m.reason.empty() ? json::value{} : json::value(m.reason);
    entry["value"] = m.value;
    modules.push_back(std::move(entry));
  }
  out["modules"] = std::move(modules);
  if (report.epoch > 0) out["epoch"] = report.epoch;
  out["reused"] =
      json::object{{"journal", report.reused_from_journal}, {"cache", report.reused_from_cache}};
  if (!report.notes.empty()) {
    json::array notes;
    for (const auto& note : report.notes)
      notes.emplace_back(note);
    out["notes"] = std::move(notes);
  }
  const auto& remote = report.remote;
  if (remote.workers_attached > 0) {
    out["remote"] = json::object{{"workers_attached", remote.workers_attached},
                                 {"workers_lost", remote.workers_lost},
                                 {"reassigned", remote.reassigned},
                                 {"rejected_results", remote.rejected_results},
                                 {"overdue", remote.overdue},
                                 {"dependency_results_sent", remote.dependency_results_sent}};
  }
  return out;
}

json::object event_to_json(const event& e) {
  json::object out;
  out["ts"] = format_timestamp(e.ts);
  out["seq"] = e.seq;
  out["type"] = to_string(e.type);
  if (!e.run.empty()) out["run"] = e.run;
  const bool is_run_event = e.type == event_type::run_started ||
                            e.type == event_type::run_finished || e.type == event_type::run_queued;
  const bool is_worker_event = e.type == event_type::worker_joined ||
                               e.type == event_type::worker_lost ||
                               e.type == event_type::worker_drained;
  if (!is_run_event && !is_worker_event) out["module"] = e.module.view();
  if (e.attempt > 0) out["attempt"] = e.attempt;
  if (!e.worker.empty()) out["worker"] = e.worker;
  if (e.type == event_type::module_finished) out["status"] = to_string(e.status);
  if (!e.message.empty()) out["message"] = e.message;
  if (e.type == event_type::module_retrying) out["delay_ms"] = e.delay.count();
  if (is_run_event) out["total"] = e.total;
  return out;
}

}  // namespace drover
