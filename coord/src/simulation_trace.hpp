#pragma once
// What a simulation records while it runs (simulation.cpp): the event trace and its hash,
// each worker's busy time, and when anything last happened to a module. Internal to coord.

#include <drover/clock.hpp>
#include <drover/coord/invariant_checker.hpp>
#include <drover/coord/simulation.hpp>
#include <drover/event.hpp>

#include <charconv>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace drover::coord::detail {

// Records the trace, its hash, the workers' busy time and the time of the last progress.
struct recorder {
  recorder(virtual_time& t, invariant_checker& c, bool keep)
      : time(t), check(c), keep_trace(keep) {}

  virtual_time& time;
  invariant_checker& check;
  bool keep_trace;
  std::string trace;
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a 64
  std::uint64_t events = 0;
  run_clock::time_point last_progress;
  std::map<std::string, worker_usage, std::less<>> usage;
  struct attempt_on {
    worker_usage* worker = nullptr;  // null while the module runs no attempt
    run_clock::time_point since;
  };
  std::vector<attempt_on> running;
  std::string text;  // the line being written, reused so that an event allocates nothing

  void line(std::string_view text) {
    for (unsigned char c : text)
      hash = (hash ^ c) * 1099511628211ull;
    if (keep_trace) trace += text;
  }

  void on_event(const event& e) {
    ++events;
    last_progress = time.now();
    check.on_event(e);
    if (e.index < running.size() && !e.module.empty()) account(e);
    // "<virtual µs> <seq> <type> <module> <attempt> <worker> <status> <message>"
    char number[24];
    text.clear();
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(time.elapsed());
    text.append(number, std::to_chars(number, number + sizeof number, micros.count()).ptr);
    text += ' ';
    text.append(number, std::to_chars(number, number + sizeof number, e.seq).ptr);
    text += ' ';
    text += to_string(e.type);
    text += ' ';
    text += e.module.empty() ? std::string_view("-") : e.module.view();
    text += ' ';
    text.append(number, std::to_chars(number, number + sizeof number, e.attempt).ptr);
    text += ' ';
    text += e.worker.empty() ? std::string_view("-") : e.worker;
    text += ' ';
    text += to_string(e.status);
    if (!e.message.empty()) {
      text += ' ';
      text += e.message;
    }
    text += '\n';
    line(text);
  }

  void account(const event& e) {
    attempt_on& a = running[e.index];
    if (e.type == event_type::module_started) {
      auto it = usage.find(e.worker);
      if (it == usage.end())
        it = usage.emplace(e.worker, worker_usage{std::string(e.worker)}).first;
      a = {&it->second, time.now()};
      return;
    }
    const bool ends = e.type == event_type::module_retrying ||
                      e.type == event_type::module_reassigned ||
                      e.type == event_type::module_finished;
    if (!ends || a.worker == nullptr) return;
    a.worker->busy += time.now() - a.since;
    ++a.worker->attempts;
    a.worker = nullptr;
  }
};

}  // namespace drover::coord::detail
