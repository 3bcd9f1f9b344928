#include "common/worker_rows.hpp"

#include "common/children.hpp"
#include "common/process.hpp"
#include "common/table.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <ostream>

namespace drover::bench {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// workers = 0: this body never runs.
boost::asio::awaitable<json::value> refuse_local_run(module_context&) {
  throw std::logic_error("a noop module ran in the master's process, not on a remote worker");
  co_return nullptr;
}

}  // namespace

plan remote_noop_plan(std::size_t modules) {
  pipeline p;
  p.name = "remote-bench";
  p.reserve(modules);
  for (std::size_t i = 0; i < modules; ++i)
    p.add("m" + std::to_string(i), refuse_local_run).kind("noop");
  prepare_result prepared = prepare(std::move(p));
  if (!prepared.ok()) {
    throw std::runtime_error("drover rejected the pipeline:\n" +
                             format_problems(prepared.problems));
  }
  return std::move(*prepared.plan);
}

std::string assign_line(std::size_t module) {
  json::object o;
  o["type"] = "assign";
  o["run"] = "bench";
  o["epoch"] = 1;
  o["module"] = "m" + std::to_string(module);
  o["attempt"] = 1;
  o["kind"] = "noop";
  o["params"] = nullptr;
  o["deps"] = json::array{};
  o["results"] = json::object{};
  std::string line = json::serialize(o);
  line += '\n';
  return line;
}

std::string result_line(const json::object& assign) {
  json::object o;
  o["type"] = "result";
  o["run"] = assign.at("run");
  o["epoch"] = assign.at("epoch");
  o["module"] = assign.at("module");
  o["attempt"] = assign.at("attempt");
  o["status"] = "succeeded";
  o["value"] = nullptr;
  std::string line = json::serialize(o);
  line += '\n';
  return line;
}

std::size_t parse_result(std::string_view line, std::size_t modules) {
  const json::value v = json::parse(line);
  const json::object& o = v.as_object();
  if (o.at("type").as_string() != "result" || o.at("status").as_string() != "succeeded") {
    throw std::runtime_error("not a succeeded result: " + std::string(line));
  }
  const json::string& id = o.at("module").as_string();
  std::size_t module = 0;
  const auto [end, ec] = std::from_chars(id.data() + 1, id.data() + id.size(), module);
  if (id.empty() || id[0] != 'm' || ec != std::errc{} || end != id.data() + id.size() ||
      module >= modules) {
    throw std::runtime_error("a result for an unknown module: " + std::string(line));
  }
  return module;
}

void answer_assign_lines(std::string& in, std::string& out) {
  std::size_t from = 0;
  for (std::size_t nl; (nl = in.find('\n', from)) != std::string::npos; from = nl + 1) {
    const json::value assign = json::parse(std::string_view(in).substr(from, nl - from));
    out += result_line(assign.as_object());
  }
  in.erase(0, from);
}

void floor_state::count_answer(std::size_t module) {
  if (seen[module]++ != 0) {
    throw std::runtime_error("module m" + std::to_string(module) + " was answered twice");
  }
  if (++answered == modules) {
    finished = bench_clock::now();
    if (on_all_answered) on_all_answered();
  }
}

std::size_t floor_state::take_answers(std::string& in) {
  std::size_t from = 0, answered = 0;
  for (std::size_t nl; (nl = in.find('\n', from)) != std::string::npos; from = nl + 1) {
    count_answer(parse_result(std::string_view(in).substr(from, nl - from), modules));
    ++answered;
  }
  in.erase(0, from);
  return answered;
}

floor_watch::floor_watch(boost::asio::io_context& io, floor_state& st)
    : io_(io),
      st_(st),
      deadline_(io, std::chrono::seconds{60} + std::chrono::milliseconds{st.modules}) {
  st.on_all_answered = [this] { deadline_.cancel(); };
  deadline_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    st_.error = "the floor answered " + std::to_string(st_.answered) + " of " +
                std::to_string(st_.modules) + " lines before its deadline";
    io_.stop();
  });
}

void floor_watch::fail(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    if (st_.error.empty()) st_.error = std::string("floor server: ") + x.what();
  }
  io_.stop();
}

void check_floor(const floor_state& st) {
  if (!st.error.empty()) throw std::runtime_error(st.error);
  if (st.answered != st.modules) {
    throw std::runtime_error("the floor answered " + std::to_string(st.answered) + " of " +
                             std::to_string(st.modules) + " lines");
  }
}

void check_remote_run(const std::optional<run_report>& report, std::size_t modules,
                      std::uint64_t welcomed, std::size_t workers) {
  if (!report) throw std::runtime_error("drover never called the completion handler");
  if (report->status != run_status::succeeded ||
      report->count(module_status::succeeded) != modules) {
    throw std::runtime_error("the run ended " + std::string(to_string(report->status)) + " with " +
                             std::to_string(report->count(module_status::succeeded)) + " of " +
                             std::to_string(modules) + " modules succeeded");
  }
  if (welcomed != workers) {
    throw std::runtime_error("the master welcomed " + std::to_string(welcomed) + " workers, not " +
                             std::to_string(workers));
  }
}

namespace {

double per_second(std::size_t modules, std::int64_t ns) {
  return ns > 0 ? static_cast<double>(modules) * 1e9 / static_cast<double>(ns) : 0.0;
}

}  // namespace

double worker_measurement::modules_per_second() const {
  return per_second(modules, median_of(run_ns));
}

double worker_measurement::floor_modules_per_second() const {
  return per_second(modules, median_of(floor_ns));
}

drover_round_times run_drover_round(std::size_t modules, std::size_t workers,
                                    const worker_transport& transport) {
  plan noop_plan = remote_noop_plan(modules);

  asio::io_context io{1};
  worker_hub::settings hub_settings;
  // Workers that never come fail the run after this long instead of hanging the benchmark.
  hub_settings.capability_timeout = std::chrono::seconds{20};
  auto hub = std::make_shared<worker_hub>(hub_settings);
  coord::master master{io.get_executor(), hub};
  transport.open(io, master);

  engine runner{io.get_executor()};
  run_options options;
  options.workers = 0;
  options.remote = hub;

  std::optional<run_report> report;
  bench_clock::time_point finished{}, attached{};
  bool all_attached = false;
  asio::steady_timer attach_poll{io};
  std::function<void()> poll_attach = [&] {
    if (report) return;
    if (master.stats().workers_welcomed >= workers) {
      attached = bench_clock::now();
      all_attached = true;
      return;
    }
    attach_poll.expires_after(std::chrono::microseconds{200});
    attach_poll.async_wait([&](boost::system::error_code ec) {
      if (!ec) poll_attach();
    });
  };

  child_group children;
  const auto started = bench_clock::now();
  runner.async_run(std::move(noop_plan), std::move(options), [&](run_report r) {
    finished = bench_clock::now();
    report = std::move(r);
    attach_poll.cancel();
    transport.close();
    master.stop();  // every worker was told "run finished"; this closes the connections
  });
  for (std::size_t k = 1; k <= workers; ++k) {
    const std::string name = "w" + std::to_string(k);
    children.spawn(drover_binary_path(), transport.worker_args(name), "drover worker " + name);
  }
  poll_attach();
  io.run();

  if (std::string failed = transport.failure(); !failed.empty()) throw std::runtime_error(failed);
  check_remote_run(report, modules, master.stats().workers_welcomed, workers);
  if (std::string problem = children.wait_all(std::chrono::seconds{10}); !problem.empty()) {
    throw std::runtime_error(problem);
  }
  return {nanoseconds_between(started, finished),
          all_attached ? nanoseconds_between(started, attached) : -1};
}

std::vector<worker_measurement> measure_worker_rows(
    const std::vector<std::size_t>& worker_counts, std::size_t modules, std::size_t rounds,
    std::string_view label, const std::function<drover_round_times(std::size_t)>& drover_round,
    const std::function<std::int64_t(std::size_t)>& floor_round, std::ostream& progress) {
  std::vector<worker_measurement> results;
  for (std::size_t workers : worker_counts) {
    worker_measurement m;
    m.workers = workers;
    m.modules = modules;
    for (std::size_t round = 1; round <= rounds && m.ok(); ++round) {
      const std::string where = "round " + std::to_string(round) + ": ";
      try {
        const drover_round_times d = drover_round(workers);
        m.run_ns.push_back(d.run_ns);
        if (d.attach_ns >= 0) m.attach_ns.push_back(d.attach_ns);
      } catch (const std::exception& e) {
        m.error = where + "drover: " + e.what();
        break;
      }
      try {
        m.floor_ns.push_back(floor_round(workers));
      } catch (const std::exception& e) {
        m.error = where + "floor: " + e.what();
      }
    }
    progress << label << ' ' << workers << " workers, " << modules << " modules: ";
    if (m.ok()) {
      progress << "drover " << grouped(m.modules_per_second()) << " modules/s, floor "
               << grouped(m.floor_modules_per_second()) << " modules/s\n";
    } else {
      progress << "FAILED: " << m.error << '\n';
    }
    results.push_back(std::move(m));
  }
  return results;
}

void print_worker_table(std::ostream& out, std::string_view title,
                        const std::vector<worker_measurement>& rows, std::size_t rounds,
                        bool markdown) {
  table t({{"workers", true},
           {"modules", true},
           {"run ms", true},
           {"attach ms", true},
           {"modules/s", true},
           {"floor ms", true},
           {"floor modules/s", true},
           {"vs floor", true}});
  for (const auto& m : rows) {
    std::vector<std::string> row = {std::to_string(m.workers),
                                    grouped(static_cast<double>(m.modules))};
    if (!m.ok()) {
      row.insert(row.end(), {"FAILED", "-", "-", "-", "-", "-"});
    } else {
      const double floor = m.floor_modules_per_second();
      row.insert(row.end(), {milliseconds_text(median_of(m.run_ns)),
                             m.attach_ns.empty() ? "-" : milliseconds_text(median_of(m.attach_ns)),
                             grouped(m.modules_per_second()),
                             milliseconds_text(median_of(m.floor_ns)), grouped(floor),
                             floor > 0 ? fixed(m.modules_per_second() / floor, 2) + "x" : "-"});
    }
    t.add(std::move(row));
  }
  out << (markdown ? "### " : "") << title << " (median of " << rounds << " rounds, "
      << slots_per_worker << " slots per worker)\n"
      << (markdown ? "\n" : "");
  t.print(out, markdown);
  for (const auto& m : rows) {
    if (!m.ok()) out << "FAILED " << m.workers << " workers: " << m.error << '\n';
  }
}

json::array worker_rows_to_json(const std::vector<worker_measurement>& rows) {
  json::array out;
  for (const auto& m : rows) {
    json::object o;
    o["workers"] = m.workers;
    o["modules"] = m.modules;
    o["slots_per_worker"] = slots_per_worker;
    o["ok"] = m.ok();
    if (!m.ok()) {
      o["error"] = m.error;
    } else {
      o["run_ns"] = median_of(m.run_ns);
      o["run_ns_rounds"] = json::array(m.run_ns.begin(), m.run_ns.end());
      o["attach_ns"] =
          m.attach_ns.empty() ? json::value(nullptr) : json::value(median_of(m.attach_ns));
      o["modules_per_second"] = m.modules_per_second();
      o["floor_ns"] = median_of(m.floor_ns);
      o["floor_ns_rounds"] = json::array(m.floor_ns.begin(), m.floor_ns.end());
      const double floor = m.floor_modules_per_second();
      o["floor_modules_per_second"] = floor;
      o["vs_floor"] =
          floor > 0 ? json::value(m.modules_per_second() / floor) : json::value(nullptr);
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace drover::bench
