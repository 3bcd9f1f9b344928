#include <drover/graph.hpp>

#include <algorithm>
#include <string>

#include "id_index.hpp"
#include "io_validation.hpp"
#include "resource_glob.hpp"
#include "text.hpp"

namespace drover {

namespace {

using detail::in_quotes;

constexpr std::uint32_t no_index = static_cast<std::uint32_t>(-1);

void check_policies(const std::string& module, std::optional<int> retries,
                    const std::optional<backoff_policy>& backoff,
                    const std::optional<std::chrono::milliseconds>& timeout,
                    std::vector<validation_problem>& problems) {
  const auto who = [&] {
    return module.empty() ? std::string("defaults") : "module " + in_quotes(module);
  };
  if (retries && *retries < 0) {
    problems.push_back(
        {module, "retries", who() + ": retries must be >= 0, got " + std::to_string(*retries)});
  }
  if (timeout && timeout->count() <= 0) {
    problems.push_back(
        {module, "timeout",
         who() + ": timeout must be positive, got " + std::to_string(timeout->count()) + " ms"});
  }
  if (backoff) {
    if (backoff->initial.count() < 0 || backoff->max.count() < 0) {
      problems.push_back({module, "backoff", who() + ": backoff delays must be >= 0"});
    }
    if (!(backoff->multiplier >= 1.0)) {
      problems.push_back({module, "backoff.multiplier",
                          who() + ": backoff multiplier must be >= 1, got " +
                              std::to_string(backoff->multiplier)});
    }
    if (!(backoff->jitter >= 0.0 && backoff->jitter <= 1.0)) {
      problems.push_back({module, "backoff.jitter",
                          who() + ": backoff jitter must be within [0, 1], got " +
                              std::to_string(backoff->jitter)});
    }
  }
}

void check_constraints(const pipeline& p, const module_spec& m,
                       std::vector<validation_problem>& problems) {
  const auto who = [&] { return "module " + in_quotes(m.id); };
  if (m.matrix) {
    problems.push_back(
        {m.id, "matrix", who() + " has a matrix that was not expanded (use drover::prepare)"});
  }
  const module_constraints* c = m.constraints.get();
  if (c == nullptr) return;
  for (const auto& label : c->required_capabilities) {
    if (label.empty()) problems.push_back({m.id, "requires", who() + ": empty capability label"});
  }
  for (const auto& key : c->not_in_parallel) {
    if (key.empty()) {
      problems.push_back({m.id, "not_in_parallel", who() + ": empty not_in_parallel key"});
    }
  }
  for (const auto& claim : c->claims) {
    // Claims are compared on the dispatcher's strand in O(|a| * |b|): keep them path-sized.
    constexpr std::size_t max_resource_length = 1024;
    if (claim.resource.size() > max_resource_length) {
      problems.push_back({m.id, "claims",
                          who() + ": claim resource is " + std::to_string(claim.resource.size()) +
                              " characters long, the limit is " +
                              std::to_string(max_resource_length)});
    } else if (auto problem = detail::resource_glob_problem(claim.resource)) {
      problems.push_back({m.id, "claims", who() + ": claim " + *problem});
    }
  }
  if (!c->pool.empty()) {
    auto it = p.pools.find(c->pool);
    if (it == p.pools.end()) {
      std::string known;
      for (const auto& [name, slots] : p.pools)
        known += (known.empty() ? "" : ", ") + in_quotes(name);
      problems.push_back(
          {m.id, "pool",
           who() + ": unknown pool " + in_quotes(c->pool) +
               (known.empty() ? " (the pipeline defines no pools)" : " (pools: " + known + ")")});
    } else if (c->pool_slots == 0 || c->pool_slots > it->second) {
      problems.push_back({m.id, "pool_slots",
                          who() + ": pool_slots must be between 1 and the size of pool " +
                              in_quotes(c->pool) + " (" + std::to_string(it->second) + "), got " +
                              std::to_string(c->pool_slots)});
    }
  } else if (c->pool_slots != 1) {
    problems.push_back({m.id, "pool_slots", who() + ": pool_slots is set but pool is not"});
  }
}

// ASCII space and control characters; locale-free because it runs once per module.
bool has_whitespace_or_control(std::string_view id) {
  return std::any_of(id.begin(), id.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; });
}

// Finds the cycles among the modules Kahn's algorithm could not order. Each module is visited
// once, so a tangle of cycles is reported as the cycles a depth-first walk closes.
void report_cycles(const pipeline& p, const graph& g, const std::vector<std::uint32_t>& left,
                   std::vector<validation_problem>& problems) {
  enum : std::uint8_t { unvisited, on_stack, finished };
  std::vector<std::uint8_t> mark(g.size(), finished);
  for (std::uint32_t i = 0; i < g.size(); ++i) {
    if (left[i] > 0) mark[i] = unvisited;
  }
  constexpr std::size_t max_reported = 10;
  std::size_t reported = 0;
  // Walk "depends on" edges (predecessors) so the message reads a -> b where a needs b.
  std::vector<std::pair<std::uint32_t, std::size_t>> stack;
  for (std::uint32_t start = 0; start < g.size() && reported < max_reported; ++start) {
    if (mark[start] != unvisited) continue;
    stack.push_back({start, 0});
    mark[start] = on_stack;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      auto deps = g.predecessors(node);
      if (next == deps.size()) {
        mark[node] = finished;
        stack.pop_back();
        continue;
      }
      const std::uint32_t dep = deps[next++];
      if (mark[dep] == unvisited) {
        mark[dep] = on_stack;
        stack.push_back({dep, 0});
      } else if (mark[dep] == on_stack && reported < max_reported) {
        auto from = std::find_if(stack.begin(), stack.end(),
                                 [dep](const auto& entry) { return entry.first == dep; });
        std::string chain;
        for (auto it = from; it != stack.end(); ++it)
          chain += p.modules[it->first].id + " -> ";
        chain += p.modules[dep].id;
        problems.push_back({p.modules[dep].id, "deps", "dependency cycle: " + chain});
        ++reported;
      }
    }
  }
}

}  // namespace

struct graph_builder {
  static graph_result build(const pipeline& p) {
    graph_result out;
    auto& problems = out.problems;
    const std::size_t n = p.modules.size();
    if (n >= no_index) {
      problems.push_back({"", "modules", "too many modules: " + std::to_string(n)});
      return out;
    }

    check_policies("", p.defaults.retries, p.defaults.backoff, p.defaults.timeout, problems);

    std::size_t output_writers = 0;  // modules that declare outputs
    detail::id_index index_of(n);
    const auto id_of = [&p](std::uint32_t i) -> std::string_view { return p.modules[i].id; };
    // Table probes miss the cache on large pipelines; hashing a few ids ahead lets the probes
    // be prefetched, which halves the time to build a graph of a million modules.
    std::uint32_t next_id = 0;
    detail::hash_lookahead id_hashes(index_of, [&]() -> const std::string* {
      return next_id < n ? &p.modules[next_id++].id : nullptr;
    });
    for (std::uint32_t i = 0; i < n; ++i) {
      const module_spec& m = p.modules[i];
      const std::uint64_t id_hash = id_hashes.next();
      if (m.id.empty()) {
        problems.push_back({"", "id", "module #" + std::to_string(i + 1) + " has an empty id"});
        continue;
      }
      if (has_whitespace_or_control(m.id)) {
        problems.push_back(
            {m.id, "id",
             "module id " + in_quotes(m.id) + " contains whitespace or control characters"});
      }
      const std::uint32_t first = index_of.insert(id_hash, m.id, i, id_of);
      if (first != detail::id_index::npos) {
        problems.push_back({m.id, "id",
                            "duplicate module id " + in_quotes(m.id) + " (modules #" +
                                std::to_string(first + 1) + " and #" + std::to_string(i + 1) +
                                ")"});
      }
      if (!m.body) {
        if (m.kind.empty()) {
          problems.push_back(
              {m.id, "body", "module " + in_quotes(m.id) + " has neither a body nor a kind"});
        } else {
          problems.push_back({m.id, "kind",
                              "module " + in_quotes(m.id) + ": kind " + in_quotes(m.kind) +
                                  " has not been resolved to a body (resolve kinds with "
                                  "drover::modules::registry::resolve before running)"});
        }
      }
      check_policies(m.id, m.retries, m.backoff, m.timeout, problems);
      if (m.constraints || m.matrix) check_constraints(p, m, problems);
      if (m.io) {
        detail::check_module_io(m, problems);
        if (!m.io->outputs.empty()) ++output_writers;
      }
    }
    for (const auto& [name, slots] : p.pools) {
      if (name.empty()) problems.push_back({"", "pools", "a pool has an empty name"});
      if (slots == 0) {
        problems.push_back({"", "pools", "pool " + in_quotes(name) + " has 0 slots"});
      }
    }

    std::uint32_t ahead_module = 0;
    std::size_t ahead_dep = 0;
    detail::hash_lookahead dep_hashes(index_of, [&]() -> const std::string* {
      while (ahead_module < n && ahead_dep == p.modules[ahead_module].deps.size()) {
        ++ahead_module;
        ahead_dep = 0;
      }
      return ahead_module < n ? &p.modules[ahead_module].deps[ahead_dep++] : nullptr;
    });

    // Edges, deduplicated per module: listing a dependency twice is harmless.
    graph g;
    g.pred_offsets_.assign(n + 1, 0);
    std::vector<std::uint32_t> dep_scratch;
    for (std::uint32_t i = 0; i < n; ++i) {
      const module_spec& m = p.modules[i];
      dep_scratch.clear();
      for (const std::string& dep : m.deps) {
        const std::uint32_t d = index_of.find(dep_hashes.next(), dep, id_of);
        if (d == detail::id_index::npos) {
          problems.push_back(
              {m.id, "deps",
               "module " + in_quotes(m.id) + " depends on unknown module " + in_quotes(dep)});
        } else if (d == i || dep == m.id) {
          problems.push_back({m.id, "deps", "module " + in_quotes(m.id) + " depends on itself"});
        } else {
          dep_scratch.push_back(d);
        }
      }
      std::sort(dep_scratch.begin(), dep_scratch.end());
      dep_scratch.erase(std::unique(dep_scratch.begin(), dep_scratch.end()), dep_scratch.end());
      g.pred_targets_.insert(g.pred_targets_.end(), dep_scratch.begin(), dep_scratch.end());
      g.pred_offsets_[i + 1] = static_cast<std::uint32_t>(g.pred_targets_.size());
    }

    g.in_degree_.resize(n);
    g.succ_offsets_.assign(n + 1, 0);
    for (std::uint32_t i = 0; i < n; ++i) {
      g.in_degree_[i] = g.pred_offsets_[i + 1] - g.pred_offsets_[i];
      for (std::uint32_t dep : g.predecessors(i))
        ++g.succ_offsets_[dep + 1];
    }
    for (std::size_t i = 0; i < n; ++i)
      g.succ_offsets_[i + 1] += g.succ_offsets_[i];
    g.succ_targets_.resize(g.pred_targets_.size());
    {
      std::vector<std::uint32_t> fill(g.succ_offsets_.begin(), g.succ_offsets_.end() - 1);
      for (std::uint32_t i = 0; i < n; ++i) {
        for (std::uint32_t dep : g.predecessors(i))
          g.succ_targets_[fill[dep]++] = i;
      }
    }

    // Cycles among the edges that do resolve, so they are reported alongside other problems.
    {
      std::vector<std::uint32_t> left(g.in_degree_);
      std::vector<std::uint32_t> queue;
      queue.reserve(n);
      for (std::uint32_t i = 0; i < n; ++i) {
        if (left[i] == 0) queue.push_back(i);
      }
      for (std::size_t head = 0; head < queue.size(); ++head) {
        for (std::uint32_t s : g.successors(queue[head])) {
          if (--left[s] == 0) queue.push_back(s);
        }
      }
      if (queue.size() != n) {
        report_cycles(p, g, left, problems);
      } else {
        // Longest chain below each module, counted in modules: successors come later in
        // the topological order, so walk it backwards.
        g.critical_path_.assign(n, 1);
        for (std::size_t k = n; k-- > 0;) {
          const std::uint32_t i = queue[k];
          std::uint32_t longest = 0;
          for (std::uint32_t s : g.successors(i))
            longest = std::max(longest, g.critical_path_[s]);
          g.critical_path_[i] = longest + 1;
        }
        // Needs every edge: with unknown dependencies it would report pairs they order.
        if (problems.empty() && output_writers >= 2) {
          detail::report_output_conflicts(p, g, queue, problems);
        }
      }
    }

    if (problems.empty()) out.graph = std::move(g);
    return out;
  }
};

graph_result build_graph(const pipeline& p) {
  return graph_builder::build(p);
}

std::vector<std::vector<graph::index>> graph::waves() const {
  std::vector<std::vector<index>> out;
  std::vector<std::uint32_t> left(in_degree_);
  std::vector<index> current;
  for (index i = 0; i < size(); ++i) {
    if (left[i] == 0) current.push_back(i);
  }
  while (!current.empty()) {
    std::vector<index> next;
    for (index i : current) {
      for (index s : successors(i)) {
        if (--left[s] == 0) next.push_back(s);
      }
    }
    std::sort(next.begin(), next.end());
    out.push_back(std::move(current));
    current = std::move(next);
  }
  return out;
}

std::string format_problems(const std::vector<validation_problem>& problems) {
  std::string out;
  for (const auto& problem : problems) {
    out += problem.message;
    out += '\n';
  }
  return out;
}

}  // namespace drover
