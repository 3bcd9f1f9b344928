// The service's state directory: `<state_dir>/runs/<id>/` holds a run's submitted pipeline
// (pipeline.json), what the service knows of it (meta.json), its journal (journal.jsonl), its
// logs (logs/) and, once it finished, its report (report.json). A directory without a report
// is a run that did not finish: the next start resumes it.

#include "service_state.hpp"

#include <drover/report_json.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace drover::coord::service_detail::store {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// Written beside, then renamed over: a reader never sees half a file.
void write_file(const fs::path& path, std::string_view text) {
  const fs::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc | std::ios::binary);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.flush();
    if (!out) throw std::runtime_error("cannot write '" + temporary.string() + "'");
  }
  std::error_code ec;
  fs::rename(temporary, path, ec);
  if (ec) throw std::runtime_error("cannot write '" + path.string() + "': " + ec.message());
}

std::optional<std::string> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::int64_t millis_since_epoch(wall_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

wall_clock::time_point from_millis(std::int64_t ms) {
  return wall_clock::time_point{std::chrono::milliseconds{ms}};
}

// A finished run's module views, from its report.
void apply_report(service_run& run, const json::object& report) {
  run.phase = "failed";
  if (const auto* status = report.if_contains("status"); status && status->is_string())
    run.phase = std::string(status->get_string());
  const auto* modules = report.if_contains("modules");
  if (!modules || !modules->is_array()) return;
  for (const auto& entry : modules->get_array()) {
    const auto* m = entry.if_object();
    if (!m) continue;
    module_view view;
    view.phase = module_phase::finished;
    if (const auto* id = m->if_contains("id"); id && id->is_string())
      view.id = std::string(id->get_string());
    if (const auto* s = m->if_contains("status"); s && s->is_string())
      view.status = module_status_from_string(s->get_string()).value_or(module_status::failed);
    if (const auto* a = m->if_contains("attempts"); a && a->is_int64())
      view.attempts = static_cast<std::uint32_t>(a->get_int64());
    if (const auto* w = m->if_contains("worker"); w && w->is_string())
      view.worker = std::string(w->get_string());
    if (const auto* r = m->if_contains("reason"); r && r->is_string())
      view.reason = std::string(r->get_string());
    run.modules.push_back(std::move(view));
  }
}

}  // namespace

void save_submission(const service_run& run) {
  std::error_code ec;
  fs::create_directories(run.dir, ec);
  if (ec) throw std::runtime_error("cannot create '" + run.dir.string() + "': " + ec.message());
  write_file(run.dir / "pipeline.json", run.text);
  json::object meta{{"run", run.id},
                    {"name", run.name},
                    {"submitted_at_ms", millis_since_epoch(run.submitted_at)}};
  write_file(run.dir / "meta.json", json::serialize(meta) + "\n");
}

void save_report(const service_run& run) {
  if (!run.report) return;
  write_file(run.dir / "report.json", json::serialize(*run.report) + "\n");
}

std::vector<std::shared_ptr<service_run>> load_runs(const fs::path& state_dir,
                                                    std::size_t kept_events,
                                                    const std::function<void(std::string)>& log) {
  std::vector<std::shared_ptr<service_run>> runs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(state_dir / "runs", ec)) {
    if (!entry.is_directory()) continue;
    const fs::path dir = entry.path();
    auto meta_text = read_file(dir / "meta.json");
    auto text = read_file(dir / "pipeline.json");
    std::error_code parse_error;
    const auto meta = meta_text ? json::parse(*meta_text, parse_error) : json::value();
    if (!text || !meta.is_object() || parse_error) {
      log("state directory: skipping '" + dir.string() +
          "': its meta.json or pipeline.json is missing or unreadable");
      continue;
    }
    auto run = std::make_shared<service_run>();
    run->dir = dir;
    run->id = dir.filename().string();
    run->text = std::move(*text);
    const auto& m = meta.get_object();
    if (const auto* name = m.if_contains("name"); name && name->is_string())
      run->name = std::string(name->get_string());
    if (const auto* at = m.if_contains("submitted_at_ms"); at && at->is_int64())
      run->submitted_at = from_millis(at->get_int64());
    // The events of its earlier lives: a stream resumed with Last-Event-ID goes on from them.
    if (std::ifstream events{dir / "events.jsonl"}) {
      for (std::string line; std::getline(events, line);) {
        if (line.empty() || line.back() != '}') continue;  // torn by a crash mid-write
        run->events.push_back(std::move(line));
        ++run->next_seq;
        if (run->events.size() > std::max<std::size_t>(1, kept_events)) run->events.pop_front();
      }
      run->first_seq = run->next_seq - run->events.size();
      run->persisted = run->next_seq;
    }
    if (auto report_text = read_file(dir / "report.json")) {
      std::error_code report_error;
      auto report = json::parse(*report_text, report_error);
      if (!report_error && report.is_object()) {
        apply_report(*run, report.get_object());
        run->report = std::move(report.get_object());
        // When its report was written: the run finished then.
        std::error_code time_error;
        const auto written = fs::last_write_time(dir / "report.json", time_error);
        run->finished_at = time_error ? run->submitted_at
                                      : std::chrono::time_point_cast<wall_clock::duration>(
                                            std::chrono::file_clock::to_sys(written));
      }
    }
    runs.push_back(std::move(run));
  }
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
    return std::tie(a->submitted_at, a->id) < std::tie(b->submitted_at, b->id);
  });
  return runs;
}

}  // namespace drover::coord::service_detail::store
