#pragma once
// Files that appear whole or not at all: written beside their final name, then renamed.
// Internal to the engine.

#include <filesystem>
#include <string>
#include <string_view>

namespace drover::detail {

/// Writes `content` to `target` with one rename, creating parent directories. Throws
/// std::system_error naming the file.
void write_file_atomically(const std::filesystem::path& target, std::string_view content);

/// Copies `from` to `target` with one rename, creating parent directories and keeping the
/// permission bits. Throws std::system_error naming the files.
void copy_file_atomically(const std::filesystem::path& from, const std::filesystem::path& target);

/// The whole content of a file; throws std::system_error naming it.
std::string read_file(const std::filesystem::path& file);

}  // namespace drover::detail
