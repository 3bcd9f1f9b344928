#include "report.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <vector>

namespace drover::app {

namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

// Splits `t` into calendar time and the milliseconds within its second.
std::pair<std::time_t, int> seconds_and_millis(wall_clock::time_point t) {
  const auto ms = std::chrono::floor<milliseconds>(t.time_since_epoch()).count();
  const auto seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  return {static_cast<std::time_t>(seconds), static_cast<int>(ms - seconds * 1000)};
}

std::string pad(std::string_view s, std::size_t width) {
  std::string out{s};
  if (out.size() < width) out.append(width - out.size(), ' ');
  return out;
}

}  // namespace

std::string format_time_of_day(wall_clock::time_point t) {
  const auto [seconds, millis] = seconds_and_millis(t);
  std::tm local{};
  localtime_r(&seconds, &local);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%02d:%02d:%02d.%03d", local.tm_hour, local.tm_min,
                local.tm_sec, millis);
  return buffer;
}

std::string format_duration(milliseconds d) {
  const auto ms = std::max<std::int64_t>(d.count(), 0);
  char buffer[32];
  if (ms < 1000) {
    std::snprintf(buffer, sizeof buffer, "%lldms", static_cast<long long>(ms));
  } else if (ms < 60'000) {
    std::snprintf(buffer, sizeof buffer, "%.1fs", static_cast<double>(ms / 100) / 10.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buffer, sizeof buffer, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>(ms / 1000 % 60));
  } else {
    std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>(ms / 60'000 % 60));
  }
  return buffer;
}

void write_event_line(std::ostream& out, const event& e) {
  out << json::serialize(event_to_json(e)) << '\n';
  out.flush();
}

void print_summary(std::ostream& out, const run_report& report) {
  struct row {
    std::string module, status, duration, attempts, worker;
  };
  std::vector<row> rows;
  rows.push_back({"module", "status", "duration", "attempts", "worker"});
  for (const auto& m : report.modules) {
    const auto worker = report.worker_name(m);
    rows.push_back({m.id, std::string{to_string(m.status)},
                    m.attempts > 0 ? format_duration(m.duration()) : "-",
                    std::to_string(m.attempts), worker.empty() ? "-" : std::string{worker}});
  }
  std::array<std::size_t, 4> widths{};
  for (const auto& r : rows) {
    widths[0] = std::max(widths[0], r.module.size());
    widths[1] = std::max(widths[1], r.status.size());
    widths[2] = std::max(widths[2], r.duration.size());
    widths[3] = std::max(widths[3], r.attempts.size());
  }
  for (const auto& r : rows) {
    out << pad(r.module, widths[0]) << "  " << pad(r.status, widths[1]) << "  "
        << pad(r.duration, widths[2]) << "  " << pad(r.attempts, widths[3]) << "  " << r.worker
        << '\n';
  }

  bool header_printed = false;
  for (const auto& m : report.modules) {
    const bool has_failure = m.status == module_status::failed ||
                             m.status == module_status::timed_out ||
                             m.status == module_status::ignored_failure;
    if (!has_failure) continue;
    if (!header_printed) {
      out << "\nFailed modules\n";
      header_printed = true;
    }
    out << "  " << m.id << " (" << to_string(m.status) << " after " << m.attempts
        << (m.attempts == 1 ? " attempt" : " attempts") << ")\n";
    std::istringstream reason{m.reason.empty() ? std::string{"no reason given"} : m.reason};
    for (std::string line; std::getline(reason, line);)
      out << "    " << line << '\n';
  }

  out << '\n';
  bool first = true;
  for (std::size_t s = 0; s < module_status_count; ++s) {
    const auto status = static_cast<module_status>(s);
    const std::size_t n = report.count(status);
    const bool always_shown = status == module_status::succeeded || status == module_status::failed;
    if (n == 0 && !always_shown) continue;
    out << (first ? "" : ", ") << n << ' ' << to_string(status);
    first = false;
  }
  out << " in " << format_duration(report.duration()) << '\n';
  if (report.reused_from_journal > 0 || report.reused_from_cache > 0) {
    out << "cached: " << report.reused_from_journal << " from the journal of an earlier run, "
        << report.reused_from_cache << " from the cache\n";
  }
  for (const auto& note : report.notes)
    out << "note: " << note << '\n';
  const auto& remote = report.remote;
  if (remote.workers_attached > 0) {
    out << "remote workers: " << remote.workers_attached << " attached, " << remote.workers_lost
        << " lost, " << remote.reassigned << (remote.reassigned == 1 ? " attempt" : " attempts")
        << " reassigned, " << remote.rejected_results << " stale results rejected\n";
  }
}

}  // namespace drover::app
