#include "detail/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <system_error>

extern char** environ;

namespace drover::modules::detail {

namespace {

[[noreturn]] void fail_to_start(const command_spec& cmd, const std::string& why) {
  throw std::runtime_error("cannot start '" + cmd.display + "': " + why);
}

std::vector<std::string> merged_environment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> entries;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string_view text(*entry);
    auto name = text.substr(0, text.find('='));
    if (overrides.find(std::string(name)) == overrides.end()) entries.emplace_back(text);
  }
  for (const auto& [name, value] : overrides)
    entries.push_back(name + "=" + value);
  return entries;
}

// PATH lookup is done here rather than by posix_spawnp so that the child's PATH (which `env`
// may set) and cwd decide, and so that "not found" can be told apart from a missing cwd.
std::string find_program(const command_spec& cmd) {
  const std::string& name = cmd.argv.front();
  if (name.find('/') != std::string::npos) return name;

  std::string search_path = "/usr/local/bin:/usr/bin:/bin";
  if (auto it = cmd.env.find("PATH"); it != cmd.env.end()) {
    search_path = it->second;
  } else if (const char* inherited = std::getenv("PATH")) {
    search_path = inherited;
  }
  const std::filesystem::path base =
      cmd.cwd.empty() ? std::filesystem::current_path() : std::filesystem::absolute(cmd.cwd);

  bool found_unexecutable = false;
  std::string_view rest = search_path;
  while (true) {
    auto colon = rest.find(':');
    std::string_view dir = rest.substr(0, colon);
    const auto candidate = (base / (dir.empty() ? std::string_view(".") : dir) / name).string();
    struct stat info {};
    if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      found_unexecutable = true;
    }
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  if (found_unexecutable) fail_to_start(cmd, "'" + name + "' is found in PATH but not executable");
  fail_to_start(cmd, "command '" + name + "' not found in PATH (" + search_path + ")");
}

// Keeps a pipe end away from fds 0-2, where dup2 onto itself would leave close-on-exec set.
unique_fd above_stdio(int fd) {
  unique_fd owned(fd);
  if (fd > STDERR_FILENO) return owned;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (moved < 0) throw std::system_error(errno, std::generic_category(), "fcntl");
  return unique_fd(moved);
}

struct output_pipe {
  unique_fd read_end, write_end;
};

output_pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe2");
  return {above_stdio(fds[0]), above_stdio(fds[1])};
}

class spawn_settings {
 public:
  spawn_settings() {
    ::posix_spawn_file_actions_init(&actions_);
    ::posix_spawnattr_init(&attributes_);
  }
  ~spawn_settings() {
    ::posix_spawn_file_actions_destroy(&actions_);
    ::posix_spawnattr_destroy(&attributes_);
  }
  spawn_settings(const spawn_settings&) = delete;
  spawn_settings& operator=(const spawn_settings&) = delete;

  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attributes_;
};

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

void unique_fd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string exit_status::describe() const {
  if (!known) return "exit status unknown (the child was reaped elsewhere; is SIGCHLD ignored?)";
  if (signal != 0) return "killed by signal " + std::to_string(signal);
  return "exit code " + std::to_string(code);
}

child_process child_process::start(const command_spec& cmd) {
  if (cmd.argv.empty() || cmd.argv.front().empty()) fail_to_start(cmd, "empty program name");
  if (!cmd.cwd.empty()) {
    struct stat info {};
    if (::stat(cmd.cwd.c_str(), &info) != 0) {
      fail_to_start(cmd, "working directory '" + cmd.cwd + "': " + std::strerror(errno));
    }
    if (!S_ISDIR(info.st_mode)) {
      fail_to_start(cmd, "working directory '" + cmd.cwd + "' is not a directory");
    }
  }
  const std::string program = find_program(cmd);
  auto environment = merged_environment(cmd.env);
  auto arguments = cmd.argv;
  auto envp = c_strings(environment);
  auto argv = c_strings(arguments);

  output_pipe out = make_pipe();
  output_pipe err = make_pipe();

  spawn_settings settings;
  ::posix_spawn_file_actions_addopen(&settings.actions_, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&settings.actions_, out.write_end.get(), STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&settings.actions_, err.write_end.get(), STDERR_FILENO);
  if (!cmd.cwd.empty()) ::posix_spawn_file_actions_addchdir_np(&settings.actions_, cmd.cwd.c_str());
  // Nothing else of this process reaches the command: a descriptor opened without CLOEXEC
  // (Asio opens its sockets so) would otherwise keep, say, a service's listening port bound
  // for as long as the command or anything it left behind lives.
  ::posix_spawn_file_actions_addclosefrom_np(&settings.actions_, STDERR_FILENO + 1);

  // Its own process group, so that stopping it reaches everything it started. Signal
  // dispositions and mask are reset because the embedding program's (SIGPIPE ignored, signals
  // blocked for a signal_set) must not leak into the command.
  sigset_t no_signals, all_signals;
  sigemptyset(&no_signals);
  sigfillset(&all_signals);
  sigdelset(&all_signals, SIGKILL);
  sigdelset(&all_signals, SIGSTOP);
  ::posix_spawnattr_setflags(&settings.attributes_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                        POSIX_SPAWN_SETSIGDEF);
  ::posix_spawnattr_setpgroup(&settings.attributes_, 0);
  ::posix_spawnattr_setsigmask(&settings.attributes_, &no_signals);
  ::posix_spawnattr_setsigdefault(&settings.attributes_, &all_signals);

  child_process child;
  int rc = ::posix_spawn(&child.pid_, program.c_str(), &settings.actions_, &settings.attributes_,
                         argv.data(), envp.data());
  if (rc != 0) {
    child.pid_ = -1;
    fail_to_start(cmd, program + ": " + std::strerror(rc));
  }
  child.stdout_ = std::move(out.read_end);
  child.stderr_ = std::move(err.read_end);

  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child.pid_, 0));
  if (pidfd < 0) {
    int error = errno;
    fail_to_start(cmd, std::string("pidfd_open: ") + std::strerror(error));
  }
  child.pidfd_ = unique_fd(pidfd);
  return child;
}

child_process::child_process(child_process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      reaped_(other.reaped_),
      stdout_(std::move(other.stdout_)),
      stderr_(std::move(other.stderr_)),
      pidfd_(std::move(other.pidfd_)) {}

child_process::~child_process() {
  if (pid_ > 0 && !reaped_) {
    signal_group(SIGKILL);
    reap();
  }
}

void child_process::signal_group(int sig) noexcept {
  if (pid_ <= 0 || reaped_) return;
  // Only while the leader is still our child, running or a zombie we have not reaped: its pid
  // then stays taken, and so does the group's id. Reaped by someone else (a waitpid(-1) in
  // the embedding program), that id may already name an unrelated process group.
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return;
  ::kill(-pid_, sig);
}

bool child_process::exited() const noexcept {
  if (reaped_) return true;
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid != 0;
}

exit_status child_process::reap() noexcept {
  int status = 0;
  pid_t result;
  do {
    result = ::waitpid(pid_, &status, 0);
  } while (result < 0 && errno == EINTR);
  reaped_ = true;
  exit_status out;
  if (result < 0) {
    out.known = false;
  } else if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  } else {
    out.code = WEXITSTATUS(status);
  }
  return out;
}

}  // namespace drover::modules::detail
