#pragma once
// Attempts' scratch directories and the promotion of declared outputs into the workspace.
// Internal to the engine; docs/workspace.md describes the behaviour users see.
//
// A work directory is `<workspace>/.drover/work/<owner>/<id>.<attempt>.<random>`: inside the
// workspace, so that an output reaches its place with one rename on the same file system.
// `<owner>` is this process's, locked while it has attempts there, so that a later process
// can remove what a killed one left (see owner_directories in work_dir.cpp). A work directory
// exists only once the body asked for it (module_context::work_dir), so modules that never do
// cost nothing.

#include <drover/detail/attempt_scope.hpp>
#include <drover/status.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace drover::detail {

/// run_options::workspace as an absolute, lexically normal path without a trailing separator:
/// the current directory when `workspace` is empty.
std::filesystem::path absolute_workspace(const std::filesystem::path& workspace);

/// Creates a fresh, empty directory for attempt `attempt` of `module_id` under this process's
/// owner directory in `<workspace>/.drover/work` and returns its path; release it with
/// finish_work_dir. The id is made safe for a file name (see
/// work_dir_name); a random suffix keeps attempts apart. Throws std::runtime_error naming the
/// path and the OS error.
std::filesystem::path create_work_dir(const std::filesystem::path& workspace,
                                      std::string_view module_id, std::uint32_t attempt);

/// `<id>.<attempt>.` with every byte of the id other than letters, digits, '.', '_' and '-'
/// replaced by '_', and the id cut to 100 bytes; create_work_dir appends the random suffix.
std::string work_dir_name(std::string_view module_id, std::uint32_t attempt);

/// Moves every regular file in `work_dir` that one of `outputs` matches (globs as in
/// resource_glob.hpp, relative to `work_dir`; a literal naming a directory matches every file
/// below it, as inputs do) to the same relative path under `workspace`, creating parent
/// directories, each file with one rename. Returns what went wrong, or an empty string: a
/// literal output that is missing (or is a symbolic link or a special file) fails before
/// anything moves; a rename that fails stops the promotion, naming both paths and the OS error
/// (files moved before it stay). Symbolic links are neither followed nor moved.
std::string promote_outputs(const std::filesystem::path& work_dir,
                            const std::filesystem::path& workspace,
                            const std::vector<std::string>& outputs);

/// For an attempt that wrote in the workspace itself (module_context::writes_in_workspace):
/// checks that every literal glob of `outputs` names a regular file or a directory under
/// `workspace`, with the message promote_outputs gives for a missing one. Returns what is
/// wrong, or an empty string. Nothing is moved: the files already are where outputs land.
std::string check_outputs_in_place(const std::filesystem::path& workspace,
                                   const std::vector<std::string>& outputs);

/// Removes `work_dir` and everything in it; a failure is ignored (the directory is scratch).
void remove_work_dir(const std::filesystem::path& work_dir) noexcept;

/// An attempt is done with `work_dir` (made by create_work_dir; empty: nothing to do): removes
/// it unless `keep`, and lets this process's owner directory go once it holds no attempt.
void finish_work_dir(const std::filesystem::path& work_dir, bool keep) noexcept;

/// What the worker does with an attempt's files once the attempt has ended. Runs on the
/// worker's strand, which owns the attempt.
struct attempt_files {
  /// For an attempt whose status is final: when it succeeded and the module declares outputs,
  /// promotes them (or, when it wrote in the workspace, checks they are there); failing to do
  /// so turns `status` into failed and says why in `error`. Then removes the work directory
  /// unless the environment keeps work directories.
  static void settle(attempt_scope& attempt, module_status& status, std::string& error) {
    // Most modules: nothing to do.
    if (attempt.work_dir.empty() && (!attempt.may_have_io || !attempt.module.io())) return;
    settle_files(attempt, status, error);
  }

  /// For an abandoned body that has finally returned: its work directory goes (unless kept),
  /// its outputs are never promoted.
  static void discard(attempt_scope& attempt) noexcept;

 private:
  static void settle_files(attempt_scope& attempt, module_status& status, std::string& error);
};

}  // namespace drover::detail
