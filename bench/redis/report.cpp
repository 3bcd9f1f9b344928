// The tables and the JSON of drover-bench --redis.

#include "common/table.hpp"
#include "common/timing.hpp"
#include "common/worker_rows.hpp"
#include "redis/redis.hpp"

#include <boost/json/array.hpp>

#include <ostream>

namespace drover::bench {

namespace json = boost::json;

void print_redis_tables(std::ostream& out, const redis_results& results, std::size_t rounds,
                        bool markdown) {
  print_worker_table(out, "Workers over Redis Streams", results.rows, rounds, markdown);

  const failover_measurement& f = results.failover;
  out << '\n'
      << (markdown ? "### " : "") << "Master failover (median of " << f.resumed_ns.size()
      << " rounds, 3 instances)\n"
      << (markdown ? "\n" : "");
  table ft({{"lease ttl ms", true},
            {"lease taken ms", true},
            {"run resumed ms", true},
            {"resumed / ttl", true}});
  if (f.ok() && !f.resumed_ns.empty()) {
    const std::int64_t resumed = median_of(f.resumed_ns);
    const double ttl_ns = static_cast<double>(f.lease_ttl.count()) * 1e6;
    ft.add({std::to_string(f.lease_ttl.count()), milliseconds_text(median_of(f.lease_taken_ns)),
            milliseconds_text(resumed), fixed(static_cast<double>(resumed) / ttl_ns, 2) + "x"});
  } else {
    ft.add({std::to_string(f.lease_ttl.count()), "FAILED", "-", "-"});
  }
  ft.print(out, markdown);
  if (!f.ok()) out << "FAILED failover: " << f.error << '\n';
}

json::object redis_to_json(const redis_results& results, std::size_t rounds) {
  const failover_measurement& f = results.failover;
  json::object failover;
  failover["lease_ttl_ms"] = f.lease_ttl.count();
  failover["ok"] = f.ok();
  if (!f.ok()) failover["error"] = f.error;
  failover["lease_taken_ns_rounds"] = json::array(f.lease_taken_ns.begin(), f.lease_taken_ns.end());
  failover["resumed_ns_rounds"] = json::array(f.resumed_ns.begin(), f.resumed_ns.end());
  if (!f.resumed_ns.empty()) failover["resumed_ns"] = median_of(f.resumed_ns);

  json::object doc;
  doc["rounds"] = rounds;
  doc["results"] = worker_rows_to_json(results.rows);
  doc["failover"] = std::move(failover);
  return doc;
}

}  // namespace drover::bench
