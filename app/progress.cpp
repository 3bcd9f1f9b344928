#include "progress.hpp"

#include "report.hpp"

#include <boost/asio/post.hpp>

#include <sys/ioctl.h>
#include <unistd.h>
#include <algorithm>

namespace drover::app {

using std::chrono::milliseconds;

namespace {

// Only the first line of a message fits on a progress line; the summary shows the rest.
std::string_view first_line(std::string_view message) {
  return message.substr(0, message.find('\n'));
}

constexpr std::size_t max_running_lines = 12;

// Records when module `index` first started, sizing `starts` on demand; returns the elapsed
// time since then for a finished module.
std::optional<milliseconds> track_start(std::vector<wall_clock::time_point>& starts,
                                        const event& e) {
  if (e.index >= starts.size()) starts.resize(e.index + 1);
  auto& first = starts[e.index];
  if (e.type == event_type::module_started && first == wall_clock::time_point{}) first = e.ts;
  if (e.type != event_type::module_finished || first == wall_clock::time_point{}) {
    return std::nullopt;
  }
  return std::chrono::duration_cast<milliseconds>(e.ts - first);
}

}  // namespace

std::optional<std::string> describe_event(const event& e, std::optional<milliseconds> elapsed) {
  std::string line;
  switch (e.type) {
    case event_type::module_started:
      line = "started  " + std::string{e.module} + " (attempt " + std::to_string(e.attempt);
      if (!e.worker.empty()) line += ", " + std::string{e.worker};
      line += ')';
      return line;
    case event_type::module_retrying:
      line = "retrying " + std::string{e.module} + " in " + format_duration(e.delay) +
             " (attempt " + std::to_string(e.attempt);
      if (!e.message.empty()) line += ": " + std::string{first_line(e.message)};
      line += ')';
      return line;
    case event_type::module_reassigned:
      line = "reassigned " + std::string{e.module} + " (attempt " + std::to_string(e.attempt);
      if (!e.message.empty()) line += ": " + std::string{first_line(e.message)};
      line += ')';
      return line;
    case event_type::worker_joined:
      return "worker " + std::string{e.worker} + " joined";
    case event_type::worker_lost:
      line = "worker " + std::string{e.worker} + " left";
      if (!e.message.empty()) line += ": " + std::string{first_line(e.message)};
      return line;
    case event_type::worker_drained:
      line = "worker " + std::string{e.worker} + " drained";
      if (!e.message.empty()) line += ": " + std::string{first_line(e.message)};
      return line;
    case event_type::module_finished:
      line = "finished " + std::string{e.module} + ' ' + std::string{to_string(e.status)};
      if (elapsed) line += ' ' + format_duration(*elapsed);
      if (!e.message.empty() && e.status != module_status::succeeded) {
        line += ": " + std::string{first_line(e.message)};
      }
      return line;
    default:
      return std::nullopt;
  }
}

void event_printer::operator()(const event& e) {
  const auto elapsed = track_start(first_started_, e);
  if (auto line = describe_event(e, elapsed)) {
    out_ << format_time_of_day(e.ts) << ' ' << *line << '\n';
    out_.flush();
  }
}

std::size_t terminal_columns(int fd) {
  winsize size{};
  if (::ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

live_progress::live_progress(boost::asio::any_io_executor executor, std::ostream& out,
                             std::size_t columns, std::size_t total)
    : out_(out),
      columns_(std::max<std::size_t>(columns, 20)),
      strand_(boost::asio::make_strand(std::move(executor))),
      timer_(strand_),
      total_(total) {}

void live_progress::on_event(const event& e) {
  std::lock_guard lock{mutex_};
  const auto elapsed = track_start(first_started_, e);
  switch (e.type) {
    case event_type::run_started:
      if (e.total != 0) total_ = e.total;
      break;
    case event_type::module_started:
      running_.push_back({e.index, std::string{e.module}, e.attempt, std::string{e.worker},
                          std::chrono::steady_clock::now()});
      break;
    case event_type::module_retrying:
    case event_type::module_reassigned:
    case event_type::module_finished:
      std::erase_if(running_, [&](const running_module& m) { return m.index == e.index; });
      if (e.type == event_type::module_finished) ++done_;
      break;
    default:
      break;
  }
  // Started lines would only repeat the live block; the permanent record is of outcomes.
  if (e.type != event_type::module_started) {
    if (auto line = describe_event(e, elapsed)) pending_lines_.push_back(std::move(*line));
  }
}

void live_progress::start() {
  boost::asio::post(strand_, [this] { schedule_redraw(); });
}

void live_progress::stop() {
  {
    std::lock_guard lock{mutex_};
    stopped_ = true;
    erase_locked();
    for (const auto& line : pending_lines_)
      out_ << line << '\n';
    pending_lines_.clear();
    out_.flush();
  }
  boost::asio::post(strand_, [this] { timer_.cancel(); });
}

void live_progress::schedule_redraw() {
  {
    std::lock_guard lock{mutex_};
    if (stopped_) return;
    redraw_locked();
  }
  timer_.expires_after(milliseconds{100});
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) schedule_redraw();
  });
}

void live_progress::erase_locked() {
  // Back to the first live line, then clear to the end of the screen.
  if (lines_drawn_ > 0) out_ << "\x1b[" << lines_drawn_ << "F\x1b[J";
  lines_drawn_ = 0;
}

void live_progress::redraw_locked() {
  erase_locked();
  auto fit = [&](std::string line) {
    if (line.size() > columns_ - 1) line.resize(columns_ - 1);
    return line;
  };
  for (const auto& line : pending_lines_)
    out_ << line << '\n';
  pending_lines_.clear();

  out_ << fit("[" + std::to_string(done_) + "/" + std::to_string(total_) + "] " +
              std::to_string(running_.size()) + " running")
       << '\n';
  lines_drawn_ = 1;
  std::size_t width = 0;
  for (const auto& m : running_)
    width = std::max(width, m.id.size());
  const auto now = std::chrono::steady_clock::now();
  const std::size_t shown = std::min(running_.size(), max_running_lines);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& m = running_[i];
    std::string line = "  " + m.id + std::string(width - m.id.size(), ' ') + "  " +
                       format_duration(std::chrono::duration_cast<milliseconds>(now - m.since));
    if (m.attempt > 1) line += " (attempt " + std::to_string(m.attempt) + ")";
    out_ << fit(std::move(line)) << '\n';
    ++lines_drawn_;
  }
  if (running_.size() > shown) {
    out_ << fit("  ... and " + std::to_string(running_.size() - shown) + " more") << '\n';
    ++lines_drawn_;
  }
  out_.flush();
}

}  // namespace drover::app
