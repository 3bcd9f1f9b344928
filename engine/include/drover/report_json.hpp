#pragma once
// The JSON forms of a run's report and events: what `drover run --report` and `--events` write
// and what `drover serve` answers with. The shapes are a contract for scripts (docs/cli.md).

#include <drover/event.hpp>
#include <drover/result.hpp>

#include <boost/json/object.hpp>

#include <string>

namespace drover {

/// RFC 3339, UTC, milliseconds: `2026-11-22T10:00:00.123Z`.
std::string format_timestamp(wall_clock::time_point t);

/// The report object: pipeline, status, started_at, finished_at, duration_ms, counts (one
/// member per module status) and modules [{id, status, attempts, worker, started_at,
/// finished_at, duration_ms, reason, value}], with null for what a module never had.
boost::json::object report_to_json(const run_report& report);

/// One event: ts, seq, type, and run, module, attempt, worker, status, message, delay_ms and
/// total where they apply.
boost::json::object event_to_json(const event& e);

}  // namespace drover
