#include <drover/graph.hpp>

#include <algorithm>
#include <string>

#include "io_validation.hpp"
#include "resource_glob.hpp"
#include "text.hpp"

namespace drover {

namespace {

using detail::in_quotes;

constexpr std::uint32_t no_index = static_cast<std::uint32_t>(-1);
constexpr int max_retries = 65535;

void check_policies(const std::string& module, std::uint32_t index, std::optional<int> retries,
                    const std::optional<backoff_policy>& backoff,
                    const std::optional<std::chrono::milliseconds>& timeout,
                    std::vector<validation_problem>& problems) {
  const auto who = [&] {
    return module.empty() ? std::string("defaults") : "module " + in_quotes(module);
  };
  const auto invalid = [&](std::string field, std::string message) {
    problems.push_back(
        {module, std::move(field), std::move(message), problem_kind::invalid_value, index});
  };
  if (retries && *retries < 0) {
    invalid("retries", who() + ": retries must be >= 0, got " + std::to_string(*retries));
  } else if (retries && *retries > max_retries) {
    invalid("retries", who() + ": retries must be at most " + std::to_string(max_retries) +
                           ", got " + std::to_string(*retries));
  }
  if (timeout && timeout->count() <= 0) {
    invalid("timeout",
            who() + ": timeout must be positive, got " + std::to_string(timeout->count()) + " ms");
  }
  if (backoff) {
    if (backoff->initial.count() < 0 || backoff->max.count() < 0) {
      invalid("backoff", who() + ": backoff delays must be >= 0");
    }
    if (!(backoff->multiplier >= 1.0)) {
      invalid("backoff.multiplier", who() + ": backoff multiplier must be >= 1, got " +
                                        std::to_string(backoff->multiplier));
    }
    if (!(backoff->jitter >= 0.0 && backoff->jitter <= 1.0)) {
      invalid("backoff.jitter", who() + ": backoff jitter must be within [0, 1], got " +
                                    std::to_string(backoff->jitter));
    }
  }
}

void check_constraints(const pipeline& p, const module_view& m, std::uint32_t index,
                       std::vector<validation_problem>& problems) {
  const std::string id(m.id());
  const auto who = [&] { return "module " + in_quotes(id); };
  const auto add = [&](problem_kind kind, std::string field, std::string message) {
    problems.push_back({id, std::move(field), std::move(message), kind, index});
  };
  const auto invalid = [&](std::string field, std::string message) {
    add(problem_kind::invalid_constraint, std::move(field), std::move(message));
  };
  if (m.matrix()) {
    add(problem_kind::invalid_matrix, "matrix",
        who() + " has a matrix that was not expanded (use drover::prepare)");
  }
  const module_constraints* c = m.constraints();
  if (c == nullptr) return;
  for (const auto& label : c->required_capabilities) {
    if (label.empty()) invalid("requires", who() + ": empty capability label");
  }
  for (const auto& key : c->not_in_parallel) {
    if (key.empty()) invalid("not_in_parallel", who() + ": empty not_in_parallel key");
  }
  for (const auto& claim : c->claims) {
    // Claims are compared on the dispatcher's strand in O(|a| * |b|): keep them path-sized.
    constexpr std::size_t max_resource_length = 1024;
    if (claim.resource.size() > max_resource_length) {
      invalid("claims", who() + ": claim resource is " + std::to_string(claim.resource.size()) +
                            " characters long, the limit is " +
                            std::to_string(max_resource_length));
    } else if (auto problem = detail::resource_glob_problem(claim.resource)) {
      invalid("claims", who() + ": claim " + *problem);
    }
  }
  if (!c->pool.empty()) {
    auto it = p.pools.find(c->pool);
    if (it == p.pools.end()) {
      std::string known;
      for (const auto& [name, slots] : p.pools)
        known += (known.empty() ? "" : ", ") + in_quotes(name);
      invalid("pool",
              who() + ": unknown pool " + in_quotes(c->pool) +
                  (known.empty() ? " (the pipeline defines no pools)" : " (pools: " + known + ")"));
    } else if (c->pool_slots == 0 || c->pool_slots > it->second) {
      invalid("pool_slots", who() + ": pool_slots must be between 1 and the size of pool " +
                                in_quotes(c->pool) + " (" + std::to_string(it->second) + "), got " +
                                std::to_string(c->pool_slots));
    }
  } else if (c->pool_slots != 1) {
    invalid("pool_slots", who() + ": pool_slots is set but pool is not");
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
        std::vector<std::string> cycle;
        std::string chain;
        for (auto it = from; it != stack.end(); ++it) {
          cycle.emplace_back(p.id(it->first));
          chain += cycle.back() + " -> ";
        }
        cycle.emplace_back(p.id(dep));
        chain += cycle.back();
        problems.push_back({std::string(p.id(dep)), "deps", "dependency cycle: " + chain,
                            problem_kind::dependency_cycle, dep, std::move(cycle)});
        ++reported;
      }
    }
  }
}

}  // namespace

struct graph_builder {
  // Everything about each module on its own (ids, body, policies, constraints, io), and the
  // pools. Returns the first module of each id (by symbol), to resolve dependencies with.
  static std::vector<std::uint32_t> check_modules(const pipeline& p, std::size_t& output_writers,
                                                  std::vector<validation_problem>& problems) {
    const std::size_t n = p.size();
    check_policies("", validation_problem::npos, p.defaults.retries, p.defaults.backoff,
                   p.defaults.timeout, problems);
    std::vector<std::uint32_t> module_of(p.symbol_count(), no_index);
    for (std::uint32_t i = 0; i < n; ++i) {
      const module_view m = p.module(i);
      const std::string id(m.id());
      if (id.empty()) {
        problems.push_back({"", "id", "module #" + std::to_string(i + 1) + " has an empty id",
                            problem_kind::empty_id, i});
        continue;
      }
      if (has_whitespace_or_control(id)) {
        problems.push_back(
            {id, "id", "module id " + in_quotes(id) + " contains whitespace or control characters",
             problem_kind::invalid_id, i});
      }
      std::uint32_t& first = module_of[p.symbol_of(i)];
      if (first == no_index) {
        first = i;
      } else {
        problems.push_back({id,
                            "id",
                            "duplicate module id " + in_quotes(id) + " (modules #" +
                                std::to_string(first + 1) + " and #" + std::to_string(i + 1) + ")",
                            problem_kind::duplicate_id,
                            i,
                            {id}});
      }
      if (!m.body()) {
        if (m.kind().empty()) {
          problems.push_back({id, "body",
                              "module " + in_quotes(id) + " has neither a body nor a kind",
                              problem_kind::missing_body, i});
        } else {
          problems.push_back({id, "kind",
                              "module " + in_quotes(id) + ": kind " + in_quotes(m.kind()) +
                                  " has not been resolved to a body (resolve kinds with "
                                  "drover::modules::registry::resolve before running)",
                              problem_kind::unresolved_kind, i});
        }
      }
      if (p.extras(i) != nullptr) {
        check_policies(id, i, m.retries(), m.backoff(), m.timeout(), problems);
        if (m.constraints() || m.matrix()) check_constraints(p, m, i, problems);
        if (const module_io* io = m.io()) {
          detail::check_module_io(m, problems);
          if (!io->outputs.empty()) ++output_writers;
        }
      }
    }
    for (const auto& [name, slots] : p.pools) {
      if (name.empty()) {
        problems.push_back({"", "pools", "a pool has an empty name", problem_kind::invalid_value});
      }
      if (slots == 0) {
        problems.push_back(
            {"", "pools", "pool " + in_quotes(name) + " has 0 slots", problem_kind::invalid_value});
      }
    }
    return module_of;
  }

  // Module i's dependencies as module indices, each once, ascending, into `out`.
  static void resolve(const pipeline& p, std::uint32_t i,
                      const std::vector<std::uint32_t>& module_of, std::vector<std::uint32_t>& out,
                      std::vector<validation_problem>& problems) {
    const std::size_t start = out.size();
    for (std::uint32_t symbol : p.dependency_refs(i)) {
      const std::uint32_t d = module_of[symbol];
      if (d == no_index) {
        const std::string id(p.id(i)), dep(p.symbol_text(symbol));
        problems.push_back(
            {id,
             "deps",
             "module " + in_quotes(id) + " depends on unknown module " + in_quotes(dep),
             problem_kind::unknown_dependency,
             i,
             {dep}});
      } else if (d == i || symbol == p.symbol_of(i)) {
        const std::string id(p.id(i));
        problems.push_back({id,
                            "deps",
                            "module " + in_quotes(id) + " depends on itself",
                            problem_kind::self_dependency,
                            i,
                            {id}});
      } else {
        out.push_back(d);
      }
    }
    std::sort(out.begin() + static_cast<std::ptrdiff_t>(start), out.end());
    out.erase(std::unique(out.begin() + static_cast<std::ptrdiff_t>(start), out.end()), out.end());
  }

  // With the predecessors in place: successors, the order, cycles, critical paths and output
  // conflicts.
  static void finish(const pipeline& p, graph& g, std::size_t n, std::size_t output_writers,
                     std::vector<validation_problem>& problems) {
    g.succ_offsets_.assign(n + 1, 0);
    for (std::uint32_t i = 0; i < n; ++i) {
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
    g.critical_path_.assign(n, 1);
    // Cycles among the edges that do resolve, so they are reported alongside other problems.
    std::vector<std::uint32_t> left(n);
    for (std::uint32_t i = 0; i < n; ++i)
      left[i] = g.in_degree(i);
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
    if (queue.size() != n) return report_cycles(p, g, left, problems);
    // Longest chain below each module, counted in modules: successors come later in the
    // topological order, so walk it backwards.
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

  static graph_result build(const pipeline& p) {
    graph_result out;
    const std::size_t n = p.size();
    if (n >= no_index) {
      out.problems.push_back({"", "modules", "too many modules: " + std::to_string(n),
                              problem_kind::too_many_modules});
      return out;
    }
    std::size_t output_writers = 0;
    const auto module_of = check_modules(p, output_writers, out.problems);
    graph g;
    g.own_pred_offsets_.reserve(n + 1);
    g.own_pred_offsets_.push_back(0);
    for (std::uint32_t i = 0; i < n; ++i) {
      if (p.dependencies_resolved()) {
        const auto refs = p.dependency_refs(i);
        g.own_pred_targets_.insert(g.own_pred_targets_.end(), refs.begin(), refs.end());
      } else {
        resolve(p, i, module_of, g.own_pred_targets_, out.problems);
      }
      g.own_pred_offsets_.push_back(static_cast<std::uint32_t>(g.own_pred_targets_.size()));
    }
    g.pred_offsets_ = g.own_pred_offsets_;
    g.pred_targets_ = g.own_pred_targets_;
    finish(p, g, n, output_writers, out.problems);
    if (out.problems.empty()) out.graph = std::move(g);
    return out;
  }

  // prepare()'s: the pipeline's dependencies become the graph's predecessors in place.
  static std::optional<graph> build_in_place(pipeline& p, std::vector<std::uint32_t>& module_of,
                                             std::vector<validation_problem>& problems) {
    const std::size_t n = p.size();
    if (n >= no_index) {
      problems.push_back({"", "modules", "too many modules: " + std::to_string(n),
                          problem_kind::too_many_modules});
      return std::nullopt;
    }
    std::size_t output_writers = 0;
    module_of = check_modules(p, output_writers, problems);
    if (!p.resolved_) {
      // Resolved entries never outnumber the symbols they replace, so they overwrite the
      // array from the front.
      std::vector<std::uint32_t> scratch;
      std::uint32_t write = 0;
      for (std::uint32_t i = 0; i < n; ++i) {
        scratch.clear();
        resolve(p, i, module_of, scratch, problems);
        p.dep_begin_[i] = write;
        for (std::uint32_t d : scratch)
          p.deps_[write++] = d;
      }
      p.dep_begin_[n] = write;
      p.deps_.resize(write);
      p.resolved_ = true;
    }
    if (!problems.empty()) return std::nullopt;
    graph g;
    g.pred_offsets_ = p.dep_begin_;
    g.pred_targets_ = p.deps_;
    finish(p, g, n, output_writers, problems);
    if (!problems.empty()) return std::nullopt;
    return g;
  }
};

graph_result build_graph(const pipeline& p) {
  return graph_builder::build(p);
}

std::optional<graph> build_graph_in_place(pipeline& p, std::vector<std::uint32_t>& module_of,
                                          std::vector<validation_problem>& problems) {
  return graph_builder::build_in_place(p, module_of, problems);
}

graph::graph(const graph& other)
    : own_pred_offsets_(other.own_pred_offsets_),
      own_pred_targets_(other.own_pred_targets_),
      pred_offsets_(other.pred_offsets_),
      pred_targets_(other.pred_targets_),
      succ_offsets_(other.succ_offsets_),
      succ_targets_(other.succ_targets_),
      critical_path_(other.critical_path_) {
  if (!own_pred_offsets_.empty()) {
    pred_offsets_ = own_pred_offsets_;
    pred_targets_ = own_pred_targets_;
  }
}

graph& graph::operator=(const graph& other) {
  if (this != &other) *this = graph(other);
  return *this;
}

std::vector<std::vector<graph::index>> graph::waves() const {
  std::vector<std::vector<index>> out;
  std::vector<std::uint32_t> left(size());
  for (index i = 0; i < size(); ++i)
    left[i] = in_degree(i);
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
