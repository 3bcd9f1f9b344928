#include "detail/deps_file.hpp"

#include <drover/modules/interpolation.hpp>

#include <boost/json/serialize.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace drover::modules::detail {

deps_file::deps_file(const module_context& ctx, const std::filesystem::path& work_dir)
    : path_(work_dir.string() + ".deps.json"), keep_(ctx.keep_workdirs()) {
  const std::string text = boost::json::serialize(dependency_document(scope_of(ctx))) + '\n';
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::string_view rest = text;
  int error = fd < 0 ? errno : 0;
  while (fd >= 0 && !rest.empty()) {
    const auto written = ::write(fd, rest.data(), rest.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      error = written < 0 ? errno : ENOSPC;
      break;
    }
    rest.remove_prefix(static_cast<std::size_t>(written));
  }
  if (fd >= 0 && ::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
    throw std::runtime_error("cannot write the DROVER_DEPS file '" + path_.string() +
                             "': " + std::strerror(error));
  }
}

deps_file::~deps_file() {
  std::error_code ignored;
  if (!keep_) std::filesystem::remove(path_, ignored);
}

}  // namespace drover::modules::detail
