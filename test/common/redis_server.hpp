#pragma once
// A redis-server of the test's own: on a free loopback port, in a temporary directory, with AOF
// on, stopped when the test ends. Never a Redis the machine may already run.
//
//     drover::testing::redis_server redis;          // or redis_server{"a password"}
//     ... redis.port() ...
//     redis.restart();                              // same port and directory: AOF keeps data

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace drover::testing {

class redis_server {
 public:
  explicit redis_server(std::optional<std::string> password = std::nullopt)
      : password_(std::move(password)) {
    dir_ = std::filesystem::temp_directory_path() /
           ("drover-redis-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    std::filesystem::create_directories(dir_);
    port_ = free_port();
    start();
  }
  ~redis_server() {
    stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  const std::optional<std::string>& password() const noexcept { return password_; }
  const std::filesystem::path& dir() const { return dir_; }

  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> args{REDIS_SERVER_BINARY,
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--dir",
                                  dir_.string(),
                                  "--appendonly",
                                  "yes",
                                  "--save",
                                  "",
                                  "--daemonize",
                                  "no",
                                  "--logfile",
                                  (dir_ / "redis.log").string()};
    if (password_) {
      args.push_back("--requirepass");
      args.push_back(*password_);
    }
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::access(REDIS_SERVER_BINARY, X_OK) != 0) {
      throw std::runtime_error(std::string("cannot start ") + REDIS_SERVER_BINARY +
                               ": install redis-server (scripts/install-deps.sh)");
    }
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // The server dies with the test, even when the test crashes, and never holds the test's
      // output open (ctest would wait on it until its timeout).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    wait_until_up();
  }

  /// SIGTERM: Redis writes its AOF and exits.
  void stop() { end(SIGTERM); }
  /// SIGKILL: whatever the AOF had on disk survives.
  void kill() { end(SIGKILL); }
  void restart() {
    stop();
    start();
  }

 private:
  static std::uint16_t free_port() {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    return acceptor.local_endpoint().port();
  }

  void end(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
  }

  // Up once it answers PING with PONG or (with a password) NOAUTH. A restarted server answers
  // LOADING while it reads its AOF: not up yet.
  void wait_until_up() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      try {
        boost::asio::io_context io;
        boost::asio::ip::tcp::socket socket(io);
        socket.connect({boost::asio::ip::make_address("127.0.0.1"), port_});
        boost::asio::write(socket, boost::asio::buffer(std::string("PING\r\n")));
        std::string reply;
        boost::asio::read_until(socket, boost::asio::dynamic_buffer(reply), '\n');
        if (reply.starts_with("+PONG") || reply.starts_with("-NOAUTH")) return;
      } catch (const std::exception&) {
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        throw std::runtime_error("redis-server exited at start; its log:\n" + log());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("redis-server did not answer within 20 s; its log:\n" + log());
  }

  std::string log() const {
    std::ifstream in(dir_ / "redis.log");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::optional<std::string> password_;
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = 0;
};

}  // namespace drover::testing
