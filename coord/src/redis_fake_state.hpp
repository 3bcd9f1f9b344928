#pragma once
// redis_fake's data, shared by its two halves: redis_fake.cpp (links, keys, strings, scripts)
// and redis_fake_streams.cpp (the stream commands). Everything here is touched with the fake's
// mutex held.

#include <drover/clock.hpp>
#include <drover/coord/redis.hpp>
#include <drover/coord/redis_fake.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace drover::coord::fake_detail {

using command = std::vector<std::string>;

/// A stream entry id, "MS-SEQ".
struct stream_id {
  std::uint64_t ms = 0;
  std::uint64_t seq = 0;
  auto operator<=>(const stream_id&) const = default;
  std::string text() const { return std::to_string(ms) + "-" + std::to_string(seq); }
};

/// "MS-SEQ" or "MS" (then SEQ is 0, or the largest with `missing_seq_is_max`).
std::optional<stream_id> parse_id(std::string_view text, bool missing_seq_is_max = false);

struct pending_entry {
  std::string consumer;
  run_clock::time_point delivered;
};

struct consumer_group {
  stream_id last_delivered;
  std::map<stream_id, pending_entry> pending;
};

struct stream {
  std::map<stream_id, std::vector<std::string>> entries;  // id -> field, value, ...
  stream_id last;
  std::map<std::string, consumer_group> groups;
};

struct value {
  std::variant<std::string, stream> data;
  std::optional<run_clock::time_point> expires;
};

/// A command's name in capitals, as Redis compares them.
std::string upper(std::string_view word);

redis_reply status(std::string text);
redis_reply error(std::string text);
redis_reply integer(long long n);
redis_reply bulk(std::string text);
redis_reply nil();
redis_reply array(std::vector<redis_reply> elements = {});

/// [id, [field, value, ...]]
redis_reply entry_reply(const stream_id& id, const std::vector<std::string>& fields);

constexpr std::string_view wrong_type =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

/// What a command reads or changes: the keys, with lazy expiry, as Redis does.
class keyspace {
 public:
  /// The live value of `key`, or nullptr (an expired one is removed first).
  value* find(const std::string& key);
  value& create(const std::string& key, value v);
  bool erase(const std::string& key);
  std::vector<std::string> live_keys();
  void clear() { keys_.clear(); }

  /// The stream at `key`; nullptr when there is none. Sets `wrong` when the key is a string.
  stream* find_stream(const std::string& key, bool& wrong);

 private:
  std::map<std::string, value> keys_;
};

/// The answer to one stream command, or, for a blocking read that found nothing, how long it
/// may wait (0: for ever).
struct stream_answer {
  std::optional<redis_reply> reply;
  std::chrono::milliseconds block{0};
};

/// XADD, XTRIM, XRANGE, XREVRANGE, XREAD, XGROUP, XREADGROUP, XACK, XAUTOCLAIM. Returns
/// nothing when `c` is none of these.
std::optional<stream_answer> answer_stream_command(keyspace& keys, const command& c);

/// Adds an entry to `key`'s stream (created if needed) with the next id; returns it.
stream_id add_entry(keyspace& keys, const std::string& key, std::vector<std::string> fields);

}  // namespace drover::coord::fake_detail
