#include "remote/remote.hpp"

#include "common/children.hpp"
#include "common/process.hpp"
#include "common/table.hpp"
#include "common/timing.hpp"
#include "common/worker_rows.hpp"

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

namespace drover::bench {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::ip::tcp;

// How long worker processes may take to exit after the run ended before they count as hung.
constexpr std::chrono::seconds exit_grace{10};

// ---- drover rows ---------------------------------------------------------------------------

const char* const drover_binary = drover_binary_path();

}  // namespace

drover_round_times run_tcp_round(std::size_t modules, std::size_t workers,
                                 const tcp_round_hooks& hooks) {
  std::string address;
  worker_transport tcp;
  tcp.open = [&](asio::io_context&, coord::master& master) {
    const auto port = master.listen().port();
    address = "127.0.0.1:" + std::to_string(port);
    if (hooks.listening) hooks.listening(master, port);
  };
  if (hooks.ended) tcp.close = hooks.ended;
  tcp.worker_args = [&](const std::string& name) {
    return std::vector<std::string>{
        "worker", "--connect", address, "--slots", std::to_string(slots_per_worker), "--id", name};
  };
  return run_drover_round(modules, workers, tcp);
}

namespace {

// ---- floor rows ----------------------------------------------------------------------------

asio::awaitable<void> serve_floor_socket(tcp::socket socket, floor_state& st) {
  socket.set_option(tcp::no_delay(true));
  co_await serve_floor_connection(socket, st);
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

std::int64_t run_floor_round(std::size_t modules, std::size_t workers) {
  asio::io_context io{1};
  tcp::acceptor acceptor{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  const std::uint16_t port = acceptor.local_endpoint().port();
  floor_state st{modules};
  floor_watch watch{io, st};
  const auto fail = [&watch](std::exception_ptr e) { watch.fail(e); };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (std::size_t k = 0; k < workers; ++k) {
          tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
          asio::co_spawn(io, serve_floor_socket(std::move(s), st), fail);
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

  check_floor(st);
  if (std::string problem = children.wait_all(exit_grace); !problem.empty()) {
    throw std::runtime_error(problem);
  }
  return nanoseconds_between(started, st.finished);
}

}  // namespace

bool remote_rows_available() {
  return drover_binary != nullptr;
}

std::vector<remote_measurement> measure_remote(const remote_settings& settings,
                                               std::ostream& progress) {
  return measure_worker_rows(
      settings.workers, settings.modules, settings.rounds, "remote",
      [&](std::size_t workers) { return run_tcp_round(settings.modules, workers); },
      [&](std::size_t workers) { return run_floor_round(settings.modules, workers); }, progress);
}

void print_remote_table(std::ostream& out, const std::vector<remote_measurement>& results,
                        std::size_t rounds, bool markdown) {
  print_worker_table(out, "Remote workers", results, rounds, markdown);
}

json::object remote_to_json(const std::vector<remote_measurement>& results, std::size_t rounds) {
  json::object doc;
  doc["rounds"] = rounds;
  doc["results"] = worker_rows_to_json(results);
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
      answer_assign_lines(in, out);
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
