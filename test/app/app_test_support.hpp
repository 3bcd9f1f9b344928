#pragma once
// Shared helpers for the app tests: a scratch directory, and running the built `drover`
// binary (DROVER_BINARY) as a child process with its output captured.

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace drover::app_test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// A fresh directory under the system's temporary directory, removed with its contents.
class scratch_dir {
 public:
  scratch_dir() {
    std::string pattern = (fs::temp_directory_path() / "drover-app-test-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;

  const fs::path& path() const noexcept { return path_; }
  fs::path operator/(std::string_view name) const { return path_ / name; }

  /// Writes `text` to the file `name` in this directory and returns its path.
  fs::path write(std::string_view name, std::string_view text) const {
    const auto file = path_ / name;
    std::ofstream out{file, std::ios::binary};
    out << text;
    BOOST_REQUIRE(out.good());
    return file;
  }

 private:
  fs::path path_;
};

inline std::string read_file(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// What a finished drover process left.
struct drover_result {
  int exit_code = -1;  ///< -1 when it did not exit normally (killed by a signal)
  std::string out;
  std::string err;
};

#ifdef DROVER_BINARY
/// The drover binary running as a child process in a directory, stdout and stderr going to
/// files there. Killed if still running when destroyed.
class drover_process {
 public:
  drover_process(const std::vector<std::string>& args, const fs::path& dir,
                 const std::map<std::string, std::string>& extra_env = {})
      : out_file_(dir / ".drover-stdout"), err_file_(dir / ".drover-stderr") {
    // Everything the child needs is prepared before fork(): after it, only exec-safe calls.
    std::vector<std::string> argv_storage{DROVER_BINARY};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_storage)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_storage;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      if (!extra_env.contains(entry.substr(0, entry.find('=')))) env_storage.push_back(entry);
    }
    for (const auto& [name, value] : extra_env)
      env_storage.push_back(name + '=' + value);
    std::vector<char*> envp;
    for (auto& e : env_storage)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string dir_string = dir.string();
    const int out_fd = ::open(out_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err_fd = ::open(err_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    BOOST_REQUIRE(out_fd >= 0 && err_fd >= 0 && in_fd >= 0);

    pid_ = ::fork();
    BOOST_REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      if (::chdir(dir_string.c_str()) != 0 || ::dup2(in_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 ||
          ::dup2(err_fd, 2) < 0) {
        ::_exit(127);
      }
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out_fd);
    ::close(err_fd);
    ::close(in_fd);
  }

  ~drover_process() {
    if (pid_ > 0 && !finished_status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  drover_process(const drover_process&) = delete;
  drover_process& operator=(const drover_process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  void send(int signal) { ::kill(pid_, signal); }

  /// Whether the process has ended (reaped then: wait() returns at once).
  bool exited() {
    if (pid_ <= 0 || finished_status_) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    finished_status_ = status;
    return true;
  }

  /// Waits for the process to end, failing the test (and killing it) after `limit`.
  drover_result wait(std::chrono::milliseconds limit = 30s) {
    drover_result result;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = finished_status_.value_or(0);
    while (!finished_status_) {
      const pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        BOOST_ERROR("drover did not finish within " << limit.count() << " ms");
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    pid_ = -1;
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    result.out = read_file(out_file_);
    result.err = read_file(err_file_);
    return result;
  }

 private:
  fs::path out_file_;
  fs::path err_file_;
  pid_t pid_ = -1;
  std::optional<int> finished_status_;  // once exited() has reaped it
};

/// Runs drover with `args` in `dir` to completion.
inline drover_result run_drover(const std::vector<std::string>& args, const fs::path& dir,
                                const std::map<std::string, std::string>& extra_env = {}) {
  drover_process process{args, dir, extra_env};
  return process.wait();
}
#endif

/// Waits until `condition` holds or `limit` passes; returns whether it held.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

/// The port from the "drover: listening on 127.0.0.1:PORT" line a master (`drover run
/// --listen 127.0.0.1:0`) running in `dir` writes to its stderr, once it is there. `what`
/// names another such line: "http listening on" for `drover serve --http`.
inline std::optional<std::string> wait_for_port(const fs::path& dir,
                                                const std::string& what = "drover: listening on",
                                                std::chrono::milliseconds limit = 10s) {
  std::optional<std::string> port;
  const std::regex listening{what + " 127\\.0\\.0\\.1:([0-9]+)"};
  eventually(
      [&] {
        std::smatch match;
        const std::string err = read_file(dir / ".drover-stderr");
        if (std::regex_search(err, match, listening)) port = match[1];
        return port.has_value();
      },
      limit);
  return port;
}

/// True when process `pid` no longer runs (gone, or a zombie nobody has reaped yet).
inline bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text{std::istreambuf_iterator<char>(stat), std::istreambuf_iterator<char>()};
  const auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z';
}

}  // namespace drover::app_test
