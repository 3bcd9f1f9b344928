// `drover serve`: a run_service and its http_service on one io_context, until a signal.

#include "commands.hpp"
#include "pipeline_file.hpp"
#include "service_command.hpp"

#include <drover/coord/http_service.hpp>
#include <drover/coord/service.hpp>
#include <drover/modules/registry.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <sstream>
#include <thread>

namespace drover::app {

namespace po = boost::program_options;
namespace asio = boost::asio;

coord::parsed_pipeline parse_submission(std::string_view text, const std::string& name) {
  coord::parsed_pipeline out;
  const auto stem = std::filesystem::path(name).stem().string();
  auto loaded = parse_pipeline(text, modules::builtin_registry(), stem.empty() ? name : stem);
  if (loaded.ok()) {
    out.pipeline = std::move(loaded.pipeline);
    return out;
  }
  for (const auto& problem : loaded.problems)
    out.problems += format_problem(name, problem) + "\n";
  return out;
}

void add_serve_options(po::options_description& options) {
  const auto threads = std::max<unsigned>(std::thread::hardware_concurrency(), 1);
  options.add_options()(
      "http", po::value<std::string>()->default_value("127.0.0.1:8080")->value_name("HOST:PORT"),
      "serve the HTTP API, metrics and dashboard here; port 0 picks one")(
      "listen", po::value<std::string>()->value_name("HOST:PORT"),
      "also let remote workers (drover worker --connect HOST:PORT) attach here; they stay "
      "between runs and are shared by the runs; port 0 picks one")(
      "token-file", po::value<std::string>()->value_name("F"),
      "clients and workers must send the token in the first line of F (required unless "
      "both addresses are loopback)")(
      "state", po::value<std::string>()->value_name("DIR"),
      "keep every run's pipeline, journal, logs and report in DIR; unfinished runs resume when "
      "the service starts again")(
      "workers", po::value<int>()->default_value(static_cast<int>(threads))->value_name("N"),
      "in-process worker slots shared by all runs (0: remote workers only, needs --listen)")(
      "capability", po::value<std::vector<std::string>>()->composing()->value_name("LABEL"),
      "a label of the in-process workers besides their OS label; repeatable")(
      "max-running-runs", po::value<int>()->default_value(4)->value_name("N"),
      "runs executing at once, sharing the in-process slots by demand; the rest wait in order")(
      "max-queued-runs", po::value<int>()->default_value(100)->value_name("N"),
      "runs waiting to start; past it a submission gets 429 queue full")(
      "max-waiting-modules", po::value<int>()->default_value(100000)->value_name("N"),
      "unfinished modules of queued and running runs; past it a submission gets 429")(
      "workspace", po::value<std::string>()->value_name("DIR"),
      "where modules read inputs and write outputs (default: the current directory)")(
      "durability", po::value<std::string>()->default_value("fsync")->value_name("MODE"),
      "with --state: journal records fsync'd (fsync) or not (relaxed)")(
      "max-request-bytes", po::value<int>()->default_value(8 << 20)->value_name("N"),
      "the largest request body (a submitted pipeline file) in bytes")(
      "max-handshakes-per-address", po::value<int>()->default_value(64)->value_name("N"),
      "with --listen: connections of one IP address that may wait for their hello at once; "
      "more are closed at once (0: no limit)");
}

int serve_command(const po::variables_map& vm, std::ostream& out, std::ostream& err) {
  (void)out;
  const auto http_text = vm["http"].as<std::string>();
  const auto http_address = parse_listen(http_text);
  if (!http_address) {
    err << "drover serve: --http expects HOST:PORT (e.g. 127.0.0.1:8080), got '" << http_text
        << "'\n";
    return exit_usage;
  }
  coord::http_options http_options;
  http_options.address = http_address->first;
  http_options.port = http_address->second;
  if (vm.count("token-file")) {
    http_options.token = read_token_file(vm["token-file"].as<std::string>(), err, "serve");
    if (!http_options.token) return exit_usage;
  }
  coord::service_options options;
  if (vm.count("listen")) {
    const auto listen_text = vm["listen"].as<std::string>();
    const auto listen = parse_listen(listen_text);
    if (!listen) {
      err << "drover serve: --listen expects HOST:PORT (e.g. 127.0.0.1:7700), got '" << listen_text
          << "'\n";
      return exit_usage;
    }
    options.worker_address = listen->first;
    options.worker_port = listen->second;
    options.worker_token = http_options.token;
  }
  struct count_option {
    const char* name;
    int least;
  };
  for (const auto& [name, least] :
       {count_option{"workers", vm.count("listen") ? 0 : 1}, count_option{"max-running-runs", 1},
        count_option{"max-queued-runs", 0}, count_option{"max-waiting-modules", 1},
        count_option{"max-request-bytes", 1024}, count_option{"max-handshakes-per-address", 0}}) {
    if (vm[name].as<int>() < least) {
      err << "drover serve: --" << name << " must be at least " << least << '\n';
      return exit_usage;
    }
  }
  http_options.max_body_bytes = static_cast<std::size_t>(vm["max-request-bytes"].as<int>());
  http_options.log = [&err](std::string_view line) { err << "drover: " << line << std::endl; };

  options.parse = parse_submission;
  options.workers = static_cast<std::size_t>(vm["workers"].as<int>());
  options.max_running_runs = static_cast<std::size_t>(vm["max-running-runs"].as<int>());
  options.max_queued_runs = static_cast<std::size_t>(vm["max-queued-runs"].as<int>());
  options.max_waiting_modules = static_cast<std::size_t>(vm["max-waiting-modules"].as<int>());
  options.max_handshakes_per_address =
      static_cast<std::size_t>(vm["max-handshakes-per-address"].as<int>());
  if (vm.count("capability"))
    options.capabilities = vm["capability"].as<std::vector<std::string>>();
  if (vm.count("state")) options.state_dir = vm["state"].as<std::string>();
  if (vm.count("workspace")) options.workspace = vm["workspace"].as<std::string>();
  const auto durability_name = vm["durability"].as<std::string>();
  if (durability_name == "relaxed") {
    options.journal_durability = durability::relaxed;
  } else if (durability_name != "fsync") {
    err << "drover serve: unknown --durability '" << durability_name
        << "' (expected fsync or relaxed)\n";
    return exit_usage;
  }
  options.log = [&err](std::string_view line) { err << "drover: " << line << std::endl; };

  std::signal(SIGPIPE, SIG_IGN);
  asio::io_context io;
  coord::run_service service(io.get_executor(), std::move(options));
  coord::http_service http(io.get_executor(), service, std::move(http_options));
  try {
    // The port first: a service that cannot serve must not resume runs nobody can watch.
    const auto bound = http.listen();
    service.start();
    if (vm.count("listen")) {
      const auto workers = service.worker_endpoint();
      err << "drover: workers connect to " << workers.address().to_string() << ':' << workers.port()
          << std::endl;
    }
    const auto address = bound.address().to_string();
    err << "drover: http listening on " << (bound.address().is_v6() ? "[" + address + "]" : address)
        << ':' << bound.port() << std::endl;
  } catch (const std::exception& e) {
    err << "drover serve: " << e.what() << '\n';
    return exit_usage;
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    err << "drover: " << (signal == SIGINT ? "SIGINT" : "SIGTERM")
        << ": stopping; unfinished runs resume at the next start" << std::endl;
    http.stop();
    service.stop();
  });
  io.run();
  return exit_succeeded;
}

}  // namespace drover::app
