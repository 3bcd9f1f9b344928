#include "remote/remote.hpp"

#include "common/process.hpp"
#include "common/table.hpp"
#include "common/timing.hpp"

#include <drover/coord/master.hpp>
#include <drover/engine.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace drover::bench {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::ip::tcp;

// Like the master's dispatcher, the floor keeps at most this many lines in flight per
// connection: the `--slots 16` the drover workers announce.
constexpr std::size_t slots_per_worker = 16;

// How long worker processes may take to exit after the run ended before they count as hung.
constexpr std::chrono::seconds exit_grace{10};

// Child processes whose stdout and stderr go to a file each, shown when one fails. The
// destructor kills (SIGKILL) and reaps every child still running, so no path leaves one behind.
class child_group {
 public:
  child_group() = default;
  child_group(const child_group&) = delete;
  child_group& operator=(const child_group&) = delete;
  ~child_group() {
    for (auto& c : children_) {
      if (c.pid > 0) {
        ::kill(c.pid, SIGKILL);
        int status = 0;
        while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
        }
      }
      ::unlink(c.log_path.c_str());
    }
  }

  void spawn(const std::string& program, const std::vector<std::string>& args, std::string name) {
    child c;
    c.name = std::move(name);
    char log_template[] = "/tmp/drover-bench-remote-XXXXXX";
    const int log_fd = ::mkstemp(log_template);
    if (log_fd < 0) throw std::system_error(errno, std::generic_category(), "mkstemp");
    c.log_path = log_template;

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, log_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, log_fd, STDERR_FILENO);
    std::vector<std::string> copies;
    copies.push_back(program);
    copies.insert(copies.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : copies)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const int spawned =
        ::posix_spawn(&c.pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(log_fd);
    if (spawned != 0) {
      ::unlink(c.log_path.c_str());
      throw std::system_error(spawned, std::generic_category(), "starting " + program);
    }
    children_.push_back(std::move(c));
  }

  // Waits up to `grace` for every child; empty when all exited 0, else which did not and the
  // tail of what it wrote.
  std::string wait_all(std::chrono::milliseconds grace) {
    const auto deadline = bench_clock::now() + grace;
    std::string problems;
    for (auto& c : children_) {
      int status = 0;
      for (;;) {
        const pid_t got = ::waitpid(c.pid, &status, WNOHANG);
        if (got == c.pid) break;
        if (got < 0 && errno != EINTR) {
          throw std::system_error(errno, std::generic_category(), "waitpid");
        }
        if (bench_clock::now() > deadline) {
          ::kill(c.pid, SIGKILL);
          while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
          }
          problems += c.name + " was still running " + std::to_string(grace.count()) +
                      " ms after the run ended and was killed";
          status = 0;
          c.pid = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{1});
      }
      if (c.pid < 0) {
        problems += tail_of(c) + "\n";
        continue;
      }
      c.pid = -1;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
      problems += c.name +
                  (WIFEXITED(status)
                       ? " exited with code " + std::to_string(WEXITSTATUS(status))
                       : std::string(" was killed by signal ") + ::strsignal(WTERMSIG(status))) +
                  tail_of(c) + "\n";
    }
    if (!problems.empty()) problems.pop_back();
    return problems;
  }

 private:
  struct child {
    pid_t pid = -1;
    std::string name;
    std::string log_path;
  };

  static std::string tail_of(const child& c) {
    std::ifstream log(c.log_path);
    std::stringstream text;
    text << log.rdbuf();
    std::string all = text.str();
    if (all.empty()) return "";
    constexpr std::size_t shown = 600;
    if (all.size() > shown) all = "..." + all.substr(all.size() - shown);
    while (!all.empty() && all.back() == '\n')
      all.pop_back();
    return "; its output:\n" + all;
  }

  std::vector<child> children_;
};

// ---- drover rows ---------------------------------------------------------------------------

const char* const drover_binary = drover_binary_path();

struct drover_round {
  std::int64_t run_ns = 0;
  std::int64_t attach_ns = 0;  // -1 when not all workers were welcomed
};

// workers = 0: this body never runs; a module that ran here would fail the run loudly.
asio::awaitable<json::value> refuse_local_run(module_context&) {
  throw std::logic_error("a noop module ran in the master's process, not on a remote worker");
  co_return nullptr;
}

pipeline make_noop_pipeline(std::size_t modules) {
  pipeline p;
  p.name = "remote-bench";
  p.reserve(modules);
  for (std::size_t i = 0; i < modules; ++i)
    p.add("m" + std::to_string(i), refuse_local_run).kind("noop");
  return p;
}

drover_round run_drover_round(std::size_t modules, std::size_t workers) {
  prepare_result prepared = prepare(make_noop_pipeline(modules));
  if (!prepared.ok()) {
    throw std::runtime_error("drover rejected the pipeline:\n" +
                             format_problems(prepared.problems));
  }

  asio::io_context io{1};
  worker_hub::settings hub_settings;
  // Workers that never come fail the run after this long instead of hanging the benchmark.
  hub_settings.capability_timeout = std::chrono::seconds{20};
  auto hub = std::make_shared<worker_hub>(hub_settings);
  coord::master master{io.get_executor(), hub};
  const std::uint16_t port = master.listen().port();

  engine runner{io.get_executor()};
  run_options options;
  options.workers = 0;
  options.remote = hub;

  std::optional<run_report> report;
  bench_clock::time_point finished{}, attached{};
  bool all_attached = false;
  asio::steady_timer attach_poll{io};
  std::function<void()> poll_attach = [&] {
    if (report) return;
    if (master.stats().workers_welcomed >= workers) {
      attached = bench_clock::now();
      all_attached = true;
      return;
    }
    attach_poll.expires_after(std::chrono::microseconds{200});
    attach_poll.async_wait([&](boost::system::error_code ec) {
      if (!ec) poll_attach();
    });
  };

  child_group children;
  const auto started = bench_clock::now();
  runner.async_run(std::move(*prepared.plan), std::move(options), [&](run_report r) {
    finished = bench_clock::now();
    report = std::move(r);
    attach_poll.cancel();
    master.stop();  // every worker was told "run finished"; this closes the connections
  });
  const std::string address = "127.0.0.1:" + std::to_string(port);
  for (std::size_t k = 1; k <= workers; ++k) {
    const std::string name = "w" + std::to_string(k);
    children.spawn(
        drover_binary,
        {"worker", "--connect", address, "--slots", std::to_string(slots_per_worker), "--id", name},
        "drover worker " + name);
  }
  poll_attach();
  io.run();

  if (!report) throw std::runtime_error("drover never called the completion handler");
  if (report->status != run_status::succeeded ||
      report->count(module_status::succeeded) != modules) {
    throw std::runtime_error("the run ended " + std::string(to_string(report->status)) + " with " +
                             std::to_string(report->count(module_status::succeeded)) + " of " +
                             std::to_string(modules) + " modules succeeded");
  }
  const std::uint64_t welcomed = master.stats().workers_welcomed;
  if (welcomed != workers) {
    throw std::runtime_error("the master welcomed " + std::to_string(welcomed) + " workers, not " +
                             std::to_string(workers));
  }
  if (std::string problem = children.wait_all(exit_grace); !problem.empty()) {
    throw std::runtime_error(problem);
  }
  return {nanoseconds_between(started, finished),
          all_attached ? nanoseconds_between(started, attached) : -1};
}

// ---- floor rows ----------------------------------------------------------------------------

// Lines shaped like the protocol's assign and result (docs/protocol.md), with the same
// members, so encoding and parsing cost what the real messages cost.
std::string assign_line(std::size_t module) {
  json::object o;
  o["type"] = "assign";
  o["run"] = "bench";
  o["epoch"] = 1;
  o["module"] = "m" + std::to_string(module);
  o["attempt"] = 1;
  o["kind"] = "noop";
  o["params"] = nullptr;
  o["deps"] = json::array{};
  o["results"] = json::object{};
  std::string line = json::serialize(o);
  line += '\n';
  return line;
}

std::string result_line(const json::object& assign) {
  json::object o;
  o["type"] = "result";
  o["run"] = assign.at("run");
  o["epoch"] = assign.at("epoch");
  o["module"] = assign.at("module");
  o["attempt"] = assign.at("attempt");
  o["status"] = "succeeded";
  o["value"] = nullptr;
  std::string line = json::serialize(o);
  line += '\n';
  return line;
}

// Touched only on the floor's io_context thread.
struct floor_state {
  std::size_t modules = 0;
  std::size_t next = 0;
  std::size_t answered = 0;
  std::vector<std::uint8_t> seen;
  bench_clock::time_point finished{};
  std::string error;
};

// The module index a result line names; throws when the line is not a succeeded result.
std::size_t parse_result(std::string_view line, std::size_t modules) {
  const json::value v = json::parse(line);
  const json::object& o = v.as_object();
  if (o.at("type").as_string() != "result" || o.at("status").as_string() != "succeeded") {
    throw std::runtime_error("not a succeeded result: " + std::string(line));
  }
  const json::string& id = o.at("module").as_string();
  std::size_t module = 0;
  const auto [end, ec] = std::from_chars(id.data() + 1, id.data() + id.size(), module);
  if (id.empty() || id[0] != 'm' || ec != std::errc{} || end != id.data() + id.size() ||
      module >= modules) {
    throw std::runtime_error("a result for an unknown module: " + std::string(line));
  }
  return module;
}

asio::awaitable<void> serve_floor_connection(tcp::socket socket, floor_state& st,
                                             asio::steady_timer& deadline) {
  socket.set_option(tcp::no_delay(true));
  std::string out, in;
  std::size_t in_flight = 0;
  const auto assign_next = [&] {
    if (st.next >= st.modules) return;
    out += assign_line(st.next++);
    ++in_flight;
  };
  for (std::size_t i = 0; i < slots_per_worker; ++i)
    assign_next();
  while (in_flight > 0) {
    if (!out.empty()) {
      co_await asio::async_write(socket, asio::buffer(out), asio::use_awaitable);
      out.clear();
    }
    co_await asio::async_read_until(socket, asio::dynamic_buffer(in), '\n', asio::use_awaitable);
    std::size_t from = 0;
    for (std::size_t nl; (nl = in.find('\n', from)) != std::string::npos; from = nl + 1) {
      const std::size_t module =
          parse_result(std::string_view(in).substr(from, nl - from), st.modules);
      if (st.seen[module]++ != 0) {
        throw std::runtime_error("module m" + std::to_string(module) + " was answered twice");
      }
      --in_flight;
      if (++st.answered == st.modules) {
        st.finished = bench_clock::now();
        deadline.cancel();
      }
      assign_next();
    }
    in.erase(0, from);
  }
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

std::int64_t run_floor_round(std::size_t modules, std::size_t workers) {
  asio::io_context io{1};
  tcp::acceptor acceptor{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  const std::uint16_t port = acceptor.local_endpoint().port();
  floor_state st;
  st.modules = modules;
  st.seen.assign(modules, 0);

  asio::steady_timer deadline{io, std::chrono::seconds{60} + std::chrono::milliseconds{modules}};
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    st.error = "the floor answered " + std::to_string(st.answered) + " of " +
               std::to_string(modules) + " lines before its deadline";
    io.stop();
  });
  const auto fail = [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      if (st.error.empty()) st.error = std::string("floor server: ") + x.what();
    }
    io.stop();
  };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (std::size_t k = 0; k < workers; ++k) {
          tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
          asio::co_spawn(io, serve_floor_connection(std::move(s), st, deadline), fail);
        }
        acceptor.close();
      },
      fail);

  child_group children;
  const auto started = bench_clock::now();
  for (std::size_t k = 1; k <= workers; ++k) {
    children.spawn("/proc/self/exe", {"--floor-client", std::to_string(port)},
                   "floor client " + std::to_string(k));
  }
  io.run();

  if (!st.error.empty()) throw std::runtime_error(st.error);
  if (st.answered != modules) {
    throw std::runtime_error("the floor answered " + std::to_string(st.answered) + " of " +
                             std::to_string(modules) + " lines");
  }
  if (std::string problem = children.wait_all(exit_grace); !problem.empty()) {
    throw std::runtime_error(problem);
  }
  return nanoseconds_between(started, st.finished);
}

double per_second(std::size_t modules, std::int64_t ns) {
  return ns > 0 ? static_cast<double>(modules) * 1e9 / static_cast<double>(ns) : 0.0;
}

}  // namespace

bool remote_rows_available() {
  return drover_binary != nullptr;
}

double remote_measurement::modules_per_second() const {
  return per_second(modules, median_of(run_ns));
}

double remote_measurement::floor_modules_per_second() const {
  return per_second(modules, median_of(floor_ns));
}

std::vector<remote_measurement> measure_remote(const remote_settings& settings,
                                               std::ostream& progress) {
  std::vector<remote_measurement> results;
  for (std::size_t workers : settings.workers) {
    remote_measurement m;
    m.workers = workers;
    m.modules = settings.modules;
    for (std::size_t round = 1; round <= settings.rounds && m.ok(); ++round) {
      const std::string where = "round " + std::to_string(round) + ": ";
      try {
        const drover_round d = run_drover_round(settings.modules, workers);
        m.run_ns.push_back(d.run_ns);
        if (d.attach_ns >= 0) m.attach_ns.push_back(d.attach_ns);
      } catch (const std::exception& e) {
        m.error = where + "drover: " + e.what();
        break;
      }
      try {
        m.floor_ns.push_back(run_floor_round(settings.modules, workers));
      } catch (const std::exception& e) {
        m.error = where + "floor: " + e.what();
      }
    }
    progress << "remote " << workers << " workers, " << settings.modules << " modules: ";
    if (m.ok()) {
      progress << "drover " << grouped(m.modules_per_second()) << " modules/s, floor "
               << grouped(m.floor_modules_per_second()) << " modules/s\n";
    } else {
      progress << "FAILED: " << m.error << '\n';
    }
    results.push_back(std::move(m));
  }
  return results;
}

void print_remote_table(std::ostream& out, const std::vector<remote_measurement>& results,
                        std::size_t rounds, bool markdown) {
  table t({{"workers", true},
           {"modules", true},
           {"run ms", true},
           {"attach ms", true},
           {"modules/s", true},
           {"floor ms", true},
           {"floor modules/s", true},
           {"vs floor", true}});
  for (const auto& m : results) {
    std::vector<std::string> row = {std::to_string(m.workers),
                                    grouped(static_cast<double>(m.modules))};
    if (!m.ok()) {
      row.insert(row.end(), {"FAILED", "-", "-", "-", "-", "-"});
    } else {
      const double floor = m.floor_modules_per_second();
      row.insert(row.end(), {milliseconds_text(median_of(m.run_ns)),
                             m.attach_ns.empty() ? "-" : milliseconds_text(median_of(m.attach_ns)),
                             grouped(m.modules_per_second()),
                             milliseconds_text(median_of(m.floor_ns)), grouped(floor),
                             floor > 0 ? fixed(m.modules_per_second() / floor, 2) + "x" : "-"});
    }
    t.add(std::move(row));
  }
  out << (markdown ? "### " : "") << "Remote workers (median of " << rounds << " rounds, "
      << slots_per_worker << " slots per worker)\n"
      << (markdown ? "\n" : "");
  t.print(out, markdown);
  for (const auto& m : results) {
    if (!m.ok()) out << "FAILED " << m.workers << " workers: " << m.error << '\n';
  }
}

json::object remote_to_json(const std::vector<remote_measurement>& results, std::size_t rounds) {
  json::array rows;
  for (const auto& m : results) {
    json::object o;
    o["workers"] = m.workers;
    o["modules"] = m.modules;
    o["slots_per_worker"] = slots_per_worker;
    o["ok"] = m.ok();
    if (!m.ok()) {
      o["error"] = m.error;
    } else {
      o["run_ns"] = median_of(m.run_ns);
      o["run_ns_rounds"] = json::array(m.run_ns.begin(), m.run_ns.end());
      o["attach_ns"] =
          m.attach_ns.empty() ? json::value(nullptr) : json::value(median_of(m.attach_ns));
      o["modules_per_second"] = m.modules_per_second();
      o["floor_ns"] = median_of(m.floor_ns);
      o["floor_ns_rounds"] = json::array(m.floor_ns.begin(), m.floor_ns.end());
      o["floor_modules_per_second"] = m.floor_modules_per_second();
      const double floor = m.floor_modules_per_second();
      o["vs_floor"] =
          floor > 0 ? json::value(m.modules_per_second() / floor) : json::value(nullptr);
    }
    rows.push_back(std::move(o));
  }
  json::object doc;
  doc["rounds"] = rounds;
  doc["results"] = std::move(rows);
  return doc;
}

int run_floor_client(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("drover-bench --floor-client: socket");
    return 1;
  }
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(port);
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0) {
    std::fprintf(stderr, "drover-bench --floor-client: connecting to 127.0.0.1:%u: %s\n",
                 static_cast<unsigned>(port), std::strerror(errno));
    ::close(fd);
    return 1;
  }
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);

  std::string in, out;
  char buffer[65536];
  try {
    for (;;) {
      const ssize_t got = ::read(fd, buffer, sizeof buffer);
      if (got == 0) break;
      if (got < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(), "read");
      }
      in.append(buffer, static_cast<std::size_t>(got));
      std::size_t from = 0;
      for (std::size_t nl; (nl = in.find('\n', from)) != std::string::npos; from = nl + 1) {
        const json::value assign = json::parse(std::string_view(in).substr(from, nl - from));
        out += result_line(assign.as_object());
      }
      in.erase(0, from);
      for (std::size_t sent = 0; sent < out.size();) {
        const ssize_t put = ::write(fd, out.data() + sent, out.size() - sent);
        if (put < 0) {
          if (errno == EINTR) continue;
          throw std::system_error(errno, std::generic_category(), "write");
        }
        sent += static_cast<std::size_t>(put);
      }
      out.clear();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "drover-bench --floor-client: %s\n", e.what());
    ::close(fd);
    return 1;
  }
  ::close(fd);
  if (!in.empty()) {
    std::fprintf(stderr, "drover-bench --floor-client: the server closed mid-line\n");
    return 1;
  }
  return 0;
}

}  // namespace drover::bench
