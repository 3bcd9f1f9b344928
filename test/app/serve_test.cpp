// `drover serve` and its clients end to end: submit, wait, status, cancel, workers and drain
// with their exit codes; a full queue; a service killed with SIGKILL and started again on its
// state directory, while `drover wait` keeps waiting.
#define BOOST_TEST_MODULE serve
#include "app_test_support.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>

#include <set>

using namespace drover::app_test;

namespace {

constexpr std::string_view quick = R"({"name": "quick", "modules": [
  {"id": "hello", "kind": "exec", "params": {"shell": "echo hello"}},
  {"id": "after", "kind": "noop", "deps": ["hello"]}]})";
constexpr std::string_view failing = R"({"modules": [
  {"id": "broken", "kind": "exec", "params": {"shell": "echo broken >&2; exit 3"}}]})";
constexpr std::string_view slow = R"({"modules": [
  {"id": "sleeper", "kind": "exec", "params": {"shell": "sleep 30"}}]})";

// A port that was free a moment ago, for a service that must come back on the same one.
std::string free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return std::to_string(acceptor.local_endpoint().port());
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  return text;
}

/// `count` connections to the worker port at `port` from 127.0.0.2 that never say hello.
class silent_flood {
 public:
  silent_flood(const std::string& port, int count) {
    for (int i = 0; i < count; ++i) {
      auto& socket = sockets_.emplace_back(io_);
      boost::system::error_code ec;
      socket.open(boost::asio::ip::tcp::v4(), ec);
      socket.bind({boost::asio::ip::make_address("127.0.0.2"), 0}, ec);
      socket.connect({boost::asio::ip::make_address("127.0.0.1"),
                      static_cast<unsigned short>(std::stoi(port))},
                     ec);
    }
  }
  /// How many the service closed at once.
  std::size_t refused() {
    std::size_t n = 0;
    for (auto& socket : sockets_) {
      boost::system::error_code ec;
      socket.non_blocking(true, ec);
      char byte;
      std::this_thread::sleep_for(1ms);
      socket.read_some(boost::asio::buffer(&byte, 1), ec);
      n += ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
    }
    return n;
  }
  void close() { sockets_.clear(); }

 private:
  boost::asio::io_context io_;
  std::vector<boost::asio::ip::tcp::socket> sockets_;
};

struct service {
  scratch_dir dir;
  fs::path server_dir = dir / "server";
  fs::path client_dir = dir / "client";
  std::optional<drover_process> process;
  std::string to;

  explicit service(std::vector<std::string> extra = {}, std::string port = "0") {
    fs::create_directories(server_dir);
    fs::create_directories(client_dir);
    start(std::move(extra), port);
  }
  void start(std::vector<std::string> extra, const std::string& port) {
    std::vector<std::string> args{"serve", "--http", "127.0.0.1:" + port, "--state",
                                  (dir / "state").string()};
    if (std::find(extra.begin(), extra.end(), "--workers") == extra.end()) {
      args.insert(args.end(), {"--workers", "2"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    process.emplace(args, server_dir);
    auto bound = wait_for_port(server_dir, "http listening on", 20s);
    BOOST_REQUIRE_MESSAGE(
        bound, "drover serve did not listen: " << read_file(server_dir / ".drover-stderr"));
    to = "127.0.0.1:" + *bound;
  }
  drover_result client(std::vector<std::string> args) {
    args.push_back("--to");
    args.push_back(to);
    return run_drover(args, client_dir);
  }
  std::string submit(std::string_view text, const std::string& name = "p.json") {
    const auto file = dir.write(name, text);
    const auto r = client({"submit", file.string()});
    BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
    return trimmed(r.out);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(the_clients_submit_wait_show_and_cancel, *boost::unit_test::timeout(120)) {
  service s;
  const auto ok = s.submit(quick, "quick.json");
  BOOST_TEST(ok.starts_with("r-"));
  auto waited = s.client({"wait", ok});
  BOOST_TEST(waited.exit_code == 0, waited.err);
  BOOST_TEST(waited.out.find("succeeded, 2/2 modules done") != std::string::npos, waited.out);

  const auto bad = s.submit(failing, "failing.json");
  waited = s.client({"wait", bad});
  BOOST_TEST(waited.exit_code == 1);
  const auto shown = s.client({"status", bad});
  BOOST_TEST(shown.exit_code == 0);
  BOOST_TEST(shown.out.find("broken") != std::string::npos);
  BOOST_TEST(shown.out.find("exit code 3") != std::string::npos, shown.out);

  const auto sleeping = s.submit(slow, "slow.json");
  BOOST_TEST(s.client({"wait", sleeping, "--timeout", "0.3"}).exit_code == 124);
  BOOST_TEST(s.client({"cancel", sleeping}).exit_code == 0);
  BOOST_TEST(s.client({"wait", sleeping}).exit_code == 130);
  BOOST_TEST(s.client({"cancel", sleeping}).exit_code == 1);  // already finished

  const auto listed = s.client({"status"});
  BOOST_TEST(listed.exit_code == 0);
  for (const auto& run : {ok, bad, sleeping})
    BOOST_TEST(listed.out.find(run) != std::string::npos, listed.out);
  BOOST_TEST(listed.out.find("quick.json") != std::string::npos);
  const auto workers = s.client({"workers"});
  BOOST_TEST(workers.exit_code == 0);
  BOOST_TEST(workers.out.find("local") != std::string::npos);
  BOOST_TEST(s.client({"workers", "--json"}).out.find("\"slots\":2") != std::string::npos);

  const auto invalid = s.dir.write("invalid.json", "{\"modules\": [{\"id\": \"x\", \"kind\": 3}]}");
  const auto refused = s.client({"submit", invalid.string()});
  BOOST_TEST(refused.exit_code == 2);
  BOOST_TEST(refused.err.find("invalid.json:1:") != std::string::npos, refused.err);
  BOOST_TEST(s.client({"wait", "r-none"}).exit_code == 2);
  BOOST_TEST(s.client({"status", "r-none"}).exit_code == 2);
  BOOST_TEST(s.client({"drain", "nobody"}).exit_code == 2);
  BOOST_TEST(s.client({"submit", (s.dir / "missing.json").string()}).exit_code == 2);
  BOOST_TEST(run_drover({"status", "--to", "127.0.0.1:bad"}, s.client_dir).exit_code == 2);
}

BOOST_AUTO_TEST_CASE(an_unreachable_service_and_a_full_queue_have_their_exit_codes,
                     *boost::unit_test::timeout(120)) {
  scratch_dir dir;
  const auto gone = run_drover({"status", "--to", "127.0.0.1:" + free_port()}, dir.path());
  BOOST_TEST(gone.exit_code == 69);
  BOOST_TEST(gone.err.find("cannot reach drover serve") != std::string::npos, gone.err);

  service s({"--max-running-runs", "1", "--max-queued-runs", "0"});
  const auto running = s.submit(slow);
  const auto file = s.dir.write("more.json", quick);
  const auto refused = s.client({"submit", file.string()});
  BOOST_TEST(refused.exit_code == 75);
  BOOST_TEST(refused.err.find("queue full") != std::string::npos, refused.err);
  BOOST_TEST(s.client({"cancel", running}).exit_code == 0);
  BOOST_TEST(s.client({"wait", running}).exit_code == 130);
}

BOOST_AUTO_TEST_CASE(the_handshake_limit_per_address_is_an_option, *boost::unit_test::timeout(60)) {
  scratch_dir dir;
  const auto negative = run_drover(
      {"serve", "--listen", "127.0.0.1:0", "--max-handshakes-per-address", "-1"}, dir.path());
  BOOST_TEST(negative.exit_code == 2);
  BOOST_TEST(
      negative.err.find("--max-handshakes-per-address must be at least 0") != std::string::npos,
      negative.err);

  service s({"--workers", "0", "--listen", "127.0.0.1:0", "--max-handshakes-per-address", "8"});
  const auto port = wait_for_port(s.server_dir, "workers connect to", 20s);
  BOOST_REQUIRE(port);
  silent_flood flood{*port, 20};
  BOOST_TEST(flood.refused() == 12u);
  BOOST_TEST(eventually(
      [&] {
        return read_file(s.server_dir / ".drover-stderr")
                   .find("connections from 127.0.0.2 are still to say hello") != std::string::npos;
      },
      5s));
}

BOOST_AUTO_TEST_CASE(a_killed_service_resumes_its_runs_and_wait_keeps_waiting,
                     *boost::unit_test::timeout(120)) {
  const auto port = free_port();
  service s({}, port);
  const auto marker = s.dir / "first-ran";
  const auto pipeline = R"({"modules": [
    {"id": "first", "kind": "exec", "params": {"shell": "echo x >> ')" +
                        marker.string() + R"('"}},
    {"id": "second", "kind": "exec", "deps": ["first"], "params": {"shell": "sleep 1.5"}}]})";
  const auto run = s.submit(pipeline);
  drover_process waiter({"wait", run, "--to", s.to}, s.client_dir);
  // Once second runs, the journal has recorded first (a record is durable before dependents
  // start).
  BOOST_TEST(eventually(
      [&] {
        return s.client({"status", run, "--json"})
                   .out.find(R"("id":"second","deps":["first"],"status":"running")") !=
               std::string::npos;
      },
      20s));
  s.process->send(SIGKILL);
  s.process->wait();
  s.start({}, port);
  const auto waited = waiter.wait(60s);
  BOOST_TEST(waited.exit_code == 0, waited.err);
  BOOST_TEST(waited.out.find("succeeded") != std::string::npos, waited.out);
  BOOST_TEST(read_file(marker) == "x\n");  // journaled as succeeded: not run again
  const auto shown = s.client({"status", run});
  BOOST_TEST(shown.out.find("cached") != std::string::npos, shown.out);
  BOOST_TEST(read_file(s.server_dir / ".drover-stderr").find("resumed") != std::string::npos);
}

namespace {

std::string workers_of(service& s) {
  return s.client({"workers", "--json"}).out;
}

// How many times `drover workers --json` names the run: one per worker serving it.
std::size_t workers_in(service& s, const std::string& run) {
  const auto listed = workers_of(s);
  std::size_t n = 0;
  for (auto at = listed.find(run); at != std::string::npos; at = listed.find(run, at + 1))
    ++n;
  return n;
}

// A pipeline of `n` exec modules PREFIX0.. that each sleep half a second.
std::string sleepers(const std::string& prefix, int n) {
  std::string text = R"({"modules": [)";
  for (int i = 0; i < n; ++i) {
    text += (i ? "," : "") + std::string(R"({"id": ")") + prefix + std::to_string(i) +
            R"(", "kind": "exec", "params": {"shell": "sleep 0.5"}})";
  }
  return text + "]}";
}

// The worker names that ran the run's modules, from `drover status RUN --json`.
std::set<std::string> ran_on(service& s, const std::string& run) {
  std::set<std::string> names;
  const auto shown = boost::json::parse(s.client({"status", run, "--json"}).out);
  for (const auto& m : shown.at("modules").as_array()) {
    if (m.at("worker").is_string()) names.insert(std::string(m.at("worker").as_string()));
  }
  return names;
}

}  // namespace

BOOST_AUTO_TEST_CASE(remote_workers_stay_between_runs_are_shared_and_drained,
                     *boost::unit_test::timeout(150)) {
  service s({"--workers", "0", "--listen", "127.0.0.1:0"});
  const auto port = wait_for_port(s.server_dir, "workers connect to", 20s);
  BOOST_REQUIRE(port);
  std::vector<std::unique_ptr<drover_process>> workers;
  for (int w = 0; w < 2; ++w) {
    const auto dir = s.dir / ("w" + std::to_string(w));
    fs::create_directories(dir);
    workers.push_back(std::make_unique<drover_process>(
        std::vector<std::string>{"worker", "--connect", "127.0.0.1:" + *port, "--id",
                                 "w" + std::to_string(w)},
        dir));
  }
  BOOST_TEST(eventually(
      [&] {
        const auto listed = workers_of(s);
        return listed.find("\"w0\"") != std::string::npos &&
               listed.find("\"w1\"") != std::string::npos;
      },
      20s));

  // A flood of silent connections on the worker port from another address (127.0.0.2): past
  // 64 from one address waiting for their hello they are closed at once, so a new worker from
  // 127.0.0.1 still gets in while the flood holds its 64, and the runs below get their workers.
  silent_flood flood{*port, 300};
  const auto refused = flood.refused();
  BOOST_TEST(refused >= 200u, refused << " of 300 refused");
  {
    const auto dir = s.dir / "w2";
    fs::create_directories(dir);
    drover_process newcomer{{"worker", "--connect", "127.0.0.1:" + *port, "--id", "w2"}, dir};
    BOOST_TEST(eventually([&] { return workers_of(s).find("\"w2\"") != std::string::npos; }, 5s),
               "a worker from another address was kept out by the flood");
    BOOST_TEST(s.client({"drain", "w2"}).exit_code == 0);
    BOOST_TEST(newcomer.wait(20s).exit_code == 0);
    BOOST_TEST(eventually([&] { return workers_of(s).find("\"w2\"") == std::string::npos; }, 10s));
  }
  flood.close();  // the rest end their wait for a hello at once
  std::string parallel = R"({"modules": [)";
  for (int i = 0; i < 6; ++i) {
    parallel += (i ? "," : "") + std::string(R"({"id": "m)") + std::to_string(i) +
                R"(", "kind": "exec", "params": {"shell": "sleep 0.4"}})";
  }
  parallel += "]}";
  // One run: both workers serve it, and stay afterwards.
  const auto first = s.submit(parallel, "first.json");
  BOOST_TEST(s.client({"wait", first}).exit_code == 0);
  BOOST_TEST((ran_on(s, first) == std::set<std::string>{"w0", "w1"}));
  // Two runs at once: each gets a worker.
  const auto a = s.submit(parallel, "a.json");
  const auto b = s.submit(parallel, "b.json");
  BOOST_TEST(s.client({"wait", a}).exit_code == 0);
  BOOST_TEST(s.client({"wait", b}).exit_code == 0);
  BOOST_TEST(!ran_on(s, a).empty());
  BOOST_TEST(!ran_on(s, b).empty());
  for (const auto& w : workers)
    BOOST_TEST(!process_gone(w->pid()), "a worker left after its run");

  // A run that comes while another holds every worker gets one within seconds: the service
  // drains a worker of the long run (it finishes its attempt there) and routes it over.
  const auto holder = s.submit(sleepers("l", 16), "long.json");
  BOOST_TEST(eventually([&] { return workers_in(s, holder) >= 2; }, 20s));
  const auto late = s.submit(R"({"modules": [{"id": "x", "kind": "noop"}]})", "late.json");
  BOOST_TEST(s.client({"wait", late, "--timeout", "20"}).exit_code == 0);
  BOOST_TEST(s.client({"status", holder}).out.find("running") != std::string::npos,
             "the late run finished only after the long one");
  BOOST_TEST(ran_on(s, late).size() == 1u);
  BOOST_TEST(s.client({"wait", holder}).exit_code == 0);

  // Drained by an operator, a worker finishes and leaves for good.
  BOOST_TEST(eventually([&] { return workers_of(s).find("\"w0\"") != std::string::npos; }, 20s));
  const auto drained = s.client({"drain", "w0"});
  BOOST_TEST(drained.exit_code == 0, drained.err);
  const auto left = workers[0]->wait(20s);
  BOOST_TEST(left.exit_code == 0, left.err);
  BOOST_TEST(eventually([&] { return workers_of(s).find("\"w0\"") == std::string::npos; }, 10s));
  BOOST_TEST(workers_of(s).find("\"w1\"") != std::string::npos);
  BOOST_TEST(s.client({"drain", "w0"}).exit_code == 2);
}

BOOST_AUTO_TEST_CASE(a_module_that_needs_a_label_gets_the_worker_that_has_it,
                     *boost::unit_test::timeout(120)) {
  service s({"--workers", "0", "--listen", "127.0.0.1:0"});
  const auto port = wait_for_port(s.server_dir, "workers connect to", 20s);
  BOOST_REQUIRE(port);
  std::vector<std::unique_ptr<drover_process>> workers;
  for (const auto& [name, extra] : {std::pair{"plain", ""}, std::pair{"gpu", "gpu"}}) {
    const auto dir = s.dir / name;
    fs::create_directories(dir);
    std::vector<std::string> args{"worker", "--connect", "127.0.0.1:" + *port, "--id", name};
    if (*extra) args.insert(args.end(), {"--capability", extra});
    workers.push_back(std::make_unique<drover_process>(args, dir));
  }
  BOOST_TEST(eventually(
      [&] {
        const auto listed = workers_of(s);
        return listed.find("\"plain\"") != std::string::npos &&
               listed.find("\"gpu\"") != std::string::npos;
      },
      20s));
  // Both workers take the long run of label-less modules; then a run that needs gpu comes.
  const auto holder = s.submit(sleepers("b", 16), "busy.json");
  BOOST_TEST(eventually([&] { return workers_in(s, holder) >= 2; }, 20s));
  const auto needs_gpu = s.submit(
      R"({"modules": [{"id": "train", "kind": "noop", "requires": ["gpu"]}]})", "gpu.json");
  BOOST_TEST(s.client({"wait", needs_gpu, "--timeout", "20"}).exit_code == 0);
  BOOST_TEST((ran_on(s, needs_gpu) == std::set<std::string>{"gpu"}));
  BOOST_TEST(s.client({"status", holder}).out.find("running") != std::string::npos,
             "the gpu run waited for the long one");
  BOOST_TEST(s.client({"wait", holder}).exit_code == 0);
}
