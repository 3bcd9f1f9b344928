#include "journal/journal.hpp"

#include "common/module_work.hpp"
#include "common/table.hpp"
#include "common/timing.hpp"
#include "contenders/drover.hpp"

#include <drover/journal.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/array.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <system_error>

#ifdef DROVER_BENCH_COUNT_FDATASYNC

namespace {
std::atomic<std::int64_t> fdatasync_calls_so_far{0};
}  // namespace

// CMake links drover-bench with -Wl,--wrap=fdatasync: every call to fdatasync in the objects
// and static libraries linked into it (the engine's journal writer among them) comes here, and
// __real_fdatasync is the C library's. Nothing in the engine changes for the count.
extern "C" int __real_fdatasync(int fd);
extern "C" int __wrap_fdatasync(int fd) {
  fdatasync_calls_so_far.fetch_add(1, std::memory_order_relaxed);
  return __real_fdatasync(fd);
}

#endif

namespace drover::bench {

namespace {

namespace fs = std::filesystem;

constexpr std::array all_setups = {journal_setup::none, journal_setup::relaxed,
                                   journal_setup::fsync};

std::int64_t fdatasync_calls_now() {
#ifdef DROVER_BENCH_COUNT_FDATASYNC
  return fdatasync_calls_so_far.load(std::memory_order_relaxed);
#else
  return 0;
#endif
}

// A directory made for the run's journal files in the current directory, removed with them.
class scratch_directory {
 public:
  scratch_directory() {
    char name[] = "drover-bench-journal-XXXXXX";
    if (::mkdtemp(name) == nullptr) {
      const std::error_code error(errno, std::generic_category());
      throw std::runtime_error("cannot make a directory for the journal files in " +
                               fs::current_path().string() + ": " + error.message());
    }
    path_ = fs::absolute(name);
  }
  ~scratch_directory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  scratch_directory(const scratch_directory&) = delete;
  scratch_directory& operator=(const scratch_directory&) = delete;

  const fs::path& path() const noexcept { return path_; }

 private:
  fs::path path_;
};

// /proc/self/mounts writes a space in a path as \040 (and a tab, newline, backslash likewise).
std::string unescape_mount_field(const std::string& field) {
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    const auto is_octal = [&](std::size_t at) { return field[at] >= '0' && field[at] <= '7'; };
    const bool octal = field[i] == '\\' && i + 3 < field.size() && is_octal(i + 1) &&
                       is_octal(i + 2) && is_octal(i + 3);
    if (octal) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                               (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

// "ext4 (/dev/vda, mounted at /)": the mount whose mount point is the longest prefix of `dir`.
std::string describe_file_system(const fs::path& dir) {
  std::error_code ec;
  const std::string path = fs::weakly_canonical(dir, ec).string();
  std::ifstream mounts("/proc/self/mounts");
  if (!mounts) return "unknown (cannot read /proc/self/mounts)";
  std::string source, mount_point, type, rest, best;
  std::size_t best_length = 0;
  while (mounts >> source >> mount_point >> type && std::getline(mounts, rest)) {
    mount_point = unescape_mount_field(mount_point);
    const bool contains = mount_point == "/" || path == mount_point ||
                          (path.starts_with(mount_point) && path[mount_point.size()] == '/');
    // A later mount on the same point hides the earlier one, hence >=.
    if (contains && mount_point.size() >= best_length) {
      best_length = mount_point.size();
      best = type + " (" + unescape_mount_field(source) + ", mounted at " + mount_point + ")";
    }
  }
  return best.empty() ? "unknown (no mount in /proc/self/mounts holds it)" : best;
}

std::int64_t count_lines(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the journal " + file.string() + " back");
  return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
}

struct round_figures_with_journal {
  std::int64_t run_ns = 0;
  std::int64_t fdatasync_calls = 0;
  std::int64_t journal_bytes = 0;
};

// One run of `s` in `setup`, its journal (if any) at `journal_path`. Throws std::runtime_error
// when it did not run as it must.
round_figures_with_journal run_round(const shape& s, module_work& work, journal_setup setup,
                                     const fs::path& journal_path) {
  prepare_result prepared = prepare(make_drover_pipeline(s, work, false));
  if (!prepared.ok()) {
    throw std::runtime_error("drover rejected the pipeline:\n" +
                             format_problems(prepared.problems));
  }
  work.reset();

  boost::asio::io_context io{1};
  engine runner{io.get_executor()};
  std::optional<run_report> report;
  bench_clock::time_point finished;
  round_figures_with_journal figures;
  const std::int64_t syncs_before = fdatasync_calls_now();
  const auto started = bench_clock::now();
  run_options options;
  options.workers = 1;
  if (setup != journal_setup::none) {
    const journal_options how{
        .mode = setup == journal_setup::fsync ? durability::fsync : durability::relaxed,
        .resume = false};
    options.journal = run_journal::open(journal_path, how);
  }
  runner.async_run(std::move(*prepared.plan), std::move(options), [&](run_report r) {
    finished = bench_clock::now();
    report = std::move(r);
  });
  io.run();
  figures.run_ns = nanoseconds_between(started, finished);
  figures.fdatasync_calls = fdatasync_calls_now() - syncs_before;

  if (!report) throw std::runtime_error("drover never called the completion handler");
  require_all_succeeded(*report, s.size());
  if (!report->notes.empty()) {
    throw std::runtime_error("the run left a note (did a journal write fail?): " +
                             report->notes.front());
  }
  if (const std::string problem = work.check(s); !problem.empty()) {
    throw std::runtime_error("COUNT MISMATCH: " + problem);
  }
  if (setup != journal_setup::none) {
    // One run record, one record per module, one end record.
    const std::int64_t lines = count_lines(journal_path);
    const auto expected = static_cast<std::int64_t>(s.size()) + 2;
    if (lines != expected) {
      throw std::runtime_error("the journal holds " + std::to_string(lines) + " lines, not the " +
                               std::to_string(expected) + " of a run of " +
                               std::to_string(s.size()) + " modules");
    }
    figures.journal_bytes = static_cast<std::int64_t>(fs::file_size(journal_path));
  }
  return figures;
}

bool in_microseconds(workload kind) {
  return kind == workload::linear_chain;
}

double per_module(std::int64_t ns, std::size_t modules) {
  return modules == 0 ? 0.0 : static_cast<double>(ns) / static_cast<double>(modules);
}

// Nanoseconds per module as the shape's table shows them: ns for independent, us for a chain.
std::string per_module_text(double ns, workload kind) {
  return in_microseconds(kind) ? fixed(ns / 1e3, 2) : fixed(ns, 1);
}

const journal_measurement* baseline_of(const journal_results& results,
                                       const journal_measurement& m) {
  for (const auto& other : results.rows) {
    if (other.setup == journal_setup::none && other.ok() && other.kind == m.kind) return &other;
  }
  return nullptr;
}

std::optional<double> ratio_to_baseline(const journal_results& results,
                                        const journal_measurement& m) {
  const journal_measurement* none = baseline_of(results, m);
  if (!m.ok() || none == nullptr || none->median_run_ns() <= 0) return std::nullopt;
  return static_cast<double>(m.median_run_ns()) / static_cast<double>(none->median_run_ns());
}

std::optional<double> added_ns_per_module(const journal_results& results,
                                          const journal_measurement& m) {
  const journal_measurement* none = baseline_of(results, m);
  if (!m.ok() || none == nullptr) return std::nullopt;
  return per_module(m.median_run_ns() - none->median_run_ns(), m.modules);
}

}  // namespace

std::string_view to_string(journal_setup j) noexcept {
  switch (j) {
    case journal_setup::none:
      return "none";
    case journal_setup::relaxed:
      return "relaxed";
    case journal_setup::fsync:
      return "fsync";
  }
  return "unknown";
}

std::int64_t journal_measurement::median_run_ns() const {
  return median_of(run_ns);
}

bool fdatasync_calls_counted() noexcept {
#ifdef DROVER_BENCH_COUNT_FDATASYNC
  return true;
#else
  return false;
#endif
}

journal_results measure_journal(const journal_settings& settings, std::ostream& progress) {
  const scratch_directory directory;
  journal_results results;
  results.directory = directory.path();
  results.file_system = describe_file_system(directory.path());
  results.fdatasync_counted = fdatasync_calls_counted();
  progress << "journal files in " << results.directory.string() << ", on " << results.file_system
           << '\n';

  const std::array<std::pair<workload, std::size_t>, 2> shapes = {
      {{workload::independent, settings.independent_modules},
       {workload::linear_chain, settings.chain_modules}}};
  for (const auto& [kind, modules] : shapes) {
    const shape s{kind, modules};
    module_work work{s, false};
    std::array<journal_measurement, all_setups.size()> by_setup;
    for (std::size_t k = 0; k < by_setup.size(); ++k) {
      by_setup[k].kind = kind;
      by_setup[k].modules = modules;
      by_setup[k].setup = all_setups[k];
    }
    for (std::size_t round = 0; round < settings.rounds; ++round) {
      // Each round starts with the next setup, so none of them always follows the same one
      // (an fsync row's write-back, say).
      for (std::size_t k = 0; k < by_setup.size(); ++k) {
        journal_measurement& m = by_setup[(round + k) % by_setup.size()];
        if (!m.ok()) continue;
        const fs::path file = directory.path() / (std::string(to_string(kind)) + "-" +
                                                  std::string(to_string(m.setup)) + "-" +
                                                  std::to_string(round + 1) + ".journal");
        try {
          const round_figures_with_journal figures = run_round(s, work, m.setup, file);
          m.run_ns.push_back(figures.run_ns);
          if (results.fdatasync_counted) m.fdatasync_calls.push_back(figures.fdatasync_calls);
          m.journal_bytes.push_back(figures.journal_bytes);
        } catch (const std::exception& e) {
          m.error = "round " + std::to_string(round + 1) + ": " + e.what();
        }
        std::error_code ignored;
        fs::remove(file, ignored);
      }
    }
    for (auto& m : by_setup) {
      progress << "journal " << to_string(kind) << ' ' << to_string(m.setup) << ": ";
      if (m.ok()) {
        progress << "median " << milliseconds_text(m.median_run_ns()) << " ms, "
                 << per_module_text(per_module(m.median_run_ns(), modules), kind)
                 << (in_microseconds(kind) ? " us" : " ns") << "/module";
        if (!m.fdatasync_calls.empty()) {
          progress << ", " << median_of(m.fdatasync_calls) << " fdatasync";
        }
        progress << '\n';
      } else {
        progress << "FAILED: " << m.error << '\n';
      }
      results.rows.push_back(std::move(m));
    }
  }
  return results;
}

void print_journal_tables(std::ostream& out, const journal_results& results, std::size_t rounds,
                          bool markdown) {
  out << "Journal files: a fresh file per round in " << results.directory.string() << ", on "
      << results.file_system << (markdown ? "\n\n" : "\n\n");
  std::vector<workload> kinds;
  for (const auto& m : results.rows) {
    if (std::find(kinds.begin(), kinds.end(), m.kind) == kinds.end()) kinds.push_back(m.kind);
  }
  for (workload kind : kinds) {
    const std::string unit = in_microseconds(kind) ? "us" : "ns";
    table t({{"journal", false},
             {"run ms", true},
             {"min ms", true},
             {"max ms", true},
             {unit + "/module", true},
             {"added " + unit + "/module", true},
             {"vs none", true},
             {"fdatasync", true},
             {"modules/sync", true},
             {"journal B/module", true}});
    std::size_t modules = 0;
    for (const auto& m : results.rows) {
      if (m.kind != kind) continue;
      modules = m.modules;
      std::vector<std::string> row = {std::string(to_string(m.setup))};
      if (!m.ok()) {
        row.insert(row.end(), {"FAILED", "-", "-", "-", "-", "-", "-", "-", "-"});
        t.add(std::move(row));
        continue;
      }
      const auto [fastest, slowest] = std::minmax_element(m.run_ns.begin(), m.run_ns.end());
      const std::optional<double> ratio = ratio_to_baseline(results, m);
      const std::optional<double> added = added_ns_per_module(results, m);
      const bool journaled = m.setup != journal_setup::none;
      const std::int64_t syncs = median_of(m.fdatasync_calls);
      row.insert(
          row.end(),
          {milliseconds_text(m.median_run_ns()), milliseconds_text(*fastest),
           milliseconds_text(*slowest),
           per_module_text(per_module(m.median_run_ns(), m.modules), kind),
           journaled && added ? per_module_text(*added, kind) : "-",
           ratio ? fixed(*ratio, 2) + "x" : "-",
           m.fdatasync_calls.empty() ? "-" : grouped(static_cast<double>(syncs)),
           syncs > 0 ? fixed(static_cast<double>(m.modules) / static_cast<double>(syncs), 1) : "-",
           journaled ? fixed(per_module(median_of(m.journal_bytes), m.modules), 1) : "-"});
      t.add(std::move(row));
    }
    out << (markdown ? "### " : "") << "Journal cost: " << to_string(kind) << ", "
        << grouped(static_cast<double>(modules)) << " modules, 1 worker (median of " << rounds
        << " rounds)\n"
        << (markdown ? "\n" : "");
    t.print(out, markdown);
    out << '\n';
  }
  if (!results.fdatasync_counted) {
    out << "fdatasync calls are not counted: the engine is not linked statically into this "
           "drover-bench\n";
  }
  for (const auto& m : results.rows) {
    if (!m.ok()) {
      out << "FAILED " << to_string(m.kind) << ' ' << to_string(m.setup) << ": " << m.error << '\n';
    }
  }
}

boost::json::object journal_to_json(const journal_results& results, std::size_t rounds) {
  namespace json = boost::json;
  json::array rows;
  for (const auto& m : results.rows) {
    json::object o;
    o["workload"] = to_string(m.kind);
    o["modules"] = m.modules;
    o["workers"] = 1;
    o["journal"] = to_string(m.setup);
    o["ok"] = m.ok();
    if (!m.ok()) {
      o["error"] = m.error;
    } else {
      o["run_ns"] = m.median_run_ns();
      o["run_ns_rounds"] = json::array(m.run_ns.begin(), m.run_ns.end());
      o["ns_per_module"] = per_module(m.median_run_ns(), m.modules);
      const std::optional<double> ratio = ratio_to_baseline(results, m);
      o["vs_none"] = ratio ? json::value(*ratio) : json::value(nullptr);
      const std::optional<double> added = added_ns_per_module(results, m);
      o["added_ns_per_module"] =
          added && m.setup != journal_setup::none ? json::value(*added) : json::value(nullptr);
      if (m.fdatasync_calls.empty()) {
        o["fdatasync_calls"] = nullptr;
      } else {
        o["fdatasync_calls"] = median_of(m.fdatasync_calls);
        o["fdatasync_calls_rounds"] =
            json::array(m.fdatasync_calls.begin(), m.fdatasync_calls.end());
      }
      o["journal_bytes"] = m.setup == journal_setup::none ? json::value(nullptr)
                                                          : json::value(median_of(m.journal_bytes));
    }
    rows.push_back(std::move(o));
  }
  json::object doc;
  doc["rounds"] = rounds;
  doc["directory"] = results.directory.string();
  doc["file_system"] = results.file_system;
  doc["fdatasync_counted"] = results.fdatasync_counted;
  doc["results"] = std::move(rows);
  return doc;
}

}  // namespace drover::bench
