#include "redis/failover.hpp"

#include "common/children.hpp"
#include "common/process.hpp"
#include "common/timing.hpp"

#include <drover/coord/redis_lease.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace drover::bench {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// `count` sleep modules of 50 ms in 8 lanes (m8 after m0, ...).
std::string failover_pipeline(std::size_t count) {
  json::array modules;
  for (std::size_t i = 0; i < count; ++i) {
    json::object m;
    m["id"] = "m" + std::to_string(i);
    m["kind"] = "sleep";
    m["params"] = json::object{{"ms", 50}};
    if (i >= 8) m["deps"] = json::array{json::value("m" + std::to_string(i - 8))};
    modules.push_back(std::move(m));
  }
  return json::serialize(json::object{{"name", "failover-bench"}, {"modules", std::move(modules)}});
}

// A temporary directory, removed with what is in it.
struct scratch {
  fs::path path;
  scratch() {
    std::string pattern = (fs::temp_directory_path() / "drover-bench-failover-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~scratch() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

std::size_t count_of(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

// Watches the run `key` in Redis: waits for the first master and some journaled modules, kills
// that master's process, and times its successor.
asio::awaitable<void> kill_the_master_and_time_the_successor(const redis_server& server,
                                                             const std::string& key,
                                                             std::size_t kill_after_modules,
                                                             child_group& children,
                                                             failover_round& out) {
  const coord::run_keys keys{key};
  coord::redis_connection c{co_await asio::this_coro::executor};
  co_await c.connect(coord::parse_redis_url(server.url()), server.password());
  asio::steady_timer tick{co_await asio::this_coro::executor};
  const auto sleep = [&](std::chrono::milliseconds d) -> asio::awaitable<void> {
    tick.expires_after(d);
    co_await tick.async_wait(asio::use_awaitable);
  };
  const auto holder = [&]() -> asio::awaitable<std::optional<std::pair<std::uint64_t, int>>> {
    const auto lease = co_await c.exec(coord::redis_command("GET", keys.lease()));
    if (lease.is_nil()) co_return std::nullopt;
    // "EPOCH INSTANCE:HOST-PID"
    const auto space = lease.text.find(' ');
    co_return std::pair{std::stoull(lease.text.substr(0, space)),
                        std::stoi(lease.text.substr(space + 1))};
  };

  const auto give_up = bench_clock::now() + 60s;
  std::optional<std::pair<std::uint64_t, int>> first;
  for (;;) {
    if (bench_clock::now() > give_up) throw std::runtime_error("no instance took the lease");
    first = co_await holder();
    if (first) break;
    co_await sleep(10ms);
  }
  for (;;) {
    if (bench_clock::now() > give_up) throw std::runtime_error("the master journaled too little");
    const auto journal = co_await c.exec(coord::redis_command("XRANGE", keys.journal(), "-", "+"));
    std::size_t journaled = 0;
    for (const auto& entry : journal.elements)
      journaled += count_of(entry.elements.at(1).elements.at(1).text, R"("type":"module")");
    if (journaled >= kill_after_modules) break;
    co_await sleep(10ms);
  }
  children.kill(static_cast<std::size_t>(first->second));
  const auto killed = bench_clock::now();
  const std::string new_run_record = R"("epoch":)" + std::to_string(first->first + 1);
  // Read the journal on from where the last look ended ('(' makes the start exclusive), so a
  // successor that journals many records between two looks (this process starved of CPU by a
  // build beside it) cannot push its run record out of sight.
  std::string after = "-";
  while (out.resumed_ns < 0) {
    if (bench_clock::now() > killed + 60s) {
      throw std::runtime_error("no instance took the run over within 60 s");
    }
    if (out.lease_taken_ns < 0) {
      if (const auto now = co_await holder(); now && now->first > first->first) {
        out.lease_taken_ns = nanoseconds_between(killed, bench_clock::now());
      }
    }
    const auto newer =
        co_await c.exec(coord::redis_command("XRANGE", keys.journal(), after, "+", "COUNT", "100"));
    if (!newer.elements.empty()) after = "(" + newer.elements.back().elements.at(0).text;
    for (const auto& entry : newer.elements) {
      const std::string& lines = entry.elements.at(1).elements.at(1).text;
      if (lines.find(R"("type":"run")") != std::string::npos &&
          lines.find(new_run_record) != std::string::npos) {
        out.resumed_ns = nanoseconds_between(killed, bench_clock::now());
        if (out.lease_taken_ns < 0) out.lease_taken_ns = out.resumed_ns;
      }
    }
    if (out.resumed_ns < 0) co_await sleep(2ms);
  }
}

}  // namespace

failover_round run_failover_round(const redis_server& server, const redis_settings& settings,
                                  const std::string& key) {
  scratch dir;
  std::ofstream(dir.path / "pipeline.json") << failover_pipeline(settings.failover_modules);
  const std::string ttl = std::to_string(settings.lease_ttl.count()) + "ms";
  child_group children;
  for (int i = 0; i < 3; ++i) {
    const fs::path home = dir.path / ("i" + std::to_string(i));
    fs::create_directories(home);
    children.spawn(drover_binary_path(),
                   {"run", "../pipeline.json", "--coordinator", server.url(), "--run-key", key,
                    "--instance", std::to_string(i), "--total", "3", "--workers", "2",
                    "--lease-ttl", ttl, "--progress", "never"},
                   "drover run --instance " + std::to_string(i), home.string());
  }
  failover_round out;
  run_on_own_io([&](asio::io_context&) {
    return kill_the_master_and_time_the_successor(server, key, settings.failover_modules / 4,
                                                  children, out);
  });
  if (std::string problem = children.wait_all(60s); !problem.empty()) {
    throw std::runtime_error(problem);
  }
  return out;
}

}  // namespace drover::bench
