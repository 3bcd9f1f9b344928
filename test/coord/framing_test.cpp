#include <drover/coord/framing.hpp>

#define BOOST_TEST_MODULE framing
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace coord = drover::coord;
using namespace std::chrono_literals;
using asio::experimental::awaitable_operators::operator||;
using status = coord::line_splitter::status;
using stream = asio::local::stream_protocol::socket;

// --- splitter helpers -------------------------------------------------------------------

struct split_outcome {
  std::vector<std::string> lines;
  bool too_long = false;
  std::size_t taken = 0;         ///< bytes feed() accepted
  std::size_t max_buffered = 0;  ///< most bytes the splitter held at once
  std::size_t max_capacity = 0;  ///< largest buffer it allocated
};

/// Takes every complete line out of the splitter.
void drain(coord::line_splitter& splitter, split_outcome& out) {
  for (;;) {
    const coord::line_splitter::next_result next = splitter.next();
    if (next.what == status::line) {
      out.lines.emplace_back(next.line);
      continue;
    }
    out.too_long = next.what == status::too_long;
    return;
  }
}

/// Feeds the chunks one after the other, taking lines out whenever the splitter is full.
split_outcome split(coord::line_splitter& splitter, const std::vector<std::string>& chunks) {
  split_outcome out;
  for (std::string_view chunk : chunks) {
    while (!chunk.empty() && !out.too_long) {
      const std::size_t taken = splitter.feed(chunk);
      chunk.remove_prefix(taken);
      out.taken += taken;
      out.max_buffered = std::max(out.max_buffered, splitter.buffered_bytes());
      out.max_capacity = std::max(out.max_capacity, splitter.capacity());
      drain(splitter, out);
    }
  }
  return out;
}

split_outcome split(std::size_t max_line_bytes, const std::vector<std::string>& chunks) {
  coord::line_splitter splitter{max_line_bytes};
  return split(splitter, chunks);
}

std::vector<std::string> one_byte_chunks(std::string_view text) {
  std::vector<std::string> chunks;
  for (char c : text)
    chunks.emplace_back(1, c);
  return chunks;
}

using lines = std::vector<std::string>;

// --- socket helpers ---------------------------------------------------------------------

/// Runs `test` (a coroutine) on `io` for at most 20 s and rethrows what it threw. Stops `io`
/// when the test ends, so coroutines it spawned never resume after its frame is gone.
void run_test(asio::io_context& io, asio::awaitable<void> test) {
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(test), [&](std::exception_ptr e) {
    failure = e;
    done = true;
    io.stop();
  });
  io.run_for(20s);
  BOOST_REQUIRE_MESSAGE(done, "the test coroutine did not finish within 20 s");
  if (failure) std::rethrow_exception(failure);
}

asio::awaitable<void> write_text(stream& s, std::string text) {
  co_await asio::async_write(s, asio::buffer(text), asio::use_awaitable);
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds duration) {
  asio::steady_timer timer{co_await asio::this_coro::executor, duration};
  co_await timer.async_wait(asio::use_awaitable);
}

/// read_line that must produce a line.
asio::awaitable<std::string> expect_line(stream& s, coord::line_splitter& splitter) {
  const coord::read_outcome in = co_await coord::read_line(s, splitter);
  BOOST_REQUIRE_MESSAGE(in.ok(), "read_line failed: " << in.error.message());
  co_return std::string(in.line);
}

struct connected_pair {
  asio::io_context io;
  stream near{io};
  stream far{io};
  connected_pair() { asio::local::connect_pair(near, far); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(framing)

// --- line_splitter ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(one_feed_with_one_line) {
  const split_outcome out = split(1024, {"{\"type\":\"bye\"}\n"});
  BOOST_TEST(out.lines == lines{"{\"type\":\"bye\"}"});
  BOOST_TEST(!out.too_long);
}

BOOST_AUTO_TEST_CASE(several_lines_in_one_feed_come_out_in_order) {
  const split_outcome out = split(1024, {"one\ntwo\nthree\n"});
  BOOST_TEST(out.lines == (lines{"one", "two", "three"}));
}

BOOST_AUTO_TEST_CASE(a_line_split_across_many_feeds_is_joined) {
  coord::line_splitter splitter{1024};
  const std::string text = "{\"type\":\"heartbeat\",\"running\":[]}\n";
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    BOOST_TEST(splitter.feed(text.substr(i, 1)) == 1u);
    BOOST_TEST((splitter.next().what == status::need_more));
  }
  splitter.feed("\n");
  const auto next = splitter.next();
  BOOST_TEST((next.what == status::line));
  BOOST_TEST(next.line == text.substr(0, text.size() - 1));

  BOOST_TEST(split(1024, one_byte_chunks("ab\ncd\r\nef\n")).lines == (lines{"ab", "cd", "ef"}));
}

BOOST_AUTO_TEST_CASE(a_trailing_half_line_is_kept_until_completed) {
  coord::line_splitter splitter{1024};
  split_outcome out = split(splitter, {"first\nhal"});
  BOOST_TEST(out.lines == lines{"first"});
  BOOST_TEST(splitter.buffered_bytes() == 3u);
  out = split(splitter, {"f of it", "\nnext"});
  BOOST_TEST(out.lines == lines{"half of it"});
  BOOST_TEST(splitter.buffered_bytes() == 4u);
}

BOOST_AUTO_TEST_CASE(a_carriage_return_before_the_newline_is_stripped) {
  const split_outcome out =
      split(1024, {"crlf\r\n", "inner\rreturn\n", "two\r\r\n", "end\r", "\n"});
  BOOST_TEST(out.lines == (lines{"crlf", "inner\rreturn", "two\r", "end"}));
}

BOOST_AUTO_TEST_CASE(empty_lines_are_skipped) {
  const split_outcome out = split(1024, {"\n\n\r\nx\n\n\r\n", "\ny\n"});
  BOOST_TEST(out.lines == (lines{"x", "y"}));
}

BOOST_AUTO_TEST_CASE(a_line_of_exactly_the_limit_is_accepted) {
  BOOST_TEST(split(8, {"12345678\n"}).lines == lines{"12345678"});
  // The limit counts a '\r' before the '\n'.
  BOOST_TEST(split(8, {"1234567\r\n"}).lines == lines{"1234567"});
  BOOST_TEST(split(8, {"12345678\r\n"}).too_long);
  BOOST_TEST(split(8, {"123456789\n"}).too_long);
}

BOOST_AUTO_TEST_CASE(an_oversized_line_is_detected_before_its_newline_arrives) {
  coord::line_splitter splitter{16};
  split_outcome out = split(splitter, {"ok\n", std::string(16, 'x')});
  BOOST_TEST(out.lines == lines{"ok"});
  BOOST_TEST(!out.too_long);  // 16 bytes may still be a whole line
  out = split(splitter, {"x"});
  BOOST_TEST(out.too_long);  // the 17th byte without a newline is not
  BOOST_TEST(splitter.too_long());
}

BOOST_AUTO_TEST_CASE(no_more_than_max_plus_one_bytes_are_buffered) {
  const std::string chunk(7, 'x');
  const std::vector<std::string> chunks(10000 / chunk.size(), chunk);
  const split_outcome out = split(100, chunks);
  BOOST_TEST(out.too_long);
  BOOST_TEST(out.taken <= 101u);
  BOOST_TEST(out.max_buffered <= 101u);
  BOOST_TEST(out.max_capacity <= 101u);

  // The same with the default limit of 1 MiB and 3 MiB of input.
  const std::vector<std::string> big(48, std::string(64 * 1024, 'y'));
  const split_outcome big_out = split(coord::default_max_line_bytes, big);
  BOOST_TEST(big_out.too_long);
  BOOST_TEST(big_out.taken <= coord::default_max_line_bytes + 1);
  BOOST_TEST(big_out.max_capacity <= coord::default_max_line_bytes + 1);
}

BOOST_AUTO_TEST_CASE(the_limit_can_change_after_the_handshake) {
  coord::line_splitter raised{8};
  raised.set_max_line_bytes(16);
  BOOST_TEST(raised.max_line_bytes() == 16u);
  BOOST_TEST(split(raised, {"0123456789abcdef\n"}).lines == lines{"0123456789abcdef"});

  coord::line_splitter lowered{1024};
  BOOST_TEST(split(lowered, {"short\n0123456"}).lines == lines{"short"});
  lowered.set_max_line_bytes(4);
  BOOST_TEST((lowered.next().what == status::too_long));  // the buffered half line is over it

  coord::line_splitter capped{1024};
  split(capped, {"grow the buffer\n"});
  capped.set_max_line_bytes(8);
  const split_outcome out = split(capped, {std::string(100, 'x')});
  BOOST_TEST(out.too_long);
  BOOST_TEST(out.taken <= 9u);
  BOOST_TEST(out.max_buffered <= 9u);
}

BOOST_AUTO_TEST_CASE(too_long_is_final) {
  coord::line_splitter splitter{4};
  BOOST_TEST(split(splitter, {"abcdef\nok\n"}).too_long);
  BOOST_TEST(splitter.feed("ok\n") == 0u);
  BOOST_TEST((splitter.next().what == status::too_long));
  BOOST_TEST(splitter.prepare().empty());
}

BOOST_AUTO_TEST_CASE(feed_takes_less_while_complete_lines_wait) {
  coord::line_splitter splitter{8};  // room for 9 bytes
  const std::string text = "a\nb\nc\nd\ne\nf\n";
  BOOST_TEST(splitter.feed(text) == 9u);
  // The rest goes in once the waiting lines are taken out; nothing is lost or reordered.
  BOOST_TEST(split(splitter, {text.substr(9)}).lines == (lines{"a", "b", "c", "d", "e", "f"}));
  BOOST_TEST(split(8, {text}).lines == (lines{"a", "b", "c", "d", "e", "f"}));
}

BOOST_AUTO_TEST_CASE(short_lines_keep_the_buffer_small) {
  std::string text;
  for (int i = 0; i < 10000; ++i)
    text += "{\"type\":\"heartbeat\",\"n\":" + std::to_string(i) + "}\n";
  std::vector<std::string> chunks;
  for (std::size_t at = 0; at < text.size(); at += 1000)
    chunks.push_back(text.substr(at, 1000));
  const split_outcome out = split(coord::default_max_line_bytes, chunks);
  BOOST_TEST(out.lines.size() == 10000u);
  BOOST_TEST(out.lines.back() == "{\"type\":\"heartbeat\",\"n\":9999}");
  BOOST_TEST(out.max_capacity <= 4096u);
}

BOOST_AUTO_TEST_CASE(prepare_and_commit_read_in_place) {
  coord::line_splitter splitter{1024};
  std::span<char> room = splitter.prepare();
  BOOST_REQUIRE(room.size() >= 6u);
  std::string_view("hi\nth").copy(room.data(), 5);
  splitter.commit(5);
  BOOST_TEST(splitter.next().line == "hi");
  BOOST_TEST((splitter.next().what == status::need_more));
  room = splitter.prepare();
  std::string_view("ere\n").copy(room.data(), 4);
  splitter.commit(4);
  BOOST_TEST(splitter.next().line == "there");
}

// --- read_line over a socket ------------------------------------------------------------

asio::awaitable<void> reads_lines_written_in_pieces(connected_pair& pair) {
  coord::line_splitter splitter{1024};
  co_await write_text(pair.far, "{\"a\":1}\n{\"b\"");
  BOOST_TEST(co_await expect_line(pair.near, splitter) == "{\"a\":1}");
  co_await write_text(pair.far, ":2}\r\n\n\nlast\n");
  BOOST_TEST(co_await expect_line(pair.near, splitter) == "{\"b\":2}");
  BOOST_TEST(co_await expect_line(pair.near, splitter) == "last");
  pair.far.close();
  const coord::read_outcome end = co_await coord::read_line(pair.near, splitter);
  BOOST_TEST((end.status == coord::read_status::stream_error));
  BOOST_TEST((end.error == asio::error::eof));
}

BOOST_AUTO_TEST_CASE(read_line_reads_lines_written_in_pieces, *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, reads_lines_written_in_pieces(pair));
}

struct stalled_reader {
  bool done = false;
  coord::read_outcome outcome;
  std::string line;
};

asio::awaitable<void> read_into(stream& s, coord::line_splitter& splitter, stalled_reader& r) {
  r.outcome = co_await coord::read_line(s, splitter);
  r.line = std::string(r.outcome.line);
  r.done = true;
}

asio::awaitable<void> a_stalled_peer_keeps_the_reader_waiting(connected_pair& pair) {
  coord::line_splitter splitter{1024};
  stalled_reader reader;
  co_await write_text(pair.far, "{\"type\":\"he");
  asio::co_spawn(pair.io, read_into(pair.near, splitter, reader), asio::detached);
  co_await sleep_for(300ms);
  // Half a line and silence: no line, no error, still waiting. The caller owns timeouts.
  BOOST_TEST(!reader.done);
  BOOST_TEST(splitter.buffered_bytes() == 11u);
  co_await write_text(pair.far, "llo\"}\n");
  for (int i = 0; i < 1000 && !reader.done; ++i)
    co_await sleep_for(5ms);
  BOOST_REQUIRE(reader.done);
  BOOST_TEST(reader.outcome.ok());
  BOOST_TEST(reader.line == "{\"type\":\"hello\"}");
}

BOOST_AUTO_TEST_CASE(a_stalled_half_line_keeps_the_reader_waiting_without_error,
                     *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, a_stalled_peer_keeps_the_reader_waiting(pair));
}

asio::awaitable<void> a_timed_out_read_keeps_its_partial_line(connected_pair& pair) {
  coord::line_splitter splitter{1024};
  co_await write_text(pair.far, "{\"type\":\"by");
  asio::steady_timer timeout{pair.io, 100ms};
  const auto first =
      co_await (coord::read_line(pair.near, splitter) || timeout.async_wait(asio::use_awaitable));
  BOOST_TEST(first.index() == 1u);  // the timer won: nothing complete arrived
  BOOST_TEST(splitter.buffered_bytes() == 11u);
  co_await write_text(pair.far, "e\"}\n");
  BOOST_TEST(co_await expect_line(pair.near, splitter) == "{\"type\":\"bye\"}");
}

BOOST_AUTO_TEST_CASE(a_read_cancelled_by_a_timeout_keeps_the_partial_line,
                     *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, a_timed_out_read_keeps_its_partial_line(pair));
}

asio::awaitable<void> an_oversized_line_is_reported_early(connected_pair& pair) {
  coord::line_splitter splitter{1024};
  // 64 KiB and never a newline; the peer stays connected.
  co_await write_text(pair.far, std::string(64 * 1024, 'x'));
  asio::steady_timer deadline{pair.io, 10s};
  const auto outcome =
      co_await (coord::read_line(pair.near, splitter) || deadline.async_wait(asio::use_awaitable));
  BOOST_REQUIRE(outcome.index() == 0u);
  BOOST_TEST((std::get<0>(outcome).status == coord::read_status::line_too_long));
  BOOST_TEST(splitter.buffered_bytes() <= 1025u);
  BOOST_TEST(splitter.capacity() <= 1025u);
}

BOOST_AUTO_TEST_CASE(an_oversized_line_is_reported_before_its_newline_arrives,
                     *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, an_oversized_line_is_reported_early(pair));
}

asio::awaitable<void> eof_after_half_a_line(connected_pair& pair) {
  coord::line_splitter splitter{1024};
  co_await write_text(pair.far, "whole\npar");
  pair.far.close();
  BOOST_TEST(co_await expect_line(pair.near, splitter) == "whole");
  const coord::read_outcome end = co_await coord::read_line(pair.near, splitter);
  BOOST_TEST((end.error == asio::error::eof));
  BOOST_TEST(!end.ok());
  BOOST_TEST(splitter.buffered_bytes() == 3u);  // the unterminated "par" is not a line
}

BOOST_AUTO_TEST_CASE(eof_in_the_middle_of_a_line_is_a_stream_error,
                     *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, eof_after_half_a_line(pair));
}

asio::awaitable<void> many_lines_in_one_write(connected_pair& pair) {
  coord::line_splitter splitter{256};
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += "line " + std::to_string(i) + "\n";
  co_await write_text(pair.far, text);
  for (int i = 0; i < 2000; ++i) {
    const std::string line = co_await expect_line(pair.near, splitter);
    if (line != "line " + std::to_string(i)) {
      BOOST_TEST(line == "line " + std::to_string(i));
      co_return;
    }
  }
}

BOOST_AUTO_TEST_CASE(many_lines_in_one_write_are_read_in_order, *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, many_lines_in_one_write(pair));
}

// --- line_writer --------------------------------------------------------------------------

asio::awaitable<void> run_writer(coord::line_writer<stream>& writer,
                                 boost::system::error_code& result, bool& finished) {
  result = co_await writer.run();
  finished = true;
}

asio::awaitable<void> queued_lines_go_out_in_one_write(connected_pair& pair) {
  coord::line_writer<stream> writer{pair.near};
  BOOST_TEST(writer.send("one\n"));
  BOOST_TEST(writer.send("two\n"));
  BOOST_TEST(writer.send("three\n"));
  BOOST_TEST(writer.queued_bytes() == 14u);
  writer.close();
  BOOST_TEST(!writer.send("refused\n"));
  const boost::system::error_code result = co_await writer.run();
  BOOST_TEST(!result);
  BOOST_TEST(writer.writes() == 1u);
  BOOST_TEST(writer.queued_bytes() == 0u);

  coord::line_splitter splitter{64};
  BOOST_TEST(co_await expect_line(pair.far, splitter) == "one");
  BOOST_TEST(co_await expect_line(pair.far, splitter) == "two");
  BOOST_TEST(co_await expect_line(pair.far, splitter) == "three");
}

BOOST_AUTO_TEST_CASE(line_writer_batches_queued_lines_into_one_write,
                     *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, queued_lines_go_out_in_one_write(pair));
}

asio::awaitable<void> lines_sent_during_a_write_follow_it(connected_pair& pair) {
  coord::line_writer<stream> writer{pair.near};
  boost::system::error_code result;
  bool finished = false;
  writer.send("first\n");
  asio::co_spawn(pair.io, run_writer(writer, result, finished), asio::detached);
  // run() has started its first write by the time this coroutine runs again.
  co_await asio::post(pair.io, asio::use_awaitable);
  BOOST_TEST(writer.writes() == 1u);
  writer.send("second\n");
  writer.send("third\n");
  writer.send("fourth\n");
  writer.close();

  coord::line_splitter splitter{64};
  for (std::string_view expected : {"first", "second", "third", "fourth"}) {
    BOOST_TEST(co_await expect_line(pair.far, splitter) == expected);
  }
  for (int i = 0; i < 1000 && !finished; ++i)
    co_await sleep_for(5ms);
  BOOST_REQUIRE(finished);
  BOOST_TEST(!result);
  BOOST_TEST(writer.writes() == 2u);
}

BOOST_AUTO_TEST_CASE(line_writer_sends_lines_queued_during_a_write_next_and_in_order,
                     *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, lines_sent_during_a_write_follow_it(pair));
}

asio::awaitable<void> a_failed_write_stops_the_writer(connected_pair& pair) {
  coord::line_writer<stream> writer{pair.near};
  pair.far.close();
  writer.send("into the void\n");
  const boost::system::error_code result = co_await writer.run();
  BOOST_TEST(result.failed());
  BOOST_TEST(!writer.send("more\n"));
}

BOOST_AUTO_TEST_CASE(line_writer_ends_with_the_error_of_a_failed_write,
                     *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, a_failed_write_stops_the_writer(pair));
}

asio::awaitable<void> cancelling_run_stops_the_writer(connected_pair& pair) {
  coord::line_writer<stream> writer{pair.near};
  asio::steady_timer timer{pair.io, 50ms};
  const auto first = co_await (writer.run() || timer.async_wait(asio::use_awaitable));
  BOOST_TEST(first.index() == 1u);
  BOOST_TEST(!writer.send("late\n"));
}

BOOST_AUTO_TEST_CASE(cancelling_line_writer_run_stops_it, *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, cancelling_run_stops_the_writer(pair));
}

// --- codec and framing together -----------------------------------------------------------

asio::awaitable<void> messages_cross_a_socket(connected_pair& pair) {
  coord::line_writer<stream> writer{pair.far};
  boost::system::error_code result;
  bool finished = false;
  asio::co_spawn(pair.io, run_writer(writer, result, finished), asio::detached);
  coord::result_message sent;
  sent.run = "r1";
  sent.module = "build";
  sent.status = drover::module_status::failed;
  sent.error = "stderr:\nline 1\nline 2";
  writer.send(coord::encode(coord::hello_message{{1}, "w", {"linux"}, 2, {}, {}, {}}));
  writer.send(coord::encode(sent));
  writer.send(coord::encode(coord::bye_message{"done"}));
  writer.close();

  coord::line_splitter splitter{coord::default_max_line_bytes};
  std::vector<coord::message> received;
  for (;;) {
    const coord::read_outcome in = co_await coord::read_line(pair.near, splitter);
    if (!in.ok()) break;
    coord::decode_result decoded = coord::decode(in.line);
    BOOST_REQUIRE(decoded.ok());
    received.push_back(std::move(decoded).value());
    if (std::holds_alternative<coord::bye_message>(received.back())) break;
  }
  BOOST_REQUIRE(received.size() == 3u);
  BOOST_TEST(std::get<coord::hello_message>(received[0]).slots == 2u);
  BOOST_TEST((std::get<coord::result_message>(received[1]) == sent));
  BOOST_TEST(std::get<coord::bye_message>(received[2]).reason == "done");
}

BOOST_AUTO_TEST_CASE(encoded_messages_cross_a_socket_and_decode, *boost::unit_test::timeout(30)) {
  connected_pair pair;
  run_test(pair.io, messages_cross_a_socket(pair));
}

BOOST_AUTO_TEST_SUITE_END()
