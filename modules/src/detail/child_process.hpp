#pragma once
// POSIX plumbing for the exec kind: starting a command as the leader of a new process group
// with its output on pipes, signalling that group, and reaping the child. Linux only (pidfd).

#include <sys/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace drover::modules::detail {

/// An owned file descriptor, closed on destruction.
class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// A command to start.
struct command_spec {
  std::vector<std::string> argv;           ///< argv[0] is looked up in PATH when it has no '/'
  std::map<std::string, std::string> env;  ///< set on top of the inherited environment
  std::string cwd;                         ///< empty: inherit
  std::string display;                     ///< how messages name the command
};

/// How a reaped child ended.
struct exit_status {
  int code = -1;      ///< exit code, or -1 when killed by a signal or unknown
  int signal = 0;     ///< the terminating signal, or 0
  bool known = true;  ///< false when someone else reaped the child first

  bool success() const noexcept { return known && code == 0; }
  /// "exit code 3", "killed by signal 9", ...
  std::string describe() const;
};

/// A started child: the leader of its own process group, stdin on /dev/null, stdout and stderr
/// on pipes. Move-only. Destroying it before reap() kills the group with SIGKILL and reaps the
/// child with a blocking wait: a last resort for bodies destroyed mid-flight, never the
/// normal path.
class child_process {
 public:
  /// Starts `cmd`. Throws std::runtime_error naming the command when it cannot be started
  /// (program not found or not executable, cwd missing, out of resources).
  static child_process start(const command_spec& cmd);

  child_process(child_process&& other) noexcept;
  child_process& operator=(child_process&&) = delete;
  ~child_process();

  pid_t pid() const noexcept { return pid_; }

  /// Read ends of the output pipes and a pidfd that becomes readable when the child exits.
  /// Callers take them (release()) to hand them to an event loop.
  unique_fd& stdout_pipe() noexcept { return stdout_; }
  unique_fd& stderr_pipe() noexcept { return stderr_; }
  unique_fd& exit_fd() noexcept { return pidfd_; }

  /// Sends `sig` to the whole process group. Does nothing once the child is reaped, by us or
  /// by anyone else: the group id is only reserved for us while the leader is unreaped.
  void signal_group(int sig) noexcept;

  /// Collects the exit status; blocks until the child exits, so call it once exit_fd() is
  /// readable.
  exit_status reap() noexcept;
  bool reaped() const noexcept { return reaped_; }
  /// True once the child has exited, reaped or not.
  bool exited() const noexcept;

 private:
  child_process() = default;

  pid_t pid_ = -1;
  bool reaped_ = false;
  unique_fd stdout_, stderr_, pidfd_;
};

}  // namespace drover::modules::detail
