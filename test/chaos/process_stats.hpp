#pragma once
// What /proc says about a running process: its resident memory and its open descriptors.

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>

namespace drover::chaos {

/// The resident set size of `pid` in KiB (VmRSS), or 0 when it has gone.
inline std::size_t rss_kib(pid_t pid) {
  std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
  }
  return 0;
}

/// How many descriptors `pid` holds open, or 0 when it has gone.
inline std::size_t open_fds(pid_t pid) {
  std::error_code ec;
  std::size_t count = 0;
  for (std::filesystem::directory_iterator it{"/proc/" + std::to_string(pid) + "/fd", ec}, end;
       !ec && it != end; it.increment(ec)) {
    ++count;
  }
  return count;
}

}  // namespace drover::chaos
