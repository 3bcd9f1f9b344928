#include "common/process.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace drover::bench {

namespace {

// A "Name:   1234 kB" line of /proc/self/status, in bytes.
long long status_field_bytes(std::string_view name) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
        line[name.size()] == ':') {
      return std::stoll(line.substr(name.size() + 1)) * 1024;
    }
  }
  return 0;
}

}  // namespace

long long current_rss_bytes() {
  return status_field_bytes("VmRSS");
}

long long peak_rss_bytes() {
  return status_field_bytes("VmHWM");
}

bool restart_peak_rss() {
  ::malloc_trim(0);
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

child_outcome run_self(const std::vector<std::string>& args) {
  return run_program("/proc/self/exe", args);
}

child_outcome run_program(const std::string& program, const std::vector<std::string>& args) {
  int pipe_ends[2];
  // Close-on-exec: the child keeps only the copy dup2 makes on its stdout.
  if (::pipe2(pipe_ends, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "pipe");
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_ends[1], STDOUT_FILENO);

  std::string path = program;
  std::vector<char*> argv;
  argv.push_back(path.data());
  std::vector<std::string> copies = args;
  for (auto& a : copies)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_ends[1]);
  if (spawned != 0) {
    ::close(pipe_ends[0]);
    throw std::system_error(spawned, std::generic_category(), "posix_spawn of " + program);
  }

  child_outcome outcome;
  char buffer[4096];
  for (;;) {
    const ssize_t got = ::read(pipe_ends[0], buffer, sizeof buffer);
    if (got > 0) {
      outcome.output.append(buffer, static_cast<std::size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(pipe_ends[0]);

  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "wait4");
  }
  outcome.max_rss_kb = usage.ru_maxrss;
  if (WIFEXITED(status)) {
    outcome.exit_code = WEXITSTATUS(status);
    if (outcome.exit_code != 0) {
      outcome.failure = "exited with code " + std::to_string(outcome.exit_code);
    }
  } else if (WIFSIGNALED(status)) {
    outcome.failure = std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
  } else {
    outcome.failure = "ended abnormally";
  }
  return outcome;
}

const char* drover_binary_path() noexcept {
#ifdef DROVER_BINARY
  return DROVER_BINARY;
#else
  return nullptr;
#endif
}

}  // namespace drover::bench
