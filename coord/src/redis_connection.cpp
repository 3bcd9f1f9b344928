// One Redis connection: hiredis formats the commands and parses the replies; Asio moves the
// bytes and keeps the time.

#include <drover/coord/redis.hpp>
#include <drover/coord/redis_fake.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <hiredis/hiredis.h>

#include <array>
#include <variant>

namespace drover::coord {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

struct redis_connection::reader {
  redisReader* r = redisReaderCreate();
  reader() {
    if (!r) throw std::bad_alloc();
  }
  ~reader() { redisReaderFree(r); }
  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;
};

namespace {

redis_reply owned(const redisReply& r) {
  redis_reply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = redis_reply::kind::string;
      out.text.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = redis_reply::kind::status;
      out.text.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = redis_reply::kind::error;
      out.text.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = redis_reply::kind::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = redis_reply::kind::array;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i)
        out.elements.push_back(owned(*r.element[i]));
      break;
    default:
      out.type = redis_reply::kind::nil;
      break;
  }
  return out;
}

// One command in RESP, by hiredis's formatter (binary-safe: lengths are passed).
void append_command(std::string& out, const std::vector<std::string>& command) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(command.size());
  lengths.reserve(command.size());
  for (const auto& arg : command) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  char* formatted = nullptr;
  const int size = redisFormatCommandArgv(&formatted, static_cast<int>(argv.size()), argv.data(),
                                          lengths.data());
  if (size < 0 || !formatted) throw std::bad_alloc();
  out.append(formatted, static_cast<std::size_t>(size));
  redisFreeCommand(formatted);
}

std::string milliseconds_text(std::chrono::milliseconds t) {
  return std::to_string(t.count()) + " ms";
}

}  // namespace

redis_connection::redis_connection(asio::any_io_executor executor)
    : socket_(executor), deadline_(executor) {}

redis_connection::~redis_connection() = default;

bool redis_connection::is_open() const noexcept {
  return fake_link_ != nullptr || socket_.is_open();
}

void redis_connection::close() noexcept {
  if (fake_link_) {
    fake_->close_link(std::static_pointer_cast<redis_fake::link>(fake_link_));
    fake_link_.reset();
  }
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  deadline_.cancel();
}

void redis_connection::fail(const std::string& what) {
  close();
  throw redis_error("Redis at " + address_ + ": " + what);
}

asio::awaitable<void> redis_connection::connect(const redis_endpoint& where,
                                                std::optional<std::string> password,
                                                std::chrono::milliseconds timeout) {
  close();
  address_ = where.url();
  fake_ = where.fake;
  if (fake_) {
    try {
      fake_link_ = fake_->open_link();
    } catch (const redis_error& e) {
      fail(e.what());
    }
  }
  reader_ = std::make_unique<reader>();
  if (fake_) {
    co_await hello(where, password, timeout);
    co_return;
  }
  deadline_.expires_after(timeout);
  tcp::resolver resolver(socket_.get_executor());
  auto resolved = co_await (resolver.async_resolve(where.host, std::to_string(where.port),
                                                   asio::as_tuple(asio::use_awaitable)) ||
                            deadline_.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (resolved.index() == 1)
    fail("could not resolve the host within " + milliseconds_text(timeout));
  auto [resolve_ec, endpoints] = std::get<0>(std::move(resolved));
  if (resolve_ec) fail("cannot resolve the host: " + resolve_ec.message());
  auto connected =
      co_await (asio::async_connect(socket_, endpoints, asio::as_tuple(asio::use_awaitable)) ||
                deadline_.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (connected.index() == 1) fail("no connection within " + milliseconds_text(timeout));
  if (auto ec = std::get<0>(std::get<0>(connected)); ec) fail("cannot connect: " + ec.message());
  socket_.set_option(tcp::no_delay(true));

  co_await hello(where, password, timeout);
}

asio::awaitable<void> redis_connection::hello(const redis_endpoint& where,
                                              const std::optional<std::string>& password,
                                              std::chrono::milliseconds timeout) {
  std::vector<std::vector<std::string>> hello;
  if (password) {
    if (where.user.empty()) {
      hello.push_back(redis_command("AUTH", *password));
    } else {
      hello.push_back(redis_command("AUTH", where.user, *password));
    }
  }
  if (where.db != 0) hello.push_back(redis_command("SELECT", std::to_string(where.db)));
  hello.push_back(redis_command("PING"));
  const auto replies = co_await round_trip(hello, timeout);
  std::size_t next = 0;
  if (password && replies[next++].is_error()) {
    fail("the credentials were refused (" + replies[next - 1].text + ")");
  }
  if (where.db != 0 && replies[next++].is_error()) {
    fail("cannot select database " + std::to_string(where.db) + " (" + replies[next - 1].text +
         ")");
  }
  const redis_reply& pong = replies[next];
  if (pong.is_error()) {
    if (pong.text.starts_with("NOAUTH")) {
      fail("it requires a password, and none was given (" + pong.text + ")");
    }
    fail("PING failed (" + pong.text + ")");
  }
}

asio::awaitable<redis_reply> redis_connection::exec(std::vector<std::string> command,
                                                    std::chrono::milliseconds timeout) {
  std::vector<std::vector<std::string>> one;
  one.push_back(std::move(command));
  auto replies = co_await round_trip(one, timeout);
  co_return std::move(replies.front());
}

asio::awaitable<std::vector<redis_reply>> redis_connection::exec_all(
    std::vector<std::vector<std::string>> commands, std::chrono::milliseconds timeout) {
  co_return co_await round_trip(commands, timeout);
}

asio::awaitable<std::vector<redis_reply>> redis_connection::round_trip(
    const std::vector<std::vector<std::string>>& commands, std::chrono::milliseconds timeout) {
  if (fake_link_) {
    auto link = std::static_pointer_cast<redis_fake::link>(fake_link_);
    std::optional<std::string> broke;
    std::vector<redis_reply> replies;
    try {
      replies = co_await fake_->execute(link, commands);
    } catch (const redis_error& e) {
      broke = e.what();
    }
    if (broke) fail(*broke);
    co_return replies;
  }
  if (!socket_.is_open()) {
    throw redis_error("Redis at " + (address_.empty() ? std::string("?") : address_) +
                      ": not connected");
  }
  std::string out;
  for (const auto& command : commands)
    append_command(out, command);
  // One deadline for the whole round trip; each wait races it and loses its operation to it.
  deadline_.expires_after(timeout);
  auto sent = co_await (
      asio::async_write(socket_, asio::buffer(out), asio::as_tuple(asio::use_awaitable)) ||
      deadline_.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (sent.index() == 1) fail("could not send within " + milliseconds_text(timeout));
  if (auto ec = std::get<0>(std::get<0>(sent)); ec) {
    fail("the connection broke while sending (" + ec.message() + ")");
  }
  std::vector<redis_reply> replies;
  replies.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i)
    replies.push_back(co_await read_reply(timeout));
  co_return replies;
}

asio::awaitable<redis_reply> redis_connection::read_reply(std::chrono::milliseconds timeout) {
  std::array<char, 16 * 1024> buffer;
  for (;;) {
    void* parsed = nullptr;
    if (redisReaderGetReply(reader_->r, &parsed) != REDIS_OK) {
      fail(std::string("sent something that is not RESP (") + reader_->r->errstr + ")");
    }
    if (parsed) {
      redis_reply reply = owned(*static_cast<redisReply*>(parsed));
      freeReplyObject(parsed);
      co_return reply;
    }
    auto got = co_await (
        socket_.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable)) ||
        deadline_.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (got.index() == 1) fail("no reply within " + milliseconds_text(timeout));
    auto [ec, n] = std::get<0>(got);
    if (ec == asio::error::eof) fail("it closed the connection");
    if (ec) fail("the connection broke while waiting for a reply (" + ec.message() + ")");
    if (redisReaderFeed(reader_->r, buffer.data(), n) != REDIS_OK) {
      fail(std::string("sent something that is not RESP (") + reader_->r->errstr + ")");
    }
  }
}

}  // namespace drover::coord
