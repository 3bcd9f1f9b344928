#include "atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <system_error>

namespace drover::detail {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void throw_errno(int error, const std::string& what) {
  throw std::system_error(error, std::generic_category(), what);
}

void write_all(int fd, std::string_view bytes, const fs::path& file) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      throw_errno(error, "cannot write '" + file.string() + "'");
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void rename_into_place(const fs::path& temporary, const fs::path& target) {
  if (::rename(temporary.c_str(), target.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw_errno(error, "cannot rename '" + temporary.string() + "' to '" + target.string() + "'");
  }
}

// A name beside `target` for a temporary file, unique to this process and call.
fs::path temporary_beside(const fs::path& target) {
  static std::atomic<std::uint64_t> counter{0};
  return target.parent_path() /
         (".tmp." + target.filename().string() + "." + std::to_string(::getpid()) + "." +
          std::to_string(counter.fetch_add(1)));
}

}  // namespace

void write_file_atomically(const fs::path& target, std::string_view content) {
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  const fs::path temporary = temporary_beside(target);
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw_errno(errno, "cannot create '" + temporary.string() + "'");
  write_all(fd, content, temporary);
  ::close(fd);
  rename_into_place(temporary, target);
}

void copy_file_atomically(const fs::path& from, const fs::path& target) {
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  const fs::path temporary = temporary_beside(target);
  if (!fs::copy_file(from, temporary, fs::copy_options::overwrite_existing, ec)) {
    fs::remove(temporary, ec);
    throw std::system_error(ec ? ec : std::make_error_code(std::errc::io_error),
                            "cannot copy '" + from.string() + "' to '" + temporary.string() + "'");
  }
  rename_into_place(temporary, target);
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw_errno(errno ? errno : ENOENT, "cannot read '" + file.string() + "'");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw_errno(EIO, "cannot read '" + file.string() + "'");
  return content;
}

}  // namespace drover::detail
