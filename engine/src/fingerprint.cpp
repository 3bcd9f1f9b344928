#include "fingerprint.hpp"

#include "resource_glob.hpp"
#include "sha256.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <system_error>

namespace drover::detail {
namespace fs = std::filesystem;

namespace {

void append_canonical(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::object: {
      const auto& object = v.get_object();
      std::vector<const boost::json::key_value_pair*> members;
      members.reserve(object.size());
      for (const auto& member : object)
        members.push_back(&member);
      std::sort(members.begin(), members.end(),
                [](auto* a, auto* b) { return a->key() < b->key(); });
      out += '{';
      for (std::size_t k = 0; k < members.size(); ++k) {
        if (k > 0) out += ',';
        out += boost::json::serialize(boost::json::value(members[k]->key()));
        out += ':';
        append_canonical(out, members[k]->value());
      }
      out += '}';
      break;
    }
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& element : v.get_array()) {
        if (!first) out += ',';
        first = false;
        append_canonical(out, element);
      }
      out += ']';
      break;
    }
    default:
      out += boost::json::serialize(v);
  }
}

// The directory a glob's literal leading segments name: walking starts there, not at the root.
// An absolute glob's prefix keeps its leading '/'.
std::string literal_prefix(std::string_view glob) {
  std::string prefix;
  std::size_t start = 0;
  if (glob.starts_with('/')) {
    prefix = "/";
    start = 1;
  }
  while (start < glob.size()) {
    std::size_t end = glob.find('/', start);
    if (end == std::string_view::npos) end = glob.size();
    const auto segment = glob.substr(start, end - start);
    if (!resource_glob_is_literal(segment) || segment == "**") break;
    if (end == glob.size()) break;  // the last segment names files, not a directory to enter
    if (!prefix.empty() && prefix != "/") prefix += '/';
    prefix += segment;
    start = end + 1;
  }
  return prefix;
}

// Matches a file's name against a glob, both absolute or both relative: the glob syntax has no
// empty segment, so an absolute pair is compared without its leading '/'.
bool input_glob_matches(std::string_view glob, std::string_view name) {
  if (glob.starts_with('/') != name.starts_with('/')) return false;
  if (glob.starts_with('/')) {
    glob.remove_prefix(1);
    name.remove_prefix(1);
  }
  return resource_glob_matches(glob, name);
}

}  // namespace

std::string canonical_json(const boost::json::value& value) {
  std::string out;
  append_canonical(out, value);
  return out;
}

std::string pipeline_fingerprint(const pipeline& p) {
  sha256 h;
  h.field("drover-pipeline-1");
  h.field(p.name);
  for (std::size_t i = 0; i < p.size(); ++i) {
    const module_view m = p.module(i);
    h.field(m.id());
    h.field(m.kind().empty() ? std::string_view("body") : m.kind());
    h.field(canonical_json(m.params()));
    auto deps = m.deps();
    std::sort(deps.begin(), deps.end());
    deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
    h.field(std::to_string(deps.size()));
    for (const auto& d : deps)
      h.field(d);
    h.field(m.io() ? std::string_view(m.io()->version) : std::string_view{});
  }
  return h.hex_digest();
}

std::vector<std::string> match_files(const fs::path& root, const std::vector<std::string>& globs) {
  std::vector<std::string> files;
  for (const auto& glob : globs) {
    std::error_code ec;
    if (resource_glob_is_literal(glob)) {
      const fs::path p = root / glob;
      const auto status = fs::status(p, ec);
      if (fs::is_regular_file(status)) {
        files.push_back(glob);
        continue;
      }
      if (!fs::is_directory(status)) continue;
    }
    const std::string prefix = resource_glob_is_literal(glob) ? glob : literal_prefix(glob);
    const fs::path start = prefix.empty() ? root : root / prefix;  // an absolute prefix wins
    if (!fs::is_directory(start, ec)) continue;
    const bool whole_directory = resource_glob_is_literal(glob);
    // A file is named as the glob names it: the prefix as written, then its path below start.
    const std::string name_prefix = prefix.empty() || prefix.ends_with('/') ? prefix : prefix + '/';
    for (fs::recursive_directory_iterator
             it(start, fs::directory_options::skip_permission_denied, ec),
         end;
         !ec && it != end; it.increment(ec)) {
      const auto& entry = *it;
      if (it.depth() == 0 && prefix.empty() && entry.path().filename() == ".drover") {
        it.disable_recursion_pending();
        continue;
      }
      std::error_code type_error;
      if (entry.is_symlink(type_error) && entry.is_directory(type_error)) {
        it.disable_recursion_pending();
      }
      if (!entry.is_regular_file(type_error)) continue;
      const std::string name =
          name_prefix + entry.path().lexically_relative(start).generic_string();
      if (whole_directory || input_glob_matches(glob, name)) files.push_back(name);
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

fingerprinter::fingerprinter(const pipeline& p, const drover::graph& g, fs::path workspace)
    : pipeline_(p), graph_(g), workspace_(std::move(workspace)), fingerprints_(p.size()) {}

const std::string& fingerprinter::file_hash(const std::string& relative) {
  const fs::path path = workspace_ / relative;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto modified = ec ? fs::file_time_type{} : fs::last_write_time(path, ec);
  if (ec) {
    throw std::runtime_error("cannot read input file '" + path.string() + "': " + ec.message());
  }
  auto& stamp = files_[relative];
  if (stamp.hash.empty() || stamp.size != size || stamp.modified != modified) {
    try {
      stamp.hash = sha256_file_hex(path);
    } catch (const std::system_error& e) {
      stamp.hash.clear();
      throw std::runtime_error(std::string("input file: ") + e.what());
    }
    stamp.size = size;
    stamp.modified = modified;
  }
  return stamp.hash;
}

const std::string& fingerprinter::compute(std::uint32_t i) {
  const module_view m = pipeline_.module(i);
  sha256& h = hasher_;
  h.reset();  // an input that could not be read may have left a half-fed state
  h.field("drover-module-1");
  h.field(m.id());
  if (m.kind().empty()) {
    h.field("body");
  } else {
    h.field(m.kind());
    h.field(canonical_json(m.params()));
  }
  if (const matrix_instance* instance = m.instance()) {
    for (const auto& [axis, value] : instance->values) {
      h.field(axis);
      h.field(value);
    }
  }
  if (const module_io* declared = m.io()) {
    const module_io& io = *declared;
    h.field("version");
    h.field(io.version);
    h.field("inputs");
    for (const auto& glob : io.inputs)
      h.field(glob);
    for (const auto& file : match_files(workspace_, io.inputs)) {
      h.field(file);
      h.field(file_hash(file));
    }
    h.field("env");
    for (const auto& name : io.input_env) {
      h.field(name);
      if (const char* value = std::getenv(name.c_str())) {
        h.field("=");
        h.field(value);
      } else {
        h.field("unset");
      }
    }
    h.field("outputs");
    for (const auto& glob : io.outputs)
      h.field(glob);
  }
  std::vector<std::uint32_t> deps(graph_.predecessors(i).begin(), graph_.predecessors(i).end());
  std::sort(deps.begin(), deps.end(),
            [&](std::uint32_t a, std::uint32_t b) { return pipeline_.id(a) < pipeline_.id(b); });
  h.field("deps");
  for (const std::uint32_t d : deps) {
    h.field(pipeline_.id(d));
    h.field(fingerprints_[d]);
  }
  fingerprints_[i] = h.hex_digest();
  return fingerprints_[i];
}

}  // namespace drover::detail
