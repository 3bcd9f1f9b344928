#pragma once
// The commands of the drover tool: run, validate, plan and graph, plus the argument parsing
// that dispatches to them. Exit codes and output formats are documented in docs/cli.md.

#include "addresses.hpp"
#include "selection.hpp"

#include <drover/engine.hpp>
#include <drover/journal.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace drover::coord {
class master;
}

namespace drover::app {

/// Exit codes: a contract for scripts.
enum exit_code : int {
  exit_succeeded = 0,  ///< every selected module succeeded, was skipped or had its failure ignored
  exit_failed = 1,     ///< a module failed, timed out or was cancelled
  exit_usage = 2,      ///< bad arguments or an invalid pipeline file; nothing ran
  exit_invariant_broken = 3,  ///< drover simulate: a run broke an invariant (a drover bug)
  exit_interrupted = 130      ///< SIGINT or SIGTERM cancelled the run
};

/// When `drover run` draws live progress instead of plain event lines.
enum class progress_mode { automatic, always, never };

/// Everything `drover run` was asked to do.
struct run_settings {
  std::string file;
  std::size_t workers = 1;
  bool keep_going = false;
  selection chosen;
  std::string report_file;        ///< empty: no report
  std::string events_file;        ///< empty: no events file
  std::filesystem::path log_dir;  ///< --log-dir DIR; empty: <workspace>/.drover/logs
  /// --workspace DIR: where declared outputs land; empty: the current directory.
  std::filesystem::path workspace;
  bool keep_workdirs = false;  ///< --keep-workdirs
  bool live_progress = false;  ///< redraw progress in place (stdout is a terminal)
  /// --capability: labels of the local workers besides their OS label (local_os_label()).
  std::vector<std::string> capabilities;
  ready_order order = ready_order::critical_path;     ///< --order
  std::optional<std::chrono::milliseconds> deadline;  ///< --deadline
  /// --listen HOST:PORT: also serve remote workers there (docs/remote.md). Empty: none.
  std::string listen_host;
  std::uint16_t listen_port = 0;
  std::optional<std::string> token;                     ///< from --token-file
  std::chrono::milliseconds heartbeat{1000};            ///< --heartbeat-ms
  std::chrono::milliseconds lost_worker_timeout{5000};  ///< --lost-worker-timeout-ms
  std::chrono::milliseconds capability_timeout{30000};  ///< --capability-timeout-ms
  /// --max-line-bytes: the longest protocol line, announced to workers in welcome.
  std::size_t max_line_bytes = std::size_t{1} << 20;
  std::size_t max_depth = 32;  ///< --max-depth: the deepest nesting accepted from a worker
  /// --max-connections-per-address, --max-handshakes-per-address (coord::master_options).
  std::size_t max_connections_per_address = 1024;
  std::size_t max_handshakes_per_address = 64;
  /// --max-worker-losses: a module whose attempts were on this many lost workers fails as
  /// poison (worker_hub::settings::max_worker_losses).
  std::size_t max_worker_losses = 3;
  std::filesystem::path journal;                      ///< --journal FILE; empty: none
  bool resume = false;                                ///< --resume
  durability journal_durability = durability::fsync;  ///< --durability
  std::filesystem::path cache_dir;  ///< --cache DIR, else $DROVER_CACHE_DIR; empty: none
  bool no_cache = false;            ///< --no-cache: use no stored result, store new ones
  /// --coordinator and its companions: one run over several instances that meet in Redis
  /// (coordinated_run.hpp, docs/redis.md). Empty url: a run of this process alone.
  struct coordinator_settings {
    std::string url;                              ///< --coordinator redis://HOST:PORT/DB
    std::string run_key;                          ///< --run-key
    std::optional<std::string> password;          ///< from --coordinator-password-file
    std::uint32_t instance = 0;                   ///< --instance
    std::uint32_t total = 1;                      ///< --total
    std::chrono::milliseconds timeout{60000};     ///< --coordinator-timeout
    std::chrono::milliseconds keep_for{3600000};  ///< --keep-for
    std::chrono::milliseconds lease_ttl{10000};   ///< --lease-ttl
  } coordinator;
};

/// How the instance that is a coordinated run's master changes `drover run`
/// (coordinated_run.cpp): the journal and the epoch come from Redis, workers join through Redis
/// rather than --listen, and the outcome is published for the other instances.
struct master_role {
  std::shared_ptr<run_journal> journal;
  std::uint64_t epoch = 0;  ///< the lease's; fences off what workers of an older master send
  std::string run_id;
  /// On the run's io_context once the run started: accept workers with `master`, keep the
  /// lease, and call `cancel` if it is lost.
  std::function<void(boost::asio::io_context&, coord::master&, std::function<void()> cancel)> start;
  /// When the run ended, before the master says bye to its workers: publish the outcome,
  /// then call `done`.
  std::function<void(const run_report&, int exit_code, std::function<void()> done)> finish;
  /// Before the run's io_context is destroyed: destroys the I/O objects start() made on it
  /// (a timer or socket that outlives its io_context is undefined behaviour).
  std::function<void()> stop;
};

/// The exit code of a run that ended with `report`.
int exit_code_of(const run_report& report, bool interrupted);

/// `drover run`: runs the pipeline until it ends or SIGINT/SIGTERM cancels it.
/// With `role`, as the master of a coordinated run.
int run_command(const run_settings& settings, std::ostream& out, std::ostream& err,
                master_role* role = nullptr);

/// `drover validate FILE`: prints `FILE: ok, N modules`, or the problems on `err`. Warns on
/// `err` about each module that requires a capability the local workers (their OS label plus
/// `capabilities`) lack, which a local run would skip.
int validate_command(const std::string& file, const std::vector<std::string>& capabilities,
                     std::ostream& out, std::ostream& err);

/// `drover plan FILE`: prints the waves a run would take (`wave 1: fetch, lint`), and warns as
/// validate_command does about the selected modules.
int plan_command(const std::string& file, const selection& chosen,
                 const std::vector<std::string>& capabilities, std::ostream& out,
                 std::ostream& err);

/// `drover graph FILE`: the dependency graph as Graphviz dot or a Mermaid flowchart.
int graph_command(const std::string& file, std::string_view format, std::ostream& out,
                  std::ostream& err);

/// The whole command line: parses `argv` and runs the command it names.
int main_command(int argc, const char* const argv[], std::ostream& out, std::ostream& err);

}  // namespace drover::app
