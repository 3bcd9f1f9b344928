// The command-line options of a coordinated run (coordinated_run.hpp).
#include "coordinated_run.hpp"

#include "pipeline_file.hpp"  // parse_duration

#include <drover/coord/redis.hpp>
#include <drover/coord/redis_lease.hpp>

#include <boost/program_options.hpp>

#include <cstdlib>

namespace drover::app {

namespace po = boost::program_options;

void add_coordinator_options(po::options_description& options) {
  options.add_options()(
      "coordinator", po::value<std::string>()->value_name("URL"),
      "run over several instances that meet in the Redis at redis://[USER@]HOST[:PORT][/DB] "
      "(docs/redis.md); also $DROVER_COORDINATOR")(
      "run-key", po::value<std::string>()->value_name("KEY"),
      "with --coordinator: names the run, the same in every instance; also $DROVER_RUN_KEY "
      "(default: from $GITHUB_RUN_ID and $GITHUB_RUN_ATTEMPT, or $CI_PIPELINE_ID)")(
      "instance", po::value<long long>()->value_name("I"),
      "with --coordinator: this instance's index, 0 to N-1; also $DROVER_INSTANCE")(
      "total", po::value<long long>()->value_name("N"),
      "with --coordinator: how many instances run; also $DROVER_TOTAL")(
      "coordinator-password-file", po::value<std::string>()->value_name("FILE"),
      "with --coordinator: the Redis password (for USER, if the URL names one)")(
      "coordinator-timeout", po::value<std::string>()->value_name("DURATION"),
      "with --coordinator: how long Redis or the master may be unreachable before the run "
      "fails (default 60s)")("keep-for", po::value<std::string>()->value_name("DURATION"),
                             "with --coordinator: how long the run's keys stay in Redis after it "
                             "ends (default 1h)")(
      "lease-ttl", po::value<std::string>()->value_name("DURATION"),
      "with --coordinator: the master lease's time to live; a dead master is replaced within "
      "about this long (default 10s)");
}

namespace {

// The flag's value, else the environment variable's, else nothing.
std::optional<std::string> flag_or_env(const po::variables_map& vm, const char* flag,
                                       const char* variable) {
  if (vm.count(flag)) return vm[flag].as<std::string>();
  if (const char* value = std::getenv(variable); value && *value) return std::string{value};
  return std::nullopt;
}

std::optional<long long> number_flag_or_env(const po::variables_map& vm, const char* flag,
                                            const char* variable, std::ostream& err) {
  if (vm.count(flag)) return vm[flag].as<long long>();
  const char* value = std::getenv(variable);
  if (!value || !*value) return std::nullopt;
  char* end = nullptr;
  const long long n = std::strtoll(value, &end, 10);
  if (*end != '\0') {
    err << "drover run: $" << variable << " must be a number, got '" << value << "'\n";
    return -1;
  }
  return n;
}

// The run key CI gives every job of one workflow run, when it gives one.
std::optional<std::string> run_key_from_ci() {
  const char* github = std::getenv("GITHUB_RUN_ID");
  if (github && *github) {
    const char* attempt = std::getenv("GITHUB_RUN_ATTEMPT");
    return "gh-" + std::string{github} + "-" + (attempt && *attempt ? attempt : "1");
  }
  if (const char* gitlab = std::getenv("CI_PIPELINE_ID"); gitlab && *gitlab) {
    return "gl-" + std::string{gitlab};
  }
  return std::nullopt;
}

bool duration_flag(const po::variables_map& vm, const char* flag, std::chrono::milliseconds& out,
                   std::ostream& err) {
  if (!vm.count(flag)) return true;
  const auto text = vm[flag].as<std::string>();
  if (!parse_duration(text, out) || out.count() <= 0) {
    err << "drover run: --" << flag
        << " expects a positive duration such as 500ms, 60s or 1h, got '" << text << "'\n";
    return false;
  }
  return true;
}

}  // namespace

bool coordinator_from(const po::variables_map& vm, run_settings& settings, std::ostream& err) {
  auto& c = settings.coordinator;
  const auto url = flag_or_env(vm, "coordinator", "DROVER_COORDINATOR");
  if (!url) {
    for (const char* flag : {"run-key", "instance", "total", "coordinator-password-file",
                             "coordinator-timeout", "keep-for", "lease-ttl"}) {
      if (vm.count(flag)) {
        err << "drover run: --" << flag << " needs --coordinator\n";
        return false;
      }
    }
    return true;
  }
  c.url = *url;
  try {
    (void)coord::parse_redis_url(c.url);
  } catch (const std::invalid_argument& e) {
    err << "drover run: --coordinator: " << e.what() << '\n';
    return false;
  }
  auto key = flag_or_env(vm, "run-key", "DROVER_RUN_KEY");
  if (!key) key = run_key_from_ci();
  if (!key) {
    err << "drover run: --coordinator needs --run-key KEY (or $DROVER_RUN_KEY), the same in "
           "every instance\n";
    return false;
  }
  try {
    (void)coord::run_keys{*key};
  } catch (const std::invalid_argument& e) {
    err << "drover run: --run-key: " << e.what() << '\n';
    return false;
  }
  c.run_key = *key;
  const auto total = number_flag_or_env(vm, "total", "DROVER_TOTAL", err).value_or(1);
  const auto instance = number_flag_or_env(vm, "instance", "DROVER_INSTANCE", err).value_or(0);
  if (total < 1 || total > 100000) {
    err << "drover run: --total must be from 1 to 100000, got " << total << '\n';
    return false;
  }
  if (instance < 0 || instance >= total) {
    err << "drover run: --instance must be from 0 to " << total - 1 << " (--total " << total
        << "), got " << instance << '\n';
    return false;
  }
  c.total = static_cast<std::uint32_t>(total);
  c.instance = static_cast<std::uint32_t>(instance);
  if (vm.count("coordinator-password-file")) {
    try {
      c.password = coord::read_redis_password(vm["coordinator-password-file"].as<std::string>());
    } catch (const std::exception& e) {
      err << "drover run: --coordinator-password-file: " << e.what() << '\n';
      return false;
    }
  }
  return duration_flag(vm, "coordinator-timeout", c.timeout, err) &&
         duration_flag(vm, "keep-for", c.keep_for, err) &&
         duration_flag(vm, "lease-ttl", c.lease_ttl, err);
}

}  // namespace drover::app
