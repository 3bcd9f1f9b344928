#include <drover/coord/redis_stream.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

namespace drover::coord {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// Appends what one XREAD returned for one key: [[key, [[id, [field, value, ...]], ...]]].
// Returns false when the reply has another shape.
bool take_entries(const redis_reply& reply, std::string& pending, std::string& last_id, bool& eof) {
  if (!reply.is_array() || reply.elements.empty()) return false;
  const redis_reply& stream = reply.elements.front();
  if (!stream.is_array() || stream.elements.size() != 2 || !stream.elements[1].is_array()) {
    return false;
  }
  for (const redis_reply& entry : stream.elements[1].elements) {
    if (!entry.is_array() || entry.elements.size() != 2) return false;
    last_id = entry.elements[0].text;
    const auto& fields = entry.elements[1].elements;
    for (std::size_t f = 0; f + 1 < fields.size(); f += 2) {
      if (fields[f].text == "b" && !eof) pending += fields[f + 1].text;
      if (fields[f].text == "eof") eof = true;
    }
  }
  return true;
}

}  // namespace

boost::system::error_code redis_link_failed() noexcept {
  class category final : public boost::system::error_category {
   public:
    const char* name() const noexcept override { return "drover.redis_stream"; }
    std::string message(int) const override {
      return "this end's connection to Redis failed (Redis restarted or cannot be reached)";
    }
  };
  static const category the_category;
  return {1, the_category};
}

redis_stream::state::state(asio::any_io_executor executor, redis_stream_options o)
    : strand(asio::make_strand(executor)),
      options(std::move(o)),
      reader(strand),
      writer(strand),
      keeper(strand),
      last_id(options.start_after) {}

redis_stream::redis_stream(asio::any_io_executor executor, redis_stream_options options)
    : state_(std::make_shared<state>(std::move(executor), std::move(options))) {}

redis_stream::~redis_stream() {
  if (state_) close();
}

asio::awaitable<void> redis_stream::open() {
  auto s = state_;
  co_await asio::dispatch(s->strand, asio::use_awaitable);
  co_await s->reader.connect(s->options.where, s->options.password, s->options.connect_timeout);
  co_await s->writer.connect(s->options.where, s->options.password, s->options.connect_timeout);
  if (!s->options.alive_key.empty()) {
    co_await s->keeper.connect(s->options.where, s->options.password, s->options.connect_timeout);
    co_await s->keeper.exec(redis_command("SET", s->options.alive_key, "1", "PX",
                                          std::to_string(s->options.alive_ttl.count())));
    s->keeper_pause.emplace(s->strand);
    asio::co_spawn(s->strand, keep_alive(s), asio::detached);
  }
}

// Sets the alive key again every third of its time to live, until the pipe is closed. A SET
// that fails is tried again on a new connection at the next turn.
asio::awaitable<void> redis_stream::keep_alive(std::shared_ptr<state> s) {
  const std::string ttl = std::to_string(s->options.alive_ttl.count());
  while (!s->closed) {
    s->keeper_pause->expires_after(s->options.alive_ttl / 3);
    co_await s->keeper_pause->async_wait(asio::as_tuple(asio::use_awaitable));
    if (s->closed) break;
    try {
      if (!s->keeper.is_open()) {
        co_await s->keeper.connect(s->options.where, s->options.password,
                                   s->options.connect_timeout);
      }
      co_await s->keeper.exec(redis_command("SET", s->options.alive_key, "1", "PX", ttl));
    } catch (const redis_error&) {
      s->keeper.close();
    }
  }
  s->keeper.close();
}

void redis_stream::close() {
  asio::post(state_->strand, [s = state_] {
    if (s->closed) return;
    s->closed = true;
    s->reader.close();  // ends a waiting XREAD
    if (s->keeper_pause) s->keeper_pause->cancel();
    if (s->writing) return;  // write_some sends the end when its write is done
    s->writing = true;
    asio::co_spawn(s->strand, send_end(s), asio::detached);
  });
}

void redis_stream::cancel() {
  asio::post(state_->strand, [s = state_] {
    s->reading_cancelled = true;
    s->reader.close();  // ends a waiting XREAD
  });
}

asio::awaitable<void> redis_stream::send_end(std::shared_ptr<state> s) {
  try {
    if (s->writer.is_open()) {
      std::vector<std::vector<std::string>> commands;
      commands.push_back(redis_command("XADD", s->options.out, "*", "eof", "1"));
      commands.push_back(
          redis_command("PEXPIRE", s->options.out, std::to_string(s->options.keep_for.count())));
      co_await s->writer.exec_all(std::move(commands), std::chrono::seconds(5));
    }
  } catch (const redis_error&) {
    // The other end will notice through the protocol's heartbeats instead.
  }
  s->writer.close();
}

asio::awaitable<redis_stream::result> redis_stream::read_some(
    std::shared_ptr<state> s, std::vector<asio::mutable_buffer> to) {
  for (;;) {
    if (!s->pending.empty()) {
      const std::size_t n = asio::buffer_copy(to, asio::buffer(s->pending));
      s->pending.erase(0, n);
      co_return result{error_code{}, n};
    }
    if (s->eof_seen) co_return result{asio::error::eof, 0};
    if (s->closed || s->reading_cancelled) co_return result{asio::error::operation_aborted, 0};
    redis_reply reply;
    try {
      reply = co_await s->reader.exec(
          redis_command("XREAD", "COUNT", "256", "BLOCK", std::to_string(s->options.block.count()),
                        "STREAMS", s->options.in, s->last_id),
          s->options.block + std::chrono::seconds(10));
    } catch (const redis_error&) {
      if (s->closed || s->reading_cancelled) {
        co_return result{asio::error::operation_aborted, 0};
      }
      co_return result{redis_link_failed(), 0};
    }
    if (reply.is_nil()) continue;  // nothing within the block time: ask again
    if (!take_entries(reply, s->pending, s->last_id, s->eof_seen)) {
      co_return result{asio::error::connection_reset, 0};
    }
  }
}

asio::awaitable<redis_stream::result> redis_stream::write_some(std::shared_ptr<state> s,
                                                               std::string bytes) {
  if (s->closed || s->writing) co_return result{asio::error::operation_aborted, 0};
  s->writing = true;
  std::vector<std::vector<std::string>> commands;
  commands.push_back(redis_command("XADD", s->options.out, "*", "b", bytes));
  commands.push_back(
      redis_command("PEXPIRE", s->options.out, std::to_string(s->options.keep_for.count())));
  if (s->last_id != s->trimmed_upto && s->last_id != "0") {
    // What this end has read is no longer needed in Redis.
    commands.push_back(redis_command("XTRIM", s->options.in, "MINID", s->last_id));
    s->trimmed_upto = s->last_id;
  }
  result r{error_code{}, bytes.size()};
  try {
    auto replies = co_await s->writer.exec_all(std::move(commands));
    if (replies.front().is_error()) r = {asio::error::broken_pipe, 0};
  } catch (const redis_error&) {
    r = {redis_link_failed(), 0};
  }
  s->writing = false;
  if (s->closed) {
    s->writing = true;
    co_await send_end(s);
  }
  co_return r;
}

}  // namespace drover::coord
