#pragma once
// One connection of the master, split in two: session_core (not a template, in
// coord/src/session.cpp) speaks the protocol; session<Stream> moves bytes for it over any
// connected Asio stream. Included by master.hpp; nothing here is for direct use.

#include <drover/clock.hpp>
#include <drover/coord/framing.hpp>
#include <drover/coord/protocol.hpp>
#include <drover/remote.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace drover::coord::detail {

class master_state;

/// The run's index of every module assigned on one connection, by id: how a result line, which
/// names its module by id, reaches the run as an index. An open-addressing table of (hash,
/// entry) slots over entries kept in the order they were assigned, so that recording an assign
/// costs no allocation (ids of up to 15 bytes). Not thread-safe. Fencing is not done here: the
/// run decides whether a result is current (scheduler_core::remote_ended).
class assignment_table {
 public:
  struct entry {
    std::string id;
    std::uint32_t index = 0;  ///< the run's index of the module
  };

  /// Records that module `index`, whose id is `id`, was assigned here.
  void add(std::string_view id, std::uint32_t index) {
    if (2 * (entries_.size() + 1) > slots_.size()) grow();
    const std::uint64_t h = hash(id);
    for (std::size_t pos = h & mask_;; pos = (pos + 1) & mask_) {
      slot& s = slots_[pos];
      if (s.entry == empty) {
        s = slot{h, static_cast<std::uint32_t>(entries_.size())};
        entries_.push_back({std::string(id), index});
        return;
      }
      if (s.hash == h && entries_[s.entry].id == id) return;
    }
  }

  /// The run's index of module `id`, or null when it was never assigned here.
  const std::uint32_t* find(std::string_view id) const {
    if (slots_.empty()) return nullptr;
    const std::uint64_t h = hash(id);
    for (std::size_t pos = h & mask_;; pos = (pos + 1) & mask_) {
      const slot& s = slots_[pos];
      if (s.entry == empty) return nullptr;
      if (s.hash == h && entries_[s.entry].id == id) return &entries_[s.entry].index;
    }
  }

 private:
  static constexpr std::uint32_t empty = static_cast<std::uint32_t>(-1);
  struct slot {
    std::uint64_t hash = 0;
    std::uint32_t entry = empty;
  };

  static std::uint64_t hash(std::string_view id) noexcept {
    return std::hash<std::string_view>{}(id);
  }

  // Doubles the slots (at most half full) and places every entry again by its stored hash.
  void grow() {
    std::vector<slot> old = std::move(slots_);
    slots_.assign(std::max<std::size_t>(64, old.size() * 2), slot{});
    mask_ = slots_.size() - 1;
    for (const slot& s : old) {
      if (s.entry == empty) continue;
      std::size_t pos = s.hash & mask_;
      while (slots_[pos].entry != empty)
        pos = (pos + 1) & mask_;
      slots_[pos] = s;
    }
  }

  std::vector<slot> slots_;
  std::vector<entry> entries_;
  std::size_t mask_ = 0;
};

/// Assign lines the run wrote for one connection, waiting for the session's strand. The run
/// appends on its strand (worker_link::assign); the first append after a flush posts one
/// flush to the session, which takes everything queued by then: one write, and one hop
/// between the strands, for all the assigns a burst of completions made.
struct assign_outbox {
  struct entry {
    std::string module;
    std::uint32_t index = 0;  ///< the run's index of the module
    std::uint32_t attempt = 0;
  };
  std::mutex mutex;
  std::string lines;           ///< complete assign lines, each ending in '\n'
  std::vector<entry> entries;  ///< one per line, in the same order
  bool flush_posted = false;
};

/// The protocol state of one connection: handshake, the table of what was assigned on it,
/// liveness deadlines and the way it closes. Every member function runs on the session's
/// strand, except the post_* ones, which may be called from any thread.
class session_core : public std::enable_shared_from_this<session_core> {
 public:
  using clock = run_clock;  // virtual in a simulation

  session_core(std::shared_ptr<master_state> master, boost::asio::any_io_executor strand,
               std::string peer);
  virtual ~session_core();
  session_core(const session_core&) = delete;
  session_core& operator=(const session_core&) = delete;

  const boost::asio::any_io_executor& strand() const noexcept { return strand_; }
  std::size_t max_line_bytes() const noexcept;
  /// Before start(): the master admitted this connection under `address`'s limits
  /// (master_state::admit); the session gives its counts back as it goes.
  void count_against(std::string address);

  // --- from the stream side, on the strand -----------------------------------------------

  /// The connection is open and its coroutines run.
  void on_start();
  /// A complete line arrived.
  void on_line(std::string_view line);
  /// The peer sent a line over the limit.
  void on_line_too_long();
  /// Every complete line received so far was handled; the reader waits for more bytes.
  void on_read_pause();
  /// Reading failed; eof when the peer closed.
  void on_read_error(const boost::system::error_code& error);
  /// The reader returned: the peer closed, reading failed, or the lines after closing began
  /// were drained.
  void on_reader_done();
  /// The writer stopped: everything queued was written, or a write failed with `error`.
  void on_writer_stopped(const boost::system::error_code& error);
  /// Does whatever is due at `now` (handshake timeout, heartbeat, loss, closing deadline) and
  /// returns when to be called again.
  clock::time_point on_tick(clock::time_point now);
  /// Lines are still read and handled; false once the connection is closing.
  bool handling_lines() const noexcept { return phase_ < phase::closing; }
  bool closed() const noexcept { return phase_ == phase::closed; }

  // --- from the run (through the remote_worker adapter) or the master, on the strand ---------

  /// Sends what the outbox holds and records the assigns in the table.
  void flush_assigns();
  /// An assign line over the line limit is not sent: the attempt fails at once.
  void refuse_oversized_assign(std::string module, std::uint32_t module_index,
                               std::uint32_t attempt, std::uint64_t epoch, std::size_t bytes);
  void send_cancel(std::string module, std::uint32_t attempt, std::string reason);
  void send_rejected(std::string module, std::uint32_t attempt, std::string code,
                     std::string reason);
  void send_run_finished(std::string reason);
  /// The run assigns this worker nothing more: tell it.
  void send_drain(std::string reason);
  /// An operator asks to drain this worker (master::drain): the run stops placing on it and
  /// then sends drain through send_drain().
  void drain(std::string reason);
  /// The master stops: say bye and close.
  void stop();
  /// Closes the stream now and forgets the connection (detaching its worker if need be).
  void close_now();

  /// Posts stop() to the strand.
  void post_stop();
  /// Posts drain(reason) to the strand; with `rejoin` the drain line says so.
  void post_drain(std::string reason, bool rejoin = false);
  /// Posts send_run_finished(reason) to the strand (master::release).
  void post_release(std::string reason);

 protected:
  /// Queues a line (ending in '\n') for the writer.
  virtual void write_line(std::string_view line) = 0;
  /// No more lines: the writer finishes what is queued, then on_writer_stopped() follows.
  virtual void end_writing() = 0;
  /// Bytes queued behind a write that is still under way (the peer's socket buffer is full),
  /// or 0 while no write is.
  virtual std::size_t bytes_waiting() const = 0;
  /// Half-closes the sending side after the last line, so the peer sees it all and then end of
  /// file. Returns false when the stream has no such notion: then it is closed at once.
  virtual bool shutdown_sending() = 0;
  /// Closes the stream now: pending reads and writes end, the coroutines return.
  virtual void close_stream() = 0;
  /// on_tick() must run soon (a deadline moved earlier).
  virtual void wake_ticker() = 0;

 private:
  enum class phase : std::uint8_t { handshake, attached, closing, closed };

  void handle_hello(std::string_view line);
  void handle_message(std::string_view line);
  void handle_result(result_message& result);
  /// Hands a result the session refused to the run, which counts and answers it. An empty
  /// `code`: the run tells unknown_module from stale_result.
  void reject_result(const result_message& result, std::string code, std::string reason);
  /// Hands the results read so far to the run, all in one call.
  void forward_results();
  void send(const message& m);
  /// Queues lines for the writer and notes when the master last sent something.
  void send_lines(std::string_view lines);
  void send_error(error_code code, std::string text, bool fatal,
                  std::optional<std::string> module = std::nullopt,
                  std::optional<std::uint32_t> attempt = std::nullopt);
  void reply_to(const protocol_error& e, bool fatal);
  /// Stops handling lines, detaches the worker (when attached and the run still wants it) and
  /// lets the writer finish; the stream closes when the writer is done or close_timeout passes.
  void begin_close(std::string detach_reason,
                   worker_hub::detach_cause cause = worker_hub::detach_cause::worker_lost);
  // The cause of a read or write error: the master's own link (a pipe over Redis), or the peer.
  static worker_hub::detach_cause cause_of(const boost::system::error_code& error);
  /// Gives back this connection's place among the handshakes of its address, once.
  void leave_handshake_count();
  std::string who() const;
  void log(std::string_view text) const;

  std::shared_ptr<master_state> master_;
  boost::asio::any_io_executor strand_;
  std::string peer_;
  std::string admitted_address_;  // set by count_against: the master counts it there
  bool in_handshake_count_ = false;
  phase phase_ = phase::handshake;
  std::string name_;  // set by the handshake
  bool owns_name_ = false;
  bool attached_ = false;
  bool run_finished_ = false;
  bool rejoin_on_drain_ = false;  // the drain line tells a staying worker to come back
  bool writer_stopped_ = false;
  bool reader_done_ = false;
  worker_hub::worker_id hub_id_ = 0;
  clock::time_point opened_at_;
  clock::time_point last_heard_;
  clock::time_point last_sent_;
  clock::time_point close_deadline_;
  assignment_table assigned_;
  line_decoder decoder_;
  std::shared_ptr<assign_outbox> outbox_;  // set by the handshake
  std::string flushing_;                   // the outbox's lines while they are written
  std::vector<assign_outbox::entry> flushed_entries_;
  std::vector<remote_completion> results_read_;  // not yet handed to the run
};

/// Says whether a stream type can half-close its sending side (sockets can).
template <typename Stream>
concept half_closable = requires(Stream& s, boost::system::error_code& ec) {
  s.shutdown(boost::asio::socket_base::shutdown_send, ec);
};

/// Closes a stream that has close(error_code&) or close(), ignoring errors: a connection that
/// is going away has nothing left to report.
template <typename Stream>
void close_quietly(Stream& stream) {
  if constexpr (requires(boost::system::error_code & ec) { stream.close(ec); }) {
    boost::system::error_code ignored;
    stream.close(ignored);
  } else {
    stream.close();
  }
}

/// The I/O of one connection over `Stream`: a reader, a writer and a ticker coroutine on the
/// session's strand. Stream needs async_read_some, async_write_some, get_executor and
/// close(error_code&) or close(); a shutdown(shutdown_send, error_code&) is used when it has
/// one.
template <typename Stream>
class session final : public session_core {
 public:
  session(std::shared_ptr<master_state> master, Stream stream, std::string peer)
      : session_core(std::move(master), boost::asio::make_strand(stream.get_executor()),
                     std::move(peer)),
        stream_(std::move(stream)),
        writer_(stream_),
        splitter_(max_line_bytes(), first_read_bytes<Stream>),
        ticker_(strand()) {}

  void start() {
    namespace asio = boost::asio;
    auto self = std::static_pointer_cast<session>(shared_from_this());
    asio::post(strand(), [self] {
      // A coroutine's exception would end the whole io_context's run(); a connection's
      // problems must stay with the connection, so they only close it.
      auto on_done = [self](std::exception_ptr e) {
        if (e) self->close_now();
      };
      asio::co_spawn(
          self->strand(), [self]() { return self->read_loop(); }, on_done);
      asio::co_spawn(self->strand(), self->writer_.run(),
                     [self](std::exception_ptr, boost::system::error_code error) {
                       self->on_writer_stopped(error);
                     });
      asio::co_spawn(
          self->strand(), [self]() { return self->tick_loop(); }, on_done);
      self->on_start();
    });
  }

 private:
  boost::asio::awaitable<void> read_loop() {
    namespace asio = boost::asio;
    try {
      bool failed = false;
      while (handling_lines()) {
        const read_outcome in = co_await read_line(stream_, splitter_, [this] { on_read_pause(); });
        if (in.status == read_status::stream_error) {
          // Never read again after end of file: with an edge-triggered reactor such a read
          // may wait for an event that will not come.
          on_read_error(in.error);
          failed = true;
        } else if (!handling_lines()) {
          break;
        } else if (in.ok()) {
          on_line(in.line);
        } else {
          on_line_too_long();
        }
      }
      // Closing: read and drop what the peer still sends until it closes too, because closing
      // a socket with unread input resets the connection and can destroy our last lines.
      // On the heap: in the coroutine's frame it would cost every connection 4 KB.
      constexpr std::size_t scratch_bytes = 4096;
      const auto scratch = std::make_unique_for_overwrite<char[]>(scratch_bytes);
      while (!failed && !closed()) {
        auto [error, bytes] = co_await stream_.async_read_some(
            asio::buffer(scratch.get(), scratch_bytes), asio::as_tuple(asio::use_awaitable));
        (void)bytes;
        failed = static_cast<bool>(error);
      }
    } catch (const std::exception&) {
    }
    on_reader_done();
  }

  boost::asio::awaitable<void> tick_loop() {
    namespace asio = boost::asio;
    while (!closed()) {
      const clock::time_point next = on_tick(clock::now());
      if (closed()) break;
      ticker_.expires_at(next);
      co_await ticker_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  void write_line(std::string_view line) override { writer_.send(line); }
  void end_writing() override { writer_.close(); }
  std::size_t bytes_waiting() const override {
    return writer_.writing() ? writer_.queued_bytes() : 0;
  }
  bool shutdown_sending() override {
    if constexpr (half_closable<Stream>) {
      boost::system::error_code ignored;
      stream_.shutdown(boost::asio::socket_base::shutdown_send, ignored);
      return true;
    } else {
      return false;
    }
  }
  void close_stream() override {
    writer_.close();
    close_quietly(stream_);
    ticker_.cancel();
  }
  void wake_ticker() override { ticker_.cancel(); }

  Stream stream_;  // before writer_, which refers to it
  line_writer<Stream> writer_;
  line_splitter splitter_;
  run_timer ticker_;
};

}  // namespace drover::coord::detail
