#pragma once
// The fingerprint cache: results of modules stored by fingerprint in a directory, with the
// output files they produced. docs/caching.md describes what a fingerprint covers.

#include <boost/json/value.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace drover {

/// A cache directory, shared safely by runs in several processes: every file appears with
/// one rename, entries are immutable, and a damaged or half-written entry reads as a miss.
/// Nothing is ever evicted; remove the directory to empty it.
///
///     options.cache = std::make_shared<drover::result_cache>("/var/cache/drover");
///
/// A module is looked up when it becomes ready and stored when it succeeds, if it is
/// cacheable: module_io::cacheable is true and it has a kind (or a module_io::version, for a
/// C++ body). A hit ends the module as module_status::cached with the stored value, and its
/// declared outputs are copied back into the workspace. Used by the run on its strand only.
class result_cache {
 public:
  struct settings {
    bool lookup = true;  ///< false: never use stored results (--no-cache), still store new ones
    bool store = true;   ///< false: never store
  };

  /// Creates the directory if needed; throws std::runtime_error naming it when it cannot.
  explicit result_cache(std::filesystem::path directory, settings s);
  explicit result_cache(std::filesystem::path directory)
      : result_cache(std::move(directory), settings{}) {}

  const std::filesystem::path& directory() const noexcept { return directory_; }
  const settings& config() const noexcept { return settings_; }

  /// The value stored under `fingerprint`, once every output file of the entry is in
  /// `workspace` with its stored content; nothing on a miss. A file that already holds that
  /// content (same size, permission bits and SHA-256) is left untouched, timestamp and all;
  /// any other is written with one rename. A damaged entry, a missing blob, or a literal glob
  /// of `outputs` (the module's declared outputs) for which the entry has no file (the file,
  /// or one below the directory it names) is a miss that leaves the workspace alone.
  std::optional<boost::json::value> restore(const std::string& fingerprint,
                                            const std::filesystem::path& workspace,
                                            const std::vector<std::string>& outputs = {});

  /// Stores a result and copies the output files (paths relative to `workspace`). Returns
  /// why it could not (the run goes on without it), or nothing.
  std::optional<std::string> store(const std::string& fingerprint, const std::string& module_id,
                                   const boost::json::value& value,
                                   const std::filesystem::path& workspace,
                                   const std::vector<std::string>& outputs);

  struct counters {
    std::uint64_t hits = 0, misses = 0, stores = 0, store_failures = 0;
  };
  const counters& stats() const noexcept { return stats_; }

 private:
  std::filesystem::path entry_path(const std::string& fingerprint) const;
  std::filesystem::path blob_path(const std::string& hash) const;

  std::filesystem::path directory_;
  settings settings_;
  counters stats_;
};

}  // namespace drover
