#include "ordering/ordering.hpp"

#include "common/table.hpp"
#include "common/timing.hpp"

#include <drover/engine.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>

#include <algorithm>
#include <limits>
#include <optional>
#include <ostream>
#include <stdexcept>

namespace drover::bench {

namespace {

using std::chrono::microseconds;

// Sequence numbers of body starts and ends, per module. The run's io_context has one thread,
// so the bodies never touch this at the same time.
struct body_log {
  static constexpr std::uint32_t never = std::numeric_limits<std::uint32_t>::max();

  explicit body_log(std::size_t modules)
      : runs(modules, 0), started(modules, never), finished(modules, never) {}

  std::vector<std::uint32_t> runs, started, finished;
  std::uint32_t next = 0;
  std::uint32_t first_started = never;
};

// A plain function rather than a capturing coroutine lambda, so that nothing it uses can
// dangle: the frame holds copies of its arguments.
boost::asio::awaitable<boost::json::value> timed_body(body_log* log, std::uint32_t i,
                                                      microseconds duration,
                                                      boost::asio::any_io_executor executor) {
  ++log->runs[i];
  if (log->first_started == body_log::never) log->first_started = i;
  log->started[i] = log->next++;
  boost::asio::steady_timer timer(executor, duration);
  co_await timer.async_wait(boost::asio::use_awaitable);
  log->finished[i] = log->next++;
  co_return nullptr;
}

// Side modules are 0 .. side - 1 and listed first; the chain follows.
pipeline make_pipeline(const ordering_scenario& s, body_log& log) {
  pipeline p;
  p.name = "ordering-" + s.name;
  p.reserve(s.side + s.chain, s.chain);
  const auto body = [log = &log](std::uint32_t i, microseconds d) {
    return [log, i, d](module_context& ctx) { return timed_body(log, i, d, ctx.get_executor()); };
  };
  for (std::size_t k = 0; k < s.side; ++k) {
    const auto i = static_cast<std::uint32_t>(k);
    p.add("side" + std::to_string(k), body(i, s.side_body));
  }
  for (std::size_t k = 0; k < s.chain; ++k) {
    const auto i = static_cast<std::uint32_t>(s.side + k);
    std::vector<std::string> deps;
    if (k > 0) deps.push_back("chain" + std::to_string(k - 1));
    p.add("chain" + std::to_string(k), body(i, s.chain_body), deps);
  }
  return p;
}

// Empty when the round ran as it must; otherwise what went wrong.
std::string check_round(const ordering_scenario& s, bool critical_path, const body_log& log) {
  const std::size_t n = s.side + s.chain;
  for (std::size_t i = 0; i < n; ++i) {
    if (log.runs[i] != 1 || log.finished[i] == body_log::never) {
      return "module " + std::to_string(i) + " ran " + std::to_string(log.runs[i]) +
             " times (or never finished) instead of once";
    }
  }
  for (std::size_t k = 1; k < s.chain; ++k) {
    const std::size_t i = s.side + k;
    if (log.started[i] < log.finished[i - 1]) {
      return "chain" + std::to_string(k) + " started before chain" + std::to_string(k - 1) +
             " finished";
    }
  }
  // Side modules and a one-module chain have the same critical path (1), so FIFO among them.
  const std::uint32_t expected_first =
      critical_path && s.chain > 1 ? static_cast<std::uint32_t>(s.side) : 0;
  if (n > 0 && log.first_started != expected_first) {
    return std::string(critical_path ? "critical-path" : "FIFO") + " order started module " +
           std::to_string(log.first_started) + " first, not " + std::to_string(expected_first);
  }
  return {};
}

// One run; throws std::runtime_error when it did not run as it must.
std::int64_t run_round(const ordering_scenario& s, bool critical_path) {
  body_log log(s.side + s.chain);
  prepare_result prepared = prepare(make_pipeline(s, log));
  if (!prepared.ok()) {
    throw std::runtime_error("drover rejected the pipeline:\n" +
                             format_problems(prepared.problems));
  }
  run_options options;
  options.workers = s.workers;
  options.order = critical_path ? ready_order::critical_path : ready_order::fifo;

  boost::asio::io_context io{1};
  engine runner{io.get_executor()};
  std::optional<run_report> report;
  bench_clock::time_point finished;
  const auto started = bench_clock::now();
  runner.async_run(std::move(*prepared.plan), std::move(options), [&](run_report r) {
    finished = bench_clock::now();
    report = std::move(r);
  });
  io.run();

  const std::size_t n = s.side + s.chain;
  if (!report) throw std::runtime_error("drover never called the completion handler");
  if (report->status != run_status::succeeded || report->count(module_status::succeeded) != n) {
    throw std::runtime_error("the run ended " + std::string(to_string(report->status)) + " with " +
                             std::to_string(report->count(module_status::succeeded)) + " of " +
                             std::to_string(n) + " modules succeeded");
  }
  if (std::string problem = check_round(s, critical_path, log); !problem.empty()) {
    throw std::runtime_error(problem);
  }
  return nanoseconds_between(started, finished);
}

std::string_view order_name(bool critical_path) {
  return critical_path ? "critical_path" : "fifo";
}

const ordering_measurement* fifo_of(const std::vector<ordering_measurement>& results,
                                    const ordering_measurement& m) {
  for (const auto& other : results) {
    if (!other.critical_path && other.ok() && other.scenario.name == m.scenario.name) return &other;
  }
  return nullptr;
}

std::optional<double> fifo_ratio(const std::vector<ordering_measurement>& results,
                                 const ordering_measurement& m) {
  const ordering_measurement* fifo = fifo_of(results, m);
  if (!m.ok() || fifo == nullptr || m.median_run_ns() <= 0) return std::nullopt;
  return static_cast<double>(fifo->median_run_ns()) / static_cast<double>(m.median_run_ns());
}

}  // namespace

microseconds ordering_scenario::model_fifo() const {
  const auto w = static_cast<std::int64_t>(workers);
  return microseconds{(static_cast<std::int64_t>(side) * side_body.count() + w - 1) / w +
                      static_cast<std::int64_t>(chain) * chain_body.count()};
}

microseconds ordering_scenario::model_critical_path() const {
  const auto w = static_cast<std::int64_t>(workers);
  const std::int64_t chain_work = static_cast<std::int64_t>(chain) * chain_body.count();
  const std::int64_t all_work = static_cast<std::int64_t>(side) * side_body.count() + chain_work;
  return microseconds{std::max(chain_work, (all_work + w - 1) / w)};
}

std::vector<ordering_scenario> ordering_scenarios(bool quick) {
  const std::int64_t scale = quick ? 10 : 1;
  std::vector<ordering_scenario> out;
  // The shape: side work as long as the chain's steps.
  out.push_back({"uniform", 48, 12, microseconds{10'000 / scale}, microseconds{10'000 / scale}, 2});
  // Many short side modules beside a chain of long steps (lint beside compile, link, test).
  out.push_back(
      {"short_side", 384, 12, microseconds{1'000 / scale}, microseconds{10'000 / scale}, 2});
  return out;
}

std::int64_t ordering_measurement::median_run_ns() const {
  return median_of(run_ns);
}

std::vector<ordering_measurement> measure_ordering(const std::vector<ordering_scenario>& scenarios,
                                                   std::size_t rounds, std::ostream& progress) {
  std::vector<ordering_measurement> results;
  for (const auto& s : scenarios) {
    ordering_measurement by_order[2] = {{s, true, {}, {}}, {s, false, {}, {}}};
    for (std::size_t round = 0; round < rounds; ++round) {
      for (auto& m : by_order) {
        if (!m.ok()) continue;
        try {
          m.run_ns.push_back(run_round(s, m.critical_path));
        } catch (const std::exception& e) {
          m.error = "round " + std::to_string(round + 1) + ": " + e.what();
        }
      }
    }
    for (auto& m : by_order) {
      progress << "ordering " << s.name << ' ' << order_name(m.critical_path) << ": ";
      if (m.ok()) {
        progress << "median " << milliseconds_text(m.median_run_ns()) << " ms\n";
      } else {
        progress << "FAILED: " << m.error << '\n';
      }
      results.push_back(std::move(m));
    }
  }
  return results;
}

void print_ordering_table(std::ostream& out, const std::vector<ordering_measurement>& results,
                          std::size_t rounds, bool markdown) {
  table t({{"scenario", false},
           {"modules", false},
           {"bodies (side / chain)", false},
           {"workers", true},
           {"order", false},
           {"run ms", true},
           {"min ms", true},
           {"max ms", true},
           {"model ms", true},
           {"fifo / this", true}});
  for (const auto& m : results) {
    const ordering_scenario& s = m.scenario;
    std::vector<std::string> row = {
        s.name, std::to_string(s.side) + " side + " + std::to_string(s.chain) + " chain",
        fixed(static_cast<double>(s.side_body.count()) / 1e3, 1) + " / " +
            fixed(static_cast<double>(s.chain_body.count()) / 1e3, 1) + " ms",
        std::to_string(s.workers), std::string(order_name(m.critical_path))};
    if (!m.ok()) {
      row.insert(row.end(), {"FAILED", "-", "-", "-", "-"});
    } else {
      const auto [fastest, slowest] = std::minmax_element(m.run_ns.begin(), m.run_ns.end());
      const microseconds model = m.critical_path ? s.model_critical_path() : s.model_fifo();
      const std::optional<double> ratio = fifo_ratio(results, m);
      row.insert(row.end(),
                 {milliseconds_text(m.median_run_ns()), milliseconds_text(*fastest),
                  milliseconds_text(*slowest), fixed(static_cast<double>(model.count()) / 1e3, 1),
                  ratio ? fixed(*ratio, 2) + "x" : "-"});
    }
    t.add(std::move(row));
  }
  out << (markdown ? "### " : "") << "Critical-path ordering (median of " << rounds << " rounds)\n"
      << (markdown ? "\n" : "");
  t.print(out, markdown);
  for (const auto& m : results) {
    if (!m.ok()) {
      out << "FAILED " << m.scenario.name << ' ' << order_name(m.critical_path) << ": " << m.error
          << '\n';
    }
  }
}

boost::json::object ordering_to_json(const std::vector<ordering_measurement>& results,
                                     std::size_t rounds) {
  namespace json = boost::json;
  json::array rows;
  for (const auto& m : results) {
    const ordering_scenario& s = m.scenario;
    json::object o;
    o["scenario"] = s.name;
    o["side_modules"] = s.side;
    o["chain_modules"] = s.chain;
    o["side_body_us"] = s.side_body.count();
    o["chain_body_us"] = s.chain_body.count();
    o["workers"] = s.workers;
    o["order"] = order_name(m.critical_path);
    o["ok"] = m.ok();
    if (!m.ok()) {
      o["error"] = m.error;
    } else {
      o["run_ns"] = m.median_run_ns();
      o["run_ns_rounds"] = json::array(m.run_ns.begin(), m.run_ns.end());
      const microseconds model = m.critical_path ? s.model_critical_path() : s.model_fifo();
      o["model_ns"] = model.count() * 1000;
      const std::optional<double> ratio = fifo_ratio(results, m);
      o["fifo_over_this"] = ratio ? json::value(*ratio) : json::value(nullptr);
    }
    rows.push_back(std::move(o));
  }
  json::object doc;
  doc["rounds"] = rounds;
  doc["results"] = std::move(rows);
  return doc;
}

}  // namespace drover::bench
