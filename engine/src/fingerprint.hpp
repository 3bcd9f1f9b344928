#pragma once
// Module fingerprints: what the journal and the cache compare to decide that a module would
// compute the same result again. Internal to the engine; docs/caching.md is the user's view.
//
// A module's fingerprint is the SHA-256 of, in order: a format tag; its id; its kind and its
// params as canonical JSON (object keys sorted), or "body" for a module with a C++ body; its
// matrix values; its declared version, inputs globs, input_env names and outputs globs; the
// content of every file its inputs match (path and SHA-256 of the bytes), the value of every
// declared environment variable (or that it is unset); and, per dependency in id order, the
// dependency's id and fingerprint. Policies (retries, timeouts, priority, claims) are left out:
// they change how a module runs, not what it computes.

#include "sha256.hpp"

#include <drover/graph.hpp>
#include <drover/pipeline.hpp>

#include <boost/json/fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

namespace drover::detail {

/// `value` serialized with object keys in sorted order, so equal values give equal text.
std::string canonical_json(const boost::json::value& value);

/// What identifies a pipeline's definition as a whole: names, kinds, params, dependencies and
/// versions of all its modules, without input files. Shown when a journal was written by a
/// different version of the pipeline.
std::string pipeline_fingerprint(const pipeline& p);

/// The files that `globs` (resource_glob syntax, relative to `root`; for inputs also absolute,
/// or starting with '..' segments) match, as sorted unique paths with '/' separators, each
/// named the way its glob names it: relative to `root` ("src/a.c", "../fmt/src/a.cc") or
/// absolute ("/opt/sdk/include/a.h"). A glob naming a directory literally matches every file
/// below it. The `.drover` directory at the root and symbolic links to directories are not
/// descended into.
std::vector<std::string> match_files(const std::filesystem::path& root,
                                     const std::vector<std::string>& globs);

class fingerprinter {
 public:
  fingerprinter(const pipeline& p, const drover::graph& g, std::filesystem::path workspace);

  /// Computes module i's fingerprint from its definition, its inputs as they are now, and the
  /// fingerprints of its dependencies computed so far (an empty string for one never
  /// computed, such as a skipped dependency). Call once its dependencies are terminal.
  /// Throws std::runtime_error naming an input file that cannot be read.
  const std::string& compute(std::uint32_t i);
  const std::string& of(std::uint32_t i) const noexcept { return fingerprints_[i]; }

 private:
  const std::string& file_hash(const std::string& relative);

  struct file_stamp {
    std::uintmax_t size = 0;
    std::filesystem::file_time_type modified{};
    std::string hash;
  };
  const pipeline& pipeline_;
  const drover::graph& graph_;
  std::filesystem::path workspace_;
  std::vector<std::string> fingerprints_;
  sha256 hasher_;  // reused: setting one up costs more than hashing a small module
  // A file read by several modules is hashed once while its size and time stay the same.
  std::unordered_map<std::string, file_stamp> files_;
};

}  // namespace drover::detail
