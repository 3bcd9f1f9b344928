#pragma once
// A run journal kept in Redis, for runs coordinated through Redis (docs/redis.md): the master
// appends its records to the stream drover:{KEY}:journal, fenced by its lease epoch, and the
// master that takes over from it resumes the run from there.
//
//     auto store = drover::coord::make_redis_journal_store(
//         {.where = where, .password = password, .run_key = "build-42", .epoch = epoch});
//     auto journal = drover::run_journal::open_store(store, {.resume = true});
//     options.journal = journal;

#include <drover/coord/redis.hpp>
#include <drover/journal.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace drover::coord {

struct redis_journal_options {
  redis_endpoint where;
  std::optional<std::string> password;
  /// The run, as run_keys(run_key) names its keys.
  std::string run_key;
  /// The master's lease epoch: appends are refused once drover:{KEY}:epoch holds another.
  std::uint64_t epoch = 0;
  /// How long the stream is kept after the last append (its PEXPIRE, renewed by each append).
  std::chrono::milliseconds keep_for{std::chrono::hours(1)};
  /// How long a request is retried while Redis cannot be reached, from its first failure.
  std::chrono::milliseconds give_up_after{std::chrono::seconds(60)};
  /// Bounds each try (the connection and one command).
  std::chrono::milliseconds request_timeout{std::chrono::seconds(5)};
};

/// A journal_store over the stream drover:{KEY}:journal, each append one entry {r: lines}.
/// It is used from plain threads (the journal's opener, then its writer), so it runs its
/// requests on an io_context and a Redis connection of its own. Requests that cannot reach
/// Redis are retried, reconnecting with backoff (100 ms doubling to 2 s), until give_up_after
/// (a connection that broke since its last use is dialled again at once, without waiting);
/// an append refused because another master took the run over is not retried. Throws
/// std::invalid_argument for a bad run key.
std::shared_ptr<drover::journal_store> make_redis_journal_store(redis_journal_options options);

}  // namespace drover::coord
