#include <drover/coord/redis_join.hpp>

#include <drover/coord/redis_fake.hpp>

#include <drover/clock.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <random>

namespace drover::coord {

namespace asio = boost::asio;

namespace {

constexpr std::string_view group = "masters";

std::string random_connection_id() {
  std::random_device entropy;
  std::mt19937_64 rng((static_cast<std::uint64_t>(entropy()) << 32) ^ entropy());
  static constexpr char hex[] = "0123456789abcdef";
  std::string id(16, '0');
  for (char& c : id)
    c = hex[rng() % 16];
  return id;
}

bool valid_connection_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!ok) return false;
  }
  return true;
}

redis_stream_options pipe_options(const redis_join_options& o, const run_keys& keys,
                                  std::string_view conn, bool master_end) {
  redis_stream_options out;
  out.where = o.where;
  out.password = o.password;
  out.block = o.block;
  out.keep_for = o.keep_for;
  out.in = keys.pipe(conn, master_end);
  out.out = keys.pipe(conn, !master_end);
  if (!master_end) {
    out.alive_key = keys.alive(conn);
    out.alive_ttl = o.alive_ttl;
  }
  return out;
}

// The value of `field` in a stream entry's [field, value, ...], or empty.
std::string field_of(const redis_reply& fields, std::string_view field) {
  for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    if (fields.elements[i].text == field) return fields.elements[i + 1].text;
  }
  return {};
}

// Opens the master's end of the pipe a join names, hands it over and acknowledges the join.
// A join that names no valid pipe, or whose worker is gone (its alive key expired: it died
// before a master read its join), is acknowledged and dropped.
asio::awaitable<void> answer_join(const redis_reply& entry, redis_connection& redis,
                                  const redis_join_options& options, const run_keys& keys,
                                  const std::function<void(redis_stream, std::string)>& accept) {
  if (!entry.is_array() || entry.elements.size() != 2) co_return;
  const std::string& id = entry.elements[0].text;
  const std::string conn = field_of(entry.elements[1], "conn");
  const std::string instance = field_of(entry.elements[1], "instance");
  const bool alive = valid_connection_id(conn) &&
                     (co_await redis.exec(redis_command("EXISTS", keys.alive(conn)))).integer == 1;
  if (alive) {
    redis_stream stream(co_await asio::this_coro::executor,
                        pipe_options(options, keys, conn, true));
    co_await stream.open();
    accept(std::move(stream), "redis:" + instance + "/" + conn);
  }
  co_await redis.exec(redis_command("XACK", keys.join(), group, id));
}

}  // namespace

asio::awaitable<void> accept_redis_workers(
    redis_join_options options, run_keys keys, std::string master_instance,
    std::function<void(redis_stream stream, std::string peer)> accept) {
  redis_connection redis(co_await asio::this_coro::executor);
  co_await redis.connect(options.where, options.password);
  const std::string join = keys.join();
  auto created =
      co_await redis.exec(redis_command("XGROUP", "CREATE", join, group, "0", "MKSTREAM"));
  if (created.is_error() && !created.text.starts_with("BUSYGROUP")) {
    throw redis_error("Redis at " + redis.address() + ": cannot create the group of " + join +
                      " (" + created.text + ")");
  }
  // Joins an earlier master read and never answered: their workers may still be waiting.
  for (std::string cursor = "0-0";;) {
    auto claimed = co_await redis.exec(
        redis_command("XAUTOCLAIM", join, group, master_instance, "0", cursor, "COUNT", "100"));
    if (!claimed.is_array() || claimed.elements.size() < 2) break;
    for (const redis_reply& entry : claimed.elements[1].elements)
      co_await answer_join(entry, redis, options, keys, accept);
    cursor = claimed.elements[0].text;
    if (cursor == "0-0") break;
  }
  for (;;) {
    auto reply = co_await redis.exec(
        redis_command("XREADGROUP", "GROUP", group, master_instance, "COUNT", "16", "BLOCK",
                      std::to_string(options.block.count()), "STREAMS", join, ">"),
        options.block + std::chrono::seconds(10));
    if (reply.is_nil()) continue;
    if (!reply.is_array() || reply.elements.empty() || reply.elements[0].elements.size() != 2) {
      throw redis_error("Redis at " + redis.address() + ": unexpected reply to XREADGROUP on " +
                        join + (reply.is_error() ? " (" + reply.text + ")" : ""));
    }
    for (const redis_reply& entry : reply.elements[0].elements[1].elements)
      co_await answer_join(entry, redis, options, keys, accept);
  }
}

asio::awaitable<void> serve_redis_joins(
    redis_join_options options, run_keys keys, std::string master_instance,
    std::function<void(redis_stream stream, std::string peer)> accept,
    std::function<void(const std::string& problem)> on_problem, std::chrono::milliseconds pause) {
  run_timer wait(co_await asio::this_coro::executor);
  for (;;) {
    std::string problem = "the join stream ended";
    try {
      co_await accept_redis_workers(options, keys, master_instance, accept);
    } catch (const redis_error& e) {
      problem = e.what();
    }
    const auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) co_return;
    if (on_problem) on_problem(problem);
    wait.expires_after(pause);
    co_await wait.async_wait(asio::use_awaitable);  // throws once cancelled
  }
}

asio::awaitable<redis_stream> dial_redis_master(redis_join_options options, run_keys keys,
                                                std::string instance) {
  // A fake numbers its connections, so that a simulation's names follow its seed.
  const std::string conn =
      options.where.fake ? options.where.fake->next_connection_id() : random_connection_id();
  redis_stream stream(co_await asio::this_coro::executor, pipe_options(options, keys, conn, false));
  co_await stream.open();
  redis_connection redis(co_await asio::this_coro::executor);
  co_await redis.connect(options.where, options.password);
  std::vector<std::vector<std::string>> announce;
  announce.push_back(redis_command("XADD", keys.join(), "*", "conn", conn, "instance", instance));
  announce.push_back(
      redis_command("PEXPIRE", keys.join(), std::to_string(options.keep_for.count())));
  auto replies = co_await redis.exec_all(std::move(announce));
  if (replies.front().is_error()) {
    throw redis_error("Redis at " + redis.address() + ": cannot announce a connection on " +
                      keys.join() + " (" + replies.front().text + ")");
  }
  redis.close();
  co_return stream;
}

namespace {

asio::awaitable<byte_stream> dial_as_byte_stream(redis_join_options options, run_keys keys,
                                                 std::string instance) {
  co_return byte_stream{
      co_await dial_redis_master(std::move(options), std::move(keys), std::move(instance))};
}

}  // namespace

std::function<asio::awaitable<byte_stream>()> redis_dialer(redis_join_options options,
                                                           run_keys keys, std::string instance) {
  return [options = std::move(options), keys = std::move(keys), instance = std::move(instance)] {
    return dial_as_byte_stream(options, keys, instance);
  };
}

}  // namespace drover::coord
