// drover: the real engine on an io_context run by `threads` threads, with run_options::workers
// set to the same number and the engine starting no threads of its own.
//
// build: drover::prepare on the finished pipeline (matrix expansion, validation and the dense
// graph). run: from async_run of the prepared pipeline until the completion handler; it does
// no validation, so drover starts the clock on the same footing as TBB, whose graph is built
// beforehand. Making the pipeline (the module_specs with their id strings, and for
// drover_constrained their constraints) is not timed: that is the user's input, not the
// engine's work.
//
// drover_constrained gives every module a pool slot and two resource claims (see
// add_constraints), so that the run pays for the constraint gate on every start.

#include "contenders/drover.hpp"

#include "common/contender.hpp"

#include <boost/asio/awaitable.hpp>

#include <array>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <string>

namespace drover::bench {

namespace {

std::string module_id(node i) {
  char text[16] = {'m'};
  const auto end = std::to_chars(text + 1, text + sizeof text, i).ptr;
  return std::string(text, end);
}

// A plain function rather than a capturing coroutine lambda: the frame holds copies of its
// arguments, so nothing it uses can dangle.
boost::asio::awaitable<boost::json::value> counted_body(module_work* work, node i) {
  (*work)(i);
  co_return nullptr;
}

// Slots of the "cpu" pool: above what the channel hands out ahead of demand (16 per worker),
// so every start takes and returns a slot without the pool ever holding a module back.
constexpr std::uint32_t cpu_pool_slots = 64;

// One write claim on the module's own resource and one read claim on a resource all modules
// share: no two claims conflict, but every start compares its claims with every claim held by
// a module in flight. Two claims per module keep that scan at its intended size.
void add_constraints(module_ref& spec, node i) {
  module_constraints& c = spec.constraints();
  c.pool = "cpu";
  c.pool_slots = 1;
  c.claims.reserve(2);
  c.claims.push_back({"out/" + std::to_string(i), claim_mode::write});
  c.claims.push_back({"shared/config", claim_mode::read});
}

}  // namespace

pipeline make_drover_pipeline(const shape& s, module_work& work, bool constrained) {
  pipeline p;
  if (constrained) p.pools.emplace("cpu", cpu_pool_slots);
  p.name = std::string(to_string(s.kind()));
  p.reserve(s.size(), s.edge_count());
  for (node i = 0; i < s.size(); ++i) {
    std::vector<std::string> deps;
    deps.reserve(s.in_degree(i));
    for (node dep : s.predecessors(i))
      deps.push_back(module_id(dep));
    module_ref spec = p.add(
        module_id(i), [w = &work, i](module_context&) { return counted_body(w, i); }, deps);
    if (constrained) add_constraints(spec, i);
  }
  return p;
}

void require_all_succeeded(const run_report& report, std::size_t modules) {
  if (report.status != run_status::succeeded || report.count(module_status::succeeded) != modules) {
    throw std::runtime_error("drover's run ended " + std::string(to_string(report.status)) +
                             " with " + std::to_string(report.count(module_status::succeeded)) +
                             " of " + std::to_string(modules) + " modules succeeded");
  }
}

round_figures run_drover(const shape& s, module_work& work, std::size_t threads,
                         drover_setup setup) {
  const bool with_events = setup == drover_setup::with_events;
  pipeline p = make_drover_pipeline(s, work, setup == drover_setup::constrained);
  round_figures figures;
  const auto before = bench_clock::now();
  prepare_result prepared = prepare(std::move(p));
  figures.build_ns = nanoseconds_between(before, bench_clock::now());
  if (!prepared.ok()) {
    throw std::runtime_error("drover rejected the pipeline:\n" +
                             format_problems(prepared.problems));
  }

  std::array<std::size_t, 6> events_by_type{};
  run_options options;
  options.workers = threads;
  if (with_events) {
    options.on_event = [&events_by_type](const event& e) {
      ++events_by_type[static_cast<std::size_t>(e.type)];
    };
  }

  boost::asio::io_context io{static_cast<int>(threads)};
  engine runner{io.get_executor()};
  std::optional<run_report> report;
  bench_clock::time_point started, finished;
  run_on_threads(io, threads, [&](io_work_guard& guard) {
    started = bench_clock::now();
    runner.async_run(std::move(*prepared.plan), std::move(options), [&](run_report r) {
      finished = bench_clock::now();
      report = std::move(r);
      guard.reset();
    });
  });
  figures.run_ns = nanoseconds_between(started, finished);

  if (!report) throw std::runtime_error("drover never called the completion handler");
  require_all_succeeded(*report, s.size());
  if (with_events) {
    for (auto type :
         {event_type::module_ready, event_type::module_started, event_type::module_finished}) {
      const std::size_t seen = events_by_type[static_cast<std::size_t>(type)];
      if (seen != s.size()) {
        throw std::runtime_error("drover emitted " + std::to_string(seen) + " " +
                                 std::string(to_string(type)) + " events for " +
                                 std::to_string(s.size()) + " modules");
      }
    }
  }
  return figures;
}

}  // namespace drover::bench
