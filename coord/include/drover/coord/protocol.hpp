#pragma once
// The master/worker wire protocol: one struct per message, and the codec that turns a message
// into one JSON line and one line back into a message. docs/protocol.md is the specification;
// this header is its C++ form.
//
//     std::string line = drover::coord::encode(drover::coord::heartbeat_message{});
//     // line == "{\"type\":\"heartbeat\",\"running\":[]}\n"
//
//     drover::coord::decode_result r = drover::coord::decode(line, limits);
//     if (!r.ok()) {
//       drover::coord::error_message reply = to_error_message(r.error());
//       reply.fatal = reply.fatal || !handshake_done;  // before the handshake, all are fatal
//       send(encode(reply));                          // tell the peer what was wrong
//       if (reply.fatal) close();
//     } else if (auto* result = std::get_if<drover::coord::result_message>(&r.value())) {
//       ...
//     }
//
// The codec holds no state and never throws for bad input: every problem comes back as a
// protocol_error whose message names the field and what was expected.

#include <drover/remote.hpp>
#include <drover/status.hpp>

#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace drover::coord {

/// The protocol version this code speaks. Sent in hello.versions and welcome.protocol.
inline constexpr int protocol_version = 1;

/// Every version this code speaks, for version negotiation.
inline constexpr int supported_protocol_versions[] = {protocol_version};

/// Defaults from the specification.
inline constexpr std::size_t default_max_line_bytes = std::size_t{1} << 20;
inline constexpr std::size_t default_max_depth = 32;
inline constexpr std::chrono::milliseconds default_heartbeat_interval{1000};
inline constexpr std::chrono::milliseconds default_lost_after{5000};
inline constexpr std::chrono::milliseconds handshake_timeout{10000};

/// What a receiver accepts. The master announces its max_line_bytes in welcome; from then on
/// it is the connection's limit in both directions (a worker adopts it, see
/// line_splitter::set_max_line_bytes). The depth limit is 32 on both sides.
struct limits {
  /// Longest accepted line in bytes, without its terminating '\n' (a '\r' before it counts).
  std::size_t max_line_bytes = default_max_line_bytes;
  /// Deepest accepted nesting of arrays and objects; the message object itself is depth 1.
  std::size_t max_depth = default_max_depth;
};

// --- errors -----------------------------------------------------------------------------

/// The error codes of the protocol, as sent in error_message::code.
enum class error_code : std::uint8_t {
  malformed_json,      ///< the line is not valid JSON (or not valid UTF-8)
  line_too_long,       ///< the line exceeds the receiver's max_line_bytes (fatal)
  too_deep,            ///< arrays/objects nest deeper than the receiver's max_depth (fatal)
  not_an_object,       ///< the line is JSON but not an object
  missing_type,        ///< the object has no "type"
  unknown_type,        ///< "type" names no message this version knows
  bad_field,           ///< a field is missing or has the wrong type or range
  handshake_required,  ///< something other than hello/error before the handshake (fatal)
  version_mismatch,    ///< hello.versions has no version the master speaks (fatal)
  unauthorized,        ///< hello.token is missing or wrong (fatal)
  handshake_timeout,   ///< no hello within handshake_timeout (fatal)
  unknown_module,      ///< a result or cancel names a module the receiver does not know
  stale_result,        ///< a result whose (epoch, module, attempt) is not the current one
  duplicate_result,    ///< a second result for an attempt already accepted
  internal,            ///< the sender hit a bug or an unexpected condition
};

/// The wire name of a code: "malformed_json", "stale_result", ...
std::string_view to_string(error_code code) noexcept;

/// The code with that wire name, or nullopt for a name this version does not know (a newer
/// peer may send codes we do not know; treat them by their `fatal` flag).
std::optional<error_code> parse_error_code(std::string_view name) noexcept;

/// Why a line could not be decoded. `fatal` says whether the specification requires closing
/// the connection (line_too_long, too_deep); the caller decides for everything else, e.g.
/// every error is fatal before the handshake completed.
struct protocol_error {
  error_code code = error_code::internal;
  /// Names the field and what was expected, and shows short received values (never a token).
  std::string message;
  bool fatal = false;
  /// The message type, when the line got that far ("result", ...); empty otherwise.
  std::string type;
  /// Best effort: the "module" and "attempt" of the rejected message, when they were valid,
  /// so the reply can say which assignment it is about.
  std::optional<std::string> module;
  std::optional<std::uint32_t> attempt;
};

// --- messages ---------------------------------------------------------------------------
// Field docs give the wire type and whether the field is required; docs/protocol.md has the
// full meaning. An optional field given as JSON null is treated as absent. encode() writes
// what the struct holds and does not validate it; decode() validates everything.

/// worker -> master, first message of a connection.
struct hello_message {
  std::vector<int> versions;              ///< required, non-empty, each >= 1
  std::optional<std::string> worker_id;   ///< the name the worker would like
  std::vector<std::string> capabilities;  ///< labels the worker offers; default []
  std::uint32_t slots = 1;                ///< attempts it runs at once; >= 1
  std::optional<std::string> token;       ///< shared secret, when the master requires one
  std::optional<std::uint64_t> pid;       ///< informational
  std::optional<std::string> host;        ///< informational

  friend bool operator==(const hello_message&, const hello_message&) = default;
};

/// master -> worker, answer to an accepted hello.
struct welcome_message {
  int protocol = protocol_version;     ///< the version chosen for this connection
  std::string worker;                  ///< the worker's name for this connection
  std::string run;                     ///< run id
  std::uint64_t epoch = 0;             ///< the master's current epoch
  std::uint32_t heartbeat_ms = 1000;   ///< send a heartbeat at least this often; >= 1
  std::uint32_t lost_after_ms = 5000;  ///< a peer silent this long is lost; >= 1
  std::uint64_t max_line_bytes = default_max_line_bytes;  ///< the master's line limit; >= 1
  /// A service's master (drover serve): when the run ends or the master drains this worker
  /// with `rejoin`, the worker connects again for the service's next run instead of exiting.
  /// Default false; absent from the line when false.
  bool stay = false;

  friend bool operator==(const welcome_message&, const welcome_message&) = default;
};

/// The result of a dependency, as an assign carries it.
struct dependency_result {
  std::string module;                               ///< the dependency's id (the key on the wire)
  module_status status = module_status::succeeded;  ///< any status but pending
  boost::json::value value;                         ///< default null

  friend bool operator==(const dependency_result&, const dependency_result&) = default;
};

/// master -> worker: run one attempt of one module.
struct assign_message {
  std::string run;
  std::uint64_t epoch = 0;
  std::string module;
  std::uint32_t attempt = 1;                ///< >= 1
  std::string kind;                         ///< module kind, resolved by the worker's registry
  boost::json::value params;                ///< any JSON; default null
  std::optional<std::uint64_t> timeout_ms;  ///< > 0; absent: no timeout
  std::vector<std::string> deps;            ///< dependencies whose results the body may read
  /// Only the dependency results this worker was not sent before in this run; the worker
  /// caches results per run and looks the others up there. Default: none.
  std::vector<dependency_result> results;
  std::optional<std::string> matrix_target;
  /// Globs, relative to the attempt's work directory, of the files the worker moves into its
  /// workspace when the attempt succeeds. Default: none.
  std::vector<std::string> outputs;

  friend bool operator==(const assign_message&, const assign_message&) = default;
};

/// worker -> master: how an attempt ended. Exactly one per assign, cancelled ones included.
struct result_message {
  std::string run;
  std::uint64_t epoch = 0;
  std::string module;
  std::uint32_t attempt = 1;  ///< >= 1
  /// succeeded, failed, timed_out or cancelled; decode rejects every other status.
  module_status status = module_status::succeeded;
  boost::json::value value;                    ///< sent only when succeeded (default null)
  std::string error;                           ///< sent only when not succeeded; required then
  std::optional<std::int64_t> started_at_ms;   ///< unix ms, >= 0
  std::optional<std::int64_t> finished_at_ms;  ///< unix ms, >= 0

  friend bool operator==(const result_message&, const result_message&) = default;
};

/// One attempt a worker is running.
struct running_attempt {
  std::string module;
  std::uint32_t attempt = 1;

  friend bool operator==(const running_attempt&, const running_attempt&) = default;
};

/// Both directions, every heartbeat interval. The master's may leave `running` empty.
struct heartbeat_message {
  std::vector<running_attempt> running;  ///< default []

  friend bool operator==(const heartbeat_message&, const heartbeat_message&) = default;
};

/// master -> worker: stop that attempt; the worker still sends its result (cancelled).
struct cancel_message {
  std::string run;
  std::uint64_t epoch = 0;
  std::string module;
  std::uint32_t attempt = 1;  ///< >= 1
  std::string reason;         ///< default ""

  friend bool operator==(const cancel_message&, const cancel_message&) = default;
};

/// master -> worker: no more assigns; finish the running attempts, then send bye.
struct drain_message {
  std::string reason;  ///< default ""
  /// With welcome.stay: after its bye the worker connects again (a service moves it to
  /// another run). Without: it leaves. Default false; absent from the line when false.
  bool rejoin = false;

  friend bool operator==(const drain_message&, const drain_message&) = default;
};

/// Either direction: the sender closes the connection after this line.
struct bye_message {
  std::string reason;  ///< default ""; "run finished" when the master ends the run

  friend bool operator==(const bye_message&, const bye_message&) = default;
};

/// Either direction: something was wrong. Fatal errors are followed by closing.
struct error_message {
  std::string code;     ///< required; an error_code name, or one a newer peer knows
  std::string message;  ///< default ""
  bool fatal = false;
  std::optional<std::string> module;
  std::optional<std::uint32_t> attempt;

  friend bool operator==(const error_message&, const error_message&) = default;
};

using message =
    std::variant<hello_message, welcome_message, assign_message, result_message, heartbeat_message,
                 cancel_message, drain_message, bye_message, error_message>;

/// The wire "type" of a message: "hello", "assign", ...
std::string_view type_name(const message& m) noexcept;

// --- codec ------------------------------------------------------------------------------

/// The message as one line of compact JSON ending in '\n'. Strings that are not valid UTF-8
/// (an exec child's output, say) get U+FFFD for each bad sequence, so the line always decodes.
/// Does not enforce a line limit: compare the size with the peer's max_line_bytes.
std::string encode(const message& m);

/// Appends what encode(m) returns to `out` and returns the line's size (with its '\n'). A
/// sender that queues lines encodes straight into its queue: no string per line.
std::size_t encode_to(std::string& out, const message& m);

/// An assign whose fields are viewed, not owned: what a master encodes from the run's own data
/// without copying it into an assign_message. The views must stay valid during encode_to().
struct assign_view {
  std::string_view run;
  std::uint64_t epoch = 0;
  std::string_view module;
  std::uint32_t attempt = 1;
  std::string_view kind;
  const boost::json::value* params = nullptr;  ///< null pointer: JSON null
  std::optional<std::uint64_t> timeout_ms;
  std::span<const std::string_view> deps;
  /// The results the worker was not sent before (a null value pointer is JSON null).
  std::span<const drover::dependency_result> results;
  std::optional<std::string_view> matrix_target;
  std::span<const std::string> outputs;  ///< as assign_message::outputs
};

/// Appends the assign line (exactly as encode() writes the same assign_message) to `out` and
/// returns its size with the '\n'.
std::size_t encode_to(std::string& out, const assign_view& m);

/// Either the decoded message or why the line is not one.
class decode_result {
 public:
  decode_result(message m) : content_{std::move(m)} {}
  decode_result(protocol_error e) : content_{std::move(e)} {}

  bool ok() const noexcept { return content_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  /// The message; only when ok().
  message& value() & { return std::get<0>(content_); }
  const message& value() const& { return std::get<0>(content_); }
  message&& value() && { return std::get<0>(std::move(content_)); }

  /// The error; only when !ok().
  const protocol_error& error() const { return std::get<1>(content_); }

 private:
  std::variant<message, protocol_error> content_;
};

/// Decodes one line (without its '\n'; a trailing "\r" or "\n" is tolerated as JSON
/// whitespace). Never throws for bad input. Unknown fields are ignored.
decode_result decode(std::string_view line, const limits& receiver_limits = {});

/// Decodes lines with the same outcome as decode(), faster: it keeps its parser and a scratch
/// buffer from one line to the next, and reads plain assign and result lines (no escapes, no
/// unknown fields, no dependency results: what masters and workers send by the thousand) in
/// one pass without building a JSON document. One per connection; not thread-safe.
///
///     drover::coord::line_decoder decoder{limits};
///     decode_result r = decoder.decode(line);
class line_decoder {
 public:
  explicit line_decoder(const limits& receiver_limits = {});
  ~line_decoder();
  line_decoder(line_decoder&&) noexcept;
  line_decoder& operator=(line_decoder&&) noexcept;

  decode_result decode(std::string_view line);

  const limits& receiver_limits() const noexcept;
  /// New limits for the lines that follow, e.g. welcome.max_line_bytes after the handshake.
  void set_limits(const limits& receiver_limits);
  /// Lines decoded so far by the one-pass reader, for tests and diagnostics.
  std::uint64_t plain_lines() const noexcept;

 private:
  struct state;
  std::unique_ptr<state> state_;
};

/// The error_message that reports `e` to the peer.
error_message to_error_message(const protocol_error& e);

/// An error_message with a known code:
///     writer.send(encode(make_error_message(error_code::stale_result, "...")));
error_message make_error_message(error_code code, std::string text, bool fatal = false);

// --- handshake helpers ------------------------------------------------------------------

/// The highest version in both lists, or nullopt when they share none.
std::optional<int> choose_version(
    std::span<const int> offered,
    std::span<const int> supported = supported_protocol_versions) noexcept;

/// Compares a presented token with the expected one in time that depends only on the
/// expected token's length, not on where they differ or on what was presented, so a remote
/// peer cannot guess it byte by byte.
bool token_matches(std::string_view expected, std::string_view presented) noexcept;

}  // namespace drover::coord
