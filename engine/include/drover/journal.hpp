#pragma once
// The run journal: JSON lines, in a file or a journal_store, that let a run resume after the
// process owning it died. docs/journal.md describes the format and the guarantees.

#include <drover/status.hpp>

#include <boost/json/value.hpp>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace drover {

class pipeline;

/// When a journal record counts as written.
enum class durability : std::uint8_t {
  /// Each terminal record is on disk (fdatasync) before the module's dependents are released;
  /// records written at about the same time share one sync. Survives a crash of the machine.
  fsync,
  /// Records are written in order by a background thread and never synced: a killed process
  /// loses at most the records not yet written (those modules run again), but a crash of the
  /// machine or a power loss may lose or tear any record the OS had not flushed.
  relaxed,
};

struct journal_options {
  durability mode = durability::fsync;
  /// Read the records of earlier runs: modules recorded succeeded, whose fingerprint is
  /// unchanged, are not run again. Without it an existing journal is started afresh.
  bool resume = false;
  /// With open_store: append to the store on the thread that records, at once, instead of on
  /// a writer thread. For a store that answers at once (an in-memory one, a simulation's fake
  /// Redis), so that a simulation's order of events follows its seed alone.
  bool inline_writes = false;
};

/// A journal that cannot be used: unreadable, of another pipeline. The message names the file
/// (and the line, for a corrupt record).
class journal_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Where a journal's lines are kept instead of a file (a Redis stream, ...). A store holds whole
/// lines: an append either keeps all of its lines or none.
class journal_store {
 public:
  virtual ~journal_store() = default;
  /// Names the store in messages ("redis://127.0.0.1:6379/0 drover:{k}:journal").
  virtual std::string name() const = 0;
  /// Everything appended so far, each line ending in '\n'. Throws journal_error.
  virtual std::string load() = 0;
  /// Appends `lines` (one or more lines, each ending in '\n'). Returns nothing once they are
  /// durable, or why they could not be kept. Called on the journal's writer thread, one call
  /// at a time.
  virtual std::optional<std::string> append(std::string_view lines) = 0;
};

/// One journal file, used by one run at a time. Open it, hand it to run_options::journal, and
/// give a worker_hub the journal's epoch so that workers of an earlier run are fenced off:
///
///     auto journal = drover::run_journal::open("run.journal", {.resume = true});
///     options.journal = journal;
///     hub_config.epoch = journal->epoch();
///
/// The run appends a `run` record when it starts, a `module` record per terminal module and an
/// `end` record when it completes. Its methods other than open() and the accessors are called
/// by the run.
class run_journal {
 public:
  /// What an earlier run recorded about a module.
  struct recorded_module {
    std::string fingerprint;
    module_status status = module_status::pending;
    boost::json::value value;
  };

  /// Opens `path`, creating it (and its directory) if needed. With options.resume, reads the
  /// earlier runs' records first; a torn last line (the process died while writing it) is
  /// dropped and cut off the file. Throws journal_error.
  static std::shared_ptr<run_journal> open(std::filesystem::path path, journal_options options);

  /// A journal kept in `storage` instead of a file, for simulations: a record is durable as
  /// soon as it is appended, and a master that "dies" leaves `storage` behind for the next one
  /// to open with resume. Not thread-safe with respect to `storage`.
  static std::shared_ptr<run_journal> open_in_memory(std::shared_ptr<std::string> storage,
                                                     journal_options options);

  /// A journal kept in `store`; path() is the store's name. With options.resume, reads the
  /// earlier runs' records from store->load() (a torn last line is dropped from what is read,
  /// and stays in the store). A store cannot be emptied: without resume its content is not
  /// read at all (the epoch is 1) and new records follow it, so give a fresh store, or resume.
  /// Records are appended by the writer thread, as to a file (or at once, on the recording
  /// thread, with options.inline_writes), and count as durable in either mode once
  /// store->append() returned. Throws journal_error.
  static std::shared_ptr<run_journal> open_store(std::shared_ptr<journal_store> store,
                                                 journal_options options);

  ~run_journal();
  run_journal(const run_journal&) = delete;
  run_journal& operator=(const run_journal&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  durability mode() const noexcept { return options_.mode; }
  /// The epoch of the run that uses this journal: one above the last one recorded, 1 for a
  /// new journal.
  std::uint64_t epoch() const noexcept { return epoch_; }
  /// Whether records of an earlier run were read (open with resume on a non-empty journal).
  bool resuming() const noexcept { return resuming_; }
  /// Whether a torn last line was dropped when opening.
  bool dropped_torn_line() const noexcept { return dropped_torn_line_; }
  /// The pipeline name the earlier runs recorded, when resuming.
  const std::string& recorded_pipeline() const noexcept { return recorded_pipeline_; }
  /// Whether the earlier runs recorded a different definition of the pipeline (its
  /// fingerprint differs); modules are still reused one by one where their own is unchanged.
  bool pipeline_changed() const noexcept { return pipeline_changed_; }

  // --- Used by the run ---

  /// Checks that the journal belongs to `p` and appends the run record. Returns why it cannot
  /// be used (a journal of another pipeline), or nothing.
  std::optional<std::string> begin_run(const pipeline& p, const std::string& fingerprint);
  /// The latest record an earlier run left for `id`, or nullptr.
  const recorded_module* previous(const std::string& id) const;
  /// Appends a module's terminal record; returns its sequence number (1, 2, ...).
  std::uint64_t append_module(const std::string& id, const std::string& fingerprint,
                              module_status status, std::uint32_t attempts,
                              const boost::json::value& value, const std::string& reason);
  /// Calls `done` (on the writer's thread) once every record up to `seq` is durable in the
  /// journal's mode: synced for fsync, written for relaxed. At once if it already is.
  void when_durable(std::uint64_t seq, std::function<void()> done);
  /// Appends the end record and waits until everything is written (and synced).
  void end_run(run_status status);
  /// The last write or sync error, if any: the run reports it and stops relying on the journal.
  std::optional<std::string> failure() const;

 private:
  run_journal(std::filesystem::path path, journal_options options);
  run_journal(std::shared_ptr<std::string> storage, journal_options options);
  run_journal(std::shared_ptr<journal_store> store, journal_options options);
  void read_existing();
  std::string existing_content();
  std::uint64_t append_line(std::string line);  // returns the record's sequence number
  void writer_loop();
  std::optional<std::string> write_batch(std::string_view batch);  // on the writer thread

  std::filesystem::path path_;
  journal_options options_;
  int fd_ = -1;
  std::shared_ptr<std::string> memory_;   // instead of the file
  std::shared_ptr<journal_store> store_;  // instead of the file; used by the writer thread
  std::uint64_t epoch_ = 1;
  bool resuming_ = false;
  bool dropped_torn_line_ = false;
  bool pipeline_changed_ = false;
  std::string recorded_pipeline_;
  std::string recorded_fingerprint_;
  std::unordered_map<std::string, recorded_module> previous_;

  // Shared with the writer thread.
  mutable std::mutex mutex_;
  std::condition_variable wake_writer_;
  std::condition_variable written_;
  std::string pending_;         // lines appended and not yet taken by the writer
  std::uint64_t appended_ = 0;  // sequence number of the last record appended
  std::uint64_t durable_ = 0;   // sequence number of the last record durable
  std::vector<std::pair<std::uint64_t, std::function<void()>>> waiters_;
  std::optional<std::string> failure_;
  bool stopping_ = false;
  bool writer_idle_ = false;  // waiting for records: the next append wakes it
  std::thread writer_;
};

}  // namespace drover
