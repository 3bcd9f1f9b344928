#include "work_dir.hpp"

#include "resource_glob.hpp"
#include "run_state.hpp"
#include "text.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace drover::detail {

namespace fs = std::filesystem;

namespace {

std::string quoted_path(const fs::path& path) {
  return in_quotes(path.string());
}

// Eight hex digits. Each thread has its own generator, so creating work directories on
// several workers at once takes no lock.
std::string random_suffix() {
  thread_local std::mt19937_64 generator = [] {
    std::random_device device;
    std::seed_seq seed{
        static_cast<std::uint64_t>(device()),
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()),
        static_cast<std::uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()))};
    return std::mt19937_64{seed};
  }();
  const auto value = static_cast<std::uint32_t>(generator());
  std::string out(8, '0');
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = "0123456789abcdef"[(value >> (28 - 4 * i)) & 0xf];
  return out;
}

// A directory name that holds a glob's special bytes cannot be turned into a glob; such a
// directory is always searched.
bool usable_in_glob(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](unsigned char c) {
    return c < 0x20 || c == '*' || c == '?' || c == '[' || c == '\\';
  });
}

// Whether anything under the directory `relative` (to the work directory) can match one of
// `patterns`, so that walking it is worth the time.
bool may_hold_outputs(const std::string& relative, const std::vector<std::string>& patterns) {
  if (!usable_in_glob(relative)) return true;
  const std::string below = relative + "/**";
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& pattern) {
    return resource_globs_overlap(pattern, below);
  });
}

std::string describe_type(fs::file_type type) {
  return type == fs::file_type::symlink ? "a symbolic link" : "a special file";
}

}  // namespace

fs::path absolute_workspace(const fs::path& workspace) {
  std::error_code ec;
  fs::path out = workspace.empty() ? fs::current_path(ec) : fs::absolute(workspace, ec);
  // Keep what was given: creating a work directory there will name the problem.
  if (ec) out = workspace;
  out = out.lexically_normal();
  if (!out.has_filename() && out.has_relative_path()) out = out.parent_path();
  return out;
}

std::string work_dir_name(std::string_view module_id, std::uint32_t attempt) {
  constexpr std::size_t max_id_bytes = 100;
  std::string name;
  name.reserve(std::min(module_id.size(), max_id_bytes) + 16);
  for (const unsigned char c : module_id.substr(0, max_id_bytes)) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    name += allowed ? static_cast<char>(c) : '_';
  }
  name += '.';
  name += std::to_string(attempt);
  name += '.';
  return name;
}

fs::path create_work_dir(const fs::path& workspace, std::string_view module_id,
                         std::uint32_t attempt) {
  const fs::path parent = workspace / ".drover" / "work";
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    throw std::runtime_error("cannot create the work directory " + quoted_path(parent) + ": " +
                             ec.message());
  }
  const std::string name = work_dir_name(module_id, attempt);
  // A clash needs the same module, attempt and 32 random bits: retrying is a formality.
  for (int tries = 0; tries < 16; ++tries) {
    fs::path dir = parent / (name + random_suffix());
    if (fs::create_directory(dir, ec)) return dir;
    if (ec) {
      throw std::runtime_error("cannot create the work directory " + quoted_path(dir) + ": " +
                               ec.message());
    }
  }
  throw std::runtime_error("cannot create a work directory in " + quoted_path(parent) +
                           ": every name tried already exists");
}

std::string promote_outputs(const fs::path& work_dir, const fs::path& workspace,
                            const std::vector<std::string>& outputs) {
  std::vector<std::string> moves;     // relative to both directories, '/'-separated
  std::vector<std::string> patterns;  // what the walk below matches
  for (const std::string& output : outputs) {
    if (!resource_glob_is_literal(output)) {
      patterns.push_back(output);
      continue;
    }
    const fs::path source = work_dir / output;
    std::error_code ec;
    const fs::file_status status = work_dir.empty() ? fs::file_status{fs::file_type::not_found}
                                                    : fs::symlink_status(source, ec);
    switch (status.type()) {
      case fs::file_type::regular:
        moves.push_back(output);
        break;
      case fs::file_type::directory:
        patterns.push_back(output + "/**");  // as for inputs: every file below it
        break;
      case fs::file_type::none:
      case fs::file_type::not_found:
        return "declared output " + in_quotes(output) + " was not produced" +
               (work_dir.empty() ? std::string{" (the module never asked for a work directory)"}
                                 : ": no file at " + quoted_path(source));
      default:
        return "declared output " + in_quotes(output) + " is " + describe_type(status.type()) +
               ", not a regular file or a directory";
    }
  }

  if (!patterns.empty() && !work_dir.empty()) {
    // Symbolic links are neither followed nor moved: a link to a directory elsewhere must not
    // let a module move files from outside its work directory.
    std::error_code ec;
    fs::recursive_directory_iterator it(work_dir, ec);
    for (const fs::recursive_directory_iterator end; !ec && it != end; it.increment(ec)) {
      const fs::file_type type = it->symlink_status(ec).type();
      if (ec) break;
      const std::string relative = it->path().lexically_relative(work_dir).generic_string();
      if (type == fs::file_type::directory) {
        if (!may_hold_outputs(relative, patterns)) it.disable_recursion_pending();
        continue;
      }
      if (type != fs::file_type::regular) continue;
      const bool wanted = std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
        return resource_glob_matches(p, relative);
      });
      if (wanted) moves.push_back(relative);
    }
    if (ec) return "cannot look for outputs in " + quoted_path(work_dir) + ": " + ec.message();
  }

  std::sort(moves.begin(), moves.end());
  moves.erase(std::unique(moves.begin(), moves.end()), moves.end());
  for (const std::string& relative : moves) {
    const fs::path source = work_dir / relative;
    const fs::path target = workspace / relative;
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec) {
      return "cannot create the directory " + quoted_path(target.parent_path()) + " for output " +
             in_quotes(relative) + ": " + ec.message();
    }
    fs::rename(source, target, ec);
    if (ec) {
      std::string message = "cannot move output " + in_quotes(relative) + " from " +
                            quoted_path(source) + " to " + quoted_path(target) + ": " +
                            ec.message();
      if (ec == std::errc::cross_device_link) {
        message += " (the work directory and the workspace are on different file systems)";
      }
      return message;
    }
  }
  return {};
}

void remove_work_dir(const fs::path& work_dir) noexcept {
  std::error_code ec;
  fs::remove_all(work_dir, ec);
}

void attempt_files::settle_files(module_context& ctx, const module_spec& spec,
                                 module_status& status, std::string& error) {
  if (status == module_status::succeeded && spec.io && !spec.io->outputs.empty()) {
    std::string problem = promote_outputs(ctx.work_dir_, ctx.workspace(), spec.io->outputs);
    if (!problem.empty()) {
      status = module_status::failed;
      error = std::move(problem);
    }
  }
  if (!ctx.work_dir_.empty() && !ctx.keep_workdirs()) remove_work_dir(ctx.work_dir_);
}

void attempt_files::discard(module_context& ctx) noexcept {
  if (!ctx.work_dir_.empty() && !ctx.keep_workdirs()) remove_work_dir(ctx.work_dir_);
}

}  // namespace drover::detail
