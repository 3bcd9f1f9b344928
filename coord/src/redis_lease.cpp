#include <drover/coord/redis_lease.hpp>

#include "redis_scripts.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <stdexcept>

namespace drover::coord {

namespace asio = boost::asio;

namespace {

bool key_character(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

long long integer_of(const redis_reply& reply, std::string_view what, const std::string& address) {
  if (reply.type != redis_reply::kind::integer) {
    throw redis_error("Redis at " + address + ": unexpected reply to " + std::string(what) +
                      (reply.is_error() ? " (" + reply.text + ")" : ""));
  }
  return reply.integer;
}

}  // namespace

run_keys::run_keys(std::string_view key) : key_(key) {
  if (key.empty() || key.size() > 128) {
    throw std::invalid_argument("run key '" + std::string(key) +
                                "': it must be 1 to 128 characters");
  }
  for (char c : key) {
    if (!key_character(c)) {
      throw std::invalid_argument("run key '" + std::string(key) +
                                  "': only letters, digits and . _ : - may appear in it");
    }
  }
  prefix_ = "drover:{" + key_ + "}:";
}

redis_lease::redis_lease(redis_connection& redis, run_keys keys, std::string instance,
                         std::chrono::milliseconds ttl, std::chrono::milliseconds timeout)
    : redis_(redis),
      keys_(std::move(keys)),
      instance_(std::move(instance)),
      ttl_(ttl),
      timeout_(timeout) {}

std::string redis_lease::value(std::uint64_t epoch) const {
  return std::to_string(epoch) + " " + instance_;
}

asio::awaitable<std::optional<std::uint64_t>> redis_lease::acquire() {
  auto reply =
      co_await redis_.exec(redis_command("EVAL", detail::acquire_script, "2", keys_.lease(),
                                         keys_.epoch(), instance_, std::to_string(ttl_.count())));
  const long long epoch = integer_of(reply, "the lease's acquire script", redis_.address());
  if (epoch <= 0) co_return std::nullopt;
  co_return static_cast<std::uint64_t>(epoch);
}

asio::awaitable<bool> redis_lease::renew(std::uint64_t epoch) {
  auto reply = co_await redis_.exec(redis_command("EVAL", detail::renew_script, "1", keys_.lease(),
                                                  value(epoch), std::to_string(ttl_.count())),
                                    timeout_);
  co_return integer_of(reply, "the lease's renew script", redis_.address()) == 1;
}

asio::awaitable<bool> redis_lease::release(std::uint64_t epoch) {
  auto reply = co_await redis_.exec(
      redis_command("EVAL", detail::release_script, "1", keys_.lease(), value(epoch)), timeout_);
  co_return integer_of(reply, "the lease's release script", redis_.address()) == 1;
}

asio::awaitable<std::optional<lease_holder>> redis_lease::holder() {
  auto reply = co_await redis_.exec(redis_command("GET", keys_.lease()), timeout_);
  if (reply.is_nil()) co_return std::nullopt;
  if (reply.type != redis_reply::kind::string) {
    throw redis_error("Redis at " + redis_.address() + ": unexpected reply to GET " +
                      keys_.lease());
  }
  const auto space = reply.text.find(' ');
  lease_holder out;
  const char* epoch_end = reply.text.data() + (space == std::string::npos ? 0 : space);
  const auto [end, ec] = std::from_chars(reply.text.data(), epoch_end, out.epoch);
  if (space == std::string::npos || ec != std::errc{} || end != epoch_end) {
    throw redis_error("Redis at " + redis_.address() + ": " + keys_.lease() + " holds no lease: '" +
                      reply.text + "'");
  }
  out.instance = reply.text.substr(space + 1);
  co_return out;
}

asio::awaitable<void> keep_lease(redis_lease& lease, lease_keeper& keeper,
                                 std::function<asio::awaitable<void>()> reconnect,
                                 std::function<void(bool master, std::uint64_t epoch)> on_role) {
  using clock = lease_keeper::clock;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  bool was_master = false;
  for (;;) {
    const auto now = clock::now();
    if (keeper.is_master(now) != was_master) {
      was_master = !was_master;
      on_role(was_master, keeper.epoch());
    }
    const lease_keeper::step what = keeper.next(now);
    if (what == lease_keeper::step::wait) {
      if (keeper.is_master(now) != was_master) continue;  // next() just gave the lease up
      timer.expires_at(keeper.wake_at());
      co_await timer.async_wait(asio::use_awaitable);
      continue;
    }
    try {
      if (!lease.connection().is_open()) co_await reconnect();
      if (what == lease_keeper::step::acquire) {
        const auto epoch = co_await lease.acquire();
        if (epoch) {
          keeper.acquired(*epoch, now);
        } else {
          keeper.refused(clock::now());
        }
      } else if (co_await lease.renew(keeper.epoch())) {
        keeper.renewed(now);
      } else {
        keeper.renew_refused(clock::now());
      }
    } catch (const redis_error&) {
      if (what == lease_keeper::step::acquire) {
        keeper.refused(clock::now());
      } else {
        keeper.renew_failed(clock::now());
      }
    }
  }
}

}  // namespace drover::coord
