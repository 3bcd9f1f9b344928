#include <drover/cache.hpp>

#include "atomic_file.hpp"
#include "sha256.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

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
                                                        const fs::path& workspace) {
  if (!settings_.lookup || !is_hex_digest(fingerprint)) return std::nullopt;
  const fs::path entry_file = entry_path(fingerprint);
  std::error_code ec;
  if (!fs::exists(entry_file, ec)) {
    ++stats_.misses;
    return std::nullopt;
  }
  struct output {
    std::string path, hash;
    std::uintmax_t size;
  };
  std::vector<output> outputs;
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
      output out{std::string(file.at("path").as_string()),
                 std::string(file.at("sha256").as_string()),
                 static_cast<std::uintmax_t>(file.at("size").to_number<std::uint64_t>())};
      if (!is_safe_relative(out.path) || !is_hex_digest(out.hash)) throw std::runtime_error("bad");
      // Every blob must be there before anything is copied: a miss leaves the workspace alone.
      if (fs::file_size(blob_path(out.hash), ec) != out.size || ec) throw std::runtime_error("bad");
      outputs.push_back(std::move(out));
    }
  } catch (const std::exception&) {
    ++stats_.misses;  // damaged, half-written by a version that did not rename, or a foreign file
    return std::nullopt;
  }
  try {
    for (const auto& out : outputs)
      detail::copy_file_atomically(blob_path(out.hash), workspace / out.path);
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
