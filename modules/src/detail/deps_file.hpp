#pragma once
// The file DROVER_DEPS names for one exec attempt: each dependency's status and value.

#include <drover/context.hpp>

#include <filesystem>

namespace drover::modules::detail {

/// Writes `{"<id>": {"status": ..., "value": ...}, ...}` (dependency_document in
/// interpolation.hpp) for the attempt `ctx` runs to `<work_dir>.deps.json`: beside the work
/// directory, never in it, so that no output glob can take it for an output. The file goes when
/// this object does (at the end of the attempt), unless work directories are kept. Throws
/// std::runtime_error naming the path when the file cannot be written.
class deps_file {
 public:
  deps_file(const module_context& ctx, const std::filesystem::path& work_dir);
  ~deps_file();
  deps_file(const deps_file&) = delete;
  deps_file& operator=(const deps_file&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
  bool keep_;
};

}  // namespace drover::modules::detail
