#pragma once
// The journal benchmark (drover-bench --journal): what run_options::journal costs a run, with
// durability::relaxed and durability::fsync, beside the same run without a journal.
//
// Two shapes from bench/common/shape.hpp, run by the engine on one worker (one io_context
// thread, run_options::workers = 1) with the drover contender's pipeline (noop bodies that only
// stamp their module), prepared with drover::prepare before the clock starts:
//
// - independent: N modules without edges. No module has dependents, so nothing waits for a
//   record: the journal's cost is serializing and writing a record per module (and a
//   fingerprint per module), plus, with fsync, the syncs that end_run waits for.
// - linear_chain: each module depends on the one before. With fsync, a module's dependent is
//   released only once its record is synced, so every module pays one sync's latency and no two
//   records of the chain can share a sync.
//
// A round's time runs from run_journal::open (a fresh file each time) until the run's
// completion handler, which the engine calls after end_run has written (and synced) the end
// record. The three configurations alternate round by round, so that a change in the machine's
// load or in the disk's write-back affects all of them alike.

#include "common/shape.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace drover::bench {

struct journal_settings {
  std::size_t independent_modules = 100'000;
  std::size_t chain_modules = 2'000;
  std::size_t rounds = 5;
};

/// What a row hands the run: nothing, or a journal in one of its two durability modes.
enum class journal_setup : std::uint8_t { none, relaxed, fsync };

std::string_view to_string(journal_setup j) noexcept;

/// One shape in one setup: every round's figures, or what went wrong.
struct journal_measurement {
  workload kind = workload::independent;
  std::size_t modules = 0;
  journal_setup setup = journal_setup::none;
  std::vector<std::int64_t> run_ns;
  std::vector<std::int64_t> fdatasync_calls;  ///< per round; empty when they are not counted
  std::vector<std::int64_t> journal_bytes;    ///< the journal file's size after each round
  std::string error;                          ///< empty when every round ran correctly

  bool ok() const noexcept { return error.empty(); }
  std::int64_t median_run_ns() const;
};

struct journal_results {
  std::filesystem::path directory;  ///< where the journal files were written (then removed)
  std::string file_system;          ///< its file system: type, device and mount point
  bool fdatasync_counted = false;   ///< see fdatasync_calls_counted()
  std::vector<journal_measurement> rows;
};

/// Whether this drover-bench counts the engine's fdatasync calls: CMake links it with
/// `-Wl,--wrap=fdatasync` when the engine is a static library (the default), so that the
/// engine's calls go through a counter in drover-bench; a shared engine's calls would not.
bool fdatasync_calls_counted() noexcept;

/// Runs both shapes `rounds` times in each setup. The journal files go to a new directory
/// drover-bench-journal-XXXXXX in the current directory (so on its file system), one fresh
/// file per round, removed after the round and the directory at the end. After each round it
/// checks that the run succeeded with every module, that every module's body ran exactly once
/// and after its dependency, that the run left no note (a journal write or sync that failed)
/// and that the journal holds one line per module besides the run and end records. Throws
/// std::runtime_error when the directory cannot be made. Progress goes to `progress`.
journal_results measure_journal(const journal_settings& settings, std::ostream& progress);

/// Where the journal files went, then a table per shape: run ms (median, fastest, slowest),
/// time per module, what the journal added per module, the ratio to the row without a
/// journal, fdatasync calls and modules per sync, and the journal's bytes per module.
void print_journal_tables(std::ostream& out, const journal_results& results, std::size_t rounds,
                          bool markdown);

boost::json::object journal_to_json(const journal_results& results, std::size_t rounds);

}  // namespace drover::bench
