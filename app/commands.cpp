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

namespace po = boost::program_options;
namespace asio = boost::asio;

namespace {

const std::vector<std::string> command_names{"run", "validate", "plan", "graph"};

constexpr std::string_view top_usage =
    "Usage: drover <command> [options]\n"
    "\n"
    "Runs pipelines of modules in dependency order.\n"
    "\n"
    "Commands:\n"
    "  run FILE        run the pipeline in FILE\n"
    "  validate FILE   check FILE and report every problem in it\n"
    "  plan FILE       print the waves a run would take, running nothing\n"
    "  graph FILE      print the dependency graph (--format dot|mermaid)\n"
    "  worker          run modules for a master: worker --connect HOST:PORT\n"
    "  simulate        a master and simulated workers in one process, with faults\n"
    "  serve           a long-running service: runs submitted pipelines, HTTP API, metrics\n"
    "  submit FILE     submit a pipeline to drover serve; prints the run's id\n"
    "  status [RUN]    the service's runs, or one run and its modules\n"
    "  wait RUN        wait for a run of the service to finish (exit code as for run)\n"
    "  cancel RUN      cancel a run of the service\n"
    "  workers         the service's workers and their load\n"
    "  drain WORKER    let a worker of the service finish its attempts and go\n"
    "\n"
    "Options:\n"
    "  -h [ --help ]   show this help; `drover <command> --help` for a command's options\n"
    "  --version       print the version\n"
    "\n"
    "Exit codes: 0 success, 1 a module failed, 2 usage or pipeline error, 130 interrupted.\n";

std::string lowercase(std::string_view text) {
  std::string out{text};
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// "a", "a and b", "a, b and c".
std::string and_list(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += items[i];
  }
  return out;
}

// Warns about each module that requires a label the local workers lack: a local run skips it.
// The labels compare as the engine compares them, ignoring case.
void warn_about_missing_capabilities(const pipeline& p,
                                     const std::vector<std::string>& capabilities,
                                     std::ostream& err) {
  std::vector<std::string> local_labels{lowercase(local_os_label())};
  for (const auto& label : capabilities)
    local_labels.push_back(lowercase(label));
  for (const auto& m : p.specs()) {
    if (!m.constraints) continue;
    std::vector<std::string> missing;
    for (const auto& label : m.constraints->required_capabilities) {
      const auto wanted = lowercase(label);
      if (std::find(local_labels.begin(), local_labels.end(), wanted) != local_labels.end()) {
        continue;
      }
      const bool listed =
          std::any_of(missing.begin(), missing.end(),
                      [&](const std::string& other) { return lowercase(other) == wanted; });
      if (!listed) missing.push_back(label);
    }
    if (missing.empty()) continue;
    err << "warning: module '" << m.id << "' requires " << and_list(missing)
        << ", which no local worker has (it will be skipped in a local run)\n";
  }
}

std::optional<po::variables_map> parse_command(const std::string& command,
                                               const std::vector<std::string>& args,
                                               const po::options_description& options,
                                               std::ostream& err) {
  auto vm = parse_arguments(command, args, options, "file", err);
  if (vm && !vm->count("help") && !vm->count("file")) {
    err << "drover " << command << ": missing the pipeline FILE\nTry 'drover " << command
        << " --help'.\n";
    return std::nullopt;
  }
  return vm;
}

void add_selection_options(po::options_description& options) {
  options.add_options()("module",
                        po::value<std::vector<std::string>>()->composing()->value_name("ID"),
                        "select module ID and its dependencies (repeatable)")(
      "tag", po::value<std::vector<std::string>>()->composing()->value_name("T"),
      "select the modules tagged T and their dependencies (repeatable)")(
      "skip-module", po::value<std::vector<std::string>>()->composing()->value_name("ID"),
      "skip module ID, and so its dependents (repeatable)");
}

selection selection_from(const po::variables_map& vm) {
  selection chosen;
  auto list = [&](const char* name) {
    return vm.count(name) ? vm[name].as<std::vector<std::string>>() : std::vector<std::string>{};
  };
  chosen.modules = list("module");
  chosen.tags = list("tag");
  chosen.skip_modules = list("skip-module");
  return chosen;
}

void add_capability_option(po::options_description& options) {
  const std::string description = "a label of the local workers besides their OS label (" +
                                  std::string{local_os_label()} + "); repeatable";
  options.add_options()("capability",
                        po::value<std::vector<std::string>>()->composing()->value_name("LABEL"),
                        description.c_str());
}

// The --capability labels, or nothing (after saying why) when one is empty.
std::optional<std::vector<std::string>> capabilities_from(const po::variables_map& vm,
                                                          const std::string& command,
                                                          std::ostream& err) {
  if (!vm.count("capability")) return std::vector<std::string>{};
  auto labels = vm["capability"].as<std::vector<std::string>>();
  for (const auto& label : labels) {
    if (label.empty()) {
      err << "drover " << command << ": --capability needs a non-empty label\n";
      return std::nullopt;
    }
  }
  return labels;
}

std::size_t hardware_threads() {
  return std::max<std::size_t>(std::thread::hardware_concurrency(), 1);
}

}  // namespace

std::string plural(std::size_t n, std::string_view word) {
  return std::to_string(n) + ' ' + std::string{word} + (n == 1 ? "" : "s");
}

std::optional<pipeline> load_or_report(const std::string& file, std::ostream& err, warnings shown) {
  auto loaded = load_pipeline_file(file, modules::builtin_registry());
  if (!loaded.ok()) {
    for (const auto& problem : loaded.problems)
      err << format_problem(file, problem) << '\n';
    err << file << ": " << plural(loaded.problems.size(), "problem") << '\n';
    return std::nullopt;
  }
  if (shown == warnings::show) {
    for (const auto& warning : loaded.warnings)
      err << format_warning(file, warning) << '\n';
  }
  return std::move(loaded.pipeline);
}

bool select_or_report(pipeline& p, const selection& chosen, std::ostream& err) {
  const auto errors = apply_selection(p, chosen);
  for (const auto& e : errors)
    err << "drover: " << e << '\n';
  return errors.empty();
}

int validate_command(const std::string& file, const std::vector<std::string>& capabilities,
                     std::ostream& out, std::ostream& err) {
  auto loaded = load_or_report(file, err, warnings::show);
  if (!loaded) return exit_usage;
  warn_about_missing_capabilities(*loaded, capabilities, err);
  out << file << ": ok, " << plural(loaded->size(), "module") << '\n';
  return exit_succeeded;
}

int plan_command(const std::string& file, const selection& chosen,
                 const std::vector<std::string>& capabilities, std::ostream& out,
                 std::ostream& err) {
  auto loaded = load_or_report(file, err);
  if (!loaded) return exit_usage;
  pipeline& p = *loaded;
  if (!select_or_report(p, chosen, err)) return exit_usage;
  warn_about_missing_capabilities(p, capabilities, err);
  auto built = build_graph(p);
  if (!built.ok()) {
    err << format_problems(built.problems);
    return exit_usage;
  }
  const auto waves = built.graph->waves();
  std::size_t number = 0;
  for (const auto& wave : waves) {
    out << "wave " << ++number << ":";
    const char* separator = " ";
    for (auto i : wave) {
      const auto id = p.id(i);
      out << separator << id;
      if (std::any_of(
              chosen.skip_modules.begin(), chosen.skip_modules.end(),
              [&](const std::string& skipped) { return selection_names(p.module(i), skipped); })) {
        out << " (skipped)";
      }
      separator = ", ";
    }
    out << '\n';
  }
  out << plural(p.size(), "module") << " in " << plural(waves.size(), "wave") << '\n';
  return exit_succeeded;
}

int graph_command(const std::string& file, std::string_view format, std::ostream& out,
                  std::ostream& err) {
  if (format != "dot" && format != "mermaid") {
    err << "drover graph: unknown --format '" << format << "' (expected dot or mermaid)\n";
    return exit_usage;
  }
  auto loaded = load_or_report(file, err);
  if (!loaded) return exit_usage;
  if (format == "dot") {
    print_graph_dot(*loaded, out);
  } else {
    print_graph_mermaid(*loaded, out);
  }
  return exit_succeeded;
}

int main_command(int argc, const char* const argv[], std::ostream& out, std::ostream& err) {
  std::vector<std::string> args(argv + std::min(argc, 1), argv + argc);
  if (args.empty()) {
    err << top_usage;
    return exit_usage;
  }
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "-h" || command == "--help" || command == "help") {
    out << top_usage;
    return exit_succeeded;
  }
  if (command == "--version") {
    out << "drover " << version_string << '\n';
    return exit_succeeded;
  }
  if (std::find(command_names.begin(), command_names.end(), command) == command_names.end()) {
    err << "drover: unknown command '" << command << "'";
    if (auto suggestion = closest_match(command, command_names); !suggestion.empty()) {
      err << " (did you mean '" << suggestion << "'?)";
    }
    err << "\nTry 'drover --help'.\n";
    return exit_usage;
  }

  po::options_description options{"Options", 100};
  options.add_options()("help,h", "show this help");
  std::string usage;
  if (command == "run") {
    usage =
        "Usage: drover run FILE [options]\n\n"
        "Runs the pipeline in FILE. Exit code 0 when every selected module succeeded, was\n"
        "skipped or had its failure ignored; 1 when any failed, timed out or was cancelled;\n"
        "2 for usage or pipeline errors; 130 when interrupted. With --listen, remote workers\n"
        "(drover worker --connect HOST:PORT) run modules too; see docs/remote.md. With\n"
        "--coordinator, N instances of this command (CI jobs) share one run through Redis;\n"
        "see docs/redis.md.\n";
    options.add_options()(
        "workers",
        po::value<int>()->default_value(static_cast<int>(hardware_threads()))->value_name("N"),
        "modules that run at once")("keep-going", po::bool_switch(),
                                    "finish every branch that does not depend on a failure")(
        "report", po::value<std::string>()->value_name("FILE"), "write a JSON report to FILE")(
        "events", po::value<std::string>()->value_name("FILE"),
        "write events as JSON Lines to FILE")(
        "log-dir", po::value<std::string>()->value_name("DIR"),
        "directory for per-module logs (default: WORKSPACE/.drover/logs)")(
        "workspace", po::value<std::string>()->value_name("DIR"),
        "where declared outputs land and work directories are made (default: the current "
        "directory)")("keep-workdirs", po::bool_switch(),
                      "leave each attempt's work directory in DIR/.drover/work")(
        "progress", po::value<std::string>()->default_value("auto")->value_name("WHEN"),
        "live progress: auto (on a terminal), always or never")(
        "order", po::value<std::string>()->default_value("critical_path")->value_name("ORDER"),
        "which ready module starts first among equal priorities: critical_path or fifo")(
        "deadline", po::value<std::string>()->value_name("DURATION"),
        "cancel the run when it has taken this long (30m, 2h, 90s): modules still waiting or "
        "running end cancelled with the reason \"deadline exceeded\"")(
        "listen", po::value<std::string>()->value_name("HOST:PORT"),
        "also run modules on remote workers (`drover worker`) that connect here; port 0 picks "
        "one")("token-file", po::value<std::string>()->value_name("F"),
               "workers must present the token in the first line of F (required unless HOST is "
               "loopback)")("heartbeat-ms",
                            po::value<long long>()->default_value(1000)->value_name("N"),
                            "with --listen: heartbeat interval")(
        "lost-worker-timeout-ms", po::value<long long>()->default_value(5000)->value_name("N"),
        "with --listen: a worker silent this long is lost and its modules reassigned")(
        "capability-timeout-ms", po::value<long long>()->default_value(30000)->value_name("N"),
        "with --listen: how long a module waits for a worker with the capabilities it needs")(
        "max-line-bytes", po::value<long long>()->default_value(1 << 20)->value_name("N"),
        "with --listen: the longest protocol line in bytes, either way (1024 to 1073741824)")(
        "max-depth", po::value<long long>()->default_value(32)->value_name("N"),
        "with --listen: the deepest JSON nesting accepted from a worker (32 to 1024)")(
        "max-connections-per-address", po::value<long long>()->default_value(1024)->value_name("N"),
        "with --listen: connections one IP address may hold open; more are closed at once "
        "(0: no limit)")(
        "max-handshakes-per-address", po::value<long long>()->default_value(64)->value_name("N"),
        "with --listen: connections of one IP address that may be in their handshake (no hello "
        "yet) at once; more are closed at once (0: no limit)")(
        "max-worker-losses", po::value<long long>()->default_value(3)->value_name("N"),
        "with --listen: a module whose attempts were on N lost workers fails as poison (1 to "
        "1000)")(
        "journal", po::value<std::string>()->value_name("FILE"),
        "record each module's end in FILE, so that --resume can continue the run after a crash "
        "(with --coordinator: a copy of the journal kept in Redis)")(
        "resume", po::bool_switch(),
        "with --journal: reuse what an earlier run recorded as succeeded")(
        "durability", po::value<std::string>()->default_value("fsync")->value_name("MODE"),
        "with --journal: fsync (each record synced before dependents start) or relaxed")(
        "cache", po::value<std::string>()->value_name("DIR"),
        "reuse results of modules whose fingerprint is unchanged (default: $DROVER_CACHE_DIR)")(
        "no-cache", po::bool_switch(), "use no cached result (new results are still stored)");
    add_coordinator_options(options);
    add_capability_option(options);
    add_selection_options(options);
  } else if (command == "validate") {
    usage =
        "Usage: drover validate FILE [--capability LABEL]...\n\n"
        "Checks FILE and prints every problem in it as file:line:column. Exit code 0 when the\n"
        "pipeline is valid, 2 otherwise. Warns about modules that require a capability the\n"
        "local workers lack, which a local run would skip, and about exec modules with cwd\n"
        "and no inputs, which the cache does not take (docs/caching.md).\n";
    add_capability_option(options);
  } else if (command == "plan") {
    usage =
        "Usage: drover plan FILE [options]\n\n"
        "Prints the waves a run would take: wave 1 has no dependencies, wave k depends only on\n"
        "earlier waves. Runs nothing. Warns about modules that require a capability the local\n"
        "workers lack, which a local run would skip.\n";
    add_capability_option(options);
    add_selection_options(options);
  } else {
    usage =
        "Usage: drover graph FILE [--format dot|mermaid]\n\n"
        "Prints the dependency graph, edges pointing from a dependency to its dependent.\n";
    options.add_options()("format", po::value<std::string>()->default_value("dot")->value_name("F"),
                          "dot (Graphviz) or mermaid");
  }

  auto vm = parse_command(command, args, options, err);
  if (!vm) return exit_usage;
  if (vm->count("help")) {
    out << usage << '\n' << options;
    return exit_succeeded;
  }
  const auto file = (*vm)["file"].as<std::string>();

  if (command == "graph") return graph_command(file, (*vm)["format"].as<std::string>(), out, err);
  const auto capabilities = capabilities_from(*vm, command, err);
  if (!capabilities) return exit_usage;
  if (command == "validate") return validate_command(file, *capabilities, out, err);
  if (command == "plan") return plan_command(file, selection_from(*vm), *capabilities, out, err);

  run_settings settings;
  settings.file = file;
  if (!coordinator_from(*vm, settings, err)) return exit_usage;
  const bool coordinated = !settings.coordinator.url.empty();
  if (coordinated && vm->count("listen")) {
    err << "drover run: --listen cannot be used with --coordinator (workers join through "
           "Redis)\n";
    return exit_usage;
  }
  if (coordinated && (*vm)["resume"].as<bool>()) {
    err << "drover run: --resume cannot be used with --coordinator (a new master always resumes "
           "from the journal in Redis; --journal FILE only keeps a copy)\n";
    return exit_usage;
  }
  if (vm->count("listen") || coordinated) {
    if (vm->count("listen")) {
      const auto listen = parse_listen((*vm)["listen"].as<std::string>());
      if (!listen) {
        err << "drover run: --listen expects HOST:PORT (e.g. 127.0.0.1:7700), got '"
            << (*vm)["listen"].as<std::string>() << "'\n";
        return exit_usage;
      }
      settings.listen_host = listen->first;
      settings.listen_port = listen->second;
    }
    if (vm->count("token-file")) {
      settings.token = read_token_file((*vm)["token-file"].as<std::string>(), err);
      if (!settings.token) return exit_usage;
    }
    struct duration_option {
      const char* name;
      long long least;
      std::chrono::milliseconds* target;
    };
    for (const auto& [name, least, target] :
         {duration_option{"heartbeat-ms", 1, &settings.heartbeat},
          duration_option{"lost-worker-timeout-ms", 1, &settings.lost_worker_timeout},
          duration_option{"capability-timeout-ms", 0, &settings.capability_timeout}}) {
      const long long value = (*vm)[name].as<long long>();
      if (value < least) {
        err << "drover run: --" << name << " must be at least " << least << '\n';
        return exit_usage;
      }
      *target = std::chrono::milliseconds{value};
    }
    // Below 1 KiB a hello with a token may not fit; a line is held in memory whole. Below 32
    // levels the master would refuse lines the protocol allows every worker to send.
    struct limit_option {
      const char* name;
      long long least, most;
      std::size_t* target;
    };
    for (const auto& [name, least, most, target] :
         {limit_option{"max-line-bytes", 1024, 1LL << 30, &settings.max_line_bytes},
          limit_option{"max-depth", 32, 1024, &settings.max_depth},
          limit_option{"max-connections-per-address", 0, 1'000'000,
                       &settings.max_connections_per_address},
          limit_option{"max-handshakes-per-address", 0, 1'000'000,
                       &settings.max_handshakes_per_address},
          limit_option{"max-worker-losses", 1, 255, &settings.max_worker_losses}}) {
      const long long value = (*vm)[name].as<long long>();
      if (value < least || value > most) {
        err << "drover run: --" << name << " must be between " << least << " and " << most
            << ", got " << value << '\n';
        return exit_usage;
      }
      *target = static_cast<std::size_t>(value);
    }
  } else {
    for (const char* name :
         {"token-file", "heartbeat-ms", "lost-worker-timeout-ms", "capability-timeout-ms",
          "max-line-bytes", "max-depth", "max-connections-per-address",
          "max-handshakes-per-address", "max-worker-losses"}) {
      if (vm->count(name) && !(*vm)[name].defaulted()) {
        err << "drover run: --" << name << " needs --listen or --coordinator\n";
        return exit_usage;
      }
    }
  }
  const int workers = (*vm)["workers"].as<int>();
  if (workers < 0 || (workers == 0 && settings.listen_host.empty() && !coordinated)) {
    err << "drover run: --workers must be at least 1 (0, remote workers only, needs --listen "
           "or --coordinator)\n";
    return exit_usage;
  }
  settings.workers = static_cast<std::size_t>(workers);
  settings.keep_going = (*vm)["keep-going"].as<bool>();
  settings.chosen = selection_from(*vm);
  if (vm->count("report")) settings.report_file = (*vm)["report"].as<std::string>();
  if (vm->count("events")) settings.events_file = (*vm)["events"].as<std::string>();
  if (vm->count("log-dir")) settings.log_dir = (*vm)["log-dir"].as<std::string>();
  if (vm->count("workspace")) settings.workspace = (*vm)["workspace"].as<std::string>();
  settings.keep_workdirs = (*vm)["keep-workdirs"].as<bool>();
  const auto progress = (*vm)["progress"].as<std::string>();
  if (progress == "always") {
    settings.live_progress = true;
  } else if (progress == "auto") {
    settings.live_progress = ::isatty(STDOUT_FILENO) == 1;
  } else if (progress != "never") {
    err << "drover run: unknown --progress '" << progress << "' (expected auto, always or never)\n";
    return exit_usage;
  }
  const auto order = (*vm)["order"].as<std::string>();
  if (order == "critical_path") {
    settings.order = ready_order::critical_path;
  } else if (order == "fifo") {
    settings.order = ready_order::fifo;
  } else {
    err << "drover run: unknown --order '" << order << "' (expected critical_path or fifo)\n";
    return exit_usage;
  }
  if (vm->count("deadline")) {
    const auto text = (*vm)["deadline"].as<std::string>();
    std::chrono::milliseconds deadline{};
    if (!parse_duration(text, deadline) || deadline.count() <= 0) {
      err << "drover run: --deadline expects a positive duration such as 90s, 30m or 2h, got '"
          << text << "'\n";
      return exit_usage;
    }
    settings.deadline = deadline;
  }
  if (vm->count("journal")) settings.journal = (*vm)["journal"].as<std::string>();
  settings.resume = (*vm)["resume"].as<bool>();
  if (settings.resume && settings.journal.empty()) {
    err << "drover run: --resume needs --journal FILE\n";
    return exit_usage;
  }
  const auto durability_name = (*vm)["durability"].as<std::string>();
  if (durability_name == "fsync") {
    settings.journal_durability = durability::fsync;
  } else if (durability_name == "relaxed") {
    settings.journal_durability = durability::relaxed;
  } else {
    err << "drover run: unknown --durability '" << durability_name
        << "' (expected fsync or relaxed)\n";
    return exit_usage;
  }
  if (!(*vm)["durability"].defaulted() && settings.journal.empty()) {
    err << "drover run: --durability needs --journal FILE\n";
    return exit_usage;
  }
  if (vm->count("cache")) {
    settings.cache_dir = (*vm)["cache"].as<std::string>();
  } else if (const char* from_env = std::getenv("DROVER_CACHE_DIR"); from_env && *from_env) {
    settings.cache_dir = from_env;
  }
  settings.no_cache = (*vm)["no-cache"].as<bool>();
  settings.capabilities = *capabilities;
  if (coordinated) return coordinated_run_command(settings, out, err);
  return run_command(settings, out, err);
}

}  // namespace drover::app
