#pragma once
// Child processes for the benchmarks that start workers (--remote, --redis): each child's stdout
// and stderr go to a file of its own, shown when it fails. The destructor kills (SIGKILL) and
// reaps every child still running, so no path leaves one behind.
//
//     child_group children;
//     children.spawn(drover, {"worker", "--connect", address}, "drover worker w1");
//     ...
//     if (std::string problem = children.wait_all(10s); !problem.empty()) fail(problem);

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include <sys/types.h>

namespace drover::bench {

class child_group {
 public:
  child_group() = default;
  child_group(const child_group&) = delete;
  child_group& operator=(const child_group&) = delete;
  ~child_group();

  /// Starts `program` with `args` (argv[1...]) in `directory` (empty: this process's); `name`
  /// says which child it is in problems. Returns its index in the group. Throws
  /// std::system_error when it cannot start.
  std::size_t spawn(const std::string& program, const std::vector<std::string>& args,
                    std::string name, const std::string& directory = {});

  /// SIGKILLs child `index` and reaps it; wait_all() then leaves it out.
  void kill(std::size_t index);

  /// Waits up to `grace` for every child not killed; empty when all exited 0, else which did
  /// not and the tail of what it wrote.
  std::string wait_all(std::chrono::milliseconds grace);

 private:
  struct child {
    pid_t pid = -1;
    std::string name;
    std::string log_path;
  };

  static std::string tail_of(const child& c);

  std::vector<child> children_;
};

}  // namespace drover::bench
