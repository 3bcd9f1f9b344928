#include <drover/graph.hpp>

#define BOOST_TEST_MODULE graph
#include "test_support.hpp"

#include <map>
#include <set>
#include <sstream>

namespace {

using namespace drover::test;
using node_index = drover::graph::index;
using drover::validation_problem;

std::vector<node_index> sorted(std::span<const node_index> s) {
  std::vector<node_index> v{s.begin(), s.end()};
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<node_index> sorted(std::vector<node_index> v) {
  std::sort(v.begin(), v.end());
  return v;
}

/// a; b and c depend on a; d depends on b and c.
drover::pipeline diamond() {
  drover::pipeline p;
  p.name = "diamond";
  p.add("a", value_body());
  p.add("b", value_body(), {"a"});
  p.add("c", value_body(), {"a"});
  p.add("d", value_body(), {"b", "c"});
  return p;
}

std::vector<validation_problem> problems_of(const drover::pipeline& p) {
  auto result = drover::build_graph(p);
  BOOST_TEST(!result.ok());
  BOOST_TEST(!result.graph.has_value());
  BOOST_TEST(!result.problems.empty());
  return result.problems;
}

/// True when some problem is about `module` and its message or field mentions `needle`.
bool has_problem(const std::vector<validation_problem>& problems, std::string_view module,
                 std::string_view needle) {
  return std::any_of(problems.begin(), problems.end(), [&](const validation_problem& p) {
    return p.module == module && (mentions(p.message, needle) || mentions(p.field, needle));
  });
}

std::string describe(const std::vector<validation_problem>& problems) {
  return drover::format_problems(problems);
}

bool is_id_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

/// The ids of the first `x -> y -> ...` chain in `message`, quotes stripped.
std::vector<std::string> arrow_chain(std::string_view message) {
  std::vector<std::string> chain;
  auto arrow = message.find(" -> ");
  if (arrow == std::string_view::npos) return chain;
  auto start = arrow;
  while (start > 0 && message[start - 1] != ' ' && message[start - 1] != ':')
    --start;
  std::string_view rest = message.substr(start);
  for (;;) {
    auto next = rest.find(" -> ");
    std::string_view token = rest.substr(0, next);
    if (next == std::string_view::npos) {
      std::size_t n = 0;
      while (n < token.size() &&
             (is_id_char(token[n]) || token[n] == '\'' || token[n] == '"' || token[n] == '`'))
        ++n;
      token = token.substr(0, n);
    }
    std::string id;
    for (char c : token) {
      if (c != '\'' && c != '"' && c != '`') id.push_back(c);
    }
    chain.push_back(id);
    if (next == std::string_view::npos) break;
    rest = rest.substr(next + 4);
  }
  return chain;
}

using dependency_map = std::map<std::string, std::set<std::string>>;

dependency_map dependencies_of(const drover::pipeline& p) {
  dependency_map deps;
  for (const auto& m : p.specs())
    deps[m.id].insert(m.deps.begin(), m.deps.end());
  return deps;
}

/// True when `chain` closes on its first id and every arrow is a real edge, all pointing the
/// same way (either "depends on" or "is needed by").
bool is_real_cycle(const std::vector<std::string>& chain, const dependency_map& deps) {
  if (chain.size() < 3 || chain.front() != chain.back()) return false;
  auto depends = [&](const std::string& from, const std::string& on) {
    auto it = deps.find(from);
    return it != deps.end() && it->second.count(on) > 0;
  };
  bool forward = true, backward = true;
  for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
    forward = forward && depends(chain[i], chain[i + 1]);
    backward = backward && depends(chain[i + 1], chain[i]);
  }
  return forward || backward;
}

/// The set of ids of each cycle reported in `problems`, checking each is a real cycle.
std::vector<std::set<std::string>> reported_cycles(const std::vector<validation_problem>& problems,
                                                   const drover::pipeline& p) {
  std::vector<std::set<std::string>> cycles;
  auto deps = dependencies_of(p);
  for (const auto& problem : problems) {
    if (!mentions(problem.message, "cycle")) continue;
    auto chain = arrow_chain(problem.message);
    BOOST_TEST_CONTEXT("cycle message: " << problem.message) {
      BOOST_TEST(is_real_cycle(chain, deps));
    }
    cycles.emplace_back(chain.begin(), chain.end());
  }
  return cycles;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(graph)

BOOST_AUTO_TEST_CASE(builds_csr_edges_both_ways) {
  auto result = drover::build_graph(diamond());
  BOOST_REQUIRE(result.ok());
  BOOST_TEST(result.problems.empty());
  const auto& g = *result.graph;
  BOOST_TEST(g.size() == 4u);

  BOOST_TEST(sorted(g.successors(0)) == (std::vector<node_index>{1, 2}));
  BOOST_TEST(sorted(g.successors(1)) == (std::vector<node_index>{3}));
  BOOST_TEST(sorted(g.successors(2)) == (std::vector<node_index>{3}));
  BOOST_TEST(g.successors(3).empty());

  BOOST_TEST(g.predecessors(0).empty());
  BOOST_TEST(sorted(g.predecessors(1)) == (std::vector<node_index>{0}));
  BOOST_TEST(sorted(g.predecessors(2)) == (std::vector<node_index>{0}));
  BOOST_TEST(sorted(g.predecessors(3)) == (std::vector<node_index>{1, 2}));

  BOOST_TEST(g.in_degree(0) == 0u);
  BOOST_TEST(g.in_degree(1) == 1u);
  BOOST_TEST(g.in_degree(2) == 1u);
  BOOST_TEST(g.in_degree(3) == 2u);
}

BOOST_AUTO_TEST_CASE(groups_modules_into_waves) {
  auto result = drover::build_graph(diamond());
  BOOST_REQUIRE(result.ok());
  auto waves = result.graph->waves();
  BOOST_REQUIRE(waves.size() == 3u);
  BOOST_TEST(sorted(waves[0]) == (std::vector<node_index>{0}));
  BOOST_TEST(sorted(waves[1]) == (std::vector<node_index>{1, 2}));
  BOOST_TEST(sorted(waves[2]) == (std::vector<node_index>{3}));
}

BOOST_AUTO_TEST_CASE(indices_follow_pipeline_order_not_dependency_order) {
  // Declared before their dependencies; c also depends on a directly, which must not pull it
  // into wave 1.
  drover::pipeline p;
  p.add("c", value_body(), {"a", "b"});
  p.add("b", value_body(), {"a"});
  p.add("a", value_body());
  auto result = drover::build_graph(p);
  BOOST_REQUIRE(result.ok());
  const auto& g = *result.graph;
  BOOST_TEST(sorted(g.successors(2)) == (std::vector<node_index>{0, 1}));
  BOOST_TEST(sorted(g.predecessors(0)) == (std::vector<node_index>{1, 2}));
  BOOST_TEST(g.in_degree(0) == 2u);
  BOOST_TEST(g.in_degree(2) == 0u);
  auto waves = g.waves();
  BOOST_REQUIRE(waves.size() == 3u);
  BOOST_TEST(sorted(waves[0]) == (std::vector<node_index>{2}));
  BOOST_TEST(sorted(waves[1]) == (std::vector<node_index>{1}));
  BOOST_TEST(sorted(waves[2]) == (std::vector<node_index>{0}));
}

BOOST_AUTO_TEST_CASE(accepts_boundary_values) {
  drover::pipeline p;
  auto m = p.add("edge", value_body());
  m.retries(0);
  m.timeout(1ms);
  m.backoff(drover::backoff_policy{0ms, 1.0, 0ms, 0.0});
  p.add("other", value_body()).backoff(drover::backoff_policy{10ms, 3.0, 1s, 1.0});
  auto result = drover::build_graph(p);
  BOOST_TEST(result.ok(), describe(result.problems));
}

BOOST_AUTO_TEST_CASE(empty_pipeline_is_valid) {
  auto result = drover::build_graph(drover::pipeline{});
  BOOST_REQUIRE(result.ok());
  BOOST_TEST(result.graph->size() == 0u);
  BOOST_TEST(result.graph->waves().empty());
}

BOOST_AUTO_TEST_CASE(builds_a_long_chain) {
  // Deep enough to overflow the stack of a recursive cycle check.
  constexpr int length = 100'000;
  drover::pipeline p;
  p.reserve(length);
  const drover::module_body body = value_body();
  for (int i = 0; i < length; ++i) {
    if (i == 0) {
      p.add("m0", body);
    } else {
      p.add("m" + std::to_string(i), body, {"m" + std::to_string(i - 1)});
    }
  }
  auto result = drover::build_graph(p);
  BOOST_REQUIRE(result.ok());
  BOOST_TEST(result.graph->size() == static_cast<std::size_t>(length));
  BOOST_TEST(result.graph->waves().size() == static_cast<std::size_t>(length));
}

BOOST_AUTO_TEST_CASE(rejects_an_empty_id) {
  drover::pipeline p;
  p.add("fine", value_body());
  p.add("", value_body());
  auto problems = problems_of(p);
  BOOST_TEST(std::any_of(problems.begin(), problems.end(),
                         [](const validation_problem& pr) {
                           return mentions(pr.message, "id") || mentions(pr.field, "id");
                         }),
             describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_duplicate_ids) {
  drover::pipeline p;
  p.add("build", value_body());
  p.add("build", value_body());
  auto problems = problems_of(p);
  BOOST_TEST(has_problem(problems, "build", "duplicate"), describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_an_unknown_dependency) {
  drover::pipeline p;
  p.add("build", value_body(), {"ghost"});
  auto problems = problems_of(p);
  BOOST_TEST(has_problem(problems, "build", "ghost"), describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_a_self_dependency) {
  drover::pipeline p;
  p.add("loop", value_body(), {"loop"});
  auto problems = problems_of(p);
  BOOST_TEST((has_problem(problems, "loop", "self") || has_problem(problems, "loop", "itself")),
             describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_a_module_with_neither_body_nor_kind) {
  drover::pipeline p;
  drover::module_spec spec;
  spec.id = "hollow";
  p.add(spec);
  auto problems = problems_of(p);
  BOOST_TEST((has_problem(problems, "hollow", "kind") || has_problem(problems, "hollow", "body")),
             describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_negative_retries) {
  drover::pipeline p;
  p.add("r", value_body()).retries(-1);
  auto problems = problems_of(p);
  BOOST_TEST(has_problem(problems, "r", "retries"), describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_a_non_positive_timeout) {
  drover::pipeline p;
  p.add("zero", value_body()).timeout(0ms);
  p.add("negative", value_body()).timeout(-5ms);
  auto problems = problems_of(p);
  BOOST_TEST(has_problem(problems, "zero", "timeout"), describe(problems));
  BOOST_TEST(has_problem(problems, "negative", "timeout"), describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_a_backoff_multiplier_below_one) {
  drover::pipeline p;
  p.add("shrinking", value_body()).backoff(drover::backoff_policy{10ms, 0.5, 1s, 0.0});
  auto problems = problems_of(p);
  BOOST_TEST(has_problem(problems, "shrinking", "multiplier"), describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_jitter_outside_zero_to_one) {
  drover::pipeline p;
  p.add("below", value_body()).backoff(drover::backoff_policy{10ms, 2.0, 1s, -0.1});
  p.add("above", value_body()).backoff(drover::backoff_policy{10ms, 2.0, 1s, 1.5});
  auto problems = problems_of(p);
  BOOST_TEST(has_problem(problems, "below", "jitter"), describe(problems));
  BOOST_TEST(has_problem(problems, "above", "jitter"), describe(problems));
}

BOOST_AUTO_TEST_CASE(rejects_invalid_pipeline_defaults) {
  drover::pipeline p;
  p.defaults.retries = -2;
  p.defaults.timeout = 0ms;
  p.add("a", value_body());
  auto problems = problems_of(p);
  BOOST_TEST(has_problem(problems, "", "retries"), describe(problems));
  BOOST_TEST(has_problem(problems, "", "timeout"), describe(problems));
}

BOOST_AUTO_TEST_CASE(prints_a_three_module_cycle) {
  drover::pipeline p;
  p.add("a", value_body(), {"c"});
  p.add("b", value_body(), {"a"});
  p.add("c", value_body(), {"b"});
  p.add("outside", value_body(), {"a"});
  auto problems = problems_of(p);
  auto cycles = reported_cycles(problems, p);
  BOOST_TEST(cycles.size() == 1u, describe(problems));
  if (!cycles.empty()) {
    BOOST_TEST((cycles[0] == std::set<std::string>{"a", "b", "c"}), describe(problems));
  }
}

BOOST_AUTO_TEST_CASE(prints_a_two_module_cycle) {
  drover::pipeline p;
  p.add("x", value_body(), {"y"});
  p.add("y", value_body(), {"x"});
  auto problems = problems_of(p);
  auto cycles = reported_cycles(problems, p);
  BOOST_REQUIRE(cycles.size() == 1u);
  BOOST_TEST((cycles[0] == std::set<std::string>{"x", "y"}), describe(problems));
}

BOOST_AUTO_TEST_CASE(reports_each_of_two_separate_cycles) {
  drover::pipeline p;
  p.add("x", value_body(), {"y"});
  p.add("y", value_body(), {"x"});
  p.add("p", value_body(), {"r"});
  p.add("q", value_body(), {"p"});
  p.add("r", value_body(), {"q"});
  p.add("free", value_body());
  auto problems = problems_of(p);
  auto cycles = reported_cycles(problems, p);
  std::set<std::set<std::string>> found{cycles.begin(), cycles.end()};
  BOOST_TEST(found.count({"x", "y"}) == 1u, describe(problems));
  BOOST_TEST(found.count({"p", "q", "r"}) == 1u, describe(problems));
}

BOOST_AUTO_TEST_CASE(reports_two_problems_at_once) {
  drover::pipeline p;
  p.add("build", value_body());
  p.add("build", value_body());
  p.add("test", value_body(), {"missing"});
  auto problems = problems_of(p);
  BOOST_TEST(has_problem(problems, "build", "duplicate"), describe(problems));
  BOOST_TEST(has_problem(problems, "test", "missing"), describe(problems));
}

BOOST_AUTO_TEST_CASE(reports_a_cycle_alongside_an_unknown_dependency) {
  drover::pipeline p;
  p.add("a", value_body(), {"b"});
  p.add("b", value_body(), {"a"});
  p.add("c", value_body(), {"missing"});
  auto problems = problems_of(p);
  BOOST_TEST(has_problem(problems, "c", "missing"), describe(problems));
  auto cycles = reported_cycles(problems, p);
  BOOST_TEST(cycles.size() == 1u, describe(problems));
}

BOOST_AUTO_TEST_CASE(reports_every_problem_at_once) {
  drover::pipeline p;
  p.add("", value_body());
  p.add("dup", value_body());
  p.add("dup", value_body());
  p.add("orphan", value_body(), {"nowhere"});
  p.add("selfish", value_body(), {"selfish"});
  drover::module_spec hollow;
  hollow.id = "hollow";
  p.add(hollow);
  p.add("neg", value_body()).retries(-3);
  p.add("instant", value_body()).timeout(0ms);
  p.add("shrink", value_body()).backoff(drover::backoff_policy{10ms, 0.9, 1s, 0.0});
  p.add("wobbly", value_body()).backoff(drover::backoff_policy{10ms, 2.0, 1s, 2.0});
  p.add("c1", value_body(), {"c2"});
  p.add("c2", value_body(), {"c1"});

  auto problems = problems_of(p);
  BOOST_TEST_INFO(describe(problems));
  BOOST_TEST(problems.size() >= 10u);
  BOOST_TEST(has_problem(problems, "dup", "duplicate"));
  BOOST_TEST(has_problem(problems, "orphan", "nowhere"));
  BOOST_TEST(has_problem(problems, "selfish", "self"));
  BOOST_TEST((has_problem(problems, "hollow", "kind") || has_problem(problems, "hollow", "body")));
  BOOST_TEST(has_problem(problems, "neg", "retries"));
  BOOST_TEST(has_problem(problems, "instant", "timeout"));
  BOOST_TEST(has_problem(problems, "shrink", "multiplier"));
  BOOST_TEST(has_problem(problems, "wobbly", "jitter"));
  auto cycles = reported_cycles(problems, p);
  BOOST_TEST(std::count(cycles.begin(), cycles.end(), std::set<std::string>{"c1", "c2"}) == 1);
}

BOOST_AUTO_TEST_CASE(formats_one_problem_per_line) {
  drover::pipeline p;
  p.add("build", value_body(), {"ghost"});
  p.add("test", value_body()).retries(-1);
  auto problems = problems_of(p);
  BOOST_REQUIRE(problems.size() == 2u);
  auto text = drover::format_problems(problems);
  std::vector<std::string> lines;
  std::string line;
  for (std::istringstream in{text}; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  BOOST_REQUIRE(lines.size() == 2u);
  for (const auto& problem : problems) {
    bool printed = std::any_of(lines.begin(), lines.end(), [&](const std::string& l) {
      return l.find(problem.message) != std::string::npos &&
             l.find(problem.module) != std::string::npos;
    });
    BOOST_TEST(printed, "no line carries module " << problem.module << " and message \""
                                                  << problem.message << "\" in:\n"
                                                  << text);
  }
  BOOST_TEST(drover::format_problems({}).empty());
}

BOOST_AUTO_TEST_SUITE_END()
