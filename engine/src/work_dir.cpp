#include "work_dir.hpp"

#include "resource_glob.hpp"
#include "text.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace drover::detail {

namespace fs = std::filesystem;

namespace {

std::string quoted_path(const fs::path& path) {
  return in_quotes(path.string());
}

// Eight hex digits. Each thread has its own generator, so creating work directories on
// several workers at once takes no lock.
std::string random_suffix() {
  thread_local std::mt19937_64 generator = [] {
    std::random_device device;
    std::seed_seq seed{
        static_cast<std::uint64_t>(device()),
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()),
        static_cast<std::uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()))};
    return std::mt19937_64{seed};
  }();
  const auto value = static_cast<std::uint32_t>(generator());
  std::string out(8, '0');
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = "0123456789abcdef"[(value >> (28 - 4 * i)) & 0xf];
  return out;
}

// A directory name that holds a glob's special bytes cannot be turned into a glob; such a
// directory is always searched.
bool usable_in_glob(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](unsigned char c) {
    return c < 0x20 || c == '*' || c == '?' || c == '[' || c == '\\';
  });
}

// Whether anything under the directory `relative` (to the work directory) can match one of
// `patterns`, so that walking it is worth the time.
bool may_hold_outputs(const std::string& relative, const std::vector<std::string>& patterns) {
  if (!usable_in_glob(relative)) return true;
  const std::string below = relative + "/**";
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& pattern) {
    return resource_globs_overlap(pattern, below);
  });
}

std::string describe_type(fs::file_type type) {
  return type == fs::file_type::symlink ? "a symbolic link" : "a special file";
}

// What is wrong with a literal output found as `type` at `path`: nothing (an empty string) for
// a regular file or a directory.
std::string literal_output_problem(const std::string& output, const fs::path& path,
                                   fs::file_type type) {
  switch (type) {
    case fs::file_type::regular:
    case fs::file_type::directory:
      return {};
    case fs::file_type::none:
    case fs::file_type::not_found:
      return "declared output " + in_quotes(output) + " was not produced: no file at " +
             quoted_path(path);
    default:
      return "declared output " + in_quotes(output) + " is " + describe_type(type) +
             ", not a regular file or a directory";
  }
}

constexpr const char* owner_lock_name = "owner.lock";
constexpr const char* kept_marker_name = "kept";

// Each process puts its attempts' directories in a directory of its own under
// <workspace>/.drover/work, `p<pid>-<random>`, and holds an exclusive flock on the
// `owner.lock` inside it while it has attempts there. The kernel drops the lock when the
// process dies however it dies, so a later process that can take the lock knows the owner is
// gone and removes what it left: the directories of a run killed mid-attempt do not pile up,
// and a live process's directories, a second run's or a `drover worker`'s in the same
// workspace, are never touched. A directory holding a `kept` file (--keep-workdirs) is left
// for the user.
class owner_directories {
 public:
  static owner_directories& instance() {
    static owner_directories* directories = new owner_directories;  // outlives every thread
    return *directories;
  }

  // This process's directory in `parent` (<workspace>/.drover/work), made (after sweeping the
  // directories of dead owners) when it has none there; counts one more attempt in it.
  fs::path acquire(const fs::path& parent) {
    std::lock_guard lock{mutex_};
    auto it = owned_.find(parent);
    if (it == owned_.end()) {
      sweep_dead_owners(parent);
      it = owned_.emplace(parent, create_owned(parent)).first;
    }
    ++it->second.attempts;
    return it->second.dir;
  }

  // An attempt directory of `owner_dir` is gone (or kept): once none is left and none was
  // kept, the owner directory goes too, so that a finished run leaves `.drover/work` empty.
  void release(const fs::path& owner_dir, bool kept) noexcept {
    std::lock_guard lock{mutex_};
    const auto it = owned_.find(owner_dir.parent_path());
    if (it == owned_.end() || it->second.dir != owner_dir) return;
    owned& owner = it->second;
    if (kept && !owner.kept) {
      owner.kept = true;
      const int fd =
          ::open((owner.dir / kept_marker_name).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd >= 0) ::close(fd);
    }
    if (owner.attempts > 0) --owner.attempts;
    if (owner.attempts > 0 || owner.kept) return;
    std::error_code ec;
    fs::remove(owner.dir / owner_lock_name, ec);
    fs::remove(owner.dir, ec);  // only if empty: a directory that could not be removed stays
    ::close(owner.lock_fd);
    owned_.erase(it);
  }

 private:
  struct owned {
    fs::path dir;
    int lock_fd = -1;
    std::size_t attempts = 0;
    bool kept = false;
  };

  // Removes every owner directory in `parent` whose lock nobody holds and that keeps nothing
  // for the user. Failures are ignored: a directory that cannot be swept is only scratch.
  static void sweep_dead_owners(const fs::path& parent) {
    std::error_code ec;
    for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path dir = it->path();
      std::error_code type_error;
      if (!it->is_directory(type_error) || it->is_symlink(type_error)) continue;
      if (fs::exists(dir / kept_marker_name, type_error)) continue;
      const int fd = ::open((dir / owner_lock_name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) continue;  // not an owner directory (or one still being made)
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
        std::error_code remove_error;
        fs::remove_all(dir, remove_error);
      }
      ::close(fd);
    }
  }

  // Makes the directory under a hidden name, locks its owner.lock, then renames it into view,
  // so that a sweeper never finds an owner directory whose lock is not yet held.
  static owned create_owned(const fs::path& parent) {
    const std::string name = "p" + std::to_string(::getpid()) + "-" + random_suffix();
    const fs::path hidden = parent / ("." + name);
    const fs::path dir = parent / name;
    std::error_code ec;
    if (!fs::create_directory(hidden, ec)) {
      throw std::runtime_error("cannot create the work directory " + quoted_path(hidden) + ": " +
                               (ec ? ec.message() : std::string("it already exists")));
    }
    const fs::path lock_path = hidden / owner_lock_name;
    const int fd = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    // A file system without flock (ENOLCK, EOPNOTSUPP) goes on unlocked: a sweeper there cannot
    // take the lock either, so it leaves the directory alone. Only a lock someone else holds
    // on this brand-new file is wrong.
    const bool lock_failed = fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    if (fd < 0 || lock_failed || ::rename(hidden.c_str(), dir.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      if (fd >= 0) ::close(fd);
      fs::remove_all(hidden, ec);
      throw std::runtime_error("cannot set up the work directory " + quoted_path(dir) + ": " + why);
    }
    return owned{dir, fd, 0, false};
  }

  std::mutex mutex_;
  std::map<fs::path, owned> owned_;  // by <workspace>/.drover/work
};

}  // namespace

fs::path absolute_workspace(const fs::path& workspace) {
  std::error_code ec;
  fs::path out = workspace.empty() ? fs::current_path(ec) : fs::absolute(workspace, ec);
  // Keep what was given: creating a work directory there will name the problem.
  if (ec) out = workspace;
  out = out.lexically_normal();
  if (!out.has_filename() && out.has_relative_path()) out = out.parent_path();
  return out;
}

std::string work_dir_name(std::string_view module_id, std::uint32_t attempt) {
  constexpr std::size_t max_id_bytes = 100;
  std::string name;
  name.reserve(std::min(module_id.size(), max_id_bytes) + 16);
  for (const unsigned char c : module_id.substr(0, max_id_bytes)) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    name += allowed ? static_cast<char>(c) : '_';
  }
  name += '.';
  name += std::to_string(attempt);
  name += '.';
  return name;
}

fs::path create_work_dir(const fs::path& workspace, std::string_view module_id,
                         std::uint32_t attempt) {
  const fs::path parent = workspace / ".drover" / "work";
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    throw std::runtime_error("cannot create the work directory " + quoted_path(parent) + ": " +
                             ec.message());
  }
  const fs::path owner = owner_directories::instance().acquire(parent);
  const std::string name = work_dir_name(module_id, attempt);
  // A clash needs the same module, attempt and 32 random bits: retrying is a formality.
  for (int tries = 0; tries < 16; ++tries) {
    fs::path dir = owner / (name + random_suffix());
    if (fs::create_directory(dir, ec)) return dir;
    if (ec) {
      owner_directories::instance().release(owner, false);
      throw std::runtime_error("cannot create the work directory " + quoted_path(dir) + ": " +
                               ec.message());
    }
  }
  owner_directories::instance().release(owner, false);
  throw std::runtime_error("cannot create a work directory in " + quoted_path(owner) +
                           ": every name tried already exists");
}

std::string promote_outputs(const fs::path& work_dir, const fs::path& workspace,
                            const std::vector<std::string>& outputs) {
  std::vector<std::string> moves;     // relative to both directories, '/'-separated
  std::vector<std::string> patterns;  // what the walk below matches
  for (const std::string& output : outputs) {
    if (!resource_glob_is_literal(output)) {
      patterns.push_back(output);
      continue;
    }
    if (work_dir.empty()) {
      return "declared output " + in_quotes(output) +
             " was not produced (the module never asked for a work directory)";
    }
    const fs::path source = work_dir / output;
    std::error_code ec;
    const fs::file_type type = fs::symlink_status(source, ec).type();
    if (auto problem = literal_output_problem(output, source, type); !problem.empty()) {
      return problem;
    }
    if (type == fs::file_type::regular) {
      moves.push_back(output);
    } else {
      patterns.push_back(output + "/**");  // a directory, as for inputs: every file below it
    }
  }

  if (!patterns.empty() && !work_dir.empty()) {
    // Symbolic links are neither followed nor moved: a link to a directory elsewhere must not
    // let a module move files from outside its work directory.
    std::error_code ec;
    fs::recursive_directory_iterator it(work_dir, ec);
    for (const fs::recursive_directory_iterator end; !ec && it != end; it.increment(ec)) {
      const fs::file_type type = it->symlink_status(ec).type();
      if (ec) break;
      const std::string relative = it->path().lexically_relative(work_dir).generic_string();
      if (type == fs::file_type::directory) {
        if (!may_hold_outputs(relative, patterns)) it.disable_recursion_pending();
        continue;
      }
      if (type != fs::file_type::regular) continue;
      const bool wanted = std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
        return resource_glob_matches(p, relative);
      });
      if (wanted) moves.push_back(relative);
    }
    if (ec) return "cannot look for outputs in " + quoted_path(work_dir) + ": " + ec.message();
  }

  std::sort(moves.begin(), moves.end());
  moves.erase(std::unique(moves.begin(), moves.end()), moves.end());
  for (const std::string& relative : moves) {
    const fs::path source = work_dir / relative;
    const fs::path target = workspace / relative;
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec) {
      return "cannot create the directory " + quoted_path(target.parent_path()) + " for output " +
             in_quotes(relative) + ": " + ec.message();
    }
    fs::rename(source, target, ec);
    if (ec) {
      std::string message = "cannot move output " + in_quotes(relative) + " from " +
                            quoted_path(source) + " to " + quoted_path(target) + ": " +
                            ec.message();
      if (ec == std::errc::cross_device_link) {
        message += " (the work directory and the workspace are on different file systems)";
      }
      return message;
    }
  }
  return {};
}

std::string check_outputs_in_place(const fs::path& workspace,
                                   const std::vector<std::string>& outputs) {
  for (const std::string& output : outputs) {
    if (!resource_glob_is_literal(output)) continue;  // a wildcard may match nothing
    const fs::path path = workspace / output;
    std::error_code ec;
    auto problem = literal_output_problem(output, path, fs::symlink_status(path, ec).type());
    if (!problem.empty()) return problem;
  }
  return {};
}

void remove_work_dir(const fs::path& work_dir) noexcept {
  std::error_code ec;
  fs::remove_all(work_dir, ec);
}

void attempt_files::settle_files(attempt_scope& attempt, module_status& status,
                                 std::string& error) {
  const module_io* io = attempt.module.io();
  if (status == module_status::succeeded && io && !io->outputs.empty()) {
    std::string problem =
        attempt.writes_in_workspace
            ? check_outputs_in_place(attempt.environment->workspace, io->outputs)
            : promote_outputs(attempt.work_dir, attempt.environment->workspace, io->outputs);
    if (!problem.empty()) {
      status = module_status::failed;
      error = std::move(problem);
    }
  }
  finish_work_dir(attempt.work_dir, attempt.environment->keep_workdirs);
  attempt.work_dir.clear();  // the body has returned; a second settle or discard does nothing
}

void attempt_files::discard(attempt_scope& attempt) noexcept {
  finish_work_dir(attempt.work_dir, attempt.environment->keep_workdirs);
  attempt.work_dir.clear();
}

void finish_work_dir(const fs::path& work_dir, bool keep) noexcept {
  if (work_dir.empty()) return;
  if (!keep) remove_work_dir(work_dir);
  owner_directories::instance().release(work_dir.parent_path(), keep);
}

}  // namespace drover::detail
