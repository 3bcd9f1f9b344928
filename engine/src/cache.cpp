#include <drover/cache.hpp>

#include "atomic_file.hpp"
#include "resource_glob.hpp"
#include "sha256.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <system_error>

namespace drover {
namespace fs = std::filesystem;

namespace {
constexpr std::int64_t cache_format = 1;

bool is_hex_digest(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// An output path from an entry is trusted only if it stays inside the workspace.
bool is_safe_relative(std::string_view p) {
  if (p.empty() || p.front() == '/') return false;
  std::size_t start = 0;
  while (start <= p.size()) {
    std::size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    const auto segment = p.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    start = end + 1;
  }
  return true;
}

struct stored_output {
  std::string path, hash;
  std::uintmax_t size;
};

// Whether the entry has a file for every literal output glob: the file itself, or one below the
// directory it names. A wildcard may rightly have matched nothing when the entry was stored.
bool covers_literal_outputs(const std::vector<stored_output>& files,
                            const std::vector<std::string>& declared) {
  return std::all_of(declared.begin(), declared.end(), [&](const std::string& glob) {
    if (!detail::resource_glob_is_literal(glob)) return true;
    return std::any_of(files.begin(), files.end(), [&](const stored_output& file) {
      return file.path == glob || (file.path.size() > glob.size() && file.path.starts_with(glob) &&
                                   file.path[glob.size()] == '/');
    });
  });
}

// Whether `target` already is what restoring `blob` would make it: a regular file of the same
// size, permission bits and content. Such a file is left alone, timestamp and all.
bool already_restored(const fs::path& target, const fs::path& blob, const stored_output& file) {
  std::error_code ec;
  const auto status = fs::symlink_status(target, ec);
  if (ec || !fs::is_regular_file(status)) return false;
  if (fs::file_size(target, ec) != file.size || ec) return false;
  if (status.permissions() != fs::status(blob, ec).permissions() || ec) return false;
  try {
    return detail::sha256_file_hex(target) == file.hash;
  } catch (const std::exception&) {
    return false;  // unreadable: writing it anew says what is wrong, or fixes it
  }
}
}  // namespace

result_cache::result_cache(fs::path directory, settings s)
    : directory_(std::move(directory)), settings_(s) {
  std::error_code ec;
  fs::create_directories(directory_ / "v1" / "entries", ec);
  if (!ec) fs::create_directories(directory_ / "v1" / "blobs", ec);
  if (ec) {
    throw std::runtime_error("cannot create cache directory '" + directory_.string() +
                             "': " + ec.message());
  }
}

fs::path result_cache::entry_path(const std::string& fingerprint) const {
  return directory_ / "v1" / "entries" / fingerprint.substr(0, 2) / (fingerprint + ".json");
}

fs::path result_cache::blob_path(const std::string& hash) const {
  return directory_ / "v1" / "blobs" / hash.substr(0, 2) / hash;
}

std::optional<boost::json::value> result_cache::restore(const std::string& fingerprint,
                                                        const fs::path& workspace,
                                                        const std::vector<std::string>& outputs) {
  if (!settings_.lookup || !is_hex_digest(fingerprint)) return std::nullopt;
  const fs::path entry_file = entry_path(fingerprint);
  std::error_code ec;
  if (!fs::exists(entry_file, ec)) {
    ++stats_.misses;
    return std::nullopt;
  }
  std::vector<stored_output> files;
  boost::json::value value;
  try {
    const auto entry = boost::json::parse(detail::read_file(entry_file));
    const auto& object = entry.as_object();
    if (object.at("format").as_int64() != cache_format ||
        object.at("fingerprint").as_string() != fingerprint) {
      ++stats_.misses;
      return std::nullopt;
    }
    value = object.at("value");
    for (const auto& o : object.at("outputs").as_array()) {
      const auto& file = o.as_object();
      stored_output out{std::string(file.at("path").as_string()),
                        std::string(file.at("sha256").as_string()),
                        static_cast<std::uintmax_t>(file.at("size").to_number<std::uint64_t>())};
      if (!is_safe_relative(out.path) || !is_hex_digest(out.hash)) throw std::runtime_error("bad");
      // Every blob must be there before anything is copied: a miss leaves the workspace alone.
      if (fs::file_size(blob_path(out.hash), ec) != out.size || ec) throw std::runtime_error("bad");
      files.push_back(std::move(out));
    }
  } catch (const std::exception&) {
    ++stats_.misses;  // damaged, half-written by a version that did not rename, or a foreign file
    return std::nullopt;
  }
  // A hit must give back every declared output, or the module would end cached without them.
  if (!covers_literal_outputs(files, outputs)) {
    ++stats_.misses;
    return std::nullopt;
  }
  try {
    for (const auto& file : files) {
      const fs::path blob = blob_path(file.hash);
      const fs::path target = workspace / file.path;
      if (already_restored(target, blob, file)) continue;
      detail::copy_file_atomically(blob, target);
    }
  } catch (const std::exception&) {
    ++stats_.misses;
    return std::nullopt;
  }
  ++stats_.hits;
  return value;
}

std::optional<std::string> result_cache::store(const std::string& fingerprint,
                                               const std::string& module_id,
                                               const boost::json::value& value,
                                               const fs::path& workspace,
                                               const std::vector<std::string>& outputs) {
  if (!settings_.store || !is_hex_digest(fingerprint)) return std::nullopt;
  try {
    boost::json::array files;
    for (const auto& relative : outputs) {
      const fs::path source = workspace / relative;
      const std::string hash = detail::sha256_file_hex(source);
      const fs::path blob = blob_path(hash);
      std::error_code ec;
      if (!fs::exists(blob, ec)) detail::copy_file_atomically(source, blob);
      files.push_back(boost::json::object{
          {"path", relative}, {"sha256", hash}, {"size", fs::file_size(source)}});
    }
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const boost::json::object entry{
        {"format", cache_format}, {"fingerprint", fingerprint},  {"id", module_id},
        {"value", value},         {"outputs", std::move(files)}, {"stored_at_ms", now}};
    detail::write_file_atomically(entry_path(fingerprint), boost::json::serialize(entry));
  } catch (const std::exception& e) {
    ++stats_.store_failures;
    return std::string("cannot store module ") + module_id + " in the cache '" +
           directory_.string() + "': " + e.what();
  }
  ++stats_.stores;
  return std::nullopt;
}

}  // namespace drover
