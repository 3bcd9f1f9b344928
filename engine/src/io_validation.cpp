#include "io_validation.hpp"

#include "resource_glob.hpp"
#include "text.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace drover::detail {

namespace {

// Globs are matched against paths in O(|glob| * |path|): keep them path-sized, as claims are.
constexpr std::size_t max_glob_length = 1024;
constexpr std::size_t max_reported_conflicts = 10;

std::string entry_field(std::string_view field, std::size_t i) {
  return std::string{field} + '[' + std::to_string(i) + ']';
}

// Whether `glob` has a '.' segment, or a '..' segment other than leading ones (when those are
// allowed): either would give one file several names.
bool has_dot_segment(std::string_view glob, bool leading_dot_dots_allowed) {
  bool leading = leading_dot_dots_allowed;
  for (std::size_t begin = 0; begin <= glob.size();) {
    std::size_t end = glob.find('/', begin);
    if (end == std::string_view::npos) end = glob.size();
    const std::string_view segment = glob.substr(begin, end - begin);
    leading = leading && segment == "..";
    if (segment == "." || (segment == ".." && !leading)) return true;
    begin = end + 1;
  }
  return false;
}

bool is_env_name(std::string_view name) {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// What is wrong with one glob of `field` ("inputs" or "outputs"), if anything.
std::optional<std::string> glob_problem(std::string_view field, std::string_view glob) {
  const bool output = field == "outputs";
  if (glob.size() > max_glob_length) {
    return "is " + std::to_string(glob.size()) + " characters long, the limit is " +
           std::to_string(max_glob_length);
  }
  // Outputs are written into the workspace, so they never leave it. Inputs are only read: an
  // absolute one, or one that starts with '..' segments, names files outside it (the sources
  // of an out-of-source build, an SDK), fingerprinted like any other.
  const bool absolute = !glob.empty() && glob.front() == '/';
  if (output && absolute) {
    return in_quotes(glob) + " is an absolute path; outputs are relative to the workspace";
  }
  if (auto problem = resource_glob_problem(absolute ? glob.substr(1) : glob)) {
    // "resource glob 'x' has ..." reads as "glob 'x' has ..." here.
    constexpr std::string_view resource = "resource ";
    if (problem->starts_with(resource)) problem->erase(0, resource.size());
    if (absolute) {
      // The problem quotes and counts offsets in the glob without its leading '/'.
      *problem = in_quotes(glob) + " is not a valid glob: after its leading '/', " + *problem;
    }
    return problem;
  }
  if (has_dot_segment(glob, !output && !absolute)) {
    return in_quotes(glob) + " has a '.' or '..' segment" +
           (output ? std::string{"; outputs name files inside the workspace"}
                   : std::string{"; only a relative input may start with '..' segments"});
  }
  return std::nullopt;
}

void check_globs(const module_view& m, std::string_view field,
                 const std::vector<std::string>& globs, std::vector<validation_problem>& problems) {
  const std::string_view noun = field == "outputs" ? "output " : "input ";
  const std::string id(m.id());
  for (std::size_t i = 0; i < globs.size(); ++i) {
    if (auto problem = glob_problem(field, globs[i])) {
      problems.push_back({id, entry_field(field, i),
                          "module " + in_quotes(id) + ": " + std::string{noun} + *problem,
                          problem_kind::invalid_io});
    }
  }
}

bool claims_conflict(const module_view& a, const module_view& b) {
  const module_constraints* ca = a.constraints();
  const module_constraints* cb = b.constraints();
  if (!ca || !cb) return false;
  for (const resource_claim& x : ca->claims) {
    for (const resource_claim& y : cb->claims) {
      const bool either_writes = x.mode == claim_mode::write || y.mode == claim_mode::write;
      if (either_writes && resource_globs_overlap(x.resource, y.resource)) return true;
    }
  }
  return false;
}

// Two modules' outputs that can name the same file: module `a` (the earlier in the pipeline)
// through its glob `a_glob`, module `b` through `b_glob`.
struct overlap {
  std::uint32_t a;
  std::uint32_t b;
  std::uint32_t a_glob;
  std::uint32_t b_glob;
};

}  // namespace

void check_module_io(const module_view& m, std::vector<validation_problem>& problems) {
  const module_io& io = *m.io();
  const std::string id(m.id());
  check_globs(m, "inputs", io.inputs, problems);
  check_globs(m, "outputs", io.outputs, problems);
  for (std::size_t i = 0; i < io.input_env.size(); ++i) {
    if (!is_env_name(io.input_env[i])) {
      problems.push_back({id, entry_field("input_env", i),
                          "module " + in_quotes(id) + ": input_env entry " +
                              in_quotes(io.input_env[i]) +
                              " is not an environment variable name (letters, digits and '_', "
                              "not starting with a digit)"});
    }
  }
}

void report_output_conflicts(const pipeline& p, const graph& g,
                             std::span<const std::uint32_t> topological_order,
                             std::vector<validation_problem>& problems) {
  struct output_ref {
    std::uint32_t module;
    std::uint32_t glob;
  };
  std::unordered_map<std::string_view, std::vector<output_ref>> literals;
  std::vector<output_ref> wildcards;
  std::size_t writers = 0;
  for (std::uint32_t i = 0; i < p.size(); ++i) {
    const module_io* io = p.module(i).io();
    if (io == nullptr || io->outputs.empty()) continue;
    ++writers;
    for (std::uint32_t k = 0; k < io->outputs.size(); ++k) {
      const std::string& glob = io->outputs[k];
      if (resource_glob_is_literal(glob)) {
        literals[glob].push_back({i, k});
      } else {
        wildcards.push_back({i, k});
      }
    }
  }
  if (writers < 2) return;

  // Each pair of modules once, with the first pair of globs found for it.
  std::vector<overlap> overlaps;
  std::unordered_set<std::uint64_t> seen;
  const auto add = [&](output_ref x, output_ref y) {
    if (x.module == y.module) return;
    if (x.module > y.module) std::swap(x, y);
    const std::uint64_t key = (std::uint64_t{x.module} << 32) | y.module;
    if (seen.insert(key).second) overlaps.push_back({x.module, y.module, x.glob, y.glob});
  };
  for (const auto& [glob, refs] : literals) {
    for (std::size_t x = 0; x < refs.size(); ++x) {
      for (std::size_t y = x + 1; y < refs.size(); ++y)
        add(refs[x], refs[y]);
    }
  }
  const auto glob_of = [&](output_ref r) -> const std::string& {
    return p.module(r.module).io()->outputs[r.glob];
  };
  for (std::size_t w = 0; w < wildcards.size(); ++w) {
    const std::string& glob = glob_of(wildcards[w]);
    for (std::size_t v = w + 1; v < wildcards.size(); ++v) {
      if (resource_globs_overlap(glob, glob_of(wildcards[v]))) add(wildcards[w], wildcards[v]);
    }
    for (const auto& [literal, refs] : literals) {
      if (!resource_glob_matches(glob, literal)) continue;
      for (output_ref r : refs)
        add(wildcards[w], r);
    }
  }
  std::erase_if(overlaps,
                [&](const overlap& o) { return claims_conflict(p.module(o.a), p.module(o.b)); });
  if (overlaps.empty()) return;

  // Whether the earlier of each pair in topological order reaches the later: one walk per
  // earlier module, over successors no later in the order than its furthest partner.
  std::vector<std::uint32_t> rank(g.size());
  for (std::uint32_t k = 0; k < topological_order.size(); ++k)
    rank[topological_order[k]] = k;
  std::vector<std::size_t> by_source(overlaps.size());
  for (std::size_t k = 0; k < by_source.size(); ++k)
    by_source[k] = k;
  const auto source_of = [&](const overlap& o) { return rank[o.a] < rank[o.b] ? o.a : o.b; };
  const auto target_of = [&](const overlap& o) { return rank[o.a] < rank[o.b] ? o.b : o.a; };
  std::sort(by_source.begin(), by_source.end(), [&](std::size_t x, std::size_t y) {
    return std::pair{source_of(overlaps[x]), x} < std::pair{source_of(overlaps[y]), y};
  });
  std::vector<std::uint32_t> visited(g.size(), 0);  // the walk that last reached each module
  std::uint32_t walk = 0;
  std::vector<std::uint32_t> stack;
  std::vector<std::size_t> unordered;
  for (std::size_t begin = 0; begin < by_source.size();) {
    const std::uint32_t source = source_of(overlaps[by_source[begin]]);
    std::size_t end = begin;
    std::uint32_t furthest = 0;
    while (end < by_source.size() && source_of(overlaps[by_source[end]]) == source) {
      furthest = std::max(furthest, rank[target_of(overlaps[by_source[end]])]);
      ++end;
    }
    ++walk;
    stack.assign(1, source);
    visited[source] = walk;
    while (!stack.empty()) {
      const std::uint32_t node = stack.back();
      stack.pop_back();
      for (std::uint32_t next : g.successors(node)) {
        if (visited[next] == walk || rank[next] > furthest) continue;
        visited[next] = walk;
        stack.push_back(next);
      }
    }
    for (std::size_t k = begin; k < end; ++k) {
      if (visited[target_of(overlaps[by_source[k]])] != walk) unordered.push_back(by_source[k]);
    }
    begin = end;
  }

  std::sort(unordered.begin(), unordered.end(), [&](std::size_t x, std::size_t y) {
    return std::pair{overlaps[x].a, overlaps[x].b} < std::pair{overlaps[y].a, overlaps[y].b};
  });
  for (std::size_t k = 0; k < unordered.size() && k < max_reported_conflicts; ++k) {
    const overlap& o = overlaps[unordered[k]];
    const module_view a = p.module(o.a);
    const module_view b = p.module(o.b);
    const std::string a_id(a.id()), b_id(b.id());
    problems.push_back(
        {a_id,
         entry_field("outputs", o.a_glob),
         "modules " + in_quotes(a_id) + " and " + in_quotes(b_id) + " can write the same output (" +
             in_quotes(a.io()->outputs[o.a_glob]) + " and " + in_quotes(b.io()->outputs[o.b_glob]) +
             "), but neither depends on the other and their claims do not conflict: add a "
             "dependency between them, or claims on a shared resource with at least one write",
         problem_kind::output_conflict,
         o.a,
         {b_id}});
  }
}

}  // namespace drover::detail
