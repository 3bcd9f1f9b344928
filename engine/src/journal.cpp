#include <drover/journal.hpp>

#include <drover/clock.hpp>
#include <drover/pipeline.hpp>

#include "atomic_file.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace drover {
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t journal_format = 1;
// Epochs count runs up from 1; a larger one was not written by drover, and near 2^64 the next
// run's epoch would wrap.
constexpr std::uint64_t max_recorded_epoch = std::uint64_t{1} << 62;

// A journal's first line is the run record drover wrote, whose text begins `{"type":"run"`, or,
// when the process died while writing it, a prefix of that. Anything else is some other file
// given as --journal by mistake: opening it would truncate it, so it is refused.
void refuse_unless_journal_start(std::string_view line, bool complete, const std::string& where) {
  constexpr std::string_view run_record_start = R"({"type":"run")";
  const bool begins_like_run_record =
      line.starts_with(run_record_start) || (!complete && run_record_start.starts_with(line));
  if (begins_like_run_record) return;
  throw drover::journal_error(where +
                              ": not a drover journal (its first line is not a run record); "
                              "drover will not overwrite it: remove it or give --journal "
                              "another path");
}

std::string os_error(int error) {
  return std::strerror(error);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             run_clock::wall_now().time_since_epoch())
      .count();
}

// Makes a new file's directory entry durable: without it a crash can lose the whole file.
void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::shared_ptr<run_journal> run_journal::open(fs::path path, journal_options options) {
  return std::shared_ptr<run_journal>(new run_journal(std::move(path), options));
}

run_journal::run_journal(fs::path path, journal_options options)
    : path_(std::move(path)), options_(options) {
  std::error_code ec;
  if (path_.has_parent_path()) fs::create_directories(path_.parent_path(), ec);
  const bool existed = fs::exists(path_, ec);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw journal_error("cannot open journal '" + path_.string() + "': " + os_error(errno));
  }
  try {
    read_existing();
  } catch (...) {
    ::close(fd_);
    throw;
  }
  if (!existed && options_.mode == durability::fsync) sync_directory(path_.parent_path());
  writer_ = std::thread([this] { writer_loop(); });
}

std::shared_ptr<run_journal> run_journal::open_in_memory(std::shared_ptr<std::string> storage,
                                                         journal_options options) {
  std::shared_ptr<run_journal> j(new run_journal(std::move(storage), options));
  return j;
}

run_journal::run_journal(std::shared_ptr<std::string> storage, journal_options options)
    : path_("<memory>"), options_(options), memory_(std::move(storage)) {
  read_existing();
}

std::shared_ptr<run_journal> run_journal::open_store(std::shared_ptr<journal_store> store,
                                                     journal_options options) {
  if (!store) throw journal_error("open_store: no store");
  return std::shared_ptr<run_journal>(new run_journal(std::move(store), options));
}

run_journal::run_journal(std::shared_ptr<journal_store> store, journal_options options)
    : path_(store->name()), options_(options), store_(std::move(store)) {
  read_existing();
  if (!options_.inline_writes) writer_ = std::thread([this] { writer_loop(); });
}

run_journal::~run_journal() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_writer_.notify_one();
  if (writer_.joinable()) writer_.join();
  if (fd_ >= 0) ::close(fd_);
}

std::string run_journal::existing_content() {
  if (memory_) return *memory_;
  if (store_) {
    if (!options_.resume) return {};  // a store cannot be emptied: its caller gave a fresh one
    try {
      return store_->load();
    } catch (const journal_error&) {
      throw;
    } catch (const std::exception& e) {
      throw journal_error("cannot read journal '" + path_.string() + "': " + e.what());
    }
  }
  try {
    return detail::read_file(path_);
  } catch (const std::system_error& e) {
    throw journal_error(e.what());  // names the file
  }
}

// Reads every record; keeps the latest per module. Only the last line may be torn: it is
// dropped, and cut off a file so that new records start on a line of their own. A journal opened
// without resume is read for its epoch only, then emptied.
void run_journal::read_existing() {
  const std::string content = existing_content();
  std::uint64_t last_epoch = 0;
  std::size_t valid_length = 0;  // bytes up to the end of the last good line
  std::size_t line_number = 0;
  std::size_t start = 0;
  bool in_run = false;
  while (start < content.size()) {
    ++line_number;
    const std::size_t newline = content.find('\n', start);
    const bool complete = newline != std::string::npos;
    const std::string_view line(content.data() + start,
                                (complete ? newline : content.size()) - start);
    const std::size_t next = complete ? newline + 1 : content.size();
    const bool is_last = next >= content.size();
    const auto where = path_.string() + ":" + std::to_string(line_number);
    boost::system::error_code ec;
    boost::json::value record = boost::json::parse(line, ec);
    if (line_number == 1) refuse_unless_journal_start(line, complete, where);
    if (ec || !record.is_object() || !complete) {
      if (is_last) {  // the process died while writing it
        dropped_torn_line_ = true;
        break;
      }
      if (!options_.resume) break;  // starting afresh: what follows does not matter
      throw journal_error(where + ": not a journal record (" +
                          (ec ? ec.message() : std::string("expected a JSON object")) +
                          "); the journal is damaged, remove it to start afresh");
    }
    const auto& object = record.get_object();
    const auto* type = object.if_contains("type");
    // Both arms are views: `? get_string() : ""` would make a temporary json::string.
    const std::string_view kind =
        type && type->is_string() ? std::string_view(type->get_string()) : std::string_view();
    try {
      if (kind == "run") {
        const auto format = object.at("format").to_number<std::int64_t>();
        if (format > journal_format) {
          throw journal_error(where + ": written by a newer drover (journal format " +
                              std::to_string(format) + ")");
        }
        const auto epoch = object.at("epoch").to_number<std::uint64_t>();
        if (epoch > max_recorded_epoch) {
          // Found by the journal fuzz target: near 2^64 the next run's epoch wraps to 0.
          throw journal_error(where + ": epoch " + std::to_string(epoch) +
                              " is out of range (runs count up from 1); the journal is damaged");
        }
        last_epoch = std::max(last_epoch, epoch);
        recorded_pipeline_ = std::string(object.at("pipeline").as_string());
        recorded_fingerprint_ = std::string(object.at("fingerprint").as_string());
        in_run = true;
      } else if (kind == "module") {
        if (!in_run) throw journal_error(where + ": a module record before any run record");
        recorded_module m;
        m.fingerprint = std::string(object.at("fingerprint").as_string());
        const auto status = module_status_from_string(object.at("status").as_string());
        if (!status) throw journal_error(where + ": unknown module status");
        m.status = *status;
        if (const auto* value = object.if_contains("value")) m.value = *value;
        if (options_.resume) previous_[std::string(object.at("id").as_string())] = std::move(m);
      }
      // "end" and record types of later versions carry nothing a resume needs.
    } catch (const journal_error&) {
      throw;
    } catch (const std::exception& e) {
      if (is_last) {
        dropped_torn_line_ = true;
        break;
      }
      if (!options_.resume) break;
      throw journal_error(where + ": malformed " + std::string(kind) + " record (" + e.what() +
                          ")");
    }
    valid_length = next;
    start = next;
  }
  epoch_ = last_epoch + 1;
  resuming_ = options_.resume && in_run;
  // Cut a torn tail (resume) or everything (a fresh start).
  const std::size_t keep = options_.resume ? valid_length : 0;
  if (memory_) {
    memory_->resize(keep);
  } else if (store_) {
    // A store cannot be cut. Its appends keep whole lines, so a torn tail was put there by
    // something else; it is left as it is.
  } else if (keep != content.size() && ::ftruncate(fd_, static_cast<off_t>(keep)) != 0) {
    throw journal_error("cannot truncate journal '" + path_.string() + "': " + os_error(errno));
  }
}

std::optional<std::string> run_journal::begin_run(const pipeline& p,
                                                  const std::string& fingerprint) {
  if (resuming_ && recorded_pipeline_ != p.name) {
    return "journal '" + path_.string() + "' belongs to pipeline '" + recorded_pipeline_ +
           "', not '" + p.name + "'; use another journal file, or run without --resume to " +
           "start it afresh";
  }
  pipeline_changed_ = resuming_ && recorded_fingerprint_ != fingerprint;
  boost::json::object record{{"type", "run"},        {"format", journal_format},
                             {"pipeline", p.name},   {"fingerprint", fingerprint},
                             {"epoch", epoch_},      {"modules", p.size()},
                             {"resumed", resuming_}, {"started_at_ms", now_ms()}};
  append_line(boost::json::serialize(record));
  return std::nullopt;
}

const run_journal::recorded_module* run_journal::previous(const std::string& id) const {
  const auto found = previous_.find(id);
  return found == previous_.end() ? nullptr : &found->second;
}

std::uint64_t run_journal::append_module(const std::string& id, const std::string& fingerprint,
                                         module_status status, std::uint32_t attempts,
                                         const boost::json::value& value,
                                         const std::string& reason) {
  // Written out by hand: this runs once per module, and a json::object costs more than the
  // record's own bytes.
  std::string line;
  line.reserve(160 + id.size() + reason.size());
  line += R"({"type":"module","id":)";
  line += boost::json::serialize(boost::json::string_view(id));
  line += R"(,"fingerprint":")";
  line += fingerprint;
  line += R"(","status":")";
  line += to_string(status);
  line += R"(","attempts":)";
  line += std::to_string(attempts);
  if (lets_dependents_run(status) && !value.is_null()) {
    line += R"(,"value":)";
    line += boost::json::serialize(value);
  }
  if (!reason.empty()) {
    line += R"(,"reason":)";
    line += boost::json::serialize(boost::json::string_view(reason));
  }
  line += R"(,"at_ms":)";
  line += std::to_string(now_ms());
  line += '}';
  return append_line(std::move(line));
}

std::uint64_t run_journal::append_line(std::string line) {
  bool wake = false;
  std::uint64_t seq = 0;
  if (memory_) {  // written, and as durable as memory gets, at once
    std::lock_guard lock(mutex_);
    *memory_ += line;
    *memory_ += '\n';
    return durable_ = ++appended_;
  }
  if (store_ && options_.inline_writes) {  // durable once the store returned
    line += '\n';
    std::lock_guard lock(mutex_);  // one append at a time, as from the writer thread
    if (!failure_) {
      if (auto error = write_batch(line)) failure_ = std::move(error);
    }
    return durable_ = ++appended_;
  }
  {
    std::lock_guard lock(mutex_);
    pending_ += line;
    pending_ += '\n';
    seq = ++appended_;
    // A busy writer takes what accumulated when it comes back: no wake-up (a system call)
    // per record.
    wake = writer_idle_;
    writer_idle_ = false;
  }
  if (wake) wake_writer_.notify_one();
  return seq;
}

void run_journal::when_durable(std::uint64_t seq, std::function<void()> done) {
  {
    std::lock_guard lock(mutex_);
    if (durable_ < seq) {
      waiters_.emplace_back(seq, std::move(done));
      return;
    }
  }
  done();
}

void run_journal::end_run(run_status status) {
  boost::json::object record{{"type", "end"}, {"status", to_string(status)}, {"at_ms", now_ms()}};
  append_line(boost::json::serialize(record));
  std::unique_lock lock(mutex_);
  written_.wait(lock, [this] { return durable_ >= appended_; });
}

std::optional<std::string> run_journal::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

// One thread writes: whatever accumulated while it was writing or syncing goes out in the
// next write and shares the next sync (group commit).
void run_journal::writer_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!stopping_ && pending_.empty()) {
      writer_idle_ = true;
      wake_writer_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
      writer_idle_ = false;
    }
    if (pending_.empty()) break;  // stopping, and nothing left to write
    std::string batch;
    batch.swap(pending_);
    const std::uint64_t upto = appended_;
    const bool failed_before = failure_.has_value();
    lock.unlock();

    std::optional<std::string> error;
    if (!failed_before) error = write_batch(batch);

    lock.lock();
    if (error && !failure_) failure_ = std::move(error);
    // Waiters are released even after a failure: the run must never wait on a dead journal.
    durable_ = upto;
    std::vector<std::function<void()>> ready;
    auto keep = waiters_.begin();
    for (auto& w : waiters_) {
      if (w.first <= durable_) {
        ready.push_back(std::move(w.second));
      } else {
        *keep++ = std::move(w);
      }
    }
    waiters_.erase(keep, waiters_.end());
    written_.notify_all();
    lock.unlock();
    for (auto& done : ready)
      done();
    lock.lock();
  }
}

// Makes `batch` durable as the journal's mode asks; returns why it could not.
std::optional<std::string> run_journal::write_batch(std::string_view batch) {
  if (store_) {
    try {
      return store_->append(batch);
    } catch (const std::exception& e) {  // a store that throws must not end the writer
      return "cannot append to journal '" + path_.string() + "': " + e.what();
    }
  }
  std::string_view rest = batch;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd_, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return "cannot write journal '" + path_.string() + "': " + os_error(errno);
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  if (options_.mode == durability::fsync && ::fdatasync(fd_) != 0) {
    return "cannot sync journal '" + path_.string() + "': " + os_error(errno);
  }
  return std::nullopt;
}

}  // namespace drover
