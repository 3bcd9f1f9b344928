#pragma once
// What `drover run` shows while modules run: a live display on a terminal, otherwise one
// plain line per module event.

#include <drover/event.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace drover::app {

/// The text of a module event without a timestamp, or nothing for events not shown:
/// `started  build (attempt 1, local-0)`, `retrying build in 200ms (attempt 1: exit code 2)`,
/// `finished build succeeded 1.2s`, `finished test skipped: dependency build failed`.
/// `elapsed` is the time since the module's first attempt began, if it began.
std::optional<std::string> describe_event(const event& e,
                                          std::optional<std::chrono::milliseconds> elapsed);

/// Prints one line per module event: `12:00:01.234 started  build (attempt 1, local-0)`.
/// Called on the run's strand, which serialises the calls.
class event_printer {
 public:
  explicit event_printer(std::ostream& out) : out_(out) {}
  void operator()(const event& e);

 private:
  std::ostream& out_;
  std::vector<wall_clock::time_point> first_started_;  // by module index
};

/// The live display for a terminal: a permanent line per finished or retrying module, and
/// under them `[done/total]` with each running module and its elapsed time, redrawn in place
/// with ANSI escapes about ten times a second.
class live_progress {
 public:
  /// Draws on `out` (a terminal `columns` wide) with a timer on `executor`, for a run of
  /// `total` modules.
  live_progress(boost::asio::any_io_executor executor, std::ostream& out, std::size_t columns,
                std::size_t total);

  /// Records an event; safe from any thread.
  void on_event(const event& e);
  /// Starts redrawing.
  void start();
  /// Prints what is still queued, erases the live lines and stops redrawing. The output stays
  /// untouched afterwards, so a summary can follow.
  void stop();

 private:
  struct running_module {
    std::uint32_t index;
    std::string id;
    std::uint32_t attempt;
    std::string worker;
    std::chrono::steady_clock::time_point since;
  };

  void schedule_redraw();
  void redraw_locked();
  void erase_locked();

  std::mutex
      mutex_;  // guards everything below: events arrive on the run's strand, redraws on the timer's
  std::ostream& out_;
  std::size_t columns_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
  std::size_t total_ = 0;
  std::size_t done_ = 0;
  std::vector<running_module> running_;
  std::vector<std::string> pending_lines_;
  std::vector<wall_clock::time_point> first_started_;
  std::size_t lines_drawn_ = 0;
};

/// Width of the terminal on file descriptor `fd`, or 80 when it cannot be told.
std::size_t terminal_columns(int fd);

}  // namespace drover::app
