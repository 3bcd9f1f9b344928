// The result cache on its own: what a hit puts into the workspace, what it leaves alone, and
// when an entry is a miss.

#include <drover/cache.hpp>

#define BOOST_TEST_MODULE cache
#include "test_support.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace {
using namespace drover::test;
namespace fs = std::filesystem;

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "drover-cache-test-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string read_text(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& file, std::string_view text) {
  fs::create_directories(file.parent_path());
  std::ofstream{file, std::ios::binary | std::ios::trunc} << text;
}

// Any 64 hex digits will do: the cache takes fingerprints as given.
const std::string fingerprint(64, 'a');

}  // namespace

BOOST_AUTO_TEST_SUITE(cache)

BOOST_AUTO_TEST_CASE(a_hit_leaves_identical_outputs_alone_and_restores_the_others) {
  temp_dir dir;
  const fs::path ws = dir.path / "ws";
  write_text(ws / "out/same.txt", "unchanged");
  write_text(ws / "out/edited.txt", "original");
  write_text(ws / "out/gone.txt", "deleted later");
  drover::result_cache cache{dir.path / "cache"};
  const std::vector<std::string> files{"out/edited.txt", "out/gone.txt", "out/same.txt"};
  BOOST_TEST(!cache.store(fingerprint, "build", json::value(7), ws, files).has_value());

  // Old enough that a rewrite could not keep the timestamp by chance.
  const auto long_ago = fs::last_write_time(ws / "out/same.txt") - std::chrono::hours(1);
  fs::last_write_time(ws / "out/same.txt", long_ago);
  write_text(ws / "out/edited.txt", "ORIGINAL");  // same size, other content
  fs::remove(ws / "out/gone.txt");

  const auto value = cache.restore(fingerprint, ws, {"out/**"});
  BOOST_TEST_REQUIRE(value.has_value());
  BOOST_TEST(*value == json::value(7));
  BOOST_TEST(cache.stats().hits == 1u);
  BOOST_TEST(read_text(ws / "out/same.txt") == "unchanged");
  BOOST_TEST((fs::last_write_time(ws / "out/same.txt") == long_ago), "an identical file is kept");
  BOOST_TEST(read_text(ws / "out/edited.txt") == "original");
  BOOST_TEST(read_text(ws / "out/gone.txt") == "deleted later");
}

BOOST_AUTO_TEST_CASE(a_hit_must_give_back_every_literal_output) {
  temp_dir dir;
  const fs::path ws = dir.path / "ws";
  write_text(ws / "lib/a.o", "a");
  drover::result_cache cache{dir.path / "cache"};
  BOOST_TEST(!cache.store(fingerprint, "build", nullptr, ws, {"lib/a.o"}).has_value());
  fs::remove_all(ws / "lib");

  // An entry without a file for a declared literal output is a miss that touches nothing.
  BOOST_TEST(!cache.restore(fingerprint, ws, {"lib/a.o", "lib/b.o"}).has_value());
  BOOST_TEST(!fs::exists(ws / "lib"));
  BOOST_TEST(cache.stats().misses == 1u);

  // A literal naming a directory is covered by a file below it; a wildcard by anything.
  BOOST_TEST(cache.restore(fingerprint, ws, {"lib", "lib/*.so"}).has_value());
  BOOST_TEST(read_text(ws / "lib/a.o") == "a");
  BOOST_TEST(!cache.restore(fingerprint, ws, {"li"}).has_value(), "not a directory of the entry");
}

BOOST_AUTO_TEST_CASE(a_missing_blob_is_a_miss_that_leaves_the_workspace_alone) {
  temp_dir dir;
  const fs::path ws = dir.path / "ws";
  write_text(ws / "one.txt", "1");
  write_text(ws / "two.txt", "2");
  drover::result_cache cache{dir.path / "cache"};
  BOOST_TEST(!cache.store(fingerprint, "m", nullptr, ws, {"one.txt", "two.txt"}).has_value());
  fs::remove(ws / "one.txt");
  write_text(ws / "two.txt", "changed");
  for (const auto& entry : fs::recursive_directory_iterator(dir.path / "cache" / "v1" / "blobs")) {
    if (entry.is_regular_file() && read_text(entry.path()) == "2") fs::remove(entry.path());
  }
  BOOST_TEST(!cache.restore(fingerprint, ws, {"one.txt", "two.txt"}).has_value());
  BOOST_TEST(!fs::exists(ws / "one.txt"));
  BOOST_TEST(read_text(ws / "two.txt") == "changed");
}

BOOST_AUTO_TEST_SUITE_END()
