// The journal_store over a Redis stream. Its callers are plain threads, so each request runs to
// its end on the store's own io_context before the call returns.

#include <drover/coord/redis_journal.hpp>

#include <drover/coord/redis_lease.hpp>

#include "redis_scripts.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace drover::coord {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t page_size = 1000;
constexpr std::chrono::milliseconds first_backoff = 100ms;
constexpr std::chrono::milliseconds max_backoff = 2s;

// "0.3 s", "60 s".
std::string seconds_text(std::chrono::steady_clock::duration d) {
  const auto tenths = (std::chrono::duration_cast<std::chrono::milliseconds>(d).count() + 50) / 100;
  return std::to_string(tenths / 10) + (tenths % 10 ? "." + std::to_string(tenths % 10) : "") +
         " s";
}

class redis_journal_store final : public journal_store {
 public:
  explicit redis_journal_store(redis_journal_options options)
      : options_(std::move(options)), keys_(options_.run_key), redis_(io_.get_executor()) {}

  std::string name() const override { return options_.where.url() + " " + keys_.journal(); }

  // The "r" fields of the stream's entries, a page at a time.
  std::string load() override {
    std::string lines;
    std::string from = "-";
    for (;;) {
      redis_reply page;
      try {
        page = request(redis_command("XRANGE", keys_.journal(), from, "+", "COUNT",
                                     std::to_string(page_size)));
      } catch (const redis_error& e) {
        throw journal_error("cannot read journal '" + name() + "': " + e.what());
      }
      if (!page.is_array()) throw unexpected("XRANGE", page);
      for (const auto& entry : page.elements) {
        if (!entry.is_array() || entry.elements.size() != 2 || !entry.elements[1].is_array()) {
          throw unexpected("XRANGE", page);
        }
        const auto& fields = entry.elements[1].elements;
        for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
          if (fields[i].text == "r") lines += fields[i + 1].text;
        }
      }
      if (page.elements.size() < page_size) return lines;
      from = "(" + page.elements.back().elements[0].text;  // after the last entry read
    }
  }

  // A retry after a reply was lost may add the same lines twice; a resume keeps the latest
  // record of each module, so a repeated record changes nothing.
  std::optional<std::string> append(std::string_view lines) override {
    redis_reply reply;
    try {
      reply = request(redis_command("EVAL", detail::append_script, "2", keys_.epoch(),
                                    keys_.journal(), std::to_string(options_.epoch), lines,
                                    std::to_string(options_.keep_for.count())));
    } catch (const redis_error& e) {
      return e.what();
    }
    if (!reply.is_error()) return std::nullopt;
    constexpr std::string_view fenced = "FENCED";
    if (!reply.text.starts_with(fenced)) {
      return "Redis at " + options_.where.url() + ": the journal's append script failed (" +
             reply.text + ")";
    }
    std::string now = reply.text.substr(fenced.size());
    now.erase(0, now.find_first_not_of(' '));
    const std::string self =
        "this master (epoch " + std::to_string(options_.epoch) + ") no longer writes its journal";
    if (now.empty()) {
      return "run " + keys_.key() + " has no epoch in Redis any more (" + keys_.epoch() +
             " is gone); " + self;
    }
    return "another master (epoch " + now + ") took over run " + keys_.key() + "; " + self;
  }

 private:
  using clock = std::chrono::steady_clock;

  // Sends `command`, connecting first when needed, and retries while Redis cannot be reached:
  // with backoff, until give_up_after has passed since the first failed try began. Then throws
  // redis_error saying for how long the coordinator has not answered.
  redis_reply request(const std::vector<std::string>& command) {
    std::optional<clock::time_point> failing_since;
    std::chrono::milliseconds backoff = first_backoff;
    for (;;) {
      const auto began = clock::now();
      const bool was_open = redis_.is_open();
      try {
        return run_here(exec(command));
      } catch (const redis_error& e) {
        redis_.close();  // the next try reconnects
        // A connection that broke since its last use (a Redis restart) is dialled again at
        // once: only a Redis that cannot be reached is waited for. (In a simulation this also
        // keeps a restart of the fake from costing real time: virtual time cannot pass here.)
        if (was_open) continue;
        if (!failing_since) failing_since = began;
        const auto failing_for = clock::now() - *failing_since;
        if (failing_for >= options_.give_up_after) {
          throw redis_error("the coordinator " + options_.where.url() + " has not answered for " +
                            seconds_text(failing_for) + ": " + e.what());
        }
        std::this_thread::sleep_for(
            std::min<clock::duration>(backoff, options_.give_up_after - failing_for));
        backoff = std::min(backoff * 2, max_backoff);
      }
    }
  }

  asio::awaitable<redis_reply> exec(std::vector<std::string> command) {
    if (!redis_.is_open()) {
      co_await redis_.connect(options_.where, options_.password, options_.request_timeout);
    }
    redis_reply reply = co_await redis_.exec(std::move(command), options_.request_timeout);
    // A restarted Redis answers so while it reads its AOF: as good as not answering yet.
    if (reply.is_error() && reply.text.starts_with("LOADING")) {
      throw redis_error("Redis at " + redis_.address() + ": " + reply.text);
    }
    co_return reply;
  }

  // Runs `request` on this store's io_context, on the calling thread, until it completes.
  template <class T>
  T run_here(asio::awaitable<T> request) {
    auto done = asio::co_spawn(io_, std::move(request), asio::use_future);
    io_.restart();
    io_.run();
    return done.get();
  }

  journal_error unexpected(std::string_view command, const redis_reply& reply) const {
    return journal_error("cannot read journal '" + name() + "': unexpected reply to " +
                         std::string(command) + (reply.is_error() ? " (" + reply.text + ")" : ""));
  }

  redis_journal_options options_;
  run_keys keys_;
  asio::io_context io_;
  redis_connection redis_;  // on io_; used by one thread at a time (the journal's contract)
};

}  // namespace

std::shared_ptr<drover::journal_store> make_redis_journal_store(redis_journal_options options) {
  return std::make_shared<redis_journal_store>(std::move(options));
}

}  // namespace drover::coord
