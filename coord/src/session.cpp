#include "session.hpp"

#include "worker_link.hpp"

#include <drover/coord/redis_stream.hpp>

#include <drover/engine.hpp>  // os_labels

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cctype>
#include <exception>
#include <utility>
#include <variant>

namespace drover::coord::detail {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

// Ids and names a worker sent are echoed in errors only this long, so that a reply to an
// oversized field can never itself exceed the worker's line limit.
constexpr std::size_t max_echoed_bytes = 256;

std::int64_t ms_between(session_core::clock::time_point from, session_core::clock::time_point to) {
  return std::chrono::duration_cast<milliseconds>(to - from).count();
}

std::uint32_t to_wire_ms(milliseconds d) {
  return static_cast<std::uint32_t>(
      std::clamp<milliseconds::rep>(d.count(), 1, std::numeric_limits<std::uint32_t>::max()));
}

std::string single_quoted(std::string_view text) {
  return "'" + printable(text) + "'";
}

bool same_label(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

/// Why `capabilities` lacks an OS label, or nothing when it has one. Without it a worker would
/// silently never get a module that requires its OS (docs/protocol.md, hello).
std::optional<std::string> missing_os_label(const std::vector<std::string>& capabilities) {
  std::string accepted;
  for (std::string_view os : os_labels()) {
    for (const auto& label : capabilities) {
      if (same_label(label, os)) return std::nullopt;
    }
    accepted += (accepted.empty() ? "" : ", ") + std::string(os);
  }
  std::string got;
  for (const auto& label : capabilities)
    got += (got.empty() ? "" : ", ") + single_quoted(label);
  return "hello: field 'capabilities': no OS label, expected one of " + accepted + ", got [" +
         printable(got) + "]";
}

std::string version_list(std::span<const int> versions) {
  std::string text = "[";
  for (std::size_t i = 0; i < versions.size(); ++i)
    text += (i > 0 ? ", " : "") + std::to_string(versions[i]);
  return text + "]";
}

}  // namespace

std::string printable(std::string_view text, std::size_t limit) {
  std::string out;
  const std::size_t shown = std::min(text.size(), limit);
  out.reserve(shown + 3);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  if (shown < text.size()) out += "...";
  return out;
}

session_core::session_core(std::shared_ptr<master_state> master, asio::any_io_executor strand,
                           std::string peer)
    : master_(std::move(master)),
      strand_(std::move(strand)),
      peer_(std::move(peer)),
      decoder_(master_->options().line_limits) {
  opened_at_ = last_heard_ = last_sent_ = clock::now();
}

session_core::~session_core() = default;

std::size_t session_core::max_line_bytes() const noexcept {
  return master_->options().line_limits.max_line_bytes;
}

void session_core::count_against(std::string address) {
  admitted_address_ = std::move(address);
  in_handshake_count_ = true;
}

void session_core::leave_handshake_count() {
  if (!in_handshake_count_) return;
  in_handshake_count_ = false;
  master_->handshake_ended(admitted_address_);
}

// --- stream side ---------------------------------------------------------------------------

void session_core::on_start() {
  opened_at_ = last_heard_ = last_sent_ = clock::now();
}

void session_core::on_line(std::string_view line) {
  if (phase_ >= phase::closing) return;
  last_heard_ = clock::now();
  try {
    if (phase_ == phase::handshake) {
      handle_hello(line);
    } else {
      handle_message(line);
    }
  } catch (const std::exception& e) {
    // Out of memory, most likely: this connection ends, the others carry on.
    log(std::string("internal error, closing: ") + e.what());
    send_error(error_code::internal, "the master could not handle the line", true);
    begin_close(std::string("internal error: ") + e.what());
  }
}

void session_core::on_read_pause() {
  forward_results();
}

void session_core::on_line_too_long() {
  if (phase_ >= phase::closing) return;
  const std::string limit = std::to_string(max_line_bytes());
  log("sent a line over the limit of " + limit + " bytes, closing");
  if (phase_ == phase::handshake) master_->count([](master_stats& s) { ++s.handshakes_failed; });
  send_error(error_code::line_too_long, "line exceeds the limit of " + limit + " bytes", true);
  begin_close("sent a line over the limit of " + limit + " bytes");
}

void session_core::on_read_error(const boost::system::error_code& error) {
  if (phase_ >= phase::closing) return;
  const std::string reason = error == asio::error::eof ? std::string("connection closed")
                                                       : "connection error: " + error.message();
  const worker_hub::detach_cause cause = cause_of(error);
  if (phase_ == phase::handshake) {
    master_->count([](master_stats& s) { ++s.handshakes_failed; });
    log(reason + " before the handshake");
  } else {
    log("lost: " + reason);
  }
  begin_close(reason, cause);
}

worker_hub::detach_cause session_core::cause_of(const boost::system::error_code& error) {
  return error == redis_link_failed() ? worker_hub::detach_cause::master_link_failed
                                      : worker_hub::detach_cause::worker_lost;
}

void session_core::on_reader_done() {
  reader_done_ = true;
  if (phase_ < phase::closing) begin_close("connection closed");
  if (writer_stopped_) close_now();
}

void session_core::on_writer_stopped(const boost::system::error_code& error) {
  writer_stopped_ = true;
  if (phase_ == phase::closed) return;
  if (phase_ < phase::closing) {
    log("lost: write failed: " + error.message());
    begin_close("connection error: " + error.message(), cause_of(error));
  }
  // After a clean finish the peer gets end of file and closes; the reader waits for that
  // (bounded by close_timeout) so that our last lines are not lost to a reset.
  if (error || reader_done_ || !shutdown_sending()) close_now();
}

session_core::clock::time_point session_core::on_tick(clock::time_point now) {
  const master_options& o = master_->options();
  if (phase_ == phase::handshake) {
    const clock::time_point deadline = opened_at_ + o.handshake_timeout;
    if (now < deadline) return deadline;
    const std::string waited = std::to_string(o.handshake_timeout.count());
    log("no hello within " + waited + " ms, closing");
    master_->count([](master_stats& s) { ++s.handshakes_failed; });
    send_error(error_code::handshake_timeout, "no hello within " + waited + " ms", true);
    begin_close("");
  }
  if (phase_ == phase::attached) {
    if (now - last_heard_ >= o.lost_worker_timeout) {
      const std::string silence =
          "silent for " + std::to_string(ms_between(last_heard_, now)) + " ms";
      log("lost: " + silence);
      master_->count([](master_stats& s) { ++s.workers_silent; });
      begin_close(silence);
      close_now();  // a silent peer gets no goodbye (docs/protocol.md, liveness)
      return now;
    }
    if (now - last_sent_ >= o.heartbeat_interval) send(heartbeat_message{});
    return std::min(last_sent_ + o.heartbeat_interval, last_heard_ + o.lost_worker_timeout);
  }
  if (phase_ == phase::closing) {
    if (now < close_deadline_) return close_deadline_;
    close_now();
  }
  return now;
}

// --- the protocol ----------------------------------------------------------------------------

void session_core::handle_hello(std::string_view line) {
  const master_options& o = master_->options();
  decode_result decoded = decoder_.decode(line);
  auto refuse = [&](std::string why) {
    log("refused: " + why);
    master_->count([](master_stats& s) { ++s.handshakes_failed; });
    begin_close("");
  };
  if (!decoded.ok()) {
    reply_to(decoded.error(), true);
    return refuse(std::string(to_string(decoded.error().code)) + ": " + decoded.error().message);
  }
  message& m = decoded.value();
  if (auto* error = std::get_if<error_message>(&m)) {
    // An error is never answered with an error.
    master_->count([](master_stats& s) { ++s.errors_received; });
    return refuse("it sent error " + printable(error->code) + " (" + printable(error->message) +
                  ") instead of hello");
  }
  auto* hello = std::get_if<hello_message>(&m);
  if (hello == nullptr) {
    const std::string type{type_name(m)};
    send_error(error_code::handshake_required, "expected hello as the first message, got " + type,
               true);
    return refuse("its first message was " + type + ", not hello");
  }
  const std::optional<int> version = choose_version(hello->versions);
  if (!version) {
    const std::string text = "no common protocol version: worker speaks " +
                             version_list(hello->versions) + ", master speaks " +
                             version_list(supported_protocol_versions);
    send_error(error_code::version_mismatch, text, true);
    return refuse(text);
  }
  if (o.token && !(hello->token && token_matches(*o.token, *hello->token))) {
    send_error(error_code::unauthorized, "missing or wrong token", true);
    return refuse("missing or wrong token");
  }
  if (auto problem = missing_os_label(hello->capabilities)) {
    send_error(error_code::bad_field, *problem, true);
    return refuse(*problem);
  }

  name_ = master_->claim_name(*hello, weak_from_this());
  owns_name_ = true;
  welcome_message welcome;
  welcome.protocol = *version;
  welcome.worker = name_;
  welcome.run = master_->run_id();
  welcome.epoch = master_->epoch();
  welcome.heartbeat_ms = to_wire_ms(o.heartbeat_interval);
  welcome.lost_after_ms = to_wire_ms(o.lost_worker_timeout);
  welcome.max_line_bytes = max_line_bytes();
  welcome.stay = o.stay;
  send(welcome);
  phase_ = phase::attached;
  leave_handshake_count();
  wake_ticker();  // from the handshake deadline to heartbeats and liveness
  master_->count([](master_stats& s) { ++s.workers_welcomed; });
  if (master_->stopping()) {
    // Too late for the run: told so, as a worker that was there at the end (it exits 0).
    const bool over = master_->hub().finished();
    log(over ? "joined after the run finished; told so" : "joined while the master stops; told so");
    run_finished_ = true;
    send(bye_message{over ? "run finished" : "master stopping"});
    begin_close("");
    return;
  }

  std::string labels;
  for (const auto& label : hello->capabilities)
    labels += (labels.empty() ? "" : ", ") + printable(label);
  log("joined with " + std::to_string(hello->slots) + (hello->slots == 1 ? " slot" : " slots") +
      (labels.empty() ? std::string() : ", capabilities " + labels));
  attached_ = true;
  outbox_ = std::make_shared<assign_outbox>();
  hub_id_ = master_->hub().attach(
      make_worker_link(weak_from_this(), strand_, master_->run_id(), outbox_, max_line_bytes()),
      name_, std::move(hello->capabilities), hello->slots);
}

void session_core::handle_message(std::string_view line) {
  decode_result decoded = decoder_.decode(line);
  if (!decoded.ok()) {
    const protocol_error& e = decoded.error();
    const std::string what = std::string(to_string(e.code)) + ": " + e.message;
    if (e.code == error_code::unknown_type) {
      // A newer worker's message: it can wait; nothing it carries was assigned by us.
      log("ignored a line: " + what);
      reply_to(e, false);
      return;
    }
    if (e.type == "error") {
      // An error is never answered, and it carries no result to lose.
      master_->count([](master_stats& s) { ++s.errors_received; });
      log("sent a malformed error, ignored: " + what);
      return;
    }
    // A line we cannot read may have been a result: dropping it would leave its module
    // waiting forever on a worker that goes on heartbeating, so the worker goes and its
    // attempts are reassigned.
    log("sent a malformed line, closing: " + what);
    reply_to(e, true);
    begin_close("sent a malformed line (" + what + ")");
    return;
  }
  message& m = decoded.value();
  if (auto* result = std::get_if<result_message>(&m)) return handle_result(*result);
  if (std::holds_alternative<heartbeat_message>(m)) return;
  if (auto* bye = std::get_if<bye_message>(&m)) {
    log("said bye: " + printable(bye->reason));
    begin_close("it said bye: " + printable(bye->reason));
    return;
  }
  if (auto* error = std::get_if<error_message>(&m)) {
    master_->count([](master_stats& s) { ++s.errors_received; });
    const std::string what = printable(error->code) + ": " + printable(error->message);
    log(std::string("reported ") + (error->fatal ? "a fatal error, closing: " : "an error: ") +
        what);
    if (error->fatal) begin_close("it reported a fatal error (" + what + ")");
    return;
  }
  const std::string type{type_name(m)};
  log("sent a " + type + ", which a worker must not send; ignored");
  send_error(error_code::unknown_type,
             "message type \"" + type + "\" is not accepted from a worker", false);
}

// The connection checks only that the result is for this run; whether its attempt is current,
// a repeat or stale is the run's decision, made in one place (scheduler_core::remote_ended).
void session_core::handle_result(result_message& result) {
  if (result.run != master_->run_id()) {
    return reject_result(result, "stale_result",
                         "it names run " + single_quoted(result.run) + ", this is run " +
                             single_quoted(master_->run_id()));
  }
  // Results go to the run together once the lines at hand are handled (on_read_pause).
  remote_completion& completion = results_read_.emplace_back();
  if (const std::uint32_t* index = assigned_.find(result.module)) {
    completion.module = *index;
  } else {
    // Never assigned here: only the run knows whether it is a module of the run at all.
    completion.module = remote_completion::unknown_module;
    completion.id = std::move(result.module);
  }
  completion.epoch = result.epoch;
  completion.attempt = result.attempt;
  completion.status = result.status;
  completion.value = std::move(result.value);
  completion.error = std::move(result.error);
}

void session_core::reject_result(const result_message& result, std::string code,
                                 std::string reason) {
  rejected_result rejected;
  rejected.module = result.module;  // whole, for the run's lookup; the echo is cut
  rejected.attempt = result.attempt;
  rejected.code = std::move(code);
  rejected.reason = std::move(reason);
  master_->hub().reject(hub_id_, std::move(rejected));
}

void session_core::forward_results() {
  if (results_read_.empty()) return;
  const std::size_t forwarded = results_read_.size();
  master_->count([forwarded](master_stats& s) { s.results_forwarded += forwarded; });
  std::vector<remote_completion> batch;
  batch.reserve(forwarded);
  batch.swap(results_read_);
  master_->hub().complete(hub_id_, std::move(batch));
}

void session_core::send(const message& m) {
  std::string line;
  encode_to(line, m);
  send_lines(line);
}

void session_core::send_lines(std::string_view lines) {
  write_line(lines);
  last_sent_ = clock::now();
  // Only bytes behind an unfinished write count: a burst handed to an idle writer goes to the
  // socket at once, however large.
  const std::size_t waiting = bytes_waiting();
  const std::size_t limit = master_->options().max_send_queue_bytes;
  if (waiting <= limit || phase_ == phase::closed) return;
  // The peer stopped reading: holding more for it would grow without bound, and what is
  // queued would never arrive anyway. No goodbye: it could not be written either.
  const std::string why = "it stopped reading: " + std::to_string(waiting) +
                          " bytes wait to be sent to it, over the limit of " +
                          std::to_string(limit) + " bytes";
  log("lost: " + why);
  if (phase_ == phase::attached) master_->count([](master_stats& s) { ++s.workers_stalled; });
  begin_close(why);
  close_now();
}

void session_core::send_error(error_code code, std::string text, bool fatal,
                              std::optional<std::string> module,
                              std::optional<std::uint32_t> attempt) {
  error_message e = make_error_message(code, std::move(text), fatal);
  if (module && module->size() <= max_echoed_bytes) e.module = std::move(module);
  e.attempt = attempt;
  master_->count_error_sent(e.code);
  send(e);
}

void session_core::reply_to(const protocol_error& problem, bool fatal) {
  error_message e = to_error_message(problem);
  e.fatal = e.fatal || fatal;
  if (e.module && e.module->size() > max_echoed_bytes) e.module.reset();
  master_->count_error_sent(e.code);
  send(e);
}

// --- from the run and the master -----------------------------------------------------------

void session_core::flush_assigns() {
  flushing_.clear();
  flushed_entries_.clear();
  {
    std::lock_guard lock(outbox_->mutex);
    flushing_.swap(outbox_->lines);
    flushed_entries_.swap(outbox_->entries);
    outbox_->flush_posted = false;
  }
  // Closing: the worker was detached (or the run is over), so the run reassigns the attempts.
  if (phase_ != phase::attached || flushing_.empty()) return;
  for (const assign_outbox::entry& e : flushed_entries_)
    assigned_.add(e.module, e.index);
  send_lines(flushing_);
}

void session_core::refuse_oversized_assign(std::string module, std::uint32_t module_index,
                                           std::uint32_t attempt, std::uint64_t epoch,
                                           std::size_t bytes) {
  if (phase_ != phase::attached) return;
  const std::string why = "the assignment is " + std::to_string(bytes) +
                          " bytes, over the line limit of " + std::to_string(max_line_bytes()) +
                          " bytes";
  log("cannot send " + single_quoted(module) + " attempt " + std::to_string(attempt) + ": " + why);
  remote_completion failed;
  failed.module = module_index;
  failed.epoch = epoch;
  failed.attempt = attempt;
  failed.status = module_status::failed;
  failed.error = why;
  master_->hub().complete(hub_id_, std::move(failed));
}

void session_core::send_cancel(std::string module, std::uint32_t attempt, std::string reason) {
  if (phase_ != phase::attached) return;
  cancel_message m;
  m.run = master_->run_id();
  m.epoch = master_->epoch();
  m.module = std::move(module);
  m.attempt = attempt;
  m.reason = std::move(reason);
  send(m);
}

void session_core::send_rejected(std::string module, std::uint32_t attempt, std::string code,
                                 std::string reason) {
  if (phase_ != phase::attached) return;
  error_message e;
  e.message = "result for " + single_quoted(module) + " attempt " + std::to_string(attempt) +
              " was rejected: " + reason;
  e.code = std::move(code);
  e.fatal = false;
  if (!module.empty() && module.size() <= max_echoed_bytes) e.module = std::move(module);
  e.attempt = attempt;
  master_->count_error_sent(e.code);
  master_->count([](master_stats& s) { ++s.results_rejected; });
  send(e);
}

void session_core::send_drain(std::string reason) {
  if (phase_ != phase::attached) return;
  log("draining: " + printable(reason));
  drain_message m;
  m.reason = std::move(reason);
  m.rejoin = rejoin_on_drain_;
  send(m);
}

void session_core::drain(std::string reason) {
  if (phase_ != phase::attached || !attached_) return;
  // No run to stop placing on it (a service's idle worker): it has nothing to finish.
  if (!master_->hub().bound()) return send_drain(std::move(reason));
  master_->hub().drain(hub_id_, std::move(reason));
}

void session_core::send_run_finished(std::string reason) {
  if (phase_ >= phase::closing) return;
  run_finished_ = true;
  send(bye_message{std::move(reason)});
  begin_close("");
}

void session_core::stop() {
  if (phase_ >= phase::closing) return;
  // While the master lingers a hello still gets its answer: welcome, then bye.
  if (phase_ == phase::handshake && !master_->stopped()) return;
  if (phase_ == phase::attached) {
    const bool over = master_->hub().finished();
    run_finished_ = over;
    send(bye_message{over ? "run finished" : "master stopping"});
  }
  begin_close("master stopping");
}

void session_core::post_stop() {
  asio::post(strand_, [self = shared_from_this()] { self->stop(); });
}

void session_core::post_drain(std::string reason, bool rejoin) {
  asio::post(strand_, [self = shared_from_this(), reason = std::move(reason), rejoin]() mutable {
    self->rejoin_on_drain_ = rejoin;
    self->drain(std::move(reason));
  });
}

void session_core::post_release(std::string reason) {
  asio::post(strand_, [self = shared_from_this(), reason = std::move(reason)]() mutable {
    if (self->phase_ == phase::attached) self->send_run_finished(std::move(reason));
  });
}

// --- closing -------------------------------------------------------------------------------

void session_core::begin_close(std::string detach_reason, worker_hub::detach_cause cause) {
  if (phase_ >= phase::closing) return;
  forward_results();  // before the detach: results that arrived count, and are not reassigned
  phase_ = phase::closing;
  if (attached_ && !run_finished_) {
    master_->count([](master_stats& s) { ++s.workers_left; });
    master_->hub().detach(
        hub_id_, detach_reason.empty() ? "connection closed" : std::move(detach_reason), cause);
  }
  if (owns_name_) {
    master_->release_name(name_);
    owns_name_ = false;
  }
  end_writing();
  close_deadline_ = clock::now() + master_->options().close_timeout;
  wake_ticker();
}

void session_core::close_now() {
  if (phase_ == phase::closed) return;
  if (phase_ < phase::closing) begin_close("connection closed");
  phase_ = phase::closed;
  leave_handshake_count();
  if (!admitted_address_.empty()) master_->connection_ended(admitted_address_);
  master_->session_closed();
  close_stream();
}

std::string session_core::who() const {
  return name_.empty() ? peer_ : peer_ + " (" + printable(name_) + ")";
}

void session_core::log(std::string_view text) const {
  master_->log("worker " + who() + ": " + std::string(text));
}

}  // namespace drover::coord::detail
