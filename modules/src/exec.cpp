#include <drover/modules/exec.hpp>

#include <drover/context.hpp>
#include <drover/secrets.hpp>

#include "detail/child_process.hpp"
#include "detail/deps_file.hpp"
#include "detail/params.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/system/system_error.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace drover::modules {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr std::int64_t max_duration_ms = 1'000'000'000'000;
constexpr std::size_t kept_line_count = 20;
constexpr std::size_t max_kept_line_chars = 500;
// Longer lines are split; json_output can therefore parse a last line of up to this size.
constexpr std::size_t max_line_bytes = std::size_t{1} << 20;
// How long output may keep arriving after the child exited and its group was killed; only a
// process that left the group (setsid) and kept the pipe open can use all of it.
constexpr std::chrono::seconds drain_limit{2};
constexpr std::size_t max_display_chars = 80;

// Cuts `text` to about `max_chars` bytes without splitting a UTF-8 sequence.
std::string shorten(std::string text, std::size_t max_chars) {
  if (text.size() > max_chars) {
    while (max_chars > 0 && (static_cast<unsigned char>(text[max_chars]) & 0xC0) == 0x80) {
      --max_chars;
    }
    text.resize(max_chars);
    text += "...";
  }
  return text;
}

// The validated options plus what is derived from them once, when the module is resolved.
struct prepared_exec {
  exec_options options;
  detail::command_spec command;
};

void check_options(const exec_options& o) {
  if (!o.argv.empty() && !o.shell.empty()) {
    throw params_error("params.shell", "give either 'argv' or 'shell', not both");
  }
  if (o.argv.empty() && o.shell.empty()) {
    throw params_error("params.argv",
                       "exec needs 'argv' (an array of strings) or 'shell' (a command line)");
  }
  if (!o.argv.empty() && o.argv.front().empty()) {
    throw params_error("params.argv", "'argv' must start with a non-empty program name");
  }
  for (const auto& arg : o.argv)
    detail::reject_nul("params.argv", "'argv'", arg);
  detail::reject_nul("params.shell", "'shell'", o.shell);
  detail::reject_nul("params.cwd", "'cwd'", o.cwd.native());
  const auto check_name = [](const std::string& name) {
    if (name.empty() || name.find('=') != std::string::npos) {
      throw params_error("params.env", "environment variable name '" + name +
                                           "' must be non-empty and must not contain '='");
    }
  };
  for (const auto& [name, value] : o.env) {
    check_name(name);
    detail::reject_nul("params.env", "environment variable '" + name + "'", name + value);
  }
  for (const auto& [name, source] : o.secret_env) {
    check_name(name);
    detail::reject_nul("params.env", "environment variable '" + name + "'", name + source);
    if (o.env.contains(name)) {
      throw params_error("params.env", "environment variable '" + name +
                                           "' is given both as a value and as a secret");
    }
    if (source.empty() || source.find('=') != std::string::npos) {
      throw params_error("params.env", "'secret_from_env' of env '" + name +
                                           "' must be a variable name: non-empty, without '='");
    }
  }
  if (o.timeout && o.timeout->count() < 1) {
    throw params_error("params.timeout_ms", "'timeout_ms' must be at least 1");
  }
  if (o.kill_grace.count() < 0) {
    throw params_error("params.kill_grace_ms", "'kill_grace_ms' must not be negative");
  }
}

std::shared_ptr<const prepared_exec> prepare(exec_options options) {
  check_options(options);
  auto exec = std::make_shared<prepared_exec>();
  auto& cmd = exec->command;
  if (!options.shell.empty()) {
    cmd.argv = {"/bin/sh", "-c", options.shell};
    cmd.display = options.shell;
  } else {
    cmd.argv = options.argv;
    for (const auto& arg : options.argv) {
      if (!cmd.display.empty()) cmd.display += ' ';
      cmd.display += arg;
    }
  }
  for (char& c : cmd.display) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  cmd.display = shorten(std::move(cmd.display), max_display_chars);
  cmd.env = options.env;  // the working directory is chosen per attempt (run_exec)
  exec->options = std::move(options);
  return exec;
}

// The output of one attempt: appended to the log file (if any) line by line, with the last
// lines kept for the failure message and the last non-blank stdout line kept for json_output.
// With secrets, every line is masked before it is written or kept: a secret without a newline
// lies within one line, and each line of a multi-line secret is a secret of its own.
class output_log {
 public:
  /// `path` names the file in lost().
  output_log(detail::unique_fd file, std::filesystem::path path,
             std::shared_ptr<const secret_masker> secrets)
      : file_(std::move(file)), path_(std::move(path)), secrets_(std::move(secrets)) {}

  void note(std::string_view text) {
    pending_ += "== drover: ";
    pending_ += secrets_ ? secrets_->mask(text) : text;
    pending_ += " ==\n";
    flush();
  }

  void add_line(std::string_view line, bool from_stdout) {
    std::string masked;
    std::string_view shown = line;
    if (secrets_) {
      masked = secrets_->mask(line);
      shown = masked;
    }
    if (file_.get() >= 0) {
      pending_ += shown;
      pending_ += '\n';
    }
    if (!shown.empty() && shown.back() == '\r') shown.remove_suffix(1);
    if (kept_.size() == kept_line_count) kept_.pop_front();
    kept_.push_back(shorten(std::string(shown), max_kept_line_chars));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (from_stdout && line.find_first_not_of(" \t\r\f\v") != std::string_view::npos) {
      last_stdout_line_.assign(line);  // unmasked: json_output masks the parsed value
    }
  }

  /// Why the file stopped taking the output (a sentence naming it), or empty.
  const std::string& lost() const noexcept { return lost_; }

  /// What this attempt masks; null when there is nothing to mask.
  const secret_masker* secrets() const noexcept { return secrets_.get(); }

  // Log writes go to a local file and are not worth an asynchronous dance. A failed write (a
  // full disk, say) must not fail the module: the file is given up, which the run's notes say,
  // and the kept lines still go into a failure's message.
  void flush() {
    std::string_view rest = pending_;
    while (file_.get() >= 0 && !rest.empty()) {
      auto written = ::write(file_.get(), rest.data(), rest.size());
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) {
        const std::string why = written < 0 ? std::strerror(errno) : "nothing was written";
        file_ = detail::unique_fd();
        lost_ = "log file '" + path_.string() + "' is incomplete: " + why;
        break;
      }
      rest.remove_prefix(static_cast<std::size_t>(written));
    }
    pending_.clear();
  }

  /// The kept lines, each preceded by a newline: ready to append to a one-line message.
  std::string last_lines() const {
    std::string out;
    for (const auto& line : kept_) {
      out += '\n';
      out += line;
    }
    return out;
  }

  const std::string& last_stdout_line() const noexcept { return last_stdout_line_; }

 private:
  detail::unique_fd file_;
  std::filesystem::path path_;
  std::shared_ptr<const secret_masker> secrets_;
  std::string lost_;
  std::string pending_;
  std::deque<std::string> kept_;
  std::string last_stdout_line_;
};

detail::unique_fd open_log_file(const std::filesystem::path& log_dir, std::string_view id) {
  if (log_dir.empty()) return {};
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  if (ec) {
    throw std::runtime_error("cannot create log directory '" + log_dir.string() +
                             "': " + ec.message());
  }
  const auto path = exec_log_path(log_dir, id);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error("cannot open log file '" + path.string() +
                             "': " + std::strerror(errno));
  }
  return detail::unique_fd(fd);
}

enum class stop_reason { none, cancelled, timed_out };

// One attempt of an exec module: the child, the readers of its output and the timers that
// stop it. Used only on the body's executor (the worker's strand), by the body and by the
// handlers started here; those hold a shared_ptr, so if the body is destroyed mid-flight the
// attempt lives until they finish and child_process's destructor kills the group.
class exec_attempt : public std::enable_shared_from_this<exec_attempt> {
 public:
  exec_attempt(const asio::any_io_executor& ex, std::shared_ptr<const prepared_exec> exec,
               detail::child_process child, output_log log)
      : exec_(std::move(exec)),
        options_(exec_->options),
        child_(std::move(child)),
        log_(std::move(log)),
        exit_watch_(ex, child_.exit_fd().release()),
        stdout_(ex, child_.stdout_pipe().release(), true),
        stderr_(ex, child_.stderr_pipe().release(), false),
        timeout_timer_(ex),
        kill_timer_(ex),
        drained_(ex) {}

  void start() {
    read(stdout_);
    read(stderr_);
    if (options_.timeout) {
      timeout_timer_.expires_after(*options_.timeout);
      timeout_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec && !self->child_.reaped()) self->stop(stop_reason::timed_out);
      });
    }
  }

  /// Readable once the child has exited (it is then a zombie until collect()).
  asio::posix::stream_descriptor& exit_watch() noexcept { return exit_watch_; }

  /// SIGTERM to the group now, SIGKILL after kill_grace if the child has not exited by then.
  void stop(stop_reason why) {
    if (stopped_by_ != stop_reason::none || child_.reaped()) return;
    stopped_by_ = why;
    child_.signal_group(SIGTERM);
    kill_timer_.expires_after(options_.kill_grace);
    kill_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->child_.exited()) return;
      self->child_.signal_group(SIGKILL);
      self->sent_kill_ = true;
    });
  }

  /// After the child exited: kills what it left in its group, then reaps it.
  detail::exit_status collect() {
    child_.signal_group(SIGKILL);
    auto status = child_.reap();
    timeout_timer_.cancel();
    kill_timer_.cancel();
    return status;
  }

  bool output_open() const noexcept { return stdout_.open || stderr_.open; }
  /// Cancelled when both output pipes reach end of file.
  asio::steady_timer& drained() noexcept { return drained_; }

  /// Ends reading (flushing partial lines) and releases the descriptors.
  void close() {
    finish(stdout_);
    finish(stderr_);
    stdout_.pipe.close();
    stderr_.pipe.close();
    exit_watch_.close();
    drained_.cancel();
  }

  stop_reason stopped_by() const noexcept { return stopped_by_; }
  bool sent_kill() const noexcept { return sent_kill_; }
  output_log& log() noexcept { return log_; }

 private:
  struct output_stream {
    output_stream(const asio::any_io_executor& ex, int fd, bool from_stdout)
        : pipe(ex, fd), from_stdout(from_stdout) {}
    asio::posix::stream_descriptor pipe;
    std::array<char, 8192> buffer{};
    std::string partial;
    bool from_stdout;
    bool open = true;
  };

  void read(output_stream& s) {
    s.pipe.async_read_some(
        asio::buffer(s.buffer),
        [self = shared_from_this(), &s](boost::system::error_code ec, std::size_t n) {
          if (!s.open) return;
          self->consume(s, std::string_view(s.buffer.data(), n));
          if (ec) {
            self->finish(s);
            if (!self->output_open()) self->drained_.cancel();
            return;
          }
          self->read(s);
        });
  }

  void consume(output_stream& s, std::string_view data) {
    while (!data.empty()) {
      auto newline = data.find('\n');
      s.partial.append(data.substr(0, newline));
      if (newline == std::string_view::npos) {
        if (s.partial.size() >= max_line_bytes) split_long_line(s);
        break;
      }
      log_.add_line(s.partial, s.from_stdout);
      s.partial.clear();
      data.remove_prefix(newline + 1);
    }
    log_.flush();
  }

  // Writes out most of a line that has grown too long. The bytes that could begin a secret
  // continued by the next read stay in `partial`, so the secret is still masked whole.
  void split_long_line(output_stream& s) {
    std::size_t cut = s.partial.size();
    if (const auto* secrets = log_.secrets()) {
      cut = secrets->stream_cut(s.partial, cut - std::min(cut, secrets->longest() - 1));
    }
    if (cut == 0) return;
    log_.add_line(std::string_view(s.partial).substr(0, cut), s.from_stdout);
    s.partial.erase(0, cut);
  }

  void finish(output_stream& s) {
    if (!s.open) return;
    s.open = false;
    if (!s.partial.empty()) log_.add_line(s.partial, s.from_stdout);
    s.partial.clear();
    log_.flush();
  }

  std::shared_ptr<const prepared_exec> exec_;
  const exec_options& options_;  // exec_->options
  detail::child_process child_;
  output_log log_;
  asio::posix::stream_descriptor exit_watch_;
  output_stream stdout_, stderr_;
  asio::steady_timer timeout_timer_, kill_timer_, drained_;
  stop_reason stopped_by_ = stop_reason::none;
  bool sent_kill_ = false;
};

// Awaits an operation without letting the coroutine's cancellation abort it: used for the
// waits that stop and reap a child after a cancellation.
auto uncancellable() {
  return asio::bind_cancellation_slot(asio::cancellation_slot(),
                                      asio::as_tuple(asio::use_awaitable));
}

json::value parse_output(const std::string& line) {
  if (line.empty()) throw std::runtime_error("json_output: the command printed nothing on stdout");
  boost::system::error_code ec;
  auto value = json::parse(line, ec);
  if (ec) {
    throw std::runtime_error("json_output: the last stdout line is not JSON (" + ec.message() +
                             "): " + shorten(line, max_kept_line_chars));
  }
  return value;
}

std::string stop_description(const exec_attempt& run, const prepared_exec& exec) {
  std::string text = "stopped '" + exec.command.display + "' with ";
  if (run.sent_kill()) {
    return text + "SIGKILL after it ignored SIGTERM for " +
           std::to_string(exec.options.kill_grace.count()) + " ms";
  }
  return text + "SIGTERM";
}

// The secrets one attempt masks and the values of its secret_env variables.
struct attempt_secrets {
  std::shared_ptr<const secret_masker> masker;  // null when there is nothing to mask
  std::map<std::string, std::string> env;
  std::string missing;  // why a secret_env variable has no value, or empty
};

// Reads the secret_env variables from this process's environment (on a remote worker, the
// worker's) and combines them with the run's secrets. The masker is a copy, not the run's:
// the attempt's output handlers may outlive the run.
attempt_secrets resolve_secrets(const exec_options& options, const secret_masker* run_secrets) {
  attempt_secrets out;
  for (const auto& [name, source] : options.secret_env) {
    const char* value = std::getenv(source.c_str());
    if (value == nullptr || *value == '\0') {
      out.missing = "env '" + name + "' takes its value from the environment variable '" + source +
                    "' (secret_from_env), which is not set or empty where the attempt runs";
      break;
    }
    out.env.emplace(name, value);
  }
  const bool run_has_secrets = run_secrets != nullptr && !run_secrets->empty();
  if (out.env.empty() && !run_has_secrets) return out;
  auto masker = run_has_secrets ? std::make_shared<secret_masker>(*run_secrets)
                                : std::make_shared<secret_masker>();
  for (const auto& [name, value] : out.env)
    masker->add(value);
  if (!masker->empty()) out.masker = std::move(masker);
  return out;
}

// Where one attempt's child runs and what it is told about it (DROVER_WORKSPACE,
// DROVER_WORK_DIR, DROVER_DEPS and, for a matrix instance, DROVER_MATRIX_TARGET).
struct attempt_place {
  std::string cwd;
  std::string workspace;
  std::string work_dir;
  std::string deps_file;
  std::string matrix_target;
};

// `used_secrets` receives what the attempt masks as soon as that is known, so that the caller
// can mask the attempt's failure message too.
asio::awaitable<json::value> run_attempt(std::shared_ptr<const prepared_exec> exec,
                                         std::string module_id, std::uint32_t attempt,
                                         std::filesystem::path log_dir, attempt_place place,
                                         std::function<void(std::string)> note,  // ctx.note
                                         const secret_masker* run_secrets,
                                         std::shared_ptr<const secret_masker>& used_secrets) {
  auto executor = co_await asio::this_coro::executor;
  auto cancellation = co_await asio::this_coro::cancellation_state;
  const auto& cmd = exec->command;
  if (cancellation.cancelled() != asio::cancellation_type::none) {
    throw std::runtime_error("cancelled before '" + cmd.display + "' started");
  }

  auto secrets = resolve_secrets(exec->options, run_secrets);
  used_secrets = secrets.masker;
  output_log log(open_log_file(log_dir, module_id), exec_log_path(log_dir, module_id),
                 secrets.masker);
  log.note("attempt " + std::to_string(attempt));
  if (!secrets.missing.empty()) {
    log.note(secrets.missing);
    throw std::runtime_error(secrets.missing);
  }
  // Each attempt has a directory of its own, so each starts a copy of the command. Variables
  // the module sets itself win over DROVER_WORKSPACE and DROVER_WORK_DIR.
  detail::command_spec launch = cmd;
  launch.cwd = std::move(place.cwd);
  launch.env.insert(secrets.env.begin(), secrets.env.end());
  launch.env.try_emplace("DROVER_WORKSPACE", std::move(place.workspace));
  launch.env.try_emplace("DROVER_WORK_DIR", std::move(place.work_dir));
  launch.env.try_emplace("DROVER_DEPS", std::move(place.deps_file));
  if (!place.matrix_target.empty()) {
    launch.env.try_emplace("DROVER_MATRIX_TARGET", std::move(place.matrix_target));
  }
  std::optional<detail::child_process> child;
  try {
    child.emplace(detail::child_process::start(launch));
  } catch (const std::exception& e) {
    log.note(e.what());
    throw;
  }
  auto run = std::make_shared<exec_attempt>(executor, exec, std::move(*child), std::move(log));
  run->start();

  // A cancellation that arrived while no operation was pending is only visible in the state.
  bool cancelled = cancellation.cancelled() != asio::cancellation_type::none;
  if (!cancelled) {
    auto [ec] = co_await run->exit_watch().async_wait(asio::posix::stream_descriptor::wait_read,
                                                      asio::as_tuple(asio::use_awaitable));
    cancelled = ec.failed();
  }
  if (cancelled) {
    run->stop(stop_reason::cancelled);
    // Bounded: the kill timer sends SIGKILL after kill_grace. If this wait itself fails,
    // collect() still kills the group and reaps the child.
    co_await run->exit_watch().async_wait(asio::posix::stream_descriptor::wait_read,
                                          uncancellable());
  }
  const auto status = run->collect();
  if (run->output_open()) {
    run->drained().expires_after(drain_limit);
    co_await run->drained().async_wait(uncancellable());
  }
  run->close();
  if (!run->log().lost().empty()) note(run->log().lost());

  const auto last_lines = run->log().last_lines();
  switch (run->stopped_by()) {
    case stop_reason::cancelled: {
      auto message = "cancelled; " + stop_description(*run, *exec);
      run->log().note(message);
      throw std::runtime_error(message + last_lines);
    }
    case stop_reason::timed_out: {
      auto message = "timed out after " + std::to_string(exec->options.timeout->count()) +
                     " ms (timeout_ms); " + stop_description(*run, *exec);
      run->log().note(message);
      throw timeout_error(message + last_lines);
    }
    case stop_reason::none:
      break;
  }
  run->log().note(status.describe());
  if (!status.success()) throw std::runtime_error(status.describe() + last_lines);

  json::object result;
  result["exit_code"] = status.code;
  if (exec->options.json_output) {
    auto output = parse_output(run->log().last_stdout_line());
    if (const auto* masker = run->log().secrets()) masker->mask_in_place(output);
    result["output"] = std::move(output);
  }
  co_return result;
}

// `failure` with its message masked, keeping timeout_error a timeout; `failure` itself when
// there is nothing to mask. Cancellation errors carry no text of the command's.
std::exception_ptr masked_failure(std::exception_ptr failure, const secret_masker* secrets) {
  if (secrets == nullptr) return failure;
  try {
    std::rethrow_exception(failure);
  } catch (const timeout_error& e) {
    std::string message = e.what();
    if (secrets->mask_in_place(message)) return std::make_exception_ptr(timeout_error(message));
  } catch (const boost::system::system_error&) {
  } catch (const std::exception& e) {
    std::string message = e.what();
    if (secrets->mask_in_place(message)) {
      return std::make_exception_ptr(std::runtime_error(message));
    }
  } catch (...) {
  }
  return failure;
}

// The body proper. Stopping a child after a cancellation needs awaits of its own, so the
// coroutine's throw-if-cancelled behaviour is switched off for the attempt and restored after:
// the flag belongs to the whole coroutine stack, which may include the engine's worker loop.
asio::awaitable<json::value> run_exec(std::shared_ptr<const prepared_exec> exec,
                                      module_context& ctx) {
  std::string module_id(ctx.id());
  const auto attempt = ctx.attempt();
  auto log_dir = ctx.log_dir();
  const secret_masker* run_secrets = ctx.secrets();
  std::shared_ptr<const secret_masker> secrets;
  // The child runs in the attempt's work directory unless cwd says where; a relative cwd is
  // taken from the workspace. Making the work directory may throw: the attempt fails then.
  attempt_place place;
  place.work_dir = ctx.work_dir().string();
  place.workspace = ctx.workspace().string();
  place.cwd =
      exec->options.cwd.empty() ? place.work_dir : (ctx.workspace() / exec->options.cwd).string();
  const detail::deps_file deps(ctx, ctx.work_dir());  // lives until the attempt ends
  place.deps_file = deps.path().string();
  place.matrix_target = ctx.matrix_target();
  // With cwd the command writes in the workspace: its declared outputs are checked there.
  if (!exec->options.cwd.empty()) ctx.writes_in_workspace();

  const bool throw_if_cancelled = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  std::exception_ptr failure;
  json::value result;
  try {
    // The context outlives this call: run_exec awaits it.
    auto note = [&ctx](std::string line) {
      ctx.note("module '" + std::string(ctx.id()) + "': " + std::move(line));
    };
    result = co_await run_attempt(std::move(exec), std::move(module_id), attempt,
                                  std::move(log_dir), std::move(place), note, run_secrets, secrets);
  } catch (...) {
    failure = std::current_exception();
  }
  co_await asio::this_coro::throw_if_cancelled(throw_if_cancelled);
  if (failure) std::rethrow_exception(masked_failure(std::move(failure), secrets.get()));
  co_return result;
}

std::uint32_t fnv1a(std::string_view text) {
  std::uint32_t hash = 2166136261u;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 16777619u;
  }
  return hash;
}

}  // namespace

exec_options parse_exec_params(const json::value& params) {
  detail::param_reader in(
      "exec", params,
      {"argv", "shell", "env", "cwd", "timeout_ms", "kill_grace_ms", "json_output"});
  exec_options o;
  if (const auto* argv = in.find("argv")) {
    const auto* items = argv->if_array();
    bool all_strings = items && !items->empty();
    for (std::size_t i = 0; all_strings && i < items->size(); ++i) {
      all_strings = (*items)[i].is_string();
    }
    if (!all_strings) {
      in.fail("argv",
              "'argv' must be a non-empty array of strings, got " + detail::describe_json(*argv));
    }
    for (const auto& item : *items)
      o.argv.emplace_back(item.get_string());
  }
  if (auto shell = in.string("shell")) {
    if (shell->empty()) in.fail("shell", "'shell' must be a non-empty command line");
    o.shell = std::move(*shell);
  }
  if (const auto* env = in.find("env")) {
    const auto* vars = env->if_object();
    if (!vars)
      in.fail("env", "'env' must be an object of variables, got " + detail::describe_json(*env));
    for (const auto& var : *vars) {
      std::string name(var.key());
      if (const auto* value = var.value().if_string()) {
        o.env.insert_or_assign(std::move(name), std::string(*value));
        continue;
      }
      const auto* reference = var.value().if_object();
      const auto* source =
          reference && reference->size() == 1 ? reference->if_contains("secret_from_env") : nullptr;
      if (source == nullptr) {
        in.fail("env", "'env' value of '" + name +
                           R"(' must be a string or {"secret_from_env": "NAME"}, got )" +
                           detail::describe_json(var.value()));
      }
      if (!source->is_string() || source->get_string().empty()) {
        in.fail("env", "'secret_from_env' of env '" + name +
                           "' must be a non-empty variable name, got " +
                           detail::describe_json(*source));
      }
      o.secret_env.insert_or_assign(std::move(name), std::string(source->get_string()));
    }
  }
  if (auto cwd = in.string("cwd")) {
    if (cwd->empty()) in.fail("cwd", "'cwd' must be a non-empty path");
    o.cwd = std::move(*cwd);
  }
  if (auto ms = in.integer("timeout_ms", 1, max_duration_ms))
    o.timeout = std::chrono::milliseconds(*ms);
  if (auto ms = in.integer("kill_grace_ms", 0, max_duration_ms))
    o.kill_grace = std::chrono::milliseconds(*ms);
  if (auto json_output = in.boolean("json_output")) o.json_output = *json_output;
  check_options(o);
  return o;
}

module_body exec_body(exec_options options) {
  return [exec = prepare(std::move(options))](module_context& ctx) { return run_exec(exec, ctx); };
}

std::shared_ptr<const secret_masker> secrets_from_environment(const pipeline& p) {
  auto secrets = std::make_shared<secret_masker>();
  for (std::size_t i = 0; i < p.size(); ++i) {
    const module_view m = p.module(i);
    if (m.kind() != "exec" || !m.params().is_object()) continue;
    // Most modules have no secret: only env objects with an object value are parsed.
    const auto* env = m.params().get_object().if_contains("env");
    const auto* vars = env ? env->if_object() : nullptr;
    if (!vars || std::none_of(vars->begin(), vars->end(),
                              [](const auto& var) { return var.value().is_object(); })) {
      continue;
    }
    exec_options options;
    try {
      options = parse_exec_params(m.params());
    } catch (const params_error&) {
      continue;  // the module itself reports it
    }
    for (const auto& [name, source] : options.secret_env) {
      if (const char* value = std::getenv(source.c_str())) secrets->add(value);
    }
  }
  if (secrets->empty()) return nullptr;
  return secrets;
}

bool runs_in_workspace(const module_spec& m) {
  if (m.kind != "exec" || !m.params.is_object()) return false;
  const auto* cwd = m.params.get_object().if_contains("cwd");
  return cwd != nullptr && cwd->is_string() && !cwd->get_string().empty();
}

std::filesystem::path exec_log_path(const std::filesystem::path& log_dir,
                                    std::string_view module_id) {
  constexpr std::size_t max_name_chars = 200;
  auto allowed = [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  };
  bool plain = !module_id.empty() && module_id.size() <= max_name_chars;
  for (unsigned char c : module_id)
    plain = plain && allowed(c);
  if (plain) return log_dir / (std::string(module_id) + ".log");

  std::string name;
  for (unsigned char c : module_id.substr(0, max_name_chars))
    name += allowed(c) ? char(c) : '_';
  char hash[9];
  std::snprintf(hash, sizeof hash, "%08x", static_cast<unsigned>(fnv1a(module_id)));
  return log_dir / (name + "-" + hash + ".log");
}

}  // namespace drover::modules
