// drover: the real engine on an io_context run by `threads` threads, with run_options::workers
// set to the same number and the engine starting no threads of its own.
//
// build: drover::build_graph on the finished pipeline (validation plus the dense graph), timed
// on its own. run: from async_run until the completion handler; it includes the engine's own
// validation, which is about the build time again. Making the pipeline (the module_specs with
// their id strings) is not timed: that is the user's input, not the engine's work.

#include "common/contender.hpp"

#include <drover/engine.hpp>

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

pipeline make_pipeline(const shape& s, module_work& work) {
  pipeline p;
  p.name = std::string(to_string(s.kind()));
  p.modules.reserve(s.size());
  for (node i = 0; i < s.size(); ++i) {
    std::vector<std::string> deps;
    deps.reserve(s.in_degree(i));
    for (node dep : s.predecessors(i))
      deps.push_back(module_id(dep));
    p.add(
        module_id(i), [w = &work, i](module_context&) { return counted_body(w, i); },
        std::move(deps));
  }
  return p;
}

}  // namespace

round_figures run_drover(const shape& s, module_work& work, std::size_t threads, bool with_events) {
  pipeline p = make_pipeline(s, work);
  round_figures figures;
  {
    const auto before = bench_clock::now();
    graph_result built = build_graph(p);
    figures.build_ns = nanoseconds_between(before, bench_clock::now());
    if (!built.ok()) {
      throw std::runtime_error("drover rejected the pipeline:\n" + format_problems(built.problems));
    }
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
    runner.async_run(std::move(p), std::move(options), [&](run_report r) {
      finished = bench_clock::now();
      report = std::move(r);
      guard.reset();
    });
  });
  figures.run_ns = nanoseconds_between(started, finished);

  if (!report) throw std::runtime_error("drover never called the completion handler");
  if (report->status != run_status::succeeded ||
      report->count(module_status::succeeded) != s.size()) {
    throw std::runtime_error("drover's run ended " + std::string(to_string(report->status)) +
                             " with " + std::to_string(report->count(module_status::succeeded)) +
                             " of " + std::to_string(s.size()) + " modules succeeded");
  }
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
