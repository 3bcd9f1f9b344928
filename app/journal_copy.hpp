#pragma once
// `drover run --coordinator ... --journal FILE`: the master keeps its journal in Redis, where a
// successor can read it, and a copy in FILE, for the job's own records (a CI artifact). A
// journal_store that appends to the Redis store first and then to the file; the run resumes
// from Redis, never from the copy (docs/redis.md, "The journal").

#include <drover/journal.hpp>

#include <filesystem>
#include <memory>
#include <ostream>

namespace drover::app {

/// Wraps `primary`: load() reads it and writes what it read to `copy` (replacing the file, so
/// that it holds the whole journal so far); append() appends to `primary` and, once that kept
/// the lines, to `copy`, synced with fdatasync under durability::fsync. The copy never fails
/// the journal: when it cannot be written, `warnings` hears why once and the copy stops.
std::shared_ptr<journal_store> with_file_copy(std::shared_ptr<journal_store> primary,
                                              std::filesystem::path copy, durability mode,
                                              std::ostream& warnings);

}  // namespace drover::app
