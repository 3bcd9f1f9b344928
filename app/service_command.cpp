#include "service_command.hpp"

#include "arguments.hpp"
#include "commands.hpp"
#include "pipeline_file.hpp"
#include "service_client.hpp"

#include <drover/coord/http_service.hpp>
#include <drover/coord/service.hpp>
#include <drover/modules/registry.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

namespace drover::app {

namespace po = boost::program_options;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr int exit_unavailable = 69;  // EX_UNAVAILABLE: the service cannot be reached
constexpr int exit_queue_full = 75;   // EX_TEMPFAIL: try again later
constexpr int exit_wait_timeout = 124;

const std::vector<std::string_view> service_commands{"serve",  "submit",  "status", "wait",
                                                     "cancel", "workers", "drain"};

std::string usage_of(std::string_view command) {
  if (command == "serve") {
    return "Usage: drover serve [options]\n\n"
           "Runs a long-lived service that takes pipeline submissions (drover submit, or POST\n"
           "/api/runs), runs several at once on its in-process workers (and, with --listen,\n"
           "on remote workers that stay between runs) and shows them over\n"
           "HTTP: a JSON API, Server-Sent Events, Prometheus metrics at /metrics and a\n"
           "dashboard at /. SIGINT or SIGTERM stops it; with --state, unfinished runs resume\n"
           "when it starts again. See docs/service.md.\n";
  }
  if (command == "submit") {
    return "Usage: drover submit FILE [--to HOST:PORT]\n\n"
           "Submits the pipeline in FILE to drover serve and prints the run's id. Exit code 0\n"
           "when accepted, 2 when the pipeline is invalid, 75 when the service's queue is full,\n"
           "69 when the service cannot be reached.\n";
  }
  if (command == "status") {
    return "Usage: drover status [RUN] [--to HOST:PORT] [--json]\n\n"
           "Lists every run the service knows, or shows one run and its modules.\n";
  }
  if (command == "wait") {
    return "Usage: drover wait RUN [--timeout SECONDS] [--to HOST:PORT]\n\n"
           "Waits until the run finishes. Exit code as drover run's: 0 succeeded, 1 failed,\n"
           "130 cancelled; 2 when there is no such run, 124 when --timeout passed first. It\n"
           "keeps trying while the service restarts.\n";
  }
  if (command == "cancel") {
    return "Usage: drover cancel RUN [--to HOST:PORT]\n\n"
           "Cancels a queued or running run. Exit code 1 when it had already finished, 2 when\n"
           "there is no such run.\n";
  }
  if (command == "workers") {
    return "Usage: drover workers [--to HOST:PORT] [--json]\n\n"
           "Lists the service's workers with their capabilities, slots, current attempts and\n"
           "utilisation.\n";
  }
  return "Usage: drover drain WORKER [--to HOST:PORT]\n\n"
         "Lets a remote worker of the service (drover serve --listen) finish its attempts,\n"
         "gives it nothing new, then lets it go: it exits 0. Exit code 2 when no connected\n"
         "remote worker has that name (in-process workers cannot be drained).\n";
}

std::string default_address() {
  const char* from_env = std::getenv("DROVER_SERVICE");
  return from_env && *from_env ? from_env : "127.0.0.1:8080";
}

// Resolves --to and --token-file; nothing (after saying why) when either is bad.
std::optional<service_address> address_from(const po::variables_map& vm, const std::string& command,
                                            std::ostream& err) {
  const auto text = vm["to"].as<std::string>();
  auto parsed = parse_listen(text);
  if (!parsed) {
    err << "drover " << command << ": --to expects HOST:PORT (e.g. 127.0.0.1:8080), got '" << text
        << "'\n";
    return std::nullopt;
  }
  service_address to;
  to.host = parsed->first;
  to.port = parsed->second;
  if (vm.count("token-file")) {
    to.token = read_token_file(vm["token-file"].as<std::string>(), err, command);
    if (!to.token) return std::nullopt;
  }
  return to;
}

std::string error_of(const http_reply& reply) {
  std::error_code ignored;
  boost::system::error_code ec;
  auto value = json::parse(reply.body, ec);
  if (!ec && value.is_object()) {
    if (const auto* e = value.get_object().if_contains("error"); e && e->is_string())
      return std::string(e->get_string());
  }
  return "HTTP " + std::to_string(reply.status);
}

std::string text_of(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_null()) return "-";
  return json::serialize(v);
}

std::string done_of(const json::object& run) {
  std::int64_t done = 0;
  if (const auto* counts = run.if_contains("counts"); counts && counts->is_object()) {
    for (const auto& [status, count] : counts->get_object()) {
      if (status != "pending" && status != "ready" && status != "running" && count.is_int64())
        done += count.get_int64();
    }
  }
  return std::to_string(done) + "/" + text_of(run.at("total"));
}

void print_run(std::ostream& out, const json::object& run) {
  out << "run " << text_of(run.at("run")) << " (" << text_of(run.at("name"))
      << "): " << text_of(run.at("status")) << ", " << done_of(run) << " modules done\n";
  const auto* modules = run.if_contains("modules");
  if (!modules || !modules->is_array()) return;
  for (const auto& entry : modules->get_array()) {
    const auto& m = entry.get_object();
    out << "  " << std::left << std::setw(24) << text_of(m.at("id")) << ' ' << std::setw(16)
        << text_of(m.at("status")) << " attempts " << text_of(m.at("attempts")) << "  "
        << text_of(m.at("worker")) << '\n';
  }
  for (const auto& entry : modules->get_array()) {
    const auto& m = entry.get_object();
    const auto status = text_of(m.at("status"));
    if ((status == "failed" || status == "timed_out") && m.at("reason").is_string()) {
      out << "\n"
          << text_of(m.at("id")) << " " << status << ":\n"
          << text_of(m.at("reason")) << '\n';
    }
  }
}

std::optional<json::object> object_of(const http_reply& reply) {
  boost::system::error_code ec;
  auto value = json::parse(reply.body, ec);
  if (ec || !value.is_object()) return std::nullopt;
  return std::move(value.get_object());
}

int submit(const service_address& to, const std::string& file, std::ostream& out,
           std::ostream& err) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    err << "drover submit: cannot read '" << file << "'\n";
    return exit_usage;
  }
  std::ostringstream text;
  text << in.rdbuf();
  const auto name = std::filesystem::path(file).filename().string();
  std::string encoded;
  for (unsigned char c : name) {
    static constexpr char hex[] = "0123456789ABCDEF";
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_') {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += hex[c >> 4];
      encoded += hex[c & 15];
    }
  }
  const auto reply = http_call(to, "POST", "/api/runs?name=" + encoded, text.str());
  if (reply.status == 202) {
    auto body = object_of(reply);
    out << (body ? text_of(body->at("run")) : reply.body) << '\n';
    return exit_succeeded;
  }
  err << "drover submit: " << error_of(reply) << '\n';
  if (reply.status == 429) {
    err << "drover submit: try again in " << reply.retry_after << " s\n";
    return exit_queue_full;
  }
  return reply.status == 400 ? exit_usage : exit_failed;
}

int wait_for(const service_address& to, const std::string& run, std::optional<double> timeout,
             std::ostream& out, std::ostream& err) {
  const auto start = std::chrono::steady_clock::now();
  auto unreachable_since = std::optional<std::chrono::steady_clock::time_point>{};
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (timeout && std::chrono::duration<double>(now - start).count() >= *timeout) {
      err << "drover wait: run " << run << " has not finished after " << *timeout << " s\n";
      return exit_wait_timeout;
    }
    try {
      const auto reply = http_call(to, "GET", "/api/runs/" + run, {}, std::chrono::seconds{10});
      unreachable_since.reset();
      if (reply.status == 404) {
        err << "drover wait: " << error_of(reply) << '\n';
        return exit_usage;
      }
      auto body = object_of(reply);
      if (reply.status != 200 || !body) {
        err << "drover wait: " << error_of(reply) << '\n';
        return exit_failed;
      }
      const auto status = text_of(body->at("status"));
      if (status == "succeeded" || status == "failed" || status == "cancelled") {
        out << "run " << run << ": " << status << ", " << done_of(*body) << " modules done\n";
        if (status == "succeeded") return exit_succeeded;
        return status == "cancelled" ? exit_interrupted : exit_failed;
      }
    } catch (const service_unreachable& e) {
      // A service that restarts is unreachable for a moment; one that stays away is reported.
      if (!unreachable_since) unreachable_since = now;
      if (!timeout && now - *unreachable_since > std::chrono::seconds{60}) {
        err << "drover wait: " << e.what() << " (for 60 s)\n";
        return exit_unavailable;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{200});
  }
}

int simple_call(const service_address& to, const std::string& command, const std::string& method,
                const std::string& target, bool as_json, std::ostream& out, std::ostream& err) {
  const auto reply = http_call(to, method, target);
  if (reply.status >= 300) {
    err << "drover " << command << ": " << error_of(reply) << '\n';
    return reply.status == 404 ? exit_usage : exit_failed;
  }
  auto body = object_of(reply);
  if (as_json || !body) {
    out << reply.body;
    return exit_succeeded;
  }
  if (command == "status" && body->contains("runs")) {
    for (const auto& run : body->at("runs").get_array()) {
      const auto& r = run.get_object();
      out << std::left << std::setw(16) << text_of(r.at("run")) << ' ' << std::setw(24)
          << text_of(r.at("name")) << ' ' << std::setw(12) << text_of(r.at("status")) << ' '
          << done_of(r) << '\n';
    }
  } else if (command == "status") {
    print_run(out, *body);
  } else if (command == "workers") {
    for (const auto& worker : body->at("workers").get_array()) {
      const auto& w = worker.get_object();
      const double utilisation = w.at("utilisation").to_number<double>();
      out << std::left << std::setw(16) << text_of(w.at("name")) << ' ' << text_of(w.at("kind"))
          << "  busy " << text_of(w.at("busy")) << "/" << text_of(w.at("slots")) << "  "
          << std::fixed << std::setprecision(0) << utilisation * 100 << "% used  "
          << text_of(w.at("capabilities")) << '\n';
      for (const auto& a : w.at("attempts").get_array()) {
        out << "  " << text_of(a.at("run")) << ' ' << text_of(a.at("module")) << " attempt "
            << text_of(a.at("attempt")) << '\n';
      }
    }
  } else {
    out << reply.body;
  }
  return exit_succeeded;
}

}  // namespace

bool is_service_command(std::string_view name) {
  return std::find(service_commands.begin(), service_commands.end(), name) !=
         service_commands.end();
}

int service_command(const std::string& command, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err) {
  po::options_description options{"Options", 100};
  options.add_options()("help,h", "show this help");
  if (command == "serve") {
    add_serve_options(options);
  } else {
    options.add_options()(
        "to", po::value<std::string>()->default_value(default_address())->value_name("HOST:PORT"),
        "the service's --http address (default: $DROVER_SERVICE, else "
        "127.0.0.1:8080)")("token-file", po::value<std::string>()->value_name("F"),
                           "send the token in the first line of F (needed off loopback)");
    if (command == "status" || command == "workers") {
      options.add_options()("json", po::bool_switch(), "print the service's JSON as it is");
    }
    if (command == "wait") {
      options.add_options()("timeout", po::value<double>()->value_name("SECONDS"),
                            "give up (exit 124) after this long");
    }
  }
  const auto parsed = parse_arguments(command, args, options, "target", err);
  if (!parsed) return exit_usage;
  const po::variables_map& vm = *parsed;
  if (vm.count("help")) {
    out << usage_of(command) << '\n' << options;
    return exit_succeeded;
  }
  if (command == "serve") return serve_command(vm, out, err);

  const bool needs_target = command != "status" && command != "workers";
  if (needs_target && !vm.count("target")) {
    err << "drover " << command << ": missing the "
        << (command == "submit"  ? "pipeline FILE"
            : command == "drain" ? "WORKER"
                                 : "RUN")
        << "\nTry 'drover " << command << " --help'.\n";
    return exit_usage;
  }
  if (!needs_target && vm.count("target") && command == "workers") {
    err << "drover workers: takes no argument\n";
    return exit_usage;
  }
  const auto to = address_from(vm, command, err);
  if (!to) return exit_usage;
  const std::string target = vm.count("target") ? vm["target"].as<std::string>() : "";
  const bool as_json = vm.count("json") && vm["json"].as<bool>();
  try {
    if (command == "submit") return submit(*to, target, out, err);
    if (command == "wait") {
      std::optional<double> timeout;
      if (vm.count("timeout")) timeout = vm["timeout"].as<double>();
      return wait_for(*to, target, timeout, out, err);
    }
    if (command == "status") {
      return simple_call(*to, command, "GET", target.empty() ? "/api/runs" : "/api/runs/" + target,
                         as_json, out, err);
    }
    if (command == "cancel") {
      return simple_call(*to, command, "POST", "/api/runs/" + target + "/cancel", true, out, err);
    }
    if (command == "workers")
      return simple_call(*to, command, "GET", "/api/workers", as_json, out, err);
    return simple_call(*to, command, "POST", "/api/workers/" + target + "/drain", true, out, err);
  } catch (const service_unreachable& e) {
    err << "drover " << command << ": " << e.what() << '\n';
    return exit_unavailable;
  }
}

}  // namespace drover::app
