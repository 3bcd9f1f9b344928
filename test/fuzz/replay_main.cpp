// fuzz_replay: runs every fuzz target over its seed corpus and its regression inputs, without
// libFuzzer, so that the normal suite (any compiler, any preset) keeps every input that ever
// found a bug. Usage: fuzz_replay DIR, where DIR holds corpus/<target>/ and regressions/<target>/.
// A target with no seed inputs fails: a replay of nothing proves nothing.

#include "fuzz_target.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

namespace drover::fuzz {
namespace {

std::map<std::string, target_function>& targets() {
  static std::map<std::string, target_function> all;
  return all;
}

std::vector<std::filesystem::path> inputs_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  if (!std::filesystem::is_directory(dir)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().filename() != "README.md")
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

bool add_target(std::string_view name, target_function function) {
  targets().emplace(std::string(name), function);
  return true;
}

}  // namespace drover::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr,
                 "usage: fuzz_replay DIR (with corpus/<target>/ and regressions/<target>/)\n");
    return 2;
  }
  const std::filesystem::path root = argv[1];
  int failures = 0;
  for (const auto& [name, run] : drover::fuzz::targets()) {
    const auto seeds = drover::fuzz::inputs_in(root / "corpus" / name);
    const auto regressions = drover::fuzz::inputs_in(root / "regressions" / name);
    if (seeds.empty()) {
      std::fprintf(stderr, "%s: no seed inputs in %s\n", name.c_str(),
                   (root / "corpus" / name).c_str());
      ++failures;
      continue;
    }
    std::size_t bytes = 0;
    for (const auto* list : {&seeds, &regressions}) {
      for (const auto& file : *list) {
        std::ifstream in(file, std::ios::binary);
        const std::string data{std::istreambuf_iterator<char>(in), {}};
        if (!in.good() && !in.eof()) {
          std::fprintf(stderr, "%s: cannot read %s\n", name.c_str(), file.c_str());
          ++failures;
          continue;
        }
        // Named before it runs: a crash leaves the input's name as the last line.
        std::fprintf(stderr, "%s: %s\n", name.c_str(), file.filename().c_str());
        run(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
        bytes += data.size();
      }
    }
    std::printf("%s: %zu seed inputs and %zu regression inputs replayed (%zu bytes)\n",
                name.c_str(), seeds.size(), regressions.size(), bytes);
  }
  if (drover::fuzz::targets().empty()) {
    std::fprintf(stderr, "no fuzz targets linked\n");
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
