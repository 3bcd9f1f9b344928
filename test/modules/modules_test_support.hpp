#pragma once
// Shared helpers for the modules tests: build pipelines of kind modules, resolve them through a
// registry and run them on the real engine, and look at processes and files afterwards.

#include <drover/engine.hpp>
#include <drover/modules/registry.hpp>

#include "../common/printing.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace drover::modules_test {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

using drover::testing::worker_counts;

/// Run options with `workers` workers and everything else at its default.
inline run_options with_workers(std::size_t workers) {
  run_options options;
  options.workers = workers;
  return options;
}

/// Appends a module of `kind` whose params are the JSON text `params`.
inline module_ref add_kind(pipeline& p, std::string id, std::string kind,
                           std::string_view params = "null", std::vector<std::string> deps = {}) {
  return p.add(std::move(id), {}, deps).kind(std::move(kind), json::parse(params));
}

/// A report plus how long the run took, measured around io_context::run.
struct timed_report {
  run_report report;
  milliseconds elapsed{0};

  module_result operator[](std::string_view id) const {
    auto r = report.find(id);
    if (!r) throw std::out_of_range("no module '" + std::string(id) + "' in the report");
    return std::move(*r);
  }
};

/// Resolves `p` through `kinds` (requiring no problems) and runs it on a fresh io_context.
/// When `cancel_when` is given it is polled every 10 ms and the run is cancelled through the
/// completion handler's cancellation slot the first time it returns true.
inline timed_report run(pipeline p, run_options options = {},
                        const modules::registry& kinds = modules::builtin_registry(),
                        std::function<bool()> cancel_when = {},
                        engine_options engine_settings = {}) {
  auto problems = kinds.resolve(p);
  BOOST_REQUIRE_MESSAGE(problems.empty(), format_problems(problems));

  asio::io_context io;
  drover::engine engine{io.get_executor(), engine_settings};
  asio::cancellation_signal cancel;
  asio::steady_timer poll{io};
  std::optional<run_report> report;
  std::function<void()> check = [&] {
    if (report) return;
    if (cancel_when()) {
      cancel.emit(asio::cancellation_type::terminal);
      return;
    }
    poll.expires_after(10ms);
    poll.async_wait([&](boost::system::error_code ec) {
      if (!ec) check();
    });
  };

  const auto start = steady::now();
  engine.async_run(std::move(p), std::move(options),
                   asio::bind_cancellation_slot(cancel.slot(), [&](run_report r) {
                     report = std::move(r);
                     poll.cancel();
                   }));
  if (cancel_when) check();
  io.run();
  BOOST_REQUIRE(report.has_value());
  return {std::move(*report), std::chrono::duration_cast<milliseconds>(steady::now() - start)};
}

/// A fresh directory under the system temp directory, removed with everything in it.
class temp_dir {
 public:
  temp_dir() {
    std::random_device seed;
    path_ = std::filesystem::temp_directory_path() /
            ("drover-modules-test-" + std::to_string(::getpid()) + "-" + std::to_string(seed()));
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::string read_text(const std::filesystem::path& file) {
  std::ifstream in{file};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The whitespace-separated process ids a test command wrote to `file` (empty if none yet).
inline std::vector<pid_t> read_pids(const std::filesystem::path& file) {
  std::istringstream in{read_text(file)};
  std::vector<pid_t> pids;
  for (pid_t pid; in >> pid;)
    pids.push_back(pid);
  return pids;
}

/// Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp. Empty if gone.
struct proc_stat {
  char state = 0;
  pid_t pgrp = 0;
};

inline std::optional<proc_stat> read_proc_stat(const std::filesystem::path& stat_file) {
  std::string text = read_text(stat_file);
  auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in{text.substr(close + 1)};
  proc_stat s;
  pid_t ppid = 0;
  if (!(in >> s.state >> ppid >> s.pgrp)) return std::nullopt;
  return s;
}

/// True while process `pid` exists and is not a zombie (a zombie waits for a reaper that may
/// not be us, and runs nothing).
inline bool process_alive(pid_t pid) {
  auto s = read_proc_stat("/proc/" + std::to_string(pid) + "/stat");
  return s && s->state != 'Z' && s->state != 'X';
}

/// True while any live (non-zombie) process belongs to process group `pgid`.
inline bool group_alive(pid_t pgid) {
  if (::kill(-pgid, 0) != 0 && errno == ESRCH) return false;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto s = read_proc_stat(entry.path() / "stat");
    if (s && s->pgrp == pgid && s->state != 'Z' && s->state != 'X') return true;
  }
  return false;
}

/// Polls `condition` every 10 ms until it holds or `limit` passes.
inline bool eventually(const std::function<bool()>& condition, milliseconds limit) {
  const auto deadline = steady::now() + limit;
  while (!condition()) {
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

/// True when this process has no child processes left, zombies included: every command a
/// run started was reaped. It reaps nothing itself (WNOWAIT): reaping a child the engine
/// still owns would free its pid for reuse while the engine may still signal that group.
inline bool no_children() {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

/// The lines of `text` split at '\n'.
inline std::vector<std::string> lines_of(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

inline bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

}  // namespace drover::modules_test
