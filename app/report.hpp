#pragma once
// What `drover run` leaves behind: the --report JSON object, the --events JSON Lines and the
// summary table printed at the end. The shapes are a contract for scripts (docs/cli.md).

#include <drover/event.hpp>
#include <drover/report_json.hpp>
#include <drover/result.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <ostream>
#include <string>

namespace drover::app {

using drover::event_to_json;
using drover::format_timestamp;
using drover::report_to_json;

/// Local time of day with milliseconds, for plain progress lines: `12:00:01.234`.
std::string format_time_of_day(wall_clock::time_point t);

/// Short human duration: `340ms`, `1.2s`, `2m05s`, `1h02m`.
std::string format_duration(std::chrono::milliseconds d);

/// Writes `e` as one line of JSON and flushes, so a reader sees events as they happen.
void write_event_line(std::ostream& out, const event& e);

/// The end-of-run summary: a table (module, status, duration, attempts, worker), a "Failed
/// modules" section with each failure's reason, and one line of counts with the total duration.
void print_summary(std::ostream& out, const run_report& report);

}  // namespace drover::app
