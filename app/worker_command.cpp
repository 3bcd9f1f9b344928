#include "worker_command.hpp"

#include "commands.hpp"
#include "pipeline_file.hpp"  // parse_duration

#include <drover/coord/redis_join.hpp>
#include <drover/coord/worker.hpp>
#include <drover/engine.hpp>
#include <drover/modules/registry.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/program_options.hpp>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

namespace drover::app {

namespace po = boost::program_options;
namespace asio = boost::asio;

namespace {

constexpr std::string_view worker_usage =
    "Usage: drover worker --connect HOST:PORT [options]\n"
    "       drover worker --coordinator URL --run-key KEY [options]\n\n"
    "Connects to a master (`drover run FILE --listen HOST:PORT`) and runs the modules it\n"
    "assigns, reconnecting when the connection drops. Exit code 0 when the master ended the\n"
    "run, 1 when the worker gave up or the master refused it, 2 for usage errors, 130 when\n"
    "interrupted. A worker of `drover serve --listen` stays when a run ends and serves the\n"
    "next; it exits 0 when an operator drains it (drover drain). With --coordinator, it\n"
    "reaches the master of a run coordinated through Redis (`drover run --coordinator`,\n"
    "docs/redis.md) instead.\n";

int usage_error(std::ostream& err, const std::string& problem) {
  err << "drover worker: " << problem << "\nTry 'drover worker --help'.\n";
  return exit_usage;
}

// --coordinator URL --run-key KEY: the worker reaches its master through Redis.
bool redis_dial_from(const po::variables_map& vm, coord::worker_options& settings,
                     std::string& problem) {
  if (!vm.count("run-key")) {
    problem = "--coordinator needs --run-key KEY";
    return false;
  }
  const std::string key = vm["run-key"].as<std::string>();
  try {
    coord::redis_join_options join;
    join.where = coord::parse_redis_url(vm["coordinator"].as<std::string>());
    if (vm.count("keep-for")) {
      const auto text = vm["keep-for"].as<std::string>();
      if (!parse_duration(text, join.keep_for) || join.keep_for.count() <= 0) {
        problem = "--keep-for expects a positive duration such as 90s or 1h, got '" + text + "'";
        return false;
      }
    }
    if (vm.count("coordinator-password-file")) {
      join.password = coord::read_redis_password(vm["coordinator-password-file"].as<std::string>());
    }
    settings.dial_name = join.where.url() + " (run " + key + ")";
    settings.dial = coord::redis_dialer(std::move(join), coord::run_keys{key},
                                        "worker " + coord::default_worker_id());
  } catch (const std::exception& e) {
    problem = e.what();
    return false;
  }
  return true;
}

}  // namespace

int worker_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description options{"Options", 100};
  const std::string capability_text = "a label this worker offers besides its OS label (" +
                                      std::string{local_os_label()} + "); repeatable";
  options.add_options()("help,h", "show this help")(
      "connect", po::value<std::string>()->value_name("HOST:PORT"),
      "the master's address, as given to `drover run --listen`")(
      "coordinator", po::value<std::string>()->value_name("URL"),
      "instead of --connect: the Redis of a coordinated run, redis://[USER@]HOST[:PORT][/DB]")(
      "run-key", po::value<std::string>()->value_name("KEY"), "with --coordinator: the run")(
      "coordinator-password-file", po::value<std::string>()->value_name("FILE"),
      "with --coordinator: the Redis password")(
      "keep-for", po::value<std::string>()->value_name("DURATION"),
      "with --coordinator: how long this worker's connection keys stay in Redis after its "
      "last write (default 1h)")("slots", po::value<long long>()->default_value(1)->value_name("N"),
                                 "modules this worker runs at once (N >= 1)")(
      "capability", po::value<std::vector<std::string>>()->composing()->value_name("LABEL"),
      capability_text.c_str())("token-file", po::value<std::string>()->value_name("FILE"),
                               "read the master's token from the first line of FILE")(
      "id", po::value<std::string>()->value_name("NAME"),
      "the name to ask the master for (default: host name and process id)")(
      "give-up-after-ms", po::value<long long>()->default_value(60000)->value_name("N"),
      "exit with code 1 after N ms without a connection to the master")(
      "workspace", po::value<std::string>()->value_name("DIR"),
      "where declared outputs land and work directories are made (default: the current "
      "directory)")("keep-workdirs", po::bool_switch(),
                    "leave each attempt's work directory in DIR/.drover/work");

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(err, e.what());
  }
  if (vm.count("help")) {
    out << worker_usage << '\n' << options;
    return exit_succeeded;
  }
  if (vm.count("connect") == vm.count("coordinator")) {
    return usage_error(err, "give either --connect HOST:PORT or --coordinator URL");
  }

  coord::worker_options settings;
  std::string problem;
  if (vm.count("connect")) {
    for (const char* flag : {"run-key", "coordinator-password-file", "keep-for"}) {
      if (vm.count(flag))
        return usage_error(err, "--" + std::string{flag} + " needs --coordinator");
    }
    auto address = parse_host_port(vm["connect"].as<std::string>(), problem);
    if (!address) return usage_error(err, problem);
    settings.host = address->host;
    settings.port = address->port;
  } else if (!redis_dial_from(vm, settings, problem)) {
    return usage_error(err, problem);
  }

  const long long slots = vm["slots"].as<long long>();
  if (slots < 1 || slots > 4294967295LL) {
    return usage_error(err, "--slots must be from 1 to 4294967295, got " + std::to_string(slots));
  }
  settings.slots = static_cast<std::uint32_t>(slots);

  if (vm.count("capability")) {
    settings.capabilities = vm["capability"].as<std::vector<std::string>>();
    for (const auto& label : settings.capabilities) {
      if (label.empty()) return usage_error(err, "--capability needs a non-empty label");
    }
  }
  if (vm.count("token-file")) {
    auto token = read_token_file(vm["token-file"].as<std::string>(), problem);
    if (!token) return usage_error(err, problem);
    settings.token = std::move(*token);
  }
  if (vm.count("id")) {
    settings.worker_id = vm["id"].as<std::string>();
    if (settings.worker_id.empty()) return usage_error(err, "--id needs a non-empty name");
  }
  const long long give_up_ms = vm["give-up-after-ms"].as<long long>();
  if (give_up_ms < 0) return usage_error(err, "--give-up-after-ms must be >= 0");
  settings.give_up_after = std::chrono::milliseconds(give_up_ms);
  if (vm.count("workspace")) {
    settings.workspace = vm["workspace"].as<std::string>();
    std::error_code ec;
    if (!std::filesystem::is_directory(settings.workspace, ec)) {
      return usage_error(err,
                         "--workspace '" + settings.workspace.string() + "' is not a directory");
    }
  }
  settings.keep_workdirs = vm["keep-workdirs"].as<bool>();
  settings.on_log = [&err](std::string_view line) {
    err << "drover worker: " << line << std::endl;
  };

  asio::io_context io;
  const modules::registry kinds = modules::builtin_registry();
  coord::worker_client worker{
      io.get_executor(), std::move(settings),
      [&kinds](std::string_view kind, const boost::json::value& params) -> module_body {
        if (!kinds.contains(kind)) return {};
        return kinds.make(kind, params);
      }};

  // The signal set and the outcome are touched only on this strand.
  auto control = asio::make_strand(io);
  asio::signal_set signals{control, SIGINT, SIGTERM};
  std::optional<coord::worker_outcome> outcome;
  bool interrupted = false;
  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec,
                                                                      int signal_number) {
    if (ec || outcome) return;
    if (interrupted) std::_Exit(exit_interrupted);
    interrupted = true;
    const std::string name = signal_number == SIGINT ? "SIGINT" : "SIGTERM";
    err << "drover worker: interrupted by " << name
        << ", stopping (interrupt again to exit at once)" << std::endl;
    worker.stop("interrupted by " + name);
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  worker.async_run(asio::bind_executor(control, [&](coord::worker_outcome result) {
    outcome = std::move(result);
    signals.cancel();
  }));
  io.run();

  if (!outcome) {
    err << "drover worker: error: stopped without an outcome\n";
    return exit_failed;
  }
  switch (outcome->how) {
    case coord::worker_outcome::kind::run_over:
      err << "drover worker: the master ended the run (" << outcome->reason << ")\n";
      return exit_succeeded;
    case coord::worker_outcome::kind::drained:
      err << "drover worker: " << outcome->reason << "\n";
      return exit_succeeded;
    case coord::worker_outcome::kind::gave_up:
      err << "drover worker: gave up: " << outcome->reason << "\n";
      return exit_failed;
    case coord::worker_outcome::kind::refused:
      err << "drover worker: " << outcome->reason << "\n";
      return exit_failed;
    case coord::worker_outcome::kind::stopped:
      return exit_interrupted;
  }
  return exit_failed;
}

}  // namespace drover::app
