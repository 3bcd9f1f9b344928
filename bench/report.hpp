#pragma once
// The figures of a whole run and the ways they are shown: text or Markdown tables, and JSON.

#include "common/contender.hpp"
#include "common/machine.hpp"
#include "common/shape.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace drover::bench {

/// What the user asked for.
struct bench_settings {
  std::vector<workload> workloads;
  std::vector<std::size_t> threads;
  std::vector<std::size_t> sizes;  ///< module counts
  std::size_t rounds = 5;
  std::vector<contender> contenders;
  bool quick = false;
  bool markdown = false;
  std::string json_path;
};

/// One (workload, size, threads, contender): every round plus the child's memory.
struct measurement {
  workload kind{};
  std::size_t modules = 0;
  std::size_t edges = 0;
  std::size_t threads = 0;
  contender who{};
  std::vector<std::int64_t> build_ns, run_ns;  ///< one per round
  long long baseline_rss_bytes = 0;            ///< the child's RSS once the shape was built
  long long peak_rss_bytes = 0;                ///< the child's peak RSS over all rounds
  bool peak_restarted = false;                 ///< the peak was restarted after building the shape
  std::string error;                           ///< empty when it ran and every count was right

  bool ok() const noexcept { return error.empty(); }
  std::int64_t median_build_ns() const;
  std::int64_t median_run_ns() const;
  double modules_per_second() const;
  double ns_per_module() const;
  double bytes_per_module() const;
};

/// "2^20" for powers of two from 2^10 up, the plain number otherwise.
std::string size_label(std::size_t modules);

/// The results table, then the scaling report (ns/module across sizes).
void print_tables(std::ostream& out, const std::vector<measurement>& results,
                  const bench_settings& settings);

/// One document: the machine, the flags, every figure and the scaling report.
boost::json::object to_json(const std::vector<measurement>& results, const bench_settings& settings,
                            const machine_info& machine);

}  // namespace drover::bench
