#include <drover/coord/worker.hpp>

#define BOOST_TEST_MODULE worker
#include <drover/context.hpp>
#include <drover/coord/framing.hpp>
#include <drover/coord/protocol.hpp>
#include <drover/engine.hpp>
#include <drover/modules/registry.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace drover {
// Lets Boost.Test print statuses in failed checks.
std::ostream& boost_test_print_type(std::ostream& out, module_status status) {
  return out << to_string(status);
}
}  // namespace drover

namespace {

namespace asio = boost::asio;
namespace coord = drover::coord;
namespace json = boost::json;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;
using asio::experimental::awaitable_operators::operator||;

// --- module kinds only the tests have -----------------------------------------------------

// Returns what its body can see of dependency params.dep (or of its matrix target).
drover::module_body make_inspect(const json::value&) {
  return [](drover::module_context& ctx) -> asio::awaitable<json::value> {
    json::object out;
    const json::value* dep =
        ctx.params().is_object() ? ctx.params().as_object().if_contains("dep") : nullptr;
    if (dep != nullptr && dep->is_string()) {
      const std::string_view name = dep->as_string();
      out["value"] = ctx.result(name);
      out["status"] = json::string(drover::to_string(ctx.status_of(name)));
    }
    out["matrix_target"] = json::string(ctx.matrix_target());
    out["os"] = json::string(ctx.matrix_value("os"));
    out["params"] = ctx.params();
    co_return out;
  };
}

drover::modules::registry test_kinds() {
  drover::modules::registry kinds = drover::modules::builtin_registry();
  kinds.add("inspect", make_inspect);
  return kinds;
}

coord::kind_resolver resolver_for(const drover::modules::registry& kinds) {
  return [&kinds](std::string_view kind, const json::value& params) -> drover::module_body {
    if (!kinds.contains(kind)) return {};
    return kinds.make(kind, params);
  };
}

// --- the fake master ----------------------------------------------------------------------

// What the fake master read from the worker.
struct received {
  enum class what { message, closed, timeout };
  what kind = what::timeout;
  coord::message msg;
};

// The master's end of one connection.
struct master_side {
  explicit master_side(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  coord::line_splitter splitter{coord::default_max_line_bytes};

  asio::awaitable<received> receive_any(steady::duration timeout = 5s) {
    asio::steady_timer timer(socket.get_executor(), timeout);
    auto first = co_await (coord::read_line(socket, splitter) ||
                           timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (first.index() == 1) co_return received{};
    const coord::read_outcome& in = std::get<0>(first);
    if (!in.ok()) co_return received{received::what::closed, {}};
    coord::decode_result decoded = coord::decode(in.line);
    if (!decoded.ok()) {
      throw std::runtime_error("the worker sent an invalid line: " + decoded.error().message);
    }
    co_return received{received::what::message, std::move(decoded).value()};
  }

  // The next message that is not a heartbeat; throws when none comes in time.
  asio::awaitable<coord::message> receive(steady::duration timeout = 5s) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      const auto left = deadline - steady::now();
      received r = co_await receive_any(left > 0s ? left : steady::duration{0});
      if (r.kind == received::what::timeout) throw std::runtime_error("no message from the worker");
      if (r.kind == received::what::closed) {
        throw std::runtime_error("the worker closed the connection");
      }
      if (!std::holds_alternative<coord::heartbeat_message>(r.msg)) co_return std::move(r.msg);
    }
  }

  template <class T>
  asio::awaitable<T> expect(steady::duration timeout = 5s) {
    coord::message m = co_await receive(timeout);
    if (auto* wanted = std::get_if<T>(&m)) co_return std::move(*wanted);
    throw std::runtime_error("expected another message than " + coord::encode(m));
  }

  // True when the worker closes the connection within `timeout`, sending only heartbeats.
  asio::awaitable<bool> closes_within(steady::duration timeout) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      const auto left = deadline - steady::now();
      received r = co_await receive_any(left > 0s ? left : steady::duration{0});
      if (r.kind == received::what::closed) co_return true;
      if (r.kind == received::what::timeout) co_return false;
      if (!std::holds_alternative<coord::heartbeat_message>(r.msg)) {
        throw std::runtime_error("expected the connection to close, got " + coord::encode(r.msg));
      }
    }
  }

  asio::awaitable<void> send_raw(std::string line) {
    co_await asio::async_write(socket, asio::buffer(line), asio::use_awaitable);
  }
  // These are not coroutines: the line is made before the caller suspends. (GCC 12 destroys
  // a braced temporary in a co_await expression twice, so scenarios pass lvalues or use bye.)
  template <class Message>
  asio::awaitable<void> send(const Message& m) {
    return send_raw(coord::encode(coord::message{m}));
  }
  asio::awaitable<void> bye(std::string_view reason) {
    return send(coord::bye_message{std::string{reason}});
  }

  void close() {
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
};

coord::welcome_message test_welcome() {
  coord::welcome_message w;
  w.worker = "w-1";
  w.run = "r-1";
  w.epoch = 7;
  w.heartbeat_ms = 60000;  // tests that want heartbeats ask for them
  w.lost_after_ms = 60000;
  return w;
}

coord::assign_message assignment(std::string module, std::string kind,
                                 json::value params = nullptr) {
  coord::assign_message a;
  a.run = "r-1";
  a.epoch = 7;
  a.module = std::move(module);
  a.attempt = 1;
  a.kind = std::move(kind);
  a.params = std::move(params);
  return a;
}

// Assignments are built outside co_await expressions: GCC 12 rejects initializer lists that
// live across a suspension point ("array used as initializer").
coord::assign_message sleep_assignment(std::string module, int ms) {
  return assignment(std::move(module), "sleep", json::object{{"ms", ms}});
}

coord::assign_message exec_assignment(std::string module, std::string shell) {
  return assignment(std::move(module), "exec", json::object{{"shell", std::move(shell)}});
}

bool group_alive(pid_t pgid) {
  return ::kill(-pgid, 0) == 0 || errno != ESRCH;
}

struct fixture {
  asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  drover::modules::registry kinds = test_kinds();
  std::unique_ptr<coord::worker_client> client;
  std::optional<coord::worker_outcome> outcome;
  std::vector<std::string> log;

  coord::worker_options options() {
    coord::worker_options o;
    o.host = "127.0.0.1";
    o.port = acceptor.local_endpoint().port();
    o.worker_id = "tester";
    o.reconnect.initial = 50ms;
    o.reconnect.max = 400ms;
    o.give_up_after = 10s;
    o.cancel_grace = 3s;
    return o;
  }

  void start(coord::worker_options o) {
    o.on_log = [this](std::string_view line) { log.emplace_back(line); };
    client = std::make_unique<coord::worker_client>(io.get_executor(), std::move(o),
                                                    resolver_for(kinds));
    client->async_run([this](coord::worker_outcome o) { outcome = std::move(o); });
  }

  asio::awaitable<master_side> accept(steady::duration timeout = 5s) {
    asio::steady_timer timer(io, timeout);
    auto first = co_await (acceptor.async_accept(asio::use_awaitable) ||
                           timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (first.index() == 1) throw std::runtime_error("the worker did not connect in time");
    tcp::socket socket = std::move(std::get<0>(first));
    socket.set_option(tcp::no_delay(true));
    co_return master_side{std::move(socket)};
  }

  // Accepts a connection, reads hello and answers `welcome`.
  asio::awaitable<master_side> handshake(coord::welcome_message welcome = test_welcome(),
                                         coord::hello_message* hello = nullptr) {
    master_side m = co_await accept();
    coord::hello_message h = co_await m.expect<coord::hello_message>();
    if (hello != nullptr) *hello = h;
    co_await m.send(welcome);
    co_return m;
  }

  asio::awaitable<coord::worker_outcome> finished(steady::duration timeout = 10s) {
    asio::steady_timer tick(io);
    const auto deadline = steady::now() + timeout;
    while (!outcome) {
      if (steady::now() >= deadline) throw std::runtime_error("the worker did not finish in time");
      tick.expires_after(5ms);
      co_await tick.async_wait(asio::use_awaitable);
    }
    co_return *outcome;
  }

  // Whether every process of group `pgid` is gone within `timeout`. A killed grandchild may
  // linger a moment as a zombie until init reaps it.
  asio::awaitable<bool> group_gone(pid_t pgid, steady::duration timeout = 3s) {
    const auto deadline = steady::now() + timeout;
    while (group_alive(pgid)) {
      if (steady::now() >= deadline) co_return false;
      co_await sleep(10ms);
    }
    co_return true;
  }

  asio::awaitable<void> sleep(steady::duration d) {
    asio::steady_timer timer(io, d);
    co_await timer.async_wait(asio::use_awaitable);
  }

  // Runs `scenario` on the io_context; fails the test instead of hanging past `limit`.
  void run(std::function<asio::awaitable<void>()> scenario, steady::duration limit = 25s) {
    bool done = false;
    std::exception_ptr failure;
    asio::co_spawn(io, scenario(), [&](std::exception_ptr e) {
      done = true;
      failure = e;
    });
    const auto deadline = steady::now() + limit;
    while (!done && steady::now() < deadline)
      io.run_for(50ms);
    BOOST_REQUIRE_MESSAGE(done, "the scenario did not finish in time");
    if (failure) std::rethrow_exception(failure);
  }
};

// A scratch directory for pid files, removed with the object.
struct scratch_dir {
  fs::path path =
      fs::temp_directory_path() / ("drover-worker-test-" + std::to_string(::getpid()) + "-" +
                                   std::to_string(steady::now().time_since_epoch().count()));
  scratch_dir() { fs::create_directories(path); }
  ~scratch_dir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// A shell command that writes its process group id (its own pid: exec makes each child a group
// leader) to `file`, then waits long.
std::string write_pgid_then_wait(const fs::path& file) {
  return "echo $$ > '" + file.string() + ".tmp' && mv '" + file.string() + ".tmp' '" +
         file.string() + "'; sleep 30 & wait";
}

std::optional<pid_t> read_pid_file(const fs::path& file) {
  std::ifstream in(file);
  long pid = 0;
  if (!(in >> pid) || pid <= 1) return std::nullopt;
  return static_cast<pid_t>(pid);
}

/// Polls `file` for up to 5 s for the pid a command wrote there once it started.
asio::awaitable<std::optional<pid_t>> wait_for_pid_file(fixture& f, const fs::path& file) {
  std::optional<pid_t> pid;
  for (int i = 0; i < 500 && !pid; ++i) {
    co_await f.sleep(10ms);
    pid = read_pid_file(file);
  }
  co_return pid;
}

template <class T>
T& get(coord::message& m) {
  if (auto* value = std::get_if<T>(&m)) return *value;
  throw std::runtime_error("unexpected message: " + coord::encode(m));
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(worker)

BOOST_AUTO_TEST_CASE(default_worker_id_is_host_and_pid, *boost::unit_test::timeout(10)) {
  const std::string id = coord::default_worker_id();
  const std::string suffix = "-" + std::to_string(::getpid());
  BOOST_TEST(id.size() > suffix.size());
  BOOST_TEST(id.substr(id.size() - suffix.size()) == suffix);
}

BOOST_AUTO_TEST_CASE(hello_carries_the_workers_fields, *boost::unit_test::timeout(30)) {
  fixture f;
  auto o = f.options();
  o.slots = 3;
  o.capabilities = {"docker", "gpu"};
  o.token = "s3cret";
  o.worker_id = "builder-1";
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    coord::hello_message hello;
    master_side m = co_await f.handshake(test_welcome(), &hello);
    BOOST_TEST(hello.versions == std::vector<int>{1});
    BOOST_TEST(hello.worker_id.value_or("") == std::string_view{"builder-1"});
    const std::vector<std::string> capabilities{std::string{drover::local_os_label()}, "docker",
                                                "gpu"};
    BOOST_TEST(hello.capabilities == capabilities);
    BOOST_TEST(hello.slots == 3u);
    BOOST_TEST(hello.token.value_or("") == std::string_view{"s3cret"});
    BOOST_TEST(hello.pid.value_or(0) == static_cast<std::uint64_t>(::getpid()));
    BOOST_TEST(!hello.host.value_or("").empty());
    co_await m.bye("run finished");
    const coord::worker_outcome out = co_await f.finished();
    BOOST_TEST(to_string(out.how) == std::string_view{"run_over"});
    BOOST_TEST(out.reason == std::string_view{"run finished"});
    BOOST_TEST(out.ok());
    BOOST_TEST(f.client->stats().handshakes == 1u);
  });
}

BOOST_AUTO_TEST_CASE(without_an_id_the_worker_asks_for_host_and_pid,
                     *boost::unit_test::timeout(30)) {
  fixture f;
  auto o = f.options();
  o.worker_id.clear();
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    coord::hello_message hello;
    master_side m = co_await f.handshake(test_welcome(), &hello);
    BOOST_TEST(hello.worker_id.value_or("") == coord::default_worker_id());
    BOOST_TEST(!hello.token.has_value());
    BOOST_TEST(hello.slots == 1u);
    co_await m.bye("run finished");
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(runs_noop_sleep_and_exec_and_reports_their_values,
                     *boost::unit_test::timeout(30)) {
  fixture f;
  auto o = f.options();
  o.slots = 4;
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    auto noop = assignment("docs", "noop");
    noop.attempt = 2;
    co_await m.send(noop);
    co_await m.send(sleep_assignment("pause", 30));
    auto version =
        assignment("version", "exec",
                   json::object{{"shell", "echo '{\"answer\": 42}'"}, {"json_output", true}});
    co_await m.send(version);
    co_await m.send(exec_assignment("broken", "echo oops; exit 3"));

    std::map<std::string, coord::result_message> results;
    while (results.size() < 4) {
      auto r = co_await m.expect<coord::result_message>();
      results[r.module] = r;
    }
    for (auto& [id, r] : results) {
      BOOST_TEST_CONTEXT(id) {
        BOOST_TEST(r.run == std::string_view{"r-1"});
        BOOST_TEST(r.epoch == 7u);
        BOOST_TEST(r.attempt == (id == std::string_view{"docs"} ? 2u : 1u));
        BOOST_TEST(r.started_at_ms.has_value());
        BOOST_TEST(r.finished_at_ms.has_value());
        BOOST_TEST(r.started_at_ms.value_or(0) <= r.finished_at_ms.value_or(0));
      }
    }
    BOOST_TEST(results["docs"].status == drover::module_status::succeeded);
    BOOST_TEST(results["docs"].value.is_null());
    BOOST_TEST(results["pause"].status == drover::module_status::succeeded);
    BOOST_TEST(results["pause"].finished_at_ms.value_or(0) -
                   results["pause"].started_at_ms.value_or(0) >=
               25);
    BOOST_TEST(results["version"].status == drover::module_status::succeeded);
    BOOST_TEST(results["version"].value ==
               json::parse(R"({"exit_code":0,"output":{"answer":42}})"));
    BOOST_TEST(results["broken"].status == drover::module_status::failed);
    BOOST_TEST(contains(results["broken"].error, "exit code 3"));
    BOOST_TEST(contains(results["broken"].error, "oops"));
    BOOST_TEST(f.client->stats().results_sent == 4u);

    co_await m.bye("run finished");
    co_await f.finished();
  });
}

// The master sends only the variable's name; the worker reads the value from its own
// environment and masks it in the log and in the results it sends back.
BOOST_AUTO_TEST_CASE(secrets_are_read_on_the_worker_and_masked_in_results,
                     *boost::unit_test::timeout(30)) {
  const std::string secret = "worker-s3cret-77";
  ::setenv("DROVER_WORKER_TEST_SECRET", secret.c_str(), 1);
  ::unsetenv("DROVER_WORKER_TEST_MISSING");
  const auto log_dir = std::filesystem::temp_directory_path() /
                       ("drover-worker-secret-" + std::to_string(::getpid()));
  fixture f;
  auto o = f.options();
  o.slots = 3;
  o.log_dir = log_dir;
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    const json::object secret_env{
        {"TOKEN", json::object{{"secret_from_env", "DROVER_WORKER_TEST_SECRET"}}}};
    const json::object missing_env{
        {"TOKEN", json::object{{"secret_from_env", "DROVER_WORKER_TEST_MISSING"}}}};
    auto shown = assignment("shown", "exec",
                            json::object{{"shell", R"(printf '{"token": "%s"}\n' "$TOKEN")"},
                                         {"json_output", true},
                                         {"env", secret_env}});
    co_await m.send(shown);
    auto failing = assignment(
        "failing", "exec",
        json::object{{"shell", R"(echo "bad $TOKEN" >&2; exit 3)"}, {"env", secret_env}});
    co_await m.send(failing);
    auto missing =
        assignment("missing", "exec", json::object{{"shell", "true"}, {"env", missing_env}});
    co_await m.send(missing);

    std::map<std::string, coord::result_message> results;
    while (results.size() < 3) {
      auto r = co_await m.expect<coord::result_message>();
      results[r.module] = r;
    }
    BOOST_TEST(results["shown"].status == drover::module_status::succeeded);
    BOOST_TEST(results["shown"].value ==
               json::parse(R"({"exit_code": 0, "output": {"token": "***"}})"));
    BOOST_TEST(results["failing"].status == drover::module_status::failed);
    BOOST_TEST(results["failing"].error == "exit code 3\nbad ***");
    BOOST_TEST(results["missing"].status == drover::module_status::failed);
    BOOST_TEST(contains(results["missing"].error, "'DROVER_WORKER_TEST_MISSING'"),
               results["missing"].error);

    co_await m.bye("run finished");
    co_await f.finished();
  });
  ::unsetenv("DROVER_WORKER_TEST_SECRET");
  std::string logs;
  for (const auto& entry : std::filesystem::directory_iterator(log_dir)) {
    std::ifstream in{entry.path()};
    logs.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::filesystem::remove_all(log_dir);
  BOOST_TEST(contains(logs, "bad ***\n"), logs);
  BOOST_TEST(!contains(logs, secret), logs);
}

BOOST_AUTO_TEST_CASE(two_slots_run_two_attempts_at_once, *boost::unit_test::timeout(30)) {
  fixture f;
  auto o = f.options();
  o.slots = 2;
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    co_await m.send(sleep_assignment("a", 300));
    co_await m.send(sleep_assignment("b", 300));
    auto first = co_await m.expect<coord::result_message>();
    auto second = co_await m.expect<coord::result_message>();
    BOOST_TEST(first.status == drover::module_status::succeeded);
    BOOST_TEST(second.status == drover::module_status::succeeded);
    // Each started before the other finished.
    BOOST_TEST(*first.started_at_ms < *second.finished_at_ms);
    BOOST_TEST(*second.started_at_ms < *first.finished_at_ms);
    co_await m.bye("run finished");
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(an_unknown_kind_or_bad_params_fail_the_attempt_only,
                     *boost::unit_test::timeout(30)) {
  fixture f;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    co_await m.send(assignment("beam", "teleport"));
    auto unknown = co_await m.expect<coord::result_message>();
    BOOST_TEST(unknown.module == std::string_view{"beam"});
    BOOST_TEST(unknown.status == drover::module_status::failed);
    BOOST_TEST(unknown.error == std::string_view{"unknown module kind 'teleport' on worker w-1"});

    auto nap = assignment("nap", "sleep", json::parse(R"({"ms": "long"})"));
    co_await m.send(nap);
    auto bad = co_await m.expect<coord::result_message>();
    BOOST_TEST(bad.status == drover::module_status::failed);
    BOOST_TEST(contains(bad.error, "invalid params for kind 'sleep'"));
    BOOST_TEST(contains(bad.error, "ms"));

    co_await m.send(assignment("docs", "noop"));
    auto fine = co_await m.expect<coord::result_message>();
    BOOST_TEST(fine.status == drover::module_status::succeeded);
    co_await m.bye("run finished");
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(dependency_results_are_kept_for_the_run, *boost::unit_test::timeout(30)) {
  fixture f;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();

    auto first = assignment("build", "inspect", json::object{{"dep", "fetch"}});
    first.deps = {"fetch"};
    first.results.push_back(
        {"fetch", drover::module_status::succeeded, json::parse(R"({"sha":"abc"})")});
    co_await m.send(first);
    auto r1 = co_await m.expect<coord::result_message>();
    BOOST_TEST_REQUIRE(r1.status == drover::module_status::succeeded, r1.error);
    BOOST_TEST(r1.value.at("value") == json::parse(R"({"sha":"abc"})"));
    BOOST_TEST(r1.value.at("status").as_string() == std::string_view{"succeeded"});

    // The master does not send fetch's result again: the worker still has it.
    auto second = assignment("test", "inspect", json::object{{"dep", "fetch"}});
    second.deps = {"fetch"};
    co_await m.send(second);
    auto r2 = co_await m.expect<coord::result_message>();
    BOOST_TEST_REQUIRE(r2.status == drover::module_status::succeeded, r2.error);
    BOOST_TEST(r2.value.at("value") == json::parse(R"({"sha":"abc"})"));

    // An always_run module sees a failed dependency as failed, with a null value.
    auto cleanup = assignment("cleanup", "inspect", json::object{{"dep", "lint"}});
    cleanup.deps = {"lint"};
    cleanup.results.push_back({"lint", drover::module_status::failed, nullptr});
    co_await m.send(cleanup);
    auto r3 = co_await m.expect<coord::result_message>();
    BOOST_TEST_REQUIRE(r3.status == drover::module_status::succeeded, r3.error);
    BOOST_TEST(r3.value.at("value").is_null());
    BOOST_TEST(r3.value.at("status").as_string() == std::string_view{"failed"});

    // Every status reads as the master reported it, cancelled too, as in a local run.
    const std::vector<std::pair<drover::module_status, std::string>> statuses{
        {drover::module_status::timed_out, "timed_out"},
        {drover::module_status::skipped, "skipped"},
        {drover::module_status::ignored_failure, "ignored_failure"},
        {drover::module_status::cancelled, "cancelled"}};
    for (const auto& [status, seen] : statuses) {
      const std::string dep = "dep-" + std::string{drover::to_string(status)};
      auto always = assignment("always-" + dep, "inspect", json::object{{"dep", dep}});
      always.deps = {dep};
      always.results.push_back({dep, status, nullptr});
      co_await m.send(always);
      auto r = co_await m.expect<coord::result_message>();
      BOOST_TEST_CONTEXT(dep) {
        BOOST_TEST_REQUIRE(r.status == drover::module_status::succeeded, r.error);
        BOOST_TEST(r.value.at("status").as_string() == seen);
        BOOST_TEST(r.value.at("value").is_null());
      }
    }

    // A dependency the master never sent is the master's protocol error.
    auto orphan = assignment("package", "noop");
    orphan.deps = {"fetch", "ghost"};
    co_await m.send(orphan);
    auto r4 = co_await m.expect<coord::result_message>();
    BOOST_TEST(r4.status == drover::module_status::failed);
    BOOST_TEST(contains(r4.error, "'ghost'"));
    BOOST_TEST(contains(r4.error, "never sent"));

    // The body sees its params and matrix target too.
    auto instance = assignment("build[os=linux,cc=gcc]", "inspect", json::object{{"x", 1}});
    instance.matrix_target = "os=linux,cc=gcc";
    co_await m.send(instance);
    auto r5 = co_await m.expect<coord::result_message>();
    BOOST_TEST_REQUIRE(r5.status == drover::module_status::succeeded, r5.error);
    BOOST_TEST(r5.value.at("matrix_target").as_string() == std::string_view{"os=linux,cc=gcc"});
    BOOST_TEST(r5.value.at("os").as_string() == std::string_view{"linux"});
    BOOST_TEST(r5.value.at("params") == json::parse(R"({"x":1})"));

    co_await m.bye("run finished");
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(assignments_the_worker_cannot_take_are_answered,
                     *boost::unit_test::timeout(30)) {
  fixture f;
  auto o = f.options();
  o.slots = 2;
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    auto other_run = assignment("docs", "noop");
    other_run.run = "r-other";
    co_await m.send(other_run);
    auto r1 = co_await m.expect<coord::result_message>();
    BOOST_TEST(r1.run == std::string_view{"r-other"});
    BOOST_TEST(r1.status == drover::module_status::failed);
    BOOST_TEST(contains(r1.error, "serves run 'r-1'"));

    // The same attempt twice: one error, and only the running attempt's result.
    auto slow = sleep_assignment("slow", 200);
    co_await m.send(slow);
    co_await m.send(slow);
    auto e = co_await m.expect<coord::error_message>();
    BOOST_TEST(e.module.value_or("") == std::string_view{"slow"});
    BOOST_TEST(contains(e.message, "already running"));

    // While draining, an assign (which the master should not send) fails at once.
    coord::drain_message drain;
    co_await m.send(drain);
    auto late = assignment("late", "noop");
    co_await m.send(late);
    auto r2 = co_await m.expect<coord::result_message>();
    BOOST_TEST(r2.module == std::string_view{"late"});
    BOOST_TEST(contains(r2.error, "draining"));
    auto r3 = co_await m.expect<coord::result_message>();
    BOOST_TEST(r3.module == std::string_view{"slow"});
    BOOST_TEST(r3.status == drover::module_status::succeeded);
    auto bye = co_await m.expect<coord::bye_message>();
    BOOST_TEST(bye.reason == std::string_view{"drained"});
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(cancel_kills_the_exec_process_group, *boost::unit_test::timeout(30)) {
  fixture f;
  scratch_dir dir;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    const fs::path pid_file = dir.path / "pgid";
    co_await m.send(exec_assignment("hang", write_pgid_then_wait(pid_file)));
    const std::optional<pid_t> pgid = co_await wait_for_pid_file(f, pid_file);
    BOOST_TEST_REQUIRE(pgid.has_value());
    BOOST_TEST_REQUIRE(group_alive(*pgid));

    coord::cancel_message cancel;
    cancel.run = "r-1";
    cancel.epoch = 7;
    cancel.module = "hang";
    cancel.attempt = 1;
    cancel.reason = "fail_fast: 'lint' failed";
    co_await m.send(cancel);
    co_await m.send(cancel);  // a repeated cancel changes nothing
    auto r = co_await m.expect<coord::result_message>();
    BOOST_TEST(r.module == std::string_view{"hang"});
    BOOST_TEST(r.status == drover::module_status::cancelled);
    BOOST_TEST(r.error == std::string_view{"cancelled: fail_fast: 'lint' failed"});
    const bool gone = co_await f.group_gone(*pgid);
    BOOST_TEST(gone);

    // A cancel for an attempt that is not running is ignored without an error.
    cancel.attempt = 5;
    co_await m.send(cancel);
    co_await m.send(assignment("docs", "noop"));
    auto after = co_await m.expect<coord::result_message>();
    BOOST_TEST(after.module == std::string_view{"docs"});
    co_await m.bye("run finished");
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(timeout_ms_ends_the_attempt_timed_out, *boost::unit_test::timeout(30)) {
  fixture f;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    auto slow = assignment("slow", "sleep", json::object{{"ms", 20000}});
    slow.timeout_ms = 100;
    co_await m.send(slow);
    auto r = co_await m.expect<coord::result_message>(10s);
    BOOST_TEST(r.status == drover::module_status::timed_out);
    BOOST_TEST(contains(r.error, "timed out after 100 ms"));
    co_await m.bye("run finished");
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(a_closed_connection_is_retried_with_growing_delays,
                     *boost::unit_test::timeout(30)) {
  fixture f;
  auto o = f.options();
  o.reconnect.initial = 100ms;
  o.reconnect.max = 1s;
  o.reconnect.jitter = 0;
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    // Two connections closed before the welcome: 100 ms, then 200 ms before the next hello.
    master_side first = co_await f.accept();
    co_await first.expect<coord::hello_message>();
    first.close();
    const auto closed_first = steady::now();
    master_side second = co_await f.accept();
    const auto second_at = steady::now();
    co_await second.expect<coord::hello_message>();
    second.close();
    const auto closed_second = steady::now();
    master_side third = co_await f.accept();
    const auto third_at = steady::now();
    BOOST_TEST((second_at - closed_first) >= 90ms);
    BOOST_TEST((third_at - closed_second) >= 180ms);

    // A connection with a handshake resets the delay; the worker says hello again.
    co_await third.expect<coord::hello_message>();
    co_await third.send(test_welcome());
    const coord::heartbeat_message beat;
    co_await third.send(beat);
    co_await f.sleep(20ms);
    third.close();
    coord::hello_message again;
    master_side fourth = co_await f.handshake(test_welcome(), &again);
    BOOST_TEST(again.worker_id.value_or("") == std::string_view{"tester"});
    co_await fourth.bye("run finished");
    const auto out = co_await f.finished();
    BOOST_TEST(to_string(out.how) == std::string_view{"run_over"});
    BOOST_TEST(f.client->stats().connection_attempts == 4u);
    BOOST_TEST(f.client->stats().handshakes == 2u);
  });
}

BOOST_AUTO_TEST_CASE(bye_ends_the_run_and_stops_running_attempts, *boost::unit_test::timeout(30)) {
  fixture f;
  scratch_dir dir;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    const fs::path pid_file = dir.path / "pgid";
    co_await m.send(exec_assignment("hang", write_pgid_then_wait(pid_file)));
    const std::optional<pid_t> pgid = co_await wait_for_pid_file(f, pid_file);
    BOOST_TEST_REQUIRE(pgid.has_value());
    co_await m.bye("run finished");
    // No result for the cancelled attempt: the worker just closes.
    const bool closed1 = co_await m.closes_within(5s);
    BOOST_TEST(closed1);
    const auto out = co_await f.finished();
    BOOST_TEST(to_string(out.how) == std::string_view{"run_over"});
    const bool gone = co_await f.group_gone(*pgid);
    BOOST_TEST(gone);
    BOOST_TEST(f.client->stats().results_sent == 0u);
  });
}

BOOST_AUTO_TEST_CASE(a_wrong_token_is_refused_without_retrying, *boost::unit_test::timeout(30)) {
  fixture f;
  auto o = f.options();
  o.token = "wrong";
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.accept();
    auto hello = co_await m.expect<coord::hello_message>();
    BOOST_TEST(hello.token.value_or("") == std::string_view{"wrong"});
    co_await m.send(
        coord::make_error_message(coord::error_code::unauthorized, "missing or wrong token", true));
    m.close();
    const auto out = co_await f.finished();
    BOOST_TEST(to_string(out.how) == std::string_view{"refused"});
    BOOST_TEST(contains(out.reason, "unauthorized"));
    BOOST_TEST(!out.ok());
    co_await f.sleep(300ms);  // longer than the reconnect delay: no second connection
    BOOST_TEST(f.client->stats().connection_attempts == 1u);
  });
}

BOOST_AUTO_TEST_CASE(a_version_mismatch_is_refused, *boost::unit_test::timeout(30)) {
  fixture f;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.accept();
    co_await m.expect<coord::hello_message>();
    co_await m.send(coord::make_error_message(coord::error_code::version_mismatch,
                                              "no common protocol version", true));
    const auto out = co_await f.finished();
    BOOST_TEST(to_string(out.how) == std::string_view{"refused"});
    BOOST_TEST(contains(out.reason, "version_mismatch"));
  });
}

BOOST_AUTO_TEST_CASE(other_handshake_errors_are_retried, *boost::unit_test::timeout(30)) {
  fixture f;
  auto o = f.options();
  o.handshake_timeout = 200ms;
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    // A fatal error that is not about the worker's credentials: try again.
    master_side m = co_await f.accept();
    co_await m.expect<coord::hello_message>();
    auto busy = coord::make_error_message(coord::error_code::internal, "busy", true);
    co_await m.send(busy);
    m.close();

    // No welcome in time: the worker closes and tries again.
    master_side mute = co_await f.accept();
    co_await mute.expect<coord::hello_message>();
    const bool closed = co_await mute.closes_within(5s);
    BOOST_TEST(closed);

    // A fatal error after the handshake: the worker connects again too.
    master_side third = co_await f.handshake();
    co_await third.send(busy);
    const bool closed_again = co_await third.closes_within(5s);
    BOOST_TEST(closed_again);

    master_side last = co_await f.handshake();
    co_await last.bye("run finished");
    co_await f.finished();
    BOOST_TEST(f.client->stats().connection_attempts == 4u);
    bool logged = false;
    for (const auto& line : f.log)
      logged = logged || contains(line, "no welcome from the master within 200 ms");
    BOOST_TEST(logged);
  });
}

BOOST_AUTO_TEST_CASE(heartbeats_list_the_running_attempts, *boost::unit_test::timeout(30)) {
  fixture f;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    auto welcome = test_welcome();
    welcome.heartbeat_ms = 50;
    master_side m = co_await f.handshake(welcome);
    co_await m.send(sleep_assignment("slow", 20000));

    const std::vector<coord::running_attempt> slow_running{{"slow", 1}};
    int beats = 0;
    bool listed = false;
    const auto started = steady::now();
    while (!listed && steady::now() - started < 5s) {
      received r = co_await m.receive_any(2s);
      BOOST_TEST_REQUIRE((r.kind == received::what::message));
      auto& beat = get<coord::heartbeat_message>(r.msg);
      ++beats;
      listed = beat.running == slow_running;
    }
    BOOST_TEST(listed);

    coord::cancel_message cancel;
    cancel.run = "r-1";
    cancel.epoch = 7;
    cancel.module = "slow";
    cancel.attempt = 1;
    co_await m.send(cancel);
    auto r = co_await m.expect<coord::result_message>();
    BOOST_TEST(r.status == drover::module_status::cancelled);
    BOOST_TEST(r.error == std::string_view{"cancelled by the master"});
    received next = co_await m.receive_any(2s);
    BOOST_TEST_REQUIRE((next.kind == received::what::message));
    BOOST_TEST(get<coord::heartbeat_message>(next.msg).running.empty());
    co_await m.bye("run finished");
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(a_silent_master_is_lost_and_the_worker_reconnects,
                     *boost::unit_test::timeout(30)) {
  fixture f;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    auto welcome = test_welcome();
    welcome.heartbeat_ms = 50;
    welcome.lost_after_ms = 300;
    master_side m = co_await f.handshake(welcome);
    const auto since = steady::now();
    const bool closed2 = co_await m.closes_within(5s);
    BOOST_TEST(closed2);  // only heartbeats, then the close
    BOOST_TEST((steady::now() - since) >= 250ms);
    master_side again = co_await f.handshake();
    co_await again.bye("run finished");
    co_await f.finished();
    bool logged = false;
    for (const auto& line : f.log)
      logged = logged || contains(line, "silent for 300 ms");
    BOOST_TEST(logged);
  });
}

BOOST_AUTO_TEST_CASE(bad_lines_get_errors_as_the_protocol_says, *boost::unit_test::timeout(30)) {
  fixture f;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();

    // Unknown message types are answered and otherwise ignored: the connection goes on.
    co_await m.send_raw("{\"type\":\"progress\"}\n");
    auto e1 = co_await m.expect<coord::error_message>();
    BOOST_TEST(e1.code == std::string_view{"unknown_type"});
    BOOST_TEST(!e1.fatal);

    // A message a master never sends.
    coord::hello_message stray_hello;
    stray_hello.versions.push_back(1);
    co_await m.send(stray_hello);
    auto e2 = co_await m.expect<coord::error_message>();
    BOOST_TEST(e2.code == std::string_view{"unknown_type"});
    BOOST_TEST(contains(e2.message, "hello"));
    BOOST_TEST(!e2.fatal);

    // An error is never answered, not even a malformed one; it carries no work, so the
    // connection goes on.
    co_await m.send(coord::make_error_message(coord::error_code::stale_result, "old"));
    co_await m.send_raw("{\"type\":\"error\"}\n");
    co_await m.send(assignment("docs", "noop"));
    auto r = co_await m.expect<coord::result_message>();
    BOOST_TEST(r.status == drover::module_status::succeeded);
    BOOST_TEST(f.client->stats().errors_received == 1u);
    co_await m.bye("run finished");
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(a_line_that_does_not_decode_is_fatal, *boost::unit_test::timeout(30)) {
  // It may have been an assign: the worker says what was wrong, quoting the line, and closes,
  // so that the master reassigns at once instead of waiting for a result that cannot come.
  fixture f;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    co_await m.send_raw("this is not json\n");
    auto e1 = co_await m.expect<coord::error_message>();
    BOOST_TEST(e1.code == std::string_view{"malformed_json"});
    BOOST_TEST(e1.fatal);
    BOOST_TEST(contains(e1.message, "malformed JSON at offset"), e1.message);
    BOOST_TEST(contains(e1.message, "; the line: \"this is not json\""), e1.message);
    const bool closed1 = co_await m.closes_within(5s);
    BOOST_TEST(closed1);

    // A garbled assign: the field at fault is named and a long line is cut.
    master_side second = co_await f.handshake();
    const std::string garbled =
        R"({"type":"assign","run":"r-1","epoch":1,"module":"build","attempt":"one","pad":")" +
        std::string(200, 'x') + "\"}";
    co_await second.send_raw(garbled + "\n");
    auto e2 = co_await second.expect<coord::error_message>();
    BOOST_TEST(e2.code == std::string_view{"bad_field"});
    BOOST_TEST(e2.fatal);
    BOOST_TEST(contains(e2.message, "assign: field 'attempt'"), e2.message);
    BOOST_TEST(contains(e2.message, "; the line: \"" + garbled.substr(0, 60) + "\"..."),
               e2.message);
    BOOST_TEST((e2.module == std::optional<std::string>{"build"}));
    const bool closed2 = co_await second.closes_within(5s);
    BOOST_TEST(closed2);

    // Too deep is fatal too.
    master_side third = co_await f.handshake();
    std::string deep = "{\"type\":\"heartbeat\",\"x\":";
    for (int i = 0; i < 40; ++i)
      deep += '[';
    for (int i = 0; i < 40; ++i)
      deep += ']';
    co_await third.send_raw(deep + "}\n");
    auto e3 = co_await third.expect<coord::error_message>();
    BOOST_TEST(e3.code == std::string_view{"too_deep"});
    BOOST_TEST(e3.fatal);
    const bool closed3 = co_await third.closes_within(5s);
    BOOST_TEST(closed3);
    master_side again = co_await f.handshake();
    co_await again.bye("run finished");
    co_await f.finished();
    bool logged = false;
    for (const auto& line : f.log)
      logged = logged || contains(line, "the master sent a line that does not decode");
    BOOST_TEST(logged);
  });
}

BOOST_AUTO_TEST_CASE(the_welcomes_line_limit_applies_both_ways, *boost::unit_test::timeout(30)) {
  fixture f;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    auto welcome = test_welcome();
    welcome.max_line_bytes = 1024;
    master_side m = co_await f.handshake(welcome);

    // A result over the limit is replaced by a failed one.
    auto big = assignment(
        "big", "exec", json::object{{"shell", "printf '\"%03000d\"\\n' 0"}, {"json_output", true}});
    co_await m.send(big);
    auto r = co_await m.expect<coord::result_message>();
    BOOST_TEST(r.status == drover::module_status::failed);
    BOOST_TEST(contains(r.error, "result too large"));
    BOOST_TEST(contains(r.error, "the limit is 1024"));

    // A line over the limit is fatal.
    co_await m.send_raw("{\"type\":\"heartbeat\",\"pad\":\"" + std::string(2000, 'x') + "\"}\n");
    auto e = co_await m.expect<coord::error_message>();
    BOOST_TEST(e.code == std::string_view{"line_too_long"});
    BOOST_TEST(e.fatal);
    const bool closed4 = co_await m.closes_within(5s);
    BOOST_TEST(closed4);
    master_side again = co_await f.handshake();
    co_await again.bye("run finished");
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(drain_finishes_the_running_attempts_then_says_bye,
                     *boost::unit_test::timeout(30)) {
  fixture f;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    co_await m.send(sleep_assignment("pause", 200));
    coord::drain_message drain;
    drain.reason = "no more work";
    co_await m.send(drain);
    auto r = co_await m.expect<coord::result_message>();
    BOOST_TEST(r.status == drover::module_status::succeeded);
    auto bye = co_await m.expect<coord::bye_message>();
    BOOST_TEST(bye.reason == std::string_view{"drained"});
    const bool closed5 = co_await m.closes_within(5s);
    BOOST_TEST(closed5);
    const auto out = co_await f.finished();
    BOOST_TEST(to_string(out.how) == std::string_view{"drained"});
    BOOST_TEST(out.ok());
  });
}

BOOST_AUTO_TEST_CASE(an_assign_beyond_the_slots_fails_with_an_error,
                     *boost::unit_test::timeout(30)) {
  fixture f;
  f.start(f.options());  // one slot
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    co_await m.send(sleep_assignment("first", 300));
    co_await m.send(assignment("extra", "noop"));
    auto e = co_await m.expect<coord::error_message>();
    BOOST_TEST(e.module.value_or("") == std::string_view{"extra"});
    BOOST_TEST(!e.fatal);
    auto extra = co_await m.expect<coord::result_message>();
    BOOST_TEST(extra.module == std::string_view{"extra"});
    BOOST_TEST(extra.status == drover::module_status::failed);
    BOOST_TEST(contains(extra.error, "slots"));
    auto first = co_await m.expect<coord::result_message>();
    BOOST_TEST(first.module == std::string_view{"first"});
    BOOST_TEST(first.status == drover::module_status::succeeded);
    co_await m.bye("run finished");
    co_await f.finished();
  });
}

BOOST_AUTO_TEST_CASE(stop_cancels_attempts_and_says_bye, *boost::unit_test::timeout(30)) {
  fixture f;
  scratch_dir dir;
  f.start(f.options());
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    const fs::path pid_file = dir.path / "pgid";
    co_await m.send(exec_assignment("hang", write_pgid_then_wait(pid_file)));
    const std::optional<pid_t> pgid = co_await wait_for_pid_file(f, pid_file);
    BOOST_TEST_REQUIRE(pgid.has_value());
    f.client->stop("interrupted");
    auto bye = co_await m.expect<coord::bye_message>();  // and no result before it
    BOOST_TEST(bye.reason == std::string_view{"interrupted"});
    const bool closed6 = co_await m.closes_within(5s);
    BOOST_TEST(closed6);
    const auto out = co_await f.finished();
    BOOST_TEST(to_string(out.how) == std::string_view{"stopped"});
    const bool gone = co_await f.group_gone(*pgid);
    BOOST_TEST(gone);
  });
}

BOOST_AUTO_TEST_CASE(without_a_master_the_worker_gives_up, *boost::unit_test::timeout(30)) {
  fixture f;
  auto o = f.options();
  f.acceptor.close();  // nothing listens on that port any more
  o.give_up_after = 400ms;
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    const auto started = steady::now();
    const auto out = co_await f.finished(10s);
    BOOST_TEST(to_string(out.how) == std::string_view{"gave_up"});
    BOOST_TEST(contains(out.reason, "127.0.0.1:" + std::to_string(o.port)));
    BOOST_TEST(contains(out.reason, "400 ms"));
    BOOST_TEST((steady::now() - started) >= 350ms);
    BOOST_TEST(f.client->stats().connection_attempts >= 2u);
  });
}

BOOST_AUTO_TEST_CASE(stop_while_reconnecting_ends_at_once, *boost::unit_test::timeout(30)) {
  fixture f;
  auto o = f.options();
  f.acceptor.close();
  o.reconnect.initial = 5s;
  f.start(o);
  f.run([&]() -> asio::awaitable<void> {
    co_await f.sleep(100ms);
    const auto asked = steady::now();
    f.client->stop("interrupted");
    const auto out = co_await f.finished();
    BOOST_TEST(to_string(out.how) == std::string_view{"stopped"});
    BOOST_TEST((steady::now() - asked) < 2s);
  });
}

// Not a check but a measurement: what one assignment costs, round trip through a fake master.
BOOST_AUTO_TEST_CASE(noop_assignments_round_trip, *boost::unit_test::timeout(60)) {
  fixture f;
  auto o = f.options();
  o.slots = 8;
  f.start(o);
#ifdef NDEBUG
  constexpr int total = 10000;
#else
  constexpr int total = 2000;  // unoptimised builds are about ten times slower
#endif
  f.run(
      [&]() -> asio::awaitable<void> {
        master_side m = co_await f.handshake();
        const auto started = steady::now();
        int sent = 0;
        int done = 0;
        std::string batch;
        while (sent < 8) {
          auto a = assignment("m" + std::to_string(sent), "noop");
          batch += coord::encode(a);
          ++sent;
        }
        co_await m.send_raw(batch);
        while (done < total) {
          auto r = co_await m.expect<coord::result_message>();
          BOOST_TEST_REQUIRE(r.status == drover::module_status::succeeded, r.error);
          ++done;
          if (sent < total) co_await m.send(assignment("m" + std::to_string(sent++), "noop"));
        }
        const auto elapsed = std::chrono::duration<double, std::micro>(steady::now() - started);
        BOOST_TEST_MESSAGE("noop assignments: " << total << " in " << elapsed.count() / 1000.0
                                                << " ms, " << elapsed.count() / total
                                                << " us each (slots 8, round trip)");
        co_await m.bye("run finished");
        co_await f.finished();
      },
      50s);
}

BOOST_AUTO_TEST_SUITE_END()

#ifdef DROVER_BINARY
// --- drover worker, the command -----------------------------------------------------------

namespace {

// Starts the drover binary with `args`, its stderr going to `stderr_file`.
pid_t spawn_drover(const std::vector<std::string>& args, const fs::path& stderr_file) {
  std::vector<std::string> all{DROVER_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : all)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  pid_t pid = -1;
  const int failed = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (failed != 0) throw std::runtime_error("cannot start " + all[0]);
  return pid;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// The exit code of `pid` once it ends, or nothing (after killing it) past `timeout`.
asio::awaitable<std::optional<int>> exit_of(fixture& f, pid_t pid, steady::duration timeout = 10s) {
  const auto deadline = steady::now() + timeout;
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) co_return exit_code_of(status);
    if (steady::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      co_return std::nullopt;
    }
    co_await f.sleep(10ms);
  }
}

int run_drover(const std::vector<std::string>& args, const fs::path& stderr_file) {
  const pid_t pid = spawn_drover(args, stderr_file);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return exit_code_of(status);
}

std::string file_text(const fs::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(worker_command)

BOOST_AUTO_TEST_CASE(usage_errors_exit_2_and_say_what_is_wrong, *boost::unit_test::timeout(30)) {
  scratch_dir dir;
  const fs::path err = dir.path / "stderr";
  const fs::path empty_token = dir.path / "empty-token";
  std::ofstream(empty_token) << "  \n";
  struct usage_case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<usage_case> cases{
      {{"worker"}, "give either --connect HOST:PORT or --coordinator URL"},
      {{"worker", "--connect", "127.0.0.1:7700", "--coordinator", "redis://127.0.0.1:6379"},
       "give either --connect"},
      {{"worker", "--coordinator", "redis://127.0.0.1:6379"}, "--coordinator needs --run-key"},
      {{"worker", "--coordinator", "http://127.0.0.1:6379", "--run-key", "k"}, "redis://"},
      {{"worker", "--coordinator", "redis://127.0.0.1:6379", "--run-key", "k", "--keep-for",
        "soon"},
       "--keep-for expects"},
      {{"worker", "--connect", "localhost"}, "expected HOST:PORT"},
      {{"worker", "--connect", "localhost:"}, "the port is empty"},
      {{"worker", "--connect", "localhost:70000"}, "from 1 to 65535"},
      {{"worker", "--connect", ":7700"}, "the host is empty"},
      {{"worker", "--connect", "::1:7700"}, "in brackets"},
      {{"worker", "--connect", "127.0.0.1:7700", "--slots", "0"}, "--slots"},
      {{"worker", "--connect", "127.0.0.1:7700", "--token-file", (dir.path / "absent").string()},
       "cannot read the token file"},
      {{"worker", "--connect", "127.0.0.1:7700", "--token-file", empty_token.string()}, "is empty"},
      {{"worker", "--connect", "127.0.0.1:7700", "--give-up-after-ms", "-1"}, "give-up-after"},
      {{"worker", "--connect", "127.0.0.1:7700", "--bogus"}, "bogus"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.args.back()) {
      BOOST_TEST(run_drover(c.args, err) == 2);
      BOOST_TEST(contains(file_text(err), c.message), file_text(err));
    }
  }
  BOOST_TEST(run_drover({"worker", "--help"}, err) == 0);
  BOOST_TEST(run_drover({"--help"}, err) == 0);
}

BOOST_AUTO_TEST_CASE(runs_assignments_until_the_master_says_bye, *boost::unit_test::timeout(30)) {
  fixture f;
  scratch_dir dir;
  const fs::path token = dir.path / "token";
  std::ofstream(token) << "  s3cret \nsecond line\n";
  const fs::path err = dir.path / "stderr";
  const pid_t pid = spawn_drover(
      {"worker", "--connect", "127.0.0.1:" + std::to_string(f.acceptor.local_endpoint().port()),
       "--slots", "2", "--capability", "docker", "--id", "cli-1", "--token-file", token.string()},
      err);
  f.run([&]() -> asio::awaitable<void> {
    coord::hello_message hello;
    master_side m = co_await f.handshake(test_welcome(), &hello);
    BOOST_TEST(hello.worker_id.value_or("") == std::string_view{"cli-1"});
    BOOST_TEST(hello.slots == 2u);
    BOOST_TEST(hello.token.value_or("") == std::string_view{"s3cret"});
    const std::vector<std::string> capabilities{std::string{drover::local_os_label()}, "docker"};
    BOOST_TEST(hello.capabilities == capabilities);
    auto version = exec_assignment("version", "echo 1.2.3");
    co_await m.send(version);
    auto r = co_await m.expect<coord::result_message>();
    BOOST_TEST(r.status == drover::module_status::succeeded);
    co_await m.bye("run finished");
    const auto code = co_await exit_of(f, pid);
    BOOST_TEST(code.value_or(-1) == 0);
  });
  BOOST_TEST(contains(file_text(err), "connected to 127.0.0.1:"), file_text(err));
  BOOST_TEST(contains(file_text(err), "as w-1 (run r-1)"), file_text(err));
}

BOOST_AUTO_TEST_CASE(sigterm_says_bye_and_exits_130, *boost::unit_test::timeout(30)) {
  fixture f;
  scratch_dir dir;
  const fs::path err = dir.path / "stderr";
  const pid_t pid = spawn_drover(
      {"worker", "--connect", "127.0.0.1:" + std::to_string(f.acceptor.local_endpoint().port())},
      err);
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.handshake();
    auto slow = sleep_assignment("slow", 30000);
    co_await m.send(slow);
    co_await f.sleep(100ms);
    ::kill(pid, SIGTERM);
    auto bye = co_await m.expect<coord::bye_message>();
    BOOST_TEST(bye.reason == std::string_view{"interrupted by SIGTERM"});
    const auto code = co_await exit_of(f, pid);
    BOOST_TEST(code.value_or(-1) == 130);
  });
}

BOOST_AUTO_TEST_CASE(refused_or_giving_up_exits_1, *boost::unit_test::timeout(30)) {
  fixture f;
  scratch_dir dir;
  const fs::path err = dir.path / "stderr";
  const std::string address = "127.0.0.1:" + std::to_string(f.acceptor.local_endpoint().port());
  const pid_t refused = spawn_drover({"worker", "--connect", address}, err);
  f.run([&]() -> asio::awaitable<void> {
    master_side m = co_await f.accept();
    co_await m.expect<coord::hello_message>();
    auto no =
        coord::make_error_message(coord::error_code::unauthorized, "missing or wrong token", true);
    co_await m.send(no);
    const auto code = co_await exit_of(f, refused);
    BOOST_TEST(code.value_or(-1) == 1);
  });
  BOOST_TEST(contains(file_text(err), "unauthorized"), file_text(err));

  f.acceptor.close();
  BOOST_TEST(run_drover({"worker", "--connect", address, "--give-up-after-ms", "200"}, err) == 1);
  BOOST_TEST(contains(file_text(err), "gave up"), file_text(err));
}

BOOST_AUTO_TEST_SUITE_END()
#endif
