#pragma once
// The service benchmark (drover-bench --service): what `drover serve` adds to a run.
//
// - Submissions: N pipelines of one noop module submitted over HTTP (POST /api/runs on one
//   keep-alive connection) to a run_service and its http_service in this process, timed from
//   the first request until the last run finished; beside it the same N submitted with
//   run_service::submit directly, which is the baseline: the ratio is what HTTP costs.
// - An SSE subscriber: the `independent` shape (M noop modules without edges) run by the
//   service, with no one reading its events and with one client reading them as Server-Sent
//   Events while it runs. The figure is the run's own duration (its report's duration_ms).
//
// Rows alternate round by round, so that a change in the machine's load affects them alike.

#include <boost/json/object.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace drover::bench {

struct service_settings {
  std::size_t submissions = 2'000;
  std::size_t modules = 20'000;  ///< the independent shape's size for the SSE rows
  std::size_t rounds = 5;
};

struct service_row {
  std::string name;              ///< e.g. "submit over HTTP"
  std::vector<std::int64_t> ns;  ///< per round: the timed span
  std::size_t units = 0;         ///< runs submitted, or modules run, per round
  std::string error;             ///< empty when every round ran correctly
  bool ok() const noexcept { return error.empty(); }
};

std::vector<service_row> measure_service(const service_settings& settings, std::ostream& log);
void print_service_table(std::ostream& out, const std::vector<service_row>& rows, bool markdown);
boost::json::object service_to_json(const service_settings& settings,
                                    const std::vector<service_row>& rows);

}  // namespace drover::bench
