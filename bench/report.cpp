#include "report.hpp"

#include "common/table.hpp"
#include "common/timing.hpp"

#include <boost/json/array.hpp>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <map>
#include <optional>
#include <ostream>
#include <tuple>

namespace drover::bench {

namespace {

std::string ratio_text(std::optional<double> ratio) {
  return ratio ? fixed(*ratio, 2) + "x" : "-";
}

const measurement* find_result(const std::vector<measurement>& results, const measurement& like,
                               contender who) {
  for (const auto& m : results) {
    if (m.ok() && m.kind == like.kind && m.modules == like.modules && m.threads == like.threads &&
        m.who == who) {
      return &m;
    }
  }
  return nullptr;
}

// modules/s of `m` over modules/s of `who` on the same workload, size and threads.
std::optional<double> ratio_to(const std::vector<measurement>& results, const measurement& m,
                               contender who) {
  const measurement* base = find_result(results, m, who);
  if (!m.ok() || base == nullptr || base->modules_per_second() <= 0) return std::nullopt;
  return m.modules_per_second() / base->modules_per_second();
}

// The scaling report compares the largest size with 2^12 (the reference size), or with
// the smallest size when 2^12 was not run.
std::size_t scaling_basis(const std::vector<std::size_t>& sizes) {
  const std::size_t reference = std::size_t{1} << 12;
  if (std::find(sizes.begin(), sizes.end(), reference) != sizes.end() &&
      *std::max_element(sizes.begin(), sizes.end()) > reference) {
    return reference;
  }
  return *std::min_element(sizes.begin(), sizes.end());
}

struct scaling_row {
  workload kind;
  std::size_t threads;
  contender who;
  std::vector<std::optional<double>> ns_per_module;  // per settings.sizes
  std::optional<double> growth;                      // largest size over the basis
};

std::vector<scaling_row> scaling_rows(const std::vector<measurement>& results,
                                      const bench_settings& settings) {
  std::vector<std::size_t> sizes = settings.sizes;
  const std::size_t basis = scaling_basis(sizes);
  const std::size_t largest = *std::max_element(sizes.begin(), sizes.end());
  std::vector<scaling_row> rows;
  for (workload kind : settings.workloads) {
    for (std::size_t threads : settings.threads) {
      for (contender who : settings.contenders) {
        scaling_row row{kind, threads, who, {}, std::nullopt};
        std::optional<double> at_basis, at_largest;
        for (std::size_t size : sizes) {
          measurement like;
          like.kind = kind;
          like.modules = size;
          like.threads = threads;
          const measurement* m = find_result(results, like, who);
          std::optional<double> ns;
          if (m) ns = m->ns_per_module();
          row.ns_per_module.push_back(ns);
          if (size == basis) at_basis = ns;
          if (size == largest) at_largest = ns;
        }
        if (at_basis && at_largest && *at_basis > 0 && largest != basis) {
          row.growth = *at_largest / *at_basis;
        }
        rows.push_back(std::move(row));
      }
    }
  }
  return rows;
}

}  // namespace

std::int64_t measurement::median_build_ns() const {
  return median_of(build_ns);
}
std::int64_t measurement::median_run_ns() const {
  return median_of(run_ns);
}

double measurement::modules_per_second() const {
  const std::int64_t ns = median_run_ns();
  return ns > 0 ? static_cast<double>(modules) * 1e9 / static_cast<double>(ns) : 0.0;
}

double measurement::ns_per_module() const {
  return modules > 0 ? static_cast<double>(median_run_ns()) / static_cast<double>(modules) : 0.0;
}

double measurement::bytes_per_module() const {
  const long long grown = std::max(0LL, peak_rss_bytes - baseline_rss_bytes);
  return modules > 0 ? static_cast<double>(grown) / static_cast<double>(modules) : 0.0;
}

std::string size_label(std::size_t modules) {
  if (modules >= 1024 && std::has_single_bit(modules)) {
    return "2^" + std::to_string(std::countr_zero(modules));
  }
  return std::to_string(modules);
}

void print_tables(std::ostream& out, const std::vector<measurement>& results,
                  const bench_settings& settings) {
  const bool markdown = settings.markdown;
  table figures({{"workload", false},
                 {"modules", true},
                 {"threads", true},
                 {"contender", false},
                 {"build ms", true},
                 {"run ms", true},
                 {"Mmodules/s", true},
                 {"ns/module", true},
                 {"peak MiB", true},
                 {"B/module", true},
                 {"vs drover", true},
                 {"vs asio_raw", true},
                 {"vs tbb", true}});
  std::vector<const measurement*> failures;
  for (const auto& m : results) {
    std::vector<std::string> row = {std::string(to_string(m.kind)), size_label(m.modules),
                                    std::to_string(m.threads), std::string(to_string(m.who))};
    if (!m.ok()) {
      failures.push_back(&m);
      row.insert(row.end(), {"FAILED", "-", "-", "-", "-", "-", "-", "-", "-"});
    } else {
      row.insert(row.end(), {fixed(static_cast<double>(m.median_build_ns()) / 1e6, 3),
                             fixed(static_cast<double>(m.median_run_ns()) / 1e6, 3),
                             fixed(m.modules_per_second() / 1e6, 2), fixed(m.ns_per_module(), 1),
                             fixed(static_cast<double>(m.peak_rss_bytes) / (1024.0 * 1024.0), 1),
                             fixed(m.bytes_per_module(), 0),
                             ratio_text(ratio_to(results, m, contender::drover)),
                             ratio_text(ratio_to(results, m, contender::asio_raw)),
                             ratio_text(ratio_to(results, m, contender::tbb))});
    }
    figures.add(std::move(row));
  }
  out << (markdown ? "### " : "") << "Results (median of " << settings.rounds << " rounds)\n"
      << (markdown ? "\n" : "");
  figures.print(out, markdown);
  for (const measurement* m : failures) {
    out << "FAILED " << to_string(m->kind) << " " << size_label(m->modules) << " threads "
        << m->threads << " " << to_string(m->who) << ": " << m->error << '\n';
  }

  if (settings.sizes.size() < 2) {
    out << "\nScaling: run two or more sizes to see how ns/module grows with the pipeline.\n";
    return;
  }
  const std::size_t basis = scaling_basis(settings.sizes);
  const std::size_t largest = *std::max_element(settings.sizes.begin(), settings.sizes.end());
  std::vector<table::column> columns = {
      {"workload", false}, {"threads", true}, {"contender", false}};
  for (std::size_t size : settings.sizes)
    columns.push_back({size_label(size), true});
  columns.push_back({size_label(largest) + " / " + size_label(basis), true});
  table scaling(std::move(columns));
  for (const auto& r : scaling_rows(results, settings)) {
    std::vector<std::string> row = {std::string(to_string(r.kind)), std::to_string(r.threads),
                                    std::string(to_string(r.who))};
    for (const auto& ns : r.ns_per_module)
      row.push_back(ns ? fixed(*ns, 1) : "-");
    row.push_back(ratio_text(r.growth));
    scaling.add(std::move(row));
  }
  out << (markdown ? "\n### " : "\n") << "Scaling: ns/module by size\n" << (markdown ? "\n" : "");
  scaling.print(out, markdown);
}

boost::json::object to_json(const std::vector<measurement>& results, const bench_settings& settings,
                            const machine_info& machine) {
  namespace json = boost::json;
  json::object flags;
  {
    json::array names, threads, sizes, contenders;
    for (workload w : settings.workloads)
      names.emplace_back(to_string(w));
    for (std::size_t t : settings.threads)
      threads.emplace_back(t);
    for (std::size_t s : settings.sizes)
      sizes.emplace_back(s);
    for (contender c : settings.contenders)
      contenders.emplace_back(to_string(c));
    flags["workloads"] = std::move(names);
    flags["threads"] = std::move(threads);
    flags["sizes"] = std::move(sizes);
    flags["rounds"] = settings.rounds;
    flags["contenders"] = std::move(contenders);
    flags["quick"] = settings.quick;
  }

  auto optional_number = [](std::optional<double> v) -> json::value {
    return v ? json::value(*v) : json::value(nullptr);
  };
  json::array figures;
  for (const auto& m : results) {
    json::object o;
    o["workload"] = to_string(m.kind);
    o["modules"] = m.modules;
    o["edges"] = m.edges;
    o["threads"] = m.threads;
    o["contender"] = to_string(m.who);
    o["ok"] = m.ok();
    if (!m.ok()) {
      o["error"] = m.error;
      figures.push_back(std::move(o));
      continue;
    }
    json::array build_samples(m.build_ns.begin(), m.build_ns.end());
    json::array run_samples(m.run_ns.begin(), m.run_ns.end());
    o["build_ns"] = m.median_build_ns();
    o["run_ns"] = m.median_run_ns();
    o["build_ns_rounds"] = std::move(build_samples);
    o["run_ns_rounds"] = std::move(run_samples);
    o["modules_per_second"] = m.modules_per_second();
    o["ns_per_module"] = m.ns_per_module();
    o["peak_rss_bytes"] = m.peak_rss_bytes;
    o["baseline_rss_bytes"] = m.baseline_rss_bytes;
    o["peak_restarted"] = m.peak_restarted;
    o["bytes_per_module"] = m.bytes_per_module();
    o["ratio_to_drover"] = optional_number(ratio_to(results, m, contender::drover));
    o["ratio_to_asio_raw"] = optional_number(ratio_to(results, m, contender::asio_raw));
    o["ratio_to_tbb"] = optional_number(ratio_to(results, m, contender::tbb));
    figures.push_back(std::move(o));
  }

  json::array scaling;
  for (const auto& r : scaling_rows(results, settings)) {
    json::object o;
    o["workload"] = to_string(r.kind);
    o["threads"] = r.threads;
    o["contender"] = to_string(r.who);
    json::array by_size;
    for (std::size_t k = 0; k < settings.sizes.size(); ++k) {
      by_size.push_back(json::object{{"modules", settings.sizes[k]},
                                     {"ns_per_module", optional_number(r.ns_per_module[k])}});
    }
    o["ns_per_module"] = std::move(by_size);
    o["growth"] = optional_number(r.growth);
    scaling.push_back(std::move(o));
  }

  json::object doc;
  doc["tool"] = "drover-bench";
  doc["machine"] = to_json(machine);
  doc["flags"] = std::move(flags);
  doc["results"] = std::move(figures);
  doc["scaling"] = std::move(scaling);
  doc["scaling_basis_modules"] = scaling_basis(settings.sizes);
  doc["scaling_largest_modules"] = *std::max_element(settings.sizes.begin(), settings.sizes.end());
  return doc;
}

}  // namespace drover::bench
