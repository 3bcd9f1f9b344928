#pragma once
// Child processes and their memory. Each measurement runs in a fresh copy of drover-bench, so
// that its peak RSS belongs to that measurement alone.

#include <string>
#include <vector>

namespace drover::bench {

/// The resident set size of this process now (VmRSS from /proc/self/status), in bytes; 0 when
/// it cannot be read.
long long current_rss_bytes();

/// The peak resident set size of this process (VmHWM), in bytes: since exec, or since the last
/// successful restart_peak_rss(). 0 when it cannot be read.
///
/// Not getrusage: a child's ru_maxrss also counts the pages of the parent it was forked or
/// vforked from (Linux carries the pre-exec mm's high-water mark over exec), so it can never be
/// smaller than the parent's RSS at spawn time. VmHWM describes only the image after exec.
long long peak_rss_bytes();

/// Hands freed heap memory back to the kernel (malloc_trim), then restarts the peak from the
/// current RSS (writes 5 to /proc/self/clear_refs, Linux 4.0 and later). Afterwards a later
/// peak counts only what was allocated since, not memory that was freed but stayed resident.
/// False when the kernel did not allow the restart.
bool restart_peak_rss();

struct child_outcome {
  std::string output;   ///< everything the child wrote to stdout
  int exit_code = -1;   ///< -1 when it did not exit normally
  std::string failure;  ///< empty when it exited 0; otherwise how it ended
  /// The child's ru_maxrss. Linux counts the spawning parent's RSS into it (see
  /// peak_rss_bytes), so it means the child's peak only when this process is much smaller.
  long long max_rss_kb = 0;
};

/// The path of the drover binary CMake built beside drover-bench, or nullptr when it built
/// none (DROVER_BUILD_APP=OFF): --remote starts its workers, --simulation runs it.
const char* drover_binary_path() noexcept;

/// Runs `program` with `args` (argv[1...]), stdout captured, stderr shared with ours, and
/// waits for it.
child_outcome run_program(const std::string& program, const std::vector<std::string>& args);

/// Runs this program again with `args` (argv[1...]), stdout captured, stderr shared with ours,
/// and waits for it.
child_outcome run_self(const std::vector<std::string>& args);

}  // namespace drover::bench
