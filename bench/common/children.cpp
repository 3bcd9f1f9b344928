#include "common/children.hpp"

#include "common/timing.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace drover::bench {

namespace {

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

child_group::~child_group() {
  for (auto& c : children_) {
    if (c.pid > 0) kill_and_reap(c.pid);
    ::unlink(c.log_path.c_str());
  }
}

std::size_t child_group::spawn(const std::string& program, const std::vector<std::string>& args,
                               std::string name, const std::string& directory) {
  child c;
  c.name = std::move(name);
  char log_template[] = "/tmp/drover-bench-child-XXXXXX";
  const int log_fd = ::mkstemp(log_template);
  if (log_fd < 0) throw std::system_error(errno, std::generic_category(), "mkstemp");
  c.log_path = log_template;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, log_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, log_fd, STDERR_FILENO);
  if (!directory.empty()) posix_spawn_file_actions_addchdir_np(&actions, directory.c_str());
  std::vector<std::string> copies;
  copies.push_back(program);
  copies.insert(copies.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : copies)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  const int spawned =
      ::posix_spawn(&c.pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(log_fd);
  if (spawned != 0) {
    ::unlink(c.log_path.c_str());
    throw std::system_error(spawned, std::generic_category(), "starting " + program);
  }
  children_.push_back(std::move(c));
  return children_.size() - 1;
}

void child_group::kill(std::size_t index) {
  child& c = children_.at(index);
  if (c.pid <= 0) return;
  kill_and_reap(c.pid);
  c.pid = 0;  // killed on purpose: not waited for, not a problem
}

std::string child_group::wait_all(std::chrono::milliseconds grace) {
  const auto deadline = bench_clock::now() + grace;
  std::string problems;
  for (auto& c : children_) {
    if (c.pid <= 0) continue;
    int status = 0;
    bool hung = false;
    for (;;) {
      const pid_t got = ::waitpid(c.pid, &status, WNOHANG);
      if (got == c.pid) break;
      if (got < 0 && errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "waitpid");
      }
      if (bench_clock::now() > deadline) {
        kill_and_reap(c.pid);
        hung = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    c.pid = 0;
    if (hung) {
      problems += c.name + " was still running " + std::to_string(grace.count()) +
                  " ms after the run ended and was killed" + tail_of(c) + "\n";
      continue;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    problems += c.name +
                (WIFEXITED(status)
                     ? " exited with code " + std::to_string(WEXITSTATUS(status))
                     : std::string(" was killed by signal ") + ::strsignal(WTERMSIG(status))) +
                tail_of(c) + "\n";
  }
  if (!problems.empty()) problems.pop_back();
  return problems;
}

std::string child_group::tail_of(const child& c) {
  std::ifstream log(c.log_path);
  std::stringstream text;
  text << log.rdbuf();
  std::string all = text.str();
  if (all.empty()) return "";
  constexpr std::size_t shown = 600;
  if (all.size() > shown) all = "..." + all.substr(all.size() - shown);
  while (!all.empty() && all.back() == '\n')
    all.pop_back();
  return "; its output:\n" + all;
}

}  // namespace drover::bench
