// One instance of a run coordinated through Redis (coordinated_run.hpp): the roles and the
// switches between them. Each role runs on an io_context of its own; the lease_keeper carries
// over, so a worker that took the lease goes on as master without losing it.
#include "coordinated_run.hpp"
#include "journal_copy.hpp"

#include "report.hpp"

#include <drover/coord/master.hpp>
#include <drover/coord/redis.hpp>
#include <drover/coord/redis_join.hpp>
#include <drover/coord/redis_journal.hpp>
#include <drover/coord/redis_lease.hpp>
#include <drover/coord/worker.hpp>
#include <drover/modules/registry.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <csignal>
#include <fstream>
#include <sstream>

namespace drover::app {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

using clock = std::chrono::steady_clock;

// What the master publishes in drover:{KEY}:result when the run ended.
struct published_outcome {
  int exit_code = exit_failed;
  std::string summary;  // as print_summary printed it
  json::value report;   // report_to_json
};

std::string encode(const published_outcome& o) {
  return json::serialize(
      json::object{{"exit", o.exit_code}, {"summary", o.summary}, {"report", o.report}});
}

std::optional<published_outcome> decode(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  const auto* exit = o.if_contains("exit");
  const auto* summary = o.if_contains("summary");
  if (!exit || !exit->is_int64() || !summary || !summary->is_string()) return std::nullopt;
  published_outcome out;
  out.exit_code = static_cast<int>(exit->as_int64());
  out.summary = std::string(summary->as_string());
  if (const auto* report = o.if_contains("report")) out.report = *report;
  return out;
}

// Publishes the outcome unless another master took the run over (its epoch differs), leaves
// the lease to nobody (an instance that comes late reads the outcome instead of taking the
// lease), and lets every key of the run expire `keep_for` from now. Returns 1 when published.
// KEYS: result, epoch, lease, then the rest.
constexpr std::string_view publish_script = R"lua(
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[1] .. ' finished', 'PX', ARGV[3])
for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return 1
)lua";

// How a role ended.
enum class role_end : std::uint8_t { finished, promoted, deposed };

class instance {
 public:
  instance(const run_settings& settings, std::ostream& out, std::ostream& err)
      : settings_(settings),
        c_(settings.coordinator),
        out_(out),
        err_(err),
        where_(coord::parse_redis_url(c_.url)),
        keys_(c_.run_key),
        name_(std::to_string(c_.instance) + ":" + coord::default_worker_id()),
        keeper_(lease_settings_for(c_.lease_ttl), c_.instance, clock::now()) {}

  int run() {
    for (;;) {
      const role_end end = keeper_.is_master(clock::now()) ? act_as_master() : act_as_worker();
      if (end == role_end::finished) return exit_code_;
      if (end == role_end::deposed) {
        err_ << "drover: instance " << c_.instance
             << " lost the master lease to another instance; it goes on as a worker" << std::endl;
      }
    }
  }

 private:
  static coord::lease_settings lease_settings_for(std::chrono::milliseconds ttl) {
    coord::lease_settings s;
    s.ttl = ttl;
    s.renew_every = ttl / 3;
    s.margin = ttl / 5;
    s.others_wait = std::min<std::chrono::milliseconds>(2s, ttl / 2);
    s.retry_every = std::min<std::chrono::milliseconds>(1s, ttl / 4);
    return s;
  }

  coord::redis_join_options join_options() const {
    coord::redis_join_options o;
    o.where = where_;
    o.password = c_.password;
    o.keep_for = c_.keep_for;
    return o;
  }

  void log(std::string_view line) const { err_ << "drover: " << line << std::endl; }

  // Connects, retrying with backoff for up to the coordinator timeout. Throws redis_error,
  // saying so when the timeout is what ended it.
  asio::awaitable<void> connect(coord::redis_connection& redis) const {
    const auto give_up_at = clock::now() + c_.timeout;
    auto delay = 100ms;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
      std::string problem;
      try {
        co_await redis.connect(where_, c_.password);
        co_return;
      } catch (const coord::redis_error& e) {
        problem = e.what();
      }
      // Credentials are wrong now and will be wrong later: no point waiting.
      const bool hopeless = problem.find("credentials were refused") != std::string::npos ||
                            problem.find("requires a password") != std::string::npos;
      if (hopeless) throw coord::redis_error(problem);
      if (clock::now() + delay >= give_up_at) {
        throw coord::redis_error(
            "gave up on the coordinator, out of reach for "
            "--coordinator-timeout (" +
            format_duration(c_.timeout) + "): " + problem);
      }
      timer.expires_after(delay);
      co_await timer.async_wait(asio::use_awaitable);
      delay = std::min<std::chrono::milliseconds>(delay * 2, 2s);
    }
  }

  // The published outcome, if the run has one.
  asio::awaitable<std::optional<published_outcome>> fetch_outcome(coord::redis_connection& redis) {
    if (!redis.is_open()) co_await connect(redis);
    const coord::redis_reply reply =
        co_await redis.exec(coord::redis_command("GET", keys_.result()));
    if (reply.is_nil() || reply.is_error()) co_return std::nullopt;
    co_return decode(reply.text);
  }

  // Prints what the master published, as the master printed it, and keeps its exit code.
  void print(const published_outcome& o) {
    out_ << '\n' << o.summary;
    out_.flush();
    if (!settings_.report_file.empty()) {
      std::ofstream report(settings_.report_file, std::ios::trunc);
      report << json::serialize(o.report) << '\n';
      if (!report)
        err_ << "drover run: cannot write the report file '" << settings_.report_file << "'\n";
    }
    exit_code_ = o.exit_code;
  }

  // --- the worker role ----------------------------------------------------------------------

  role_end act_as_worker() {
    asio::io_context io;
    // Outlives the io_context's work: the lease keeper's cancellation slot points into it.
    asio::cancellation_signal stop_lease;
    std::optional<role_end> end;
    asio::co_spawn(io, work(io, stop_lease), [&](std::exception_ptr failure, role_end result) {
      end = result;
      if (!failure) return;
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        err_ << "drover run: " << e.what() << '\n';
      }
      exit_code_ = exit_failed;
      end = role_end::finished;
    });
    io.run();
    return end.value_or(role_end::finished);
  }

  asio::awaitable<role_end> work(asio::io_context& io, asio::cancellation_signal& stop_lease) {
    coord::redis_connection redis(io.get_executor());
    co_await connect(redis);
    if (auto published = co_await fetch_outcome(redis)) {
      print(*published);
      co_return role_end::finished;
    }
    // Cancelled when this instance becomes the master. Shared: the lease keeper may outlive
    // this coroutine by one request.
    auto promoted_signal = std::make_shared<asio::steady_timer>(io, clock::time_point::max());
    asio::steady_timer& promoted = *promoted_signal;
    const struct stop_on_exit {
      asio::cancellation_signal& signal;
      ~stop_on_exit() { signal.emit(asio::cancellation_type::terminal); }
    } stop_lease_on_exit{stop_lease};
    asio::co_spawn(io, keep_the_lease([promoted_signal](bool master) {
                     if (master) promoted_signal->cancel();
                   }),
                   asio::bind_cancellation_slot(stop_lease.slot(), asio::detached));
    // Instance 0 tries for the lease first: it waits for the answer before it works.
    if (c_.instance == 0 && keeper_.losses() == 0 && keeper_.epoch() == 0) {
      asio::steady_timer first(io, 1s);
      co_await asio::experimental::make_parallel_group(first.async_wait(asio::deferred),
                                                       promoted.async_wait(asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
      promoted.expires_at(clock::time_point::max());
      if (keeper_.is_master(clock::now())) co_return role_end::promoted;
    }
    for (;;) {
      const modules::registry kinds = modules::builtin_registry();
      coord::worker_client worker(io.get_executor(), worker_options(),
                                  [&kinds](std::string_view kind, const json::value& params) {
                                    module_body body;
                                    if (kinds.contains(kind)) body = kinds.make(kind, params);
                                    return body;
                                  });
      asio::signal_set signals(io, SIGINT, SIGTERM);
      // The outcome is watched too: it ends the work even when the master's bye is lost.
      auto [order, outcome, promoted_error, signal_error, signal_number, watch_failure, published] =
          co_await asio::experimental::make_parallel_group(
              worker.async_run(asio::deferred), promoted.async_wait(asio::deferred),
              signals.async_wait(asio::deferred),
              asio::co_spawn(io, watch_outcome(redis), asio::deferred))
              .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
      (void)promoted_error;
      (void)signal_error;
      (void)signal_number;
      if (order[0] == 3) {
        if (watch_failure) std::rethrow_exception(watch_failure);
        print(*published);
        co_return role_end::finished;
      }
      if (order[0] == 1 && keeper_.is_master(clock::now())) {
        log("instance " + std::to_string(c_.instance) + " took the master lease (epoch " +
            std::to_string(keeper_.epoch()) + ")");
        co_return role_end::promoted;
      }
      if (order[0] == 2) {
        exit_code_ = exit_interrupted;
        co_return role_end::finished;
      }
      if (order[0] != 0) continue;  // promoted, and lost it again at once: work on
      if (outcome.how == coord::worker_outcome::kind::run_over) {
        if (auto published = co_await fetch_outcome(redis)) {
          print(*published);
          co_return role_end::finished;
        }
        // The master said bye without an outcome: it lost its lease. Work for the next one.
        continue;
      }
      err_ << "drover run: instance " << c_.instance << ": " << outcome.reason << '\n';
      exit_code_ =
          outcome.how == coord::worker_outcome::kind::stopped ? exit_interrupted : exit_failed;
      co_return role_end::finished;
    }
  }

  // Waits until the run's outcome is published. Throws redis_error when Redis stays out of
  // reach for the coordinator timeout.
  asio::awaitable<std::optional<published_outcome>> watch_outcome(coord::redis_connection& redis) {
    asio::steady_timer poll(co_await asio::this_coro::executor);
    const auto every = std::clamp<std::chrono::milliseconds>(c_.lease_ttl / 4, 100ms, 1s);
    for (;;) {
      poll.expires_after(every);
      co_await poll.async_wait(asio::use_awaitable);
      if (!redis.is_open()) co_await connect(redis);  // throws after the coordinator timeout
      try {
        if (auto published = co_await fetch_outcome(redis)) co_return published;
      } catch (const coord::redis_error& e) {
        log(std::string{"the coordinator is out of reach: "} + e.what());
      }
    }
  }

  // Keeps trying for the lease (and renews it once held) on a connection of its own, until
  // cancelled; `on_role` hears when this instance becomes or stops being the master.
  asio::awaitable<void> keep_the_lease(std::function<void(bool master)> on_role) {
    coord::redis_connection redis(co_await asio::this_coro::executor);
    co_await connect(redis);
    coord::redis_lease lease(redis, keys_, name_, c_.lease_ttl);
    // Named, as in serve_joins: no std::function temporaries in a co_await expression.
    std::function<asio::awaitable<void>()> reconnect = [&]() -> asio::awaitable<void> {
      co_await connect(redis);
    };
    std::function<void(bool, std::uint64_t)> role_changed = [&](bool master, std::uint64_t) {
      on_role(master);
    };
    co_await coord::keep_lease(lease, keeper_, reconnect, role_changed);
  }

  coord::worker_options worker_options() const {
    coord::worker_options o;
    o.dial = coord::redis_dialer(join_options(), keys_, std::to_string(c_.instance));
    o.dial_name = where_.url() + " (run " + c_.run_key + ")";
    o.slots = static_cast<std::uint32_t>(std::max<std::size_t>(settings_.workers, 1));
    o.capabilities = settings_.capabilities;
    o.worker_id = "instance-" + std::to_string(c_.instance);
    o.token = settings_.token;  // the master asks for it when --token-file was given
    o.give_up_after = c_.timeout;
    o.log_dir =
        settings_.log_dir.empty() ? settings_.workspace / ".drover" / "logs" : settings_.log_dir;
    o.workspace = settings_.workspace;
    o.keep_workdirs = settings_.keep_workdirs;
    o.on_log = [this](std::string_view line) { log(line); };
    return o;
  }

  // --- the master role ----------------------------------------------------------------------

  role_end act_as_master() {
    const std::uint64_t epoch = keeper_.epoch();
    {
      // A run another master finished is not run again.
      asio::io_context io;
      std::optional<published_outcome> published;
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            coord::redis_connection redis(io.get_executor());
            co_await connect(redis);
            published = co_await fetch_outcome(redis);
          },
          [&](std::exception_ptr) {});
      io.run();
      if (published) {
        print(*published);
        return role_end::finished;
      }
    }
    log("instance " + std::to_string(c_.instance) + " is the master of run " + c_.run_key +
        " (epoch " + std::to_string(epoch) + ", " + std::to_string(c_.total - 1) +
        " other instances expected)");

    coord::redis_journal_options jo;
    jo.where = where_;
    jo.password = c_.password;
    jo.run_key = c_.run_key;
    jo.epoch = epoch;
    jo.keep_for = c_.keep_for;
    jo.give_up_after = c_.timeout;
    master_role role;
    try {
      journal_options resume;
      resume.resume = true;
      resume.mode = settings_.journal_durability;
      std::shared_ptr<journal_store> store = coord::make_redis_journal_store(jo);
      if (!settings_.journal.empty()) {
        store =
            with_file_copy(std::move(store), settings_.journal, settings_.journal_durability, err_);
      }
      role.journal = run_journal::open_store(std::move(store), resume);
    } catch (const std::exception& e) {
      err_ << "drover run: " << e.what() << '\n';
      exit_code_ = exit_failed;
      return role_end::finished;
    }
    if (role.journal->resuming()) log("resuming from the journal an earlier master kept in Redis");
    role.epoch = epoch;
    role.run_id = c_.run_key;

    bool deposed = false;
    bool finishing = false;
    asio::cancellation_signal stop_lease, stop_accepting;
    std::optional<coord::redis_connection> redis;  // publishes the outcome
    asio::any_io_executor master_executor;
    role.start = [&](asio::io_context& io, coord::master& master, std::function<void()> cancel) {
      redis.emplace(io.get_executor());
      master_executor = io.get_executor();
      asio::co_spawn(io, keep_the_lease([&, cancel](bool master_now) {
                       // Once the outcome is being published, the lease is given up on purpose.
                       if (master_now || deposed || finishing) return;
                       deposed = true;
                       log("the master lease was lost (epoch " + std::to_string(epoch) +
                           "): cancelling this instance's part of the run");
                       cancel();
                     }),
                     asio::bind_cancellation_slot(stop_lease.slot(), asio::detached));
      asio::co_spawn(io, serve_joins(master),
                     asio::bind_cancellation_slot(stop_accepting.slot(), asio::detached));
    };
    role.stop = [&] { redis.reset(); };
    role.finish = [&](const run_report& report, int exit_code, std::function<void()> done) {
      finishing = true;
      published_outcome outcome;
      outcome.exit_code = exit_code;
      std::ostringstream summary;
      print_summary(summary, report);
      outcome.summary = summary.str();
      outcome.report = report_to_json(report);
      asio::co_spawn(
          master_executor,
          [&, text = encode(outcome)]() -> asio::awaitable<void> {
            if (!deposed) co_await publish(*redis, epoch, text);
            stop_lease.emit(asio::cancellation_type::terminal);
            stop_accepting.emit(asio::cancellation_type::terminal);
          },
          [&, done = std::move(done)](std::exception_ptr failure) {
            if (failure) {
              try {
                std::rethrow_exception(failure);
              } catch (const std::exception& e) {
                err_ << "drover run: could not publish the outcome: " << e.what() << '\n';
              }
            }
            done();
          });
    };
    exit_code_ = run_command(settings_, out_, err_, &role);
    return deposed ? role_end::deposed : role_end::finished;
  }

  // Answers workers' joins until cancelled. Redis going away pauses it; it goes on when Redis
  // is back, claiming the joins it read and never answered.
  asio::awaitable<void> serve_joins(coord::master& master) {
    // Named, not temporaries of the co_await expression: with GCC 12, a temporary
    // std::function holding a lambda with state crashed the master there once the join reader
    // was cancelled.
    std::function<void(coord::redis_stream, std::string)> accept = [&master](coord::redis_stream s,
                                                                             std::string peer) {
      master.accept(std::move(s), std::move(peer));
    };
    std::string last_problem;
    std::function<void(const std::string&)> on_problem =
        [this, &last_problem](const std::string& problem) {
          if (problem == last_problem) return;  // said once, not at every pause
          last_problem = problem;
          log("workers cannot join for now: " + problem);
        };
    co_await coord::serve_redis_joins(join_options(), keys_, name_, accept, on_problem);
  }

  asio::awaitable<void> publish(coord::redis_connection& redis, std::uint64_t epoch,
                                const std::string& text) {
    if (!redis.is_open()) co_await connect(redis);
    auto command =
        coord::redis_command("EVAL", std::string{publish_script}, "5", keys_.result(),
                             keys_.epoch(), keys_.lease(), keys_.join(), keys_.journal());
    command.push_back(std::to_string(epoch));
    command.push_back(text);
    command.push_back(std::to_string(c_.keep_for.count()));
    const coord::redis_reply reply = co_await redis.exec(std::move(command));
    if (reply.is_error()) throw coord::redis_error(reply.text);
    if (reply.integer != 1) log("another master took the run over; its outcome stands");
  }

  const run_settings& settings_;
  const run_settings::coordinator_settings& c_;
  std::ostream& out_;
  std::ostream& err_;
  coord::redis_endpoint where_;
  coord::run_keys keys_;
  std::string name_;  // in the lease: "INSTANCE:HOST-PID", unique to this process
  coord::lease_keeper keeper_;
  int exit_code_ = exit_failed;
};

}  // namespace

int coordinated_run_command(const run_settings& settings, std::ostream& out, std::ostream& err) {
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return instance(settings, out, err).run();
  } catch (const std::exception& e) {
    err << "drover run: " << e.what() << '\n';
    return exit_failed;
  }
}

}  // namespace drover::app
