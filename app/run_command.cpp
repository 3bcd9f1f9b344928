// drover run: a pipeline file run here, or (with a master_role) as the master of a run
// coordinated through Redis.

#include "commands.hpp"

#include "command_support.hpp"

#include "arguments.hpp"
#include "coordinated_run.hpp"
#include "graph_output.hpp"
#include "pipeline_file.hpp"
#include "progress.hpp"
#include "report.hpp"

#include <drover/cache.hpp>
#include <drover/coord/master.hpp>
#include <drover/engine.hpp>
#include <drover/graph.hpp>
#include <drover/journal.hpp>
#include <drover/modules/exec.hpp>
#include <drover/modules/registry.hpp>
#include <drover/version.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>

#include <unistd.h>
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>
#include <unordered_map>

namespace drover::app {

namespace asio = boost::asio;

namespace {

struct run_outcome {
  run_report report;
  bool interrupted = false;
};

// Runs `p` on `io`, on this thread. The first SIGINT or SIGTERM cancels the run, a second one
// ends the process at once. One thread is enough and the fastest: the engine's workers share
// the run's strand, and the modules' work happens in child processes or timers (or remote
// workers, whose master shares the io_context). `on_finished` runs when the run completed;
// run() returns once it has stopped whatever else it started. `on_started` gets a function
// that cancels the run, as an interrupt does.
run_outcome execute(prepared_pipeline p, run_options options, live_progress* live,
                    std::ostream& err, asio::io_context& io,
                    const std::function<void(std::function<void()> cancel)>& on_started,
                    std::function<void(const run_outcome&)> on_finished) {
  engine runner{io.get_executor()};
  // The signal set, the cancellation signal and the outcome are touched only on this strand.
  auto control = asio::make_strand(io);
  asio::signal_set signals{control, SIGINT, SIGTERM};
  asio::cancellation_signal cancel_run;
  run_outcome outcome;
  bool finished = false;

  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec,
                                                                      int) {
    if (ec || finished) return;
    if (outcome.interrupted) std::_Exit(exit_interrupted);
    outcome.interrupted = true;
    err << "\ndrover: interrupted, cancelling the run (interrupt again to exit at once)"
        << std::endl;
    cancel_run.emit(asio::cancellation_type::terminal);
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  runner.async_run(std::move(p), std::move(options),
                   asio::bind_cancellation_slot(
                       cancel_run.slot(), asio::bind_executor(control, [&](run_report report) {
                         finished = true;
                         outcome.report = std::move(report);
                         signals.cancel();
                         if (live != nullptr) live->stop();
                         if (on_finished) on_finished(outcome);
                       })));
  if (live != nullptr) live->start();
  if (on_started) {
    on_started([&] {
      asio::dispatch(control, [&] {
        if (!finished) cancel_run.emit(asio::cancellation_type::terminal);
      });
    });
  }

  io.run();
  return outcome;
}

// Parses one command's arguments (FILE and options); prints usage problems and returns nothing
// on error.

}  // namespace

int exit_code_of(const run_report& report, bool interrupted) {
  if (report.status == run_status::invalid) return exit_usage;
  if (interrupted || report.status == run_status::cancelled) return exit_interrupted;
  return report.status == run_status::succeeded ? exit_succeeded : exit_failed;
}

int run_command(const run_settings& settings, std::ostream& out, std::ostream& err,
                master_role* role) {
  // The warnings are about what the cache would take: said only when there is one.
  auto loaded = load_or_report(settings.file, err,
                               settings.cache_dir.empty() ? warnings::hide : warnings::show);
  if (!loaded) return exit_usage;
  pipeline p = std::move(*loaded);
  if (!select_or_report(p, settings.chosen, err)) return exit_usage;
  if (settings.keep_going) p.mode = execution_mode::keep_going;
  // The file was checked when it was loaded; preparing here builds the graph the run uses, so
  // the run itself does not validate again.
  auto prepared = prepare(std::move(p));
  if (!prepared.ok()) {
    err << format_problems(prepared.problems);
    return exit_usage;
  }
  const std::size_t module_count = prepared.plan->size();

  // Open every output before running, so a bad path fails before any work is done.
  std::ofstream report_out;
  if (!settings.report_file.empty()) {
    report_out.open(settings.report_file, std::ios::trunc);
    if (!report_out) {
      err << "drover run: cannot write the report file '" << settings.report_file << "'\n";
      return exit_usage;
    }
  }
  std::ofstream events_out;
  if (!settings.events_file.empty()) {
    events_out.open(settings.events_file, std::ios::trunc);
    if (!events_out) {
      err << "drover run: cannot write the events file '" << settings.events_file << "'\n";
      return exit_usage;
    }
  }
  // Before the log directory, which lies in the workspace unless --log-dir says otherwise.
  std::error_code ec;
  if (!settings.workspace.empty() && !std::filesystem::is_directory(settings.workspace, ec)) {
    err << "drover run: the workspace '" << settings.workspace.string() << "' is not a directory\n";
    return exit_usage;
  }
  // Logs belong to the project the run works on, wherever drover was started from.
  const std::filesystem::path log_dir =
      settings.log_dir.empty() ? settings.workspace / ".drover" / "logs" : settings.log_dir;
  std::filesystem::create_directories(log_dir, ec);
  if (ec) {
    err << "drover run: cannot create the log directory '" << log_dir.string()
        << "': " << ec.message() << '\n';
    return exit_usage;
  }

  // The journal comes before the master: its epoch fences off workers of an earlier run.
  std::shared_ptr<run_journal> journal = role ? role->journal : nullptr;
  if (!settings.journal.empty() && !role) {
    try {
      journal_options journal_settings;
      journal_settings.mode = settings.journal_durability;
      journal_settings.resume = settings.resume;
      journal = run_journal::open(settings.journal, journal_settings);
    } catch (const journal_error& e) {
      err << "drover run: " << e.what() << '\n';
      return exit_usage;
    }
  }
  std::shared_ptr<result_cache> cache;
  if (!settings.cache_dir.empty()) {
    try {
      result_cache::settings cache_settings;
      cache_settings.lookup = !settings.no_cache;
      cache = std::make_shared<result_cache>(settings.cache_dir, cache_settings);
    } catch (const std::exception& e) {
      err << "drover run: " << e.what() << '\n';
      return exit_usage;
    }
  }

  // A reader that goes away (`drover run ... | head`) must not kill drover mid-run and leave
  // its children behind; failed writes to stdout are harmless.
  std::signal(SIGPIPE, SIG_IGN);

  asio::io_context io;
  // Declared after io, so it runs before io is destroyed: the role's I/O objects must not
  // outlive their io_context.
  struct role_stopper {
    master_role* role;
    ~role_stopper() {
      if (role && role->stop) role->stop();
    }
  } const stop_role_before_io{role};
  std::optional<live_progress> live;
  std::optional<event_printer> printer;
  if (settings.live_progress) {
    live.emplace(io.get_executor(), out, terminal_columns(STDOUT_FILENO), module_count);
  } else {
    printer.emplace(out);
  }

  // Remote workers: a hub for the run and a master on the same io_context, bound before the
  // run starts so that a bad address fails before any work is done.
  std::shared_ptr<worker_hub> hub;
  std::optional<coord::master> master;
  if (!settings.listen_host.empty() || role) {
    worker_hub::settings hub_settings;
    hub_settings.capability_timeout = settings.capability_timeout;
    hub_settings.overdue_grace = settings.lost_worker_timeout;
    hub_settings.max_worker_losses = static_cast<std::uint32_t>(settings.max_worker_losses);
    if (journal) hub_settings.epoch = journal->epoch();
    if (role) hub_settings.epoch = role->epoch;  // the lease's: only grows, fences old masters
    hub = std::make_shared<worker_hub>(hub_settings);
    coord::master_options master_options;
    master_options.listen_address = settings.listen_host;
    master_options.port = settings.listen_port;
    master_options.token = settings.token;
    master_options.heartbeat_interval = settings.heartbeat;
    master_options.lost_worker_timeout = settings.lost_worker_timeout;
    master_options.line_limits.max_line_bytes = settings.max_line_bytes;
    master_options.line_limits.max_depth = settings.max_depth;
    master_options.max_connections_per_address = settings.max_connections_per_address;
    master_options.max_handshakes_per_address = settings.max_handshakes_per_address;
    master_options.log = [&err](std::string_view line) { err << "drover: " << line << std::endl; };
    if (role) master_options.run_id = role->run_id;
    master.emplace(io.get_executor(), hub, std::move(master_options));
  }
  if (!settings.listen_host.empty()) {
    try {
      const auto bound = master->listen();
      const std::string address = bound.address().to_string();
      err << "drover: listening on " << (bound.address().is_v6() ? "[" + address + "]" : address)
          << ':' << bound.port() << std::endl;
    } catch (const coord::master_error& e) {
      const bool needs_token =
          std::string_view{e.what()}.find("without a token") != std::string_view::npos;
      err << "drover run: " << e.what() << (needs_token ? " (give one with --token-file)" : "")
          << '\n';
      return exit_usage;
    }
  }

  run_options options;
  options.workers = settings.workers;
  options.remote = hub;
  options.journal = journal;
  options.cache = cache;
  options.log_dir = log_dir;
  options.workspace = settings.workspace;
  options.keep_workdirs = settings.keep_workdirs;
  options.capabilities = settings.capabilities;
  options.order = settings.order;
  options.deadline = settings.deadline;
  if (master) options.run_id = master->run_id();  // the id workers see in welcome
  // Masked in values, reasons, events, the report and the summary (docs/module-kinds.md).
  options.secrets = modules::secrets_from_environment(prepared.plan->pipeline());
  options.on_event = [&](const event& e) {
    if (events_out.is_open()) write_event_line(events_out, e);
    if (live) {
      live->on_event(e);
    } else {
      (*printer)(e);
    }
  };

  // When the run is over every worker was told so; stopping the master lets the last byes
  // go out (within its close timeout) and closes the listening socket, so io.run() returns.
  // A coordinated run's master publishes the outcome for the other instances first.
  const auto on_started = [&](std::function<void()> cancel) {
    if (role) role->start(io, *master, std::move(cancel));
  };
  const auto on_finished = [&](const run_outcome& ended) {
    if (!role) {
      if (master) master->stop();
      return;
    }
    role->finish(ended.report, exit_code_of(ended.report, ended.interrupted),
                 [&master] { master->stop(); });
  };
  auto outcome = execute(std::move(*prepared.plan), std::move(options), live ? &*live : nullptr,
                         err, io, on_started, on_finished);
  const run_report& report = outcome.report;

  if (report.status == run_status::invalid) {
    err << format_problems(report.problems);
    return exit_usage;
  }
  out << '\n';
  print_summary(out, report);
  out.flush();
  if (report_out.is_open()) {
    report_out << boost::json::serialize(report_to_json(report)) << '\n';
    report_out.close();
    if (!report_out) {
      err << "drover run: writing the report file '" << settings.report_file << "' failed\n";
    }
  }
  return exit_code_of(report, outcome.interrupted);
}

}  // namespace drover::app
