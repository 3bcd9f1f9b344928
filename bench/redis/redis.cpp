#include "redis/redis.hpp"

#include "redis/failover.hpp"
#include "redis/support.hpp"

#include "common/children.hpp"
#include "common/process.hpp"
#include "common/table.hpp"
#include "common/timing.hpp"
#include "common/worker_rows.hpp"

#include <drover/coord/master.hpp>
#include <drover/coord/redis.hpp>
#include <drover/coord/redis_join.hpp>
#include <drover/coord/redis_stream.hpp>
#include <drover/engine.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cstdio>
#include <optional>
#include <ostream>
#include <stdexcept>

#include <unistd.h>

namespace drover::bench {

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;

// How long worker processes may take to exit after the run ended before they count as hung.
constexpr std::chrono::seconds exit_grace{10};

const char* const drover_binary = drover_binary_path();

coord::redis_join_options join_options(const redis_server& server) {
  coord::redis_join_options o;
  o.where = coord::parse_redis_url(server.url());
  o.password = server.password();
  o.keep_for = 10min;
  return o;
}

// Serves the run's join stream until stop() (a cancellation, which ends it with an error that
// is not one); any other failure stops the io_context with `error` set.
class join_server {
 public:
  join_server(asio::io_context& io, const redis_server& server, const std::string& key,
              std::function<void(coord::redis_stream, std::string)> accept)
      : io_(io) {
    asio::co_spawn(io,
                   coord::accept_redis_workers(join_options(server), coord::run_keys{key},
                                               "bench-master", std::move(accept)),
                   asio::bind_cancellation_slot(stop_.slot(), [this](std::exception_ptr e) {
                     if (!e || stopping_) return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& x) {
                       error_ = std::string("accepting workers: ") + x.what();
                     }
                     io_.stop();
                   }));
  }

  void stop() {
    stopping_ = true;
    stop_.emit(asio::cancellation_type::terminal);
  }
  const std::string& error() const noexcept { return error_; }

 private:
  asio::io_context& io_;
  asio::cancellation_signal stop_;
  bool stopping_ = false;
  std::string error_;
};

// ---- drover rows ---------------------------------------------------------------------------

drover_round_times run_redis_round(const redis_server& server, std::size_t modules,
                                   std::size_t workers, const std::string& key) {
  std::optional<join_server> joins;
  worker_transport redis;
  redis.open = [&](asio::io_context& io, coord::master& master) {
    joins.emplace(io, server, key, [&master](coord::redis_stream stream, std::string peer) {
      master.accept(std::move(stream), std::move(peer));
    });
  };
  redis.close = [&] { joins->stop(); };
  redis.worker_args = [&](const std::string& name) {
    return std::vector<std::string>{"worker",
                                    "--coordinator",
                                    server.url(),
                                    "--run-key",
                                    key,
                                    "--slots",
                                    std::to_string(slots_per_worker),
                                    "--id",
                                    name};
  };
  redis.failure = [&] { return joins ? joins->error() : std::string(); };
  return run_drover_round(modules, workers, redis);
}

// ---- floor rows ----------------------------------------------------------------------------

// Lines waiting to go out on a pipe, and the coroutine that writes them: whatever is pending
// goes in one write (one XADD) while the other end's lines are read meanwhile, full duplex, as
// the master's sessions and the worker do it. One thread: no locking.
class pipe_writer {
 public:
  explicit pipe_writer(asio::any_io_executor executor) : wake_(executor) {}

  void add(std::string_view lines) {
    pending_ += lines;
    wake_.cancel();
  }
  /// run() returns once what is pending was written.
  void finish() {
    finished_ = true;
    wake_.cancel();
  }

  asio::awaitable<void> run(coord::redis_stream& stream) {
    for (;;) {
      if (pending_.empty()) {
        if (finished_) co_return;
        wake_.expires_at(asio::steady_timer::time_point::max());
        co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
      std::string batch;
      batch.swap(pending_);
      co_await asio::async_write(stream, asio::buffer(batch), asio::use_awaitable);
    }
  }

 private:
  asio::steady_timer wake_;
  std::string pending_;
  bool finished_ = false;
};

// The server's end of one floor pipe: at most slots_per_worker lines in flight, the next one
// queued as each answer is parsed.
asio::awaitable<void> serve_floor_pipe(coord::redis_stream stream, floor_state& st) {
  pipe_writer writer{co_await asio::this_coro::executor};
  std::size_t in_flight = 0;
  const auto assign_next = [&] {
    if (st.next >= st.modules) return;
    writer.add(assign_line(st.next++));
    ++in_flight;
  };
  for (std::size_t i = 0; i < slots_per_worker; ++i)
    assign_next();
  const auto read_answers = [&]() -> asio::awaitable<void> {
    std::string in;
    char buffer[65536];
    while (in_flight > 0) {
      const std::size_t got =
          co_await stream.async_read_some(asio::buffer(buffer), asio::use_awaitable);
      in.append(buffer, got);
      for (std::size_t answered = st.take_answers(in); answered > 0; --answered) {
        --in_flight;
        assign_next();
      }
    }
    writer.finish();
  };
  if (in_flight == 0) writer.finish();
  co_await (read_answers() && writer.run(stream));
  stream.close();
}

std::int64_t run_floor_round(const redis_server& server, std::size_t modules, std::size_t workers,
                             const std::string& key) {
  asio::io_context io{1};
  floor_state st{modules};
  floor_watch watch{io, st};
  const auto fail = [&watch](std::exception_ptr e) { watch.fail(e); };
  std::size_t accepted = 0;
  std::optional<join_server> joins;
  joins.emplace(io, server, key, [&](coord::redis_stream stream, std::string) {
    asio::co_spawn(io, serve_floor_pipe(std::move(stream), st), fail);
    if (++accepted == workers) asio::post(io, [&] { joins->stop(); });
  });

  child_group children;
  const auto started = bench_clock::now();
  for (std::size_t k = 1; k <= workers; ++k) {
    const std::string name = "f" + std::to_string(k);
    children.spawn("/proc/self/exe", {"--redis-floor-client", server.url(), key, name},
                   "floor client " + name);
  }
  io.run();

  if (!joins->error().empty()) throw std::runtime_error(joins->error());
  check_floor(st);
  if (std::string problem = children.wait_all(exit_grace); !problem.empty()) {
    throw std::runtime_error(problem);
  }
  return nanoseconds_between(started, st.finished);
}

}  // namespace

std::string redis_rows_missing() {
  if (drover_binary == nullptr) {
    return "this drover-bench was built without the drover binary (configure with "
           "DROVER_BUILD_APP=ON)";
  }
#ifdef REDIS_SERVER_BINARY
  if (::access(REDIS_SERVER_BINARY, X_OK) != 0) {
    return std::string("there is no ") + REDIS_SERVER_BINARY +
           " (Debian: redis-server; scripts/install-deps.sh installs it)";
  }
  return {};
#else
  return "no redis-server was found when drover-bench was configured (Debian: redis-server; "
         "scripts/install-deps.sh installs it)";
#endif
}

bool redis_results::ok() const {
  for (const auto& m : rows)
    if (!m.ok()) return false;
  return failover.ok();
}

redis_results measure_redis(const redis_settings& settings, std::ostream& progress) {
  if (std::string missing = redis_rows_missing(); !missing.empty()) {
    throw std::runtime_error(missing);
  }
  redis_server server;
  redis_results results;
  std::size_t run_number = 0;
  const auto next_key = [&] { return "bench-" + std::to_string(++run_number); };
  results.rows = measure_worker_rows(
      settings.workers, settings.modules, settings.rounds, "redis",
      [&](std::size_t workers) {
        flush_all(server);
        return run_redis_round(server, settings.modules, workers, next_key());
      },
      [&](std::size_t workers) {
        flush_all(server);
        return run_floor_round(server, settings.modules, workers, next_key());
      },
      progress);

  failover_measurement& f = results.failover;
  f.lease_ttl = settings.lease_ttl;
  for (std::size_t round = 1; round <= settings.rounds && f.ok(); ++round) {
    try {
      flush_all(server);
      const failover_round r = run_failover_round(server, settings, next_key());
      f.lease_taken_ns.push_back(r.lease_taken_ns);
      f.resumed_ns.push_back(r.resumed_ns);
      progress << "redis failover round " << round << ": lease taken after "
               << milliseconds_text(r.lease_taken_ns) << " ms, run resumed after "
               << milliseconds_text(r.resumed_ns) << " ms\n";
    } catch (const std::exception& e) {
      f.error = "round " + std::to_string(round) + ": " + e.what();
      progress << "redis failover FAILED: " << f.error << '\n';
    }
  }
  return results;
}

int run_redis_floor_client(const std::string& url, const std::string& run_key,
                           const std::string& name) {
  try {
    coord::redis_join_options options;
    options.where = coord::parse_redis_url(url);
    options.keep_for = 10min;
    run_on_own_io([&](asio::io_context&) -> asio::awaitable<void> {
      coord::redis_stream stream =
          co_await coord::dial_redis_master(options, coord::run_keys{run_key}, name);
      pipe_writer writer{co_await asio::this_coro::executor};
      const auto answer_assigns = [&]() -> asio::awaitable<void> {
        std::string in, out;
        char buffer[65536];
        for (;;) {
          auto [ec, got] = co_await stream.async_read_some(asio::buffer(buffer),
                                                           asio::as_tuple(asio::use_awaitable));
          if (ec == asio::error::eof) break;
          if (ec) throw boost::system::system_error(ec, "reading the pipe");
          in.append(buffer, got);
          answer_assign_lines(in, out);
          writer.add(out);
          out.clear();
        }
        if (!in.empty()) throw std::runtime_error("the server ended the pipe mid-line");
        writer.finish();
      };
      co_await (answer_assigns() && writer.run(stream));
      stream.close();
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "drover-bench --redis-floor-client: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace drover::bench
